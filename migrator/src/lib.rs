//! coexist-migrator: flips users to the cloud (a forwarding contact in the relay's
//! table) and copies their mailboxes over IMAP, resumably, with nothing lost or
//! duplicated.
//!
//! # Layout
//! - [`config`]: `migrator.toml`, validated like the relay's configuration.
//! - [`directory`]: `users.csv`, the directory export.
//! - [`contacts`]: the forwarding contacts, written through the relay's writer.
//! - [`imap`]: the IMAP client session (TLS, logins, commands).
//! - [`state`]: per-user checkpoints in `state_dir` (atomic JSON files).
//! - [`copy`]: folder mapping and the message copy with dedupe.
//! - [`report`]: progress output and the final report.
//! - [`metrics`]: the `coexist_migrator_*` metric set and its `/metrics` endpoint.
//! - [`run`]: the commands (`ready`, `migrate`, `sync`, `status`, `rollback`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod contacts;
pub mod copy;
pub mod directory;
pub mod imap;
pub mod metrics;
pub mod report;
pub mod run;
pub mod state;
