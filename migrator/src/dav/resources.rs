//! The resources of one collection: what is there (an RFC 6578 sync-collection
//! delta, else a full listing with ETags, or a calendar-query time-range for
//! `--since`/`--before`), their data (calendar-multiget /
//! addressbook-multiget), and the conditional PUT, with the server's reason
//! when it refuses.

use super::client::Dav;
use super::collections::Collection;
use super::discover::timed;
use super::state::Kind;
use super::DavError;
use crate::config::Side;
use http::StatusCode;
use libdav::caldav::{CalendarComponent, GetCalendarResources, ListCalendarResources, TimeRange};
use libdav::carddav::GetAddressBookResources;
use libdav::dav::{ListResources, ListedResource, PutResource, SyncCollection, WebDavError};
use libdav::requests::DavRequest;

/// A resource and its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its path.
    pub href: String,
    /// Its ETag.
    pub etag: String,
}

/// What a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every resource (selected by the date range, if any); `token` is the
    /// sync token to keep (`None` without sync-collection or with a range).
    Full {
        /// The resources.
        items: Vec<Listed>,
        /// The collection's sync token for the next pass.
        token: Option<String>,
        /// Whether a stored token was refused (expired) first.
        expired: bool,
    },
    /// What changed since the stored token.
    Delta {
        /// New or changed resources.
        changed: Vec<Listed>,
        /// Paths deleted on the source.
        deleted: Vec<String>,
        /// The new token.
        token: String,
    },
}

/// `--since` / `--before` as a CalDAV time range (days in UTC).
pub fn time_range(
    since: Option<chrono::NaiveDate>,
    before: Option<chrono::NaiveDate>,
) -> Option<TimeRange> {
    let stamp = |d: chrono::NaiveDate| {
        d.format("%Y%m%dT000000Z")
            .to_string()
            .parse()
            .expect("a date formats as an iCalendar UTC time")
    };
    match (since, before) {
        (Some(s), Some(b)) => Some(TimeRange::Between(stamp(s), stamp(b))),
        (Some(s), None) => Some(TimeRange::From(stamp(s))),
        (None, Some(b)) => Some(TimeRange::Until(stamp(b))),
        (None, None) => None,
    }
}

/// Lists `c` on the source: the delta since `token` where possible, else
/// everything. Address books are never date-filtered.
pub async fn list(
    dav: &Dav,
    c: &Collection,
    token: Option<&str>,
    range: Option<&TimeRange>,
) -> Result<Listing, DavError> {
    let side = Side::Source;
    let what = format!("REPORT {}", c.href);
    if let (Some(range), Kind::Calendar) = (range, c.kind) {
        let mut items = Vec::new();
        for component in [
            CalendarComponent::VEvent,
            CalendarComponent::VTodo,
            CalendarComponent::VJournal,
        ] {
            let query = ListCalendarResources::new(&c.href)
                .with_component_and_time_range(component, range.clone());
            let found = timed(side, &what, async {
                dav.request(query)
                    .await
                    .map_err(|e| DavError::from_libdav(side, &what, &e))
            })
            .await?;
            items.extend(listed(found.resources));
        }
        items.sort_by(|a, b| a.href.cmp(&b.href));
        items.dedup_by(|a, b| a.href == b.href);
        return Ok(Listing::Full {
            items,
            token: None,
            expired: false,
        });
    }
    let mut expired = false;
    if let (Some(token), true) = (token, c.supports_sync) {
        let delta = timed(side, &what, async {
            Ok(dav
                .request(SyncCollection::new(&c.href).with_sync_token(token))
                .await)
        })
        .await?;
        match delta {
            Ok(r) => {
                return Ok(Listing::Delta {
                    changed: listed(r.changed),
                    deleted: r.deleted,
                    token: r.new_sync_token,
                })
            }
            // An expired or unknown token (RFC 6578 §3.2: DAV:valid-sync-token,
            // which servers send with 403, 409 or 400): list everything.
            Err(WebDavError::PreconditionFailed(_) | WebDavError::BadStatusCode(_)) => {
                expired = true
            }
            Err(e) => return Err(DavError::from_libdav(side, &what, &e)),
        }
    }
    if c.supports_sync {
        let all = timed(side, &what, async {
            dav.request(SyncCollection::new(&c.href))
                .await
                .map_err(|e| DavError::from_libdav(side, &what, &e))
        })
        .await?;
        return Ok(Listing::Full {
            items: listed(all.changed),
            token: Some(all.new_sync_token),
            expired,
        });
    }
    let what = format!("PROPFIND {}", c.href);
    let all = timed(side, &what, async {
        dav.request(ListResources::new(&c.href))
            .await
            .map_err(|e| DavError::from_libdav(side, &what, &e))
    })
    .await?;
    Ok(Listing::Full {
        items: listed(all.resources),
        token: None,
        expired,
    })
}

/// Resources only (no sub-collections), with their ETags.
fn listed(found: Vec<ListedResource>) -> Vec<Listed> {
    found
        .into_iter()
        .filter(|r| !r.href.ends_with('/') && !r.resource_type.is_collection)
        .filter_map(|r| {
            Some(Listed {
                etag: r.etag?,
                href: r.href,
            })
        })
        .collect()
}

