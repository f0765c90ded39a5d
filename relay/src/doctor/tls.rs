//! Each route's outbound TLS facts: the policy, what MTA-STS and DANE add, the
//! MTA-STS policies cached in the spool folder, and the client certificate a
//! certificate connector presents (readable, matching its key, not expiring).

use super::Check;
use crate::config::{Config, OutboundTls, RouteConfig};
use crate::deliver::mta_sts::store::Stored;
use std::path::Path;

/// Days before a client certificate's expiry that doctor starts warning
/// (the alert rules use the same for the server certificate).
const EXPIRY_WARN_DAYS: i64 = 21;

/// One check per route, plus one per client certificate.
pub(super) fn check(config: &Config) -> Vec<Check> {
    let cached = cached_policies(&config.server.spool_dir);
    let mut checks = Vec::new();
    for (name, route) in &config.routes {
        checks.push(policy(name, route, &cached));
        if let (Some(cert), Some(key)) = (&route.client_cert, &route.client_key) {
            checks.push(client_certificate(name, cert, key));
        }
    }
    checks
}

fn policy(name: &str, route: &RouteConfig, cached: &[Stored]) -> Check {
    let what = format!("TLS policy of route {name}");
    let mut detail = format!("tls = {}", route.tls.as_str());
    if route.tls == OutboundTls::Dane {
        detail.push_str(
            " (DNSSEC-validated TLSA records of each MX host decide; without them opportunistic)",
        );
    }
    if route.mta_sts {
        let mut modes: Vec<String> = cached
            .iter()
            .map(|s| {
                let mode = mailrs_mta_sts::Policy::parse(&s.body)
                    .map(|p| format!("{:?}", p.mode).to_lowercase())
                    .unwrap_or_else(|_| "unreadable".into());
                format!("{} {mode}", s.domain)
            })
            .collect();
        modes.sort();
        detail.push_str(&format!(
            "; MTA-STS applied to every recipient domain; {} policies cached{}",
            modes.len(),
            if modes.is_empty() {
                String::new()
            } else {
                format!(" ({})", modes.join(", "))
            }
        ));
    }
    if route.client_cert.is_some() {
        detail.push_str("; presents a client certificate");
    }
    Check::ok(what, detail)
}

fn client_certificate(name: &str, cert: &Path, key: &Path) -> Check {
    let what = format!("client certificate of route {name} ({})", cert.display());
    if let Err(e) = crate::deliver::tls::ClientIdentity::load(cert, key) {
        return Check::fail(
            what,
            e.to_string(),
            format!(
                "point route.{name}.client_cert and client_key at a readable PEM chain and its key"
            ),
        );
    }
    let now = chrono::Utc::now().timestamp();
    match crate::tls::not_after(cert) {
        Ok(t) if t <= now => Check::fail(
            what,
            "expired",
            "renew it: the next hop will refuse the relay's certificate",
        ),
        Ok(t) if t - now < EXPIRY_WARN_DAYS * 86_400 => Check::warn(
            what,
            format!("expires in {} days", (t - now) / 86_400),
            "renew it and give the next hop's connector the new one",
        ),
        Ok(t) => Check::ok(what, format!("valid for {} more days", (t - now) / 86_400)),
        Err(e) => Check::fail(what, e.to_string(), "install a readable PEM certificate"),
    }
}

fn cached_policies(spool: &Path) -> Vec<Stored> {
    let Ok(entries) = std::fs::read_dir(spool.join("mta-sts")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Stored>(&b).ok())
        .collect()
}
