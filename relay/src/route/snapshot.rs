//! Building the mirror's snapshot: the index's decision rendered as the
//! cache file's text and parsed into a [`ContactsTable`], on a thread of its
//! own at a lower CPU priority.
//!
//! Why a thread of its own: a snapshot of a big directory costs tens of
//! milliseconds of CPU (100,000 addresses: render and parse, see
//! `directory-memory` in bench/), once per change batch. On a busy relay
//! that time must come out of idle cycles, not out of the SMTP sessions'
//! (a 10,000-change burst is about twenty snapshots): the builder runs at
//! nice [`NICE`], so under contention the scheduler serves the sessions
//! first and the snapshot is a little later; on an idle machine it runs at
//! full speed.

use super::table::ContactsTable;
use crate::directory::index::Index;
use crate::directory::model::Problem;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The builder thread's nice value (0 is the relay's own).
pub const NICE: i32 = 10;

/// A built snapshot and what building it found.
pub struct Snapshot {
    /// The table, or why the text did not make one.
    pub table: Result<ContactsTable, Vec<String>>,
    /// Every entry left out and why.
    pub problems: Vec<Problem>,
    /// User entries in the index.
    pub users: usize,
    /// The table as the cache file's text.
    pub text: String,
    /// Time to render the text.
    pub render: Duration,
    /// Time to build the table from it.
    pub parse: Duration,
}

struct Job {
    index: Arc<Mutex<Index>>,
    routes: BTreeSet<String>,
    cache: PathBuf,
    done: oneshot::Sender<Snapshot>,
}

/// The handle of one builder thread; the thread ends with the last handle.
pub struct Builder {
    jobs: mpsc::Sender<Job>,
}

impl Builder {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Builder> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("directory-build".into())
            .spawn(move || {
                // Linux: a nice value is per thread (setpriority(2), NOTES).
                // Never raised: a relay started under `nice` keeps at least its own.
                let tid = rustix::thread::gettid();
                let own = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
                if own < NICE {
                    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
                        tracing::debug!(
                            "directory snapshot builder keeps the relay's priority: {e}"
                        );
                    }
                }
                for job in rx {
                    let index = job.index.lock().unwrap_or_else(PoisonError::into_inner);
                    let built = build(&index, &job.routes, &job.cache);
                    drop(index);
                    let _ = job.done.send(built);
                }
            })?;
        Ok(Builder { jobs: tx })
    }

    /// The snapshot of `index` now (`None` if the thread is gone).
    pub async fn build(
        &self,
        index: &Arc<Mutex<Index>>,
        routes: BTreeSet<String>,
        cache: PathBuf,
    ) -> Option<Snapshot> {
        let (done, built) = oneshot::channel();
        let job = Job {
            index: Arc::clone(index),
            routes,
            cache,
            done,
        };
        self.jobs.send(job).ok()?;
        built.await.ok()
    }
}

/// The index's decision as a table and as the cache file's text. The table is
/// parsed from the text so that its line numbers are the cache file's (which
/// `route` reads to name the DN).
fn build(index: &Index, routes: &BTreeSet<String>, cache: &std::path::Path) -> Snapshot {
    let known = |r: &str| routes.contains(r);
    let started = Instant::now();
    let text = index.render();
    let rendered = Instant::now();
    // `decide` checked every address it routed.
    let table = ContactsTable::parse_checked(&text, cache, &known)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect());
    Snapshot {
        table,
        problems: index.problems(),
        users: index.users(),
        text,
        render: rendered - started,
        parse: rendered.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of this process's thread named `name` (stat field 19).
    fn nice_of(name: &str) -> Option<i32> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let task = task.ok()?.path();
            let comm = std::fs::read_to_string(task.join("comm")).ok()?;
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            // Fields after the `(comm)`: state is field 3, nice field 19.
            let rest = &stat[stat.rfind(')')? + 2..];
            return rest.split(' ').nth(16)?.parse().ok();
        }
        None
    }

    #[tokio::test]
    async fn builds_on_a_thread_of_lower_priority() {
        let builder = Builder::start().unwrap();
        let index = Arc::new(Mutex::new(Index::new()));
        let built = builder
            .build(&index, BTreeSet::new(), PathBuf::from("contacts"))
            .await
            .expect("a snapshot");
        assert_eq!(built.table.map(|t| t.len()).ok(), Some(0));
        // The job ran, so the thread has set its priority before it.
        let nice = nice_of("directory-build").expect("the thread");
        assert!(nice >= NICE, "nice {nice}");
    }
}
