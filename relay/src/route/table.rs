//! STUB: contacts table snapshot (parse + lookup). Implemented separately.

/// A parsed, validated contacts table.
#[derive(Debug, Default)]
pub struct ContactsTable {}

/// Result of a contact lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMatch {
    /// Rewritten recipient (target, with the sub-address tag carried over).
    pub rewritten: String,
    /// Route name from the line, or `None` for `routing.contact_route`.
    pub route: Option<String>,
}

impl ContactsTable {
    /// Number of contacts.
    pub fn len(&self) -> usize {
        0
    }
    /// True when there are no contacts.
    pub fn is_empty(&self) -> bool {
        true
    }
    /// Case-insensitive lookup; `separator` ("" = off) strips and carries a tag.
    pub fn lookup(&self, address: &str, separator: &str) -> Option<ContactMatch> {
        let _ = (address, separator);
        None
    }
}
