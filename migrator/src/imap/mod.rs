//! The IMAP client: one logged-in session per side and mailbox in flight.
//!
//! Built on `imap-next` (a sans-I/O IMAP protocol core over `imap-codec`'s typed
//! commands and responses): this module adds what a migrator needs on top of it.
//! This file holds the vocabulary (errors, folders, messages, quota); the rest:
//! - [`connect`]: TCP, implicit TLS or STARTTLS with verified certificates
//!   ([`tls`]), the three login styles (LOGIN, Dovecot `user*master`, SASL PLAIN
//!   with an authzid), and [`Connections`], both sides of one user;
//! - [`session`]: one session: tags, the tagged completion, capabilities;
//!   [`Session::over`] runs one over any byte stream ([`transport`]);
//! - [`commands`]: LIST, GETQUOTAROOT, SELECT/EXAMINE, UID SEARCH by
//!   INTERNALDATE, batched UID FETCH, CREATE, pipelined APPEND with LITERAL+;
//! - [`compress`]: COMPRESS=DEFLATE (RFC 4978) by the side's `compress`
//!   setting, over [`deflate`]'s compressed streams.

pub mod commands;
pub mod compress;
pub mod connect;
pub mod deflate;
pub mod session;
pub mod tls;
pub mod transport;

pub use compress::Compression;
pub use connect::Connections;
pub use session::Session;
pub use transport::ByteStream;

use crate::config::Side;
use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::response::{Code, StatusBody};

/// Why an IMAP operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// The TCP connection failed or broke.
    #[error("{0}")]
    Io(String),
    /// TLS could not be set up (certificate, handshake, CA file).
    #[error("TLS: {0}")]
    Tls(String),
    /// The server would need credentials or mail to cross a plaintext connection.
    #[error("{0}; refusing to send credentials or mail in the clear (use --allow-insecure or allow_insecure = true only on a trusted network)")]
    Insecure(String),
    /// Login refused.
    #[error("login as {login:?} refused: {text}")]
    Login {
        /// The login tried.
        login: String,
        /// The server's reason.
        text: String,
    },
    /// A command got NO or BAD.
    #[error("{command} refused: {text}")]
    Refused {
        /// The command name.
        command: &'static str,
        /// The server's text (with its response code, if any).
        text: String,
        /// Whether the server says to try later (`[THROTTLED]`, `[UNAVAILABLE]`,
        /// `[LIMIT]`, `[INUSE]`).
        temporary: bool,
    },
    /// The server closed the session (`BYE`).
    #[error("server closed the session: {0}")]
    Bye(String),
    /// No answer in time.
    #[error("no answer from the server within {0} s")]
    Timeout(u64),
    /// The server's response could not be understood.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The password file is missing, unreadable or has no entry for the login.
    #[error("{0}")]
    Secret(String),
    /// No OAuth2 token could be had for the login.
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
}

impl ImapError {
    /// Whether trying again later (on a new connection) may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            ImapError::Io(_) | ImapError::Bye(_) | ImapError::Timeout(_) => true,
            ImapError::Refused { temporary, .. } => *temporary,
            ImapError::Tls(_)
            | ImapError::Insecure(_)
            | ImapError::Login { .. }
            | ImapError::Protocol(_)
            | ImapError::Secret(_)
            | ImapError::OAuth(_) => false,
        }
    }
}

/// An IMAP failure on one side of the copy (`source: login as ... refused`).
#[derive(Debug, thiserror::Error)]
#[error("{side}: {source}")]
pub struct SideError {
    /// Where it happened.
    pub side: Side,
    /// What happened.
    pub source: ImapError,
}

impl SideError {
    /// For `map_err`: puts `side` on an [`ImapError`].
    pub fn on(side: Side) -> impl FnOnce(ImapError) -> SideError {
        move |source| SideError { side, source }
    }

    /// Whether a new connection may get further.
    pub fn is_temporary(&self) -> bool {
        self.source.is_temporary()
    }
}

/// The server's refusal of one APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRefusal {
    /// Its text with the response code (`[OVERQUOTA] Quota exceeded`).
    pub text: String,
    /// Whether it says to try later.
    pub temporary: bool,
    /// Whether the code is `[LIMIT]`, which may be about the message rather
    /// than the rate (see `copy::mail`'s `judge`).
    pub limit: bool,
}

impl AppendRefusal {
    /// The refusal a NO or BAD (`None`: a BYE) says.
    pub(crate) fn from_status(body: Option<&StatusBody>) -> AppendRefusal {
        AppendRefusal {
            text: body.map(status_text).unwrap_or_else(|| "BYE".into()),
            temporary: body.is_some_and(is_temporary_code),
            limit: body.is_some_and(is_limit_code),
        }
    }
}

