//! The routing decision for one recipient (DESIGN.md, "Relay behaviour"):
//!
//! 1. a contact matches → rewritten to its target, its route or `contact_route`;
//! 2. the domain is accepted → the first `[[routing.rule]]` for that domain, else
//!    `accepted_route`;
//! 3. any other domain → `default_route`, for trusted clients only; everyone else
//!    gets "relay denied" (`554 5.7.1`).
//!
//! Domains compare case-insensitively, exactly (no implicit subdomains), with one
//! trailing dot ignored. The caller passes the RCPT path without angle brackets and
//! with any source route (`@a,@b:user@domain`) already removed, as RFC 5321 §3.6.1
//! and Appendix C ask.
//!
//! # Open-relay tricks (refused for untrusted clients)
//! Old MTAs forward `user%other@accepted`, `other!user@accepted` and
//! `"user@other"@accepted` to `other` ("percent hack", UUCP bang path, quoted `@`).
//! Our next hop might be such an MTA, so for a client outside `trusted_networks`
//! an accepted-domain recipient whose local part holds `%`, `!` or `@` is refused
//! unless a contact matches that exact address (no sub-address stripping).
//! Address-literal domains (`user@[192.0.2.1]`) are never accepted domains.

use super::reload::Contacts;
use super::table::ContactsTable;
use crate::config::{RelayConfig, RoutingConfig, RoutingRule};
use crate::envelope::RouteReason;
use ipnet::IpNet;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// Where one recipient goes. Serialises as `{address, route, rewritten, reason}`
/// (the `route` command adds `next_hop` from the route's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The recipient as given to [`Router::decide`].
    pub address: String,
    /// Route name.
    pub route: String,
    /// Envelope recipient toward the next hop: the contact target, or the address
    /// with a trailing dot removed and a bare `postmaster` completed.
    pub rewritten: String,
    /// Why.
    pub reason: RouteReason,
}

/// Why a recipient cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Not for us and the client may not relay: `554 5.7.1`.
    #[error("relay access denied")]
    RelayDenied,
    /// Not a routable address (RFC 5321 §4.1.2 Mailbox): `501 5.1.3`.
    #[error("bad recipient address: {0}")]
    BadAddress(&'static str),
    /// An accepted domain while no routing snapshot is loaded (the directory
    /// has not answered yet and there is no cache): `451 4.3.0`.
    #[error("no routing snapshot yet (the directory has not answered)")]
    NoSnapshot,
}

/// The routing policy of the relay, built once from the configuration.
#[derive(Debug)]
pub struct Router {
    accepted_domains: Vec<String>,
    trusted_networks: Vec<IpNet>,
    contact_route: String,
    accepted_route: String,
    default_route: String,
    separator: String,
    rules: Vec<RoutingRule>,
    contacts: Arc<Contacts>,
}

/// Lower case, without one trailing dot: the form domains are compared in.
fn normalize_domain(domain: &str) -> String {
    domain.strip_suffix('.').unwrap_or(domain).to_lowercase()
}

impl Router {
    /// Builds the router over the live contacts table.
    pub fn new(relay: &RelayConfig, routing: &RoutingConfig, contacts: Arc<Contacts>) -> Router {
        Router {
            accepted_domains: relay
                .accepted_domains
                .iter()
                .map(|d| normalize_domain(d))
                .collect(),
            trusted_networks: relay.trusted_networks.clone(),
            contact_route: routing.contact_route.clone(),
            accepted_route: routing.accepted_route.clone(),
            default_route: routing.default_route.clone(),
            separator: routing.subaddress_separator.clone(),
            rules: routing
                .rules
                .iter()
                .map(|r| RoutingRule {
                    domain: normalize_domain(&r.domain),
                    route: r.route.clone(),
                })
                .collect(),
            contacts,
        }
    }

    /// The contacts table to route one whole transaction with.
    pub fn table(&self) -> Arc<ContactsTable> {
        self.contacts.current()
    }

