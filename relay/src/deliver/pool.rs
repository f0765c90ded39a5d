//! Idle sessions kept for reuse, and the per-next-hop concurrency cap.
//!
//! A session is pooled under its next hop address *and* the policy it was
//! opened with: a session negotiated for an `opportunistic` route must not
//! carry mail of a `verify` route to the same address. Idle sessions are
//! closed (QUIT) after `idle_timeout`; the reaper task ends with the pool.

use super::client::Session;
use crate::config::OutboundTls;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a pooled session must match to be reused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The route: routes differ in client certificate and trust anchors.
    pub route: String,
    /// Next hop address.
    pub addr: SocketAddr,
    /// Host name it was reached under (the name a `verify` certificate matched).
    pub host: String,
    /// TLS policy the session was opened under.
    pub policy: u8,
    /// EHLO name it introduced itself with.
    pub helo: String,
}

impl PoolKey {
    /// The key for a session of `route` to `addr` under `host` with `policy` and `helo`.
    pub fn new(
        route: &str,
        addr: SocketAddr,
        host: &str,
        policy: OutboundTls,
        helo: &str,
    ) -> PoolKey {
        PoolKey {
            route: route.to_string(),
            addr,
            host: host.to_string(),
            // `OutboundTls` is not `Hash` (config types are shared); a stable
            // small number stands in for it.
            policy: match policy {
                OutboundTls::None => 0,
                OutboundTls::Opportunistic => 1,
                OutboundTls::Required => 2,
                OutboundTls::Verify => 3,
                OutboundTls::Dane => 4,
            },
            helo: helo.to_string(),
        }
    }
}

struct Idle {
    since: Instant,
    session: Session,
}

/// The pool.
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    limits: Mutex<HashMap<SocketAddr, Arc<Semaphore>>>,
    per_host: usize,
    idle_timeout: Duration,
    reaper: AtomicBool,
    opened: AtomicUsize,
}

impl Pool {
    /// A pool allowing `per_host` concurrent transactions per next hop address.
    pub fn new(per_host: usize, idle_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            per_host: per_host.max(1),
            idle_timeout,
            reaper: AtomicBool::new(false),
            opened: AtomicUsize::new(0),
        })
    }

    /// Waits for a transaction slot at `addr` (`queue.per_host_concurrency`).
    pub async fn permit(&self, addr: SocketAddr) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
            limits
                .entry(addr)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        semaphore
            .acquire_owned()
            .await
            .expect("the pool never closes its semaphores")
    }

    /// The most recently used idle session for `key`, if one is still fresh.
    pub fn take(&self, key: &PoolKey) -> Option<Session> {
        let mut expired = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = idle.get_mut(key)?;
            let mut found = None;
            while let Some(entry) = list.pop() {
                if entry.since.elapsed() < self.idle_timeout {
                    found = Some(entry.session);
                    break;
                }
                expired.push(entry.session);
            }
            found
        };
        close_all(expired);
        found
    }

    /// Keeps `session` for reuse (or closes it when enough are idle already).
    pub fn put(self: &Arc<Self>, key: PoolKey, session: Session) {
        let overflow = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = idle.entry(key).or_default();
            if list.len() >= self.per_host {
                Some(session)
            } else {
                list.push(Idle {
                    since: Instant::now(),
                    session,
                });
                None
            }
        };
        if let Some(session) = overflow {
            close_all(vec![session]);
        }
        if !self.reaper.swap(true, Ordering::AcqRel) {
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }

    /// Counts a newly opened connection (for tests and the log).
    pub fn count_open(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections opened so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Closes every idle session (shutdown).
    pub fn close_idle(&self) {
        let all: Vec<Session> = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.drain()
                .flat_map(|(_, v)| v.into_iter().map(|i| i.session))
                .collect()
        };
        close_all(all);
    }

    fn expire(&self) {
        let expired: Vec<Session> = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let mut expired = Vec::new();
            for list in idle.values_mut() {
                let (keep, old): (Vec<Idle>, Vec<Idle>) = list
                    .drain(..)
                    .partition(|i| i.since.elapsed() < self.idle_timeout);
                *list = keep;
                expired.extend(old.into_iter().map(|i| i.session));
            }
            idle.retain(|_, v| !v.is_empty());
            expired
        };
        close_all(expired);
    }
}

/// QUIT in the background: nobody waits for a goodbye.
fn close_all(sessions: Vec<Session>) {
    // Outside a runtime (a pool dropped at exit) the sockets just close.
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for s in sessions {
        rt.spawn(s.quit());
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close_idle();
    }
}

/// Closes expired idle sessions until the pool is gone.
async fn reap(pool: Weak<Pool>, idle_timeout: Duration) {
    let mut tick = tokio::time::interval((idle_timeout / 2).max(Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.expire(),
            None => return,
        }
    }
}
