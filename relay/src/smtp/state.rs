//! Session state as types: the envelope order (HELO → MAIL → RCPT → DATA) is enforced
//! by which variant the session is in, not by scattered checks.

use crate::envelope::{BodyType, Recipient, Ret};
use crate::route::table::ContactsTable;
use std::sync::Arc;

/// Where the session is in the envelope order.
#[derive(Default)]
pub enum Phase {
    /// Connected; no EHLO/HELO yet.
    #[default]
    Fresh,
    /// Greeted; no transaction open.
    Ready,
    /// MAIL accepted; collecting recipients.
    Mail(Transaction),
}

/// An open mail transaction (RFC 5321 §3.3).
pub struct Transaction {
    /// Envelope sender ("" for `<>`).
    pub sender: String,
    /// BODY parameter.
    pub body: BodyType,
    /// SMTPUTF8 given.
    pub smtputf8: bool,
    /// DSN RET.
    pub ret: Option<Ret>,
    /// DSN ENVID.
    pub envid: Option<String>,
    /// Accepted recipients with their routing decisions.
    pub recipients: Vec<Recipient>,
    /// The contacts table every recipient of this transaction is routed with: a reload
    /// in the middle never mixes two tables in one message.
    pub table: Arc<ContactsTable>,
    /// Bytes of BDAT chunks received so far.
    pub message: Vec<u8>,
    /// A BDAT chunk of this transaction was refused: discard the rest until LAST.
    pub bdat_failed: bool,
}

/// What the client called itself, and whether it used EHLO.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The EHLO/HELO argument.
    pub name: String,
    /// EHLO (extended) rather than HELO.
    pub extended: bool,
}
