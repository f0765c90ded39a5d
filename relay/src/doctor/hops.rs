//! Next hops of every route: resolvable and reachable, and TLS as the route's
//! policy needs. Each probe connects, reads the greeting, says EHLO, does
//! STARTTLS when the policy would, and says QUIT: no MAIL is ever sent.
//!
//! Hops are grouped as delivery tries them: the smarthosts of a route, or the
//! MX hosts of one domain. A hop that fails while another of its group works
//! is a warning (delivery fails over, with less redundancy); when none works it
//! is a failure.

use super::{Check, Status};
use crate::config::{Config, OutboundTls, RouteConfig};
use crate::deliver::client::{Session, SessionParams};
use crate::deliver::mx::{NextHop, Resolver};
use crate::deliver::status::{DeliverError, Stage};
use crate::deliver::tls;
use crate::route::table::ContactsTable;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Known domains of an MX route probed at most: a sample shows whether the
/// relay can reach the internet on port 25 at all; each domain is resolved
/// again at delivery anyway.
const MAX_SAMPLE_DOMAINS: usize = 3;

/// Upper bound on waiting for one reply during a probe, whatever the route's
/// `command_timeout` (which is minutes, for slow servers under load).
const PROBE_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Hops that delivery would try in turn for one set of recipients.
struct Group {
    /// `route NAME` or `route NAME, MX of DOMAIN`.
    label: String,
    route: String,
    /// Resolution results: hops, or the lines saying what did not resolve.
    hops: Vec<NextHop>,
    /// Resolution problems, as checks (warn/fail decided once hops are known).
    unresolved: Vec<(String, String)>,
}

/// Checks every route's next hops within `budget`.
pub(super) async fn check(
    config: &Config,
    contacts: Option<&ContactsTable>,
    budget: Duration,
) -> Vec<Check> {
    let deadline = Instant::now() + budget;
    let mut checks = Vec::new();
    let resolver = match Resolver::new(&config.dns) {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::fail(
                "next hops",
                e.to_string(),
                "fix /etc/resolv.conf or set [dns] nameservers",
            )]
        }
    };
    for (name, route) in &config.routes {
        if !route.mx {
            let group = smarthost_group(&resolver, name, route, deadline).await;
            checks.extend(probe_group(config, group, deadline).await);
            continue;
        }
        match known_domains(config, contacts, name) {
            None => checks.push(Check::ok(
                format!("route {name}"),
                "MX route: resolved per recipient domain at delivery",
            )),
            Some(domains) if domains.is_empty() => checks.push(Check::ok(
                format!("route {name}"),
                "MX route, not used by any rule, contact or accepted domain",
            )),
            Some(domains) => {
                if domains.len() > MAX_SAMPLE_DOMAINS {
                    checks.push(Check::ok(
                        format!("route {name}"),
                        format!(
                            "MX route for {} domain(s); probing the first {MAX_SAMPLE_DOMAINS}",
                            domains.len()
                        ),
                    ));
                }
                for domain in domains.iter().take(MAX_SAMPLE_DOMAINS) {
                    let group = mx_group(&resolver, name, route, domain, deadline).await;
                    checks.extend(probe_group(config, group, deadline).await);
                }
            }
        }
    }
    checks
}

/// The domains an MX route carries mail for, or `None` when it takes mail
/// for any domain (it is `routing.default_route`).
fn known_domains(
    config: &Config,
    contacts: Option<&ContactsTable>,
    route: &str,
) -> Option<BTreeSet<String>> {
    let routing = &config.routing;
    if routing.default_route == route {
        return None;
    }
    let mut domains = BTreeSet::new();
    for rule in routing.rules.iter().filter(|r| r.route == route) {
        domains.insert(rule.domain.clone());
    }
    if routing.accepted_route == route {
        let overridden: BTreeSet<&str> = routing.rules.iter().map(|r| r.domain.as_str()).collect();
        domains.extend(
            config
                .relay
                .accepted_domains
                .iter()
                .filter(|d| !overridden.contains(d.as_str()))
                .cloned(),
        );
    }
    for c in contacts.into_iter().flat_map(ContactsTable::iter) {
        if c.route.unwrap_or(&routing.contact_route) == route {
            if let Some((_, domain)) = c.target.rsplit_once('@') {
                domains.insert(domain.to_ascii_lowercase());
            }
        }
    }
    Some(domains)
}

