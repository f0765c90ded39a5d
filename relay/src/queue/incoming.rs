//! A message being received. A session holds at most [`BUFFER`] bytes of it
//! (then [`SPILL`] at a time): beyond that, the bytes go to the message's own
//! file in the queue folder as they arrive (`<id>.msg`, as Postfix and
//! OpenSMTPD stream into their queue files), so a 35 MiB message costs disk
//! bandwidth, not RAM. Small messages never touch that file: their record
//! goes to a segment in one group commit.
//!
//! Until its record is committed the file is nobody's: a message that ends in
//! an error (too large, timeout, client gone, disk full) removes it when the
//! session drops it, and recovery removes what a crash leaves.

use super::error::SpoolError;
use super::layout::FILE_MODE;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// What a session keeps in memory of a message before it goes to its file.
pub const BUFFER: usize = 256 * 1024;

/// Once a message has its file, how much is gathered before each write: every
/// write is a hop to the blocking pool and back (a thread wakeup each way),
/// and at [`BUFFER`] a 10 MiB message made 40 of them.
pub const SPILL: usize = 512 * 1024;

/// One message on its way in.
#[derive(Debug)]
pub struct Incoming {
    id: String,
    path: PathBuf,
    buf: Vec<u8>,
    file: Option<File>,
    written: u64,
    crc: crc32fast::Hasher,
    failure: Option<SpoolError>,
    /// Its record refers to the file now: leave it.
    kept: bool,
    /// Its bytes are DATA content as they stand (see `Fresh`).
    data_ready: bool,
}

impl Incoming {
    /// A message `id` whose file, if it needs one, is `path`.
    pub(super) fn new(id: String, path: PathBuf) -> Incoming {
        Incoming {
            id,
            path,
            buf: Vec::with_capacity(16 * 1024),
            file: None,
            written: 0,
            crc: crc32fast::Hasher::new(),
            failure: None,
            kept: false,
            data_ready: false,
        }
    }

    /// Its queue id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where new bytes go (the session's readers append here).
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The bytes still in memory.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes so far, in memory and in the file.
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The session found no line beginning with "." and a final line end:
    /// delivery may send the file as it is (sendfile), without stuffing.
    pub fn set_data_ready(&mut self, ready: bool) {
        self.data_ready = ready;
    }

    /// Bytes already in the file.
    pub fn spilled(&self) -> u64 {
        self.written
    }

    /// Whether the buffer should go to the file: it holds [`BUFFER`] bytes
    /// (the message is a large one), or [`SPILL`] once it has its file.
    pub fn is_full(&self) -> bool {
        let limit = if self.file.is_some() { SPILL } else { BUFFER };
        self.buf.len() >= limit
    }

    /// When the buffer [is full](Incoming::is_full), moves all but its last
    /// `keep` bytes to the file (a reader may still rewrite those). A write
    /// that fails is remembered (the message will be refused with it) and the
    /// rest is thrown away as it comes; the body is still read to its end.
    pub async fn make_room(&mut self, keep: usize) {
        if self.failure.is_some() {
            self.buf.clear();
            return;
        }
        if !self.is_full() || keep >= self.buf.len() {
            return;
        }
        let cut = self.buf.len() - keep;
        let tail = self.buf[cut..].to_vec();
        self.buf.truncate(cut);
        self.crc.update(&self.buf);
        let chunk = std::mem::take(&mut self.buf);
        let (file, path) = (self.file.take(), self.path.clone());
        let wrote = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(f) => f,
                None => create(&path)?,
            };
            file.write_all(&chunk)
                .map_err(|e| SpoolError::io(&path, e))?;
            Ok::<_, SpoolError>((file, chunk))
        })
        .await;
        match wrote {
            Ok(Ok((file, mut chunk))) => {
                self.written += chunk.len() as u64;
                self.file = Some(file);
                chunk.clear();
                chunk.extend_from_slice(&tail);
                self.buf = chunk;
            }
            Ok(Err(e)) => self.fail(e),
            Err(e) => self.fail(SpoolError::io(&self.path, std::io::Error::other(e))),
        }
    }

    fn fail(&mut self, e: SpoolError) {
        tracing::error!(id = %self.id, error = %e, "spool write failed while receiving");
        self.failure = Some(e);
        self.buf = Vec::new();
        self.remove_file();
    }

    fn remove_file(&mut self) {
        if self.file.take().is_some() || self.written > 0 {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Whether [`Incoming::finish`] will touch the disk (a message that spilled
    /// to its file); a message still wholly in memory finishes without blocking,
    /// so the store need not hop to the blocking pool for it.
    pub(super) fn finish_blocks(&self) -> bool {
        self.failure.is_none() && self.file.is_some()
    }

    /// What [`Spool::store`](super::spool::Spool::store) needs: the bytes in
    /// memory (the whole message when nothing was spilled), or the rest written
    /// out and the file fdatasynced, with its length and CRC. Blocking: call it
    /// from the blocking pool.
    pub(super) fn finish(&mut self) -> Result<Finished, SpoolError> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        let Some(mut file) = self.file.take() else {
            return Ok(Finished::Memory(std::mem::take(&mut self.buf)));
        };
        let path = self.path.clone();
        self.crc.update(&self.buf);
        let io = |e| SpoolError::io(&path, e);
        file.write_all(&self.buf).map_err(io)?;
        self.written += self.buf.len() as u64;
        self.buf = Vec::new();
        file.sync_data().map_err(io)?;
        self.file = Some(file);
        Ok(Finished::File {
            len: self.written,
            crc: self.crc.clone().finalize(),
            data_ready: self.data_ready,
        })
    }

    /// The record referring to the file is committed: the file is the spool's.
    pub(super) fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.kept {
            self.remove_file();
        }
    }
}

/// A received message, ready for its record.
#[derive(Debug)]
pub(super) enum Finished {
    /// Small: the whole message.
    Memory(Vec<u8>),
    /// Large: in its durable file.
    File {
        /// Its length.
        len: u64,
        /// CRC-32 of its bytes.
        crc: u32,
        /// DATA content as they stand.
        data_ready: bool,
    },
}

fn create(path: &std::path::Path) -> Result<File, SpoolError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| SpoolError::io(path, e))
}
