//! The durable spool: where a message lives from `250` until it is delivered or bounced.
//!
//! Where each file lives is in [`super::layout`].
//!
//! # Durability (DESIGN.md "Durability")
//! [`Spool::store`] returns only after the message's record is appended to a
//! segment and that segment is fdatasynced; concurrent sessions share the write
//! and the fdatasync (see `group_commit`), so a busy relay makes one durable
//! write per batch, not per message, and creates no file per message. Delivery
//! state goes to `<id>.state` by temporary file, fsync, rename, folder fsync;
//! when present it supersedes the envelope in the record, which is never
//! rewritten.
//!
//! Finishing a message (delivered or bounced) appends its id to the segment's
//! `.done` list without fsync: if a crash loses it, the message is delivered
//! again (DESIGN.md: delivery is at-least-once), which is cheaper than an fsync
//! per delivered message. A segment is deleted when nothing in it is live.
//!
//! # Recovery
//! [`Spool::open`] takes the lock (two relays on one spool would deliver twice,
//! and one would clean up files the other is still writing), then replays the
//! segments (see `recovery`).

pub use super::error::SpoolError;
use super::file_format::{self, FormatError};
use super::group_commit::{Append, Committer, Op, Tuning};
use super::id::{self, IdGenerator};
use super::incoming::Finished;
pub use super::incoming::Incoming;
use super::index::Index;
use super::layout::{self, fsync_dir, CORRUPT_DIR, DIR_MODE, FILE_MODE, LOCK_FILE, QUEUE_DIR};
use super::recovery;
use super::segment::{self, ReadError};
use crate::envelope::{Envelope, External};
use crate::message::{Fresh, Message, MessageFile};
use crate::safeio::{self, Mode};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Group-commit statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Messages durably stored since open.
    pub messages: u64,
    /// Commit batches (each one fdatasync) since open.
    pub batches: u64,
    /// Messages in the largest batch.
    pub largest_batch: u64,
    /// Segment files created since open.
    pub segments: u64,
    /// Records moved by compaction since open.
    pub compacted: u64,
}

/// The durable spool of one relay; share it as `Arc<Spool>`.
#[derive(Debug)]
pub struct Spool {
    queue: PathBuf,
    ids: IdGenerator,
    index: Arc<Mutex<Index>>,
    committer: Committer,
    /// Held (flocked) for the life of the spool.
    _lock: File,
    /// Test hook: the next message write fails with this error half-way.
    #[cfg(test)]
    fault: std::sync::Mutex<Option<io::ErrorKind>>,
}

impl Spool {
    /// Creates the folders if needed, takes the spool lock and replays the
    /// queue: live messages are returned for delivery (oldest first),
    /// leftovers of unacknowledged writes removed, damage moved to `corrupt/`.
    pub fn open(dir: &Path) -> Result<(Arc<Spool>, Vec<Envelope>), SpoolError> {
        Spool::open_tuned(dir, Tuning::default())
    }

    /// [`Spool::open`] with other segment sizes and compaction delay (tests).
    pub(crate) fn open_tuned(
        dir: &Path,
        tuning: Tuning,
    ) -> Result<(Arc<Spool>, Vec<Envelope>), SpoolError> {
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

        let recovered = recovery::recover(&queue, Some(&corrupt))?;
        let ids = IdGenerator::new();
        for envelope in &recovered.envelopes {
            ids.observe(&envelope.id);
        }
        fsync_dir(&queue)?;
        let index = Arc::new(Mutex::new(recovered.index));
        let committer =
            Committer::start(&queue, Arc::clone(&index), recovered.next_segment, tuning)
                .map_err(|e| SpoolError::io(&queue, e))?;
        let spool = Spool {
            queue,
            ids,
            index,
            committer,
            _lock: lock,
            #[cfg(test)]
            fault: std::sync::Mutex::new(None),
        };
        Ok((Arc::new(spool), recovered.envelopes))
    }

    /// A new queue id: 16 characters of base32, unique across restarts and
    /// concurrent processes, sortable by time (see [`id`]).
    pub fn new_id(&self) -> String {
        self.ids.next()
    }

