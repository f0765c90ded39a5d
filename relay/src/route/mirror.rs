//! The directory as the routing source (`routing.source = "ldap"`): the relay
//! mirrors it and never queries it per recipient (DESIGN.md "The directory").
//!
//! - Start: the last good snapshot (`routing.contacts`, the cache) is served at
//!   once when there is one; otherwise the placeholder is in force (accepted
//!   domains get `451 4.3.0`, `/readyz` 503) until the first load completes.
//! - Each connection does one full load, then follows changes: RFC 4533
//!   refreshAndPersist when the root DSE offers the Sync Request control
//!   (OpenLDAP syncprov), else a paged full re-read every `[ldap] refresh`.
//!   Each change is applied to an [`Index`] that re-decides only the users it
//!   touches; every complete result (one per transaction batch) becomes a new
//!   [`ContactsTable`], swapped in like a reloaded file, and handed to the
//!   [`CacheWriter`], which writes it atomically to the cache in the
//!   contacts-table format off the routing path. No cookie is kept: a reconnection reads everything again, so the
//!   catch-up after an outage is a full load (simple, and always correct).
//! - A failed attempt (connect, bind, search, a probe that times out) logs one
//!   line with the server's words, sets `routing_source_up` to 0 and retries
//!   after 1 s, doubling to 60 s; SIGHUP retries (or re-reads) at once. The
//!   snapshot in force keeps routing throughout.
//! - Changes are applied in batches: a burst is coalesced ([`SETTLE`],
//!   [`MAX_DELAY`]) and the table is built off the async threads, so SMTP
//!   sessions never wait for the directory.

use super::cache::CacheWriter;
use super::reload::Contacts;
use super::snapshot::Builder;
use crate::config::ldap::LdapConfig;
use crate::directory::client::{self, Connection, DirectoryError};
use crate::directory::index::{self, Index};
use crate::directory::model::{self, DirEntry, Problem};
use crate::metrics::metrics;
use ldap3::controls::{
    Control, ControlParser, ControlType, EntryState, MakeCritical, RawControl, RefreshMode,
    SyncInfo, SyncRequest, SyncState,
};
use ldap3::{Scope, SearchEntry};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A change is published once no other change came for this long...
pub const SETTLE: Duration = Duration::from_millis(50);
/// ...or at the latest this long after the first unpublished change.
pub const MAX_DELAY: Duration = Duration::from_millis(500);
/// Changes applied between two yields to the other tasks of the worker
/// (one costs 10–30 µs: 16 keep a session's wait well under a millisecond).
const YIELD_EVERY: u64 = 16;
/// How often the connection is proved alive (WhoAmI); with the timeout below,
/// an outage shows in `routing_source_up` within 15 s (DESIGN.md).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// A probe slower than this counts as an outage.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);
/// First retry delay after a failure; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The mirror of one directory into one live table.
pub struct Mirror {
    config: Arc<LdapConfig>,
    contacts: Arc<Contacts>,
    /// Writes each installed snapshot to `routing.contacts`.
    cache: Arc<CacheWriter>,
    /// Builds each snapshot.
    builder: Builder,
    /// Problems already logged, so a bad entry is reported once, not at every
    /// change.
    reported: Mutex<BTreeSet<Problem>>,
}

/// What a snapshot follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// A full read of the directory (start, reconnection, re-read).
    Full,
    /// Changes applied to the last one.
    Changes,
}

/// How a session with one server ended, other than by an error.
enum End {
    Shutdown,
    Reread,
    /// The server lists RFC 4533 but this database does not do it (OpenLDAP
    /// without the syncprov overlay on it): re-read periodically instead.
    NoSync,
}

impl Mirror {
    /// A mirror of `config`'s directory into `contacts` (whose path is the cache).
    pub fn new(config: LdapConfig, contacts: Arc<Contacts>) -> std::io::Result<Arc<Mirror>> {
        Ok(Arc::new(Mirror {
            config: Arc::new(config),
            cache: CacheWriter::new(contacts.path().to_path_buf()),
            builder: Builder::start()?,
            contacts,
            reported: Mutex::new(BTreeSet::new()),
        }))
    }

