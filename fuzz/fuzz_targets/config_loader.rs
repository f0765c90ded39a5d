//! The configuration loader (`Config::from_str`: TOML syntax, sections, validation) on
//! arbitrary text.
//!
//! Checks: no panic, no hang; a refused file yields at least one error, each naming a
//! line of the file (0 only for whole-file problems).
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count() + 1;
    if let Err(errors) = Config::from_str(text, Path::new("/etc/coexist/relay.toml")) {
        assert!(!errors.is_empty());
        for e in errors {
            assert!(e.line <= lines, "error on line {} of {lines}: {e}", e.line);
        }
    }
});
