//! What the operator gets back: the per-user report of a run (printed by
//! [`crate::print`], written as JSON with `--report FILE.json`), and `status`,
//! where each user is, from the checkpoints and the directory.

use crate::directory::{user, Directory, DirectoryError};
use crate::state::{ByContent, Counters, Phase, StateDir, StateError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// How one user's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Copied (or synced); individual messages may still have been refused
    /// (see the counters and warnings).
    Ok,
    /// The user failed (see `error`); the mail flow may already be flipped.
    Failed,
    /// `--dry-run`: measured, nothing written.
    DryRun,
    /// `--forwarding-only`: the contact is written, nothing copied.
    ForwardingOnly,
}

impl Outcome {
    /// The word in the report (`ok`, `failed`, `dry-run`, `forwarding-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::DryRun => "dry-run",
            Outcome::ForwardingOnly => "forwarding-only",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that column widths in the final table apply.
        f.pad(self.as_str())
    }
}

/// A message that was not copied, or copied with a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Source folder.
    pub folder: String,
    /// Source UID.
    pub uid: u32,
    /// What happened.
    pub reason: String,
}

/// The outcome for one user.
#[derive(Debug, Clone, Serialize)]
pub struct UserReport {
    /// The user's address.
    pub address: String,
    /// How it ended.
    pub result: Outcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The contact target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Source bytes and messages to copy (measured before the copy).
    pub planned_messages: u64,
    /// Bytes to copy.
    pub planned_bytes: u64,
    /// Destination quota free before the copy, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_free: Option<u64>,
    /// What this run did.
    pub counters: Counters,
    /// Messages with problems.
    pub warnings: Vec<Warning>,
    /// By content type: `mail` (and `calendar` for the IMAP folders of
    /// `calendar_folders`) from the IMAP copy; `calendar`, `contacts` over
    /// CalDAV/CardDAV; absent when nothing was copied.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub content: BTreeMap<&'static str, ContentReport>,
}

/// What a run did with one DAV content type (`calendar` or `contacts`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContentReport {
    /// The counts.
    #[serde(flatten)]
    pub counters: DavCounters,
    /// Resources refused, in conflict, or deleted on the source.
    pub warnings: Vec<DavWarning>,
}

/// Counts of one DAV content type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DavCounters {
    /// Collections visited.
    pub collections: u64,
    /// Resources written to the target for the first time.
    pub copied: u64,
    /// Resources written before and changed on the source since, updated.
    pub updated: u64,
    /// Resources already on the target (unchanged since the last pass, or
    /// found there by UID).
    pub skipped: u64,
    /// Resources the target refused (see the warnings for the reasons).
    pub refused: u64,
    /// Changed on both sides since the last pass: the target's copy was kept.
    pub conflicts: u64,
    /// Copied before, deleted on the source since (left on the target).
    pub deleted_on_source: u64,
    /// Events sent with `SCHEDULE-AGENT=CLIENT` (the target schedules).
    pub schedule_agent_marked: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Times the target asked to slow down (IMAP: see [`Counters`]).
    pub throttled: u64,
    /// Time spent on this content, milliseconds.
    pub duration_ms: u64,
}

/// A calendar object or vCard with a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DavWarning {
    /// The source collection.
    pub collection: String,
    /// The source resource.
    pub resource: String,
    /// Its UID, when known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// What happened (with the server's words when it refused).
    pub reason: String,
}

impl UserReport {
    /// A report for `address` before anything happened (`ok` until it fails).
    pub fn new(address: &str, target: &str) -> UserReport {
        UserReport {
            address: address.to_string(),
            result: Outcome::Ok,
            error: None,
            target: Some(target.to_string()),
            planned_messages: 0,
            planned_bytes: 0,
            quota_free: None,
            counters: Counters::default(),
            warnings: Vec::new(),
            content: BTreeMap::new(),
        }
    }

    /// The IMAP copy's share of one folder (`mail` or `calendar`): what the
    /// run's [`Counters`] moved by between `before` and now, in `duration`.
    pub fn add_imap_content(
        &mut self,
        kind: &'static str,
        before: &Counters,
        duration: std::time::Duration,
    ) {
        let now = self.counters;
        let c = &mut self.content.entry(kind).or_default().counters;
        c.copied += now.copied - before.copied;
        c.skipped += now.skipped - before.skipped;
        c.refused += now.failed - before.failed;
        c.throttled += now.throttled - before.throttled;
        c.bytes += now.bytes - before.bytes;
        c.duration_ms += duration.as_millis() as u64;
    }

