//! The live contacts table: loaded at start, reloaded when the file changes (polled)
//! or on SIGHUP, and swapped atomically.
//!
//! A reload builds a complete new [`ContactsTable`] and swaps it in only when the
//! whole file is valid; on any error the table in force stays, every error is
//! logged and `coexist_routing_reloads_total{result="error"}` counts the attempt.
//! Sessions take one [`Contacts::current`] snapshot per transaction, so a reload
//! never splits a transaction's recipients across two tables.
//!
//! Change detection is a `stat` every [`POLL_INTERVAL`] comparing device, inode,
//! size, mtime and ctime: writers rename a new file in (new inode), and an editor
//! writing in place changes size or timestamps. Polling needs no platform API
//! (inotify loses the watch when the file is renamed over) and costs one `stat`
//! per half second.

use super::store;
use super::table::{ContactsTable, TableError};
use crate::metrics::metrics;
use arc_swap::ArcSwap;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the watcher looks at the file; DESIGN.md promises pickup within 2 s.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// `None` when the file cannot be stat'ed (missing): that is a state too.
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The live table that sessions take snapshots of.
#[derive(Debug)]
pub struct Contacts {
    path: PathBuf,
    routes: BTreeSet<String>,
    current: ArcSwap<ContactsTable>,
    /// Stamp of the file as the last load attempt found it, good or bad. The
    /// mutex also serialises reloads (watcher and SIGHUP).
    seen: Mutex<Option<FileStamp>>,
    /// Whether a real table is in force (not the placeholder); `/readyz` reads it.
    loaded: Arc<AtomicBool>,
}

impl Contacts {
    /// Loads the table at `path`; `routes` are the configured route names. A
    /// missing or invalid table is an error (the relay exits 2 on it at start).
    pub fn load(path: &Path, routes: BTreeSet<String>) -> Result<Arc<Contacts>, Vec<TableError>> {
        let contacts = Contacts::pending(path, routes);
        contacts.reload()?;
        Ok(contacts)
    }

