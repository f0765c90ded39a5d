//! One look at the directory as the relay's mirror would see it, for
//! `check --online` and `doctor`: bind, full search, the routing decision
//! over the result, and which change-tracking mode the server allows.

use super::client::{self, DirectoryError};
use super::model::{self, DirEntry, Kind, Problem};
use crate::config::ldap::LdapConfig;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// What one survey found.
#[derive(Debug, Clone)]
pub struct Survey {
    /// The server that answered (the first of `url` that bound).
    pub url: String,
    /// The bind DN ("" = anonymous).
    pub bind_dn: String,
    /// User entries under `base` (with `[ldap] filter`).
    pub users: usize,
    /// Contact entries under `base`.
    pub contacts: usize,
    /// Routing keys (addresses) the snapshot would hold.
    pub routed: usize,
    /// Users routed with `deliverAndRedirect: TRUE` (mail goes to the contact
    /// only; DESIGN.md has `doctor` warn).
    pub deliver_and_redirect: Vec<String>,
    /// Whether RFC 4533 refreshAndPersist is offered.
    pub sync: bool,
    /// The `refresh` interval used without it.
    pub refresh: std::time::Duration,
    /// Entries the snapshot would leave out.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Survey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.bind_dn.is_empty() {
            "anonymously".to_string()
        } else {
            format!("as {}", self.bind_dn)
        };
        let mode = if self.sync {
            "changes by RFC 4533 refreshAndPersist".to_string()
        } else {
            format!(
                "no RFC 4533: full re-read every {}",
                crate::config::units::format_duration(self.refresh)
            )
        };
        write!(
            f,
            "{} bound {who}; {} user(s), {} contact(s), {} address(es) routed, {} left out; {mode}",
            self.url,
            self.users,
            self.contacts,
            self.routed,
            self.problems.len()
        )
    }
}

/// Connects, reads and decides, as the mirror's first load does.
pub async fn survey(
    config: &LdapConfig,
    routes: &BTreeSet<String>,
) -> Result<Survey, DirectoryError> {
    let config = Arc::new(config.clone());
    let conn = client::connect(&config).await?;
    let sync = conn.offers_sync().await?;
    let found = conn
        .search_all(
            &config.base,
            &model::mirror_filter(config.filter.as_deref()),
            &model::mirror_attributes(config.route_attribute.as_deref()),
        )
        .await?;
    let url = conn.url.text.clone();
    conn.close().await;
    let entries: Vec<DirEntry> = found
        .iter()
        .filter_map(|e| DirEntry::parse(&e.dn, &e.attrs, config.route_attribute.as_deref()))
        .collect();
    let (routed, problems) = model::routing(&entries, &|r| routes.contains(r));
    let routed_dns: BTreeSet<&str> = routed.iter().map(|r| r.source_dn.as_str()).collect();
    let deliver_and_redirect = entries
        .iter()
        .filter(|e| e.kind == Kind::User && e.deliver_and_redirect == Some(true))
        .filter(|e| e.alt_recipient.is_some() || routed_dns.contains(e.dn.as_str()))
        .map(|e| e.dn.clone())
        .collect();
    Ok(Survey {
        url,
        bind_dn: config.bind_dn.clone(),
        users: entries.iter().filter(|e| e.kind == Kind::User).count(),
        contacts: entries.iter().filter(|e| e.kind == Kind::Contact).count(),
        routed: routed.len(),
        deliver_and_redirect,
        sync,
        refresh: config.refresh,
        problems,
    })
}
