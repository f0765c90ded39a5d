//! The durable spool: where a message lives from `250` until it is delivered or bounced.
//!
//! # Layout on disk
//! ```text
//! <spool_dir>/lock            flock(2)ed by the running relay
//! <spool_dir>/queue/<id>      the message file: envelope + message (see file_format)
//! <spool_dir>/queue/<id>.state  the envelope with delivery state, once it changed
//! <spool_dir>/queue/*.tmp     being written; never acknowledged
//! <spool_dir>/corrupt/        damaged files moved out of the queue for the operator
//! ```
//!
//! # Durability (DESIGN.md "Durability")
//! [`Spool::store`] writes `<id>.tmp`, fsyncs it, renames it to `<id>` and fsyncs
//! the folder before it returns, so a name in `queue/` always means a complete
//! message and a `.tmp` never one that was acknowledged. The fsyncs are shared
//! between concurrent sessions (see `group_commit`). Delivery state goes to
//! `<id>.state` by temporary file, fsync, rename, folder fsync; when present it
//! supersedes the envelope inside the message file, which is never rewritten.
//!
//! Removal is not fsynced: if a crash loses it, the message is delivered again
//! (DESIGN.md: delivery is at-least-once), which is cheaper than an fsync per
//! delivered message.
//!
//! # Recovery
//! [`Spool::open`] takes the lock (two relays on one spool would deliver twice,
//! and one would clean up files the other is still writing), then removes
//! `.tmp` leftovers and `.state` files whose message is gone, and moves any
//! message file that fails its checks (length, CRC-32, envelope) to `corrupt/`:
//! being in `queue/` it may have been acknowledged, so it is kept for a human
//! rather than deleted.

use super::envelope::Envelope;
use super::file_format::{self, FormatError};
use super::group_commit::{Committer, Job};
use super::id::{self, IdGenerator};
use std::collections::BTreeSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::oneshot;

/// Folder of queued messages, under the spool folder.
const QUEUE_DIR: &str = "queue";
/// Folder of damaged files, under the spool folder.
const CORRUPT_DIR: &str = "corrupt";
/// Lock file, under the spool folder.
const LOCK_FILE: &str = "lock";
const STATE_SUFFIX: &str = ".state";
const TMP_SUFFIX: &str = ".tmp";
/// Mail is private: spool files and folders are for the relay's user only.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

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
    /// A spool file failed its checks (see [`file_format`]).
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
    fn io(path: impl Into<PathBuf>, source: io::Error) -> SpoolError {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                SpoolError::DiskFull { path, source }
            }
            _ => SpoolError::Io { path, source },
        }
    }
}

/// Group-commit statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Messages durably stored since open.
    pub messages: u64,
    /// Commit batches (each one folder fsync) since open.
    pub batches: u64,
    /// Messages in the largest batch.
    pub largest_batch: u64,
}

/// The durable spool of one relay; share it as `Arc<Spool>`.
#[derive(Debug)]
pub struct Spool {
    queue: PathBuf,
    corrupt: PathBuf,
    ids: IdGenerator,
    committer: Committer,
    /// Distinguishes concurrent `.state` temporary files.
    tmp_seq: AtomicU64,
    /// Held (flocked) for the life of the spool.
    _lock: File,
    /// Test hook: the next message write fails with this error half-way.
    #[cfg(test)]
    fault: std::sync::Mutex<Option<io::ErrorKind>>,
}

impl Spool {
    /// Creates the folders if needed, takes the spool lock and scans the queue:
    /// complete messages are returned for delivery (oldest first), leftovers of
    /// unacknowledged messages removed, damaged files moved to `corrupt/`.
    pub fn open(dir: &Path) -> Result<(Arc<Spool>, Vec<Envelope>), SpoolError> {
        let queue = dir.join(QUEUE_DIR);
        let corrupt = dir.join(CORRUPT_DIR);
        for d in [&queue, &corrupt] {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(d)
                .map_err(|e| SpoolError::io(d, e))?;
        }
        let lock = lock(dir)?;
        // The folders themselves must survive a crash before anything in them
        // is acknowledged.
        fsync_dir(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent)?;
        }

