//! coexist-migrator: flips users to the cloud (a forwarding contact in the relay's
//! table) and copies their mailboxes over IMAP, resumably, with nothing lost or
//! duplicated.
//!
//! # Layout
//! The modules follow a user through the pipeline of DESIGN.md (directory →
//! ready list → quota check → write contact → copy → delta pass → report):
//! - [`config`]: `migrator.toml`, validated like the relay's configuration.
//! - [`directory`]: which users exist and may move, and where their contacts
//!   go: `users.csv` ([`directory::csv`]) and the relay's contacts table
//!   ([`directory::contacts`]), behind [`directory::Directory`].
//! - [`plan`]: folder mapping, what is left to copy, the quota gate; `ready`.
//! - [`flip`]: writing the contact (the flip) and `rollback`.
//! - [`copy`]: the user's copy passes with the delta pass ([`copy::passes`]),
//!   one mail folder with its checkpoint windows and throttling
//!   ([`copy::mail`]), and matching on the target ([`copy::dedupe`]).
//! - [`imap`]: the IMAP client (TLS, logins, commands; over TCP or any stream).
//! - [`oauth`]: OAuth2 app-only tokens (client-credentials grant), shared by
//!   every login of a side, and the SASL XOAUTH2 / OAUTHBEARER messages.
//! - [`state`]: per-user checkpoints in `state_dir` (crash-safe JSON files).
//! - [`context`]: what the steps work on — the run's shared parts and one
//!   user's migration in flight.
//! - [`run`]: `migrate` / `sync`: the steps in order, users in parallel.
//! - [`report`]: the per-user report and `status`; [`progress`]: bars and
//!   lines while it runs; [`print`](mod@print): what the commands print.
//! - [`check`]: `check`, the pre-flight (directory, each side's TLS, logins,
//!   capabilities, token endpoint, size against free quota).
//! - [`metrics`]: the `coexist_migrator_*` metric set and its `/metrics` endpoint.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod config;
pub mod context;
pub mod copy;
pub mod dav;
pub mod directory;
pub mod flip;
pub mod imap;
pub mod metrics;
pub mod oauth;
pub mod plan;
pub mod print;
pub mod progress;
pub mod report;
pub mod run;
pub mod state;