    /// A message about to be received under the new id `id`: the session
    /// fills it as the bytes arrive (see [`Incoming`]).
    pub fn incoming(&self, id: String) -> Incoming {
        let path = self.queue.join(layout::message_name(&id));
        Incoming::new(id, path)
    }

    /// Durably stores a message; returns only after it is written and
    /// fdatasynced: a small one as one record of a group commit, a large one
    /// as its file (fdatasynced here) and a record naming it (the folder is
    /// fsynced with the batch). Sets `size` (and `external` for a large one)
    /// in the envelope and nothing else.
    ///
    /// If the future is dropped before it completes, the message is not
    /// acknowledged and is never delivered.
    pub async fn store(
        &self,
        mut envelope: Envelope,
        mut incoming: Incoming,
    ) -> Result<Envelope, SpoolError> {
        if !id::is_valid(&envelope.id) || envelope.id != incoming.id() {
            return Err(SpoolError::InvalidId(envelope.id));
        }
        if self.index().messages.contains_key(&envelope.id) {
            // Ids are never reused (see [`id`]); refuse rather than shadow one.
            return Err(SpoolError::io(
                self.queue.join(&envelope.id),
                io::Error::from(io::ErrorKind::AlreadyExists),
            ));
        }
        envelope.size = incoming.len();
        // A small message is all in memory: finishing it is a move, and a hop
        // to the blocking pool would cost two thread wakeups per message.
        let (incoming, finished) = if incoming.finish_blocks() {
            tokio::task::spawn_blocking(move || {
                let finished = incoming.finish();
                (incoming, finished)
            })
            .await
            .map_err(|e| SpoolError::io(&self.queue, io::Error::other(e)))?
        } else {
            let finished = incoming.finish();
            (incoming, finished)
        };
        let (message, fresh) = match finished? {
            Finished::Memory(bytes) => (Some(Arc::new(bytes)), None),
            Finished::File {
                len,
                crc,
                data_ready,
            } => {
                envelope.external = Some(External { len, crc });
                (None, Some(Fresh { data_ready }))
            }
        };
        let body: &[&[u8]] = match &message {
            Some(m) => &[m.as_slice()],
            None => &[],
        };
        let prefix =
            file_format::encode_prefix(&envelope.id, &file_format::envelope_json(&envelope)?, body);
        let envelope = self.commit(envelope, prefix, message, incoming).await?;
        if let Some(fresh) = fresh {
            self.index().keep_fresh(&envelope.id, fresh);
        }
        Ok(envelope)
    }

