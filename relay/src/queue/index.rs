//! The spool's memory: where each queued message's record is, how much of each
//! segment is still live, and the bytes of messages not yet attempted.
//!
//! Shared (behind one mutex) by the [`Spool`](super::spool::Spool) API and the
//! committer thread; every critical section is a few map operations, never I/O.

use super::segment::Location;
use crate::envelope::External;
use crate::message::Fresh;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

/// Messages just stored are kept in memory for their first delivery attempt
/// (most are delivered on it), up to this many bytes in total; beyond it, and
/// for every later attempt, the attempt reads the record back from its segment.
pub const HOT_BYTES_MAX: usize = 32 * 1024 * 1024;

/// One queued message.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its record.
    pub at: Location,
    /// Whether a `<id>.state` file holds newer delivery state.
    pub has_state: bool,
    /// A large message's bytes are in `<id>.msg`.
    pub external: Option<External>,
}

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Open for reading records back.
    pub file: Arc<File>,
    /// Bytes written so far.
    pub size: u64,
    /// Records not finished.
    pub live: usize,
    /// Their total length.
    pub live_bytes: u64,
    /// When the committer stopped appending to it (None: the head, still growing).
    pub sealed_at: Option<Instant>,
}

/// Everything the spool knows about its queue.
#[derive(Debug, Default)]
pub struct Index {
    /// Queued messages by id.
    pub messages: HashMap<String, Entry>,
    /// Segments by number.
    pub segments: BTreeMap<u64, Segment>,
    hot: HashMap<String, Arc<Vec<u8>>>,
    hot_bytes: usize,
    /// Large messages just written, until their first attempt is over.
    fresh: HashMap<String, Fresh>,
}

impl Index {
    /// Records a new live message at `at` (its segment must be known).
    pub fn insert(
        &mut self,
        id: String,
        at: Location,
        has_state: bool,
        external: Option<External>,
    ) {
        if let Some(segment) = self.segments.get_mut(&at.segment) {
            segment.live += 1;
            segment.live_bytes += at.len;
        }
        self.messages.insert(
            id,
            Entry {
                at,
                has_state,
                external,
            },
        );
    }

    /// Forgets a message; returns where it was.
    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.messages.remove(id)?;
        self.drop_hot(id);
        if let Some(segment) = self.segments.get_mut(&entry.at.segment) {
            segment.live -= 1;
            segment.live_bytes -= entry.at.len;
        }
        Some(entry)
    }

    /// Points a message at its new record (after compaction moved it).
    pub fn relocate(&mut self, id: &str, to: Location) -> bool {
        let Some(entry) = self.messages.get_mut(id) else {
            return false;
        };
        let from = std::mem::replace(&mut entry.at, to);
        if let Some(segment) = self.segments.get_mut(&from.segment) {
            segment.live -= 1;
            segment.live_bytes -= from.len;
        }
        if let Some(segment) = self.segments.get_mut(&to.segment) {
            segment.live += 1;
            segment.live_bytes += to.len;
        }
        true
    }

    /// Keeps the bytes of a just-stored message for its first attempt, if
    /// there is room.
    pub fn keep_hot(&mut self, id: &str, message: Arc<Vec<u8>>) {
        if self.hot_bytes + message.len() <= HOT_BYTES_MAX {
            self.hot_bytes += message.len();
            self.hot.insert(id.to_string(), message);
        }
    }

    /// Remembers, for its first attempt, that a large message's file was
    /// just written (see [`Fresh`]).
    pub fn keep_fresh(&mut self, id: &str, fresh: Fresh) {
        // Not for one removed meanwhile: nothing would forget it.
        if self.messages.contains_key(id) {
            self.fresh.insert(id.to_string(), fresh);
        }
    }

    /// What [`Index::keep_fresh`] kept of a message, if it still applies.
    pub fn fresh(&self, id: &str) -> Option<Fresh> {
        self.fresh.get(id).copied()
    }

    /// The kept bytes of a message, if any.
    pub fn hot(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        self.hot.get(id).cloned()
    }

    /// Frees the kept bytes of a message (its first attempt is over), and
    /// forgets that its file is fresh.
    pub fn drop_hot(&mut self, id: &str) {
        if let Some(m) = self.hot.remove(id) {
            self.hot_bytes -= m.len();
        }
        self.fresh.remove(id);
    }
}
