//! What one outbound transaction carries: the message and the group of its
//! recipients that goes to one next hop.

use crate::envelope::{BodyType, Notify, Ret};
use crate::message::Message;

/// One recipient of a transaction.
pub struct TxnRecipient<'a> {
    /// The address for RCPT TO (the rewritten one).
    pub address: &'a str,
    /// The address as the relay received it, sent as ORCPT when the client gave none.
    pub original: &'a str,
    /// DSN NOTIFY.
    pub notify: Notify,
    /// DSN ORCPT as received (address only, xtext decoded).
    pub orcpt: Option<&'a str>,
}

/// One message for one session.
pub struct Transaction<'a> {
    /// Envelope sender; empty for `<>`.
    pub sender: &'a str,
    /// BODY parameter.
    pub body: BodyType,
    /// SMTPUTF8 requested.
    pub smtputf8: bool,
    /// DSN RET.
    pub ret: Option<Ret>,
    /// DSN ENVID (decoded).
    pub envid: Option<&'a str>,
    /// Recipients.
    pub recipients: Vec<TxnRecipient<'a>>,
    /// The message, exactly as spooled.
    pub message: &'a Message,
}