    /// Stores a message the relay made itself (a DSN), whole in memory.
    pub async fn store_message(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Envelope, SpoolError> {
        let mut incoming = self.incoming(envelope.id.clone());
        *incoming.buffer() = message;
        self.store(envelope, incoming).await
    }

    /// Hands the record to the committer and waits for it to be durable.
    async fn commit(
        &self,
        envelope: Envelope,
        prefix: Vec<u8>,
        message: Option<Arc<Vec<u8>>>,
        mut incoming: Incoming,
    ) -> Result<Envelope, SpoolError> {
        #[cfg(test)]
        let fault = self.fault.lock().ok().and_then(|mut f| f.take());
        #[cfg(not(test))]
        let fault = None;
        let (done, outcome) = oneshot::channel();
        let append = Append {
            id: envelope.id.clone(),
            prefix,
            message,
            external: envelope.external,
            done,
            fault,
        };
        let path = || self.queue.join(&envelope.id);
        if self.committer.send(Op::Append(append)).is_err() {
            return Err(SpoolError::io(
                path(),
                io::Error::other("spool committer stopped"),
            ));
        }
        match outcome.await {
            Ok(Ok(())) => {
                incoming.keep();
                Ok(envelope)
            }
            Ok(Err(e)) => Err(SpoolError::io(path(), e)),
            Err(_) => Err(SpoolError::io(
                path(),
                io::Error::other("spool committer ended without an answer"),
            )),
        }
    }

    /// The bytes (Received header + body) of a queued message: the copy kept
    /// from its arrival for its first attempt, its own file for a large one
    /// (opened, read later in chunks), or read back from its segment and
    /// checked against the CRC written with it. May read from disk: call it
    /// from the blocking pool unless [`Spool::message_in_memory`] answered.
    pub fn read_message(&self, id: &str) -> Result<Message, SpoolError> {
        valid_id(id)?;
        let (at, file, external, fresh) = {
            let index = self.index();
            if let Some(message) = index.hot(id) {
                return Ok(Message::Memory(message));
            }
            let entry = index
                .messages
                .get(id)
                .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
            let segment = index
                .segments
                .get(&entry.at.segment)
                .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
            let fresh = index.fresh(id);
            (entry.at, Arc::clone(&segment.file), entry.external, fresh)
        };
        if let Some(external) = external {
            return open_message_file(&self.queue, id, external, fresh);
        }
        let path = self.queue.join(layout::segment_name(at.segment));
        match segment::read_record(&file, at, id) {
            Ok((_, message)) => Ok(Message::Memory(Arc::new(message))),
            Err(e) => Err(read_error(path, e)),
        }
    }

    /// The bytes kept in memory for a message's first attempt, if any.
    pub fn message_in_memory(&self, id: &str) -> Option<Message> {
        self.index().hot(id).map(Message::Memory)
    }

    /// Durably records a changed envelope (delivery state) as `<id>.state`.
    /// Blocks for two fsyncs: call it from the blocking pool.
    pub fn update(&self, envelope: &Envelope) -> Result<(), SpoolError> {
        let id = envelope.id.as_str();
        valid_id(id)?;
        {
            let mut index = self.index();
            if !index.messages.contains_key(id) {
                return Err(SpoolError::NotFound(id.to_string()));
            }
            // The first attempt is over: later ones read from disk.
            index.drop_hot(id);
        }
        let dest = self.queue.join(layout::state_name(id));
        let json = file_format::envelope_json(envelope)?;
        safeio::replace(&dest, &json, Mode::Fixed(FILE_MODE))
            .map_err(|e| SpoolError::io(e.path, e.source))?;
        match self.index().messages.get_mut(id) {
            Some(entry) => entry.has_state = true,
            // Removed meanwhile: the state file is an orphan.
            None => {
                let _ = fs::remove_file(self.queue.join(layout::state_name(id)));
            }
        }
        Ok(())
    }

    /// Removes a message once delivered or bounced. Cheap and non-blocking:
    /// the committer thread records it.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        valid_id(id)?;
        let entry = self
            .index()
            .remove(id)
            .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
        let op = Op::Finished {
            id: id.to_string(),
            at: entry.at,
            has_state: entry.has_state,
            external: entry.external.is_some(),
        };
        self.committer
            .send(op)
            .map_err(|_| SpoolError::io(&self.queue, io::Error::other("spool committer stopped")))
    }

    /// Waits until every removal asked for so far is written (shutdown, tests).
    pub fn flush(&self) {
        self.committer.flush();
    }

    /// Offline listing for `coexist-relay queue list` (no running daemon
    /// needed, nothing is changed): every readable message, oldest first,
    /// with its current envelope. Damaged records are skipped. A spool folder
    /// the relay never started on (as a package installs it) holds nothing; a
    /// missing spool folder is still an error (a wrong `spool_dir`).
    pub fn scan(dir: &Path) -> Result<Vec<Envelope>, SpoolError> {
        let queue = dir.join(QUEUE_DIR);
        if dir.is_dir() && !queue.exists() {
            return Ok(Vec::new());
        }
        Ok(recovery::recover(&queue, None)?.envelopes)
    }

    /// Offline look at one message for `coexist-relay queue show`: its current
    /// envelope and its bytes. Changes nothing.
    pub fn show(dir: &Path, id: &str) -> Result<(Envelope, Message), SpoolError> {
        valid_id(id)?;
        let queue = dir.join(QUEUE_DIR);
        let recovered = recovery::recover(&queue, None)?;
        let entry = *recovered
            .index
            .messages
            .get(id)
            .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
        if queue.join(layout::state_name(id)).exists() {
            // A damaged state is an error here: showing the stored envelope
            // instead would show state that is not in force.
            recovery::read_state(&queue, id)?;
        }
        let envelope = recovered
            .envelopes
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
        if let Some(external) = entry.external {
            return Ok((envelope, open_message_file(&queue, id, external, None)?));
        }
        let segment = &recovered.index.segments[&entry.at.segment];
        let path = queue.join(layout::segment_name(entry.at.segment));
        let (_, message) =
            segment::read_record(&segment.file, entry.at, id).map_err(|e| read_error(path, e))?;
        Ok((envelope, Message::Memory(Arc::new(message))))
    }