        let ids = IdGenerator::new();
        let envelopes = recover(&queue, &corrupt)?;
        for envelope in &envelopes {
            ids.observe(&envelope.id);
        }
        fsync_dir(&queue)?;
        let committer = Committer::start(&queue).map_err(|e| SpoolError::io(&queue, e))?;
        let spool = Spool {
            queue,
            corrupt,
            ids,
            committer,
            tmp_seq: AtomicU64::new(0),
            _lock: lock,
            #[cfg(test)]
            fault: std::sync::Mutex::new(None),
        };
        Ok((Arc::new(spool), envelopes))
    }

    /// A new queue id: 16 characters of base32, unique across restarts and
    /// concurrent processes, sortable by time (see [`id`]).
    pub fn new_id(&self) -> String {
        self.ids.next()
    }

    /// Durably stores a message (`header` = the Received field the session
    /// prepends, `body` = the message as received); returns only after the
    /// file and the folder are fsynced. Sets `size` (header + body length) in
    /// the envelope and nothing else.
    ///
    /// If the future is dropped before it completes, the message is not
    /// acknowledged and its file is removed.
    pub async fn store(
        &self,
        mut envelope: Envelope,
        header: Vec<u8>,
        body: Vec<u8>,
    ) -> Result<Envelope, SpoolError> {
        if !id::is_valid(&envelope.id) {
            return Err(SpoolError::InvalidId(envelope.id));
        }
        envelope.size = (header.len() + body.len()) as u64;
        let mut prefix =
            file_format::encode_prefix(&file_format::envelope_json(&envelope)?, &[&header, &body]);
        prefix.extend_from_slice(&header);

        let dest = self.queue.join(&envelope.id);
        let tmp = self.queue.join(format!("{}{TMP_SUFFIX}", envelope.id));
        let (done, outcome) = oneshot::channel();
        let committer = self.committer.sender();
        #[cfg(test)]
        let fault = self.fault.lock().ok().and_then(|mut f| f.take());
        #[cfg(not(test))]
        let fault = None;
        let job_dest = dest.clone();
        // Writing and fsyncing on the blocking pool, many files at once, lets
        // the kernel share journal commits between them (see group_commit).
        tokio::task::spawn_blocking(move || {
            if done.is_closed() {
                return;
            }
            let written = id_unused(&job_dest)
                .and_then(|()| write_new(&tmp, &[&prefix, &body], fault))
                .and_then(|file| file.sync_all());
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                let _ = done.send(Err(e));
                return;
            }
            let job = Job {
                tmp,
                dest: job_dest,
                done,
            };
            if let Err(std::sync::mpsc::SendError(job)) = committer.send(job) {
                let _ = fs::remove_file(&job.tmp);
                let _ = job
                    .done
                    .send(Err(io::Error::other("spool committer stopped")));
            }
        });
        match outcome.await {
            Ok(Ok(())) => Ok(envelope),
            Ok(Err(e)) => Err(SpoolError::io(dest, e)),
            Err(_) => Err(SpoolError::io(
                dest,
                io::Error::other("spool writer task ended without an answer"),
            )),
        }
    }

    /// The message bytes (Received header + body) of a spooled message,
    /// checked against the CRC written with it.
    pub fn read_message(&self, id: &str) -> Result<Vec<u8>, SpoolError> {
        valid_id(id)?;
        let (_, message) = read_message_file(&self.queue, id)?;
        Ok(message)
    }

    /// Durably records a changed envelope (delivery state) as `<id>.state`.
    /// Blocks for two fsyncs: call it from the blocking pool.
    pub fn update(&self, envelope: &Envelope) -> Result<(), SpoolError> {
        let id = envelope.id.as_str();
        valid_id(id)?;
        let dest = self.queue.join(format!("{id}{STATE_SUFFIX}"));
        if !self.queue.join(id).exists() {
            return Err(SpoolError::NotFound(id.to_string()));
        }
        let json = file_format::envelope_json(envelope)?;
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .queue
            .join(format!("{id}{STATE_SUFFIX}.{seq}{TMP_SUFFIX}"));
        let result = write_new(&tmp, &[&json], None)
            .and_then(|file| file.sync_all())
            .and_then(|()| fs::rename(&tmp, &dest));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(SpoolError::io(dest, e));
        }
        fsync_dir(&self.queue)
    }

    /// Removes a message (all its files) once delivered or bounced.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        valid_id(id)?;
        // The message first: a crash in between leaves an orphan `.state`
        // (cleaned up by recovery), never a message with stale state.
        let mut found = false;
        for name in [id.to_string(), format!("{id}{STATE_SUFFIX}")] {
            let path = self.queue.join(name);
            match fs::remove_file(&path) {
                Ok(()) => found = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpoolError::io(path, e)),
            }
        }
        if found {
            Ok(())
        } else {
            Err(SpoolError::NotFound(id.to_string()))
        }
    }

    /// Offline listing for `coexist-relay queue list` (no running daemon
    /// needed, nothing is changed): every readable message, oldest first,
    /// with its current envelope. Damaged files are skipped.
    pub fn scan(dir: &Path) -> Result<Vec<Envelope>, SpoolError> {
        let queue = dir.join(QUEUE_DIR);
        let listing = list(&queue)?;
        let mut envelopes = Vec::with_capacity(listing.messages.len());
        for id in &listing.messages {
            match current_envelope(&queue, id, listing.states.contains(id)) {
                Ok((envelope, _)) => envelopes.push(envelope),
                Err(e) => tracing::warn!(error = %e, "skipping spool file"),
            }
        }
        Ok(envelopes)
    }

    /// Offline look at one message for `coexist-relay queue show`: its current
    /// envelope and its bytes. Changes nothing.
    pub fn show(dir: &Path, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
        valid_id(id)?;
        let queue = dir.join(QUEUE_DIR);
        let has_state = queue.join(format!("{id}{STATE_SUFFIX}")).exists();
        let (envelope, state_error) = current_envelope(&queue, id, has_state)?;
        if let Some(e) = state_error {
            return Err(e);
        }
        let (_, message) = read_message_file(&queue, id)?;
        Ok((envelope, message))
    }

    /// Group-commit statistics.
    pub fn stats(&self) -> SpoolStats {
        let c = self.committer.counters();
        SpoolStats {
            messages: c.messages.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
        }
    }

    /// The folder damaged files are moved to.
    pub fn corrupt_dir(&self) -> &Path {
        &self.corrupt
    }
}