/// A folder as LISTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The name as the server spells it (modified UTF-7, RFC 3501 §5.1.3).
    pub name: String,
    /// The hierarchy delimiter, if the server has hierarchy.
    pub delimiter: Option<char>,
    /// The RFC 6154 special use (`\Sent`, `\Drafts`, `\Trash`, `\Junk`,
    /// `\Archive`, ...), lower-cased without the backslash.
    pub special_use: Option<String>,
    /// `\Noselect` / `\NonExistent`: a level of hierarchy that holds no messages.
    pub no_select: bool,
}

impl Folder {
    /// The name split into its levels.
    pub fn levels(&self) -> Vec<&str> {
        match self.delimiter {
            Some(d) => self.name.split(d).collect(),
            None => vec![self.name.as_str()],
        }
    }
}

/// `STORAGE` from GETQUOTAROOT (RFC 9208), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Quota {
    /// Bytes in use.
    pub usage: u64,
    /// The limit in bytes.
    pub limit: u64,
}

impl Quota {
    /// Bytes that can still be added.
    pub fn free(&self) -> u64 {
        self.limit.saturating_sub(self.usage)
    }
}

/// What SELECT/EXAMINE tells about a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    /// UIDVALIDITY (RFC 3501 §2.3.1.1): when it changes, earlier UIDs mean nothing.
    pub uid_validity: u32,
    /// Number of messages.
    pub exists: u32,
    /// UIDNEXT (RFC 3501 §2.3.1.1), 0 when the server did not say.
    pub uid_next: u32,
    /// HIGHESTMODSEQ (RFC 7162 §3.1.2.1), 0 without CONDSTORE or with NOMODSEQ:
    /// while it stays the same, no message of the folder changed.
    pub highest_modseq: u64,
}

/// A message's metadata from UID FETCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Its UID.
    pub uid: u32,
    /// RFC822.SIZE.
    pub size: u32,
}

/// A whole message from UID FETCH, ready to APPEND elsewhere.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its UID in the source folder.
    pub uid: u32,
    /// Flags and keywords (without `\Recent`, which no client can set).
    pub flags: Vec<imap_next::imap_types::flag::Flag<'static>>,
    /// INTERNALDATE.
    pub date: Option<imap_next::imap_types::datetime::DateTime>,
    /// The message, byte for byte.
    pub body: Vec<u8>,
}

/// The text of a tagged status, with its response code.
pub(crate) fn status_text(body: &StatusBody) -> String {
    match &body.code {
        Some(code) => format!("[{}] {}", code_name(code), body.text),
        None => body.text.to_string(),
    }
}

/// The response code's name, as the server wrote it (for messages and for
/// telling throttling from refusal).
pub(crate) fn code_name(code: &Code) -> String {
    match code {
        Code::Other(other) => String::from_utf8_lossy(other.inner()).into_owned(),
        Code::OverQuota => "OVERQUOTA".into(),
        Code::TooBig => "TOOBIG".into(),
        Code::Alert => "ALERT".into(),
        Code::TryCreate => "TRYCREATE".into(),
        Code::CompressionActive => "COMPRESSIONACTIVE".into(),
        other => format!("{other:?}"),
    }
}

/// RFC 5530 codes that mean "later", and the throttling codes Exchange Online
/// and Gmail send.
pub(crate) fn is_temporary_code(body: &StatusBody) -> bool {
    let Some(code) = &body.code else {
        return false;
    };
    let name = code_name(code).to_ascii_uppercase();
    ["THROTTLED", "UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG"]
        .iter()
        .any(|c| name.starts_with(c))
}

/// Whether the response code is RFC 5530 `[LIMIT]`.
pub(crate) fn is_limit_code(body: &StatusBody) -> bool {
    body.code
        .as_ref()
        .is_some_and(|code| code_name(code).eq_ignore_ascii_case("LIMIT"))
}

/// A non-empty vector from a vector that is known to be non-empty.
pub(crate) fn vec1<T>(items: Vec<T>) -> Result<Vec1<T>, ImapError> {
    Vec1::try_from(items).map_err(|_| ImapError::Protocol("empty list".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_next::imap_types::response::CodeOther;

    fn no(code: Code<'static>) -> StatusBody<'static> {
        StatusBody {
            kind: imap_next::imap_types::response::StatusKind::No,
            code: Some(code),
            text: imap_next::imap_types::core::Text::try_from("later").unwrap(),
        }
    }

    #[test]
    fn codes_servers_invent_are_read_by_name() {
        let throttled = no(Code::Other(CodeOther::unvalidated(&b"THROTTLED"[..])));
        assert_eq!(status_text(&throttled), "[THROTTLED] later");
        assert!(is_temporary_code(&throttled));
        let limit = no(Code::Other(CodeOther::unvalidated(&b"LIMIT"[..])));
        assert!(is_temporary_code(&limit) && is_limit_code(&limit));
        let quota = no(Code::OverQuota);
        assert!(!is_temporary_code(&quota) && !is_limit_code(&quota));
    }
}