    /// Group-commit statistics.
    pub fn stats(&self) -> SpoolStats {
        let c = self.committer.counters();
        SpoolStats {
            messages: c.messages.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            segments: c.segments.load(Ordering::Relaxed),
            compacted: c.compacted.load(Ordering::Relaxed),
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens a large message's own file; it must be as long as its record says.
fn open_message_file(
    queue: &Path,
    id: &str,
    external: External,
    fresh: Option<Fresh>,
) -> Result<Message, SpoolError> {
    let path = queue.join(layout::message_name(id));
    let file = File::open(&path).map_err(|e| SpoolError::io(&path, e))?;
    let len = file.metadata().map_err(|e| SpoolError::io(&path, e))?.len();
    if len != external.len {
        return Err(SpoolError::Corrupt {
            path,
            reason: FormatError::Truncated {
                expected: external.len,
                actual: len,
            },
        });
    }
    Ok(Message::File(Arc::new(MessageFile {
        file,
        path,
        len,
        crc: external.crc,
        fresh,
    })))
}

fn read_error(path: PathBuf, e: ReadError) -> SpoolError {
    match e {
        ReadError::Io(e) => SpoolError::io(path, e),
        ReadError::Format(reason) => SpoolError::Corrupt { path, reason },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::RecipientStatus;
    use crate::queue::file_format::tests::sample_envelope;
    use std::process::Command;
    use std::time::Duration;

    const HEADER: &[u8] =
        b"Received: from client.example.net by relay.corp.example; Tue, 1 Jan 2030\r\n";
    const BODY: &[u8] = b"Subject: hi\r\n\r\nHello \xff binary-safe.\r\n.\r\n";

    fn open(dir: &Path) -> (Arc<Spool>, Vec<Envelope>) {
        Spool::open(dir).expect("open spool")
    }

    async fn store_one(spool: &Spool, body: &[u8]) -> Result<Envelope, SpoolError> {
        let envelope = sample_envelope(&spool.new_id());
        spool.store_message(envelope, [HEADER, body].concat()).await
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        names
    }

    fn ids(envelopes: &[Envelope]) -> Vec<String> {
        envelopes.iter().map(|e| e.id.clone()).collect()
    }

    /// The one segment file of the queue folder.
    fn only_segment(queue: &Path) -> PathBuf {
        let segments: Vec<String> = names(queue)
            .into_iter()
            .filter(|n| n.ends_with(layout::SEGMENT_SUFFIX))
            .collect();
        assert_eq!(segments.len(), 1, "{segments:?}");
        queue.join(&segments[0])
    }

    #[test]
    fn a_spool_never_started_on_lists_empty_and_a_missing_one_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(Spool::scan(tmp.path()).expect("scan"), vec![]);
        assert!(Spool::scan(&tmp.path().join("nowhere")).is_err());
    }

    #[tokio::test]
    async fn store_then_reopen_returns_envelope_and_exact_bytes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let stored = {
            let (spool, queued) = open(tmp.path());
            assert!(queued.is_empty());
            let stored = store_one(&spool, BODY).await.expect("store");
            assert_eq!(stored.size, (HEADER.len() + BODY.len()) as u64);
            assert_eq!(spool.stats().messages, 1);
            // No file per message: one segment holds the record.
            assert_eq!(names(&queue), vec![layout::segment_name(1)]);
            // The first attempt gets the bytes without reading them back.
            let hot = spool.message_in_memory(&stored.id).expect("kept in memory");
            assert_eq!(hot.read_all().expect("bytes"), [HEADER, BODY].concat());
            stored
        };
        assert_eq!(Spool::scan(tmp.path()).expect("scan"), vec![stored.clone()]);
        let (spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![stored.clone()]);
        assert!(spool.message_in_memory(&stored.id).is_none());
        let message = spool.read_message(&stored.id).expect("read");
        assert_eq!(message.read_all().expect("bytes"), [HEADER, BODY].concat());
        let (shown, bytes) = Spool::show(tmp.path(), &stored.id).expect("show");
        let bytes = bytes.read_all().expect("bytes");
        assert_eq!(
            (shown, bytes),
            (stored.clone(), message.read_all().expect("bytes"))
        );
        // New ids sort after everything recovered.
        assert!(spool.new_id() > stored.id);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_stores_share_fdatasyncs() {
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
                spool
                    .read_message(&env.id)
                    .expect("read")
                    .read_all()
                    .expect("bytes"),
                [HEADER, &body].concat()
            );
        }
    }

    #[tokio::test]
    async fn finished_messages_stay_finished_and_empty_segments_go() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let (a, b, c) = {
            let (spool, _) = open(tmp.path());
            let a = store_one(&spool, BODY).await.expect("store");
            let b = store_one(&spool, BODY).await.expect("store");
            let c = store_one(&spool, BODY).await.expect("store");
            spool.remove(&b.id).expect("remove");
            assert!(matches!(spool.remove(&b.id), Err(SpoolError::NotFound(_))));
            assert!(matches!(
                spool.read_message(&b.id),
                Err(SpoolError::NotFound(_))
            ));
            (a, b, c)
        };
        let done = fs::read_to_string(queue.join(layout::done_name(1))).expect("done list");
        assert_eq!(done, format!("{}\n", b.id));
        let (spool, queued) = open(tmp.path());
        assert_eq!(ids(&queued), vec![a.id.clone(), c.id.clone()]);
        // A recovered segment takes no new records; when its last message is
        // finished it is deleted.
        let d = store_one(&spool, BODY).await.expect("store");
        spool.remove(&a.id).expect("remove");
        spool.remove(&c.id).expect("remove");
        spool.flush();
        assert_eq!(names(&queue), vec![layout::segment_name(2)]);
        spool.remove(&d.id).expect("remove");
        drop(spool);
        let (_spool, queued) = open(tmp.path());
        assert!(queued.is_empty());
        assert!(names(&queue).is_empty(), "{:?}", names(&queue));
    }

