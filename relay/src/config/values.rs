//! The syntax of single values in `relay.toml`: domain names, next hops, networks,
//! socket addresses and the names of listeners and routes.
//!
//! Pure functions, no I/O: the caller attaches the file, line and key.

use super::Smarthost;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// A value with the right type but the wrong shape; the message says what would do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not an RFC 1035 host name.
    #[error("\"{0}\" is not a domain name; {1}")]
    NotADomain(String, &'static str),
    /// Not `host`, `host:port` or `[ipv6]:port`.
    #[error("\"{0}\" is not a next hop ({1}); write host, host:port or [IPv6]:port (e.g. \"mail.corp.example:25\", \"[2001:db8::1]:25\")")]
    NotAHop(String, String),
    /// Not a CIDR network or single address.
    #[error("\"{0}\" is not a network; write an address or CIDR (e.g. \"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\")")]
    NotANetwork(String),
    /// A CIDR with bits set below the prefix, usually a typo in the prefix.
    #[error("\"{0}\" has host bits set below the /{1} prefix; did you mean \"{2}\"?")]
    HostBitsSet(String, u8, IpNet),
    /// Not `ip:port`.
    #[error("\"{0}\" is not an address to bind; write IP:port (e.g. \"127.0.0.1:2525\", \"[::]:25\", \"0.0.0.0:25\"); host names are not resolved")]
    NotABindAddress(String),
    /// Not `ip` or `ip:port`.
    #[error("\"{0}\" is not a name server; write an IP address or IP:port (e.g. \"192.0.2.53\", \"[2001:db8::53]:53\")")]
    NotANameServer(String),
    /// A listener or route name that would not survive a metric label or a contacts line.
    #[error("\"{0}\" is not a valid name; use letters, digits, '-', '_' and '.' (e.g. \"onprem\", \"cloud-eu\")")]
    BadName(String),
}

/// Checks an RFC 1035 §2.3.1 host name (letters, digits, hyphens; labels of 1 to 63
/// octets; 253 in all) and returns it lower-cased without a trailing dot.
///
/// Internationalised names must be written in their A-label form (`xn--...`),
/// which is what appears in DNS and in the envelope of non-SMTPUTF8 mail.
pub fn domain(text: &str) -> Result<String, ValueError> {
    let bad = |why| Err(ValueError::NotADomain(text.to_string(), why));
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() {
        return bad("it is empty");
    }
    if !name.is_ascii() {
        return bad("write internationalised names in their xn-- (A-label) form");
    }
    if name.len() > 253 {
        return bad("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("it has an empty label (two dots in a row or a leading dot)");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("labels may hold only letters, digits and '-'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
    }
    Ok(name)
}

/// A name in `relay.trusted_tls_names`: a host name as a client certificate
/// carries it (subjectAltName dNSName, or the subject CN). Compared exactly,
/// case-insensitively: a wildcard would trust whoever holds any name under it.
pub fn tls_name(text: &str) -> Result<String, ValueError> {
    if text.starts_with("*.") {
        return Err(ValueError::NotADomain(
            text.to_string(),
            "wildcards are not matched; list each certificate name (e.g. \"mail.protection.outlook.com\")",
        ));
    }
    domain(text)
}

/// Parses a smarthost entry (`host`, `host:port`, `ipv4:port`, `[ipv6]`,
/// `[ipv6]:port`): the host lower-cased, with `default_port` filled in.
pub fn smarthost(text: &str, default_port: u16) -> Result<Smarthost, ValueError> {
    let bad = |why: &str| Err(ValueError::NotAHop(text.to_string(), why.to_string()));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return bad("missing ']'");
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("the part in brackets is not an IPv6 address");
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return bad("expected ':port' after ']'"),
            },
        };
        (inside.to_ascii_lowercase(), port)
    } else {
        if text.matches(':').count() > 1 {
            return bad("put IPv6 addresses in brackets");
        }
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host = if host.parse::<std::net::Ipv4Addr>().is_ok() {
            host.to_string()
        } else {
            match domain(host) {
                Ok(host) => host,
                Err(_) => return bad("the host is not a domain name or IPv4 address"),
            }
        };
        (host, port)
    };
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return bad("the port must be a number from 1 to 65535"),
        },
    };
    Ok(Smarthost { host, port })
}

/// Parses a CIDR network; a bare address means that one host (/32 or /128).
pub fn network(text: &str) -> Result<IpNet, ValueError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = text
        .parse()
        .map_err(|_| ValueError::NotANetwork(text.to_string()))?;
    // "192.168.1.0/16" almost always means a mistyped prefix: refuse it, as Postfix
    // warns about mynetworks entries with non-null host bits.
    if net.trunc() != net {
        return Err(ValueError::HostBitsSet(
            text.to_string(),
            net.prefix_len(),
            net.trunc(),
        ));
    }
    Ok(net)
}

/// Parses an `ip:port` to bind (port 0 picks a free port, which tests use).
pub fn bind_address(text: &str) -> Result<SocketAddr, ValueError> {
    text.parse()
        .map_err(|_| ValueError::NotABindAddress(text.to_string()))
}

