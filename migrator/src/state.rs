//! Per-user checkpoints in `state_dir`: one human-readable JSON file per user.
//!
//! The file says where the user is (forwarding set, copying n of m, migrated,
//! failed and why) and, per source folder, the UIDVALIDITY and the set of source
//! UIDs already on the target. A window of APPENDs is first written down as
//! `pending`: if the process dies before the server's OKs are recorded, the next
//! run looks those messages up on the target (Message-ID or header hash) instead
//! of copying them again. Every save goes through `relay::safeio::replace` (temp
//! file, fsync, rename, folder fsync), so a kill at any moment leaves the old or
//! the new checkpoint, never a torn one.
//!
//! The format only grows: a field added later has a serde default, so a state
//! written by an older migrator still loads.

use relay::safeio::{self, WriteError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// File-system failure.
    #[error("{}: cannot {op}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a checkpoint this program wrote.
    #[error("{}: not a valid state file ({source}); move it away to start this user over", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The crash-safe replace of the checkpoint failed at one of its steps; the
    /// previous checkpoint is still in place.
    #[error("{}: cannot {}: {}", .0.path.display(), .0.step, .0.source)]
    Write(#[from] WriteError),
    /// Another migrator process is working on this user.
    #[error("{}: another coexist-migrator is working on this user", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
}

/// Where a user is in the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing done yet.
    #[default]
    NotStarted,
    /// The contact is written; content not copied (or `--forwarding-only`).
    Forwarding,
    /// Content copy under way.
    Copying,
    /// Copy and delta pass done.
    Migrated,
    /// The last run failed (see `error`).
    Failed,
    /// The contact was removed again.
    RolledBack,
}

impl Phase {
    /// The words `status` prints.
    pub fn describe(&self) -> &'static str {
        match self {
            Phase::NotStarted => "not started",
            Phase::Forwarding => "forwarding set",
            Phase::Copying => "copying",
            Phase::Migrated => "migrated",
            Phase::Failed => "failed",
            Phase::RolledBack => "rolled back",
        }
    }
}

/// A set of UIDs as sorted, disjoint, inclusive ranges (compact for big folders).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UidSet(Vec<(u32, u32)>);

impl UidSet {
    /// Whether `uid` is in the set.
    pub fn contains(&self, uid: u32) -> bool {
        let i = self.0.partition_point(|&(_, end)| end < uid);
        self.0.get(i).is_some_and(|&(start, _)| start <= uid)
    }

    /// Adds `uid`, merging neighbouring ranges.
    pub fn insert(&mut self, uid: u32) {
        if self.contains(uid) {
            return;
        }
        let i = self.0.partition_point(|&(_, end)| end < uid);
        let joins_prev = i > 0 && self.0[i - 1].1 + 1 == uid;
        let joins_next = i < self.0.len() && self.0[i].0 == uid + 1;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.0[i - 1].1 = self.0[i].1;
                self.0.remove(i);
            }
            (true, false) => self.0[i - 1].1 = uid,
            (false, true) => self.0[i].0 = uid,
            (false, false) => self.0.insert(i, (uid, uid)),
        }
    }

    /// How many UIDs.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|&(s, e)| u64::from(e - s) + 1).sum()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One source folder's checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    /// The folder it is copied to.
    pub target: String,
    /// The source UIDVALIDITY the UIDs below belong to.
    pub uid_validity: u32,
    /// Source UIDs known to be on the target.
    pub copied: UidSet,
    /// Source UIDs whose APPEND was sent but not confirmed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<u32>,
    /// Source UIDs the target refused for good in this run: not sent again by
    /// the delta pass or after a reconnect. Never saved, so the next run tries
    /// them again (the target's limit may have been raised).
    #[serde(skip)]
    pub refused: UidSet,
    /// The source's UIDNEXT when a pass without a date range last finished
    /// with every UID below it copied (0: unknown). While UIDVALIDITY and
    /// UIDNEXT stay the same, no message was added: the next pass skips the
    /// folder after its EXAMINE.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid_next: u32,
    /// The source's HIGHESTMODSEQ (RFC 7162 §3.1.2.1) at the EXAMINE after
    /// which every flag change was carried over to the target (0: unknown, or
    /// no CONDSTORE). A later change has a higher mod-sequence: the next pass
    /// asks for those alone (FETCH CHANGEDSINCE) and, with UIDNEXT the same
    /// too, skips the folder when it did not move.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub highest_modseq: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl FolderState {
    /// Whether a pass can skip the folder as `selected` shows it: nothing was
    /// added since the last complete pass (RFC 3501 §2.3.1.1: UIDs are
    /// assigned in ascending order, so an unchanged UIDNEXT means no new
    /// message), nothing is pending, and no date range hides messages from
    /// the last pass. Flag changes are looked at separately
    /// ([`FolderState::flags_changed`]); expunges are not carried over.
    pub fn unchanged(&self, uid_validity: u32, uid_next: u32, dated: bool) -> bool {
        !dated
            && self.uid_next != 0
            && self.uid_next == uid_next
            && self.uid_validity == uid_validity
            && self.pending.is_empty()
            && self.refused.is_empty()
    }
}