fn valid_id(id: &str) -> Result<(), SpoolError> {
    if id::is_valid(id) {
        Ok(())
    } else {
        Err(SpoolError::InvalidId(id.to_string()))
    }
}

fn lock(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| SpoolError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(SpoolError::io(path, e)),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(dir, e))
}

/// Refuses to overwrite a queued message: ids are never reused (see [`id`]),
/// so this only trips on a bug, and then must not lose the older message.
fn id_unused(dest: &Path) -> io::Result<()> {
    if dest.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "queue id already in the spool",
        ));
    }
    Ok(())
}

/// Creates `tmp` (which must not exist), writes `parts` into it and returns it
/// open, not yet fsynced. Nothing is left behind on error. `fault` (tests
/// only) makes the write fail after the first part, as a full disk would.
fn write_new(tmp: &Path, parts: &[&[u8]], fault: Option<io::ErrorKind>) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(tmp)?;
    let written = parts.iter().enumerate().try_for_each(|(i, part)| {
        match fault {
            Some(kind) if i > 0 => return Err(io::Error::from(kind)),
            _ => {}
        }
        file.write_all(part)
    });
    match written {
        Ok(()) => Ok(file),
        Err(e) => {
            drop(file);
            let _ = fs::remove_file(tmp);
            Err(e)
        }
    }
}

/// Reads and checks `<queue>/<id>`; returns its embedded envelope and the message bytes.
fn read_message_file(queue: &Path, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
    let path = queue.join(id);
    let mut bytes = fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SpoolError::NotFound(id.to_string()),
        _ => SpoolError::io(&path, e),
    })?;
    let decoded = file_format::decode(&bytes).map_err(|reason| SpoolError::Corrupt {
        path: path.clone(),
        reason,
    })?;
    if decoded.envelope.id != id {
        return Err(SpoolError::Corrupt {
            path,
            reason: FormatError::WrongId {
                expected: id.to_string(),
                found: decoded.envelope.id,
            },
        });
    }
    let message = bytes.split_off(decoded.message_offset);
    Ok((decoded.envelope, message))
}

