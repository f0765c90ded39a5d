//! Shared pieces of the coexist benchmarks: the SMTP load generator
//! (`smtp-load`), the recording sink (`bench-sink`) and the contacts-table load
//! benchmark (`contacts-load`). `bench/compare` drives them; results go to
//! `bench/RESULTS.md`.
//!
//! Layout:
//! - [`tls`]: a client config that accepts any certificate (the relays under test
//!   use self-signed ones) and a self-signed server config for the sink.
//! - [`wire`]: reading one (possibly multi-line) SMTP reply.
//! - [`workload`]: the message and recipient generator shared by every target.

#![forbid(unsafe_code)]

pub mod tls;
pub mod wire;
pub mod workload;

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in nanoseconds since the Unix epoch. Generator and sinks run on
/// the same machine, so their timestamps compare directly.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Parses a size such as `4096`, `4KiB`, `100KiB`, `10MiB`, `2MB`.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KB" | "k" => 1000,
        "KiB" | "K" => 1024,
        "MB" => 1_000_000,
        "MiB" | "M" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("4KiB"), Some(4096));
        assert_eq!(parse_size("10MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("1500"), Some(1500));
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("3 parsecs"), None);
    }
}
