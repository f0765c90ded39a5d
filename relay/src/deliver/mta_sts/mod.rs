//! MTA-STS (RFC 8461) for MX routes: which policy a recipient domain has now.
//!
//! - `fetch`: the HTTPS policy fetch, bounded in size and time.
//! - `store`: the policies cached in the spool folder across restarts.
//!
//! The TXT record, the policy text and MX matching are parsed by the
//! `mailrs-mta-sts` crate (no I/O). What happens here is RFC 8461 §5.1's
//! procedure: look up `_mta-sts.<domain>`; a cached policy whose `id` is the
//! record's and whose `max_age` has not run out is used as it is; otherwise
//! the policy is fetched (the first message to the domain waits for it). A
//! failed fetch, a missing TXT record or a DNS failure keep a cached policy
//! until its `max_age` runs out; with nothing cached there is no policy.

mod fetch;
pub mod store;

use crate::deliver::mx::Resolver;
use hickory_resolver::proto::rr::{RData, RecordType};
use mailrs_mta_sts::{Policy, PolicyMode, StsRecord};
use rustls::RootCertStore;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use store::{Store, Stored};

/// RFC 8461 §3.3: the policy host serves HTTPS on the standard port.
const HTTPS_PORT: u16 = 443;

/// The mode of a policy in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only matching MX hosts, with a valid certificate for their name.
    Enforce,
    /// Deliver as usual; log what enforce would have refused.
    Testing,
}

impl Mode {
    /// `enforce` or `testing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
        }
    }
}

/// A domain's policy in force (mode `none` is no policy at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePolicy {
    /// The domain.
    pub domain: String,
    /// enforce or testing.
    pub mode: Mode,
    /// The `mx:` patterns (lower case; `*.` wildcards match one label).
    pub mx: Vec<String>,
    /// The record id it was fetched for.
    pub id: String,
    /// When it stops being trusted, Unix seconds.
    pub expires_at: i64,
}

impl ActivePolicy {
    /// Whether the MX host name `host` is one the policy allows (RFC 8461 §4.1).
    pub fn allows(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mailrs_mta_sts::mx_matches(host, p))
    }
}

/// What the lookup found, for `route` and `doctor` to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No MTA-STS record and nothing cached (or a `none` policy).
    NoPolicy,
    /// A policy in force.
    Policy(ActivePolicy),
}

/// A parsed cache entry.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    fetched_at: i64,
    policy: Policy,
}

impl Entry {
    fn from_stored(s: &Stored) -> Option<Entry> {
        Some(Entry {
            id: s.id.clone(),
            fetched_at: s.fetched_at,
            policy: Policy::parse(&s.body).ok()?,
        })
    }

    fn expires_at(&self) -> i64 {
        self.fetched_at
            .saturating_add(i64::try_from(self.policy.max_age).unwrap_or(i64::MAX))
    }

    fn fresh(&self, now: i64) -> bool {
        now < self.expires_at()
    }

    fn active(&self, domain: &str) -> Lookup {
        let mode = match self.policy.mode {
            PolicyMode::Enforce => Mode::Enforce,
            PolicyMode::Testing => Mode::Testing,
            // RFC 8461 §5: "none" means no policy.
            PolicyMode::None => return Lookup::NoPolicy,
        };
        Lookup::Policy(ActivePolicy {
            domain: domain.to_string(),
            mode,
            mx: self.policy.mx.iter().map(|m| m.to_string()).collect(),
            id: self.id.clone(),
            expires_at: self.expires_at(),
        })
    }
}

/// The TXT lookup's answer.
enum Record {
    /// Exactly one `v=STSv1` record, with this id.
    Id(String),
    /// None (or several: RFC 8461 §3.1 treats that as none).
    Absent,
    /// The lookup failed (SERVFAIL, timeout).
    Failed(String),
}

/// Policies per domain: in memory, backed by the spool folder.
pub struct MtaSts {
    store: Store,
    cache: Mutex<HashMap<String, Entry>>,
    port: u16,
    /// Never write the spool folder (`route`, `doctor`: they only look).
    read_only: bool,
}

impl MtaSts {
    /// Policies cached under `spool_dir`.
    pub fn new(spool_dir: &Path) -> MtaSts {
        MtaSts {
            store: Store::new(spool_dir),
            cache: Mutex::new(HashMap::new()),
            port: HTTPS_PORT,
            read_only: false,
        }
    }

    /// Like [`MtaSts::new`], but a fetched policy is not written to the spool
    /// folder (for commands that only look).
    pub fn read_only(spool_dir: &Path) -> MtaSts {
        MtaSts {
            read_only: true,
            ..MtaSts::new(spool_dir)
        }
    }

