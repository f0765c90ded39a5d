//! What the quota gate needs from DAV: the bytes of the user's calendars and
//! address books on the source (`DAV:getcontentlength`, one PROPFIND per
//! collection) and the target's RFC 4331 `quota-available-bytes` where it
//! offers one. The gate adds the bytes to the mail's and uses the smaller free
//! space of IMAP QUOTA and DAV quota.

use super::client::Dav;
use super::collections;
use super::discover::{self, timed};
use super::state::{CollectionState, Kind};
use super::{DavError, Servers};
use crate::config::{Content, Side};
use libdav::dav::{Propfind, SyncCollection};
use libdav::{names, Depth, PropertyName};
use std::collections::BTreeMap;

/// DAV's share of the gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DavMeasure {
    /// Bytes of the resources not on the target yet (not in the checkpoint
    /// with the ETag the source has now).
    pub bytes: u64,
    /// The smallest `quota-available-bytes` of the target's homes.
    pub free: Option<u64>,
}

impl DavMeasure {
    /// Adds DAV's share to the mail's measure: the bytes count with the
    /// mail's, and the smaller free space of IMAP QUOTA and DAV quota wins.
    pub fn add_to(&self, m: &mut crate::plan::Measure) {
        m.bytes += self.bytes;
        if let Some(free) = self.free {
            if m.quota.is_none_or(|q| free < q.free()) {
                m.quota = Some(crate::imap::Quota {
                    usage: 0,
                    limit: free,
                });
            }
        }
    }
}

static GETCONTENTLENGTH: PropertyName = PropertyName::new("DAV:", "getcontentlength");

/// Measures the user `address` (contact `target`) for `content`; `state` is
/// the user's checkpoint (what is copied already).
pub async fn measure(
    servers: &Servers,
    address: &str,
    target: &str,
    content: Content,
    state: &BTreeMap<String, CollectionState>,
) -> Result<DavMeasure, DavError> {
    let src = servers.source.client(&servers.logins, address, target)?;
    let dst = servers.target.client(&servers.logins, address, target)?;
    let src_dav = servers.source.endpoint.dav.as_ref().expect("DAV side");
    let dst_dav = servers.target.endpoint.dav.as_ref().expect("DAV side");
    let src_homes = discover::homes(&src, Side::Source, src_dav, address, target).await?;
    let dst_homes = discover::homes(&dst, Side::Target, dst_dav, address, target).await?;
    let mut m = DavMeasure::default();
    let kinds = [
        (
            content.calendar,
            Kind::Calendar,
            &src_homes.calendars,
            &dst_homes.calendars,
        ),
        (
            content.contacts,
            Kind::Contacts,
            &src_homes.addressbooks,
            &dst_homes.addressbooks,
        ),
    ];
    for (wanted, kind, src_home, dst_home) in kinds {
        let (true, Some(src_home)) = (wanted, src_home) else {
            continue;
        };
        if let Some(home) = dst_home {
            if let Some(free) = discover::quota_available(&dst, Side::Target, home).await? {
                m.free = Some(m.free.map_or(free, |f| f.min(free)));
            }
        }
        for c in collections::list(&src, Side::Source, src_home, kind).await? {
            let copied = state.get(&c.href);
            if c.supports_sync && unchanged(&src, &c.href, copied).await {
                continue;
            }
            m.bytes += collection_bytes(&src, &c.href, copied).await?;
        }
    }
    Ok(m)
}

/// Whether the collection has not changed since the checkpoint's sync token
/// (RFC 6578: nothing new or changed in the delta), so nothing in it is left
/// to copy. A full
/// listing of a big collection is what makes a quiet `sync` slow (Radicale,
/// 5,000 events: seconds); the delta is what the copy asks for anyway. An
/// expired token or any error: `false`, and the collection is listed.
async fn unchanged(dav: &Dav, href: &str, copied: Option<&CollectionState>) -> bool {
    let Some(token) = copied.and_then(|c| c.sync_token.as_deref()) else {
        return false;
    };
    let what = format!("REPORT {href}");
    let delta = timed(Side::Source, &what, async {
        dav.request(SyncCollection::new(href).with_sync_token(token))
            .await
            .map_err(|e| DavError::from_libdav(Side::Source, &what, &e))
    })
    .await;
    matches!(delta, Ok(d) if d.changed.is_empty())
}

/// The sum of `getcontentlength` under `href` (Depth 1) of the resources
/// `copied` does not have with their current ETag.
async fn collection_bytes(
    dav: &Dav,
    href: &str,
    copied: Option<&CollectionState>,
) -> Result<u64, DavError> {
    let what = format!("PROPFIND {href}");
    let answer = timed(Side::Source, &what, async {
        dav.request(
            Propfind::new(href)
                .with_properties(&[&GETCONTENTLENGTH, &names::GETETAG])
                .with_depth(Depth::One),
        )
        .await
        .map_err(|e| DavError::from_libdav(Side::Source, &what, &e))
    })
    .await?;
    let doc = answer
        .xml_tree()
        .map_err(|e| DavError::Status(format!("source {what}: {e}")))?;
    let field = |r: roxmltree::Node, name: &str| {
        r.descendants()
            .find(|n| n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
    };
    let mut bytes = 0;
    for r in doc
        .descendants()
        .filter(|n| n.tag_name().name() == "response")
    {
        let (Some(path), Some(len)) = (field(r, "href"), field(r, "getcontentlength")) else {
            continue;
        };
        let path = libdav::encoding::normalise_percent_encoded(&path)
            .map(|p| p.into_owned())
            .unwrap_or(path);
        // The collection itself: Radicale gives it the length of the whole
        // collection, which would count every resource twice.
        if path.ends_with('/') {
            continue;
        }
        let etag = field(r, "getetag");
        let done = copied
            .and_then(|c| c.items.get(&path))
            .is_some_and(|i| Some(&i.etag) == etag.as_ref());
        if !done {
            bytes += len.parse::<u64>().unwrap_or(0);
        }
    }
    Ok(bytes)
}
