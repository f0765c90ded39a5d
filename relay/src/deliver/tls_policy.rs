//! Which TLS policy governs one transaction, and what it allows: the route's
//! own `tls`, or, on an MX route, the recipient domain's MTA-STS policy
//! (RFC 8461), which overrides the route's in `enforce` mode.
//!
//! `enforce`: only MX hosts that match the policy, each with a certificate
//! valid for its MX name (the route's `verify` trust: webpki roots plus `ca`);
//! anything else defers with 4.7.5 naming MTA-STS. `testing`: deliver under the
//! route's policy and log what `enforce` would have refused.

use super::mta_sts::{ActivePolicy, Mode};
use super::mx::NextHop;
use super::status::DeliverError;
use crate::config::OutboundTls;
use crate::metrics::TlsPolicyLabel;

/// The policy that applies to a group's next hops.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The route's `tls`.
    Route(OutboundTls),
    /// The domain's MTA-STS policy.
    MtaSts {
        /// The policy.
        policy: ActivePolicy,
        /// The route's own `tls` (what `testing` delivers with).
        route: OutboundTls,
    },
}

impl Applied {
    /// For the delivery log: `opportunistic`, `verify`, `mta-sts:enforce`, …
    pub fn label(&self) -> String {
        match self {
            Applied::Route(t) => baseline(*t).as_str().to_string(),
            Applied::MtaSts { policy, .. } => format!("mta-sts:{}", policy.mode.as_str()),
        }
    }

    /// The `policy` label of `tls_policy_total`.
    pub fn metric(&self) -> TlsPolicyLabel {
        match self {
            Applied::Route(t) => route_label(baseline(*t)),
            Applied::MtaSts { .. } => TlsPolicyLabel::MtaSts,
        }
    }

    /// The policy the session is opened under.
    pub fn wire(&self) -> OutboundTls {
        match self {
            Applied::Route(t) => baseline(*t),
            Applied::MtaSts { policy, .. } if policy.mode == Mode::Enforce => OutboundTls::Verify,
            Applied::MtaSts { route, .. } => baseline(*route),
        }
    }

    /// Whether the policy allows the MX host `host` (every host, for a route policy).
    pub fn allows(&self, host: &str) -> bool {
        match self {
            Applied::Route(_) => true,
            Applied::MtaSts { policy, .. } => policy.allows(host),
        }
    }

    /// Whether this is an MTA-STS policy in `testing` mode (audited, not enforced).
    pub fn testing(&self) -> bool {
        matches!(self, Applied::MtaSts { policy, .. } if policy.mode == Mode::Testing)
    }

    /// The next hops the policy allows, in order. `enforce` keeps the MX hosts
    /// the policy lists (RFC 8461 §4.1) and refuses when none is left;
    /// `testing` keeps all and logs the ones `enforce` would drop.
    pub fn select(&self, hops: Vec<NextHop>) -> Result<Vec<NextHop>, DeliverError> {
        let Applied::MtaSts { policy, .. } = self else {
            return Ok(hops);
        };
        let (allowed, refused): (Vec<NextHop>, Vec<NextHop>) =
            hops.into_iter().partition(|h| policy.allows(&h.host));
        if refused.is_empty() {
            return Ok(allowed);
        }
        let mut names: Vec<&str> = refused.iter().map(|h| h.host.as_str()).collect();
        names.dedup();
        match policy.mode {
            Mode::Enforce if allowed.is_empty() => Err(DeliverError::TlsPolicy(format!(
                "MTA-STS policy of {} (enforce, id {}) lists none of its MX hosts ({}); policy mx: {}",
                policy.domain,
                policy.id,
                names.join(", "),
                policy.mx.join(", ")
            ))),
            Mode::Enforce => Ok(allowed),
            Mode::Testing => {
                tracing::warn!(
                    domain = %policy.domain,
                    "MTA-STS policy (testing) would refuse MX hosts {}: not in its mx list",
                    names.join(", ")
                );
                let mut all = allowed;
                all.extend(refused);
                Ok(all)
            }
        }
    }

    /// An error of one next hop as the queue should record it: under
    /// `enforce`, a TLS failure names MTA-STS.
    pub fn explain(&self, e: DeliverError) -> DeliverError {
        match self {
            Applied::MtaSts { policy, .. } if policy.mode == Mode::Enforce && e.is_tls() => {
                DeliverError::TlsPolicy(format!(
                    "MTA-STS policy of {} (enforce) needs TLS with a valid certificate for the MX name: {e}",
                    policy.domain
                ))
            }
            _ => e,
        }
    }
}

/// In words, the TLS policy a recipient at `domain` gets on `route` now (the
/// MTA-STS lookup included; a fetched policy is not cached), for `route` and `doctor`.
pub async fn describe(config: &crate::config::Config, route_name: &str, domain: &str) -> String {
    let Some(route) = config.routes.get(route_name) else {
        return "unknown route".into();
    };
    if route.tls == OutboundTls::Dane && config.dns.dnssec && route.mx && !domain.is_empty() {
        if let Some(text) = describe_dane(config, route, domain).await {
            return text;
        }
    }
    if !route.mta_sts || domain.is_empty() {
        return route.tls.as_str().into();
    }
    let (resolver, tls) = match (
        super::mx::Resolver::new(&config.dns),
        super::tls::RouteTls::new(route),
    ) {
        (Ok(r), Ok(t)) => (r, t),
        (Err(e), _) | (_, Err(e)) => {
            return format!("{} (MTA-STS not checked: {e})", route.tls.as_str())
        }
    };
    let sts = super::mta_sts::MtaSts::read_only(&config.server.spool_dir);
    match sts.lookup(&resolver, domain, tls.roots()).await {
        super::mta_sts::Lookup::Policy(p) => format!(
            "mta-sts:{} (id {}, mx {}{})",
            p.mode.as_str(),
            p.id,
            p.mx.join(" "),
            match p.mode {
                Mode::Enforce => "; overrides the route's tls".to_string(),
                Mode::Testing => format!("; delivers with tls = {}", route.tls.as_str()),
            }
        ),
        super::mta_sts::Lookup::NoPolicy => {
            format!("{} (no MTA-STS policy for {domain})", route.tls.as_str())
        }
    }
}

