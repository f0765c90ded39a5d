//! STUB: the live contacts table with hot reload. Implemented separately.

use super::table::ContactsTable;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// The live table that sessions take snapshots of.
#[derive(Debug)]
pub struct Contacts {
    current: ArcSwap<ContactsTable>,
}

impl Contacts {
    /// The table now in force (one snapshot per transaction).
    pub fn current(&self) -> Arc<ContactsTable> {
        self.current.load_full()
    }
}