impl FolderState {
    /// Whether flags may have changed on the source since they were last
    /// carried over, as the EXAMINE shows it: both mod-sequences known, the
    /// same UIDVALIDITY, and HIGHESTMODSEQ moved. Without CONDSTORE (0 on
    /// either side) flag changes are not carried over.
    pub fn flags_changed(&self, uid_validity: u32, highest_modseq: u64) -> bool {
        self.highest_modseq != 0
            && highest_modseq != 0
            && self.uid_validity == uid_validity
            && self.highest_modseq != highest_modseq
    }
}

/// Counters for one run or the user's whole history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Folders visited.
    pub folders: u64,
    /// Messages appended.
    pub copied: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// Messages already on the target (state or Message-ID match).
    pub skipped: u64,
    /// Messages the target refused.
    pub failed: u64,
    /// Times the target asked to slow down (a `NO [THROTTLED]`-style answer to
    /// one APPEND, or a `BYE`): backed off from and retried, not failures.
    #[serde(default)]
    pub throttled: u64,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        self.folders += other.folders;
        self.copied += other.copied;
        self.bytes += other.bytes;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.throttled += other.throttled;
    }
}

/// One content type's counters (`mail`, `calendar`, ...), for one run in the
/// report or over all runs in `status` (DESIGN.md, "Progress").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentCounters {
    /// Items copied.
    pub copied: u64,
    /// Items already on the target.
    pub skipped: u64,
    /// Items the target refused.
    pub refused: u64,
    /// Times the target asked to slow down.
    pub throttled: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Time spent on this content, milliseconds.
    pub duration_ms: u64,
}

impl ContentCounters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ContentCounters) {
        self.copied += other.copied;
        self.skipped += other.skipped;
        self.refused += other.refused;
        self.throttled += other.throttled;
        self.bytes += other.bytes;
        self.duration_ms += other.duration_ms;
    }
}

/// Counters by content type name.
pub type ByContent = BTreeMap<String, ContentCounters>;

/// A user's checkpoint file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    /// The user's address.
    pub address: String,
    /// Where the user is.
    pub phase: Phase,
    /// Why the last run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The contact target written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Messages done / to do in the current copy (for "copying n of m").
    #[serde(default)]
    pub progress: (u64, u64),
    /// Totals over every run.
    #[serde(default)]
    pub totals: Counters,
    /// The totals by content type.
    #[serde(default)]
    pub content: ByContent,
    /// Per source folder.
    #[serde(default)]
    pub folders: BTreeMap<String, FolderState>,
    /// Per source calendar / address book (CalDAV, CardDAV).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dav: BTreeMap<String, crate::dav::state::CollectionState>,
    /// When this file was written (RFC 3339).
    #[serde(default)]
    pub updated: String,
}

/// The checkpoint files of one `state_dir`.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// Holds a user's lock for the lifetime of a migration.
#[derive(Debug)]
pub struct UserLock {
    _file: File,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// The checkpoints under `dir` (created on first save).
    pub fn new(dir: &Path) -> StateDir {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self, address: &str) -> PathBuf {
        // Addresses are case-insensitive; `/` cannot be in a file name.
        let name = address.to_ascii_lowercase().replace('/', "%2F");
        self.dir.join(format!("{name}.json"))
    }

    /// The user's checkpoint, or a fresh one.
    pub fn load(&self, address: &str) -> Result<UserState, StateError> {
        let path = self.file(address);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(UserState {
                address: address.to_string(),
                ..UserState::default()
            }),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Every checkpoint present, keyed by lower-case address.
    pub fn all(&self) -> Result<BTreeMap<String, UserState>, StateError> {
        let mut out = BTreeMap::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(address) = name.strip_suffix(".json") {
                if address.starts_with('.') {
                    continue;
                }
                let state = self.load(&address.replace("%2F", "/"))?;
                out.insert(state.address.to_ascii_lowercase(), state);
            }
        }
        Ok(out)
    }