/// Reads `<queue>/<id>.state`.
fn read_state(queue: &Path, id: &str) -> Result<Envelope, SpoolError> {
    let path = queue.join(format!("{id}{STATE_SUFFIX}"));
    let bytes = fs::read(&path).map_err(|e| SpoolError::io(&path, e))?;
    let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|e| SpoolError::Corrupt {
        path: path.clone(),
        reason: e.into(),
    })?;
    if envelope.id != id {
        return Err(SpoolError::Corrupt {
            path,
            reason: FormatError::WrongId {
                expected: id.to_string(),
                found: envelope.id,
            },
        });
    }
    Ok(envelope)
}

/// The envelope that counts for `id`: the `.state` when present and valid,
/// else the one in the message file. A bad `.state` is returned beside the
/// fallback so that recovery can move it aside.
fn current_envelope(
    queue: &Path,
    id: &str,
    has_state: bool,
) -> Result<(Envelope, Option<SpoolError>), SpoolError> {
    let (embedded, _) = read_message_file(queue, id)?;
    if !has_state {
        return Ok((embedded, None));
    }
    match read_state(queue, id) {
        Ok(state) => Ok((state, None)),
        Err(e) => Ok((embedded, Some(e))),
    }
}

/// The names in the queue folder, sorted into kinds.
#[derive(Default)]
struct Listing {
    /// Ids with a message file (sorted: oldest first).
    messages: BTreeSet<String>,
    /// Ids with a `.state` file.
    states: BTreeSet<String>,
    /// Temporary files.
    temps: Vec<PathBuf>,
}

fn list(queue: &Path) -> Result<Listing, SpoolError> {
    let mut listing = Listing::default();
    let entries = fs::read_dir(queue).map_err(|e| SpoolError::io(queue, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(queue, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(path = %entry.path().display(), "ignoring unknown file in the spool");
            continue;
        };
        if name.ends_with(TMP_SUFFIX) {
            listing.temps.push(entry.path());
        } else if let Some(id) = name.strip_suffix(STATE_SUFFIX).filter(|i| id::is_valid(i)) {
            listing.states.insert(id.to_string());
        } else if id::is_valid(name) {
            listing.messages.insert(name.to_string());
        } else {
            tracing::warn!(path = %entry.path().display(), "ignoring unknown file in the spool");
        }
    }
    Ok(listing)
}

/// Cleans up the queue folder after a stop or crash; returns the queued envelopes.
fn recover(queue: &Path, corrupt: &Path) -> Result<Vec<Envelope>, SpoolError> {
    let listing = list(queue)?;
    for tmp in &listing.temps {
        // Written but never renamed: never acknowledged.
        remove_file(tmp)?;
    }
    for id in listing.states.difference(&listing.messages) {
        // The message was removed (delivered) and the crash came before its state went.
        remove_file(&queue.join(format!("{id}{STATE_SUFFIX}")))?;
    }
    let mut envelopes = Vec::with_capacity(listing.messages.len());
    for id in &listing.messages {
        let has_state = listing.states.contains(id);
        match current_envelope(queue, id, has_state) {
            Ok((envelope, state_error)) => {
                if let Some(e) = state_error {
                    tracing::error!(error = %e, "bad delivery state; using the state stored with the message");
                    quarantine(queue, corrupt, &format!("{id}{STATE_SUFFIX}"))?;
                }
                envelopes.push(envelope);
            }
            Err(e @ SpoolError::Corrupt { .. }) => {
                tracing::error!(error = %e, "damaged message moved to {}", corrupt.display());
                quarantine(queue, corrupt, id)?;
                if has_state {
                    quarantine(queue, corrupt, &format!("{id}{STATE_SUFFIX}"))?;
                }
            }
            // Unreadable now (EIO, permissions): leave it for the next start.
            Err(e) => tracing::error!(error = %e, "cannot read spooled message; skipped"),
        }
    }
    Ok(envelopes)
}

fn remove_file(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SpoolError::io(path, e)),
        _ => Ok(()),
    }
}

