//! coexist-relay: an SMTP relay for mail-migration coexistence.
//!
//! # Layout
//! The modules follow the path of a message (see `shared/DESIGN.md`):
//!
//! - [`address`]: address syntax (envelope paths, table addresses) and comparison.
//! - [`daemon`]: [`run`]: everything `coexist-relay run` starts, and the shutdown.
//! - [`config`]: `relay.toml` into typed values; every error with file, line, key.
//! - [`enhanced_code`]: RFC 3463 status codes, for our replies and the next hops'.
//! - [`envelope`]: the message's envelope and routing decisions: every layer's vocabulary.
//! - [`server`]: listeners, accept loop, connection caps, drain on shutdown.
//! - [`smtp`]: one inbound SMTP session: commands, DATA/BDAT, STARTTLS, replies.
//! - [`policy`]: may this client / command / recipient proceed: connection caps and
//!   rates, TLS before MAIL, SIZE, recipient cap, relay access; one `Refusal` enum.
//! - [`route`]: the contacts table (format, atomic writer, hot reload) and the
//!   per-recipient routing decision.
//! - [`queue`]: the durable spool (segment files, group commit, recovery) and the scheduler.
//! - [`deliver`]: outbound: next hops (smarthost, MX), TLS policy, one SMTP
//!   transaction per group of recipients, session reuse, DSNs.
//! - [`safeio`]: crash-safe file replacement (temp file, fsync, rename, fsync dir).
//! - [`tls`]: certificate loading and the development certificate.
//! - [`metrics`]: the Prometheus metric set.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` on `[metrics] bind`.
//! - [`doctor`]: `coexist-relay doctor`: config, certificate, next hops, DNS, spool.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod doctor;
pub mod enhanced_code;
pub mod envelope;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod queue;
pub mod route;
pub mod safeio;
pub mod server;
pub mod smtp;
pub mod tls;

pub use daemon::{run, Control, RunError};

#[cfg(test)]
pub(crate) mod testutil;
