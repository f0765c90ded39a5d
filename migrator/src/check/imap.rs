//! Each side's IMAP server: TCP and TLS, the fix for a failed login, the
//! capabilities the copy uses, and what its `compress` setting does there.

use super::token::token_fix;
use crate::config::{Auth, Compress, Config, Endpoint, Side};
use crate::imap::{Compression, ImapError, Session, SideError};
use relay::doctor::Check;

/// TCP and TLS to one side, nothing sent but CAPABILITY.
pub(super) async fn connection(endpoint: &Endpoint, insecure: bool) -> Check {
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

pub(super) fn user_failure(what: &str, config: &Config, e: &SideError) -> Check {
    let endpoint = match e.side {
        Side::Source => &config.source,
        Side::Target => &config.target,
    };
    Check::fail(what, e.to_string(), fix_for_imap(endpoint, &e.source))
}

/// What the copy uses on each side, as advertised after login.
pub(super) fn capabilities(side: Side, session: &Session) -> Vec<Check> {
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
        ],
        Side::Source => &[(
            &["CONDSTORE", "QRESYNC"],
            "changes since the last pass (RFC 7162)",
            "each sync lists every UID of every folder",
        )],
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

/// What the side's `compress` setting did on a session opened as the copy
/// opens them (COMPRESS=DEFLATE, RFC 4978).
pub(super) fn compression(endpoint: &Endpoint, session: &Session) -> Check {
    let side = endpoint.side;
    let setting = endpoint.compress.name();
    let what = format!("{side} COMPRESS=DEFLATE (compress = \"{setting}\")");
    let enable = format!(
        "offer COMPRESS=DEFLATE on {} (Dovecot: mail_plugins = $mail_plugins imap_zlib in protocol imap)",
        endpoint.host
    );
    match session.compression() {
        Compression::On => Check::ok(what, "on: mail crosses the link compressed (RFC 4978)"),
        Compression::Never => Check::ok(what, "off, as set"),
        Compression::Loopback => Check::ok(
            what,
            "offered; off: the server is on loopback, where compressing only costs CPU (\"always\" turns it on)",
        ),
        Compression::NotOffered if endpoint.compress == Compress::Always => Check::fail(
            what,
            "the server does not offer it: the copy will warn and go on uncompressed",
            format!("{enable}, or set [{side}] compress = \"auto\""),
        ),
        Compression::NotOffered => Check::warn(
            what,
            "not offered: mail crosses the link uncompressed",
            format!("none needed to migrate; on a slow or distant link, {enable}"),
        ),
        Compression::Refused(text) => Check::warn(
            what,
            format!("offered, but COMPRESS DEFLATE was refused ({text}): mail crosses the link uncompressed"),
            format!("look in the server's log why it refuses COMPRESS, or set [{side}] compress = \"never\""),
        ),
        Compression::NotAsked => Check::warn(
            what,
            "not tried on this session",
            "report this: check opens sessions as the copy does",
        ),
    }
}