    /// The report of one DAV content type, made on first use.
    pub fn content_mut(&mut self, kind: crate::dav::state::Kind) -> &mut ContentReport {
        self.content.entry(kind.label()).or_default()
    }

    /// Whether the user failed.
    pub fn failed(&self) -> bool {
        self.result == Outcome::Failed
    }

    /// Whether the user failed or any message was refused: the run exits 1.
    pub fn has_failures(&self) -> bool {
        self.failed()
            || self.counters.failed > 0
            || self.content.values().any(|c| c.counters.refused > 0)
    }
}

/// Writes the report as JSON (`{"users": [...]}`).
pub fn write_json(path: &Path, reports: &[UserReport]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "users": reports }))
        .map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// Why `status` could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The directory or the contacts table could not be read.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A checkpoint could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// The user asked for is nowhere.
    #[error("{0}: not in the directory nor in the state")]
    Unknown(String),
}

/// One row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// The user.
    pub address: String,
    /// Phase in words.
    pub state: String,
    /// Whether the contact is in the table now.
    pub contact: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// (done, total) of the current copy.
    pub progress: (u64, u64),
    /// Totals over all runs.
    pub totals: Counters,
    /// The totals by content type (`mail`, `calendar`, `contacts`): copied,
    /// skipped, refused, throttled, bytes, duration.
    pub content_totals: ByContent,
    /// Folders with a checkpoint.
    pub folders: usize,
    /// Calendar objects / vCards on the target by this migrator's checkpoint,
    /// by content type (`calendar`, `contacts`); absent without DAV.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub content: BTreeMap<&'static str, u64>,
    /// When the state was written.
    pub updated: String,
}

/// `status [USER]`: every user of the directory, then those only the state
/// knows (removed from the directory since).
pub fn status(
    directory: &Directory,
    states: &StateDir,
    only: Option<&str>,
) -> Result<Vec<StatusRow>, StatusError> {
    let users = directory.users()?;
    let flipped = directory.flipped()?;
    let states = states.all()?;
    let mut addresses: Vec<String> = users.iter().map(|u| u.address.clone()).collect();
    for st in states.values() {
        if user::find(&users, &st.address).is_none() {
            addresses.push(st.address.clone());
        }
    }
    if let Some(one) = only {
        addresses.retain(|a| a.eq_ignore_ascii_case(one));
        if addresses.is_empty() {
            return Err(StatusError::Unknown(one.to_string()));
        }
    }
    Ok(addresses
        .into_iter()
        .map(|address| {
            let key = address.to_ascii_lowercase();
            let contact = flipped.contains(&key);
            let st = states.get(&key).cloned().unwrap_or_default();
            let phase = match st.phase {
                Phase::NotStarted if contact => Phase::Forwarding,
                p => p,
            };
            let state = match phase {
                Phase::Copying => format!("copying ({} of {})", st.progress.0, st.progress.1),
                Phase::Failed => format!("failed ({})", st.error.clone().unwrap_or_default()),
                p => p.describe().to_string(),
            };
            StatusRow {
                address,
                state,
                contact,
                error: st.error.clone(),
                progress: st.progress,
                totals: st.totals,
                content_totals: st.content.clone(),
                folders: st.folders.len(),
                content: st.dav.values().fold(BTreeMap::new(), |mut m, c| {
                    *m.entry(c.kind.label()).or_insert(0) += c.items.len() as u64;
                    m
                }),
                updated: st.updated.clone(),
            }
        })
        .collect())
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(20 << 20), "20.0 MiB");
    }

    #[test]
    fn json_report_has_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let mut r = UserReport::new("a@b", "a@t");
        r.planned_messages = 2;
        r.planned_bytes = 10;
        write_json(&path, &[r]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["users"][0]["address"], "a@b");
        assert_eq!(v["users"][0]["result"], "ok");
        assert_eq!(v["users"][0]["planned_messages"], 2);
    }

    #[test]
    fn outcomes_keep_their_report_words_and_pad_in_tables() {
        for (outcome, word) in [
            (Outcome::Ok, "ok"),
            (Outcome::Failed, "failed"),
            (Outcome::DryRun, "dry-run"),
            (Outcome::ForwardingOnly, "forwarding-only"),
        ] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), word);
            assert_eq!(outcome.to_string(), word);
        }
        assert_eq!(format!("[{:8}]", Outcome::Ok), "[ok      ]");
    }
}
