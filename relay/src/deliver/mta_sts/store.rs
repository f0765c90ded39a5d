//! MTA-STS policies cached in the spool folder (`<spool>/mta-sts/<domain>.json`),
//! so a restarted relay keeps enforcing what it learnt (RFC 8461 §5.1: a policy
//! is trusted until its `max_age` runs out, whatever DNS says meanwhile).
//!
//! Each file is typed data (serde), replaced atomically; the policy text is
//! stored as fetched and parsed again on load.

use crate::safeio;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One cached policy, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The domain (lower case).
    pub domain: String,
    /// The TXT record's `id` the policy was fetched for.
    pub id: String,
    /// When it was fetched, Unix seconds.
    pub fetched_at: i64,
    /// The policy body as served.
    pub body: String,
}

/// The folder of cached policies.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Policies under `spool_dir/mta-sts`.
    pub fn new(spool_dir: &Path) -> Store {
        Store {
            dir: spool_dir.join("mta-sts"),
        }
    }

    fn path(&self, domain: &str) -> PathBuf {
        // Domains are checked host names (letters, digits, '-', '.'), so the
        // name is a safe file name.
        self.dir.join(format!("{domain}.json"))
    }

    /// The stored policy of `domain`, if any (an unreadable file counts as none).
    pub fn load(&self, domain: &str) -> Option<Stored> {
        let bytes = std::fs::read(self.path(domain)).ok()?;
        match serde_json::from_slice::<Stored>(&bytes) {
            Ok(s) if s.domain == domain => Some(s),
            Ok(_) | Err(_) => {
                tracing::warn!(domain, "ignoring an unreadable cached MTA-STS policy");
                None
            }
        }
    }

    /// Replaces the stored policy of its domain.
    pub fn save(&self, stored: &Stored) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let json = serde_json::to_vec_pretty(stored).map_err(|e| e.to_string())?;
        safeio::replace(
            &self.path(&stored.domain),
            &json,
            safeio::Mode::Fixed(0o644),
        )
        .map_err(|e| e.to_string())
    }
}

/// Whether `domain` is safe as a file name (what `Store` relies on).
pub fn is_plain_domain(domain: &str) -> bool {
    !domain.is_empty()
        && !domain.starts_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let stored = Stored {
            domain: "example.test".into(),
            id: "20261202".into(),
            fetched_at: 1_800_000_000,
            body: "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n".into(),
        };
        Store::new(dir.path()).save(&stored).unwrap();
        assert_eq!(Store::new(dir.path()).load("example.test"), Some(stored));
        assert_eq!(Store::new(dir.path()).load("other.test"), None);
        assert!(is_plain_domain("mx.example.test"));
        assert!(!is_plain_domain("../etc"));
    }
}
