//! Inbound SMTP: one session per connection.
//!
//! - [`session`]: the connection loop: read, parse, dispatch, write; timeouts, STARTTLS.
//! - [`state`]: the phases (HELO → MAIL → RCPT → body) as types, and the
//!   connection facts.
//! - [`commands`]: what each envelope command does to the phase.
//! - `message`: DATA and BDAT, and the finished message into the spool.
//! - [`line`](mod@line): command-line framing with a hard length cap.
//! - [`params`]: MAIL/RCPT parameters given twice.
//! - [`body`]: the body being received, checked as it passes, into the spool.
//! - [`data`]: DATA/BDAT readers and the content checks (no I/O).
//! - [`received`]: the `Received:` field the relay prepends.
//! - [`reply`]: typed replies; the one table from situation to code.

pub mod body;
pub mod commands;
pub mod data;
pub mod line;
mod message;
pub mod params;
pub mod received;
pub mod reply;
pub mod session;
pub mod state;

pub use session::{Session, SessionContext, SessionEnd};
pub use state::{ConnectionInfo, TlsInfo};

#[cfg(test)]
mod tests;
