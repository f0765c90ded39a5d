//! `coexist-migrator check [USER...]`: the pre-flight an administrator runs
//! before a migration weekend. Each line is ok, warn or fail with its fix, in
//! the format of `coexist-relay doctor` (its [`Check`] and [`Report`]):
//! - the directory: users readable; for a file, the contacts table readable
//!   and its folder writable (it is replaced through a temp file there); for
//!   LDAP, a bind, `contacts_base`, and the flip's two writes asked without
//!   writing; the route, the state folder writable;
//! - each side: TCP, TLS with the certificate verified (or STARTTLS), and for an
//!   OAuth2 side a token from its endpoint; with `dav_url`, the DAV servers;
//! - for the named users (or a sample of the enabled ones): the calendar and
//!   address-book homes on both sides, whether the target schedules, the DAV
//!   quota; both mailboxes opened with the configured logins, what is left to
//!   copy against the target's free quota; from the first one that opens, the
//!   capabilities the copy uses on each side and whether `compress` turned
//!   COMPRESS=DEFLATE on (the quota measure then runs compressed).
//!
//! Nothing is written: no contact, no checkpoint, no mail.
//!
//! One file per area: [`directory`], [`imap`] (TLS, logins, capabilities),
//! [`token`] (OAuth2 endpoints), [`dav`] (calendars and contacts),
//! [`quota`] (size against free quota).

mod dav;
mod directory;
mod imap;
mod quota;
mod token;

use crate::config::{Config, Side};
use crate::directory::Directory;
use crate::imap::connect::{Connector, Servers};
use crate::plan::Filter;
use crate::state::StateDir;
pub use relay::doctor::{Check, Report, Status};

/// How many enabled users are opened when none are named.
const SAMPLE: usize = 3;

/// What `check` was asked.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Users to open; empty = a sample of the enabled ones.
    pub users: Vec<String>,
    /// Allow plaintext IMAP and unverified certificates.
    pub allow_insecure: bool,
}

/// Runs every check against a loaded config (one that does not load is the
/// caller's exit 2).
pub async fn run(config: &Config, opts: &CheckOptions) -> Report {
    let mut checks = vec![Check::ok(
        "config",
        format!("{} loads", config.path.display()),
    )];
    let directory = Directory::new(config);
    let users = directory::directory_checks(config, &directory, &opts.users, &mut checks);
    let insecure = opts.allow_insecure || config.migration.allow_insecure;
    for endpoint in [&config.source, &config.target] {
        checks.push(imap::connection(endpoint, insecure).await);
    }
    let servers = match Servers::new(config, insecure) {
        Ok(s) => s,
        Err(e) => {
            checks.push(token::token_failure(&e));
            return Report { checks };
        }
    };
    checks.extend(token::token_checks(&servers).await);
    let dav = dav::servers(config, insecure, &servers, &mut checks);
    if let Some(d) = &dav {
        checks.extend(dav::reach(d, insecure).await);
    }
    let states = StateDir::new(&config.migration.state_dir);
    let content = config.migration.content;
    let filter = Filter {
        content,
        calendar_folders: config.migration.calendar_folders.clone(),
        // As `migrate`: with CalDAV on both sides, calendar folders are mail.
        dav: config.source.dav.is_some() && config.target.dav.is_some(),
        ..Filter::default()
    };
    let mut capabilities_checked = false;
    let mut scheduling_asked = false;
    for user in &users {
        let target = directory.target_for(user);
        let what = format!("user {}", user.address);
        let dav_measure = match &dav {
            Some(d) => {
                let state = states.load(&user.address).unwrap_or_default();
                let (lines, m) = dav::user(
                    d,
                    &user.address,
                    &target,
                    content,
                    &state.dav,
                    &mut scheduling_asked,
                )
                .await;
                checks.extend(lines);
                m
            }
            None => None,
        };
        match servers.open(&user.address, &target).await {
            Ok(mut conns) => {
                if !capabilities_checked {
                    checks.extend(imap::capabilities(Side::Source, &conns.src));
                    checks.extend(imap::capabilities(Side::Target, &conns.dst));
                    checks.push(imap::compression(&config.source, &conns.src));
                    checks.push(imap::compression(&config.target, &conns.dst));
                    capabilities_checked = true;
                }
                checks.push(
                    quota::user_fits(&what, &mut conns, &states, &filter, user, dav_measure).await,
                );
                conns.logout().await;
            }
            Err(e) => checks.push(imap::user_failure(&what, config, &e)),
        }
    }
    if !capabilities_checked {
        checks.push(Check::warn(
            "capabilities",
            "not checked: no mailbox could be opened",
            "fix the failures above, or name a user that exists on both sides: check USER",
        ));
    }
    Report { checks }
}