    #[tokio::test]
    async fn recovery_keeps_good_records_and_sets_damage_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let corrupt = tmp.path().join(CORRUPT_DIR);
        let (good, flipped) = {
            let (spool, _) = open(tmp.path());
            let mut good = Vec::new();
            for _ in 0..3 {
                good.push(store_one(&spool, BODY).await.expect("store"));
            }
            let flipped = store_one(&spool, BODY).await.expect("store");
            good.push(store_one(&spool, BODY).await.expect("store"));
            // A stray temporary file, a state without message, an unknown
            // file, a done list without segment.
            fs::write(
                queue.join(format!("{}.state.1.tmp", spool.new_id())),
                b"half",
            )
            .expect("w");
            fs::write(queue.join(format!("{}.state", spool.new_id())), b"{}").expect("w");
            fs::write(queue.join("README"), b"operator notes").expect("w");
            fs::write(queue.join(layout::done_name(7)), b"").expect("w");
            (good, flipped)
        };
        let seg = only_segment(&queue);
        let mut bytes = fs::read(&seg).expect("read");
        // Flip a bit in the body of the fourth record.
        let record_len = bytes.len() / 5;
        bytes[4 * record_len - 5] ^= 1;
        // And a write cut short at the end: never acknowledged.
        bytes.extend_from_within(..record_len / 2);
        fs::write(&seg, bytes).expect("write");

