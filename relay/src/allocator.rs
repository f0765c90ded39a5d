//! Giving freed memory back to the operating system after a one-off peak.
//!
//! The allocator is the binary's choice (jemalloc by default: relay/Cargo.toml),
//! so the binary registers how with [`set_release`]; the library calls
//! [`release_freed`] after work that frees much at once. A full directory
//! load parses every entry and then drops the parsed copies: jemalloc would
//! keep those pages for its 10 s decay, and the relay's RSS would show
//! ~200 MB for a directory it holds in ~140 (bench/RESULTS.md, issue 12).

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Registers how the allocator in use returns its freed pages (once; later
/// calls are ignored).
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Returns the allocator's freed pages to the OS, if the binary said how.
/// Blocking (madvise over what was freed): call it off the async workers.
pub fn release_freed() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}
