//! DNS of each accepted domain, as the rest of the world sees it during a
//! migration: where its mail goes (MX), who may send as it (SPF), and whether
//! mail clients find their mailbox (autodiscover).
//!
//! SPF is checked as far as a careful reader of the record can without a full
//! RFC 7208 evaluation: the record itself and, one level down, the records of
//! its `include:`s. `a`, `mx`, `exists`, `redirect=` and deeper includes are
//! not evaluated, and the check says so when it matters.

use super::Check;
use crate::config::{Config, DoctorConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Checks every accepted domain within `budget`.
pub(super) async fn check(config: &Config, budget: Duration) -> Vec<Check> {
    if config.relay.accepted_domains.is_empty() {
        return Vec::new();
    }
    let resolver = match crate::deliver::mx::Resolver::new(&config.dns) {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::fail(
                "DNS",
                format!("cannot set up the resolver: {e}"),
                "fix /etc/resolv.conf or set [dns] nameservers",
            )]
        }
    };
    let deadline = Instant::now() + budget;
    let mut checks = Vec::new();
    for domain in &config.relay.accepted_domains {
        let one = async {
            vec![
                mx(resolver.hickory(), domain, &config.server.hostname).await,
                spf(resolver.hickory(), domain, config).await,
                autodiscover(resolver.hickory(), domain).await,
            ]
        };
        match tokio::time::timeout_at(deadline, one).await {
            Ok(c) => checks.extend(c),
            Err(_) => checks.push(Check::warn(
                format!("DNS {domain}"),
                "not checked: the doctor's time limit for DNS ran out",
                "check that the name servers answer (`dig @SERVER DOMAIN MX`), then run doctor again",
            )),
        }
    }
    checks
}

/// What a lookup found: records, nothing of that type, or no such name.
enum Found<T> {
    Records(Vec<T>),
    NoData,
    NxDomain,
}

async fn lookup<T>(
    resolver: &TokioResolver,
    name: &str,
    rtype: RecordType,
    pick: impl Fn(&RData) -> Option<T>,
) -> Result<Found<T>, NetError> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match resolver.lookup(fqdn.as_str(), rtype).await {
        Ok(l) => {
            let records: Vec<T> = l.answers().iter().filter_map(|r| pick(&r.data)).collect();
            Ok(if records.is_empty() {
                Found::NoData
            } else {
                Found::Records(records)
            })
        }
        Err(e) if e.is_nx_domain() => Ok(Found::NxDomain),
        Err(e) if e.is_no_records_found() => Ok(Found::NoData),
        Err(e) => Err(e),
    }
}

