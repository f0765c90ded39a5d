//! Inbound SMTP: one session per connection.
//!
//! - [`session`]: the connection loop: read, parse, dispatch, write; timeouts, STARTTLS.
//! - [`commands`]: what each command does to the session state.
//! - [`state`]: the envelope being built (HELO → MAIL → RCPT), as types.
//! - [`line`]: command-line framing with a hard length cap.
//! - [`params`]: MAIL/RCPT parameters given twice.
//! - [`data`]: DATA/BDAT readers and checks on the finished message.
//! - [`received`]: the `Received:` field the relay prepends.
//! - [`reply`]: typed replies; the one table from situation to code.

pub mod commands;
pub mod data;
pub mod line;
pub mod params;
pub mod received;
pub mod reply;
pub mod session;
pub mod state;

pub use session::{ConnectionInfo, Session, SessionContext, SessionEnd, TlsInfo};

#[cfg(test)]
mod tests;
