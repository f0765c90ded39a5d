//! Per-client rate limits (`limits.max_connections_per_minute_per_ip`,
//! `limits.max_messages_per_minute_per_ip`), like Postfix's anvil: a count per client
//! address over a one-minute window. 0 disables a limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Prune idle entries when the table grows past this many clients.
const PRUNE_AT: usize = 4096;

/// Counts events per client address in one-minute windows.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: u32,
    clients: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimit {
    /// A limit of `per_minute` events per client (0 = unlimited).
    pub fn new(per_minute: u32) -> Self {
        RateLimit {
            per_minute,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Records one event for `ip`; false when it is over the limit (not counted then).
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= PRUNE_AT {
            clients.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = clients.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_client_and_window() {
        let r = RateLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Instant::now();
        assert!(r.allow_at(a, t));
        assert!(r.allow_at(a, t));
        assert!(!r.allow_at(a, t), "third in the window");
        assert!(r.allow_at(b, t), "other client unaffected");
        assert!(r.allow_at(a, t + WINDOW), "new window");
    }

    #[test]
    fn zero_is_unlimited() {
        let r = RateLimit::new(0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..10_000).all(|_| r.allow(a)));
    }
}