async fn smarthost_group(
    resolver: &Resolver,
    name: &str,
    route: &RouteConfig,
    deadline: Instant,
) -> Group {
    let mut group = Group {
        label: format!("route {name}"),
        route: name.to_string(),
        hops: Vec::new(),
        unresolved: Vec::new(),
    };
    for entry in &route.smarthost {
        let lookup = resolver.smarthosts(std::slice::from_ref(entry));
        match tokio::time::timeout_at(deadline, lookup).await {
            Ok(Ok(hops)) => group.hops.extend(hops),
            Ok(Err(e)) => group
                .unresolved
                .push((format!("smarthost {entry}"), e.to_string())),
            Err(_) => group
                .unresolved
                .push((format!("smarthost {entry}"), "not resolved in time".into())),
        }
    }
    group
}

async fn mx_group(
    resolver: &Resolver,
    name: &str,
    route: &RouteConfig,
    domain: &str,
    deadline: Instant,
) -> Group {
    let mut group = Group {
        label: format!("route {name}, MX of {domain}"),
        route: name.to_string(),
        hops: Vec::new(),
        unresolved: Vec::new(),
    };
    match tokio::time::timeout_at(deadline, resolver.mx(domain, route.port)).await {
        Ok(Ok(hops)) => group.hops = hops,
        Ok(Err(e)) => group.unresolved.push(("MX".into(), e.to_string())),
        Err(_) => group
            .unresolved
            .push(("MX".into(), "not resolved in time".into())),
    }
    group
}

/// Probes every hop of a group at once; then decides warn or fail.
async fn probe_group(config: &Config, group: Group, deadline: Instant) -> Vec<Check> {
    let Some(route) = config.routes.get(&group.route) else {
        return Vec::new();
    };
    // The route's own TLS material, so a certificate connector is probed
    // presenting its client certificate as delivery will.
    let tls_config = match tls::RouteTls::new(route) {
        Ok(t) => t.config(route.tls),
        Err(e) => {
            return vec![Check::fail(
                group.label,
                e.to_string(),
                format!(
                    "point route.{0}.ca, client_cert and client_key at readable PEM files (the key matching the certificate)",
                    group.route
                ),
            )]
        }
    };
    let params = SessionParams {
        helo: route
            .helo_name
            .clone()
            .unwrap_or_else(|| config.server.hostname.clone()),
        policy: route.tls,
        tls_config,
        audit: None,
        connect_timeout: route.connect_timeout,
        command_timeout: route.command_timeout.min(PROBE_COMMAND_TIMEOUT),
        data_timeout: route.data_timeout,
    };
    let outcomes = probe_all(&group.hops, &params, deadline).await;
    let any_ok = outcomes.iter().any(|o| matches!(o, Some(Ok(_))));
    // A broken hop is a warning while another of its group carries the mail.
    let broken = if any_ok { Status::Warn } else { Status::Fail };
    let mut checks = Vec::new();
    for (what, detail) in group.unresolved {
        let fix = if group.hops.is_empty() && what == "MX" {
            "publish MX records for the domain, or route it to a smarthost".to_string()
        } else {
            format!(
                "correct route.{}.smarthost, or the DNS (or /etc/hosts) entry for the name",
                group.route
            )
        };
        checks.push(make(
            broken,
            format!("{}: {what}", group.label),
            detail,
            fix,
        ));
    }
    if group.hops.is_empty() && checks.is_empty() {
        checks.push(Check::fail(
            group.label.clone(),
            "no next hop",
            format!("set route.{}.smarthost", group.route),
        ));
    }
    for (hop, outcome) in group.hops.iter().zip(outcomes) {
        let what = format!("{}: {}", group.label, hop_name(hop));
        checks.push(match outcome {
            None => make(
                broken,
                what,
                "not probed: the doctor's overall time limit ran out",
                "fix the slow next hops reported above, then run doctor again",
            ),
            Some(Ok(tls)) => reached(&what, &group.route, route.tls, tls),
            Some(Err(e)) => {
                let (detail, fix) = explain(&e, hop, &group.route, route);
                make(broken, what, detail, fix)
            }
        });
    }
    checks
}

/// Probes every hop at once, until `deadline`; `None` for a hop not finished by then.
async fn probe_all(
    hops: &[NextHop],
    params: &SessionParams,
    deadline: Instant,
) -> Vec<Option<Result<Option<String>, DeliverError>>> {
    let mut tasks = JoinSet::new();
    for (i, hop) in hops.iter().enumerate() {
        let (hop, params) = (hop.clone(), params.clone());
        tasks.spawn(async move {
            let outcome = tokio::time::timeout_at(deadline, probe(&hop, &params)).await;
            (i, outcome)
        });
    }
    let mut outcomes: Vec<Option<Result<Option<String>, DeliverError>>> =
        (0..hops.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, Ok(result))) = joined {
            outcomes[i] = Some(result);
        }
    }
    outcomes
}

