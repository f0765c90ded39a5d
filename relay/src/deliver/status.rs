//! Delivery errors and their classification: temporary or permanent.
//!
//! Every way an attempt can fail is a [`DeliverError`] variant, and
//! [`DeliverError::is_permanent`] is the one exhaustive `match` that decides
//! whether the recipient is retried or bounced. A new variant does not compile
//! until someone has decided which it is.

use std::fmt;
use std::io;

/// The SMTP step an error happened in, for the log line and the DSN
/// ("in reply to RCPT TO").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// TCP connect.
    Connect,
    /// Waiting for the 220 greeting.
    Greeting,
    /// EHLO / HELO.
    Ehlo,
    /// STARTTLS and the handshake.
    StartTls,
    /// RSET before reusing a pooled session.
    Rset,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA or BDAT command.
    Data,
    /// Sending the message and waiting for the final reply.
    Message,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of data",
        })
    }
}

/// One SMTP reply, as the next hop sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Basic code (RFC 5321 §4.2).
    pub code: u16,
    /// Enhanced status code (RFC 3463), `[0, 0, 0]` when the server sent none.
    pub enhanced: [u8; 3],
    /// Text, multi-line replies joined with a space.
    pub text: String,
}

impl Reply {
    /// Converts smtp-proto's parsed reply.
    pub fn from_response(r: &smtp_proto::Response<String>) -> Reply {
        Reply {
            code: r.code,
            enhanced: r.esc,
            text: r
                .message
                .split(['\r', '\n'])
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: the next hop refuses for good (RFC 5321 §4.2.1).
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The RFC 3463 status: the server's enhanced code, or one derived from the
    /// basic code's class when it sent none (RFC 3463 §3.1 X.0.0).
    pub fn status(&self) -> String {
        if self.enhanced[0] != 0 {
            format!(
                "{}.{}.{}",
                self.enhanced[0], self.enhanced[1], self.enhanced[2]
            )
        } else if self.is_permanent() {
            "5.0.0".into()
        } else if self.is_positive() {
            "2.0.0".into()
        } else {
            "4.0.0".into()
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enhanced[0] != 0 {
            write!(
                f,
                "{} {}.{}.{} {}",
                self.code, self.enhanced[0], self.enhanced[1], self.enhanced[2], self.text
            )
        } else {
            write!(f, "{} {}", self.code, self.text)
        }
    }
}

/// Why delivery to a next hop (or of one recipient) did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// TCP connect failed (refused, unreachable, reset).
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    /// No reply within the configured timeout.
    #[error("timed out in {0}")]
    Timeout(Stage),
    /// The connection broke (reset, closed, write error).
    #[error("connection lost in {stage}: {detail}")]
    ConnectionLost {
        /// Where.
        stage: Stage,
        /// The I/O error or "closed".
        detail: String,
    },
    /// The next hop sent something that is not an SMTP reply.
    #[error("unparseable reply in {0}")]
    Protocol(Stage),
    /// The next hop answered with a 4xx or 5xx reply.
    #[error("{reply} (in reply to {stage})")]
    Rejected {
        /// The command it answered.
        stage: Stage,
        /// The reply.
        reply: Reply,
    },
    /// The TLS handshake failed (including an unverifiable certificate).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The route requires TLS and the next hop does not offer STARTTLS.
    #[error("STARTTLS not offered and the route requires TLS")]
    TlsUnavailable,
    /// The next hop's name cannot be used for certificate verification.
    #[error("{0:?} is not a valid TLS server name")]
    TlsName(String),
    /// A DNS lookup failed in a way that may resolve itself (SERVFAIL, timeout).
    #[error("DNS lookup of {name} failed: {detail}")]
    DnsTemporary {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        detail: String,
    },
    /// The domain does not exist (NXDOMAIN).
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    /// The domain publishes a null MX: it accepts no mail (RFC 7505 §3).
    #[error("domain {0} does not accept mail (null MX)")]
    NullMx(String),
    /// Every MX host name resolved to no address.
    #[error("no address for any mail exchanger of {0}")]
    NoAddress(String),
    /// The route named by the envelope is not configured.
    #[error("route {0:?} is not configured")]
    UnknownRoute(String),
    /// A smarthost entry could not be parsed.
    #[error("smarthost {0:?} is not host:port")]
    BadSmarthost(String),
    /// `ca` could not be read or holds no certificate.
    #[error("{path}: {detail}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The system resolver configuration could not be read.
    #[error("DNS resolver: {0}")]
    Resolver(String),
}

impl DeliverError {
    /// The one table from error to consequence: true = bounce, false = retry later.
    ///
    /// RFC 5321 §4.2.1: 5yz is permanent, 4yz transient; everything the network
    /// or TLS does is transient because it may work on the next attempt.
    pub fn is_permanent(&self) -> bool {
        match self {
            // A server that refuses the session itself (5xx greeting, EHLO,
            // STARTTLS) says nothing about the recipients: skip it and defer,
            // as Postfix does with smtp_skip_5xx_greeting.
            DeliverError::Rejected {
                stage: Stage::Greeting | Stage::Ehlo | Stage::StartTls | Stage::Rset,
                ..
            } => false,
            DeliverError::Rejected { reply, .. } => reply.is_permanent(),
            // RFC 7505 §4.1: a null MX is a definitive "no mail here".
            DeliverError::NullMx(_) => true,
            DeliverError::NoSuchDomain(_) => true,
            DeliverError::Connect(_)
            | DeliverError::Timeout(_)
            | DeliverError::ConnectionLost { .. }
            | DeliverError::Protocol(_)
            | DeliverError::Tls(_)
            | DeliverError::TlsUnavailable
            | DeliverError::TlsName(_)
            | DeliverError::DnsTemporary { .. }
            | DeliverError::NoAddress(_) => false,
            // Configuration mistakes: the operator can fix them before the
            // message expires, so the mail waits instead of bouncing.
            DeliverError::UnknownRoute(_)
            | DeliverError::BadSmarthost(_)
            | DeliverError::Ca { .. }
            | DeliverError::Resolver(_) => false,
        }
    }

    /// The RFC 3463 status code for the DSN and the log.
    pub fn status(&self) -> String {
        let s = match self {
            DeliverError::Rejected { reply, .. } => {
                let status = reply.status();
                // The class must agree with what happens to the recipient
                // (RFC 3463 §3.1): a skipped 5xx greeting is a deferral.
                return match status.strip_prefix('5') {
                    Some(rest) if !self.is_permanent() => format!("4{rest}"),
                    _ => status,
                };
            }
            DeliverError::NullMx(_) => "5.1.10", // RFC 7505 §4.2
            DeliverError::NoSuchDomain(_) => "5.1.2",
            DeliverError::Connect(_) => "4.4.1",
            DeliverError::Timeout(_) => "4.4.2",
            DeliverError::ConnectionLost { .. } => "4.4.2",
            DeliverError::Protocol(_) => "4.5.0",
            DeliverError::Tls(_) | DeliverError::TlsName(_) => "4.7.5",
            DeliverError::TlsUnavailable => "4.7.4",
            DeliverError::DnsTemporary { .. } => "4.4.3",
            DeliverError::NoAddress(_) => "4.4.4",
            DeliverError::UnknownRoute(_)
            | DeliverError::BadSmarthost(_)
            | DeliverError::Ca { .. }
            | DeliverError::Resolver(_) => "4.3.5",
        };
        s.to_string()
    }

    /// Maps mail-send's client error at `stage`.
    pub fn from_client(stage: Stage, e: mail_send::Error) -> DeliverError {
        match e {
            mail_send::Error::Io(e) => DeliverError::ConnectionLost {
                stage,
                detail: e.to_string(),
            },
            mail_send::Error::Tls(e) => DeliverError::Tls(e.to_string()),
            mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
                DeliverError::Rejected {
                    stage,
                    reply: Reply::from_response(&r),
                }
            }
            mail_send::Error::Timeout => DeliverError::Timeout(stage),
            // mail-send reports a closed connection as an unparseable reply.
            mail_send::Error::UnparseableReply => DeliverError::ConnectionLost {
                stage,
                detail: "connection closed or unparseable reply".into(),
            },
            mail_send::Error::InvalidTLSName => DeliverError::TlsName(String::new()),
            mail_send::Error::MissingStartTls => DeliverError::TlsUnavailable,
            // Not reachable through the calls this module makes (no AUTH,
            // no builder): report them as a protocol problem, transient.
            mail_send::Error::Base64(_)
            | mail_send::Error::Auth(_)
            | mail_send::Error::MissingCredentials
            | mail_send::Error::MissingMailFrom
            | mail_send::Error::MissingRcptTo
            | mail_send::Error::UnsupportedAuthMechanism => DeliverError::Protocol(stage),
        }
    }
}

/// A failed attempt for one recipient, with what a DSN needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// The next hop's host name, when it answered (`Remote-MTA`).
    pub remote_mta: Option<String>,
    /// The next hop's reply, when there was one (`Diagnostic-Code: smtp; ...`).
    pub reply: Option<String>,
    /// Human-readable text for the log and the DSN.
    pub detail: String,
}