fn lower(name: &hickory_resolver::proto::rr::Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// MX records and the addresses they point at.
async fn mx(resolver: &TokioResolver, domain: &str, hostname: &str) -> Check {
    let what = format!("MX {domain}");
    let found = lookup(resolver, domain, RecordType::MX, |d| match d {
        RData::MX(mx) => Some((mx.preference, lower(&mx.exchange))),
        _ => None,
    })
    .await;
    let mut exchanges = match found {
        Ok(Found::Records(r)) => r,
        Ok(Found::NoData) => {
            return Check::warn(
                what,
                "no MX records: senders fall back to the domain's own address (RFC 5321 §5.1), if any",
                format!("publish MX records for {domain} pointing at the mail gateway (this relay, {hostname}, during coexistence)"),
            )
        }
        Ok(Found::NxDomain) => {
            return Check::fail(
                what,
                "the domain does not exist (NXDOMAIN): no mail reaches it",
                format!("check the spelling in relay.accepted_domains, and that {domain} is delegated and published"),
            )
        }
        Err(e) => {
            return Check::fail(
                what,
                format!("lookup failed: {e}"),
                "check that the name servers answer (`dig DOMAIN MX`)",
            )
        }
    };
    exchanges.sort();
    // RFC 7505 §3: a single MX with the root as exchange says "no mail".
    if exchanges.len() == 1 && exchanges[0].1.is_empty() {
        return Check::fail(
            what,
            "null MX (RFC 7505): the domain says it accepts no mail",
            format!("replace the null MX of {domain} with MX records pointing at the mail gateway"),
        );
    }
    exchanges_resolve(resolver, what, &exchanges, hostname).await
}

/// Each exchange and its addresses: fail when none resolves, warn when some do not.
async fn exchanges_resolve(
    resolver: &TokioResolver,
    what: String,
    exchanges: &[(u16, String)],
    hostname: &str,
) -> Check {
    let mut parts = Vec::new();
    let mut unresolved = Vec::new();
    for (preference, host) in exchanges {
        let addresses = match resolver.lookup_ip(format!("{host}.").as_str()).await {
            Ok(ips) => ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        };
        let this = if host.eq_ignore_ascii_case(hostname) {
            " (this relay)"
        } else {
            ""
        };
        if addresses.is_empty() {
            unresolved.push(host.clone());
            parts.push(format!("{preference} {host}{this} → no address"));
        } else {
            parts.push(format!(
                "{preference} {host}{this} → {}",
                addresses.join(" ")
            ));
        }
    }
    let detail = parts.join(", ");
    if unresolved.len() == exchanges.len() {
        Check::fail(
            what,
            detail,
            "give the mail exchangers A/AAAA records: as published, no mail reaches the domain",
        )
    } else if !unresolved.is_empty() {
        Check::warn(
            what,
            detail,
            format!(
                "give {} an A/AAAA record, or remove the MX",
                unresolved.join(", ")
            ),
        )
    } else {
        Check::ok(what, detail)
    }
}

/// The TXT strings at `name`, each record's strings joined (RFC 7208 §3.3).
async fn txt(resolver: &TokioResolver, name: &str) -> Result<Found<String>, NetError> {
    lookup(resolver, name, RecordType::TXT, |d| match d {
        RData::TXT(t) => Some(
            t.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<String>(),
        ),
        _ => None,
    })
    .await
}

/// The SPF record among TXT strings: `Ok(None)` when there is none,
/// `Err(n)` when there are `n` > 1 (RFC 7208 §4.5: a permerror).
pub(super) fn spf_record(txts: &[String]) -> Result<Option<&str>, usize> {
    let spf: Vec<&str> = txts
        .iter()
        .map(String::as_str)
        .filter(|t| {
            // Bytes, not a `str` slice: the 6th byte may fall inside a
            // multibyte character of a record that is not SPF at all.
            let t = t.trim_start().as_bytes();
            t.get(..6)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"v=spf1"))
                && (t.len() == 6 || t[6] == b' ')
        })
        .collect();
    match spf.len() {
        0 => Ok(None),
        1 => Ok(Some(spf[0])),
        n => Err(n),
    }
}

/// One term of an SPF record: qualifier, lower-case name, value after `:` or `=`.
pub(super) fn terms(record: &str) -> impl Iterator<Item = (char, String, &str)> + '_ {
    record.split_ascii_whitespace().skip(1).map(|term| {
        let (qualifier, rest) = match term.chars().next() {
            Some(q @ ('+' | '-' | '~' | '?')) => (q, &term[1..]),
            _ => ('+', term),
        };
        let (name, value) = match rest.find([':', '=']) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        (qualifier, name.to_ascii_lowercase(), value)
    })
}

/// Whether an `ip4:`/`ip6:` value (address, optional `/prefix`) holds `ip`.
pub(super) fn covers(mechanism: &str, value: &str, ip: IpAddr) -> bool {
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().ok()),
        None => (value, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let family_ok = matches!(
        (mechanism, addr, ip),
        ("ip4", IpAddr::V4(_), IpAddr::V4(_)) | ("ip6", IpAddr::V6(_), IpAddr::V6(_))
    );
    let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
    family_ok && IpNet::new(addr, prefix).is_ok_and(|net| net.contains(&ip))
}

