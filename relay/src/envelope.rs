//! The envelope: everything the relay knows about a message besides its bytes.
//!
//! Stored as JSON beside the message in the spool (human-readable on purpose:
//! `coexist-relay queue show` and an operator with `less` see the same thing).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Body type declared on MAIL FROM (RFC 6152 8BITMIME, RFC 3030 BINARYMIME).
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
    /// BODY=BINARYMIME (only with BDAT).
    #[serde(rename = "binarymime")]
    BinaryMime,
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
        /// The reply or reason.
        reply: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
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
}
