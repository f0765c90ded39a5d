//! The directory snapshot's cache file (`routing.contacts`), written off the
//! routing path: the mirror hands each new snapshot's text over and goes on;
//! this writer replaces the file atomically (write, fsync, rename: the
//! contacts-table writer of `safeio`) at once when it has been idle for
//! [`QUIET`] (the first load, a lone change); a snapshot that follows a write
//! sooner is part of a burst, and the newest text is written once no snapshot
//! came for [`QUIET`], or at the latest [`MAX_AGE`] after the first one not
//! yet written. At shutdown the newest text is written before the relay
//! exits, so the file is always, eventually, the last good snapshot.
//!
//! Why wait for the changes to settle: the file is the whole directory (13 MB
//! for 100,000 users), and on ext4 (data=ordered) the spool's fdatasync
//! commits the journal with whatever file data is being written back, so each
//! cache write during a burst of changes made the SMTP sessions' `250` wait
//! for it. The cache only matters to a relay restarted while no directory
//! server answers; a few seconds of changes missing from it are caught up at
//! the next connection (a full load).

use crate::safeio::{self, Mode};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A snapshot this long after the last write is written at once; during a
/// burst, the cache is written once no new snapshot came for this long...
pub const QUIET: Duration = Duration::from_secs(1);
/// ...or at the latest this long after the oldest snapshot not yet written.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// The writer of one cache file.
#[derive(Debug)]
pub struct CacheWriter {
    path: PathBuf,
    pending: Mutex<Option<String>>,
    wake: Notify,
}

impl CacheWriter {
    /// A writer of `path` (nothing runs until [`spawn`](Self::spawn)).
    pub fn new(path: PathBuf) -> Arc<CacheWriter> {
        Arc::new(CacheWriter {
            path,
            pending: Mutex::new(None),
            wake: Notify::new(),
        })
    }

    /// The newest snapshot's text; replaces any text not written yet.
    pub fn offer(&self, text: String) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
        self.wake.notify_one();
    }

    /// Writes until `shutdown`, then writes what is still pending and ends.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut last_write = None;
            loop {
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = shutdown.cancelled() => break,
                }
                // A snapshot after a quiet spell (the first load, a lone
                // change) is written at once; one that comes soon after a
                // write is part of a burst, written once the burst settles.
                let recent =
                    last_write.is_some_and(|at: tokio::time::Instant| at.elapsed() < QUIET);
                if recent && !this.settle(&shutdown).await {
                    break;
                }
                this.write_pending().await;
                last_write = Some(tokio::time::Instant::now());
            }
            this.write_pending().await;
        })
    }

    /// Waits, after a first offer, until no other came for [`QUIET`] or
    /// [`MAX_AGE`] has passed; `false` if `shutdown` came first.
    async fn settle(&self, shutdown: &CancellationToken) -> bool {
        let deadline = tokio::time::Instant::now() + MAX_AGE;
        loop {
            let quiet = tokio::time::Instant::now() + QUIET;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(quiet.min(deadline)) => return true,
                _ = shutdown.cancelled() => return false,
            }
        }
    }

    /// Writes the pending text, if any (on a blocking thread: fsync).
    pub async fn write_pending(&self) {
        let Some(text) = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            safeio::replace(&path, text.as_bytes(), Mode::KeepExisting)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("directory snapshot cache not written (routing goes on): {e}")
            }
            Err(e) => tracing::error!("directory snapshot cache not written: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(path: &std::path::Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    /// A first snapshot is written at once, a burst after it once it settles
    /// or after MAX_AGE if it does not; shutdown writes the newest at once. (Virtual time: tokio does
    /// not advance it while the blocking write runs.)
    #[tokio::test(start_paused = true)]
    async fn writes_when_the_changes_settle_or_at_the_latest_after_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let writer = CacheWriter::new(path.clone());
        let shutdown = CancellationToken::new();
        let task = writer.spawn(shutdown.clone());

        // A first snapshot is written at once (a relay that dies soon
        // after its first load still leaves a cache).
        writer.offer("one\n".into());
        tokio::time::sleep(QUIET / 10).await;
        assert_eq!(read(&path).as_deref(), Some("one\n"));

        // Right after it, a snapshot every QUIET/2 for longer than MAX_AGE:
        // none is written until MAX_AGE after the first, then the newest.
        let step = QUIET / 2;
        let mut waited = Duration::ZERO;
        let mut n = 0;
        while waited < MAX_AGE - step {
            n += 1;
            writer.offer(format!("burst {n}\n"));
            tokio::time::sleep(step).await;
            waited += step;
            assert_eq!(
                read(&path).as_deref(),
                Some("one\n"),
                "written at {waited:?}"
            );
        }
        for _ in 0..4 {
            n += 1;
            writer.offer(format!("burst {n}\n"));
            tokio::time::sleep(step).await;
        }
        let at_max_age = read(&path).unwrap();
        assert!(at_max_age.starts_with("burst "), "{at_max_age}");
        assert_ne!(at_max_age, format!("burst {n}\n"));

        // Shutdown writes what is pending without waiting.
        writer.offer("last\n".into());
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(read(&path).as_deref(), Some("last\n"));
    }
}