        let (_spool, queued) = open(tmp.path());
        assert_eq!(ids(&queued), ids(&good));
        assert_eq!(
            names(&queue),
            vec![layout::segment_name(1), "README".to_string()]
        );
        // The damaged (maybe acknowledged) record is kept for a human.
        let kept = names(&corrupt);
        assert_eq!(kept.len(), 1, "{kept:?}");
        let kept = fs::read(corrupt.join(&kept[0])).expect("read");
        assert!(kept.starts_with(format!("COEXIST-SPOOL 2 {} ", flipped.id).as_bytes()));
    }

    #[tokio::test]
    async fn a_spool_of_the_old_format_is_refused_not_stranded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        fs::create_dir_all(&queue).expect("mkdir");
        fs::write(
            queue.join("0123456789ABCDEF"),
            b"COEXIST-SPOOL 1 2 0 00000000\n{}",
        )
        .expect("w");
        let err = Spool::open(tmp.path()).expect_err("old format");
        assert!(
            matches!(err, SpoolError::LegacyFormat { count: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("start the previous coexist-relay"),
            "{err}"
        );
        assert!(queue.join("0123456789ABCDEF").exists());
    }

    #[tokio::test]
    async fn an_unreadable_first_line_keeps_the_rest_of_the_segment_for_a_human() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let first = {
            let (spool, _) = open(tmp.path());
            let first = store_one(&spool, BODY).await.expect("store");
            store_one(&spool, BODY).await.expect("store");
            store_one(&spool, BODY).await.expect("store");
            first
        };
        let seg = only_segment(&queue);
        let mut bytes = fs::read(&seg).expect("read");
        let second = bytes.len() / 3;
        bytes[second..second + 4].copy_from_slice(b"JUNK");
        fs::write(&seg, &bytes).expect("write");
        let (_spool, queued) = open(tmp.path());
        assert_eq!(ids(&queued), vec![first.id]);
        let kept = names(&tmp.path().join(CORRUPT_DIR));
        assert_eq!(kept.len(), 1, "{kept:?}");
        let kept = fs::read(tmp.path().join(CORRUPT_DIR).join(&kept[0])).expect("read");
        assert_eq!(kept, bytes[second..]);
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
        // The first attempt is over: later ones read the record back.
        assert!(spool.message_in_memory(&env.id).is_none());
        env.recipients[0].attempts = 2;
        spool.update(&env).expect("second update");
        drop(spool);

        let (spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![env.clone()]);
        assert_eq!(Spool::scan(tmp.path()).expect("scan"), vec![env.clone()]);
        assert_eq!(Spool::show(tmp.path(), &env.id).expect("show").0, env);
        // The message bytes are untouched by updates.
        assert_eq!(
            spool
                .read_message(&env.id)
                .expect("read")
                .read_all()
                .expect("bytes"),
            [HEADER, BODY].concat()
        );

        spool.remove(&env.id).expect("remove");
        spool.flush();
        assert!(!queue.join(format!("{}.state", env.id)).exists());
        assert!(matches!(spool.update(&env), Err(SpoolError::NotFound(_))));
        drop(spool);
        let (_spool, queued) = open(tmp.path());
        assert!(queued.is_empty());
        assert!(names(&queue).is_empty(), "{:?}", names(&queue));
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
        assert!(Spool::show(tmp.path(), &env.id).is_err());
        let (_spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![env.clone()]);
        assert_eq!(names(&queue), vec![layout::segment_name(1)]);
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
                spool.store_message(sample_envelope(bad), Vec::new()).await,
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
            // The half-written record was taken back out.
            assert_eq!(fs::metadata(only_segment(&queue)).expect("stat").len(), 0);
        }
        let env = store_one(&spool, BODY).await.expect("store after failure");
        drop(spool);
        let (_spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![env]);
    }

    #[tokio::test]
    async fn a_cancelled_store_is_never_delivered() {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let (spool, _) = open(tmp.path());
            // Polled once (sent to the committer), then given up: the
            // client went away before the 250.
            let mut store = Box::pin(store_one(&spool, BODY));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(std::future::Future::poll(store.as_mut(), &mut cx).is_pending());
            drop(store);
            spool.flush();
        }
        let (_spool, queued) = open(tmp.path());
        assert!(queued.is_empty());
    }

    #[tokio::test]
    async fn a_mostly_finished_segment_is_compacted_into_the_head() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let tuning = Tuning {
            segment_target: 16 * 1024,
            compact_after: Duration::ZERO,
        };
        let (spool, _) = Spool::open_tuned(tmp.path(), tuning).expect("open");
        let mut stored = Vec::new();
        for _ in 0..30 {
            stored.push(store_one(&spool, BODY).await.expect("store"));
        }
        assert!(spool.stats().segments >= 2, "{:?}", spool.stats());
        assert!(queue.join(layout::segment_name(1)).exists());
        // Everything in the first segment but one message (to a next hop
        // that is down, say) is delivered.
        let keep = stored[0].id.clone();
        for env in &stored[1..] {
            spool.remove(&env.id).expect("remove");
        }
        spool.flush();
        spool.flush();
        assert_eq!(spool.stats().compacted, 1, "{:?}", spool.stats());
        assert!(!queue.join(layout::segment_name(1)).exists());
        assert_eq!(
            spool
                .read_message(&keep)
                .expect("read")
                .read_all()
                .expect("bytes"),
            [HEADER, BODY].concat()
        );
        drop(spool);
        let (_spool, queued) = open(tmp.path());
        assert_eq!(ids(&queued), vec![keep]);
    }

    #[tokio::test]
    async fn a_record_found_twice_is_delivered_once() {
        // What a crash between compaction's copy and the deletion of the old
        // segment leaves: the same record in two segments.
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let env = {
            let (spool, _) = open(tmp.path());
            store_one(&spool, BODY).await.expect("store")
        };
        fs::copy(
            queue.join(layout::segment_name(1)),
            queue.join(layout::segment_name(5)),
        )
        .expect("copy");
        let (spool, queued) = open(tmp.path());
        assert_eq!(queued, vec![env.clone()]);
        spool.remove(&env.id).expect("remove");
        drop(spool);
        let (_spool, queued) = open(tmp.path());
        assert!(queued.is_empty(), "{queued:?}");
        assert!(names(&queue).is_empty(), "{:?}", names(&queue));
    }

    /// A 64 KiB tmpfs, unmounted when dropped.
    struct TinyFs(tempfile::TempDir);
    impl TinyFs {
        /// Panics when it cannot: the test needs root (as tests/run does, for
        /// its packages), and a skipped test would prove nothing.
        fn mount() -> TinyFs {
            let dir = tempfile::tempdir().expect("tempdir");
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
                .arg(dir.path())
                .output()
                .expect("mount (util-linux)");
            assert!(
                out.status.success(),
                "cannot mount a 64 KiB tmpfs for the disk-full test (run the tests as root, \
                 as tests/run does): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            TinyFs(dir)
        }
    }
    impl Drop for TinyFs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0.path()).status();
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_disk_full_and_space_coming_back_is_used() {
        let fs = TinyFs::mount();
        let dir = fs.0.path().join("spool");
        let (spool, _) = open(&dir);
        let small = store_one(&spool, BODY).await.expect("small message");
        let err = store_one(&spool, &vec![b'x'; 128 * 1024])
            .await
            .expect_err("too big for the disk");
        assert!(err.is_disk_full(), "{err}");
        let again = store_one(&spool, BODY).await.expect("space is back");
        assert_eq!(
            spool
                .read_message(&again.id)
                .expect("read")
                .read_all()
                .expect("bytes"),
            [HEADER, BODY].concat()
        );
        drop(spool);
        let (_spool, queued) = open(&dir);
        assert_eq!(ids(&queued), vec![small.id, again.id]);
    }

    /// Receives `len` bytes the way a session does, `piece` at a time.
    async fn receive(spool: &Spool, id: &str, len: usize) -> (Incoming, Vec<u8>) {
        let mut incoming = spool.incoming(id.to_string());
        let mut all = Vec::with_capacity(len);
        let mut n = 0u32;
        while all.len() < len {
            let line = format!("line {n:070}\r\n");
            n += 1;
            all.extend_from_slice(line.as_bytes());
            incoming.buffer().extend_from_slice(line.as_bytes());
            if incoming.is_full() {
                incoming.make_room(0).await;
            }
        }
        (incoming, all)
    }

    /// Issue #15: a message past the buffer goes to its own file as it
    /// arrives; its record in the segment is small and names it; it is read
    /// back from the file, survives a restart, and goes when it is finished.
    #[tokio::test]
    async fn a_large_message_lives_in_its_own_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let (spool, _) = open(tmp.path());
        let id = spool.new_id();
        let (incoming, bytes) = receive(&spool, &id, 1024 * 1024).await;
        assert!(incoming.spilled() > 0, "on disk before the end");
        assert!(
            incoming.buffered().len() < 300 * 1024,
            "the buffer stays bounded"
        );
        let stored = spool
            .store(sample_envelope(&id), incoming)
            .await
            .expect("store");
        let external = stored.external.expect("in its own file");
        assert_eq!(external.len, bytes.len() as u64);
        assert_eq!(external.crc, crc32fast::hash(&bytes));
        let file = queue.join(layout::message_name(&id));
        assert_eq!(fs::read(&file).expect("the file"), bytes);
        let segment = fs::metadata(only_segment(&queue)).expect("segment").len();
        assert!(segment < 4096, "the record names the file: {segment} bytes");
        assert!(
            spool.message_in_memory(&id).is_none(),
            "no copy kept in RAM"
        );
        let message = spool.read_message(&id).expect("read");
        assert!(message.in_memory().is_none());
        assert_eq!(message.read_all().expect("bytes"), bytes);
        drop((spool, message));

        let (spool, queued) = open(tmp.path());
        assert_eq!(queued[0].external, Some(external));
        assert_eq!(
            spool.read_message(&id).expect("read").len(),
            bytes.len() as u64
        );
        spool.remove(&id).expect("remove");
        spool.flush();
        assert!(!file.exists(), "its file goes with it");
    }

    fn fresh(message: &Message) -> Option<Fresh> {
        match message {
            Message::File(f) => f.fresh,
            Message::Memory(_) => panic!("a large message is read from its file"),
        }
    }

    /// Only the first attempt at a file this process wrote is told it is
    /// fresh (and so may skip the read-back check): not a later attempt,
    /// nor any attempt after a restart.
    #[tokio::test]
    async fn a_large_message_is_fresh_for_its_first_attempt_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (spool, _) = open(tmp.path());
        let mut ids = Vec::new();
        for ready in [true, false] {
            let id = spool.new_id();
            let (mut incoming, _) = receive(&spool, &id, 600 * 1024).await;
            incoming.set_data_ready(ready);
            let stored = spool
                .store(sample_envelope(&id), incoming)
                .await
                .expect("store");
            let message = spool.read_message(&id).expect("read");
            assert_eq!(fresh(&message), Some(Fresh { data_ready: ready }));
            ids.push(stored);
        }
        spool.update(&ids[0]).expect("first attempt over");
        assert_eq!(fresh(&spool.read_message(&ids[0].id).expect("read")), None);
        drop(spool);
        let (spool, _) = open(tmp.path());
        assert_eq!(fresh(&spool.read_message(&ids[1].id).expect("read")), None);
    }

    /// A message that ends in an error leaves nothing (its file goes when the
    /// session drops it); what a crash leaves is removed at the next start.
    #[tokio::test]
    async fn an_unfinished_large_message_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let (spool, _) = open(tmp.path());
        let id = spool.new_id();
        let (incoming, _) = receive(&spool, &id, 600 * 1024).await;
        assert!(queue.join(layout::message_name(&id)).exists());
        drop(incoming);
        assert!(!queue.join(layout::message_name(&id)).exists());

        // A crash in the middle: the file is there, no record names it.
        let (mut incoming, _) = receive(&spool, &spool.new_id(), 600 * 1024).await;
        incoming.keep(); // as if the process died before dropping it
        drop(incoming);
        drop(spool);
        assert_eq!(
            names(&queue).iter().filter(|n| n.ends_with(".msg")).count(),
            1
        );
        let (_spool, queued) = open(tmp.path());
        assert!(queued.is_empty());
        assert!(
            names(&queue).iter().all(|n| !n.ends_with(".msg")),
            "{:?}",
            names(&queue)
        );
    }

    /// A record whose file is gone cannot be delivered: it is kept in corrupt/
    /// for the operator, not returned, and the others load.
    #[tokio::test]
    async fn a_record_whose_file_is_gone_is_quarantined() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let queue = tmp.path().join(QUEUE_DIR);
        let (big, small) = {
            let (spool, _) = open(tmp.path());
            let id = spool.new_id();
            let (incoming, _) = receive(&spool, &id, 600 * 1024).await;
            let big = spool
                .store(sample_envelope(&id), incoming)
                .await
                .expect("big");
            let small = store_one(&spool, BODY).await.expect("small");
            (big, small)
        };
        fs::remove_file(queue.join(layout::message_name(&big.id))).expect("rm");
        let (_spool, queued) = open(tmp.path());
        assert_eq!(ids(&queued), vec![small.id]);
        assert_eq!(names(&tmp.path().join(CORRUPT_DIR)).len(), 1);
    }
}
