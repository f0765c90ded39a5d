//! coexist-relay: an SMTP relay for mail-migration coexistence.
//!
//! # Layout
//! The modules follow the path of a message (`shared/DESIGN.md`: listener →
//! session → policy → router → spool → deliver), then the shared vocabulary
//! and the plumbing. The binary (`src/bin/coexist-relay/`) only parses
//! arguments, installs signals and maps errors to exit codes.
//!
//! - [`daemon`]: [`run`] starts everything `coexist-relay run` runs, in order,
//!   and stops it on [`Control::shutdown`].
//! - [`config`]: `relay.toml` into typed values; every error with file, line, key.
//! - [`server`]: listeners, the accept loop, STARTTLS hand-over, drain on shutdown.
//! - [`smtp`]: one inbound session: the loop, its phases as types, the envelope
//!   commands, DATA/BDAT, the `Received:` field, replies.
//! - [`policy`]: may this client / command / recipient proceed: connection caps
//!   and rates, TLS before MAIL, SIZE, the recipient cap, relay access; one
//!   [`Refusal`](policy::Refusal) gives the reply and the metric reason.
//! - [`route`]: the contacts table (format, atomic writer, hot reload), the
//!   directory mirror, the per-recipient decision, and its explanation for
//!   `coexist-relay route`.
//! - [`directory`]: LDAP / Active Directory: the client (failover, TLS, bind,
//!   paged search) and Exchange's object model, shared with the migrator.
//! - [`queue`]: the durable spool (layout, segment files, group commit,
//!   recovery) and the scheduler that attempts deliveries and bounces.
//! - [`deliver`]: outbound: next hops (smarthost, MX), one session (connect,
//!   TLS policy, ESMTP parameters, a result per recipient), reuse, DSNs.
//! - [`doctor`]: `coexist-relay doctor`: config, certificate, next hops, DNS, spool.
//!
//! Shared by every layer:
//! - [`envelope`]: the message's envelope, routing reasons, and delivery
//!   failures as data.
//! - [`message`]: a queued message's bytes, in memory or in its own spool file.
//! - [`address`]: address syntax (envelope paths, table addresses) and comparison.
//! - [`enhanced_code`]: RFC 3463 status codes, for our replies and the next hops'.
//! - [`safeio`]: crash-safe file replacement (temp file, fsync, rename, fsync dir).
//! - [`tls`]: server certificates: loading, checking, the development certificate.
//! - [`client_trust`]: inbound trust by client certificate (`relay.trusted_tls_names`).
//! - [`metrics`]: the Prometheus metric set, labels as enums.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` on `[metrics] bind`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod allocator;
pub mod client_trust;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod directory;
pub mod doctor;
pub mod enhanced_code;
pub mod envelope;
pub mod http;
pub mod message;
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
