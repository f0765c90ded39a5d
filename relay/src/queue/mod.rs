//! The durable queue.
//!
//! - [`envelope`]: what is stored with each message.
//! - [`spool`]: durable files, group commit, recovery.

pub mod envelope;
pub mod spool;
