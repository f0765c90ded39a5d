//! Reading the queue folder back at start (and for the offline `queue list|show`).
//!
//! Segments are replayed in order. A record is live unless its id is in the
//! segment's `.done` list; a newer `<id>.state` supersedes the envelope stored
//! with it. What a crash can leave is cleaned up: the incomplete last batch of a
//! segment (never acknowledged) is ignored, `.state` files of finished messages
//! and `.tmp` files are removed, and segments with nothing live are deleted.
//! What damage can leave is kept for a human in `corrupt/`: a record failing its
//! checks, or the rest of a segment after a first line that cannot be read (the
//! record lengths that would say where the next one starts are gone).

use super::error::SpoolError;
use super::file_format::FormatError;
use super::index::{Index, Segment};
use super::layout::{self, fsync_dir, Name, FILE_MODE};
use super::segment::{self, End, Found, Location};
use crate::envelope::Envelope;
use crate::safeio::{self, Mode};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What a queue folder holds.
pub struct Recovered {
    /// Where every live message is.
    pub index: Index,
    /// Their current envelopes, oldest first.
    pub envelopes: Vec<Envelope>,
    /// The number for the next new segment.
    pub next_segment: u64,
}

/// Reads the queue folder. With `corrupt` (the relay starting), also cleans up
/// and quarantines as described above; without (offline listing), changes nothing.
pub fn recover(queue: &Path, corrupt: Option<&Path>) -> Result<Recovered, SpoolError> {
    let listing = list(queue)?;
    if let Some(first) = listing.legacy.first() {
        // Messages of the first spool format (one file per message): refuse
        // rather than strand them.
        return Err(SpoolError::LegacyFormat {
            path: queue.join(first),
            count: listing.legacy.len(),
        });
    }
    if corrupt.is_some() {
        for tmp in &listing.temps {
            // Never renamed into place: never in force.
            remove_file(tmp)?;
        }
    }
    let mut index = Index::default();
    let mut envelopes = BTreeMap::new();
    for &number in &listing.segments {
        replay(queue, corrupt, number, &mut index, &mut envelopes)?;
    }
    if corrupt.is_some() {
        for number in listing.dones.difference(&listing.segments) {
            remove_file(&queue.join(layout::done_name(*number)))?;
        }
    }
    for id in &listing.states {
        let Some(entry) = index.messages.get_mut(id) else {
            // The message finished; the crash came before its state went.
            if corrupt.is_some() {
                remove_file(&queue.join(layout::state_name(id)))?;
            }
            continue;
        };
        match read_state(queue, id) {
            Ok(state) => {
                entry.has_state = true;
                envelopes.insert(id.clone(), state);
            }
            Err(e) => {
                tracing::error!(error = %e, "bad delivery state; using the state stored with the message");
                if let Some(corrupt) = corrupt {
                    let name = layout::state_name(id);
                    let from = queue.join(&name);
                    fs::rename(&from, corrupt.join(&name)).map_err(|e| SpoolError::io(from, e))?;
                    fsync_dir(corrupt)?;
                }
            }
        }
    }
    message_files(
        queue,
        corrupt,
        &listing.messages,
        &mut index,
        &mut envelopes,
    )?;
    let next_segment = listing.segments.last().map_or(1, |n| n + 1);
    Ok(Recovered {
        index,
        envelopes: envelopes.into_values().collect(),
        next_segment,
    })
}

/// Large messages' own files: one without a live record is a message never
/// acknowledged (or finished before a crash), removed; a live record whose
/// file is missing or short cannot be delivered: its record goes to
/// `corrupt/` with the error logged, and it is finished.
fn message_files(
    queue: &Path,
    corrupt: Option<&Path>,
    files: &BTreeSet<String>,
    index: &mut Index,
    envelopes: &mut BTreeMap<String, Envelope>,
) -> Result<(), SpoolError> {
    if let Some(_corrupt) = corrupt {
        for id in files.iter().filter(|id| !index.messages.contains_key(*id)) {
            remove_file(&queue.join(layout::message_name(id)))?;
        }
    }
    let broken: Vec<String> = index
        .messages
        .iter()
        .filter_map(|(id, entry)| {
            let external = entry.external?;
            let path = queue.join(layout::message_name(id));
            let len = fs::metadata(&path).map(|m| m.len()).ok();
            (len != Some(external.len)).then(|| {
                tracing::error!(path = %path.display(), expected = external.len, found = ?len, "a queued message's file is missing or short; its record is kept in corrupt/");
                id.clone()
            })
        })
        .collect();
    for id in broken {
        let Some(entry) = index.remove(&id) else {
            continue;
        };
        envelopes.remove(&id);
        let Some(corrupt) = corrupt else { continue };
        let segment = queue.join(layout::segment_name(entry.at.segment));
        let file = File::open(&segment).map_err(|e| SpoolError::io(&segment, e))?;
        quarantine(&file, &segment, corrupt, entry.at.offset, entry.at.len)?;
        let done = queue.join(layout::done_name(entry.at.segment));
        let mut list = segment::open_done(&done).map_err(|e| SpoolError::io(&done, e))?;
        segment::write_done(&mut list, &id).map_err(|e| SpoolError::io(&done, e))?;
    }
    Ok(())
}

