//! Group commit: one thread appends accepted messages to the head segment in
//! batches and makes each batch durable with one `fdatasync`.
//!
//! Sessions hand their record to this thread and wait. The thread takes the
//! first record, then every other one already waiting, writes them all with one
//! `pwritev` at the end of the head segment, calls `fdatasync` once, records
//! where each one is in the index, and answers every session. While it is in
//! `fdatasync`, new records queue up for the next batch, so the number of
//! syscalls and journal commits grows with time, not with messages — which is
//! what makes a relay fast on a real disk (DESIGN.md "Performance notes": one
//! create + write + fsync per message is Postfix's cost).
//!
//! The same thread also:
//! - appends finished ids to the segment's `.done` list (no fsync: a finish lost
//!   in a crash means one more delivery, never a lost message) and deletes a
//!   segment once nothing in it is live;
//! - starts a new head segment when the head reaches 8 MiB ([`Tuning`])
//!   (creating it costs one folder fsync), and drops an idle head with nothing live;
//! - compacts: a segment sealed for 30 s that is less than a
//!   quarter live (a few messages to a next hop that is down) has its live
//!   records copied to the head, so that disk use follows the queue, not history.
//!
//! A failed write or `fdatasync` fails its batch only (nothing in it was
//! acknowledged): the segment is truncated back to where the batch started, and
//! a batch of several is retried one record at a time, so one message too big
//! for a nearly full disk does not fail its neighbours. The thread never stops on
//! an error; it ends when the spool is dropped, after its last batch.

use super::index::Index;
use super::layout::{self, FILE_MODE};
use super::segment::{self, Location};
use crate::envelope::External;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// When segments rotate and compact.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// A head segment is sealed, and a new one started, past this size.
    pub segment_target: u64,
    /// A sealed segment is compacted only after this long (most of what is
    /// live in a freshly sealed segment is a delivery in flight that will
    /// finish soon).
    pub compact_after: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            segment_target: 8 * 1024 * 1024,
            compact_after: Duration::from_secs(30),
        }
    }
}
/// After a failed compaction, how long before the segment is tried again.
const COMPACT_RETRY: Duration = Duration::from_secs(3600);
/// How long the thread waits for work before it does idle housekeeping.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// A message record to append.
pub struct Append {
    /// Queue id.
    pub id: String,
    /// First line and envelope (see `file_format`).
    pub prefix: Vec<u8>,
    /// The message bytes (Received header + body), kept in memory for the
    /// first delivery attempt once durable; `None` for a large message in its
    /// own file.
    pub message: Option<Arc<Vec<u8>>>,
    /// A large message's own file, already fdatasynced: its name becomes
    /// durable with the batch (the folder is fsynced).
    pub external: Option<External>,
    /// Where the outcome goes. If the receiver is gone the store was cancelled:
    /// nothing is acknowledged and the record is marked finished.
    pub done: oneshot::Sender<io::Result<()>>,
    /// Test hook: the write fails half-way with this error.
    pub fault: Option<io::ErrorKind>,
}

/// Work for the committer.
pub enum Op {
    /// Append a record durably.
    Append(Append),
    /// A message is finished: mark it in its segment's `.done` list, remove its
    /// `.state` file if it had one.
    Finished {
        /// Queue id.
        id: String,
        /// Where its record is.
        at: Location,
        /// Whether `<id>.state` exists.
        has_state: bool,
        /// Whether `<id>.msg` holds its bytes.
        external: bool,
    },
    /// Answer once everything sent before is done (shutdown, tests).
    Flush(mpsc::SyncSender<()>),
}

/// Counters kept by the committer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages made durable.
    pub messages: AtomicU64,
    /// Batches committed (= `fdatasync` calls that acknowledged messages).
    pub batches: AtomicU64,
    /// Largest batch seen.
    pub largest_batch: AtomicU64,
    /// Segments created.
    pub segments: AtomicU64,
    /// Records moved by compaction.
    pub compacted: AtomicU64,
}

