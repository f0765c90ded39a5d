//! Every way the relay refuses a client, a command or a recipient, with the one
//! reply and the one metric reason that go with it.

use crate::metrics::RejectReason;
use crate::smtp::reply::Reply;

/// A refusal: what the client is told ([`Refusal::reply`]) and what
/// `coexist_recipients_rejected_total{reason}` counts ([`Refusal::reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// More new connections from this address in the last minute than
    /// `limits.max_connections_per_minute_per_ip`.
    ConnectionRate,
    /// `limits.max_connections` or `max_connections_per_ip` reached.
    TooManyConnections,
    /// More errors in this session than `limits.max_errors`.
    TooManyErrors,
    /// A command out of order (RFC 5321 §4.1.4); the text says which.
    BadSequence(&'static str),
    /// MAIL before STARTTLS on a listener with `require_tls` (RFC 3207 §4).
    TlsRequired,
    /// More messages from this address in the last minute than
    /// `limits.max_messages_per_minute_per_ip`.
    MessageRate,
    /// The declared SIZE or the message itself is over `limits.max_message_size`.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A non-ASCII address without SMTPUTF8 (RFC 6531 §3.2).
    NeedsSmtputf8,
    /// The MAIL FROM path is not an address.
    BadSender,
    /// The RCPT TO path is not an address.
    BadRecipient,
    /// `limits.max_recipients` reached in this transaction.
    TooManyRecipients,
    /// Not one of our domains and the client may not relay.
    RelayDenied,
    /// A bare LF or CR with `bare_newline = "reject"`.
    BareNewline,
    /// More `Received:` fields than `limits.max_received_headers`: a loop.
    MailLoop,
    /// The spool could not store the message.
    SpoolFailed,
    /// An accepted-domain recipient while no routing snapshot is loaded yet
    /// (directory source, no cache): it may be a migrated user.
    NoRoutingSnapshot,
    /// The spool's disk (or quota) is full.
    SpoolFull,
}

impl Refusal {
    /// The reply (DESIGN.md "SMTP replies").
    pub fn reply(&self) -> Reply {
        match self {
            Refusal::ConnectionRate => Reply::connection_rate(),
            Refusal::TooManyConnections => Reply::too_many_connections(),
            Refusal::TooManyErrors => Reply::too_many_errors(),
            Refusal::BadSequence(text) => Reply::bad_sequence(text),
            Refusal::TlsRequired => Reply::tls_required(),
            Refusal::MessageRate => Reply::message_rate(),
            Refusal::TooLarge { limit } => Reply::too_large(*limit),
            Refusal::NeedsSmtputf8 => Reply::needs_smtputf8(),
            Refusal::BadSender => Reply::bad_sender(),
            Refusal::BadRecipient => Reply::bad_recipient(),
            Refusal::TooManyRecipients => Reply::too_many_recipients(),
            Refusal::RelayDenied => Reply::relay_denied(),
            Refusal::BareNewline => Reply::bare_newline(),
            Refusal::MailLoop => Reply::mail_loop(),
            Refusal::SpoolFailed => Reply::spool_failed(),
            Refusal::NoRoutingSnapshot => Reply::no_routing_snapshot(),
            Refusal::SpoolFull => Reply::spool_full(),
        }
    }

    /// The `reason` label it is counted under.
    pub fn reason(&self) -> RejectReason {
        match self {
            Refusal::ConnectionRate | Refusal::MessageRate => RejectReason::Rate,
            Refusal::TooManyConnections => RejectReason::Connections,
            Refusal::BadSequence(_) => RejectReason::Sequence,
            Refusal::TlsRequired => RejectReason::TlsRequired,
            Refusal::TooLarge { .. } => RejectReason::Size,
            Refusal::TooManyRecipients => RejectReason::Recipients,
            Refusal::RelayDenied => RejectReason::RelayDenied,
            Refusal::MailLoop => RejectReason::Loop,
            Refusal::SpoolFailed | Refusal::SpoolFull => RejectReason::Spool,
            Refusal::NoRoutingSnapshot => RejectReason::Routing,
            Refusal::TooManyErrors
            | Refusal::NeedsSmtputf8
            | Refusal::BadSender
            | Refusal::BadRecipient
            | Refusal::BareNewline => RejectReason::Syntax,
        }
    }

    /// Counts it; returns its reply.
    pub fn counted(&self) -> Reply {
        crate::metrics::metrics().reject(self.reason());
        self.reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enhanced_code::EnhancedCode;

    #[test]
    fn replies_follow_the_table() {
        let wire = |r: Refusal| {
            let reply = r.reply();
            (reply.code, reply.enhanced)
        };
        assert_eq!(
            wire(Refusal::RelayDenied),
            (554, Some(EnhancedCode::new(5, 7, 1)))
        );
        assert_eq!(
            wire(Refusal::TooLarge { limit: 1 }),
            (552, Some(EnhancedCode::new(5, 3, 4)))
        );
        assert_eq!(
            wire(Refusal::TooManyRecipients),
            (452, Some(EnhancedCode::new(4, 5, 3)))
        );
        assert_eq!(
            wire(Refusal::MailLoop),
            (554, Some(EnhancedCode::new(5, 4, 6)))
        );
        assert_eq!(
            wire(Refusal::BareNewline),
            (550, Some(EnhancedCode::new(5, 6, 0)))
        );
        assert_eq!(
            wire(Refusal::TlsRequired),
            (530, Some(EnhancedCode::new(5, 7, 0)))
        );
        assert_eq!(
            wire(Refusal::TooManyConnections),
            (421, Some(EnhancedCode::new(4, 7, 0)))
        );
        assert_eq!(
            wire(Refusal::MessageRate),
            (450, Some(EnhancedCode::new(4, 7, 1)))
        );
        assert_eq!(
            wire(Refusal::SpoolFailed),
            (451, Some(EnhancedCode::new(4, 3, 0)))
        );
        assert_eq!(
            wire(Refusal::NoRoutingSnapshot),
            (451, Some(EnhancedCode::new(4, 3, 0)))
        );
        assert_eq!(
            wire(Refusal::SpoolFull),
            (452, Some(EnhancedCode::new(4, 3, 1)))
        );
        assert_eq!(
            wire(Refusal::TooManyErrors),
            (421, Some(EnhancedCode::new(4, 7, 0)))
        );
    }
}
