//! What the copy needs to know about one resource, read with calcard
//! (Stalwart's iCalendar / vCard parser): its UID and its version. The bytes
//! themselves are never re-serialised: servers rewrite what they store, and
//! the copy must not (the SCHEDULE-AGENT marking works on the text, parsed or
//! not: `schedule`).

use super::state::Kind;
use calcard::icalendar::{ICalendar, ICalendarComponentType, ICalendarProperty};
use calcard::vcard::{VCard, VCardProperty};

/// One resource as the copy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// Whether calcard read it as one iCalendar object / one vCard.
    pub parsed: bool,
    /// The UID (of the master, else of the first component that has one).
    pub uid: Option<String>,
    /// What tells two copies of one UID apart: SEQUENCE and LAST-MODIFIED,
    /// else DTSTAMP (iCalendar); REV (vCard). DESIGN.md: "the same" means
    /// the same UID, SEQUENCE and LAST-MODIFIED/DTSTAMP, never the same bytes.
    pub version: String,
}

impl Item {
    /// Reads `data` as the `kind`'s format; a resource that does not parse is
    /// an `Item` with `parsed: false` (copied as is if the target takes it).
    pub fn read(kind: Kind, data: &str) -> Item {
        match kind {
            Kind::Calendar => calendar(data),
            Kind::Contacts => vcard(data),
        }
    }

    /// Whether `other` is the same version of the same object.
    pub fn same_as(&self, other: &Item) -> bool {
        self.parsed && other.parsed && self.uid == other.uid && self.version == other.version
    }
}

const SCHEDULED: [ICalendarComponentType; 3] = [
    ICalendarComponentType::VEvent,
    ICalendarComponentType::VTodo,
    ICalendarComponentType::VJournal,
];

fn calendar(data: &str) -> Item {
    let Ok(ical) = ICalendar::parse(data) else {
        return Item::default();
    };
    let objects: Vec<_> = ical
        .components
        .iter()
        .filter(|c| SCHEDULED.contains(&c.component_type))
        .collect();
    // The master (no RECURRENCE-ID) carries the series' version; a source may
    // hold overrides only (khal#323), then the first of them does.
    let main = objects
        .iter()
        .find(|c| !c.has_property(&ICalendarProperty::RecurrenceId))
        .or_else(|| objects.first());
    let Some(main) = main else {
        return Item {
            parsed: true,
            ..Item::default()
        };
    };
    let text = |prop: &ICalendarProperty| {
        main.property(prop)
            .and_then(|e| e.values.first())
            .map(|v| format!("{v:?}"))
            .unwrap_or_default()
    };
    let modified = match text(&ICalendarProperty::LastModified) {
        m if m.is_empty() => text(&ICalendarProperty::Dtstamp),
        m => m,
    };
    Item {
        parsed: true,
        uid: main.uid().map(str::to_string),
        version: format!("{}|{modified}", text(&ICalendarProperty::Sequence)),
    }
}

fn vcard(data: &str) -> Item {
    let Ok(card) = VCard::parse(data) else {
        return Item::default();
    };
    let rev = card
        .property(&VCardProperty::Rev)
        .and_then(|e| e.values.first())
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    Item {
        parsed: true,
        uid: card.uid().map(str::to_string),
        version: rev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n\
BEGIN:VEVENT\r\nUID:w1\r\nDTSTAMP:20250101T000000Z\r\nSEQUENCE:2\r\nDTSTART:20250106T090000Z\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:weekly\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:w1\r\nRECURRENCE-ID:20250113T090000Z\r\nDTSTAMP:20250102T000000Z\r\nDTSTART:20250113T100000Z\r\nATTENDEE:mailto:x@example.net\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn a_series_is_read_from_its_master() {
        let item = Item::read(Kind::Calendar, SERIES);
        assert!(item.parsed);
        assert_eq!(item.uid.as_deref(), Some("w1"));
        let newer = SERIES.replacen("SEQUENCE:2", "SEQUENCE:3", 1);
        assert!(!item.same_as(&Item::read(Kind::Calendar, &newer)));
        // Reordered properties (as Cyrus stores them) are still the same.
        let reordered = SERIES.replacen(
            "UID:w1\r\nDTSTAMP:20250101T000000Z\r\n",
            "DTSTAMP:20250101T000000Z\r\nUID:w1\r\n",
            1,
        );
        assert!(item.same_as(&Item::read(Kind::Calendar, &reordered)));
    }

    #[test]
    fn vcards_and_garbage() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Carol\r\nREV:20250101T000000Z\r\nEND:VCARD\r\n";
        let item = Item::read(Kind::Contacts, card);
        assert_eq!(item.uid.as_deref(), Some("c1"));
        assert!(!Item::read(Kind::Calendar, "not a calendar").parsed);
        assert!(!Item::read(Kind::Contacts, "").parsed);
    }
}
