//! A user's calendars and address books: listing them (PROPFIND Depth 1 on
//! the home, with display name, colour and description), pairing each source
//! collection with the target one of the same `DAV:displayname`, and creating
//! the missing ones under the source's last path segment (MKCALENDAR for
//! calendars, RFC 4791 §5.3.1; extended MKCOL for address books, RFC 5689),
//! keeping description and colour.

use super::client::Dav;
use super::discover::timed;
use super::state::Kind;
use super::DavError;
use crate::config::Side;
use http::{Method, Request, Uri};
use libdav::caldav::{supported_calendar_component_set, CalendarComponent, GetSupportedComponents};
use libdav::carddav::CreateAddressBook;
use libdav::dav::{make_relative_url, FindCollections, WebDavError};
use libdav::names;
use libdav::requests::{xml_content_type_header, DavRequest, ParseResponseError};
use libdav::xmlutils::XmlNode;
use libdav::PropertyName;

/// One calendar or address book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Its path.
    pub href: String,
    /// Calendar or address book.
    pub kind: Kind,
    /// `DAV:displayname`.
    pub display_name: Option<String>,
    /// `calendar-description` / `addressbook-description`.
    pub description: Option<String>,
    /// Apple's `calendar-color`.
    pub colour: Option<String>,
    /// Whether it answers RFC 6578 sync-collection.
    pub supports_sync: bool,
}

impl Collection {
    /// The name collections are paired by: the display name, else the last
    /// path segment.
    pub fn name(&self) -> &str {
        match self.display_name.as_deref() {
            Some(n) if !n.trim().is_empty() => n,
            _ => self.segment(),
        }
    }

    /// The last path segment.
    pub fn segment(&self) -> &str {
        self.href
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
    }
}

/// The calendars (or address books) under `home`.
pub async fn list(
    dav: &Dav,
    side: Side,
    home: &str,
    kind: Kind,
) -> Result<Vec<Collection>, DavError> {
    let (collection_type, description) = match kind {
        Kind::Calendar => (&names::CALENDAR, &names::CALENDAR_DESCRIPTION),
        Kind::Contacts => (&names::ADDRESSBOOK, &names::ADDRESSBOOK_DESCRIPTION),
    };
    let found = timed(side, "PROPFIND", async {
        dav.request(
            FindCollections::new(home)
                .with_collection_type(collection_type)
                .with_additional_properties(&[
                    &names::DISPLAY_NAME,
                    description,
                    &names::CALENDAR_COLOUR,
                ]),
        )
        .await
        .map_err(|e| DavError::from_libdav(side, format!("PROPFIND {home}"), &e))
    })
    .await?;
    Ok(found
        .collections
        .into_iter()
        .map(|c| {
            let prop = |i: usize| c.properties.get(i).and_then(|(_, v)| v.clone());
            Collection {
                kind,
                display_name: prop(0),
                description: prop(1),
                colour: prop(2),
                supports_sync: c.supports_sync,
                href: c.href,
            }
        })
        .collect())
}

/// The target collection for `source`: the one with the same name, else a
/// new one under `home` (at the source's last segment, or with a number
/// after it when that path is taken by a collection of another name).
pub async fn pair(
    dav: &Dav,
    home: &str,
    source: &Collection,
    source_dav: &Dav,
    existing: &[Collection],
) -> Result<(Collection, bool), DavError> {
    if let Some(found) = existing.iter().find(|t| t.name() == source.name()) {
        return Ok((found.clone(), false));
    }
    let base = format!("{home}{}", source.segment());
    let mut href = format!("{base}/");
    for n in 2.. {
        if !existing.iter().any(|t| t.href == href) {
            break;
        }
        href = format!("{base}-{n}/");
    }
    let mut made = source.clone();
    made.href = href.clone();
    made.display_name = Some(source.name().to_string());
    match source.kind {
        Kind::Calendar => {
            let components = timed(Side::Source, "PROPFIND", async {
                Ok(source_dav
                    .request(GetSupportedComponents::new(&source.href))
                    .await
                    .map(|r| r.components)
                    .unwrap_or_default())
            })
            .await?;
            let request = MakeCalendar {
                path: &href,
                collection: &made,
                components: &components,
            };
            timed(Side::Target, "MKCALENDAR", async {
                dav.request(request).await.map_err(|e| {
                    DavError::from_libdav(Side::Target, format!("MKCALENDAR {href}"), &e)
                })
            })
            .await?;
        }
        Kind::Contacts => {
            let mut request = CreateAddressBook::new(&href).with_display_name(source.name());
            if let Some(d) = &source.description {
                request = request.with_description(d);
            }
            timed(Side::Target, "MKCOL", async {
                dav.request(request)
                    .await
                    .map_err(|e| DavError::from_libdav(Side::Target, format!("MKCOL {href}"), &e))
            })
            .await?;
        }
    }
    Ok((made, true))
}