    /// The policy of `domain` now, fetching it when needed; `roots` anchor the fetch.
    pub async fn lookup(
        &self,
        resolver: &Resolver,
        domain: &str,
        roots: Arc<RootCertStore>,
    ) -> Lookup {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !store::is_plain_domain(&domain) {
            return Lookup::NoPolicy;
        }
        let now = chrono::Utc::now().timestamp();
        let cached = self.cached(&domain).filter(|e| e.fresh(now));
        let id = match txt_record(resolver, &domain).await {
            Record::Id(id) => id,
            Record::Absent => return cached.map_or(Lookup::NoPolicy, |e| e.active(&domain)),
            Record::Failed(e) => {
                tracing::info!(domain, error = %e, "MTA-STS TXT lookup failed; using the cached policy, if any");
                return cached.map_or(Lookup::NoPolicy, |e| e.active(&domain));
            }
        };
        if let Some(entry) = cached.as_ref().filter(|e| e.id == id) {
            return entry.active(&domain);
        }
        match self.refresh(resolver, &domain, &id, roots, now).await {
            Ok(entry) => entry.active(&domain),
            Err(e) => {
                tracing::warn!(domain, id, error = %e, "MTA-STS policy fetch failed; keeping the cached policy, if any");
                cached.map_or(Lookup::NoPolicy, |e| e.active(&domain))
            }
        }
    }

    /// The in-memory entry, or the one stored in the spool folder.
    fn cached(&self, domain: &str) -> Option<Entry> {
        if let Some(e) = self.cache.lock().expect("cache lock").get(domain) {
            return Some(e.clone());
        }
        let entry = Entry::from_stored(&self.store.load(domain)?)?;
        self.cache
            .lock()
            .expect("cache lock")
            .insert(domain.to_string(), entry.clone());
        Some(entry)
    }

    async fn refresh(
        &self,
        resolver: &Resolver,
        domain: &str,
        id: &str,
        roots: Arc<RootCertStore>,
        now: i64,
    ) -> Result<Entry, String> {
        let body = fetch::fetch(resolver, domain, roots, self.port).await?;
        let policy = Policy::parse(&body).map_err(|e| format!("policy of {domain}: {e}"))?;
        let entry = Entry {
            id: id.to_string(),
            fetched_at: now,
            policy,
        };
        let stored = Stored {
            domain: domain.to_string(),
            id: id.to_string(),
            fetched_at: now,
            body,
        };
        if self.read_only {
            // Looked at, not kept.
        } else if let Err(e) = self.store.save(&stored) {
            // Still in force from memory; only a restart would forget it.
            tracing::warn!(domain, error = %e, "could not cache the MTA-STS policy in the spool folder");
        }
        tracing::info!(domain, id, mode = ?entry.policy.mode, max_age = entry.policy.max_age, "MTA-STS policy fetched");
        self.cache
            .lock()
            .expect("cache lock")
            .insert(domain.to_string(), entry.clone());
        Ok(entry)
    }
}

/// `_mta-sts.<domain>` TXT (RFC 8461 §3.1).
async fn txt_record(resolver: &Resolver, domain: &str) -> Record {
    let name = format!("_mta-sts.{domain}.");
    let lookup = match resolver
        .hickory()
        .lookup(name.as_str(), RecordType::TXT)
        .await
    {
        Ok(l) => l,
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => return Record::Absent,
        Err(e) => return Record::Failed(e.to_string()),
    };
    let records: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        // RFC 8461 §3.1: records not starting with v=STSv1 are ignored.
        .filter(|t| t.trim_start().starts_with("v=STSv1"))
        .collect();
    match records.as_slice() {
        [one] => match StsRecord::parse(one) {
            Ok(r) => Record::Id(r.id.to_string()),
            Err(_) => Record::Absent,
        },
        _ => Record::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, fetched_at: i64, max_age: u64) -> Entry {
        let body =
            format!("version: STSv1\nmode: {mode}\nmx: mx.example.test\nmax_age: {max_age}\n");
        Entry::from_stored(&Stored {
            domain: "example.test".into(),
            id: "7".into(),
            fetched_at,
            body,
        })
        .expect("a valid policy")
    }

    #[test]
    fn a_policy_is_trusted_until_its_max_age_runs_out() {
        let e = entry("enforce", 1_000, 86_400);
        assert!(e.fresh(1_000 + 86_399));
        assert!(
            !e.fresh(1_000 + 86_400),
            "refetched once max_age has passed"
        );
        let Lookup::Policy(p) = e.active("example.test") else {
            panic!("enforce is a policy");
        };
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.expires_at, 1_000 + 86_400);
        assert!(p.allows("MX.example.test."));
        assert!(!p.allows("mx.other.test"));
    }

    #[test]
    fn mode_none_is_no_policy_and_garbage_is_not_cached() {
        assert_eq!(
            entry("none", 0, 86_400).active("example.test"),
            Lookup::NoPolicy
        );
        let bad = Stored {
            domain: "example.test".into(),
            id: "1".into(),
            fetched_at: 0,
            body: "<html>not a policy</html>".into(),
        };
        assert!(Entry::from_stored(&bad).is_none());
    }
}