/// A fetched resource: its data and ETag, or the status the server gave for it.
pub type Fetched = (String, Result<(String, String), StatusCode>);

/// Fetches `hrefs` of collection `collection` with one multiget.
pub async fn fetch(
    dav: &Dav,
    side: Side,
    kind: Kind,
    collection: &str,
    hrefs: &[String],
) -> Result<Vec<Fetched>, DavError> {
    let what = format!("REPORT {collection} (multiget)");
    let resources = timed(side, &what, async {
        match kind {
            Kind::Calendar => dav
                .request(GetCalendarResources::new(collection).with_hrefs(hrefs))
                .await
                .map(|r| r.resources),
            Kind::Contacts => dav
                .request(GetAddressBookResources::new(collection).with_hrefs(hrefs))
                .await
                .map(|r| r.resources),
        }
        .map_err(|e| DavError::from_libdav(side, &what, &e))
    })
    .await?;
    Ok(resources
        .into_iter()
        .map(|r| (r.href, r.content.map(|c| (c.data, c.etag))))
        .collect())
}

/// How a PUT ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Stored (201 or 204); the new ETag when the server gave one.
    Stored(Option<String>),
    /// The condition failed (412): something is at that path already
    /// (`If-None-Match: *`), or the target's copy changed (`If-Match`).
    Precondition,
    /// The UID is already in the collection at another path (RFC 4791
    /// `no-uid-conflict`, RFC 6638 `unique-scheduling-object-resource`).
    UidTaken(String),
    /// Refused for good: the status and the server's reason.
    Refused(String),
}

/// PUTs `data` at `href`: `If-None-Match: *` to create, `If-Match` to update.
pub async fn put(
    dav: &Dav,
    kind: Kind,
    href: &str,
    data: &str,
    if_match: Option<&str>,
) -> Result<Put, DavError> {
    let side = Side::Target;
    let base = dav.base_url().clone();
    let request = match if_match {
        None => PutResource::new(href)
            .create(data, kind.media_type())
            .prepare_request(base),
        Some(etag) => PutResource::new(href)
            .update(data, kind.media_type(), etag)
            .prepare_request(base),
    }
    .map_err(|e| DavError::Config(format!("target PUT {href}: {e}")))?;
    let what = format!("PUT {href}");
    let (head, body) = timed(side, &what, async {
        dav.request_raw(request)
            .await
            .map_err(|e| DavError::Transport(format!("target {what}: {e}")))
    })
    .await?;
    let status = head.status;
    if status.is_success() {
        let etag = head
            .headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        return Ok(Put::Stored(etag));
    }
    let reason = reason(status, &body);
    if status == StatusCode::PRECONDITION_FAILED {
        return Ok(Put::Precondition);
    }
    if status.is_server_error() && status != StatusCode::INSUFFICIENT_STORAGE {
        return Err(DavError::Transport(format!("target {what}: {reason}")));
    }
    if reason.contains("no-uid-conflict") || reason.contains("unique-scheduling-object-resource") {
        return Ok(Put::UidTaken(reason));
    }
    Ok(Put::Refused(reason))
}

/// `409 Conflict (no-uid-conflict: /alice/cal/x.ics)`: the status and what the
/// body says (the DAV:error preconditions, RFC 4918 §16, else its text).
pub fn reason(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let said = match roxmltree::Document::parse(&text) {
        Ok(doc) if doc.root_element().tag_name().name() == "error" => doc
            .root_element()
            .children()
            .filter(|n| n.is_element())
            .map(|n| {
                let inner: String = n
                    .descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .collect();
                let inner = inner.trim();
                if inner.is_empty() {
                    n.tag_name().name().to_string()
                } else {
                    format!("{}: {inner}", n.tag_name().name())
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        Ok(doc) => doc
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => text.to_string(),
    };
    let said: String = said.split_whitespace().collect::<Vec<_>>().join(" ");
    let said: String = said.chars().take(300).collect();
    let words = status.canonical_reason().unwrap_or("");
    if said.is_empty() {
        format!("{} {words}", status.as_u16())
    } else {
        format!("{} {words} ({said})", status.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_precondition() {
        let body = br#"<?xml version="1.0"?><D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict><D:href>/a/b.ics</D:href></C:no-uid-conflict></D:error>"#;
        assert_eq!(
            reason(StatusCode::CONFLICT, body),
            "409 Conflict (no-uid-conflict: /a/b.ics)"
        );
        assert_eq!(
            reason(
                StatusCode::BAD_REQUEST,
                b"Bad Request\n\n  invalid   iCalendar"
            ),
            "400 Bad Request (Bad Request invalid iCalendar)"
        );
        assert_eq!(reason(StatusCode::FORBIDDEN, b""), "403 Forbidden");
    }

    #[test]
    fn date_range_is_days_in_utc() {
        let d = |s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let r = time_range(Some(d("2025-01-01")), Some(d("2026-01-01"))).unwrap();
        match r {
            TimeRange::Between(a, b) => {
                assert_eq!(a.as_str(), "20250101T000000Z");
                assert_eq!(b.as_str(), "20260101T000000Z");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(time_range(None, None), None);
    }
}
