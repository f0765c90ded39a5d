//! What `coexist-relay route ADDRESS` answers: the decision for an address and
//! the next hop it implies, as one serialisable value.

use super::router::Router;
use super::table::ContactsTable;
use crate::config::{Config, RoutingSource};
use crate::envelope::RouteReason;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// One row of `route` (`--json`: the fields of DESIGN.md "Commands").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The address asked about.
    pub address: String,
    /// The route, or `None` when the relay refuses the address.
    pub route: Option<String>,
    /// The smarthosts of the route, or `MX of <domain>`.
    pub next_hop: Option<String>,
    /// The envelope recipient toward the next hop.
    pub rewritten: Option<String>,
    /// Why, in words (or why not).
    pub reason: String,
    /// The outbound TLS policy the recipient would get (`route` fills it in
    /// after DNS: MTA-STS mode, TLSA records), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
}

impl Explanation {
    /// Decides where `address` goes for `client`, with `table`.
    pub fn new(
        config: &Config,
        router: &Router,
        table: &ContactsTable,
        address: &str,
        client: IpAddr,
    ) -> Explanation {
        match router.decide(table, address, client) {
            Ok(d) => Explanation {
                next_hop: config.routes.get(&d.route).map(|r| {
                    if r.mx {
                        format!("MX of {}", d.rewritten.rsplit('@').next().unwrap_or(""))
                    } else {
                        let hosts: Vec<String> =
                            r.smarthost.iter().map(|h| h.to_string()).collect();
                        hosts.join(", ")
                    }
                }),
                address: address.to_string(),
                reason: match (&d.reason, &config.routing.source) {
                    (RouteReason::Contact, RoutingSource::Ldap(_)) => {
                        directory_reason(config, router, table, address)
                    }
                    (reason, _) => reason_text(reason),
                },
                route: Some(d.route),
                rewritten: Some(d.rewritten),
                tls: None,
            },
            Err(e) => Explanation {
                address: address.to_string(),
                route: None,
                next_hop: None,
                rewritten: None,
                reason: format!("{e} (for client {client})"),
                tls: None,
            },
        }
    }
}

impl fmt::Display for Explanation {
    /// `address -> rewritten via route [next hop]: reason`, or `address -> refused: reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.route, &self.rewritten) {
            (Some(route), Some(rewritten)) => {
                write!(
                    f,
                    "{} -> {} via {} [{}]: {}",
                    self.address,
                    rewritten,
                    route,
                    self.next_hop.as_deref().unwrap_or(""),
                    self.reason
                )?;
                match &self.tls {
                    Some(tls) => write!(f, "; tls {tls}"),
                    None => Ok(()),
                }
            }
            _ => write!(f, "{} -> refused: {}", self.address, self.reason),
        }
    }
}

/// With the directory as the source, names the entry the contact came from:
/// the cache's line for the address carries its DN as a comment.
fn directory_reason(
    config: &Config,
    router: &Router,
    table: &ContactsTable,
    address: &str,
) -> String {
    let dn = table
        .lookup_contact(address, router.separator())
        .and_then(|c| {
            let text = std::fs::read_to_string(&config.routing.contacts).ok()?;
            let line = text.lines().nth(c.line.checked_sub(1)?)?;
            crate::directory::model::dn_of_line(line).map(str::to_string)
        });
    match dn {
        Some(dn) => format!("contact in the directory ({dn})"),
        None => "contact in the directory".into(),
    }
}

/// The reason in the words an operator reads.
fn reason_text(reason: &RouteReason) -> String {
    match reason {
        RouteReason::Contact => "contact in the contacts table".into(),
        RouteReason::Rule { domain } => format!("[[routing.rule]] for {domain}"),
        RouteReason::AcceptedDomain => "accepted domain (routing.accepted_route)".into(),
        RouteReason::Default => "other domain, trusted client (routing.default_route)".into(),
    }
}
