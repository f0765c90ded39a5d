//! The durable queue and its scheduler.
//!
//! - [`spool`]: the durable spool's API the rest of the relay uses.
//! - [`layout`]: every file name, suffix and mode under `spool_dir`.
//! - `error`: [`SpoolError`](spool::SpoolError), why a spool operation failed.
//! - [`file_format`]: the bytes of one message record (no I/O).
//! - [`incoming`]: a message being received: a bounded buffer, then its own file.
//! - `segment`: segment files of records, and their lists of finished ones.
//! - `group_commit`: the thread that appends records in durable batches,
//!   records finished messages, and rotates and compacts segments.
//! - `index`: where each queued message is (shared by the two above).
//! - `recovery`: replaying the segments at start, and the offline listing.
//! - [`id`]: queue ids.
//! - [`manager`]: the scheduler: due times, concurrency, flush/delete.
//! - [`attempt`]: one delivery attempt and how its outcomes are recorded.
//! - [`reroute`]: deciding each queued recipient again before an attempt.
//! - [`retry`]: the retry schedule with jitter.
//! - [`bounce`]: DSNs for failed recipients, routed and spooled like any message.
//! - [`admin`]: the local socket `coexist-relay queue …` talks to a running relay through.
//! - [`offline`]: the same commands on the spool when no relay runs.
//! - [`select`]: which messages a queue command is about; the queue's shape.
//!
//! Imports go one way: `spool` uses `recovery` and `group_commit`, which use
//! `segment`, `index`, `layout` and `error`; none of these imports `spool`.

pub mod admin;
pub mod attempt;
pub mod bounce;
mod error;
pub mod file_format;
mod group_commit;
pub mod id;
pub mod incoming;
mod index;
pub mod layout;
pub mod manager;
pub mod offline;
mod recovery;
pub mod reroute;
pub mod retry;
mod segment;
pub mod select;
pub mod spool;
