//! The spool: room to accept mail, damaged files, and how far behind delivery is.
//!
//! Read only and without the spool's lock, so it works beside a running relay
//! (a message delivered meanwhile just drops out of the count).

use super::Check;
use crate::config::Config;
use crate::queue::spool::Spool;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
/// Below this the relay soon answers `452 4.3.1` to everyone: fail.
const FAIL_FREE: u64 = 100 * MIB;
/// Below this, or below [`WARN_FREE_PERCENT`] of the file system: warn.
const WARN_FREE: u64 = GIB;
const WARN_FREE_PERCENT: u64 = 10;
/// A message older than this means some next hop has been refusing it a while.
const WARN_AGE: Duration = Duration::from_secs(3600);

/// Free space, `corrupt/`, queue size and age.
pub(super) fn check(config: &Config) -> Vec<Check> {
    let dir = &config.server.spool_dir;
    let mut checks = vec![free_space_of(dir)];
    if !dir.join("queue").is_dir() {
        checks.push(Check::ok(
            "queue",
            format!(
                "empty: no spool in {} yet (created on first start)",
                dir.display()
            ),
        ));
        return checks;
    }
    checks.push(corrupt(&dir.join("corrupt")));
    let now = chrono::Utc::now().timestamp();
    checks.push(match Spool::scan(dir) {
        Ok(envelopes) => {
            let oldest = envelopes.iter().map(|e| e.received_at).min();
            let age = oldest.map(|t| Duration::from_secs(now.saturating_sub(t).max(0) as u64));
            queue(envelopes.len(), age, config.queue.max_lifetime)
        }
        Err(e) => Check::fail(
            "queue",
            format!("cannot read the queue: {e}"),
            "run doctor as the relay's user, and check the spool folder's ownership",
        ),
    });
    checks
}

/// `statvfs` of the spool folder, or of its nearest existing parent.
fn free_space_of(dir: &Path) -> Check {
    let what = format!("spool free space ({})", dir.display());
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    match rustix::fs::statvfs(existing) {
        Ok(st) => free_space(&what, st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize),
        Err(e) => Check::fail(
            what,
            format!("cannot statvfs {}: {e}", existing.display()),
            "check that the spool folder exists and is reachable",
        ),
    }
}

/// Free bytes (for unprivileged users) against the thresholds.
pub(super) fn free_space(what: &str, avail: u64, total: u64) -> Check {
    let percent = (avail.saturating_mul(100))
        .checked_div(total)
        .unwrap_or(100);
    let detail = format!("{} free ({percent} %)", human(avail));
    let fix = "free space on that file system or move the spool to a bigger one: \
               when it fills, the relay answers 452 4.3.1 and senders queue mail on their side";
    if avail < FAIL_FREE {
        Check::fail(what, detail, fix)
    } else if avail < WARN_FREE || percent < WARN_FREE_PERCENT {
        Check::warn(what, detail, fix)
    } else {
        Check::ok(what, detail)
    }
}

fn corrupt(dir: &Path) -> Check {
    let count = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().count())
        .unwrap_or(0);
    if count == 0 {
        Check::ok("spool corrupt/", "empty")
    } else {
        Check::warn(
            "spool corrupt/",
            format!("{count} damaged file(s) moved out of the queue at start"),
            format!(
                "look at them in {}: each may be a message that was acknowledged; \
                 re-send what can be recovered, then delete them",
                dir.display()
            ),
        )
    }
}

/// Queue size and the age of the oldest message.
pub(super) fn queue(count: usize, oldest: Option<Duration>, max_lifetime: Duration) -> Check {
    let Some(age) = oldest else {
        return Check::ok("queue", "empty");
    };
    let detail = format!("{count} message(s), oldest {}", human_duration(age));
    let fix =
        "see why with `coexist-relay queue list` (last error per recipient) and fix the next hop; \
               `coexist-relay queue flush` retries at once";
    if age > max_lifetime / 2 {
        Check::fail(
            "queue",
            format!(
                "{detail}: past half of queue.max_lifetime ({}), after which it bounces",
                human_duration(max_lifetime)
            ),
            fix,
        )
    } else if age > WARN_AGE {
        Check::warn("queue", detail, fix)
    } else {
        Check::ok("queue", detail)
    }
}

fn human(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