/// Moves `<queue>/<name>` to `<corrupt>/<name>`.
fn quarantine(queue: &Path, corrupt: &Path, name: &str) -> Result<(), SpoolError> {
    let from = queue.join(name);
    fs::rename(&from, corrupt.join(name)).map_err(|e| SpoolError::io(from, e))?;
    fsync_dir(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::envelope::RecipientStatus;
    use crate::queue::file_format::tests::sample_envelope;
    use std::process::Command;

    const HEADER: &[u8] =
        b"Received: from client.example.net by relay.corp.example; Tue, 1 Jan 2030\r\n";
    const BODY: &[u8] = b"Subject: hi\r\n\r\nHello \xff binary-safe.\r\n.\r\n";

    fn open(dir: &Path) -> (Arc<Spool>, Vec<Envelope>) {
        Spool::open(dir).expect("open spool")
    }

    async fn store_one(spool: &Spool, body: &[u8]) -> Result<Envelope, SpoolError> {
        let envelope = sample_envelope(&spool.new_id());
        spool.store(envelope, HEADER.to_vec(), body.to_vec()).await
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn store_then_reopen_returns_envelope_and_exact_bytes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let stored = {
            let (spool, queued) = open(tmp.path());
            assert!(queued.is_empty());
            let stored = store_one(&spool, BODY).await.expect("store");
            assert_eq!(stored.size, (HEADER.len() + BODY.len()) as u64);
            assert_eq!(spool.stats().messages, 1);
            assert_eq!(names(&tmp.path().join(QUEUE_DIR)), vec![stored.id.clone()]);
            stored
        };
        assert_eq!(Spool::scan(tmp.path()).expect("scan"), vec![stored.clone()]);
        let (spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![stored.clone()]);
        let message = spool.read_message(&stored.id).expect("read");
        assert_eq!(message, [HEADER, BODY].concat());
        let (shown, bytes) = Spool::show(tmp.path(), &stored.id).expect("show");
        assert_eq!((shown, bytes), (stored.clone(), message));
        // New ids sort after everything recovered.
        assert!(spool.new_id() > stored.id);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_stores_share_fsyncs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (spool, _) = open(tmp.path());
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let spool = Arc::clone(&spool);
                tokio::spawn(async move {
                    let body = format!("Subject: {i}\r\n\r\nmessage {i}\r\n").into_bytes();
                    let env = store_one(&spool, &body).await.expect("store");
                    (env, body)
                })
            })
            .collect();
        let mut stored = Vec::new();
        for t in tasks {
            stored.push(t.await.expect("task"));
        }
        let stats = spool.stats();
        assert_eq!(stats.messages, 50);
        assert!(stats.batches < 50, "no group commit: {stats:?}");
        assert!(stats.largest_batch > 1, "{stats:?}");
        drop(spool);

        let (spool, queued) = open(tmp.path());
        assert_eq!(queued.len(), 50);
        assert!(
            queued.windows(2).all(|w| w[0].id < w[1].id),
            "not oldest first"
        );
        for (env, body) in stored {
            assert_eq!(
                spool.read_message(&env.id).expect("read"),
                [HEADER, &body].concat()
            );
        }
    }

    #[tokio::test]
    async fn recovery_keeps_good_messages_and_clears_the_rest() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let (good_a, good_b) = {
            let (spool, _) = open(tmp.path());
            let a = store_one(&spool, BODY).await.expect("store");
            let b = store_one(&spool, BODY).await.expect("store");
            let full = fs::read(queue.join(&a.id)).expect("read");

            // A truncated message file.
            let truncated = spool.new_id();
            let mut bytes = full.clone();
            bytes.truncate(full.len() - 10);
            fs::write(queue.join(&truncated), bytes.replace_id(&a.id, &truncated)).expect("w");
            // A message file with a flipped bit in the body.
            let bad_crc = spool.new_id();
            let mut bytes = full.replace_id(&a.id, &bad_crc);
            let last = bytes.len() - 4;
            bytes[last] ^= 1;
            fs::write(queue.join(&bad_crc), bytes).expect("w");
            // A stray temporary file, a state without message, an unknown file.
            fs::write(queue.join(format!("{}.tmp", spool.new_id())), b"half").expect("w");
            fs::write(queue.join(format!("{}.state", spool.new_id())), b"{}").expect("w");
            fs::write(queue.join("README"), b"operator notes").expect("w");
            (a, b)
        };
        let (_spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![good_a.clone(), good_b.clone()]);
        let mut expected = vec![good_a.id.clone(), good_b.id.clone(), "README".to_string()];
        expected.sort();
        assert_eq!(names(&queue), expected);
        // The damaged (maybe acknowledged) files are kept for a human.
        assert_eq!(names(&tmp.path().join(CORRUPT_DIR)).len(), 2);
    }

    /// Rewrites the id inside a message file, keeping it otherwise identical.
    trait ReplaceId {
        fn replace_id(&self, from: &str, to: &str) -> Vec<u8>;
    }
    impl ReplaceId for Vec<u8> {
        fn replace_id(&self, from: &str, to: &str) -> Vec<u8> {
            // Same length, so the first line's lengths stay right.
            let pos = self
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .expect("id in file");
            let mut out = self.clone();
            out[pos..pos + from.len()].copy_from_slice(to.as_bytes());
            out
        }
    }

    #[tokio::test]
    async fn a_renamed_message_file_is_not_delivered_under_another_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        {
            let (spool, _) = open(tmp.path());
            let a = store_one(&spool, BODY).await.expect("store");
            fs::rename(queue.join(&a.id), queue.join(spool.new_id())).expect("rename");
        }
        let (_spool, queued) = open(tmp.path());
        assert!(queued.is_empty());
        assert_eq!(names(&tmp.path().join(CORRUPT_DIR)).len(), 1);
    }

    #[tokio::test]
    async fn state_supersedes_and_remove_deletes_everything() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let (spool, _) = open(tmp.path());
        let mut env = store_one(&spool, BODY).await.expect("store");
        env.recipients[0].status = RecipientStatus::Delivered {
            reply: "250 2.0.0 ok".into(),
        };
        env.recipients[0].attempts = 1;
        spool.update(&env).expect("update");
        env.recipients[0].attempts = 2;
        spool.update(&env).expect("second update");
        drop(spool);

        let (spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![env.clone()]);
        assert_eq!(Spool::scan(tmp.path()).expect("scan"), vec![env.clone()]);
        // The message bytes are untouched by updates.
        assert_eq!(
            spool.read_message(&env.id).expect("read"),
            [HEADER, BODY].concat()
        );

        spool.remove(&env.id).expect("remove");
        assert!(names(&queue).is_empty(), "{:?}", names(&queue));
        assert!(matches!(
            spool.remove(&env.id),
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(spool.update(&env), Err(SpoolError::NotFound(_))));
        assert!(matches!(
            spool.read_message(&env.id),
            Err(SpoolError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_damaged_state_falls_back_to_the_stored_envelope() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let env = {
            let (spool, _) = open(tmp.path());
            store_one(&spool, BODY).await.expect("store")
        };
        fs::write(queue.join(format!("{}.state", env.id)), b"{\"id\":").expect("w");
        let (_spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![env.clone()]);
        assert_eq!(names(&queue), vec![env.id.clone()]);
        assert_eq!(
            names(&tmp.path().join(CORRUPT_DIR)),
            vec![format!("{}.state", env.id)]
        );
    }

    #[tokio::test]
    async fn ids_from_outside_are_validated() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (spool, _) = open(tmp.path());
        for bad in ["../lock", "..", "", "/etc/passwd", "0123456789ABCDEF/.."] {
            assert!(matches!(
                spool.read_message(bad),
                Err(SpoolError::InvalidId(_))
            ));
            assert!(matches!(spool.remove(bad), Err(SpoolError::InvalidId(_))));
            assert!(matches!(
                spool.update(&sample_envelope(bad)),
                Err(SpoolError::InvalidId(_))
            ));
            assert!(matches!(
                spool
                    .store(sample_envelope(bad), Vec::new(), Vec::new())
                    .await,
                Err(SpoolError::InvalidId(_))
            ));
        }
        assert!(tmp.path().join(LOCK_FILE).exists());
    }

    #[tokio::test]
    async fn a_second_relay_cannot_open_the_same_spool() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (spool, _) = open(tmp.path());
        assert!(matches!(
            Spool::open(tmp.path()),
            Err(SpoolError::Locked(_))
        ));
        // The offline listing works beside a running relay.
        assert!(Spool::scan(tmp.path()).expect("scan").is_empty());
        drop(spool);
        open(tmp.path());
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_and_the_spool_keeps_working() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let (spool, _) = open(tmp.path());
        for (kind, disk_full) in [
            (io::ErrorKind::StorageFull, true),
            (io::ErrorKind::QuotaExceeded, true),
            (io::ErrorKind::PermissionDenied, false),
        ] {
            *spool.fault.lock().expect("fault") = Some(kind);
            let err = store_one(&spool, BODY).await.expect_err("injected");
            assert_eq!(err.is_disk_full(), disk_full, "{kind:?}: {err}");
            assert!(names(&queue).is_empty(), "{:?}", names(&queue));
        }
        let env = store_one(&spool, BODY).await.expect("store after failure");
        assert_eq!(names(&queue), vec![env.id]);
    }

    /// A 64 KiB tmpfs, unmounted when dropped.
    struct TinyFs(tempfile::TempDir);
    impl TinyFs {
        fn mount() -> Option<TinyFs> {
            let dir = tempfile::tempdir().expect("tempdir");
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .ok()?;
            status.success().then_some(TinyFs(dir))
        }
    }
    impl Drop for TinyFs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0.path()).status();
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_disk_full_and_space_coming_back_is_used() {
        let Some(fs) = TinyFs::mount() else {
            // Not root: `a_failed_write_leaves_nothing_and_the_spool_keeps_working`
            // covers the same path with an injected ENOSPC.
            eprintln!("cannot mount tmpfs; covered by the injected-error test");
            return;
        };
        let dir = fs.0.path().join("spool");
        let queue = dir.join(QUEUE_DIR);
        let (spool, _) = open(&dir);
        let small = store_one(&spool, BODY).await.expect("small message");
        let err = store_one(&spool, &vec![b'x'; 128 * 1024])
            .await
            .expect_err("too big for the disk");
        assert!(err.is_disk_full(), "{err}");
        assert_eq!(names(&queue), vec![small.id.clone()]);
        let again = store_one(&spool, BODY).await.expect("space is back");
        assert_eq!(names(&queue).len(), 2);
        assert_eq!(
            spool.read_message(&again.id).expect("read"),
            [HEADER, BODY].concat()
        );
        drop(spool);
    }

    /// Stores/s with 50 concurrent writers of 4 KiB messages:
    /// `cargo test -p relay spool::tests::measure -- --ignored --nocapture`
    /// (`SPOOL_BENCH_DIR=/path` measures another file system than the temp folder's).
    #[test]
    #[ignore]
    fn measure_group_commit_throughput() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::var_os("SPOOL_BENCH_DIR").map(PathBuf::from);
        let tmp = tempfile::tempdir_in(dir.unwrap_or_else(std::env::temp_dir)).expect("tempdir");
        let (spool, _) = open(tmp.path());
        let body = vec![b'a'; 4096];
        let per_writer = 200;
        let start = std::time::Instant::now();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let spool = Arc::clone(&spool);
                    let body = body.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_writer {
                            store_one(&spool, &body).await.expect("store");
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        });
        let elapsed = start.elapsed();
        let stats = spool.stats();
        eprintln!(
            "{} messages in {:.2?}: {:.0} stores/s, {} batches (avg {:.1}, max {})",
            stats.messages,
            elapsed,
            stats.messages as f64 / elapsed.as_secs_f64(),
            stats.batches,
            stats.messages as f64 / stats.batches as f64,
            stats.largest_batch
        );
        assert_eq!(stats.messages, 50 * per_writer);
    }
}
