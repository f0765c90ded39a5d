//! Helpers the table readers share: a key's value checked, and its error
//! recorded at the value's line.

use super::reader::{Diagnostics, Section};
use super::values::{self, ValueError};
use std::net::SocketAddr;
use std::time::Duration;
use toml::Spanned;

/// A duration that must be longer than zero (a zero timeout fires at once).
pub(super) fn timeout(d: &mut Diagnostics, s: &Section, key: &str) -> Option<Duration> {
    let value = s.duration(d, key)?;
    if value.get_ref().is_zero() {
        d.error(
            Some(&value.span()),
            &s.key(key),
            "must be longer than zero (e.g. \"30s\", \"5m\")",
        );
        return None;
    }
    Some(value.into_inner())
}

/// A `bind` key holding `ip:port`.
pub(super) fn bind_address(
    d: &mut Diagnostics,
    s: &Section,
    key: &str,
) -> Option<Spanned<SocketAddr>> {
    let text = s.string(d, key)?;
    checked(d, s, key, &text, values::bind_address).map(|a| Spanned::new(text.span(), a))
}

/// An optional array of strings (empty when absent or wrong).
pub(super) fn list(d: &mut Diagnostics, s: &Section, key: &str) -> Vec<Spanned<String>> {
    s.strings(d, key).map_or_else(Vec::new, Spanned::into_inner)
}

/// Runs `check` on a string value and records its error at the value's line.
pub(super) fn checked<T>(
    d: &mut Diagnostics,
    s: &Section,
    key: &str,
    text: &Spanned<String>,
    check: impl FnOnce(&str) -> Result<T, ValueError>,
) -> Option<T> {
    report(d, &s.key(key), text, check(text.get_ref()))
}

/// Records `result`'s error, if any, at `text`'s line under `key`.
pub(super) fn report<T>(
    d: &mut Diagnostics,
    key: &str,
    text: &Spanned<String>,
    result: Result<T, ValueError>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(Some(&text.span()), key, e);
            None
        }
    }
}
