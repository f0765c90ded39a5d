//! The durable queue.
//!
//! - [`envelope`]: what is stored with each message.
//! - [`spool`]: durable files, group commit, recovery; the API the rest of the relay uses.
//! - [`file_format`]: the bytes of one message file (no I/O).
//! - [`id`]: queue ids.
//! - `group_commit`: the thread that makes written files durable in batches.

pub mod envelope;
pub mod file_format;
mod group_commit;
pub mod id;
pub mod spool;