    /// A live table with nothing loaded yet (the placeholder: accepted-domain
    /// recipients get `451 4.3.0`) until [`install`](Self::install) or a
    /// successful [`reload`](Self::reload).
    pub fn pending(path: &Path, routes: BTreeSet<String>) -> Arc<Contacts> {
        Arc::new(Contacts {
            path: path.to_path_buf(),
            routes,
            current: ArcSwap::from_pointee(ContactsTable::placeholder()),
            seen: Mutex::new(None),
            loaded: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The configured route names (what a table's route column may say).
    pub fn routes(&self) -> &BTreeSet<String> {
        &self.routes
    }

    /// Whether a table is in force (false while only the placeholder is).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The flag behind [`is_loaded`](Self::is_loaded), for `/readyz`.
    pub fn loaded_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.loaded)
    }

    /// Swaps in a snapshot built elsewhere (the directory mirror, its cache);
    /// `completed` is when that snapshot was complete (Unix seconds), for
    /// `routing_source_last_sync_timestamp_seconds`. Counts as a good reload.
    pub fn install(&self, table: ContactsTable, completed: i64) {
        let n = table.len();
        self.current.store(Arc::new(table));
        self.loaded.store(true, Ordering::Release);
        let m = metrics();
        m.routing_contacts.set(i64::try_from(n).unwrap_or(i64::MAX));
        m.routing_reload(true);
        m.routing_source_last_sync.set(completed);
    }

    /// A live table that starts from an already parsed `table` (tests, one-shot
    /// commands); `reload` and the watcher read `path` as usual.
    pub fn with_table(
        path: &Path,
        routes: BTreeSet<String>,
        table: ContactsTable,
    ) -> Arc<Contacts> {
        Arc::new(Contacts {
            seen: Mutex::new(FileStamp::of(path)),
            path: path.to_path_buf(),
            routes,
            current: ArcSwap::from_pointee(table),
            loaded: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The table file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table now in force (one snapshot per transaction).
    pub fn current(&self) -> Arc<ContactsTable> {
        self.current.load_full()
    }

    /// Re-reads and parses the file now (blocking: call it from
    /// `spawn_blocking`); swaps the table in only if it is valid and returns its
    /// number of contacts. On error the previous table stays in force.
    pub fn reload(&self) -> Result<usize, Vec<TableError>> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Stamp before reading: a change during the read shows up on the next poll.
        *seen = FileStamp::of(&self.path);
        let m = metrics();
        match store::load(&self.path, &|r| self.routes.contains(r)) {
            Ok(table) => {
                let n = table.len();
                self.current.store(Arc::new(table));
                self.loaded.store(true, Ordering::Release);
                m.routing_contacts.set(i64::try_from(n).unwrap_or(i64::MAX));
                m.routing_reload(true);
                // A file is always "up"; its snapshot is as new as its last good load.
                m.routing_source_up.set(1);
                m.routing_source_last_sync
                    .set(chrono::Utc::now().timestamp());
                tracing::info!(path = %self.path.display(), contacts = n, "contacts table loaded");
                Ok(n)
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("{e}");
                }
                m.routing_reload(false);
                tracing::error!(
                    path = %self.path.display(),
                    errors = errors.len(),
                    still_serving = self.current.load().len(),
                    "contacts table not loaded; keeping the previous one"
                );
                Err(errors)
            }
        }
    }

    /// Reloads when the file is not the one the last attempt saw. A broken or
    /// missing file is therefore reported once, not every poll.
    fn reload_if_changed(&self) {
        let now = FileStamp::of(&self.path);
        let changed = *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != now;
        if changed {
            let _ = self.reload(); // errors are logged and counted by reload
        }
    }

    /// Polls the file every [`POLL_INTERVAL`] and reloads it when it changed,
    /// parsing on the blocking pool. Ends when `shutdown` is cancelled.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let contacts = Arc::clone(&this);
                        // Awaited, so checks never overlap and a slow parse delays the next one.
                        let check = tokio::task::spawn_blocking(move || contacts.reload_if_changed());
                        if let Err(e) = check.await {
                            tracing::error!("contacts table check failed: {e}");
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn routes() -> BTreeSet<String> {
        ["cloud".to_string()].into()
    }

    fn errors_counted() -> u64 {
        metrics()
            .routing_reloads_total
            .with_label_values(&["error"])
            .get()
    }

    /// Writes `contents` atomically as a migrator would (new inode, renamed in).
    fn replace(path: &Path, contents: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn load_fails_on_missing_or_bad_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let before = errors_counted();
        let e = Contacts::load(&path, routes()).unwrap_err();
        assert!(e[0].to_string().contains("create an empty file"));
        std::fs::write(&path, "a@x.example t@y.example moon\n").unwrap();
        let e = Contacts::load(&path, routes()).unwrap_err();
        assert_eq!(e[0].line, 1);
        assert!(errors_counted() >= before + 2);
    }

    #[test]
    fn reload_keeps_the_old_table_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        std::fs::write(&path, "a@x.example t@y.example cloud\n").unwrap();
        let contacts = Contacts::load(&path, routes()).unwrap();
        let snapshot = contacts.current();
        replace(&path, "a@x.example t@y.example\nb@x.example u@y.example\n");
        assert_eq!(contacts.reload().unwrap(), 2);
        // The snapshot taken before is untouched; the new one has both.
        assert_eq!(snapshot.len(), 1);
        assert_eq!(contacts.current().len(), 2);

        let before = errors_counted();
        replace(&path, "broken\n");
        assert!(contacts.reload().is_err());
        assert_eq!(contacts.current().len(), 2);
        assert!(errors_counted() > before);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watcher_picks_up_renamed_table_and_survives_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        std::fs::write(&path, "a@corp.example a@tenant.example\n").unwrap();
        let contacts = Contacts::load(&path, routes()).unwrap();
        let shutdown = CancellationToken::new();
        let watcher = contacts.spawn_watcher(shutdown.clone());

        let started = Instant::now();
        replace(&path, "b@corp.example b@tenant.example cloud\n");
        wait_until("table B", || {
            contacts.current().get("b@corp.example").is_some()
        })
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(contacts.current().get("a@corp.example").is_none());

        let before = errors_counted();
        replace(&path, "b@corp.example\n");
        let broken = FileStamp::of(&path);
        wait_until("the broken table to be tried", || {
            *contacts.seen.lock().unwrap() == broken
        })
        .await;
        assert!(errors_counted() > before);
        let table = contacts.current();
        assert_eq!(
            table.lookup("b@corp.example", "").unwrap().rewritten,
            "b@tenant.example"
        );

        // Fixed again: picked up again.
        replace(&path, "c@corp.example c@tenant.example\n");
        wait_until("table C", || {
            contacts.current().get("c@corp.example").is_some()
        })
        .await;

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("watcher ends on shutdown")
            .unwrap();
    }
}
