//! Sizes (`"35MiB"`) and durations (`"1h30m"`) as written in `relay.toml`.
//!
//! Units are case-sensitive on purpose: `"35 Mb"` could mean megabits, and a size
//! limit that is off by a factor of 8 is worse than a refused config.

use std::time::Duration;

/// A size or duration that does not parse; the message says what would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// Not a number of bytes with one of the size units.
    #[error("\"{0}\" is not a size; write bytes or a number with B, KB, MB, GB, KiB, MiB or GiB (e.g. \"35MiB\")")]
    NotASize(String),
    /// A size beyond `u64`.
    #[error("\"{0}\" is too large for a size")]
    SizeTooLarge(String),
    /// Not a sequence of numbers with duration units.
    #[error("\"{0}\" is not a duration; write a number with ms, s, m, h or d (e.g. \"30s\", \"5m\", \"1h30m\")")]
    NotADuration(String),
    /// A number with no unit: seconds or milliseconds would be a guess.
    #[error("\"{0}\" has no unit; write e.g. \"{0}s\" (units: ms, s, m, h, d)")]
    DurationWithoutUnit(String),
    /// A duration beyond what `Duration` can hold in milliseconds.
    #[error("\"{0}\" is too long for a duration")]
    DurationTooLong(String),
}

/// Size units and their multipliers: SI (1000-based) and IEC (1024-based).
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("kB", 1000),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("KiB", 1024),
    ("MiB", 1024 * 1024),
    ("GiB", 1024 * 1024 * 1024),
];

/// Duration units and their length in milliseconds.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1000),
    ("m", 60 * 1000),
    ("h", 60 * 60 * 1000),
    ("d", 24 * 60 * 60 * 1000),
];

/// Parses `"512"`, `"512B"`, `"10KB"`, `"100KiB"`, `"35 MiB"`, ... into bytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let not_a_size = || UnitError::NotASize(text.to_string());
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(not_a_size());
    }
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, m)| *m)
            .ok_or_else(not_a_size)?
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| UnitError::SizeTooLarge(text.to_string()))?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| UnitError::SizeTooLarge(text.to_string()))
}

/// A duration the way the config writes it: the largest unit that divides it
/// (`"5d"`, `"4h"`, `"90m"`, `"30s"`, `"500ms"`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"4h"`, `"5d"` and combinations such as
/// `"1h30m"` or `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let not_a_duration = || UnitError::NotADuration(text.to_string());
    let too_long = || UnitError::DurationTooLong(text.to_string());
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UnitError::DurationWithoutUnit(trimmed.to_string()));
    }
    let mut rest = trimmed;
    let mut total_ms: u64 = 0;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if digits.is_empty() || unit.is_empty() {
            return Err(not_a_duration());
        }
        let per_unit = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, ms)| *ms)
            .ok_or_else(not_a_duration)?;
        let number: u64 = digits.parse().map_err(|_| too_long())?;
        total_ms = number
            .checked_mul(per_unit)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_long)?;
        parts += 1;
        rest = after.trim_start();
    }
    if parts == 0 {
        return Err(not_a_duration());
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_the_way_they_are_written() {
        for text in ["5d", "4h", "90m", "30s", "500ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn every_size_unit() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1kB"), Ok(1000));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("100KiB"), Ok(102_400));
        assert_eq!(parse_size("35MiB"), Ok(35 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("35 MiB"), Ok(35 * 1024 * 1024));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "", "MiB", "35 Mb", "35mb", "35kib", "1.5MiB", "-1", "35MiBs", "35 M", "0x10",
        ] {
            assert_eq!(
                parse_size(bad),
                Err(UnitError::NotASize(bad.to_string())),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_size("99999999999999999999"),
            Err(UnitError::SizeTooLarge("99999999999999999999".into()))
        );
        assert_eq!(
            parse_size("100000000000GiB"),
            Err(UnitError::SizeTooLarge("100000000000GiB".into()))
        );
    }

    #[test]
    fn size_error_says_what_is_valid() {
        let message = parse_size("35 Mb").unwrap_err().to_string();
        assert_eq!(
            message,
            "\"35 Mb\" is not a size; write bytes or a number with B, KB, MB, GB, KiB, MiB or GiB (e.g. \"35MiB\")"
        );
    }

    #[test]
    fn every_duration_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("5d"), Ok(Duration::from_secs(5 * 86400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn combined_durations() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "", "s", "5 m", "5min", "1.5h", "-5s", "5S", "h5", "5m3", "1w",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(UnitError::NotADuration(bad.to_string())),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_duration("30"),
            Err(UnitError::DurationWithoutUnit("30".into()))
        );
        assert!(parse_duration("30")
            .unwrap_err()
            .to_string()
            .contains("write e.g. \"30s\""));
        assert_eq!(
            parse_duration("999999999999999999d"),
            Err(UnitError::DurationTooLong("999999999999999999d".into()))
        );
    }
}