/// Whether the record's own `ip4:`/`ip6:` pass `ip`; and the mechanisms not evaluated.
fn covered_here(record: &str, ip: IpAddr) -> (bool, Vec<String>) {
    let mut hit = false;
    let mut unevaluated = Vec::new();
    for (q, name, value) in terms(record) {
        match name.as_str() {
            "ip4" | "ip6" if q == '+' && covers(&name, value, ip) => hit = true,
            "a" | "mx" | "exists" | "redirect" | "ptr" if q == '+' => {
                unevaluated.push(if value.is_empty() {
                    name
                } else {
                    format!("{name}:{value}")
                })
            }
            _ => {}
        }
    }
    (hit, unevaluated)
}

/// SPF: present, one record, the configured include, the public address.
async fn spf(resolver: &TokioResolver, domain: &str, config: &Config) -> Check {
    let what = format!("SPF {domain}");
    let wanted = &config.doctor;
    let txts = match txt(resolver, domain).await {
        Ok(Found::Records(t)) => t,
        Ok(Found::NoData | Found::NxDomain) => Vec::new(),
        Err(e) => {
            return Check::fail(
                what,
                format!("TXT lookup failed: {e}"),
                "check that the name servers answer (`dig DOMAIN TXT`)",
            )
        }
    };
    let record = match spf_record(&txts) {
        Ok(Some(r)) => r.to_string(),
        Ok(None) => return no_spf(what, domain, wanted),
        Err(n) => {
            return Check::fail(
                what,
                format!(
                    "{n} SPF records: receivers treat this as a permanent error (RFC 7208 §4.5)"
                ),
                "merge them into one \"v=spf1 ...\" TXT record",
            )
        }
    };
    let mut findings = Findings::default();
    if let Some(include) = &wanted.spf_include {
        findings.include(&record, include, domain);
    }
    if let Some(ip) = wanted.public_ip {
        findings.public_ip(resolver, &record, ip, domain).await;
    }
    findings.verdict(what, &record)
}

/// No SPF record: a failure when `[doctor]` says what it should hold.
fn no_spf(what: String, domain: &str, wanted: &DoctorConfig) -> Check {
    let need = match (&wanted.spf_include, wanted.public_ip) {
        (Some(inc), _) => format!("\"v=spf1 include:{inc} ~all\""),
        (None, Some(ip)) => format!("\"v=spf1 {}:{ip} ~all\"", ip_mechanism(ip)),
        (None, None) => "\"v=spf1 ... ~all\" naming every server that sends as the domain".into(),
    };
    let detail = "no SPF record (TXT \"v=spf1 ...\"): receivers cannot tell forged mail from real";
    let fix = format!("publish a TXT record at {domain}: {need}");
    if wanted.spf_include.is_some() || wanted.public_ip.is_some() {
        Check::fail(what, detail, fix)
    } else {
        Check::warn(what, detail, fix)
    }
}

/// What the SPF checks found in one record.
#[derive(Default)]
struct Findings {
    /// What is right, for the ok line.
    notes: Vec<String>,
    /// What is wrong: (fatal, detail, fix).
    problems: Vec<(bool, String, String)>,
}

impl Findings {
    /// `[doctor] spf_include` must be an `include:` of the record.
    fn include(&mut self, record: &str, include: &str, domain: &str) {
        let has = terms(record).any(|(q, name, value)| {
            q == '+'
                && name == "include"
                && value.trim_end_matches('.').eq_ignore_ascii_case(include)
        });
        if has {
            self.notes.push(format!("includes {include}"));
        } else {
            self.problems.push((
                true,
                format!("does not include {include} ([doctor] spf_include): mail the cloud service sends as {domain} fails SPF"),
                format!("add include:{include} before the all term of the SPF record of {domain}"),
            ));
        }
    }

