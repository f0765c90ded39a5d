//! Next hops: smarthost lists and MX lookups (hickory-resolver).
//!
//! RFC 5321 §5.1: MX records by preference, equal preferences in random
//! order, then the addresses of each exchange; no MX at all means the domain
//! itself is the (implicit) MX. RFC 7505: a single `0 .` MX says the domain
//! takes no mail.

use super::status::DeliverError;
use crate::config::{DnsConfig, Smarthost};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use crate::envelope::failure::NextHop;

/// The DNS side of delivery.
pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// The system resolver, or `[dns] nameservers` when given.
    pub fn new(dns: &DnsConfig) -> Result<Resolver, DeliverError> {
        let inner = build(dns).map_err(|e| DeliverError::Resolver(e.to_string()))?;
        Ok(Resolver { inner })
    }

    /// The hickory resolver underneath, for lookups other than MX/A (doctor's TXT, SRV).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The addresses of the smarthosts, in configured order.
    ///
    /// A smarthost that does not resolve is skipped (the others may work);
    /// when none resolves, the first error is returned.
    pub async fn smarthosts(&self, list: &[Smarthost]) -> Result<Vec<NextHop>, DeliverError> {
        let mut hops = Vec::new();
        let mut first_error = None;
        for entry in list {
            match self.addresses(&entry.host).await {
                Ok(ips) => hops.extend(ips.into_iter().map(|ip| NextHop {
                    host: entry.host.clone(),
                    addr: SocketAddr::new(ip, entry.port),
                })),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (hops.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(hops),
        }
    }

    /// The next hops for `domain` by MX (RFC 5321 §5.1).
    pub async fn mx(&self, domain: &str, port: u16) -> Result<Vec<NextHop>, DeliverError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let fqdn = format!("{domain}.");
        let mut exchanges: Vec<(u16, String)> = match self.inner.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((
                        mx.preference,
                        mx.exchange
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    )),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => return Err(DeliverError::NoSuchDomain(domain)),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(dns_temporary(&domain, e)),
        };
        // RFC 7505 §3: one MX with an empty exchange ("." → "") is a null MX.
        if exchanges.len() == 1 && exchanges[0].1.is_empty() {
            return Err(DeliverError::NullMx(domain));
        }
        exchanges.retain(|(_, host)| !host.is_empty());
        if exchanges.is_empty() {
            // RFC 5321 §5.1: no MX → the domain is its own implicit MX.
            exchanges.push((0, domain.clone()));
        }
        order_exchanges(&mut exchanges);
        let mut hops = Vec::new();
        let mut first_error = None;
        for (_, host) in &exchanges {
            match self.addresses(host).await {
                Ok(ips) => hops.extend(ips.into_iter().map(|ip| NextHop {
                    host: host.clone(),
                    addr: SocketAddr::new(ip, port),
                })),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !hops.is_empty() {
            return Ok(hops);
        }
        match first_error {
            // Implicit MX of a name that has neither MX nor address: nothing there.
            Some(DeliverError::NoSuchDomain(_))
                if exchanges.len() == 1 && exchanges[0].1 == domain =>
            {
                Err(DeliverError::NoSuchDomain(domain))
            }
            Some(e @ DeliverError::DnsTemporary { .. }) => Err(e),
            _ => Err(DeliverError::NoAddress(domain)),
        }
    }

    /// A and AAAA of `host` (an IP literal is returned as is).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DeliverError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let name = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        match self.inner.lookup_ip(name.as_str()).await {
            Ok(ips) => {
                let ips: Vec<IpAddr> = ips.iter().collect();
                if ips.is_empty() {
                    Err(DeliverError::NoAddress(host.to_string()))
                } else {
                    Ok(ips)
                }
            }
            Err(e) if e.is_nx_domain() => Err(DeliverError::NoSuchDomain(host.to_string())),
            Err(e) if e.is_no_records_found() => Err(DeliverError::NoAddress(host.to_string())),
            Err(e) => Err(dns_temporary(host, e)),
        }
    }
}

fn dns_temporary(name: &str, e: NetError) -> DeliverError {
    DeliverError::DnsTemporary {
        name: name.to_string(),
        detail: e.to_string(),
    }
}

/// Sorts by preference and shuffles each run of equal preference
/// (RFC 5321 §5.1: "randomize them to spread the load").
fn order_exchanges(exchanges: &mut [(u16, String)]) {
    exchanges.sort_by_key(|(pref, _)| *pref);
    let mut start = 0;
    while start < exchanges.len() {
        let pref = exchanges[start].0;
        let end = start
            + exchanges[start..]
                .iter()
                .take_while(|(p, _)| *p == pref)
                .count();
        shuffle(&mut exchanges[start..end]);
        start = end;
    }
}

/// Fisher–Yates with std's per-process random hasher keys as the source;
/// load spreading needs no cryptographic randomness.
fn shuffle<T>(items: &mut [T]) {
    let state = std::collections::hash_map::RandomState::new();
    for i in (1..items.len()).rev() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        let j = (h.finish() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Builds the system resolver, or one asking `[dns] nameservers` (UDP, then TCP).
fn build(dns: &DnsConfig) -> Result<TokioResolver, hickory_resolver::net::NetError> {
    let builder = if dns.nameservers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let servers = dns
            .nameservers
            .iter()
            .map(|sa| {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
    };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchanges_sorted_by_preference() {
        let mut v = vec![
            (20, "c".to_string()),
            (10, "a".to_string()),
            (10, "b".to_string()),
            (30, "d".to_string()),
        ];
        order_exchanges(&mut v);
        let prefs: Vec<u16> = v.iter().map(|(p, _)| *p).collect();
        assert_eq!(prefs, [10, 10, 20, 30]);
        let mut first_two: Vec<&str> = v[..2].iter().map(|(_, h)| h.as_str()).collect();
        first_two.sort();
        assert_eq!(first_two, ["a", "b"]);
    }
}