/// The policy before any DANE record is looked at: `dane` is `opportunistic`
/// until a next hop has secure TLSA records (RFC 7672 §2.2).
fn baseline(t: OutboundTls) -> OutboundTls {
    match t {
        OutboundTls::Dane => OutboundTls::Opportunistic,
        other => other,
    }
}

/// DANE's view of `domain`: which MX hosts have secure TLSA records; `None`
/// when none has (then MTA-STS or the fallback is what applies).
async fn describe_dane(
    config: &crate::config::Config,
    route: &crate::config::RouteConfig,
    domain: &str,
) -> Option<String> {
    let dane = super::dane::Dane::new(&config.dns).ok()?;
    let resolver = super::mx::Resolver::new(&config.dns).ok()?;
    match dane.mx_proof(domain).await {
        super::dane::MxProof::Secure => {}
        super::dane::MxProof::NotSecure => {
            return Some(format!(
                "dane: the MX of {domain} is not DNSSEC-secure; opportunistic"
            ))
        }
        super::dane::MxProof::Failed(e) => return Some(format!("dane: {e}; deferred")),
    }
    let hops = resolver.mx(domain, route.port).await.ok()?;
    let mut hosts: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for hop in &hops {
        // One line per host, not per address.
        if seen.contains(&hop.host.as_str()) {
            continue;
        }
        seen.push(&hop.host);
        let what = match dane.tlsa(&hop.host, hop.addr.port()).await {
            super::dane::HopDane::Failed(e) => format!("{e}; not used"),
            super::dane::HopDane::NoRecords => "no TLSA, opportunistic".to_string(),
            super::dane::HopDane::Unusable => "TLSA present, none usable: TLS required".into(),
            super::dane::HopDane::Records(r) => format!("{} usable TLSA record(s)", r.len()),
        };
        hosts.push(format!("{} ({what})", hop.host));
    }
    Some(format!("dane: {}", hosts.join(", ")))
}

fn route_label(t: OutboundTls) -> TlsPolicyLabel {
    match t {
        OutboundTls::None => TlsPolicyLabel::None,
        OutboundTls::Opportunistic => TlsPolicyLabel::Opportunistic,
        OutboundTls::Required => TlsPolicyLabel::Required,
        OutboundTls::Verify => TlsPolicyLabel::Verify,
        OutboundTls::Dane => TlsPolicyLabel::Dane,
    }
}

/// The `policy` labels a route can produce, for the zero-valued series at start.
pub fn labels_of(route: &crate::config::RouteConfig) -> Vec<TlsPolicyLabel> {
    let mut labels = vec![route_label(route.tls)];
    if route.tls == OutboundTls::Dane {
        // Without secure TLSA records DANE delivers opportunistically.
        labels.push(TlsPolicyLabel::Opportunistic);
    }
    if route.mta_sts {
        labels.push(TlsPolicyLabel::MtaSts);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(host: &str) -> NextHop {
        NextHop {
            host: host.into(),
            addr: "192.0.2.1:25".parse().unwrap(),
        }
    }

    fn sts(mode: Mode) -> Applied {
        Applied::MtaSts {
            policy: ActivePolicy {
                domain: "example.test".into(),
                mode,
                mx: vec!["mx1.example.test".into(), "*.backup.example.test".into()],
                id: "1".into(),
                expires_at: i64::MAX,
            },
            route: OutboundTls::Opportunistic,
        }
    }

    #[test]
    fn enforce_keeps_matching_mx_hosts_and_refuses_when_none_match() {
        let hops = vec![hop("evil.example.net"), hop("a.backup.example.test")];
        let kept = sts(Mode::Enforce).select(hops).unwrap();
        assert_eq!(kept, vec![hop("a.backup.example.test")]);
        let e = sts(Mode::Enforce)
            .select(vec![
                hop("evil.example.net"),
                hop("a.b.backup.example.test"),
            ])
            .unwrap_err();
        assert_eq!(e.status().to_string(), "4.7.5");
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("MTA-STS"), "{e}");
        assert_eq!(sts(Mode::Enforce).wire(), OutboundTls::Verify);
        assert_eq!(sts(Mode::Enforce).label(), "mta-sts:enforce");
    }

    #[test]
    fn testing_keeps_every_hop_and_the_route_policy() {
        let hops = vec![hop("evil.example.net"), hop("mx1.example.test")];
        assert_eq!(sts(Mode::Testing).select(hops).unwrap().len(), 2);
        assert_eq!(sts(Mode::Testing).wire(), OutboundTls::Opportunistic);
        let e = sts(Mode::Testing).explain(DeliverError::TlsUnavailable);
        assert!(matches!(e, DeliverError::TlsUnavailable));
    }
}