    /// Saves atomically (temp file, fsync, rename, fsync the folder), readable by
    /// the owner only: the file names the user's folders and contact.
    pub fn save(&self, state: &mut UserState) -> Result<(), StateError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        state.updated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let path = self.file(&state.address);
        let mut json = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        json.push(b'\n');
        safeio::replace(&path, &json, safeio::Mode::Fixed(0o600))?;
        Ok(())
    }

    /// Takes the user's lock (non-blocking): two processes never copy the same
    /// user at once.
    pub fn lock(&self, address: &str) -> Result<UserLock, StateError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let path = self.file(address).with_extension("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(UserLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StateError::Busy { path }),
            Err(fs::TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_counters_add_up() {
        let one = ContentCounters {
            copied: 2,
            skipped: 4,
            refused: 1,
            throttled: 2,
            bytes: 250,
            duration_ms: 1500,
        };
        let mut total = ContentCounters::default();
        total.add(&one);
        total.add(&one);
        assert_eq!(
            (total.copied, total.bytes, total.duration_ms),
            (4, 500, 3000)
        );
    }

    #[test]
    fn a_folder_is_unchanged_only_with_the_same_uidnext_and_nothing_open() {
        let mut f = FolderState {
            uid_validity: 7,
            uid_next: 100,
            ..FolderState::default()
        };
        assert!(f.unchanged(7, 100, false));
        assert!(!f.unchanged(7, 101, false), "a message was added");
        assert!(!f.unchanged(8, 100, false), "UIDVALIDITY changed");
        assert!(!f.unchanged(7, 100, true), "a date range");
        f.pending.push(5);
        assert!(!f.unchanged(7, 100, false), "pending");
        f.pending.clear();
        f.uid_next = 0;
        assert!(!f.unchanged(7, 100, false), "never completed");
    }

    #[test]
    fn flags_changed_only_when_the_modseq_moved_under_the_same_uidvalidity() {
        let f = FolderState {
            uid_validity: 7,
            highest_modseq: 40,
            ..FolderState::default()
        };
        assert!(!f.flags_changed(7, 40));
        assert!(f.flags_changed(7, 41));
        assert!(
            !f.flags_changed(8, 41),
            "UIDVALIDITY changed: all copied anew"
        );
        assert!(!f.flags_changed(7, 0), "no CONDSTORE now");
        let unknown = FolderState::default();
        assert!(!unknown.flags_changed(0, 41), "nothing carried over yet");
    }

    #[test]
    fn uid_set_merges_ranges() {
        let mut s = UidSet::default();
        for uid in [5, 1, 3, 2, 7, 4] {
            s.insert(uid);
        }
        assert_eq!(s.0, vec![(1, 5), (7, 7)]);
        s.insert(6);
        assert_eq!(s.0, vec![(1, 7)]);
        assert!(s.contains(4) && !s.contains(8) && !s.contains(0));
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn save_and_load_round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::new(&dir.path().join("state"));
        let mut st = states.load("Alice@corp.example").unwrap();
        assert_eq!(st.phase, Phase::NotStarted);
        st.phase = Phase::Copying;
        let mut f = FolderState {
            target: "INBOX".into(),
            uid_validity: 7,
            ..Default::default()
        };
        f.copied.insert(1);
        f.pending = vec![2, 3];
        st.folders.insert("INBOX".into(), f);
        states.save(&mut st).unwrap();
        let back = states.load("alice@corp.example").unwrap();
        assert_eq!(back, st);
        let all = states.all().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all.contains_key("alice@corp.example"));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn saved_file_is_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::new(dir.path());
        let mut st = states.load("a@b").unwrap();
        states.save(&mut st).unwrap();
        let mode = fs::metadata(dir.path().join("a@b.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_state_written_before_throttling_and_pending_existed_loads() {
        // What a migrator before `throttled` and `pending` wrote.
        let old = r#"{
  "address": "alice@corp.example",
  "phase": "copying",
  "target": "alice@tenant.cloud.example",
  "progress": [5, 9],
  "totals": { "folders": 1, "copied": 5, "bytes": 1234, "skipped": 0, "failed": 0 },
  "folders": {
    "INBOX": { "target": "INBOX", "uid_validity": 7, "copied": [[1, 5]] }
  },
  "updated": "2026-01-01T00:00:00Z"
}"#;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("alice@corp.example.json"), old).unwrap();
        let st = StateDir::new(dir.path())
            .load("alice@corp.example")
            .unwrap();
        assert_eq!(st.phase, Phase::Copying);
        assert_eq!(st.totals.throttled, 0);
        let inbox = &st.folders["INBOX"];
        assert!(inbox.pending.is_empty());
        assert_eq!(inbox.copied.len(), 5);
    }

    #[test]
    fn second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::new(dir.path());
        let _held = states.lock("a@b").unwrap();
        assert!(matches!(states.lock("A@b"), Err(StateError::Busy { .. })));
    }

    #[test]
    fn corrupt_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a@b.json"), "{").unwrap();
        let err = StateDir::new(dir.path())
            .load("a@b")
            .unwrap_err()
            .to_string();
        assert!(err.contains("move it away"), "{err}");
    }
}
