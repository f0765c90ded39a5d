//! Delivery errors and their classification: temporary or permanent.
//!
//! Every way an attempt can fail is a [`DeliverError`] variant, and
//! [`DeliverError::is_permanent`] is the one exhaustive `match` that decides
//! whether the recipient is retried or bounced. A new variant does not compile
//! until someone has decided which it is.

use crate::enhanced_code::EnhancedCode;
use crate::envelope::failure::{Cause, NextHop};
pub use crate::envelope::failure::{RemoteReply as Reply, Stage};
use crate::envelope::Failure;
use std::io;

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
    /// A domain's MTA-STS policy (enforce) or the next hop's TLSA records
    /// (DANE) refused every next hop: RFC 8461 §5.1 and RFC 7672 §2.2 both
    /// say defer, not fall back to weaker TLS.
    #[error("{0}")]
    TlsPolicy(String),
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
    /// A TLS file of the route (`ca`, `client_cert`, `client_key`) could not
    /// be read, holds nothing usable, or the key does not match the certificate.
    #[error("{path}: {detail}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The spooled message could not be read back, or is not what was stored.
    #[error("spool: {0}")]
    Spool(String),
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
            | DeliverError::TlsPolicy(_)
            | DeliverError::DnsTemporary { .. }
            | DeliverError::NoAddress(_) => false,
            // Configuration mistakes: the operator can fix them before the
            // message expires, so the mail waits instead of bouncing.
            DeliverError::UnknownRoute(_) | DeliverError::Ca { .. } | DeliverError::Resolver(_) => {
                false
            }
            // Local trouble: the message waits (and the log says why) until
            // it is fixed or expires.
            DeliverError::Spool(_) => false,
        }
    }

    /// The RFC 3463 status code for the DSN and the log.
    pub fn status(&self) -> EnhancedCode {
        let (class, subject, detail) = match self {
            DeliverError::Rejected { reply, .. } => {
                let status = reply.status();
                // The class must agree with what happens to the recipient
                // (RFC 3463 §3.1): a skipped 5xx greeting is a deferral.
                return if self.is_permanent() {
                    status
                } else {
                    status.as_temporary()
                };
            }
            DeliverError::NullMx(_) => (5, 1, 10), // RFC 7505 §4.2
            DeliverError::NoSuchDomain(_) => (5, 1, 2),
            DeliverError::Connect(_) => (4, 4, 1),
            DeliverError::Timeout(_) => (4, 4, 2),
            DeliverError::ConnectionLost { .. } => (4, 4, 2),
            DeliverError::Protocol(_) => (4, 5, 0),
            DeliverError::Tls(_) | DeliverError::TlsName(_) | DeliverError::TlsPolicy(_) => {
                (4, 7, 5)
            }
            DeliverError::TlsUnavailable => (4, 7, 4),
            DeliverError::DnsTemporary { .. } => (4, 4, 3),
            DeliverError::NoAddress(_) => (4, 4, 4),
            DeliverError::UnknownRoute(_) | DeliverError::Ca { .. } | DeliverError::Resolver(_) => {
                (4, 3, 5)
            }
            DeliverError::Spool(_) => (4, 3, 0),
        };
        EnhancedCode::new(class, subject, detail)
    }

    /// The failure a recipient records for this error at next hop `remote`
    /// (None: before any next hop was reached).
    pub fn failure(&self, remote: Option<NextHop>) -> Failure {
        let cause = match self {
            DeliverError::Rejected { stage, reply } => Cause::Reply {
                stage: *stage,
                reply: reply.clone(),
            },
            other => Cause::Error(other.to_string()),
        };
        Failure {
            status: self.status(),
            remote,
            cause,
        }
    }

    /// Whether the error is the TLS policy refusing the next hop (as opposed
    /// to the network or the next hop's SMTP replies).
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            DeliverError::Tls(_)
                | DeliverError::TlsUnavailable
                | DeliverError::TlsName(_)
                | DeliverError::TlsPolicy(_)
        )
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

/// By hand: `DeliverError` holds an `io::Error`, which is not `Clone`; one
/// error often applies to several recipients.
impl Clone for DeliverError {
    fn clone(&self) -> Self {
        match self {
            DeliverError::Connect(io) => {
                DeliverError::Connect(io::Error::new(io.kind(), io.to_string()))
            }
            DeliverError::Timeout(s) => DeliverError::Timeout(*s),
            DeliverError::ConnectionLost { stage, detail } => DeliverError::ConnectionLost {
                stage: *stage,
                detail: detail.clone(),
            },
            DeliverError::Protocol(s) => DeliverError::Protocol(*s),
            DeliverError::Rejected { stage, reply } => DeliverError::Rejected {
                stage: *stage,
                reply: reply.clone(),
            },
            DeliverError::Tls(s) => DeliverError::Tls(s.clone()),
            DeliverError::TlsUnavailable => DeliverError::TlsUnavailable,
            DeliverError::TlsName(s) => DeliverError::TlsName(s.clone()),
            DeliverError::TlsPolicy(s) => DeliverError::TlsPolicy(s.clone()),
            DeliverError::DnsTemporary { name, detail } => DeliverError::DnsTemporary {
                name: name.clone(),
                detail: detail.clone(),
            },
            DeliverError::NoSuchDomain(s) => DeliverError::NoSuchDomain(s.clone()),
            DeliverError::NullMx(s) => DeliverError::NullMx(s.clone()),
            DeliverError::NoAddress(s) => DeliverError::NoAddress(s.clone()),
            DeliverError::UnknownRoute(s) => DeliverError::UnknownRoute(s.clone()),
            DeliverError::Ca { path, detail } => DeliverError::Ca {
                path: path.clone(),
                detail: detail.clone(),
            },
            DeliverError::Resolver(s) => DeliverError::Resolver(s.clone()),
            DeliverError::Spool(s) => DeliverError::Spool(s.clone()),
        }
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
                enhanced: (esc[0] != 0)
                    .then(|| EnhancedCode::new(esc[0], u16::from(esc[1]), u16::from(esc[2]))),
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
        assert_eq!(
            DeliverError::NullMx("x".into()).status().to_string(),
            "5.1.10"
        );
        assert_eq!(rejected(554, [0, 0, 0]).status().to_string(), "5.0.0");
    }

    #[test]
    fn failures_record_the_reply_and_the_next_hop() {
        let remote = NextHop {
            host: "mx.example".into(),
            addr: "192.0.2.1:25".parse().unwrap(),
        };
        let f = rejected(550, [5, 1, 1]).failure(Some(remote));
        assert_eq!(
            f.to_string(),
            "5.1.1 host mx.example[192.0.2.1]:25 said: 550 5.1.1 no (in reply to RCPT TO)"
        );
        assert_eq!(f.reply().map(|r| r.code), Some(550));
        let local = DeliverError::NullMx("d.example".into()).failure(None);
        assert_eq!(local.remote, None);
        assert_eq!(local.reply(), None);
        assert_eq!(local.status.to_string(), "5.1.10");
    }
}