impl Failure {
    /// A failure at next hop `remote` (host name), or before any next hop.
    pub fn new(error: &DeliverError, remote: Option<(&str, String)>) -> Failure {
        let reply = match error {
            DeliverError::Rejected { reply, .. } => Some(reply.to_string()),
            _ => None,
        };
        let (remote_mta, detail) = match remote {
            Some((host, shown)) if reply.is_some() => (
                Some(host.to_string()),
                format!("host {shown} said: {error}"),
            ),
            Some((host, shown)) => (Some(host.to_string()), format!("{shown}: {error}")),
            None => (None, error.to_string()),
        };
        Failure {
            status: error.status(),
            remote_mta,
            reply,
            detail,
        }
    }

    /// Reads back the text [`Failure`]'s `Display` wrote (persisted as the
    /// envelope's `last_error` or `Bounced.reply`), so a DSN built after a
    /// restart carries the same fields.
    pub fn parse(text: &str) -> Failure {
        let (status, rest) = match text.split_once(' ') {
            Some((s, rest)) if is_status(s) => (s.to_string(), rest),
            _ => ("5.0.0".to_string(), text),
        };
        let remote_mta = rest
            .strip_prefix("host ")
            .and_then(|r| r.split(['[', ' ']).next())
            .map(str::to_string);
        let reply = rest.split_once(" said: ").map(|(_, r)| {
            r.rsplit_once(" (in reply to ")
                .map(|(r, _)| r)
                .unwrap_or(r)
                .to_string()
        });
        Failure {
            status,
            remote_mta,
            reply,
            detail: rest.to_string(),
        }
    }
}

