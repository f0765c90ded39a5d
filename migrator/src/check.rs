//! `coexist-migrator check [USER...]`: the pre-flight an administrator runs
//! before a migration weekend. Each line is ok, warn or fail with its fix, in
//! the format of `coexist-relay doctor` (its [`Check`] and [`Report`]):
//! - the directory: users readable, the contacts table readable and its folder
//!   writable (it is replaced through a temp file there), the route, the state
//!   folder writable;
//! - each side: TCP, TLS with the certificate verified (or STARTTLS), and for an
//!   OAuth2 side a token from its endpoint;
//! - for the named users (or a sample of the enabled ones): both mailboxes
//!   opened with the configured logins, what is left to copy against the
//!   target's free quota; from the first one that opens, the capabilities the
//!   copy uses on each side.
//!
//! Nothing is written: no contact, no checkpoint, no mail.

use crate::config::{Auth, Config, Endpoint, Side};
use crate::directory::{Directory, User};
use crate::imap::connect::{Connector, Servers};
use crate::imap::{Connections, ImapError, Session, SideError};
use crate::oauth::OAuthError;
use crate::plan::{self, Filter};
use crate::report::human_bytes;
use crate::state::StateDir;
pub use relay::doctor::{Check, Report, Status};
use std::path::Path;

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
    let users = directory_checks(config, &directory, &opts.users, &mut checks);
    let insecure = opts.allow_insecure || config.migration.allow_insecure;
    for endpoint in [&config.source, &config.target] {
        checks.push(connection(endpoint, insecure).await);
    }
    let servers = match Servers::new(config, insecure) {
        Ok(s) => s,
        Err(e) => {
            checks.push(token_failure(&e));
            return Report { checks };
        }
    };
    for side in [Side::Source, Side::Target] {
        if let Some(tokens) = servers.tokens(side) {
            checks.push(match tokens.get().await {
                Ok(_) => Check::ok(
                    format!("{side} token endpoint"),
                    format!(
                        "{}: a token for client_id {:?}",
                        tokens.settings().token_url,
                        tokens.settings().client_id
                    ),
                ),
                Err(e) => token_failure(&e),
            });
        }
    }
    let states = StateDir::new(&config.migration.state_dir);
    let filter = Filter {
        content: config.migration.content,
        calendar_folders: config.migration.calendar_folders.clone(),
        ..Filter::default()
    };
    let mut capabilities_checked = false;
    for user in &users {
        let target = directory.target_for(user);
        let what = format!("user {}", user.address);
        match servers.open(&user.address, &target).await {
            Ok(mut conns) => {
                if !capabilities_checked {
                    checks.extend(capabilities(Side::Source, &conns.src));
                    checks.extend(capabilities(Side::Target, &conns.dst));
                    capabilities_checked = true;
                }
                checks.push(user_fits(&what, &mut conns, &states, &filter, user).await);
                conns.logout().await;
            }
            Err(e) => checks.push(user_failure(&what, config, &e)),
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

/// The users file, the contacts table and its folder, the route, the state
/// folder; returns the users to open.
fn directory_checks(
    config: &Config,
    directory: &Directory,
    named: &[String],
    checks: &mut Vec<Check>,
) -> Vec<User> {
    let users = match directory.users() {
        Ok(u) => {
            checks.push(Check::ok(
                "directory users",
                format!(
                    "{}: {} user(s), {} enabled",
                    config.users.display(),
                    u.len(),
                    u.iter().filter(|u| u.enabled).count()
                ),
            ));
            u
        }
        Err(e) => {
            checks.push(Check::fail(
                "directory users",
                e.to_string(),
                "correct the users file (header: address,display_name,target,quota,enabled)",
            ));
            Vec::new()
        }
    };
    let contacts = &config.routing.contacts;
    match directory.flipped() {
        Ok(flipped) => checks.push(Check::ok(
            "contacts table",
            format!("{}: {} contact(s)", contacts.display(), flipped.len()),
        )),
        Err(e) => checks.push(Check::fail(
            "contacts table",
            e.to_string(),
            "correct the relay's contacts table, or point [routing] contacts at it",
        )),
    }
    let folder = contacts.parent().unwrap_or_else(|| Path::new("."));
    checks.push(writable(
        "contacts folder",
        folder,
        "the contacts table is replaced through a temp file there",
    ));
    if let Err(e) = directory.check_route() {
        checks.push(Check::fail(
            "contacts route",
            e.to_string(),
            "set [routing] route to a route the relay has, or \"\"",
        ));
    }
    let state = &config.migration.state_dir;
    let state_folder = if state.exists() {
        state.as_path()
    } else {
        state.parent().unwrap_or_else(|| Path::new("."))
    };
    checks.push(writable(
        "state folder",
        state_folder,
        "checkpoints are written there",
    ));

    if named.is_empty() {
        return users
            .into_iter()
            .filter(|u| u.enabled)
            .take(SAMPLE)
            .collect();
    }
    let mut chosen = Vec::new();
    for name in named {
        match users
            .iter()
            .find(|u| relay::address::same_address(&u.address, name))
        {
            Some(u) if !u.enabled => checks.push(Check::warn(
                format!("user {}", u.address),
                "disabled in the directory: migrate will refuse it",
                "enable the account in the directory first",
            )),
            Some(u) => chosen.push(u.clone()),
            None => checks.push(Check::fail(
                format!("user {name}"),
                format!("not in the directory {}", config.users.display()),
                "check the spelling, or add the user to the directory",
            )),
        }
    }
    chosen
}

/// Whether the migrator may create files in `folder`.
fn writable(what: &str, folder: &Path, why: &str) -> Check {
    let shown = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    match rustix::fs::access(shown, rustix::fs::Access::WRITE_OK) {
        Ok(()) => Check::ok(what, format!("{} is writable", shown.display())),
        Err(e) => Check::fail(
            what,
            format!("{} is not writable: {e}", shown.display()),
            format!(
                "give the migrator's user write access to {} ({why})",
                shown.display()
            ),
        ),
    }
}

/// TCP and TLS to one side, nothing sent but CAPABILITY.
async fn connection(endpoint: &Endpoint, insecure: bool) -> Check {
    let what = format!("{} IMAP {}", endpoint.side, endpoint.url);
    match Session::secured(endpoint, format!("{} check", endpoint.side), insecure).await {
        Ok(session) => {
            let detail = if insecure {
                "connected (certificate verification off: allow_insecure)".to_string()
            } else {
                format!("connected, TLS certificate verified for {}", endpoint.host)
            };
            session.logout().await;
            Check::ok(what, detail)
        }
        Err(e) => Check::fail(what, e.to_string(), fix_for_imap(endpoint, &e)),
    }
}

/// What to do about an IMAP failure on `endpoint`.
fn fix_for_imap(endpoint: &Endpoint, e: &ImapError) -> String {
    match e {
        ImapError::Tls(_) => format!(
            "give {} a certificate for {} from a public CA, or name the issuing CA's PEM in [{}] ca",
            endpoint.host, endpoint.host, endpoint.side
        ),
        ImapError::Insecure(_) => format!(
            "use imaps:// (port 993) or enable STARTTLS on {}",
            endpoint.host
        ),
        ImapError::Io(_) | ImapError::Timeout(_) | ImapError::Bye(_) => format!(
            "check [{}] url and that {}:{} is reachable from this machine",
            endpoint.side, endpoint.host, endpoint.port
        ),
        ImapError::Login { .. } | ImapError::Refused { .. } => match endpoint.auth {
            Auth::OAuth2 => "grant the application access to this mailbox in the tenant (Exchange Online: a service principal with FullAccess; Google: domain-wide delegation), and check scope".into(),
            Auth::Password => format!("check the user's line in [{}] password_file", endpoint.side),
            Auth::Master | Auth::Authzid => format!(
                "check [{}] master_user and password_file, and that the master user may open this mailbox",
                endpoint.side
            ),
        },
        ImapError::Secret(_) => format!("create [{}] password_file (mode 0600)", endpoint.side),
        ImapError::OAuth(e) => token_fix(e),
        ImapError::Protocol(_) => "report this server's answer; it is not one the migrator understands".into(),
    }
}

fn token_fix(e: &OAuthError) -> String {
    match e {
        OAuthError::Refused { .. } => {
            "check client_id, client_secret_file and scope (and the application's permissions in the tenant)".into()
        }
        OAuthError::Secret { .. } => "put the client secret on the first line of client_secret_file (mode 0600)".into(),
        OAuthError::Insecure { .. } => "use an https:// token_url".into(),
        OAuthError::Unavailable { .. } => "check token_url and that it is reachable from this machine".into(),
        OAuthError::Protocol { .. } => "check token_url: it must be the OAuth2 token endpoint".into(),
    }
}

fn token_failure(e: &OAuthError) -> Check {
    Check::fail(
        format!("{} token endpoint", e.side()),
        e.to_string(),
        token_fix(e),
    )
}

fn user_failure(what: &str, config: &Config, e: &SideError) -> Check {
    let endpoint = match e.side {
        Side::Source => &config.source,
        Side::Target => &config.target,
    };
    Check::fail(what, e.to_string(), fix_for_imap(endpoint, &e.source))
}

/// Both mailboxes open: what is left to copy against the target's free quota.
async fn user_fits(
    what: &str,
    conns: &mut Connections,
    states: &StateDir,
    filter: &Filter,
    user: &User,
) -> Check {
    let state = states.load(&user.address).unwrap_or_default();
    let m = match plan::measure(conns, &state, filter, user.quota).await {
        Ok(m) => m,
        Err(e) => {
            return Check::fail(
                what,
                format!("mailboxes open, but measuring failed: {e}"),
                "check that the logins may list and examine every folder",
            )
        }
    };
    let detail = format!(
        "both mailboxes open; {} message(s), {} in {} folder(s) to copy; {}",
        m.messages,
        human_bytes(m.bytes),
        m.folders.len(),
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

/// What the copy uses on each side, as advertised after login.
fn capabilities(side: Side, session: &Session) -> Vec<Check> {
    // (capability, why it matters, what is lost without it)
    let wanted: &[(&[&str], &str, &str)] = match side {
        Side::Target => &[
            (
                &["LITERAL+", "LITERAL-"],
                "pipelined APPEND (RFC 7888)",
                "each APPEND waits a round trip for the server's go-ahead",
            ),
            (
                &["UIDPLUS"],
                "APPENDUID (RFC 4315)",
                "copied messages are found again by Message-ID only",
            ),
            (
                &["MULTIAPPEND"],
                "several messages per APPEND (RFC 3502)",
                "one APPEND command per message",
            ),
            (
                &["QUOTA"],
                "the quota gate (RFC 9208)",
                "the gate uses [directory] default_quota or the users file",
            ),
            (
                &["COMPRESS=DEFLATE"],
                "compression (RFC 4978)",
                "mail crosses the link uncompressed",
            ),
        ],
        Side::Source => &[
            (
                &["CONDSTORE", "QRESYNC"],
                "changes since the last pass (RFC 7162)",
                "each sync lists every UID of every folder",
            ),
            (
                &["COMPRESS=DEFLATE"],
                "compression (RFC 4978)",
                "mail crosses the link uncompressed",
            ),
        ],
    };
    wanted
        .iter()
        .map(|(names, use_, without)| {
            let what = format!("{side} capability {}", names.join("/"));
            match names.iter().find(|n| session.has(n)) {
                Some(n) => Check::ok(what, format!("{n} offered: {use_}")),
                None => Check::warn(
                    what,
                    format!("not offered: {without}"),
                    "none needed to migrate; on a slow or distant link the copy takes longer",
                ),
            }
        })
        .collect()
}