    /// `[doctor] public_ip` must be covered by the record or one level of its includes.
    async fn public_ip(
        &mut self,
        resolver: &TokioResolver,
        record: &str,
        ip: IpAddr,
        domain: &str,
    ) {
        let (mut hit, mut unevaluated) = covered_here(record, ip);
        let mut via = None;
        if !hit {
            // One level of include:, as promised in the module docs.
            for (q, name, value) in terms(record) {
                if q != '+' || name != "include" {
                    continue;
                }
                if let Ok(Found::Records(t)) = txt(resolver, value).await {
                    if let Ok(Some(inner)) = spf_record(&t) {
                        if covered_here(inner, ip).0 {
                            hit = true;
                            via = Some(value.to_string());
                            break;
                        }
                    }
                }
                unevaluated.push(format!("includes inside include:{value}"));
            }
        }
        let mechanism = ip_mechanism(ip);
        match (hit, via) {
            (true, Some(v)) => self.notes.push(format!("covers {ip} (via include:{v})")),
            (true, None) => self.notes.push(format!("covers {ip}")),
            (false, _) if unevaluated.is_empty() => self.problems.push((
                true,
                format!("does not cover the relay's public address {ip}: its mail fails SPF"),
                format!("add {mechanism}:{ip} to the SPF record of {domain}"),
            )),
            (false, _) => self.problems.push((
                false,
                format!(
                    "{ip} is in no ip4:/ip6: of the record or of its includes (one level deep); not evaluated: {}",
                    unevaluated.join(", ")
                ),
                format!("make sure one of those covers {ip}, or add {mechanism}:{ip} to the SPF record"),
            )),
        }
    }

    /// One line: ok with the notes, or fail/warn with every problem and fix.
    fn verdict(self, what: String, record: &str) -> Check {
        if self.problems.is_empty() {
            let detail = if self.notes.is_empty() {
                format!("\"{record}\"")
            } else {
                format!("\"{record}\": {}", self.notes.join(", "))
            };
            return Check::ok(what, detail);
        }
        let fatal = self.problems.iter().any(|p| p.0);
        let details: Vec<&str> = self.problems.iter().map(|p| p.1.as_str()).collect();
        let fixes: Vec<&str> = self.problems.iter().map(|p| p.2.as_str()).collect();
        let detail = format!("\"{record}\": {}", details.join("; "));
        if fatal {
            Check::fail(what, detail, fixes.join("; "))
        } else {
            Check::warn(what, detail, fixes.join("; "))
        }
    }
}

fn ip_mechanism(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip4"
    } else {
        "ip6"
    }
}

/// `autodiscover.<domain>` (CNAME or address) or `_autodiscover._tcp.<domain>` SRV.
async fn autodiscover(resolver: &TokioResolver, domain: &str) -> Check {
    let what = format!("autodiscover {domain}");
    let host = format!("autodiscover.{domain}");
    let cname = lookup(resolver, &host, RecordType::CNAME, |d| match d {
        RData::CNAME(c) => Some(lower(&c.0)),
        _ => None,
    })
    .await;
    if let Ok(Found::Records(targets)) = cname {
        return Check::ok(what, format!("{host} CNAME {}", targets.join(", ")));
    }
    if let Ok(ips) = resolver.lookup_ip(format!("{host}.").as_str()).await {
        let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
        if !ips.is_empty() {
            return Check::ok(what, format!("{host} → {}", ips.join(" ")));
        }
    }
    let srv_name = format!("_autodiscover._tcp.{domain}");
    let srv = lookup(resolver, &srv_name, RecordType::SRV, |d| match d {
        RData::SRV(s) => Some(format!("{} {}:{}", s.priority, lower(&s.target), s.port)),
        _ => None,
    })
    .await;
    if let Ok(Found::Records(targets)) = srv {
        return Check::ok(what, format!("{srv_name} SRV {}", targets.join(", ")));
    }
    Check::warn(
        what,
        format!("neither {host} (CNAME or A/AAAA) nor {srv_name} (SRV)"),
        format!(
            "publish {host} as a CNAME to the cloud service's autodiscover host: \
             without it mail clients will not find the cloud mailbox after migration"
        ),
    )
}
