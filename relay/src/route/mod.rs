//! Where each recipient goes.
//!
//! - [`table`]: the contacts table format: parse (no I/O) and look up.
//! - [`store`]: the file on disk: atomic writer (used by the migrator) and loading.
//! - [`reload`]: the live table: reload when the file changes (polled) or on SIGHUP,
//!   swapped atomically only when the whole new table is valid.
//! - [`mirror`]: the directory as the source: initial load, RFC 4533 changes or
//!   periodic re-reads, the cache, the outage rules.
//! - [`snapshot`]: the mirror's snapshot built on a low-priority thread.
//! - [`cache`]: the mirror's cache file, written off the routing path.
//! - [`router`]: the per-recipient decision (contact, rule, accepted, default).
//! - [`explain`]: that decision and its next hop, as `coexist-relay route` shows it.

pub mod cache;
pub mod explain;
pub mod mirror;
pub mod reload;
pub mod router;
pub mod snapshot;
pub mod store;
pub mod table;
