//! Per user: what is left to copy against the target's free quota, as the
//! quota gate of `migrate` will see it.

use crate::dav::measure::DavMeasure;
use crate::directory::User;
use crate::imap::Connections;
use crate::plan::{self, Filter};
use crate::report::human_bytes;
use crate::state::StateDir;
use relay::doctor::Check;

/// Both mailboxes open: what is left to copy against the target's free
/// quota; `dav` is the calendars' and contacts' share, when measured.
pub(super) async fn user_fits(
    what: &str,
    conns: &mut Connections,
    states: &StateDir,
    filter: &Filter,
    user: &User,
    dav: Option<DavMeasure>,
) -> Check {
    let state = states.load(&user.address).unwrap_or_default();
    let mut m = match plan::measure(conns, &state, filter, user.quota).await {
        Ok(m) => m,
        Err(e) => {
            return Check::fail(
                what,
                format!("mailboxes open, but measuring failed: {e}"),
                "check that the logins may list and examine every folder",
            )
        }
    };
    let mail = format!(
        "{} message(s), {} in {} folder(s)",
        m.messages,
        human_bytes(m.bytes),
        m.folders.len()
    );
    let plus = match &dav {
        Some(d) => {
            d.add_to(&mut m);
            format!(" and {} of calendars and contacts", human_bytes(d.bytes))
        }
        None => String::new(),
    };
    let detail = format!(
        "both mailboxes open; {mail}{plus} to copy; {}",
        m.quota_words()
    );
    match (m.quota, plan::gate(&m)) {
        (_, Err(e)) => Check::fail(what, detail, e.to_string()),
        (None, Ok(())) => Check::warn(
            what,
            detail,
            "the target reports no quota: set [directory] default_quota or the user's quota column so the gate can work",
        ),
        (Some(_), Ok(())) => Check::ok(what, detail),
    }
}