/// A plain collection at `home` (MKCOL, RFC 4918 §9.3), for a home that is
/// not there yet.
pub async fn make_home(dav: &Dav, home: &str) -> Result<(), DavError> {
    let uri = dav
        .relative_uri(home)
        .map_err(|e| DavError::Config(format!("target {home}: {e}")))?;
    let request = Request::builder()
        .method(Method::from_bytes(b"MKCOL").expect("a method name"))
        .uri(uri)
        .body(String::new())
        .map_err(|e| DavError::Config(format!("target {home}: {e}")))?;
    let (head, body) = timed(Side::Target, "MKCOL", async {
        dav.request_raw(request)
            .await
            .map_err(|e| DavError::Transport(format!("target MKCOL {home}: {e}")))
    })
    .await?;
    if head.status.is_success() {
        Ok(())
    } else {
        Err(DavError::Status(format!(
            "target MKCOL {home}: {}",
            super::resources::reason(head.status, &body)
        )))
    }
}

static MKCALENDAR: PropertyName = PropertyName::new(names::CALDAV, "mkcalendar");

/// MKCALENDAR with display name, description, colour and the source's
/// component set (libdav's `CreateCalendar` is an extended MKCOL without a
/// description; MKCALENDAR is what every CalDAV server has).
struct MakeCalendar<'a> {
    path: &'a str,
    collection: &'a Collection,
    components: &'a [CalendarComponent],
}

impl DavRequest for MakeCalendar<'_> {
    type Response = ();
    type ParseError = ParseResponseError;
    type Error<E> = WebDavError<E>;

    fn prepare_request(&self, base_url: Uri) -> Result<Request<String>, http::Error> {
        let c = self.collection;
        let mut props = Vec::new();
        if let Some(name) = &c.display_name {
            props.push(XmlNode::new(&names::DISPLAY_NAME).with_text(name));
        }
        if let Some(d) = &c.description {
            props.push(XmlNode::new(&names::CALENDAR_DESCRIPTION).with_text(d));
        }
        if let Some(colour) = &c.colour {
            props.push(XmlNode::new(&names::CALENDAR_COLOUR).with_text(colour));
        }
        if !self.components.is_empty() {
            props.push(supported_calendar_component_set(self.components));
        }
        let prop = XmlNode::new(&names::PROP).with_children(props);
        let set = XmlNode::new(&names::SET).with_children(vec![prop]);
        let body = XmlNode::new(&MKCALENDAR).with_children(vec![set]);
        let (ct_name, ct_value) = xml_content_type_header();
        Request::builder()
            .method(Method::from_bytes(b"MKCALENDAR")?)
            .uri(make_relative_url(base_url, self.path)?)
            .header(ct_name, ct_value)
            .body(body.render_node())
    }

    fn parse_response(
        &self,
        parts: &http::response::Parts,
        _body: &[u8],
    ) -> Result<(), ParseResponseError> {
        if parts.status.is_success() {
            Ok(())
        } else {
            Err(ParseResponseError::BadStatusCode(parts.status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkcalendar_carries_name_description_colour_and_components() {
        let c = Collection {
            href: "/src/work/".into(),
            kind: Kind::Calendar,
            display_name: Some("Work & play".into()),
            description: Some("team".into()),
            colour: Some("#ff0000ff".into()),
            supports_sync: true,
        };
        let r = MakeCalendar {
            path: "/alice/work/",
            collection: &c,
            components: &[CalendarComponent::VEvent, CalendarComponent::VTodo],
        }
        .prepare_request(Uri::from_static("https://dav.example"))
        .unwrap();
        assert_eq!(r.method().as_str(), "MKCALENDAR");
        assert_eq!(r.uri().path(), "/alice/work/");
        let body = r.body();
        for part in [
            "<C:mkcalendar",
            "Work &amp; play</D:displayname>",
            "team</C:calendar-description>",
            "#ff0000ff</",
            "name=\"VTODO\"",
        ] {
            assert!(body.contains(part), "{part} in {body}");
        }
        assert_eq!(c.name(), "Work & play");
        assert_eq!(c.segment(), "work");
    }
}