/// Replays one segment into the index.
fn replay(
    queue: &Path,
    corrupt: Option<&Path>,
    number: u64,
    index: &mut Index,
    envelopes: &mut BTreeMap<String, Envelope>,
) -> Result<(), SpoolError> {
    let path = queue.join(layout::segment_name(number));
    let done_path = queue.join(layout::done_name(number));
    let file = File::open(&path).map_err(|e| SpoolError::io(&path, e))?;
    let finished = segment::read_done(&done_path).map_err(|e| SpoolError::io(&done_path, e))?;
    let size = file.metadata().map_err(|e| SpoolError::io(&path, e))?.len();
    let file = Arc::new(file);
    index.segments.insert(
        number,
        Segment {
            file: Arc::clone(&file),
            size,
            live: 0,
            live_bytes: 0,
            sealed_at: Some(Instant::now()),
        },
    );
    let mut damaged: Vec<Location> = Vec::new();
    let mut duplicates: Vec<String> = Vec::new();
    let end = segment::walk(&file, number, &finished, |found| match found {
        Found::Live { at, envelope } => {
            if index.messages.contains_key(&envelope.id) {
                // Compaction copied it here and the crash came before the old
                // segment went: the older copy is the one in force.
                duplicates.push(envelope.id);
            } else {
                index.insert(envelope.id.clone(), at, false, envelope.external);
                envelopes.insert(envelope.id.clone(), envelope);
            }
        }
        Found::Finished => {}
        Found::Damaged { at, reason } => {
            tracing::error!(segment = %path.display(), offset = at.offset, error = %reason, "damaged message record in the spool");
            damaged.push(at);
        }
    })
    .map_err(|e| SpoolError::io(&path, e))?;
    let Some(corrupt) = corrupt else {
        return Ok(());
    };
    for at in damaged {
        quarantine(&file, &path, corrupt, at.offset, at.len)?;
    }
    match end {
        End::Clean => {}
        End::TornTail { offset } => {
            tracing::info!(segment = %path.display(), offset, "ignoring an unfinished (never acknowledged) write at the end of a spool segment");
        }
        End::Garbage { offset } => {
            tracing::error!(segment = %path.display(), offset, "unreadable bytes in a spool segment; the rest of it is kept in {}", corrupt.display());
            quarantine(&file, &path, corrupt, offset, size - offset)?;
        }
    }
    if !duplicates.is_empty() {
        let mut done = segment::open_done(&done_path).map_err(|e| SpoolError::io(&done_path, e))?;
        for id in duplicates {
            segment::write_done(&mut done, &id).map_err(|e| SpoolError::io(&done_path, e))?;
        }
    }
    if index.segments.get(&number).is_some_and(|s| s.live == 0) {
        index.segments.remove(&number);
        remove_file(&path)?;
        remove_file(&done_path)?;
    }
    Ok(())
}

/// Copies `len` bytes at `offset` of a segment to `corrupt/<segment>-<offset>`.
fn quarantine(
    file: &File,
    path: &Path,
    corrupt: &Path,
    offset: u64,
    len: u64,
) -> Result<(), SpoolError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment");
    let dest = corrupt.join(format!("{name}-{offset}"));
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, offset)
        .map_err(|e| SpoolError::io(path, e))?;
    safeio::replace(&dest, &bytes, Mode::Fixed(FILE_MODE))
        .map_err(|e| SpoolError::io(e.path, e.source))
}

/// Reads `<queue>/<id>.state`.
pub fn read_state(queue: &Path, id: &str) -> Result<Envelope, SpoolError> {
    let path = queue.join(layout::state_name(id));
    let bytes = fs::read(&path).map_err(|e| SpoolError::io(&path, e))?;
    let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|e| SpoolError::Corrupt {
        path: path.clone(),
        reason: e.into(),
    })?;
    if envelope.id != id {
        return Err(SpoolError::Corrupt {
            path,
            reason: FormatError::WrongId {
                expected: id.to_string(),
                found: envelope.id,
            },
        });
    }
    Ok(envelope)
}

/// The names in the queue folder, sorted into kinds.
#[derive(Default)]
struct Listing {
    segments: BTreeSet<u64>,
    dones: BTreeSet<u64>,
    /// Ids with a `.state` file.
    states: BTreeSet<String>,
    /// Ids with a `.msg` file.
    messages: BTreeSet<String>,
    temps: Vec<PathBuf>,
    /// Message files of the first spool format (named by their queue id).
    legacy: Vec<String>,
}

fn list(queue: &Path) -> Result<Listing, SpoolError> {
    let mut listing = Listing::default();
    let entries = fs::read_dir(queue).map_err(|e| SpoolError::io(queue, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(queue, e))?;
        let name = entry.file_name();
        match layout::classify(name.to_str().unwrap_or_default()) {
            Name::Temp => listing.temps.push(entry.path()),
            Name::State(id) => {
                listing.states.insert(id);
            }
            Name::Message(id) => {
                listing.messages.insert(id);
            }
            Name::Segment(number) => {
                listing.segments.insert(number);
            }
            Name::Done(number) => {
                listing.dones.insert(number);
            }
            Name::Legacy(id) => listing.legacy.push(id),
            Name::Unknown => {
                tracing::warn!(path = %entry.path().display(), "ignoring unknown file in the spool");
            }
        }
    }
    Ok(listing)
}

fn remove_file(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SpoolError::io(path, e)),
        _ => Ok(()),
    }
}
