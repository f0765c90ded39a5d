//! The DAV part of a user's checkpoint: per source collection, where it goes,
//! the last RFC 6578 sync token, and each resource this migrator wrote (or
//! found identical on the target and adopted), with both sides' ETags, so a
//! later pass sends only what changed and updates only its own copies.
//!
//! Saved in the user's state file (`UserState::dav`) by the same crash-safe
//! replace; a resource whose PUT was not recorded before a crash is found on
//! the target by the next run (`If-None-Match: *` → 412 → compared), never
//! written twice.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Calendars or address books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// CalDAV calendar collections (VEVENT, VTODO, VJOURNAL).
    Calendar,
    /// CardDAV address books.
    Contacts,
}

impl Kind {
    /// The content name (`calendar`, `contacts`): report keys and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Calendar => "calendar",
            Kind::Contacts => "contacts",
        }
    }

    /// The media type of a resource.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Calendar => "text/calendar; charset=utf-8",
            Kind::Contacts => "text/vcard; charset=utf-8",
        }
    }
}

/// One source collection's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionState {
    /// Calendar or address book.
    pub kind: Kind,
    /// The target collection (path).
    pub target: String,
    /// The source's sync token after the last complete pass (RFC 6578);
    /// `None` before one, or where the server has no sync-collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    /// Per source resource path.
    #[serde(default)]
    pub items: BTreeMap<String, ItemState>,
}

/// A resource on the target that this migrator is responsible for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemState {
    /// The iCalendar / vCard UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The source ETag that was copied.
    pub etag: String,
    /// The target resource (path).
    pub target: String,
    /// The target's ETag after the PUT, when the server gave one: an update
    /// is sent with `If-Match` on it, so a copy changed on the target wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_etag: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_kind_words() {
        let mut c = CollectionState {
            kind: Kind::Calendar,
            target: "/alice/cal/".into(),
            sync_token: Some("http://radicale.org/ns/sync/abc".into()),
            items: BTreeMap::new(),
        };
        c.items.insert(
            "/a/cal/1.ics".into(),
            ItemState {
                uid: "1".into(),
                etag: "\"e\"".into(),
                target: "/alice/cal/1.ics".into(),
                target_etag: None,
            },
        );
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"kind\":\"calendar\""), "{json}");
        assert_eq!(serde_json::from_str::<CollectionState>(&json).unwrap(), c);
        assert_eq!(Kind::Contacts.label(), "contacts");
    }
}
