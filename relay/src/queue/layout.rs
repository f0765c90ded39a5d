//! Where the spool keeps what: every name, suffix and mode under `spool_dir`.
//!
//! ```text
//! <spool_dir>/lock                  flock(2)ed by the running relay
//! <spool_dir>/queue/<n>.seg         message records appended in batches (see segment, file_format)
//! <spool_dir>/queue/<n>.done        ids of finished records in that segment
//! <spool_dir>/queue/<id>.state      a message's envelope with delivery state, once it changed
//! <spool_dir>/queue/<id>.msg        a large message's bytes, written as they arrived
//! <spool_dir>/queue/*.tmp           a `.state` being written; never in force
//! <spool_dir>/corrupt/              damaged records and files, kept for the operator
//! <spool_dir>/admin.sock            the queue commands' socket (see admin)
//! ```
//!
//! `<n>` is a segment number as 16 hex digits, so names sort in creation order.

use super::error::SpoolError;
use super::id;
use std::path::Path;

/// Folder of queued messages, under the spool folder.
pub const QUEUE_DIR: &str = "queue";
/// Folder of damaged files, under the spool folder.
pub const CORRUPT_DIR: &str = "corrupt";
/// Lock file, under the spool folder.
pub const LOCK_FILE: &str = "lock";
/// Suffix of a message's delivery-state file.
pub const STATE_SUFFIX: &str = ".state";
/// Suffix of a large message's own file.
pub const MESSAGE_SUFFIX: &str = ".msg";
/// Suffix of files being written (see [`crate::safeio`]): never in force.
pub const TMP_SUFFIX: &str = crate::safeio::TMP_SUFFIX;
/// File name suffix of a segment.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// File name suffix of a segment's list of finished records.
pub const DONE_SUFFIX: &str = ".done";
/// Mail is private: spool files are for the relay's user only.
pub const FILE_MODE: u32 = 0o600;
/// And so are its folders.
pub const DIR_MODE: u32 = 0o700;

/// `<n>.seg`.
pub fn segment_name(n: u64) -> String {
    format!("{n:016x}{SEGMENT_SUFFIX}")
}

/// `<n>.done`.
pub fn done_name(n: u64) -> String {
    format!("{n:016x}{DONE_SUFFIX}")
}

/// `<id>.state`.
pub fn state_name(id: &str) -> String {
    format!("{id}{STATE_SUFFIX}")
}

/// `<id>.msg`.
pub fn message_name(id: &str) -> String {
    format!("{id}{MESSAGE_SUFFIX}")
}

/// What a name in the queue folder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// `<n>.seg`.
    Segment(u64),
    /// `<n>.done`.
    Done(u64),
    /// `<id>.state`.
    State(String),
    /// `<id>.msg`.
    Message(String),
    /// A file being written when the relay stopped.
    Temp,
    /// A message file of the first spool format (named by its queue id).
    Legacy(String),
    /// Nothing the relay writes.
    Unknown,
}

/// Sorts a queue-folder name into its kind.
pub fn classify(name: &str) -> Name {
    if name.ends_with(TMP_SUFFIX) {
        return Name::Temp;
    }
    if let Some(id) = name.strip_suffix(STATE_SUFFIX).filter(|i| id::is_valid(i)) {
        return Name::State(id.to_string());
    }
    if let Some(id) = name
        .strip_suffix(MESSAGE_SUFFIX)
        .filter(|i| id::is_valid(i))
    {
        return Name::Message(id.to_string());
    }
    if let Some(n) = numbered(name, SEGMENT_SUFFIX) {
        return Name::Segment(n);
    }
    if let Some(n) = numbered(name, DONE_SUFFIX) {
        return Name::Done(n);
    }
    if id::is_valid(name) {
        return Name::Legacy(name.to_string());
    }
    Name::Unknown
}

/// The number in `<16 hex digits><suffix>`.
fn numbered(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 16 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// fsyncs a folder, so that the names in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), SpoolError> {
    crate::safeio::fsync_dir(dir).map_err(|e| SpoolError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        assert_eq!(segment_name(26), "000000000000001a.seg");
        assert_eq!(classify("000000000000001a.seg"), Name::Segment(26));
        assert_eq!(classify(&done_name(26)), Name::Done(26));
        for bad in [
            "1a.seg",
            "000000000000001a.tmp",
            "00000000000000zz.seg",
            "x.done",
        ] {
            assert!(
                !matches!(classify(bad), Name::Segment(_) | Name::Done(_)),
                "{bad}"
            );
        }
        assert_eq!(classify(".x.state.1.2.tmp"), Name::Temp);
        assert_eq!(classify("README"), Name::Unknown);
        assert_eq!(
            classify("0123456789ABCDEF.msg"),
            Name::Message("0123456789ABCDEF".into())
        );
    }
}
