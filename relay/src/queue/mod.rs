//! The durable queue and its scheduler.
//!
//! - [`envelope`]: what is stored with each message.
//! - [`spool`]: durable files, group commit, recovery; the API the rest of the relay uses.
//! - [`file_format`]: the bytes of one message file (no I/O).
//! - [`id`]: queue ids.
//! - `group_commit`: the thread that makes written files durable in batches.
//! - [`manager`]: the scheduler: due times, concurrency, flush/delete.
//! - [`attempt`]: one delivery attempt and how its outcomes are recorded.
//! - [`retry`]: the retry schedule with jitter.
//! - [`bounce`]: DSNs for failed recipients, routed and spooled like any message.
//! - [`admin`]: the local socket `coexist-relay queue flush|delete` talks to.

pub mod admin;
pub mod attempt;
pub mod bounce;
pub mod envelope;
pub mod file_format;
mod group_commit;
pub mod id;
pub mod manager;
pub mod retry;
pub mod spool;
