//! Delivery status notifications (RFC 3464) for failed and delayed recipients.
//!
//! The DSN goes to the envelope sender from `MAILER-DAEMON@<hostname>` with the
//! null envelope sender, so that it can never cause another DSN (RFC 5321
//! §4.5.5). Per RFC 3461 §4.1 a recipient with NOTIFY=NEVER, or with a NOTIFY
//! list that does not name the event, gets none; without NOTIFY, failures are
//! reported and delays too.

use crate::envelope::Failure;
use crate::envelope::{BodyType, Envelope, Notify, Recipient, RecipientStatus, Ret, RouteReason};
use crate::message::header_section;
use chrono::{DateTime, TimeZone, Utc};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// What the DSN says happened (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given up: permanent failure or expiry.
    Failed,
    /// Still being retried.
    Delayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
        }
    }

    fn wanted(self, notify: Notify) -> bool {
        let given = notify.success || notify.failure || notify.delay || notify.never;
        match self {
            _ if notify.never => false,
            Action::Failed => !given || notify.failure,
            Action::Delayed => !given || notify.delay,
        }
    }
}

/// One recipient to report.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Index into the envelope's recipients.
    pub index: usize,
    /// Failed or delayed.
    pub action: Action,
    /// Why (from the attempt, or as persisted in the envelope).
    pub failure: &'a Failure,
}

/// A DSN ready to spool.
#[derive(Debug, Clone)]
pub struct Dsn {
    /// The message (CRLF line ends).
    pub message: Vec<u8>,
    /// Sender `<>`, one recipient: the original envelope sender. `id` is empty
    /// and the recipient's `route` is empty: the caller routes it (bounces go
    /// through the normal router) and the spool assigns the id.
    pub envelope: Envelope,
}