    /// Serves the cache, if there is a usable one (at start, before the first
    /// connection); returns whether it did. A missing cache is normal on the
    /// first start; a broken one is logged and left alone (the next good
    /// snapshot replaces it).
    pub fn load_cache(&self) -> bool {
        let path = self.contacts.path();
        let routes = self.contacts.routes();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(cache = %path.display(), "no directory snapshot cached yet; waiting for the directory");
                return false;
            }
            _ => {}
        }
        match super::store::load(path, &|r| routes.contains(r)) {
            Ok(table) => {
                let completed = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                let n = table.len();
                self.contacts.install(table, completed);
                tracing::info!(cache = %path.display(), contacts = n, "serving the cached directory snapshot until the directory answers");
                true
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("{e}");
                }
                tracing::error!(cache = %path.display(), "cached directory snapshot not usable; waiting for the directory");
                false
            }
        }
    }

    /// Runs the mirror until `shutdown`; each message on `reread` (SIGHUP)
    /// forces a full re-read, or an immediate retry while the directory is down.
    pub fn spawn(
        self: &Arc<Self>,
        mut reread: mpsc::UnboundedReceiver<()>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        let writer = self.cache.spawn(shutdown.clone());
        tokio::spawn(async move {
            metrics().routing_source_up.set(0);
            let mut backoff = FIRST_BACKOFF;
            loop {
                match this.session(&mut reread, &shutdown, &mut backoff).await {
                    Ok(End::Shutdown) => break,
                    Ok(End::Reread) => continue,
                    Ok(End::NoSync) => unreachable!("handled in the session"),
                    Err(e) => {
                        metrics().routing_source_up.set(0);
                        tracing::warn!(
                            serving = this.contacts.current().len(),
                            retry_in = %crate::config::units::format_duration(backoff),
                            "directory: {e}; routing with the snapshot in force"
                        );
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                    asked = reread.recv() => if asked.is_none() { break },
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            // The newest snapshot is on disk before the relay exits.
            let _ = writer.await;
        })
    }

    /// One connection: connect (failover), full load, then follow changes.
    async fn session(
        &self,
        reread: &mut mpsc::UnboundedReceiver<()>,
        shutdown: &CancellationToken,
        backoff: &mut Duration,
    ) -> Result<End, DirectoryError> {
        let conn = tokio::select! {
            c = client::connect(&self.config) => c?,
            _ = shutdown.cancelled() => return Ok(End::Shutdown),
        };
        *backoff = FIRST_BACKOFF;
        let sync = conn.offers_sync().await?;
        tracing::info!(url = %conn.url.text, mode = if sync { "RFC 4533 refreshAndPersist" } else { "periodic re-read" }, "directory connected");
        let mut end = if sync {
            self.follow(&conn, reread, shutdown).await
        } else {
            self.poll(&conn, reread, shutdown).await
        };
        if let Ok(End::NoSync) = end {
            tracing::info!(url = %conn.url.text, mode = "periodic re-read", "the server lists RFC 4533 sync but refused it for this base");
            end = self.poll(&conn, reread, shutdown).await;
        }
        conn.close().await;
        end
    }

    /// Without RFC 4533: a paged full read now and every `refresh`.
    async fn poll(
        &self,
        conn: &Connection,
        reread: &mut mpsc::UnboundedReceiver<()>,
        shutdown: &CancellationToken,
    ) -> Result<End, DirectoryError> {
        let filter = model::mirror_filter(self.config.filter.as_deref());
        let attrs = model::mirror_attributes(self.config.route_attribute.as_deref());
        let mut probe = probe_timer();
        loop {
            let found = conn.search_all(&self.config.base, &filter, &attrs).await?;
            // No entryUUID without RFC 4533: a fresh index per read, keyed by
            // position.
            let known = self.known();
            let mut fresh = Index::new();
            for (n, e) in found.into_iter().enumerate() {
                if let Some(entry) = self.parse(&e) {
                    fresh.apply(index::uuid(&(n as u128).to_be_bytes()), Some(entry), &known);
                }
            }
            self.publish(&Arc::new(Mutex::new(fresh)), Load::Full).await;
            let next = tokio::time::sleep(self.config.refresh);
            tokio::pin!(next);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(End::Shutdown),
                    _ = &mut next => break,
                    asked = reread.recv() => match asked {
                        Some(()) => break,
                        None => return Ok(End::Shutdown),
                    },
                    _ = probe.tick() => probed(conn).await?,
                }
            }
        }
    }

    /// With RFC 4533: refreshAndPersist; the refresh phase is the full load,
    /// then each change updates the entry set and a new snapshot follows.
    async fn follow(
        &self,
        conn: &Connection,
        reread: &mut mpsc::UnboundedReceiver<()>,
        shutdown: &CancellationToken,
    ) -> Result<End, DirectoryError> {
        let filter = model::mirror_filter(self.config.filter.as_deref());
        let attrs = model::mirror_attributes(self.config.route_attribute.as_deref());
        let op = || format!("sync search {}", self.config.base);
        // No timeout: a persistent search is meant to stay open; the probe
        // watches the connection instead.
        let mut ldap = conn.ldap.clone();
        // Critical: a database without syncprov must refuse it rather than
        // answer a plain search that then ends (RFC 4533 §2.2).
        ldap.with_controls(RawControl::from(
            SyncRequest {
                mode: RefreshMode::RefreshAndPersist,
                cookie: None,
                reload_hint: false,
            }
            .critical(),
        ));
        let mut stream = ldap
            .streaming_search(&self.config.base, Scope::Subtree, &filter, attrs)
            .await
            .map_err(|e| conn.error(op(), &e))?;
        // Changed per entry; read by each snapshot build (on a blocking
        // thread, while this loop waits for it).
        let index = Arc::new(Mutex::new(Index::new()));
        let known = self.known();
        let mut refreshed = false;
        let mut applied: u64 = 0;
        let mut pending: Option<(Instant, Instant)> = None; // (first, last) unpublished change
        let mut probe = probe_timer();
        loop {
            let due = pending.map(|(first, last)| (last + SETTLE).min(first + MAX_DELAY));
            tokio::select! {
                item = stream.next() => {
                    let item = match item {
                        Ok(Some(item)) => item,
                        Ok(None) => {
                            let result = stream.finish().await;
                            // unavailableCriticalExtension (12), or a plain
                            // search that ended: no sync here.
                            if !refreshed && (result.rc == 12 || result.rc == 0) {
                                return Ok(End::NoSync);
                            }
                            return Err(DirectoryError::Operation { url: conn.url.text.clone(), op: op(), reason: format!("the server ended the sync search: {}", client::result_words(&result)), rc: Some(result.rc) });
                        }
                        Err(e) => return Err(conn.error(op(), &e)),
                    };
                    if item.is_intermediate() {
                        if refresh_done(item) && !refreshed {
                            refreshed = true;
                            self.publish(&index, Load::Full).await;
                        }
                        continue;
                    }
                    if item.is_ref() {
                        continue;
                    }
                    let state = sync_state(&item.1);
                    let entry = SearchEntry::construct(item);
                    let Some((uuid, state)) = state else { continue };
                    let parsed = match state {
                        EntryState::Delete => None,
                        _ => self.parse(&entry),
                    };
                    drop(entry);
                    lock(&index).apply(index::uuid(&uuid), parsed, &known);
                    if refreshed {
                        let now = Instant::now();
                        pending = Some(pending.map_or((now, now), |(first, _)| (first, now)));
                    }
                    // A backlog of changes is ready at once (read while a
                    // snapshot was built); yielding every few lets the SMTP
                    // sessions on this worker run between them.
                    applied += 1;
                    if applied.is_multiple_of(YIELD_EVERY) {
                        tokio::task::yield_now().await;
                    }
                }
                _ = sleep_until(due), if due.is_some() => {
                    pending = None;
                    self.publish(&index, Load::Changes).await;
                }
                _ = probe.tick() => probed(conn).await?,
                asked = reread.recv() => match asked {
                    Some(()) => return Ok(End::Reread),
                    None => return Ok(End::Shutdown),
                },
                _ = shutdown.cancelled() => return Ok(End::Shutdown),
            }
        }
    }

    /// Whether a route name is a `[route.NAME]`.
    fn known(&self) -> impl Fn(&str) -> bool {
        let routes = self.contacts.routes().clone();
        move |r: &str| routes.contains(r)
    }

    fn parse(&self, e: &SearchEntry) -> Option<DirEntry> {
        DirEntry::parse(&e.dn, &e.attrs, self.config.route_attribute.as_deref())
    }

    /// Builds the snapshot off the async threads (at a lower priority:
    /// [`snapshot`](super::snapshot)), swaps it in, hands it to the cache
    /// writer. After a full load, the memory the load freed goes back to the
    /// OS before the snapshot is announced.
    async fn publish(&self, index: &Arc<Mutex<Index>>, load: Load) {
        let routes = self.contacts.routes().clone();
        let cache = self.contacts.path().to_path_buf();
        let Some(snapshot) = self.builder.build(index, routes, cache).await else {
            tracing::error!("directory snapshot build failed");
            return;
        };
        self.report(&snapshot.problems);
        match snapshot.table {
            Ok(table) => {
                let n = table.len();
                self.contacts.install(table, chrono::Utc::now().timestamp());
                metrics().routing_source_up.set(1);
                if load == Load::Full {
                    let _ = tokio::task::spawn_blocking(crate::allocator::release_freed).await;
                }
                tracing::info!(
                    contacts = n,
                    users = snapshot.users,
                    left_out = snapshot.problems.len(),
                    render_ms = snapshot.render.as_millis() as u64,
                    table_ms = snapshot.parse.as_millis() as u64,
                    "directory snapshot loaded"
                );
                // Only a snapshot being served is worth caching.
                self.cache.offer(snapshot.text);
            }
            Err(errors) => {
                metrics().routing_reload(false);
                for e in errors {
                    tracing::error!("directory snapshot not loaded: {e}");
                }
            }
        }
    }

    /// Logs and counts each problem not reported before.
    fn report(&self, problems: &[Problem]) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let now: BTreeSet<Problem> = problems.iter().cloned().collect();
        for p in now.difference(&reported) {
            tracing::warn!(dn = %p.dn, "directory entry left out of the routing snapshot: {}", p.message);
            metrics().routing_reload(false);
        }
        *reported = now;
    }
}