/// Parses a name server: `ip:port`, or a bare IP meaning port 53.
pub fn name_server(text: &str) -> Result<SocketAddr, ValueError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Ok(addr),
        _ => Err(ValueError::NotANameServer(text.to_string())),
    }
}

/// Checks a listener or route name: it becomes a metric label and a field of the
/// whitespace-separated contacts table, so it must be a plain word.
pub fn name(text: &str) -> Result<(), ValueError> {
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        Ok(())
    } else {
        Err(ValueError::BadName(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(domain("Corp.Example."), Ok("corp.example".into()));
        assert_eq!(
            domain("xn--bcher-kva.example"),
            Ok("xn--bcher-kva.example".into())
        );
        assert_eq!(domain("localhost"), Ok("localhost".into()));
    }

    #[test]
    fn bad_domains() {
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "-a.example",
            "a-.example",
            "a_b.example",
            "bücher.example",
            "a b",
            "user@corp.example",
        ] {
            assert!(
                matches!(domain(bad), Err(ValueError::NotADomain(..))),
                "{bad:?}"
            );
        }
        assert!(domain(&"a".repeat(64)).is_err());
        assert!(
            domain(&["a"; 127].join(".")).is_ok(),
            "253 characters is the limit"
        );
        assert!(domain(&["a"; 128].join(".")).is_err());
    }

    #[test]
    fn smarthosts_get_the_default_port() {
        assert_eq!(
            smarthost("Mail.Corp.Example", 25).map(|h| h.to_string()),
            Ok("mail.corp.example:25".into())
        );
        assert_eq!(
            smarthost("mail.corp.example:587", 25).map(|h| h.to_string()),
            Ok("mail.corp.example:587".into())
        );
        assert_eq!(
            smarthost("127.0.0.1:2526", 25).map(|h| h.to_string()),
            Ok("127.0.0.1:2526".into())
        );
        assert_eq!(
            smarthost("192.0.2.1", 2525).map(|h| h.to_string()),
            Ok("192.0.2.1:2525".into())
        );
        assert_eq!(
            smarthost("[2001:DB8::1]:26", 25).map(|h| h.to_string()),
            Ok("[2001:db8::1]:26".into())
        );
        assert_eq!(
            smarthost("[::1]", 25).map(|h| h.to_string()),
            Ok("[::1]:25".into())
        );
    }

    /// The forms delivery used to re-parse at every attempt, parsed once here.
    #[test]
    fn host_port_forms() {
        let split = |text| smarthost(text, 25).map(|h| (h.host, h.port));
        assert_eq!(
            split("mx.example:2525").unwrap(),
            ("mx.example".into(), 2525)
        );
        assert_eq!(split("MX.example").unwrap(), ("mx.example".into(), 25));
        assert_eq!(split("[::1]:26").unwrap(), ("::1".into(), 26));
        assert_eq!(split("127.0.0.1:1").unwrap(), ("127.0.0.1".into(), 1));
        assert!(split("mx:notaport").is_err());
    }

    #[test]
    fn bad_smarthosts() {
        for bad in [
            "",
            "::1",
            "2001:db8::1:25",
            "[::1",
            "[::1]25",
            "[mail]:25",
            "host:0",
            "host:x",
            "host:70000",
            "bad_host:25",
            ":25",
        ] {
            assert!(
                matches!(smarthost(bad, 25), Err(ValueError::NotAHop(..))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn networks() {
        assert_eq!(network("10.0.0.0/8"), Ok("10.0.0.0/8".parse().unwrap()));
        assert_eq!(network("192.0.2.7"), Ok("192.0.2.7/32".parse().unwrap()));
        assert_eq!(network("::1"), Ok("::1/128".parse().unwrap()));
        assert_eq!(
            network("192.168.1.0/16"),
            Err(ValueError::HostBitsSet(
                "192.168.1.0/16".into(),
                16,
                "192.168.0.0/16".parse().unwrap()
            ))
        );
        for bad in ["10.0.0.0/33", "10.0.0/8", "corp.example", "", "::1/129"] {
            assert!(
                matches!(network(bad), Err(ValueError::NotANetwork(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bind_addresses_and_name_servers() {
        assert_eq!(bind_address("127.0.0.1:0").map(|a| a.port()), Ok(0));
        assert!(bind_address("[::]:25").is_ok());
        assert!(bind_address("localhost:25").is_err());
        assert!(bind_address("127.0.0.1").is_err());
        assert_eq!(
            name_server("192.0.2.53"),
            Ok("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(name_server("[::1]:5353"), Ok("[::1]:5353".parse().unwrap()));
        assert!(name_server("ns.example").is_err());
        assert!(name_server("192.0.2.53:0").is_err());
    }

    #[test]
    fn names() {
        assert!(name("cloud-eu_2.x").is_ok());
        for bad in ["", "on prem", "a#b", "é", &"a".repeat(65)] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }
}
