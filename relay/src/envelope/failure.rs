//! Why a recipient was not delivered, as data: persisted in the envelope and
//! read back by the DSN, the delivery log and `queue list|show`, never parsed
//! back out of a sentence (Stalwart's `queue::Error` habit).

use crate::enhanced_code::EnhancedCode;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// The SMTP step an error happened in, for the log line and the DSN
/// ("in reply to RCPT TO").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

impl Stage {
    const ALL: [Stage; 9] = [
        Stage::Connect,
        Stage::Greeting,
        Stage::Ehlo,
        Stage::StartTls,
        Stage::Rset,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::Message,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of data",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SMTP reply, as a next hop sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteReply {
    /// Basic code (RFC 5321 §4.2).
    pub code: u16,
    /// Enhanced status code (RFC 3463), when the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced: Option<EnhancedCode>,
    /// Text, multi-line replies joined with a space.
    pub text: String,
}

impl RemoteReply {
    /// Converts smtp-proto's parsed reply.
    pub fn from_response(r: &smtp_proto::Response<String>) -> RemoteReply {
        RemoteReply {
            code: r.code,
            // smtp-proto says 0.0.0 for "none".
            enhanced: (r.esc[0] != 0)
                .then(|| EnhancedCode::new(r.esc[0], u16::from(r.esc[1]), u16::from(r.esc[2]))),
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
    pub fn status(&self) -> EnhancedCode {
        self.enhanced
            .unwrap_or_else(|| EnhancedCode::for_reply_code(self.code))
    }
}

impl fmt::Display for RemoteReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.enhanced {
            Some(e) => write!(f, "{} {e} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// One address to deliver to, with the name it was found under; where a
/// failure happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextHop {
    /// Host name (the MX exchange or the smarthost name), lower case, no
    /// trailing dot; what a `verify` certificate must match, and the DSN's
    /// `Remote-MTA`.
    pub host: String,
    /// Address and port.
    pub addr: SocketAddr,
}

impl fmt::Display for NextHop {
    /// Postfix style: `host[ip]:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]:{}", self.host, self.addr.ip(), self.addr.port())
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The next hop answered a command with a refusal (the DSN's
    /// `Diagnostic-Code: smtp;`), or the relay refused on its behalf.
    Reply {
        /// The command it answered.
        stage: Stage,
        /// The reply.
        reply: RemoteReply,
    },
    /// Anything else: connect, TLS, DNS, a timeout, in words.
    Error(String),
    /// `queue.max_lifetime` ran out (RFC 5321 §4.5.4.1).
    Expired {
        /// Attempts made.
        attempts: u32,
        /// The last of them.
        last: Box<Failure>,
    },
    /// `coexist-relay queue delete` removed the message.
    Deleted,
}

/// Why one recipient was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The RFC 3463 status the recipient gets; its class agrees with what
    /// happens to it (4: retried, 5: bounced).
    pub status: EnhancedCode,
    /// The next hop it happened at, when one was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<NextHop>,
    /// What happened.
    pub cause: Cause,
}

impl Failure {
    /// The message left the lifetime with `last` as its last failure (4.4.7).
    pub fn expired(attempts: u32, last: Failure) -> Failure {
        Failure {
            status: EnhancedCode::new(4, 4, 7),
            remote: last.remote.clone(),
            cause: Cause::Expired {
                attempts,
                last: Box::new(last),
            },
        }
    }

    /// The postmaster deleted the message (5.0.0).
    pub fn deleted() -> Failure {
        Failure {
            status: EnhancedCode::new(5, 0, 0),
            remote: None,
            cause: Cause::Deleted,
        }
    }

    /// The next hop's reply behind this failure, if there was one.
    pub fn reply(&self) -> Option<&RemoteReply> {
        match &self.cause {
            Cause::Reply { reply, .. } => Some(reply),
            Cause::Expired { last, .. } => last.reply(),
            Cause::Error(_) | Cause::Deleted => None,
        }
    }

    /// The failure in words, without the status: the DSN's human-readable part.
    pub fn explanation(&self) -> String {
        match (&self.cause, &self.remote) {
            (Cause::Reply { stage, reply }, Some(remote)) => {
                format!("host {remote} said: {reply} (in reply to {stage})")
            }
            (Cause::Reply { stage, reply }, None) => format!("{reply} (in reply to {stage})"),
            (Cause::Error(text), Some(remote)) => format!("{remote}: {text}"),
            (Cause::Error(text), None) => text.clone(),
            (Cause::Expired { attempts, last }, _) => format!(
                "delivery time expired after {attempts} attempts; last error: {}",
                last.explanation()
            ),
            (Cause::Deleted, _) => "message deleted from the queue by the postmaster".into(),
        }
    }

    /// Reads a failure persisted by a relay before failures were data: the
    /// text its `Display` wrote (`STATUS host H[ip]:port said: REPLY (in reply
    /// to STAGE)`, `STATUS H[ip]:port: error`, `STATUS error`). Whatever does
    /// not fit is kept whole as [`Cause::Error`], so nothing is lost.
    pub fn from_legacy_text(text: &str) -> Failure {
        let (status, rest) = match text.split_once(' ') {
            Some((s, rest)) => match s.parse() {
                Ok(status) => (status, rest),
                Err(_) => (EnhancedCode::new(5, 0, 0), text),
            },
            None => (EnhancedCode::new(5, 0, 0), text),
        };
        let error = |remote| Failure {
            status,
            remote,
            cause: Cause::Error(rest.to_string()),
        };
        let Some(said) = rest.strip_prefix("host ") else {
            return error(None);
        };
        let parsed = said.split_once(" said: ").and_then(|(remote, r)| {
            let (reply, stage) = r.rsplit_once(" (in reply to ")?;
            let stage = stage.strip_suffix(')')?;
            let stage = Stage::ALL.into_iter().find(|s| s.as_str() == stage)?;
            Some((legacy_remote(remote)?, stage, legacy_reply(reply)?))
        });
        match parsed {
            Some((remote, stage, reply)) => Failure {
                status,
                remote: Some(remote),
                cause: Cause::Reply { stage, reply },
            },
            None => error(None),
        }
    }
}

impl fmt::Display for Failure {
    /// `STATUS explanation`, e.g. `5.1.1 host mx.example[192.0.2.1]:25 said: 550 5.1.1 no such user (in reply to RCPT TO)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.explanation())
    }
}

/// `host[ip]:port`.
fn legacy_remote(text: &str) -> Option<NextHop> {
    let (host, rest) = text.split_once('[')?;
    let (ip, port) = rest.split_once("]:")?;
    Some(NextHop {
        host: host.to_string(),
        addr: SocketAddr::new(ip.parse().ok()?, port.parse().ok()?),
    })
}

/// `550 5.1.1 text` or `550 text`.
fn legacy_reply(text: &str) -> Option<RemoteReply> {
    let (code, rest) = text.split_once(' ').unwrap_or((text, ""));
    let code: u16 = code.parse().ok()?;
    let (enhanced, text) = match rest.split_once(' ') {
        Some((e, t)) if e.parse::<EnhancedCode>().is_ok() => (e.parse().ok(), t),
        _ => match rest.parse::<EnhancedCode>() {
            Ok(e) => (Some(e), ""),
            Err(_) => (None, rest),
        },
    };
    Some(RemoteReply {
        code,
        enhanced,
        text: text.to_string(),
    })
}

/// A failure as persisted: the typed form, or the text of an older relay.
#[derive(Deserialize)]
#[serde(untagged)]
enum Persisted {
    Typed(Failure),
    Text(String),
}

impl From<Persisted> for Failure {
    fn from(p: Persisted) -> Failure {
        match p {
            Persisted::Typed(f) => f,
            Persisted::Text(t) => Failure::from_legacy_text(&t),
        }
    }
}

/// `deserialize_with` for a failure field that older spools hold as text.
pub(crate) fn typed_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Failure, D::Error> {
    Persisted::deserialize(d).map(Failure::from)
}

/// The same, for an optional failure.
pub(crate) fn typed_or_text_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Failure>, D::Error> {
    Option::<Persisted>::deserialize(d).map(|p| p.map(Failure::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected() -> Failure {
        Failure {
            status: "5.1.1".parse().unwrap(),
            remote: Some(NextHop {
                host: "mx.example".into(),
                addr: "192.0.2.1:25".parse().unwrap(),
            }),
            cause: Cause::Reply {
                stage: Stage::Rcpt,
                reply: RemoteReply {
                    code: 550,
                    enhanced: Some("5.1.1".parse().unwrap()),
                    text: "no".into(),
                },
            },
        }
    }

    #[test]
    fn the_text_is_what_the_log_showed_before() {
        assert_eq!(
            rejected().to_string(),
            "5.1.1 host mx.example[192.0.2.1]:25 said: 550 5.1.1 no (in reply to RCPT TO)"
        );
        let expired = Failure::expired(3, rejected());
        assert_eq!(
            expired.to_string(),
            "4.4.7 delivery time expired after 3 attempts; last error: host mx.example[192.0.2.1]:25 said: 550 5.1.1 no (in reply to RCPT TO)"
        );
        assert_eq!(expired.reply().map(|r| r.code), Some(550));
        assert_eq!(
            expired.remote.as_ref().map(|r| r.host.as_str()),
            Some("mx.example")
        );
    }

    #[test]
    fn older_spools_text_converts_to_the_same_failure() {
        let f = rejected();
        assert_eq!(Failure::from_legacy_text(&f.to_string()), f);
        let local =
            Failure::from_legacy_text("5.1.10 domain d.example does not accept mail (null MX)");
        assert_eq!(local.status.to_string(), "5.1.10");
        assert_eq!(local.remote, None);
        assert_eq!(
            local.cause,
            Cause::Error("domain d.example does not accept mail (null MX)".into())
        );
        let hop = Failure::from_legacy_text("4.4.1 mx.example[192.0.2.1]:25: connect: refused");
        assert_eq!(
            hop.to_string(),
            "4.4.1 mx.example[192.0.2.1]:25: connect: refused"
        );
    }

    #[test]
    fn typed_and_text_both_deserialize() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "typed_or_text")]
            f: Failure,
        }
        let typed = serde_json::json!({ "f": rejected() });
        let h: Holder = serde_json::from_value(typed).unwrap();
        assert_eq!(h.f, rejected());
        let text = serde_json::json!({ "f": rejected().to_string() });
        let h: Holder = serde_json::from_value(text).unwrap();
        assert_eq!(h.f, rejected());
    }
}