/// Handle to the committer thread; dropping it lets the thread finish what it
/// was sent and waits for it.
#[derive(Debug)]
pub struct Committer {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Committer {
    /// Starts the committer for `queue_dir`; new segments are numbered from `next_segment`.
    pub fn start(
        queue_dir: &Path,
        index: Arc<Mutex<Index>>,
        next_segment: u64,
        tuning: Tuning,
    ) -> io::Result<Committer> {
        let worker = Worker {
            tuning,
            dir: File::open(queue_dir)?,
            queue: queue_dir.to_path_buf(),
            index,
            head: None,
            next_segment,
            done_files: HashMap::new(),
            counters: Arc::new(Counters::default()),
        };
        let counters = Arc::clone(&worker.counters);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || worker.run(&rx))?;
        Ok(Committer {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// Hands work to the thread; gives it back if the thread is gone.
    pub fn send(&self, op: Op) -> Result<(), Op> {
        match &self.tx {
            Some(tx) => tx.send(op).map_err(|mpsc::SendError(op)| op),
            None => Err(op),
        }
    }

    /// Waits until everything sent before has been done.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.send(Op::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// The committer's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The segment being appended to.
struct Head {
    number: u64,
    file: Arc<File>,
    size: u64,
}

struct Worker {
    tuning: Tuning,
    queue: PathBuf,
    dir: File,
    index: Arc<Mutex<Index>>,
    head: Option<Head>,
    next_segment: u64,
    /// `.done` lists opened for appending, by segment.
    done_files: HashMap<u64, File>,
    counters: Arc<Counters>,
}

impl Worker {
    fn run(mut self, rx: &mpsc::Receiver<Op>) {
        loop {
            let first = match rx.recv_timeout(IDLE_TICK) {
                Ok(op) => op,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.drop_idle_head();
                    self.compact_one();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut appends = Vec::new();
            let mut flushes = Vec::new();
            for op in std::iter::once(first).chain(rx.try_iter()) {
                match op {
                    Op::Append(a) => appends.push(a),
                    Op::Finished {
                        id,
                        at,
                        has_state,
                        external,
                    } => self.finish(&id, at, has_state, external),
                    Op::Flush(tx) => flushes.push(tx),
                }
            }
            self.commit(appends);
            self.compact_one();
            for tx in flushes {
                let _ = tx.send(());
            }
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a batch and answers its sessions.
    fn commit(&mut self, appends: Vec<Append>) {
        // A session that gave up before its record was written is not acknowledged.
        let appends: Vec<Append> = appends
            .into_iter()
            .filter(|a| !a.done.is_closed())
            .collect();
        if appends.is_empty() {
            return;
        }
        let records: Vec<[&[u8]; 2]> = appends
            .iter()
            .map(|a| {
                [
                    a.prefix.as_slice(),
                    a.message.as_deref().map_or(&[][..], Vec::as_slice),
                ]
            })
            .collect();
        let fault = appends.iter().find_map(|a| a.fault);
        // A large message's file was created since the folder was last
        // fsynced: its name must be as durable as the record naming it.
        let names = appends.iter().any(|a| a.external.is_some());
        match self.append(&records, fault, names) {
            Ok(locations) => self.acknowledge(appends, locations),
            Err(_) if appends.len() > 1 => {
                // One record may be the cause (too big for what is left of the
                // disk): the others get their own chance.
                for a in appends {
                    self.commit(vec![a]);
                }
            }
            Err(e) => {
                for a in appends {
                    let _ = a.done.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
        }
    }

    /// Records the batch in the index, then answers; a session gone in the
    /// meantime was never acknowledged, so its record is finished at once.
    fn acknowledge(&mut self, appends: Vec<Append>, locations: Vec<Location>) {
        {
            let mut index = self.index();
            for (a, at) in appends.iter().zip(&locations) {
                index.insert(a.id.clone(), *at, false, a.external);
                if let Some(message) = &a.message {
                    index.keep_hot(&a.id, Arc::clone(message));
                }
            }
        }
        let n = appends.len() as u64;
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters.messages.fetch_add(n, Ordering::Relaxed);
        self.counters.largest_batch.fetch_max(n, Ordering::Relaxed);
        for (a, at) in appends.into_iter().zip(locations) {
            if a.done.send(Ok(())).is_err() {
                self.index().remove(&a.id);
                self.finish(&a.id, at, false, a.external.is_some());
            }
        }
    }

    /// Writes records at the end of the head segment and fdatasyncs it; returns
    /// where each one landed. On error the segment is as before.
    fn append(
        &mut self,
        records: &[[&[u8]; 2]],
        fault: Option<io::ErrorKind>,
        names: bool,
    ) -> io::Result<Vec<Location>> {
        let head = self.head()?;
        let (number, file, start) = (head.number, Arc::clone(&head.file), head.size);
        let mut locations = Vec::with_capacity(records.len());
        let mut offset = start;
        for [prefix, message] in records {
            let len = (prefix.len() + message.len()) as u64;
            locations.push(Location {
                segment: number,
                offset,
                len,
            });
            offset += len;
        }
        let slices: Vec<IoSlice<'_>> = records.iter().flatten().map(|s| IoSlice::new(s)).collect();
        let result = match write_all_at(&file, slices, start, fault) {
            Ok(()) => file
                .sync_data()
                .and_then(|()| if names { self.dir.sync_all() } else { Ok(()) })
                .map_err(|e| (e, true)),
            Err(e) => Err((e, false)),
        };
        if let Err((e, in_sync)) = result {
            // Nothing of the batch was acknowledged; take it back out so the
            // next batch starts on a record boundary. If that fails, or
            // fdatasync failed (the page cache can no longer be trusted),
            // continue in a new segment.
            let rewound = file.set_len(start).is_ok();
            if in_sync || !rewound {
                self.seal_head();
            }
            return Err(e);
        }
        if let Some(head) = self.head.as_mut() {
            head.size = offset;
        }
        if let Some(segment) = self.index().segments.get_mut(&number) {
            segment.size = offset;
        }
        Ok(locations)
    }

    /// The head segment, creating one if needed (or if the head is full).
    fn head(&mut self) -> io::Result<&Head> {
        if self
            .head
            .as_ref()
            .is_some_and(|h| h.size >= self.tuning.segment_target)
        {
            self.seal_head();
        }
        if self.head.is_none() {
            let number = self.next_segment;
            let path = self.queue.join(layout::segment_name(number));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)?;
            // The new name must be durable before anything in it is acknowledged.
            if let Err(e) = self.dir.sync_all() {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            self.next_segment += 1;
            self.counters.segments.fetch_add(1, Ordering::Relaxed);
            let file = Arc::new(file);
            self.index().segments.insert(
                number,
                super::index::Segment {
                    file: Arc::clone(&file),
                    size: 0,
                    live: 0,
                    live_bytes: 0,
                    sealed_at: None,
                },
            );
            self.head = Some(Head {
                number,
                file,
                size: 0,
            });
        }
        Ok(self.head.as_ref().expect("head just set"))
    }

    /// Stops appending to the head; deletes it if nothing in it is live.
    fn seal_head(&mut self) {
        let Some(head) = self.head.take() else { return };
        if let Some(segment) = self.index().segments.get_mut(&head.number) {
            segment.sealed_at = Some(Instant::now());
        }
        self.delete_if_finished(head.number);
    }

    /// After a quiet moment, a head whose messages are all delivered goes
    /// (rather than waiting for the next batch).
    fn drop_idle_head(&mut self) {
        let Some(number) = self.head.as_ref().map(|h| h.number) else {
            return;
        };
        let empty = self
            .index()
            .segments
            .get(&number)
            .is_some_and(|s| s.live == 0);
        if empty {
            self.seal_head();
        }
    }

    /// Marks a message finished in its segment's `.done` list (then removes
    /// a large message's file: the other order could leave a live record
    /// whose bytes are gone).
    fn finish(&mut self, id: &str, at: Location, has_state: bool, external: bool) {
        if has_state {
            remove_quietly(&self.queue.join(layout::state_name(id)));
        }
        let gone = !self.index().segments.contains_key(&at.segment);
        let recorded = gone
            || match self.append_done(at.segment, id) {
                Ok(()) => true,
                Err(e) => {
                    // It will be delivered again after a restart: at-least-once.
                    tracing::warn!(id, error = %e, "cannot record a finished message in the spool");
                    false
                }
            };
        if external && recorded {
            remove_quietly(&self.queue.join(layout::message_name(id)));
        }
        if !gone {
            self.delete_if_finished(at.segment);
        }
    }

    fn append_done(&mut self, segment: u64, id: &str) -> io::Result<()> {
        let file = match self.done_files.entry(segment) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(segment::open_done(
                &self.queue.join(layout::done_name(segment)),
            )?),
        };
        segment::write_done(file, id)
    }

    /// Deletes a sealed segment with nothing live (no fsync: if the deletion is
    /// lost, recovery finds every record in it finished).
    fn delete_if_finished(&mut self, number: u64) {
        let finished = {
            let mut index = self.index();
            let finished = index
                .segments
                .get(&number)
                .is_some_and(|s| s.live == 0 && s.sealed_at.is_some());
            if finished {
                index.segments.remove(&number);
            }
            finished
        };
        if !finished {
            return;
        }
        self.done_files.remove(&number);
        for name in [layout::segment_name(number), layout::done_name(number)] {
            let path = self.queue.join(name);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a finished spool segment");
                }
            }
        }
    }

    /// Copies the live records of one mostly-finished old segment to the head,
    /// so that the old one can go.
    fn compact_one(&mut self) {
        let candidate = {
            let index = self.index();
            index
                .segments
                .iter()
                .find(|(_, s)| {
                    s.sealed_at
                        .is_some_and(|t| t.elapsed() >= self.tuning.compact_after)
                        && s.live > 0
                        && s.live_bytes * 4 < s.size
                })
                .map(|(&n, s)| {
                    let moving: Vec<(String, Location)> = index
                        .messages
                        .iter()
                        .filter(|(_, e)| e.at.segment == n)
                        .map(|(id, e)| (id.clone(), e.at))
                        .collect();
                    (n, Arc::clone(&s.file), moving)
                })
        };
        let Some((number, file, moving)) = candidate else {
            return;
        };
        let mut records = Vec::with_capacity(moving.len());
        for (id, at) in &moving {
            match segment::read_record_bytes(&file, *at, id) {
                Ok(bytes) => records.push(bytes),
                Err(e) => {
                    // Leave the segment alone for a long while; recovery at the
                    // next start reports the record and keeps it for a human.
                    tracing::error!(id, segment = number, error = ?e, "cannot compact a spool segment");
                    if let Some(s) = self.index().segments.get_mut(&number) {
                        s.sealed_at = Some(Instant::now() + COMPACT_RETRY);
                    }
                    return;
                }
            }
        }
        let slices: Vec<[&[u8]; 2]> = records.iter().map(|r| [r.as_slice(), &[][..]]).collect();
        let locations = match self.append(&slices, None, false) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(segment = number, error = %e, "spool compaction deferred");
                return;
            }
        };
        self.counters
            .compacted
            .fetch_add(moving.len() as u64, Ordering::Relaxed);
        for ((id, _), to) in moving.iter().zip(locations) {
            let moved = self.index().relocate(id, to);
            if !moved {
                // Finished while being copied: the copy is finished too.
                let _ = self.append_done(to.segment, id);
            }
        }
        self.delete_if_finished(number);
    }
}

/// `pwritev` until every slice is written. `fault` (tests) fails after the
/// first slice, as a full disk would.
fn write_all_at(
    file: &File,
    mut slices: Vec<IoSlice<'_>>,
    mut offset: u64,
    fault: Option<io::ErrorKind>,
) -> io::Result<()> {
    let mut bufs = &mut slices[..];
    if let Some(kind) = fault {
        file.write_all_at(&bufs[0], offset)?;
        return Err(io::Error::from(kind));
    }
    while !bufs.is_empty() {
        // The kernel takes at most IOV_MAX (1024) slices per call.
        let take = bufs.len().min(1024);
        let n = rustix::io::pwritev(file, &bufs[..take], offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Removes a spool file that may already be gone; other failures are logged
/// (a leftover is cleaned up at the next start).
fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a finished spool file");
        }
    }
}
