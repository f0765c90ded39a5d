//! Why a spool operation failed: the one error type of the queue's files.

use super::file_format::FormatError;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Why a spool operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// No space or quota left (ENOSPC, EDQUOT); the session answers `452 4.3.1`.
    #[error("spool disk full at {path}: {source}")]
    DiskFull {
        /// The file or folder being written.
        path: PathBuf,
        /// The error from the system.
        #[source]
        source: io::Error,
    },
    /// Any other I/O error; the session answers `451 4.3.0`.
    #[error("spool I/O error at {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The error from the system.
        #[source]
        source: io::Error,
    },
    /// A spool file failed its checks (see [`file_format`](super::file_format)).
    #[error("damaged spool file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        reason: FormatError,
    },
    /// The string is not a queue id (so it is never used as a file name).
    #[error("not a queue id: {0:?}")]
    InvalidId(String),
    /// No message with this id is in the spool.
    #[error("no message {0} in the spool")]
    NotFound(String),
    /// The queue holds messages in the first spool format (one file per
    /// message, before segments), which this version does not read.
    #[error(
        "{count} message(s) in the old one-file-per-message spool format, e.g. {path}: \
         start the previous coexist-relay on this spool until `coexist-relay queue list` \
         is empty, then upgrade"
    )]
    LegacyFormat {
        /// One of the files.
        path: PathBuf,
        /// How many.
        count: usize,
    },
    /// Another process holds the spool lock.
    #[error("spool {0} is in use by another process")]
    Locked(PathBuf),
    /// The envelope could not be serialised.
    #[error("cannot encode envelope: {0}")]
    Encode(#[from] serde_json::Error),
}

impl SpoolError {
    /// Whether the disk (or quota) is full: `452 4.3.1` rather than `451 4.3.0`.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, SpoolError::DiskFull { .. })
    }

    /// Classifies an I/O error: full disk or quota is [`SpoolError::DiskFull`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> SpoolError {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                SpoolError::DiskFull { path, source }
            }
            _ => SpoolError::Io { path, source },
        }
    }
}
