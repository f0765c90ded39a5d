//! Segment files: where message records live on disk, and how to read them back.
//!
//! ```text
//! queue/<16 hex digits>.seg    records (file_format) appended back to back
//! queue/<16 hex digits>.done   queue ids whose delivery finished, one per line
//! ```
//!
//! A segment is appended to by the committer only (see `group_commit`) and never
//! rewritten; a record is finished when its id is in the segment's `.done` list,
//! and the pair is deleted once every record in it is finished. Segments are
//! numbered in creation order, so replaying them in order replays the spool.

use super::file_format::{self, FormatError, Head, MAX_FIRST_LINE};
use super::layout::FILE_MODE;
use crate::envelope::Envelope;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Where a record is: its segment, offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment number.
    pub segment: u64,
    /// Offset of the record's first byte.
    pub offset: u64,
    /// Length of the whole record.
    pub len: u64,
}

/// Reads the record at `at` and checks it (length, CRC, envelope, id);
/// returns its envelope and the message bytes.
pub fn read_record(file: &File, at: Location, id: &str) -> Result<(Envelope, Vec<u8>), ReadError> {
    let (envelope, mut bytes, message_offset) = read_checked(file, at, id)?;
    let message = bytes.split_off(message_offset);
    Ok((envelope, message))
}

/// Reads the record at `at` and checks it as [`read_record`] does; returns the
/// whole record as stored (compaction copies it unchanged).
pub fn read_record_bytes(file: &File, at: Location, id: &str) -> Result<Vec<u8>, ReadError> {
    Ok(read_checked(file, at, id)?.1)
}

/// The checked record: its envelope, its bytes and where the message starts in them.
fn read_checked(
    file: &File,
    at: Location,
    id: &str,
) -> Result<(Envelope, Vec<u8>, usize), ReadError> {
    let len = usize::try_from(at.len).map_err(|_| ReadError::Format(FormatError::NotASpoolFile))?;
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, at.offset)
        .map_err(ReadError::Io)?;
    let decoded = file_format::decode(&bytes).map_err(ReadError::Format)?;
    if decoded.envelope.id != id {
        return Err(ReadError::Format(FormatError::WrongId {
            expected: id.to_string(),
            found: decoded.envelope.id,
        }));
    }
    Ok((decoded.envelope, bytes, decoded.message_offset))
}

/// Why a record could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The system refused (EIO, or the file is shorter than the index says).
    Io(io::Error),
    /// The bytes are not the record expected.
    Format(FormatError),
}

/// Opens a `.done` list for appending (created if missing, for the relay's user only).
pub fn open_done(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Appends one finished id to an open `.done` list, in one write so that a
/// crash can cut only the last line (which [`read_done`] then ignores).
pub fn write_done(done: &mut File, id: &str) -> io::Result<()> {
    done.write_all(format!("{id}\n").as_bytes())
}

/// The ids in a `.done` file. A last line without its newline is a write a
/// crash cut short: it is ignored, so that record is delivered again
/// (at-least-once), never lost.
pub fn read_done(path: &Path) -> io::Result<HashSet<String>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e),
    };
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&[][..], |end| &bytes[..end]);
    Ok(complete
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter(|id| super::id::is_valid(id))
        .map(str::to_string)
        .collect())
}

/// One step of [`walk`].
#[derive(Debug)]
pub enum Found {
    /// A complete, checked record still to deliver.
    Live {
        /// Where it is.
        at: Location,
        /// Its envelope as stored.
        envelope: Envelope,
    },
    /// A record whose first line names a finished message (not read further).
    Finished,
    /// A record whose lengths are readable but whose content is damaged.
    Damaged {
        /// Where it is.
        at: Location,
        /// What is wrong.
        reason: FormatError,
    },
}

/// How a walk ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// At the end of the file, on a record boundary.
    Clean,
    /// A write that never completed (cut short, or zeros past the last
    /// record): never acknowledged, since acknowledgement waits for the whole
    /// batch to be durable.
    TornTail {
        /// Offset of the incomplete record.
        offset: u64,
    },
    /// Bytes from `offset` on are not records: the rest of the segment is
    /// unreadable (a damaged first line hides where the next record starts).
    Garbage {
        /// Offset of the unreadable bytes.
        offset: u64,
    },
}

/// Reads a segment from the start, record by record, calling `each` for each;
/// records named in `finished` are skipped without reading their content.
pub fn walk(
    file: &File,
    number: u64,
    finished: &HashSet<String>,
    mut each: impl FnMut(Found),
) -> io::Result<End> {
    let size = file.metadata()?.len();
    let mut offset = 0u64;
    let mut line = [0u8; MAX_FIRST_LINE];
    while offset < size {
        let n = (size - offset).min(MAX_FIRST_LINE as u64) as usize;
        file.read_exact_at(&mut line[..n], offset)?;
        let head: Head = match file_format::parse_head(&line[..n]) {
            Ok(head) => head,
            Err(FormatError::Truncated { .. }) => return Ok(End::TornTail { offset }),
            Err(_) if all_zero(file, offset, size)? => return Ok(End::TornTail { offset }),
            Err(_) => return Ok(End::Garbage { offset }),
        };
        let at = Location {
            segment: number,
            offset,
            len: head.record_len(),
        };
        if offset + at.len > size {
            return Ok(End::TornTail { offset });
        }
        if finished.contains(&head.id) {
            each(Found::Finished);
        } else {
            match read_record(file, at, &head.id) {
                Ok((envelope, _)) => each(Found::Live { at, envelope }),
                Err(ReadError::Format(reason)) => each(Found::Damaged { at, reason }),
                Err(ReadError::Io(e)) => return Err(e),
            }
        }
        offset += at.len;
    }
    Ok(End::Clean)
}

/// Whether the file holds only zeros from `offset` to `size` (what a crash can
/// leave after a size change whose data never reached the disk).
fn all_zero(file: &File, mut offset: u64, size: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    while offset < size {
        let n = (size - offset).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], offset)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        offset += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_done_list_cut_short_keeps_the_unfinished_line_out() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("d");
        std::fs::write(
            &path,
            b"0123456789ABCDEF\nnot-an-id\n0123456789ABCDEG\n0123456789AB",
        )
        .expect("write");
        let done = read_done(&path).expect("read");
        let mut ids: Vec<_> = done.into_iter().collect();
        ids.sort();
        assert_eq!(ids, ["0123456789ABCDEF", "0123456789ABCDEG"]);
        assert!(read_done(&tmp.path().join("missing"))
            .expect("missing")
            .is_empty());
    }
}
