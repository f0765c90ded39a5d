//! Group commit: one thread makes spooled files visible and durable in batches.
//!
//! Each session writes and fsyncs its own `<id>.tmp` on the blocking pool.
//! Those fsyncs run concurrently, so the kernel merges them into shared
//! journal commits (ext4/jbd2 batches concurrent fsyncs); an fsync issued one
//! file after another from a single thread would not, because with delayed
//! allocation each file's blocks are only allocated by its own fsync, which
//! then needs a journal commit of its own (measured here: 25 files took 4–16 ms
//! serially). The session then hands the file to the committer, which takes
//! the first file, then every other one already waiting, and for the batch:
//!
//! 1. renames each `<id>.tmp` to `<id>`, so a name in the queue folder always
//!    means a complete, fsynced file;
//! 2. fsyncs the queue folder once, which makes every rename of the batch durable;
//! 3. answers every waiting session.
//!
//! While it is busy, new files queue up for the next batch, so folder fsyncs
//! grow with time, not with messages. A failure is confined to the files it
//! touches: a file that cannot be renamed fails alone; a failed folder fsync
//! fails the batch and removes its files, since none of them is acknowledged.
//! The thread never stops on an error; it ends when the spool is dropped.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// One written and fsynced message file, waiting for its final name.
pub struct Job {
    /// Its temporary name in the queue folder.
    pub tmp: PathBuf,
    /// Its final name in the queue folder.
    pub dest: PathBuf,
    /// Where the outcome goes. If the receiver is gone the store was cancelled,
    /// nothing was acknowledged, and the file is removed.
    pub done: oneshot::Sender<io::Result<()>>,
}

/// Counters kept by the committer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages made durable.
    pub messages: AtomicU64,
    /// Batches committed (= folder fsyncs).
    pub batches: AtomicU64,
    /// Largest batch seen.
    pub largest_batch: AtomicU64,
}

/// Handle to the committer thread; dropping it (and every clone of the
/// sender) lets the thread finish its last batch and exit.
#[derive(Debug)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

impl Committer {
    /// Starts the committer thread for `queue_dir`.
    pub fn start(queue_dir: &Path) -> io::Result<Committer> {
        let dir = File::open(queue_dir)?;
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || run(&dir, &rx, &thread_counters))?;
        Ok(Committer { tx, counters })
    }

    /// A sender to hand jobs to the committer from any thread.
    pub fn sender(&self) -> mpsc::Sender<Job> {
        self.tx.clone()
    }

    /// The committer's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

fn run(dir: &File, rx: &mpsc::Receiver<Job>, counters: &Counters) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        commit(dir, batch, counters);
    }
}

fn commit(dir: &File, batch: Vec<Job>, counters: &Counters) {
    let mut renamed = Vec::with_capacity(batch.len());
    for job in batch {
        if job.done.is_closed() {
            discard(&job.tmp);
            continue;
        }
        match fs::rename(&job.tmp, &job.dest) {
            Ok(()) => renamed.push(job),
            Err(e) => {
                discard(&job.tmp);
                let _ = job.done.send(Err(e));
            }
        }
    }
    if renamed.is_empty() {
        return;
    }
    if let Err(e) = dir.sync_all() {
        tracing::error!(error = %e, files = renamed.len(), "spool folder fsync failed");
        for job in renamed {
            discard(&job.dest);
            let _ = job.done.send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        return;
    }
    let n = renamed.len() as u64;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.messages.fetch_add(n, Ordering::Relaxed);
    counters.largest_batch.fetch_max(n, Ordering::Relaxed);
    for job in renamed {
        if job.done.send(Ok(())).is_err() {
            // The session went away before it could answer 250: not
            // acknowledged, so not ours to deliver (the client will retry).
            discard(&job.dest);
        }
    }
}

/// Removes a file nobody will acknowledge. Failure is only logged: recovery
/// at the next start deals with a leftover `.tmp`; a leftover message is
/// delivered (at-least-once), never lost.
fn discard(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove unacknowledged spool file");
        }
    }
}
