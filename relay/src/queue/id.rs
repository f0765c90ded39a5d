//! Queue ids: short, sortable by time, unique across restarts and processes.
//!
//! An id is 80 bits written as 16 characters of Crockford base32 (digits and
//! upper-case letters without I, L, O, U), so it is safe in a file name, in a
//! `Received:` header (RFC 5321 §4.4 `id` clause) and on a case-insensitive
//! file system, and sorts in ASCII order exactly as the number does:
//!
//! | bits | what |
//! | --- | --- |
//! | 45 | milliseconds since the Unix epoch (good until the year 3084) |
//! | 13 | sequence within that millisecond |
//! | 22 | process id (Linux `pid_max` is at most 2^22) |
//!
//! The first 58 bits form a logical clock: never less than the wall clock and
//! strictly increasing within a process, so ids from one process are unique and
//! ordered even when more than 8192 are made in one millisecond (the clock then
//! borrows from the next millisecond) or the wall clock steps back. The pid
//! separates processes running at the same time; [`IdGenerator::observe`]
//! lets the spool seed the clock with the ids it finds on disk, so a restart
//! with a clock set back (and a recycled pid) cannot reuse an id still queued.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base32 alphabet; ASCII order equals digit order.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Length of an id in characters (16 × 5 = 80 bits).
pub const ID_LEN: usize = 16;
const SEQ_BITS: u32 = 13;
const PID_BITS: u32 = 22;

/// Makes queue ids; shared by every session of a process.
#[derive(Debug)]
pub struct IdGenerator {
    /// Last logical clock value handed out: `(milliseconds << SEQ_BITS) | sequence`.
    last: Mutex<u64>,
    pid: u64,
}

impl IdGenerator {
    /// A generator for this process.
    pub fn new() -> Self {
        Self::with_pid(std::process::id())
    }

    fn with_pid(pid: u32) -> Self {
        IdGenerator {
            last: Mutex::new(0),
            pid: u64::from(pid) & ((1 << PID_BITS) - 1),
        }
    }

    /// A new id, greater than every id this generator made or observed.
    pub fn next(&self) -> String {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let clock = {
            // A poisoned lock only means another thread panicked between two
            // integer operations; the value is still a valid clock.
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            *last = (now_ms << SEQ_BITS).max(*last + 1);
            *last
        };
        encode((u128::from(clock) << PID_BITS) | u128::from(self.pid))
    }

    /// Moves the clock past `id` (an id found in the spool), so ids made
    /// from now on sort after it and can never equal it.
    pub fn observe(&self, id: &str) {
        if let Some(value) = decode(id) {
            let clock = (value >> PID_BITS) as u64;
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            *last = (*last).max(clock);
        }
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `s` has the form of a queue id (and so cannot name anything but
/// a file directly inside the queue folder).
pub fn is_valid(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

fn encode(value: u128) -> String {
    (0..ID_LEN)
        .rev()
        .map(|i| char::from(ALPHABET[((value >> (5 * i)) & 31) as usize]))
        .collect()
}

fn decode(id: &str) -> Option<u128> {
    if !is_valid(id) {
        return None;
    }
    id.bytes().try_fold(0u128, |acc, b| {
        let digit = ALPHABET.iter().position(|&a| a == b)?;
        Some((acc << 5) | digit as u128)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_sorted_and_well_formed() {
        let ids = IdGenerator::new();
        let made: Vec<String> = (0..100_000).map(|_| ids.next()).collect();
        assert!(made.iter().all(|id| is_valid(id)), "{}", made[0]);
        assert!(
            made.windows(2).all(|w| w[0] < w[1]),
            "not strictly increasing"
        );
        let unique: HashSet<&String> = made.iter().collect();
        assert_eq!(unique.len(), made.len());
    }

    #[test]
    fn ids_from_many_threads_are_unique() {
        let ids = IdGenerator::new();
        let all: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..10_000).map(|_| ids.next()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 40_000);
    }

    #[test]
    fn processes_differ_by_pid() {
        let a = IdGenerator::with_pid(100).next();
        let b = IdGenerator::with_pid(101).next();
        assert_ne!(a, b);
        // Same millisecond prefix is likely; the pid bits make them differ.
        assert_ne!(a[ID_LEN - 5..], b[ID_LEN - 5..]);
    }

    #[test]
    fn id_carries_the_time() {
        let id = IdGenerator::new().next();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let t = (decode(&id).expect("valid") >> (PID_BITS + SEQ_BITS)) as u64;
        assert!(
            t <= now_ms && now_ms - t < 10_000,
            "time bits {t} vs {now_ms}"
        );
    }

    #[test]
    fn observe_moves_the_clock_past_a_future_id() {
        let ids = IdGenerator::with_pid(7);
        // An id from a clock far in the future (as after the wall clock stepped back).
        let future = encode(((u128::from(u64::MAX >> 20)) << PID_BITS) | 7);
        ids.observe(&future);
        let next = ids.next();
        assert!(next > future, "{next} <= {future}");
    }

    #[test]
    fn validation_rejects_paths_and_other_names() {
        for bad in [
            "",
            "../../etc/passwd",
            "0123456789ABCDE",
            "0123456789ABCDEFG",
            "0123456789abcdef",
            "0123456789ABCDE/",
            "0123456789ABCDEI",
        ] {
            assert!(!is_valid(bad), "{bad:?} accepted");
        }
        assert!(is_valid("0123456789ABCDEF"));
    }
}
