//! May this client, this command, this recipient proceed? The data flow's
//! listener → session → **policy** → router step, in one room: connection caps
//! and rates, TLS before MAIL, the message rate, SIZE and the recipient cap,
//! and relay access (the router's answer turned into a refusal).
//!
//! Every "no" is a [`Refusal`], which knows its reply and its metric reason.
//!
//! - [`connections`]: open-connection caps, total and per address.
//! - [`rate`]: per-address rates over a one-minute window (Postfix's anvil).
//! - [`refusal`]: the refusals, their replies and reasons.

pub mod connections;
pub mod rate;
pub mod refusal;

use crate::config::Limits;
use crate::route::router::RouteError;
use connections::{ConnectionLimits, ConnectionSlot};
use rate::RateLimit;
pub use refusal::Refusal;
use std::net::IpAddr;
use std::sync::Arc;

/// The relay's admission policy, built once from `[limits]` and shared by
/// every listener and session.
#[derive(Debug)]
pub struct Policy {
    connections: Arc<ConnectionLimits>,
    connection_rate: RateLimit,
    message_rate: RateLimit,
    max_message_size: u64,
    max_recipients: usize,
}

impl Policy {
    /// The policy of `[limits]`.
    pub fn new(limits: &Limits) -> Policy {
        Policy {
            connections: ConnectionLimits::new(
                limits.max_connections,
                limits.max_connections_per_ip,
            ),
            connection_rate: RateLimit::new(limits.max_connections_per_minute_per_ip),
            message_rate: RateLimit::new(limits.max_messages_per_minute_per_ip),
            max_message_size: limits.max_message_size,
            max_recipients: limits.max_recipients,
        }
    }

    /// A new connection from `client`: within the connection rate, then within
    /// the caps. The slot is held while the connection is open. RFC 5321 §3.1
    /// allows `421` instead of the greeting.
    pub fn admit(&self, client: IpAddr) -> Result<ConnectionSlot, Refusal> {
        if !self.connection_rate.allow(client) {
            return Err(Refusal::ConnectionRate);
        }
        self.connections
            .acquire(client)
            .ok_or(Refusal::TooManyConnections)
    }

    /// MAIL FROM on a listener that may `require_tls`, before or after STARTTLS,
    /// with the SIZE the client declared (0 = none).
    pub fn mail(
        &self,
        require_tls: bool,
        tls_active: bool,
        client: IpAddr,
        declared_size: u64,
    ) -> Result<(), Refusal> {
        if require_tls && !tls_active {
            return Err(Refusal::TlsRequired);
        }
        if !self.message_rate.allow(client) {
            return Err(Refusal::MessageRate);
        }
        // RFC 1870 §6.2: a declared SIZE over the limit is refused before any data.
        self.size(declared_size)
    }

    /// One more RCPT after `accepted` recipients (RFC 5321 §4.5.3.1.10: `452`,
    /// the client sends the rest in another transaction).
    pub fn recipient(&self, accepted: usize) -> Result<(), Refusal> {
        if accepted >= self.max_recipients {
            return Err(Refusal::TooManyRecipients);
        }
        Ok(())
    }

    /// A message (or the part of it received so far) of `size` bytes.
    pub fn size(&self, size: u64) -> Result<(), Refusal> {
        if size > self.max_message_size {
            return Err(Refusal::TooLarge {
                limit: self.max_message_size,
            });
        }
        Ok(())
    }

    /// The largest message accepted, in bytes (advertised as SIZE).
    pub fn max_message_size(&self) -> u64 {
        self.max_message_size
    }

    /// Relay access: the router's answer for one recipient, as a refusal.
    pub fn relay(error: &RouteError) -> Refusal {
        match error {
            RouteError::RelayDenied => Refusal::RelayDenied,
            RouteError::BadAddress(_) => Refusal::BadRecipient,
            RouteError::NoSnapshot => Refusal::NoRoutingSnapshot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(edit: impl FnOnce(&mut Limits)) -> Policy {
        let mut limits = Limits::default();
        edit(&mut limits);
        Policy::new(&limits)
    }

    #[test]
    fn connections_are_refused_by_rate_before_caps() {
        let p = policy(|l| {
            l.max_connections_per_minute_per_ip = 2;
            l.max_connections_per_ip = 1;
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let slot = p.admit(ip).unwrap();
        assert_eq!(p.admit(ip).unwrap_err(), Refusal::TooManyConnections);
        drop(slot);
        assert_eq!(p.admit(ip).unwrap_err(), Refusal::ConnectionRate);
    }

    #[test]
    fn mail_checks_tls_then_rate_then_size() {
        let p = policy(|l| {
            l.max_messages_per_minute_per_ip = 1;
            l.max_message_size = 100;
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(p.mail(true, false, ip, 0), Err(Refusal::TlsRequired));
        assert_eq!(
            p.mail(true, true, ip, 101),
            Err(Refusal::TooLarge { limit: 100 })
        );
        assert_eq!(p.mail(false, false, ip, 100), Err(Refusal::MessageRate));
        assert_eq!(p.recipient(499), Ok(()));
        assert_eq!(
            policy(|_| {}).recipient(500),
            Err(Refusal::TooManyRecipients)
        );
    }
}
