//! The envelope: everything the relay knows about a message besides its bytes.
//!
//! Stored as JSON beside the message in the spool (human-readable on purpose:
//! `coexist-relay queue show` and an operator with `less` see the same thing).
//!
//! - [`failure`]: why a recipient was not delivered, as data.

pub mod failure;

pub use failure::Failure;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Body type declared on MAIL FROM (RFC 6152 8BITMIME; BINARYMIME is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    /// No BODY parameter, or BODY=7BIT.
    #[default]
    #[serde(rename = "7bit")]
    SevenBit,
    /// BODY=8BITMIME.
    #[serde(rename = "8bitmime")]
    EightBitMime,
}

/// DSN RET parameter (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ret {
    /// Return the full message in a DSN.
    Full,
    /// Return only the headers.
    Hdrs,
}

/// DSN NOTIFY parameter (RFC 3461 §4.1); all false = not given (default: failure, delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Notify {
    /// NOTIFY=SUCCESS
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
    /// NOTIFY=FAILURE
    #[serde(default, skip_serializing_if = "is_false")]
    pub failure: bool,
    /// NOTIFY=DELAY
    #[serde(default, skip_serializing_if = "is_false")]
    pub delay: bool,
    /// NOTIFY=NEVER
    #[serde(default, skip_serializing_if = "is_false")]
    pub never: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why the router sent a recipient where it did (also printed by `coexist-relay route`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RouteReason {
    /// A contact in the contacts table matched.
    Contact,
    /// A `[[routing.rule]]` for this domain matched.
    Rule {
        /// The rule's domain.
        domain: String,
    },
    /// The domain is one of `relay.accepted_domains`.
    AcceptedDomain,
    /// Any other domain, relayed for a trusted client.
    Default,
}

/// Delivery state of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RecipientStatus {
    /// Not yet delivered; will be tried.
    #[default]
    Pending,
    /// Accepted by the next hop.
    Delivered {
        /// The next hop's reply.
        reply: String,
    },
    /// Failed permanently or expired; a DSN was (or will be) sent.
    Bounced {
        /// Why (`reply`: the text older relays wrote).
        #[serde(alias = "reply", deserialize_with = "failure::typed_or_text")]
        failure: Failure,
    },
}

/// One envelope recipient with its routing decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address as given on RCPT TO.
    pub address: String,
    /// The address mail is delivered to (the contact target, or `address`).
    pub rewritten: String,
    /// Name of the `[route.NAME]` that carries it.
    pub route: String,
    /// Why this route.
    pub reason: RouteReason,
    /// DSN NOTIFY.
    #[serde(default)]
    pub notify: Notify,
    /// DSN ORCPT, as given (`rfc822;addr` with xtext decoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// Delivery state.
    #[serde(default)]
    pub status: RecipientStatus,
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Unix time (seconds) of the next attempt; 0 = as soon as possible.
    #[serde(default)]
    pub next_attempt: i64,
    /// The last temporary failure, for `queue list` and DSNs.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "failure::typed_or_text_opt"
    )]
    pub last_error: Option<Failure>,
}

/// The envelope of one spooled message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Queue id, also the spool file name and in the Received header.
    pub id: String,
    /// Unix time (seconds) the message was acknowledged.
    pub received_at: i64,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Client address.
    pub client_ip: IpAddr,
    /// Name the client gave in EHLO/HELO.
    pub helo: String,
    /// Listener name.
    pub listener: String,
    /// BODY parameter.
    #[serde(default)]
    pub body: BodyType,
    /// SMTPUTF8 parameter given.
    #[serde(default)]
    pub smtputf8: bool,
    /// DSN RET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    /// DSN ENVID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// Message size in bytes as spooled (including the Received header).
    pub size: u64,
    /// Recipients, in RCPT order.
    pub recipients: Vec<Recipient>,
    /// The sender was told the message is delayed (one notice per message).
    #[serde(default, skip_serializing_if = "is_false")]
    pub delay_notified: bool,
    /// Held by the postmaster (`coexist-relay queue hold`): not attempted
    /// until released.
    #[serde(default, skip_serializing_if = "is_false")]
    pub held: bool,
    /// A large message's bytes are in `queue/<id>.msg`, not in its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
}

/// Where a large message's bytes are: its own file, with their length and
/// CRC-32 (checked when they are read back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    /// Bytes in the file.
    pub len: u64,
    /// CRC-32 (IEEE) of them.
    pub crc: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::failure::Cause;

    /// A `.state` file as relays before typed failures wrote it still loads,
    /// its failures read into data.
    #[test]
    fn an_older_spools_envelope_still_loads() {
        let old = r#"{"id":"0123456789ABCDEF","received_at":1700000000,"sender":"a@x.example",
            "client_ip":"192.0.2.7","helo":"c","listener":"smtp","size":10,"recipients":[
            {"address":"b@corp.example","rewritten":"b@corp.example","route":"onprem",
             "reason":{"kind":"accepted_domain"},"attempts":2,"next_attempt":5,
             "last_error":"4.4.1 exchange.corp.example[192.0.2.9]:25: connect: refused"},
            {"address":"c@corp.example","rewritten":"c@corp.example","route":"onprem",
             "reason":{"kind":"accepted_domain"},"status":{"state":"bounced",
             "reply":"5.1.1 host exchange.corp.example[192.0.2.9]:25 said: 550 5.1.1 no such user (in reply to RCPT TO)"}}]}"#;
        let e: Envelope = serde_json::from_str(old).expect("old envelope");
        let pending = e.recipients[0].last_error.as_ref().expect("last error");
        assert_eq!(pending.status, "4.4.1");
        assert_eq!(
            pending.to_string(),
            "4.4.1 exchange.corp.example[192.0.2.9]:25: connect: refused"
        );
        let RecipientStatus::Bounced { failure } = &e.recipients[1].status else {
            panic!("{:?}", e.recipients[1].status);
        };
        assert_eq!(failure.status, "5.1.1");
        assert_eq!(failure.reply().map(|r| r.code), Some(550));
        assert!(matches!(failure.cause, Cause::Reply { .. }));
        // Written back, it is data.
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json["recipients"][1]["status"]["failure"]["cause"]["reply"]["reply"]["code"],
            550
        );
    }
}
