//! The directory snapshot's cache file (`routing.contacts`), written off the
//! routing path: the mirror hands each new snapshot's text over and goes on;
//! this writer replaces the file atomically (write, fsync, rename: the
//! contacts-table writer of `safeio`) at once when it has been idle, then at
//! most once per [`DEBOUNCE`] with the newest text (a burst of changes costs
//! one write per interval, not one per snapshot). At shutdown the newest text
//! is written before the relay exits, so the file is always, eventually, the
//! last good snapshot.

use crate::safeio::{self, Mode};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The shortest time between two writes of the cache.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

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
            loop {
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = shutdown.cancelled() => break,
                }
                this.write_pending().await;
                tokio::select! {
                    _ = tokio::time::sleep(DEBOUNCE) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            this.write_pending().await;
        })
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
