//! COMPRESS=DEFLATE (RFC 4978) for a logged-in session: whether the side's
//! `compress` setting asks for it on this link, and the command that turns it
//! on. The bytes themselves are [`super::deflate`]'s, under the
//! [`super::transport`].

use super::deflate::LEVEL;
use super::session::Session;
use super::ImapError;
use crate::config::Compress;
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::extensions::compress::CompressionAlgorithm;

/// What became of a session's `compress` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compression {
    /// Not decided: the session was not opened by [`Session::connect`].
    NotAsked,
    /// Everything both ways is DEFLATE.
    On,
    /// `compress = "never"`.
    Never,
    /// `compress = "auto"` and the server is on loopback, where compressing
    /// costs CPU on both ends and saves nothing.
    Loopback,
    /// The server does not offer COMPRESS=DEFLATE.
    NotOffered,
    /// The server refused `COMPRESS DEFLATE` (its words).
    Refused(String),
}

impl Compression {
    /// For messages: `on`, or why not.
    pub fn describe(&self) -> String {
        match self {
            Compression::NotAsked => "not asked".into(),
            Compression::On => "on".into(),
            Compression::Never => "off (compress = \"never\")".into(),
            Compression::Loopback => "off: the server is on loopback (compress = \"auto\")".into(),
            Compression::NotOffered => "off: the server does not offer COMPRESS=DEFLATE".into(),
            Compression::Refused(text) => format!("off: the server refused COMPRESS ({text})"),
        }
    }

    /// Whether the setting wanted compression here and did not get it: worth
    /// a warning (`always` on a server without it, or a refused command).
    pub fn disappoints(&self, setting: Compress) -> bool {
        match self {
            Compression::Refused(_) => true,
            Compression::NotOffered => setting == Compress::Always,
            _ => false,
        }
    }
}

/// Whether to send `COMPRESS DEFLATE`: `None` = yes, else why not.
pub fn decide(setting: Compress, offered: bool, loopback: bool) -> Option<Compression> {
    match (setting, offered) {
        (Compress::Never, _) => Some(Compression::Never),
        (_, false) => Some(Compression::NotOffered),
        (Compress::Auto, true) if loopback => Some(Compression::Loopback),
        (Compress::Auto | Compress::Always, true) => None,
    }
}

impl Session {
    /// Turns COMPRESS=DEFLATE on if `setting` wants it on this link. Called
    /// after login, so the credentials never share a compression context
    /// with anything. A refusal (NO, BAD) leaves the session as it was;
    /// [`Session::compression`] says what happened.
    pub async fn compress(mut self, setting: Compress) -> Result<Session, ImapError> {
        if let Some(off) = decide(setting, self.has("COMPRESS=DEFLATE"), self.loopback) {
            self.compression = off;
            return Ok(self);
        }
        let body = CommandBody::compress(CompressionAlgorithm::Deflate);
        let (tag, command) = self.command(body)?;
        self.transport = self.transport.into_pipe();
        if !self.transport.compress_after(&tag, LEVEL) {
            return Err(ImapError::Protocol("COMPRESS needs a byte stream".into()));
        }
        self.client.enqueue_command(command);
        match self.completion(&tag, "COMPRESS").await {
            Ok(_) if self.transport.compressed() => self.compression = Compression::On,
            Ok(_) => {
                return Err(ImapError::Protocol(
                    "COMPRESS: the OK was not seen where the stream turns compressed".into(),
                ))
            }
            Err(ImapError::Refused { text, .. }) => self.compression = Compression::Refused(text),
            Err(e) => return Err(e),
        }
        tracing::debug!(
            "{}: COMPRESS=DEFLATE {}",
            self.label,
            self.compression.describe()
        );
        Ok(self)
    }

    /// What became of the side's `compress` setting on this session.
    pub fn compression(&self) -> &Compression {
        &self.compression
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_skips_loopback_always_does_not_never_never() {
        use Compress::*;
        assert_eq!(decide(Auto, true, false), None);
        assert_eq!(decide(Auto, true, true), Some(Compression::Loopback));
        assert_eq!(decide(Always, true, true), None);
        assert_eq!(decide(Always, false, false), Some(Compression::NotOffered));
        assert_eq!(decide(Auto, false, false), Some(Compression::NotOffered));
        assert_eq!(decide(Never, true, false), Some(Compression::Never));
        assert!(Compression::NotOffered.disappoints(Always));
        assert!(!Compression::NotOffered.disappoints(Auto));
        assert!(Compression::Refused("no".into()).disappoints(Auto));
        assert!(!Compression::Loopback.disappoints(Auto));
    }
}