    /// The sub-address separator characters (`""` = off).
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// The live contacts table (for reload and the watcher).
    pub fn contacts(&self) -> &Arc<Contacts> {
        &self.contacts
    }

    /// True when `client` may relay to any domain. IPv4-mapped IPv6 addresses
    /// (a dual-stack listener) count as the IPv4 address.
    pub fn is_trusted(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.trusted_networks.iter().any(|n| n.contains(&client))
    }

    /// Decides where `address` goes for a client at `client`, using `table`.
    pub fn decide(
        &self,
        table: &ContactsTable,
        address: &str,
        client: IpAddr,
    ) -> Result<Decision, RouteError> {
        self.decide_for(table, address, self.is_trusted(client))
    }

    /// Like [`Router::decide`] for mail the relay makes itself (bounces), which may
    /// go to any domain like mail from a trusted client.
    pub fn decide_local(
        &self,
        table: &ContactsTable,
        address: &str,
    ) -> Result<Decision, RouteError> {
        self.decide_for(table, address, true)
    }

    fn decide_for(
        &self,
        table: &ContactsTable,
        address: &str,
        trusted: bool,
    ) -> Result<Decision, RouteError> {
        if address.is_empty() {
            // RFC 5321 §4.5.5: <> is a reverse-path only.
            return Err(RouteError::BadAddress("empty recipient"));
        }
        let postmaster;
        let full = if address.eq_ignore_ascii_case("postmaster") {
            // RFC 5321 §4.5.1: bare "postmaster" must be accepted; it means ours.
            let domain = self
                .accepted_domains
                .first()
                .ok_or(RouteError::RelayDenied)?;
            postmaster = format!("{address}@{domain}");
            postmaster.as_str()
        } else {
            address
        };
        let (local, domain) = full
            .rsplit_once('@')
            .ok_or(RouteError::BadAddress("no domain"))?;
        if local.is_empty() {
            return Err(RouteError::BadAddress("empty local part"));
        }
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() || domain.ends_with('.') {
            return Err(RouteError::BadAddress("empty domain"));
        }
        let rewritten = format!("{local}@{domain}");
        let decision = |route: &str, rewritten: String, reason| Decision {
            address: address.to_owned(),
            route: route.to_owned(),
            rewritten,
            reason,
        };

        // Percent hack, bang path, quoted "@": only an exact contact routes these
        // for an untrusted client.
        let tricky = local.contains(['%', '!', '@']);
        let separator = if tricky && !trusted {
            ""
        } else {
            &self.separator
        };
        if let Some(m) = table.lookup(&rewritten, separator) {
            let route = m.route.as_deref().unwrap_or(&self.contact_route);
            return Ok(decision(route, m.rewritten, RouteReason::Contact));
        }

        let domain = domain.to_lowercase();
        let accepted = !domain.starts_with('[') && self.accepted_domains.contains(&domain);
        if accepted {
            // DESIGN.md: never on-premises for want of a table; the user may
            // have moved.
            if table.is_placeholder() {
                return Err(RouteError::NoSnapshot);
            }
            if tricky && !trusted {
                return Err(RouteError::RelayDenied);
            }
            if let Some(rule) = self.rules.iter().find(|r| r.domain == domain) {
                let reason = RouteReason::Rule {
                    domain: rule.domain.clone(),
                };
                return Ok(decision(&rule.route, rewritten, reason));
            }
            return Ok(decision(
                &self.accepted_route,
                rewritten,
                RouteReason::AcceptedDomain,
            ));
        }
        if trusted {
            return Ok(decision(
                &self.default_route,
                rewritten,
                RouteReason::Default,
            ));
        }
        Err(RouteError::RelayDenied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    const TABLE: &str = "\
bob@corp.example           bob@tenant.example
Legal@Corp.Example         Legal@tenant.example          cloud-eu
\"x@y\"@corp.example         xy@tenant.example
a%b@corp.example           ab@tenant.example
far@elsewhere.example      far@tenant.example
";

    fn router(table: &str) -> (Router, Arc<ContactsTable>) {
        let routes: BTreeSet<String> = ["cloud", "cloud-eu", "onprem", "onprem-eu", "internet"]
            .map(String::from)
            .into();
        let parsed =
            ContactsTable::parse(table, Path::new("contacts"), &|r| routes.contains(r)).unwrap();
        let contacts = Contacts::with_table(Path::new("/nonexistent/contacts"), routes, parsed);
        let relay = RelayConfig {
            accepted_domains: vec!["corp.example".into(), "eu.corp.example".into()],
            trusted_networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            trusted_tls_names: Vec::new(),
        };
        let routing = RoutingConfig {
            source: crate::config::RoutingSource::File,
            contacts: PathBuf::from("contacts"),
            contact_route: "cloud".into(),
            accepted_route: "onprem".into(),
            default_route: "internet".into(),
            subaddress_separator: "+".into(),
            rules: vec![
                RoutingRule {
                    domain: "EU.corp.example.".into(),
                    route: "onprem-eu".into(),
                },
                RoutingRule {
                    domain: "eu.corp.example".into(),
                    route: "never-reached".into(),
                },
            ],
        };
        let r = Router::new(&relay, &routing, contacts);
        let t = r.table();
        (r, t)
    }

    fn trusted() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn outside() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    fn decide(address: &str, client: IpAddr) -> Result<Decision, RouteError> {
        let (r, t) = router(TABLE);
        r.decide(&t, address, client)
    }

    fn route_of(address: &str, client: IpAddr) -> (String, String, RouteReason) {
        let d = decide(address, client).unwrap_or_else(|e| panic!("{address}: {e}"));
        (d.route, d.rewritten, d.reason)
    }

    #[test]
    fn contact_with_default_and_own_route() {
        assert_eq!(
            route_of("bob@corp.example", outside()),
            (
                "cloud".into(),
                "bob@tenant.example".into(),
                RouteReason::Contact
            )
        );
        assert_eq!(
            route_of("LEGAL@corp.example", outside()),
            (
                "cloud-eu".into(),
                "Legal@tenant.example".into(),
                RouteReason::Contact
            )
        );
    }

    #[test]
    fn contact_with_subaddress_case_and_trailing_dot() {
        assert_eq!(
            route_of("Bob+News@CORP.example.", outside()),
            (
                "cloud".into(),
                "bob+News@tenant.example".into(),
                RouteReason::Contact
            )
        );
    }

    #[test]
    fn contact_outside_accepted_domains_is_explicit_operator_choice() {
        assert_eq!(
            route_of("far@elsewhere.example", outside()).2,
            RouteReason::Contact
        );
    }

    #[test]
    fn accepted_domain_and_rules_in_order() {
        assert_eq!(
            route_of("alice@Corp.Example.", outside()),
            (
                "onprem".into(),
                "alice@Corp.Example".into(),
                RouteReason::AcceptedDomain
            )
        );
        assert_eq!(
            route_of("alice@eu.corp.example", outside()),
            (
                "onprem-eu".into(),
                "alice@eu.corp.example".into(),
                RouteReason::Rule {
                    domain: "eu.corp.example".into()
                }
            )
        );
        // No implicit subdomains.
        assert_eq!(
            decide("a@x.corp.example", outside()),
            Err(RouteError::RelayDenied)
        );
    }

    #[test]
    fn other_domains_only_for_trusted_clients() {
        assert_eq!(
            route_of("someone@example.org", trusted()),
            (
                "internet".into(),
                "someone@example.org".into(),
                RouteReason::Default
            )
        );
        assert_eq!(
            route_of("someone@example.org", "::1".parse().unwrap()).2,
            RouteReason::Default
        );
        // An IPv4-mapped IPv6 client counts as its IPv4 address.
        assert_eq!(
            route_of("someone@example.org", "::ffff:127.0.0.1".parse().unwrap()).2,
            RouteReason::Default
        );
        assert_eq!(
            decide("someone@example.org", outside()),
            Err(RouteError::RelayDenied)
        );
    }

    #[test]
    fn relay_tricks_refused_for_untrusted_clients() {
        for trick in [
            "user%example.org@corp.example",
            "example.org!user@corp.example",
            "\"user@example.org\"@corp.example",
            "user@example.org@corp.example",
            "bob+%x@corp.example", // would match bob by tag stripping: not exact
        ] {
            assert_eq!(
                decide(trick, outside()),
                Err(RouteError::RelayDenied),
                "{trick}"
            );
            // Trusted clients may relay anywhere anyway.
            assert!(decide(trick, trusted()).is_ok(), "{trick}");
        }
        // Exact contacts are the operator's decision and pass.
        assert_eq!(
            route_of("\"X@Y\"@corp.example", outside()).1,
            "xy@tenant.example"
        );
        assert_eq!(
            route_of("a%b@corp.example", outside()).1,
            "ab@tenant.example"
        );
    }

    #[test]
    fn address_literals_are_not_accepted_domains() {
        assert_eq!(
            decide("user@[192.0.2.1]", outside()),
            Err(RouteError::RelayDenied)
        );
        assert_eq!(
            route_of("user@[192.0.2.1]", trusted()).2,
            RouteReason::Default
        );
    }

    #[test]
    fn bare_postmaster_is_ours() {
        assert_eq!(
            route_of("PostMaster", outside()),
            (
                "onprem".into(),
                "PostMaster@corp.example".into(),
                RouteReason::AcceptedDomain
            )
        );
        // A postmaster who moved to the cloud is found as a contact.
        let (r, t) = router("postmaster@corp.example pm@tenant.example\n");
        let d = r.decide(&t, "postmaster", outside()).unwrap();
        assert_eq!(d.rewritten, "pm@tenant.example");
        assert_eq!(d.address, "postmaster");
    }

    #[test]
    fn malformed_recipients() {
        for (bad, why) in [
            ("", "empty recipient"),
            ("alice", "no domain"),
            ("@corp.example", "empty local part"),
            ("alice@", "empty domain"),
            ("alice@.", "empty domain"),
            ("alice@corp.example..", "empty domain"),
        ] {
            assert_eq!(
                decide(bad, trusted()),
                Err(RouteError::BadAddress(why)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_snapshot_routes_a_whole_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        std::fs::write(&path, "bob@corp.example bob@tenant.example\n").unwrap();
        let contacts = Contacts::load(&path, ["cloud".to_string()].into()).unwrap();
        let (base, _) = router("");
        let r = Router { contacts, ..base };
        let snapshot = r.table();
        std::fs::write(&path, "# bob moved back\n").unwrap();
        r.contacts().reload().unwrap();
        // The transaction's snapshot still routes bob to the cloud; a new one does not.
        assert_eq!(
            r.decide(&snapshot, "bob@corp.example", outside())
                .unwrap()
                .route,
            "cloud"
        );
        assert_eq!(
            r.decide(&r.table(), "bob@corp.example", outside())
                .unwrap()
                .route,
            "onprem"
        );
    }

    #[test]
    fn decision_json_shape() {
        let d = decide("bob+x@corp.example", outside()).unwrap();
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "address": "bob+x@corp.example",
                "route": "cloud",
                "rewritten": "bob+x@tenant.example",
                "reason": {"kind": "contact"},
            })
        );
        let d = decide("a@eu.corp.example", outside()).unwrap();
        assert_eq!(
            serde_json::to_value(&d).unwrap()["reason"],
            serde_json::json!({"kind": "rule", "domain": "eu.corp.example"})
        );
    }
}