fn lock(index: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The entry UUID and state of an RFC 4533 Sync State control.
fn sync_state(controls: &[Control]) -> Option<(Vec<u8>, EntryState)> {
    let raw = controls
        .iter()
        .find(|c| matches!(c.0, Some(ControlType::SyncState)))?;
    let value = raw.1.val.as_deref()?;
    // ldap3's parser panics on a malformed value; a bad control must not
    // take the mirror down, so it is caught and the entry skipped.
    let parsed = std::panic::catch_unwind(|| SyncState::parse(value)).ok()?;
    Some((parsed.entry_uuid, parsed.state))
}

/// Whether an intermediate message ends the refresh phase.
fn refresh_done(item: ldap3::ResultEntry) -> bool {
    let info = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ldap3::controls::parse_syncinfo(item)
    }));
    matches!(
        info,
        Ok(SyncInfo::RefreshDelete {
            refresh_done: true,
            ..
        } | SyncInfo::RefreshPresent {
            refresh_done: true,
            ..
        })
    )
}

fn probe_timer() -> tokio::time::Interval {
    let mut probe =
        tokio::time::interval_at(tokio::time::Instant::now() + PROBE_INTERVAL, PROBE_INTERVAL);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    probe
}

async fn probed(conn: &Connection) -> Result<(), DirectoryError> {
    match tokio::time::timeout(PROBE_TIMEOUT, conn.probe()).await {
        Ok(result) => result,
        Err(_) => Err(DirectoryError::Operation {
            url: conn.url.text.clone(),
            op: "who am I".into(),
            reason: format!("no answer within {}s", PROBE_TIMEOUT.as_secs()),
            rc: None,
        }),
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}