/// `host[ip]:port` as Postfix logs it, or just `ip:port` for an IP literal.
fn hop_name(hop: &NextHop) -> String {
    if hop.host.parse::<std::net::IpAddr>().is_ok() {
        hop.addr.to_string()
    } else {
        hop.to_string()
    }
}

fn make(status: Status, what: String, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    match status {
        Status::Fail => Check::fail(what, detail, fix),
        _ => Check::warn(what, detail, fix),
    }
}

/// One probe: the TLS summary (`None` in clear) of a session that got through
/// EHLO and the policy's STARTTLS.
async fn probe(hop: &NextHop, params: &SessionParams) -> Result<Option<String>, DeliverError> {
    let session = Session::open(hop, params).await?;
    let tls = session.tls.clone();
    session.quit().await;
    Ok(tls)
}

/// The line for a hop that answered.
fn reached(what: &str, route: &str, policy: OutboundTls, tls: Option<String>) -> Check {
    match (tls, policy) {
        (Some(tls), OutboundTls::Verify) => {
            Check::ok(what, format!("EHLO ok, STARTTLS ok ({tls}), certificate verified"))
        }
        (Some(tls), _) => Check::ok(what, format!("EHLO ok, STARTTLS ok ({tls})")),
        (None, OutboundTls::None) => Check::ok(what, "EHLO ok, in clear (tls = \"none\")"),
        // Session::open only stays in clear under `opportunistic` when
        // STARTTLS was not offered (required/verify fail instead).
        (None, _) => Check::warn(
            what,
            "EHLO ok, but STARTTLS not offered: mail to it goes in clear",
            format!(
                "enable STARTTLS on the next hop (Postfix: smtpd_tls_security_level = may; \
                 Exchange: a certificate on the receive connector), then consider route.{route}.tls = \"required\""
            ),
        ),
    }
}

/// Detail and fix for a probe that failed.
fn explain(e: &DeliverError, hop: &NextHop, route: &str, config: &RouteConfig) -> (String, String) {
    let hostport = format!("{}:{}", hop.addr.ip(), hop.addr.port());
    match e {
        DeliverError::Connect(io) => (
            format!("cannot connect: {io}"),
            format!("check that the next hop is up and listening on {hostport}, and that firewalls let the relay reach it"),
        ),
        DeliverError::Timeout(Stage::Connect) => (
            format!("no connection within {:?} (route.{route}.connect_timeout)", config.connect_timeout),
            format!("check that packets from the relay reach {hostport} (firewall, outbound port 25 blocked by the provider?)"),
        ),
        DeliverError::Timeout(stage) => (
            format!("no reply in {stage}"),
            "check the next hop's logs: it accepts connections but does not answer".into(),
        ),
        DeliverError::Rejected { stage: Stage::Greeting | Stage::Ehlo, reply } => (
            format!("refuses the relay: {reply}"),
            "allow the relay's address on the next hop (Postfix: mynetworks; Exchange: the receive connector's remote IP ranges)".into(),
        ),
        DeliverError::TlsUnavailable => (
            format!(
                "STARTTLS not offered, and route.{route}.tls = \"{}\" forbids sending in clear: no mail would be delivered",
                policy_name(config.tls)
            ),
            format!("enable STARTTLS on the next hop, or set route.{route}.tls = \"opportunistic\" if clear text is acceptable on this path"),
        ),
        DeliverError::Tls(detail) if config.tls == OutboundTls::Verify => (
            format!("STARTTLS handshake or certificate check failed: {detail}"),
            format!(
                "install a certificate valid for {} on the next hop, add its CA with route.{route}.ca, or use tls = \"required\"",
                hop.host
            ),
        ),
        DeliverError::Tls(detail) => (
            format!("STARTTLS offered but the handshake failed: {detail}"),
            "fix the next hop's TLS set-up (certificate and key, protocol versions): delivery to it fails".into(),
        ),
        other => (
            other.to_string(),
            "see the next hop's logs for why it ended the session".into(),
        ),
    }
}

fn policy_name(policy: OutboundTls) -> &'static str {
    policy.as_str()
}
