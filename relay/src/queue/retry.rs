//! When to try again: `queue.retry_schedule` (the last interval repeats), spread with
//! jitter so that a next hop coming back is not hit by the whole queue at once.

use std::hash::{BuildHasher, Hash};
use std::time::Duration;

/// The delay before attempt number `attempts + 1`, given `attempts` failed ones (≥ 1).
pub fn next_delay(schedule: &[Duration], attempts: u32, seed: impl Hash) -> Duration {
    let base = schedule
        .get((attempts as usize).saturating_sub(1))
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(60));
    // ±10 %, different per message and per process (RandomState is seeded randomly).
    let h = std::collections::hash_map::RandomState::new().hash_one(&seed);
    let spread = (h % 2001) as f64 / 1000.0 - 1.0; // -1.0 ..= 1.0
    base.mul_f64(1.0 + 0.1 * spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_and_repeats_the_last_interval() {
        let s = [Duration::from_secs(60), Duration::from_secs(300)];
        let near = |d: Duration, secs: f64| (d.as_secs_f64() - secs).abs() <= secs * 0.1 + 1e-9;
        assert!(near(next_delay(&s, 1, "a"), 60.0));
        assert!(near(next_delay(&s, 2, "a"), 300.0));
        assert!(near(next_delay(&s, 9, "a"), 300.0));
    }

    #[test]
    fn jitter_spreads_messages() {
        let s = [Duration::from_secs(1000)];
        let delays: std::collections::BTreeSet<u128> =
            (0..50).map(|i| next_delay(&s, 1, i).as_millis()).collect();
        assert!(delays.len() > 10, "spread: {delays:?}");
    }
}
