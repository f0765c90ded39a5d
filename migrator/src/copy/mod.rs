//! The copy step: a user's content from the source to the target, resumable
//! and with nothing copied twice.
//!
//! - [`passes`]: the user's copy — every planned folder, then the delta pass
//!   after the quiet-inbox wait; a folder that loses its connection resumes on a
//!   new one after a back-off.
//! - [`mail`]: one mail folder over IMAP — batches, the pipelined APPENDs, the
//!   checkpoint windows, throttling (calendar folders copied as mail too).
//! - [`dedupe`]: finding on the target what the checkpoint cannot vouch for.
//!
//! Calendars and address books over CalDAV/CardDAV get their own files here.

pub mod dedupe;
pub mod mail;
pub mod passes;

pub use mail::{CopyError, Sink};
pub use passes::{copy_user, FolderError};
