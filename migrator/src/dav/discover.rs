//! Where a user's calendars and address books are, and what the server offers.
//!
//! With a `dav_home` template (admin access) the homes are the expanded
//! templates. Without one, logged in as the user: `DAV:current-user-principal`
//! (RFC 5397) at `dav_url`, else at the context path that
//! `/.well-known/caldav` redirects to (RFC 6764 §5), then the principal's
//! `calendar-home-set` (RFC 4791 §6.2.1) and `addressbook-home-set`
//! (RFC 6352 §7.1.1).

use super::client::{Dav, REQUEST_TIMEOUT};
use super::DavError;
use crate::config::{expand, DavEndpoint, Side};
use libdav::caldav::FindCalendarHomeSet;
use libdav::carddav::FindAddressBookHomeSet;
use libdav::dav::GetProperties;
use libdav::sd::DiscoverableService;
use libdav::PropertyName;
use std::future::Future;

/// The user's homes on one side (paths on the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Homes {
    /// Where the calendars are (and new ones are made).
    pub calendars: Option<String>,
    /// Where the address books are.
    pub addressbooks: Option<String>,
    /// How they were found (for `check`).
    pub found: Found,
}

/// How a side's homes were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The `dav_home` / `dav_addressbook_home` templates, expanded.
    Template,
    /// The home sets of the user's principal.
    Principal {
        /// The principal's path (RFC 5397 `current-user-principal`).
        principal: String,
        /// Whether it was found only behind `/.well-known/caldav` (RFC 6764).
        well_known: bool,
    },
}

/// Runs one request with the DAV timeout; a timeout is a transport failure.
pub async fn timed<T>(
    side: Side,
    what: &str,
    request: impl Future<Output = Result<T, DavError>>,
) -> Result<T, DavError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(done) => done,
        Err(_) => Err(DavError::Transport(format!(
            "{side} {what}: no answer in {}s",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

/// The homes of the user `address` (contact `target`) on this side.
pub async fn homes(
    dav: &Dav,
    side: Side,
    endpoint: &DavEndpoint,
    address: &str,
    target: &str,
) -> Result<Homes, DavError> {
    if let Some(home) = &endpoint.home {
        let calendars = slash(expand(home, address, target));
        let addressbooks = endpoint
            .addressbook_home
            .as_ref()
            .map(|t| slash(expand(t, address, target)))
            .unwrap_or_else(|| calendars.clone());
        return Ok(Homes {
            calendars: Some(calendars),
            addressbooks: Some(addressbooks),
            found: Found::Template,
        });
    }
    let (principal, well_known) = principal(dav, side, endpoint).await?;
    let calendars = timed(side, "calendar-home-set", async {
        dav.request(FindCalendarHomeSet::new(&principal))
            .await
            .map_err(|e| DavError::from_libdav(side, format!("PROPFIND {principal}"), &e))
    })
    .await?
    .home_sets
    .into_iter()
    .next()
    .map(|u| u.path().to_string());
    let addressbooks = timed(side, "addressbook-home-set", async {
        dav.request(FindAddressBookHomeSet::new(&principal))
            .await
            .map_err(|e| DavError::from_libdav(side, format!("PROPFIND {principal}"), &e))
    })
    .await?
    .home_sets
    .into_iter()
    .next()
    .map(|u| u.path().to_string());
    if calendars.is_none() && addressbooks.is_none() {
        return Err(DavError::Discovery(format!(
            "{side} {}: the principal {principal} has neither a calendar-home-set nor an \
             addressbook-home-set; set dav_home",
            endpoint.url
        )));
    }
    Ok(Homes {
        calendars,
        addressbooks,
        found: Found::Principal {
            principal,
            well_known,
        },
    })
}

/// `current-user-principal` at `dav_url` (or `/`), else behind the well-known
/// URI (then `true`).
async fn principal(
    dav: &Dav,
    side: Side,
    endpoint: &DavEndpoint,
) -> Result<(String, bool), DavError> {
    let none_found = || {
        DavError::Discovery(format!(
            "{side} {}: no current-user-principal (RFC 5397) at the URL, at / or behind \
             /.well-known/caldav; set dav_home to the user's calendar home",
            endpoint.url
        ))
    };
    let found = timed(side, "current-user-principal", async {
        dav.find_current_user_principal()
            .await
            .map_err(|e| DavError::Status(format!("{side} {}: {e}", endpoint.url)))
    })
    .await;
    match found {
        Ok(Some(uri)) => return Ok((uri.path().to_string(), false)),
        Ok(None) | Err(DavError::Status(_)) => {}
        Err(e) => return Err(e),
    }
    let service = if endpoint.tls {
        DiscoverableService::CalDavs
    } else {
        DiscoverableService::CalDav
    };
    let context = timed(side, "/.well-known/caldav", async {
        dav.find_context_path(service, &endpoint.host, endpoint.port)
            .await
            .map_err(|e| DavError::Status(format!("{side} {}: {e}", endpoint.url)))
    })
    .await?
    .ok_or_else(none_found)?;
    let mut at_context = dav.clone();
    at_context.base_url = context;
    timed(side, "current-user-principal", async {
        at_context
            .find_current_user_principal()
            .await
            .map_err(|e| DavError::Status(format!("{side} {}: {e}", endpoint.url)))
    })
    .await?
    .map(|uri| (uri.path().to_string(), true))
    .ok_or_else(none_found)
}

fn slash(mut path: String) -> String {
    if !path.ends_with('/') {
        path.push('/');
    }
    path
}

/// Whether the server schedules (RFC 6638 §2: `calendar-auto-schedule` in the
/// `DAV:` header of OPTIONS on the calendar home).
pub async fn auto_schedules(dav: &Dav, side: Side, home: &str) -> Result<bool, DavError> {
    let uri = dav
        .relative_uri(home)
        .map_err(|e| DavError::Config(format!("{side} {home}: {e}")))?;
    let request = http::Request::builder()
        .method(http::Method::OPTIONS)
        .uri(uri)
        .body(String::new())
        .map_err(|e| DavError::Config(format!("{side} {home}: {e}")))?;
    let (head, _) = timed(side, "OPTIONS", async {
        dav.request_raw(request)
            .await
            .map_err(|e| DavError::Transport(format!("{side} OPTIONS {home}: {e}")))
    })
    .await?;
    Ok(head
        .headers
        .get_all("dav")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("calendar-auto-schedule")))
}

static QUOTA_AVAILABLE: PropertyName = PropertyName::new("DAV:", "quota-available-bytes");

/// RFC 4331 `quota-available-bytes` on `home`, where the server offers it.
pub async fn quota_available(dav: &Dav, side: Side, home: &str) -> Result<Option<u64>, DavError> {
    let answer = timed(side, "quota", async {
        Ok(dav
            .request(GetProperties::new(home, &[&QUOTA_AVAILABLE]))
            .await)
    })
    .await?;
    Ok(match answer {
        Ok(r) => r
            .values
            .into_iter()
            .find_map(|(_, v)| v.and_then(|v| v.trim().parse::<u64>().ok())),
        // Not offered (Radicale answers 404 for the property).
        Err(_) => None,
    })
}
