//! A queued message's bytes (its `Received:` field, then the message as
//! received), wherever the spool keeps them: in memory for a message just
//! received and small enough, or in its own file in the queue folder for a
//! large one, read back in chunks so that no copy of the whole is ever held.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// How much of a message file one read brings in: what a session gathers
/// before each write on the way in (`queue::incoming::SPILL`). Each read is a
/// hop to the blocking pool and back; 256 KiB made 40 of them per 10 MiB.
pub const CHUNK: usize = 512 * 1024;

/// The most of a header section read to build a DSN's returned headers.
const MAX_HEADERS: usize = 256 * 1024;

/// The bytes of one queued message.
#[derive(Debug, Clone)]
pub enum Message {
    /// Whole, in memory (the message is small, or its first attempt is now).
    Memory(Arc<Vec<u8>>),
    /// In its own file in the spool (a large message, written as it arrived).
    File(Arc<MessageFile>),
}

/// A message file opened for reading, with what its record says of it.
#[derive(Debug)]
pub struct MessageFile {
    /// The open file.
    pub file: File,
    /// Where it is (for errors).
    pub path: PathBuf,
    /// Its length, as recorded.
    pub len: u64,
    /// CRC-32 of its bytes, as recorded.
    pub crc: u32,
    /// Set for the first attempt at a file this process wrote and
    /// fdatasynced: `None` after a restart and for later attempts.
    pub fresh: Option<Fresh>,
}

/// What the first attempt knows of a file the relay has just written. Its
/// bytes are the ones the CRC was taken of a moment ago (they come from the
/// page cache the relay filled), so that attempt may hand the file to a
/// plain-TCP socket whole (sendfile) instead of reading it back through user
/// space: the read-back CRC check guards a file across a crash or a long
/// stay in the queue, which the later attempts still get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    /// No line begins with "." and the last ends with CRLF: DATA can carry
    /// the bytes as they are (BDAT always can).
    pub data_ready: bool,
}

impl Message {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Message::Memory(m) => m.len() as u64,
            Message::File(f) => f.len,
        }
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes at `offset..offset + len` (blocking for a file: call it from
    /// the blocking pool).
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(offset, len, &mut buf)?;
        Ok(buf)
    }

    /// The same bytes as [`Message::read_at`], into `buf`, which keeps its
    /// allocation from one chunk to the next. A fresh buffer per chunk cost a
    /// calloc (jemalloc zeroes a large one by purging its pages) and then a
    /// page fault per 4 KiB inside the read: a fifth of the relay's CPU with
    /// 10 MiB messages. Blocking for a file.
    pub fn read_into(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Message::Memory(m) => {
                let start = (offset as usize).min(m.len());
                let end = start.saturating_add(len).min(m.len());
                buf.clear();
                buf.extend_from_slice(&m[start..end]);
            }
            Message::File(f) => {
                let len = len.min(f.len.saturating_sub(offset) as usize);
                // Only bytes the buffer never had are zeroed: a reused one is
                // overwritten by the read as it is.
                buf.resize(len, 0);
                f.file.read_exact_at(buf, offset)?;
            }
        }
        Ok(())
    }

    /// Every byte, in one buffer: for what must have the whole (tests, tools);
    /// delivery reads a file in chunks instead. Blocking for a file.
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()).map_err(io::Error::other)?;
        self.read_at(0, len)
    }

    /// The header section, up to and including the empty line's CRLF (at most
    /// 256 KiB; the whole message when it has no body). Blocking for a file.
    pub fn header_section(&self) -> io::Result<Vec<u8>> {
        let start = match self {
            Message::Memory(m) => return Ok(header_section(m).to_vec()),
            Message::File(_) => self.read_at(0, MAX_HEADERS)?,
        };
        Ok(header_section(&start).to_vec())
    }

    /// The whole message when it is in memory; `None` for a file (a caller
    /// that needs every byte of a large message reads it in chunks).
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Message::Memory(m) => Some(m),
            Message::File(_) => None,
        }
    }

    /// The CRC-32 the bytes must have, for a file read back in chunks (a
    /// message in memory was checked when it was read, or never left RAM).
    pub fn expected_crc(&self) -> Option<u32> {
        match self {
            Message::Memory(_) => None,
            Message::File(f) => Some(f.crc),
        }
    }
}

/// The header section of `message`, up to and including the empty line's CRLF.
pub fn header_section(message: &[u8]) -> &[u8] {
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

/// Why the bytes read back are not the message that was stored.
#[derive(Debug, thiserror::Error)]
#[error("{}: checksum mismatch (recorded {expected:08x}, read {actual:08x}): the spooled copy is damaged", path.display())]
pub struct Damaged {
    /// The message file.
    pub path: PathBuf,
    /// CRC recorded.
    pub expected: u32,
    /// CRC of what was read.
    pub actual: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_memory_read_the_same_bytes() {
        let bytes = b"Received: x\r\nSubject: s\r\n\r\nbody\r\n".to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.msg");
        std::fs::write(&path, &bytes).unwrap();
        let file = Message::File(Arc::new(MessageFile {
            file: File::open(&path).unwrap(),
            path,
            len: bytes.len() as u64,
            crc: crc32fast::hash(&bytes),
            fresh: None,
        }));
        let memory = Message::Memory(Arc::new(bytes.clone()));
        for m in [&file, &memory] {
            assert_eq!(m.len(), bytes.len() as u64);
            assert_eq!(m.read_at(3, 5).unwrap(), &bytes[3..8]);
            assert_eq!(m.read_at(30, 100).unwrap(), &bytes[30..]);
            // A reused buffer, longer or shorter than the read, holds just it.
            let mut buf = vec![b'#'; 100];
            m.read_into(3, 5, &mut buf).unwrap();
            assert_eq!(buf, &bytes[3..8]);
            m.read_into(0, 1000, &mut buf).unwrap();
            assert_eq!(buf, bytes);
            assert_eq!(
                m.header_section().unwrap(),
                b"Received: x\r\nSubject: s\r\n"
            );
        }
        assert!(file.in_memory().is_none());
        assert_eq!(file.expected_crc(), Some(crc32fast::hash(&bytes)));
    }
}