fn is_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Failure {
    /// `STATUS detail`, e.g. `5.1.1 host mx.example[192.0.2.1]:25 said: 550 5.1.1 no such user (in reply to RCPT TO)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: u16, esc: [u8; 3]) -> DeliverError {
        DeliverError::Rejected {
            stage: Stage::Rcpt,
            reply: Reply {
                code,
                enhanced: esc,
                text: "no".into(),
            },
        }
    }

    #[test]
    fn classification() {
        assert!(rejected(550, [5, 1, 1]).is_permanent());
        assert!(!rejected(450, [4, 2, 0]).is_permanent());
        assert!(DeliverError::NullMx("x".into()).is_permanent());
        assert!(!DeliverError::TlsUnavailable.is_permanent());
        assert!(!DeliverError::Connect(io::ErrorKind::ConnectionRefused.into()).is_permanent());
        assert_eq!(DeliverError::NullMx("x".into()).status(), "5.1.10");
        assert_eq!(rejected(554, [0, 0, 0]).status(), "5.0.0");
    }

    #[test]
    fn failure_round_trips_through_text() {
        let f = Failure::new(
            &rejected(550, [5, 1, 1]),
            Some(("mx.example", "mx.example[192.0.2.1]:25".into())),
        );
        let text = f.to_string();
        assert_eq!(
            text,
            "5.1.1 host mx.example[192.0.2.1]:25 said: 550 5.1.1 no (in reply to RCPT TO)"
        );
        assert_eq!(Failure::parse(&text), f);
        let local = Failure::new(&DeliverError::NullMx("d.example".into()), None);
        let back = Failure::parse(&local.to_string());
        assert_eq!(back, local);
        assert_eq!(back.remote_mta, None);
    }
}
