//! SMTP replies as values, and the one table from situation to wire code.
//!
//! Every reply carries an RFC 3463 enhanced status code (RFC 2034 ENHANCEDSTATUSCODES).
//! Session code never writes reply codes inline: it picks a constructor here.

use crate::enhanced_code::EnhancedCode;
use std::borrow::Cow;
use std::fmt::Write as _;

/// One SMTP reply: basic code (RFC 5321 §4.2), enhanced code (RFC 3463), text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code.
    pub code: u16,
    /// Enhanced status code `class.subject.detail`; `None` only where RFC 2034 §3
    /// excludes it (greeting, EHLO/HELO response) or RFC 3463 defines none (354).
    pub enhanced: Option<EnhancedCode>,
    /// Text; several lines make a multi-line reply.
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    /// A single-line reply.
    pub fn new(code: u16, enhanced: EnhancedCode, text: impl Into<Cow<'static, str>>) -> Self {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A reply without enhanced code (greeting, EHLO, 354).
    pub fn plain(code: u16, lines: Vec<Cow<'static, str>>) -> Self {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// True for 4xx and 5xx replies (counted towards `limits.max_errors`).
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form (CRLF line endings, `-` continuation) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::with_capacity(64);
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let _ = write!(s, "{}{}", self.code, sep);
            // RFC 2034 §4: the enhanced code is repeated on every line.
            if let Some(code) = self.enhanced {
                let _ = write!(s, "{code} ");
            }
            let _ = write!(s, "{line}\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }

    // ---- The table of DESIGN.md "SMTP replies" ----

    /// `220` greeting.
    pub fn greeting(hostname: &str) -> Self {
        Reply::plain(220, vec![format!("{hostname} ESMTP coexist").into()])
    }
    /// `250 2.0.0` generic success (NOOP, RSET).
    pub fn ok() -> Self {
        Reply::new(250, EnhancedCode::new(2, 0, 0), "OK")
    }
    /// `250 2.1.0` sender accepted (RFC 3463 §3.2 X.1.0: other address status).
    pub fn sender_ok() -> Self {
        Reply::new(250, EnhancedCode::new(2, 1, 0), "Sender OK")
    }
    /// `250 2.1.5` recipient accepted (X.1.5: destination address valid).
    pub fn recipient_ok() -> Self {
        Reply::new(250, EnhancedCode::new(2, 1, 5), "Recipient OK")
    }
    /// `354` go ahead with DATA (RFC 3463 defines no enhanced code for 3xx).
    pub fn start_data() -> Self {
        Reply::plain(354, vec!["End data with <CR><LF>.<CR><LF>".into()])
    }
    /// `250 2.0.0 <queue id>` message accepted.
    pub fn queued(id: &str) -> Self {
        Reply::new(
            250,
            EnhancedCode::new(2, 0, 0),
            format!("{id} Message queued"),
        )
    }
    /// `250 2.0.0` a non-final BDAT chunk was received.
    pub fn chunk_ok(size: usize) -> Self {
        Reply::new(
            250,
            EnhancedCode::new(2, 0, 0),
            format!("{size} octets received"),
        )
    }
    /// `221 2.0.0` QUIT.
    pub fn bye() -> Self {
        Reply::new(221, EnhancedCode::new(2, 0, 0), "Bye")
    }
    /// `220 2.0.0` STARTTLS go-ahead.
    pub fn ready_for_tls() -> Self {
        Reply::new(220, EnhancedCode::new(2, 0, 0), "Ready to start TLS")
    }
    /// `252 2.5.0` VRFY: we never verify (RFC 5321 §3.5.3, §7.3).
    pub fn cannot_verify() -> Self {
        Reply::new(
            252,
            EnhancedCode::new(2, 5, 0),
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    /// `214 2.0.0` HELP.
    pub fn help() -> Self {
        Reply::new(
            214,
            EnhancedCode::new(2, 0, 0),
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS",
        )
    }
    /// `500 5.5.2` unknown command.
    pub fn unknown_command() -> Self {
        Reply::new(500, EnhancedCode::new(5, 5, 2), "Command unrecognized")
    }
    /// `500 5.5.2` command line longer than we accept (RFC 5321 §4.5.3.1.4).
    pub fn line_too_long() -> Self {
        Reply::new(500, EnhancedCode::new(5, 5, 2), "Line too long")
    }
    /// `501 5.5.4` syntax error in command or parameters.
    pub fn syntax(text: impl Into<Cow<'static, str>>) -> Self {
        Reply::new(501, EnhancedCode::new(5, 5, 4), text)
    }
    /// `501 5.5.4` a MAIL/RCPT parameter given more than once.
    pub fn repeated_parameter(param: &str) -> Self {
        Reply::new(
            501,
            EnhancedCode::new(5, 5, 4),
            format!("Parameter {} given more than once", printable(param)),
        )
    }
    /// `501 5.1.7` bad sender address syntax.
    pub fn bad_sender() -> Self {
        Reply::new(501, EnhancedCode::new(5, 1, 7), "Bad sender address syntax")
    }
    /// `501 5.1.3` bad recipient address syntax.
    pub fn bad_recipient() -> Self {
        Reply::new(
            501,
            EnhancedCode::new(5, 1, 3),
            "Bad recipient address syntax",
        )
    }
    /// `555 5.5.4` MAIL/RCPT parameter not recognised (RFC 5321 §4.1.1.11).
    pub fn unsupported_parameter(param: &str) -> Self {
        Reply::new(
            555,
            EnhancedCode::new(5, 5, 4),
            format!("Unsupported parameter {}", printable(param)),
        )
    }
    /// `553 5.6.7` non-ASCII address without SMTPUTF8 (RFC 6531 §3.2).
    pub fn needs_smtputf8() -> Self {
        Reply::new(
            553,
            EnhancedCode::new(5, 6, 7),
            "Non-ASCII address requires the SMTPUTF8 parameter",
        )
    }
    /// `503 5.5.1` bad sequence of commands.
    pub fn bad_sequence(text: &'static str) -> Self {
        Reply::new(503, EnhancedCode::new(5, 5, 1), text)
    }
    /// `554 5.7.1` relay denied.
    pub fn relay_denied() -> Self {
        Reply::new(554, EnhancedCode::new(5, 7, 1), "Relay access denied")
    }
    /// `552 5.3.4` message (or declared SIZE) too large.
    pub fn too_large(limit: u64) -> Self {
        Reply::new(
            552,
            EnhancedCode::new(5, 3, 4),
            format!("Message size exceeds fixed limit of {limit} bytes"),
        )
    }
    /// `452 4.5.3` too many recipients (RFC 5321 §4.5.3.1.10: 452, client retries the rest).
    pub fn too_many_recipients() -> Self {
        Reply::new(452, EnhancedCode::new(4, 5, 3), "Too many recipients")
    }
    /// `554 5.4.6` mail loop (too many Received fields, RFC 5321 §6.3).
    pub fn mail_loop() -> Self {
        Reply::new(
            554,
            EnhancedCode::new(5, 4, 6),
            "Too many Received headers: mail loop detected",
        )
    }
    /// `550 5.6.0` bare LF or CR in message data while `bare_newline = "reject"`.
    pub fn bare_newline() -> Self {
        Reply::new(
            550,
            EnhancedCode::new(5, 6, 0),
            "Message contains bare LF or CR; lines must end with CRLF (RFC 5321 §2.3.8)",
        )
    }
    /// `530 5.7.0` MAIL before STARTTLS on a listener that requires TLS (RFC 3207 §4).
    pub fn tls_required() -> Self {
        Reply::new(
            530,
            EnhancedCode::new(5, 7, 0),
            "Must issue a STARTTLS command first",
        )
    }
    /// `454 4.7.0` TLS not available now.
    pub fn tls_unavailable() -> Self {
        Reply::new(454, EnhancedCode::new(4, 7, 0), "TLS not available")
    }
    /// `421 4.7.0` too many connections.
    pub fn too_many_connections() -> Self {
        Reply::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "Too many connections, try again later",
        )
    }
    /// `421 4.7.0` connection rate exceeded.
    pub fn connection_rate() -> Self {
        Reply::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "Connection rate limit exceeded, try again later",
        )
    }
    /// `450 4.7.1` message rate exceeded.
    pub fn message_rate() -> Self {
        Reply::new(
            450,
            EnhancedCode::new(4, 7, 1),
            "Message rate limit exceeded, try again later",
        )
    }
    /// `451 4.3.0` no routing snapshot yet (the directory has not answered
    /// and there is no cache): better later than to the wrong mailbox.
    pub fn no_routing_snapshot() -> Self {
        Reply::new(
            451,
            EnhancedCode::new(4, 3, 0),
            "Routing table not loaded yet, try again later",
        )
    }

    /// `451 4.3.0` spool write failed.
    pub fn spool_failed() -> Self {
        Reply::new(
            451,
            EnhancedCode::new(4, 3, 0),
            "Temporary local problem, try again later",
        )
    }
    /// `452 4.3.1` spool disk full.
    pub fn spool_full() -> Self {
        Reply::new(
            452,
            EnhancedCode::new(4, 3, 1),
            "Insufficient system storage",
        )
    }
    /// `421 4.3.2` shutting down.
    pub fn shutting_down() -> Self {
        Reply::new(
            421,
            EnhancedCode::new(4, 3, 2),
            "Service shutting down, try again later",
        )
    }
    /// `421 4.4.2` idle/data timeout.
    pub fn timeout() -> Self {
        Reply::new(
            421,
            EnhancedCode::new(4, 4, 2),
            "Timeout exceeded, closing connection",
        )
    }
    /// `421 4.7.0` too many errors.
    pub fn too_many_errors() -> Self {
        Reply::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "Too many errors, closing connection",
        )
    }
    /// `502 5.5.1` command recognised but not implemented here.
    pub fn not_implemented() -> Self {
        Reply::new(502, EnhancedCode::new(5, 5, 1), "Command not implemented")
    }
    /// `503 5.5.1` STARTTLS twice.
    pub fn already_tls() -> Self {
        Reply::new(503, EnhancedCode::new(5, 5, 1), "TLS already active")
    }
}

/// Keeps client-supplied text in a reply printable and short.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_line_has_enhanced_code() {
        assert_eq!(
            wire(&Reply::relay_denied()),
            "554 5.7.1 Relay access denied\r\n"
        );
        assert_eq!(
            wire(&Reply::queued("ABC")),
            "250 2.0.0 ABC Message queued\r\n"
        );
    }

    #[test]
    fn multi_line_repeats_code() {
        let r = Reply {
            code: 250,
            enhanced: Some(EnhancedCode::new(2, 0, 0)),
            lines: vec!["a".into(), "b".into()],
        };
        assert_eq!(wire(&r), "250-2.0.0 a\r\n250 2.0.0 b\r\n");
    }

    #[test]
    fn client_text_is_sanitised() {
        let r = Reply::unsupported_parameter("X\r\n250 fake");
        assert_eq!(wire(&r), "555 5.5.4 Unsupported parameter X250 fake\r\n");
    }
}
