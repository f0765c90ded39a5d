//! The body being received: our `Received:` field first, then the client's
//! bytes as they arrive, checked as they pass (bare newlines, the loop count)
//! and moved to the spool whenever the session's buffer is full, so a session
//! holds at most a few hundred KiB of any message (DESIGN.md "Memory").

use super::data::{ContentError, ContentScan};
use crate::config::Limits;
use crate::queue::incoming::Incoming;

/// One message on its way into the spool.
#[derive(Debug)]
pub struct Body {
    incoming: Incoming,
    scan: ContentScan,
    /// Length of our `Received:` field at the start (not the client's bytes).
    header_len: u64,
}

impl Body {
    /// A body for `incoming`, which holds our `Received:` field already.
    pub fn new(mut incoming: Incoming, limits: &Limits) -> Body {
        let header_len = incoming.buffer().len();
        Body {
            incoming,
            scan: ContentScan::new(limits.bare_newline, limits.max_received_headers, header_len),
            header_len: header_len as u64,
        }
    }

    /// Where a reader appends.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.incoming.buffer()
    }

    /// The client's bytes so far (our `Received:` field not counted).
    pub fn received(&self) -> u64 {
        self.incoming.len() - self.header_len
    }

    /// The buffer length a reader may fill before the message is over
    /// `max` bytes (the readers check their buffer, not what was spilled).
    pub fn buffer_limit(&self, max: u64) -> usize {
        let allowed = (max + self.header_len).saturating_sub(self.incoming.spilled());
        usize::try_from(allowed).unwrap_or(usize::MAX)
    }

    /// After a reader appended: checks what can be checked, and moves it to
    /// the spool when the buffer is full.
    pub async fn absorb(&mut self) {
        self.scan.scan(self.incoming.buffer());
        if !self.incoming.is_full() {
            return;
        }
        let before = self.incoming.buffered().len();
        let keep = before - self.scan.scanned();
        self.incoming.make_room(keep).await;
        let moved = before.saturating_sub(self.incoming.buffered().len());
        self.scan.moved_out(moved);
    }

    /// The message is complete: the last checks.
    pub fn finish(&mut self) -> Result<(), ContentError> {
        self.scan.finish(self.incoming.buffer())?;
        self.incoming.set_data_ready(self.scan.data_ready());
        Ok(())
    }

    /// The message for the spool.
    pub fn into_incoming(self) -> Incoming {
        self.incoming
    }

    /// Its queue id.
    pub fn id(&self) -> &str {
        self.incoming.id()
    }
}