/// What of the original message a DSN carries as its third part.
#[derive(Debug, Clone, Copy)]
pub enum Returned<'a> {
    /// The whole message (`message/rfc822`): RET=FULL on a failure.
    Message(&'a [u8]),
    /// Its header section (`text/rfc822-headers`; more bytes may be given:
    /// only the header section is used).
    Headers(&'a [u8]),
}

impl<'a> Returned<'a> {
    /// What RFC 3461 §4.3 asks for: the whole message for a failure with
    /// RET=FULL, else the headers (RET=HDRS is the default; a delay notice
    /// returns the headers, DESIGN.md "Durability").
    pub fn choose(envelope: &Envelope, action: Action, message: &'a [u8]) -> Returned<'a> {
        if action == Action::Failed && envelope.ret == Some(Ret::Full) {
            Returned::Message(message)
        } else {
            Returned::Headers(message)
        }
    }
}

/// Builds the DSN for `reports`, or `None` when nobody is to be told: the
/// original sender is `<>`, or every recipient's NOTIFY declines it.
pub fn build(
    envelope: &Envelope,
    hostname: &str,
    reports: &[Report<'_>],
    returned: Returned<'_>,
    now: DateTime<Utc>,
) -> Option<Dsn> {
    // RFC 3461 §6.2 / RFC 5321 §4.5.5: never a DSN about a DSN.
    if envelope.sender.is_empty() {
        return None;
    }
    let reports: Vec<&Report<'_>> = reports
        .iter()
        .filter(|r| {
            envelope
                .recipients
                .get(r.index)
                .is_some_and(|rcpt| r.action.wanted(rcpt.notify))
        })
        .collect();
    if reports.is_empty() {
        return None;
    }
    let boundary = format!("{}.{}/{}", envelope.id, now.timestamp(), hostname);
    let mut m = String::new();
    notification(&mut m, envelope, hostname, &reports, &boundary, now);
    delivery_status(&mut m, envelope, hostname, &reports, &boundary, now);
    let mut bytes = m.into_bytes();
    returned_content(&mut bytes, returned, &boundary);
    Some(Dsn {
        envelope: dsn_envelope(envelope, hostname, &bytes, now),
        message: bytes,
    })
}

/// The header and the first part: what a person reads (RFC 3462 §2).
fn notification(
    m: &mut String,
    envelope: &Envelope,
    hostname: &str,
    reports: &[&Report<'_>],
    boundary: &str,
    now: DateTime<Utc>,
) {
    let failed = reports.iter().any(|r| r.action == Action::Failed);
    let _ = write!(
        m,
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{sender}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}.{ts}.dsn@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n",
        sender = envelope.sender,
        subject = if failed {
            "Undelivered Mail Returned to Sender"
        } else {
            "Delayed Mail (still being retried)"
        },
        date = now.to_rfc2822(),
        id = envelope.id,
        ts = now.timestamp(),
    );
    let _ = write!(
        m,
        "This is the mail system at host {hostname}.\r\n\r\n{}\r\n\r\n",
        if failed {
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below."
        } else {
            "Your message could not be delivered yet to one or more\r\n\
             recipients. The mail system will keep trying; you do not need\r\n\
             to send it again."
        }
    );
    for r in reports {
        let rcpt = &envelope.recipients[r.index];
        let _ = write!(
            m,
            "<{}>: {}\r\n",
            rcpt.address,
            one_line(&r.failure.explanation())
        );
    }
}

/// The `message/delivery-status` part (RFC 3464 §2).
fn delivery_status(
    m: &mut String,
    envelope: &Envelope,
    hostname: &str,
    reports: &[&Report<'_>],
    boundary: &str,
    now: DateTime<Utc>,
) {
    let arrival = Utc
        .timestamp_opt(envelope.received_at, 0)
        .single()
        .unwrap_or(now);
    // RFC 3464 §2.2: per-message fields.
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {hostname}\r\n"
    );
    if let Some(envid) = &envelope.envid {
        let _ = write!(m, "Original-Envelope-Id: {}\r\n", one_line(envid));
    }
    let _ = write!(m, "Arrival-Date: {}\r\n", arrival.to_rfc2822());
    // RFC 3464 §2.3: per-recipient fields, each group after a blank line.
    for r in reports {
        let rcpt = &envelope.recipients[r.index];
        m.push_str("\r\n");
        if let Some(orcpt) = original_recipient(rcpt) {
            let _ = write!(m, "Original-Recipient: rfc822;{orcpt}\r\n");
        }
        let _ = write!(
            m,
            "Final-Recipient: rfc822;{}\r\nAction: {}\r\nStatus: {}\r\n",
            rcpt.rewritten,
            r.action.as_str(),
            r.failure.status
        );
        if let Some(remote) = &r.failure.remote {
            let _ = write!(m, "Remote-MTA: dns; {}\r\n", remote.host);
        }
        let _ = match r.failure.reply() {
            Some(reply) => write!(
                m,
                "Diagnostic-Code: smtp; {}\r\n",
                one_line(&reply.to_string())
            ),
            None => write!(
                m,
                "Diagnostic-Code: x-coexist; {}\r\n",
                one_line(&r.failure.explanation())
            ),
        };
    }
}

/// The returned content, whole or headers only (RFC 3462 §2, RFC 3464 §3),
/// and the closing boundary.
fn returned_content(bytes: &mut Vec<u8>, returned: Returned<'_>, boundary: &str) {
    let (description, content_type, content) = match returned {
        Returned::Message(m) => ("Undelivered Message", "message/rfc822", m),
        Returned::Headers(m) => (
            "Undelivered Message Headers",
            "text/rfc822-headers",
            header_section(m),
        ),
    };
    bytes.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\n\
             Content-Description: {description}\r\n\
             Content-Type: {content_type}\r\n\
             \r\n"
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(content);
    if !content.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
}

/// The DSN's own envelope: from `<>` to the original sender, to be routed.
fn dsn_envelope(original: &Envelope, hostname: &str, bytes: &[u8], now: DateTime<Utc>) -> Envelope {
    Envelope {
        id: String::new(),
        received_at: now.timestamp(),
        sender: String::new(),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        helo: hostname.to_string(),
        listener: "dsn".to_string(),
        body: if bytes.is_ascii() {
            BodyType::SevenBit
        } else {
            BodyType::EightBitMime
        },
        smtputf8: !original.sender.is_ascii(),
        ret: None,
        envid: None,
        size: bytes.len() as u64,
        recipients: vec![Recipient {
            address: original.sender.clone(),
            rewritten: original.sender.clone(),
            route: String::new(),
            reason: RouteReason::Default,
            notify: Notify::default(),
            orcpt: None,
            status: RecipientStatus::Pending,
            attempts: 0,
            next_attempt: 0,
            last_error: None,
        }],
        delay_notified: false,
        held: false,
        external: None,
    }
}

/// ORCPT when the client gave one; otherwise the address as received when the
/// relay rewrote it, so the sender sees the address they used.
fn original_recipient(rcpt: &Recipient) -> Option<String> {
    match &rcpt.orcpt {
        Some(o) => Some(
            o.strip_prefix("rfc822;")
                .or_else(|| o.strip_prefix("RFC822;"))
                .unwrap_or(o)
                .to_string(),
        ),
        None if !rcpt.address.eq_ignore_ascii_case(&rcpt.rewritten) => Some(rcpt.address.clone()),
        None => None,
    }
}

/// Field values must not break the header syntax.
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::status::{DeliverError, Reply, Stage};
    use mail_parser::{MessageParser, MimeHeaders};

    fn envelope() -> Envelope {
        let rcpt =
            |address: &str, rewritten: &str, notify: Notify, orcpt: Option<&str>| Recipient {
                address: address.into(),
                rewritten: rewritten.into(),
                route: "cloud".into(),
                reason: RouteReason::Contact,
                notify,
                orcpt: orcpt.map(str::to_string),
                status: RecipientStatus::Pending,
                attempts: 1,
                next_attempt: 0,
                last_error: None,
            };
        Envelope {
            id: "Q1234".into(),
            received_at: 1_700_000_000,
            sender: "alice@sender.example".into(),
            client_ip: "192.0.2.7".parse().unwrap(),
            helo: "client.example".into(),
            listener: "smtp".into(),
            body: BodyType::SevenBit,
            smtputf8: false,
            ret: None,
            envid: Some("ENV-42".into()),
            size: 0,
            recipients: vec![
                rcpt(
                    "bob@corp.example",
                    "bob@tenant.cloud.example",
                    Notify::default(),
                    Some("bob@corp.example"),
                ),
                rcpt(
                    "quiet@corp.example",
                    "quiet@corp.example",
                    Notify {
                        never: true,
                        ..Notify::default()
                    },
                    None,
                ),
            ],
            delay_notified: false,
            held: false,
            external: None,
        }
    }

    const MESSAGE: &[u8] =
        b"From: alice@sender.example\r\nSubject: hello\r\nMessage-ID: <m1@sender.example>\r\n\r\nsecret body\r\n";

    fn failure() -> Failure {
        DeliverError::Rejected {
            stage: Stage::Rcpt,
            reply: Reply {
                code: 550,
                enhanced: Some(crate::enhanced_code::EnhancedCode::new(5, 1, 1)),
                text: "User unknown".into(),
            },
        }
        .failure(Some(crate::envelope::failure::NextHop {
            host: "mx.tenant.cloud.example".into(),
            addr: "192.0.2.9:25".parse().unwrap(),
        }))
    }

    #[test]
    fn dsn_round_trip_headers_only() {
        let env = envelope();
        let f = failure();
        let reports = [
            Report {
                index: 0,
                action: Action::Failed,
                failure: &f,
            },
            Report {
                index: 1,
                action: Action::Failed,
                failure: &f,
            },
        ];
        let dsn = build(
            &env,
            "relay.corp.example",
            &reports,
            Returned::choose(&env, reports[0].action, MESSAGE),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(dsn.envelope.sender, "");
        assert_eq!(dsn.envelope.recipients.len(), 1);
        assert_eq!(dsn.envelope.recipients[0].address, "alice@sender.example");

        let parsed = MessageParser::default().parse(&dsn.message).unwrap();
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address().unwrap(),
            "MAILER-DAEMON@relay.corp.example"
        );
        let ct = parsed.content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(parsed.parts.len(), 4, "root + 3 parts");
        let text = parsed.body_text(0).unwrap();
        assert!(text.contains("<bob@corp.example>"), "{text}");
        assert!(
            !text.contains("quiet@"),
            "NOTIFY=NEVER recipient must not be reported"
        );

        let status_part = &parsed.parts[2];
        assert_eq!(
            status_part.content_type().unwrap().subtype(),
            Some("delivery-status")
        );
        let status = String::from_utf8_lossy(status_part.contents());
        for field in [
            "Reporting-MTA: dns; relay.corp.example",
            "Original-Envelope-Id: ENV-42",
            "Arrival-Date: ",
            "Original-Recipient: rfc822;bob@corp.example",
            "Final-Recipient: rfc822;bob@tenant.cloud.example",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.tenant.cloud.example",
            "Diagnostic-Code: smtp; 550 5.1.1 User unknown",
        ] {
            assert!(status.contains(field), "missing {field:?} in\n{status}");
        }
        assert!(!status.contains("quiet@"));

        let returned = &parsed.parts[3];
        assert_eq!(returned.content_type().unwrap().ctype(), "text");
        assert_eq!(
            returned.content_type().unwrap().subtype(),
            Some("rfc822-headers")
        );
        let returned = String::from_utf8_lossy(returned.contents());
        assert!(returned.contains("Subject: hello"));
        assert!(
            !returned.contains("secret body"),
            "RET=HDRS returns headers only"
        );
    }

    #[test]
    fn dsn_ret_full_returns_the_message() {
        let mut env = envelope();
        env.ret = Some(Ret::Full);
        let f = failure();
        let reports = [Report {
            index: 0,
            action: Action::Failed,
            failure: &f,
        }];
        let dsn = build(
            &env,
            "relay.corp.example",
            &reports,
            Returned::choose(&env, reports[0].action, MESSAGE),
            Utc::now(),
        )
        .unwrap();
        let parsed = MessageParser::default().parse(&dsn.message).unwrap();
        let returned = parsed
            .parts
            .iter()
            .find(|p| {
                p.content_type()
                    .is_some_and(|c| c.ctype() == "message" && c.subtype() == Some("rfc822"))
            })
            .expect("message/rfc822 part");
        assert!(!returned.contents().is_empty());
        let inner = parsed
            .attachments()
            .find_map(|a| a.message())
            .expect("nested message");
        assert_eq!(inner.subject(), Some("hello"));
        assert!(inner.body_text(0).unwrap().contains("secret body"));
    }

    #[test]
    fn no_dsn_to_null_sender_or_never() {
        let mut env = envelope();
        let f = failure();
        let never_only = [Report {
            index: 1,
            action: Action::Failed,
            failure: &f,
        }];
        assert!(build(
            &env,
            "h",
            &never_only,
            Returned::choose(&env, never_only[0].action, MESSAGE),
            Utc::now()
        )
        .is_none());
        env.sender.clear();
        let reports = [Report {
            index: 0,
            action: Action::Failed,
            failure: &f,
        }];
        assert!(build(
            &env,
            "h",
            &reports,
            Returned::choose(&env, reports[0].action, MESSAGE),
            Utc::now()
        )
        .is_none());
    }

    #[test]
    fn delayed_respects_notify() {
        let mut env = envelope();
        env.recipients[0].notify = Notify {
            failure: true,
            ..Notify::default()
        };
        let f = failure();
        let reports = [Report {
            index: 0,
            action: Action::Delayed,
            failure: &f,
        }];
        assert!(build(
            &env,
            "h",
            &reports,
            Returned::choose(&env, reports[0].action, MESSAGE),
            Utc::now()
        )
        .is_none());
        env.recipients[0].notify = Notify::default();
        let dsn = build(
            &env,
            "h",
            &reports,
            Returned::choose(&env, reports[0].action, MESSAGE),
            Utc::now(),
        )
        .unwrap();
        assert!(String::from_utf8_lossy(&dsn.message).contains("Action: delayed"));
    }

    /// RFC 3461 §4.3: RET=FULL is for failures; a delay notice returns the
    /// original headers (DESIGN.md "Durability") with the last 4.x.x status.
    #[test]
    fn a_delay_notice_returns_the_headers_even_with_ret_full() {
        let mut env = envelope();
        env.ret = Some(Ret::Full);
        let last = DeliverError::Rejected {
            stage: Stage::Rcpt,
            reply: Reply {
                code: 451,
                enhanced: Some(crate::enhanced_code::EnhancedCode::new(4, 3, 0)),
                text: "try later".into(),
            },
        }
        .failure(None);
        let reports = [Report {
            index: 0,
            action: Action::Delayed,
            failure: &last,
        }];
        let dsn = build(
            &env,
            "h",
            &reports,
            Returned::choose(&env, reports[0].action, MESSAGE),
            Utc::now(),
        )
        .unwrap();
        let parsed = MessageParser::default().parse(&dsn.message).unwrap();
        assert_eq!(parsed.subject(), Some("Delayed Mail (still being retried)"));
        let status = String::from_utf8_lossy(parsed.parts[2].contents()).to_string();
        assert!(status.contains("Action: delayed"), "{status}");
        assert!(status.contains("Status: 4.3.0"), "{status}");
        let returned = &parsed.parts[3];
        assert_eq!(
            returned.content_type().unwrap().subtype(),
            Some("rfc822-headers")
        );
        assert!(!String::from_utf8_lossy(returned.contents()).contains("secret body"));
    }
}
