//! `[ldap]`: how the relay (and the migrator, which reads the same keys plus
//! `contacts_base`) reaches the directory. Shared by both loaders, so both
//! programs accept exactly the same section with the same messages.
//!
//! The security rule of DESIGN.md is checked here, not at connect time: a
//! plaintext `ldap://` URL needs `starttls = true` (the default) or an explicit
//! `insecure = true`, so a bind password is never sent in clear by accident.

use super::fields::timeout;
use super::reader::{Diagnostics, Section};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The keys of `[ldap]` in relay.toml.
pub const RELAY_KEYS: &[&str] = &[
    "url",
    "starttls",
    "insecure",
    "ca",
    "bind_dn",
    "password_file",
    "base",
    "filter",
    "route_attribute",
    "refresh",
    "timeout",
];

/// How a URL reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapScheme {
    /// `ldap://` (port 389): StartTLS, or plaintext with `insecure`.
    Ldap,
    /// `ldaps://` (port 636): TLS from the first byte.
    Ldaps,
}

/// One entry of `url`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    /// The URL as written (what log lines and errors show).
    pub text: String,
    /// `ldap` or `ldaps`.
    pub scheme: LdapScheme,
    /// Host name or IP address (IPv6 without brackets): what the certificate
    /// must name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl LdapUrl {
    /// `scheme://host:port` with nothing after it, as ldap3 wants it.
    pub fn connect_url(&self) -> String {
        let scheme = match self.scheme {
            LdapScheme::Ldap => "ldap",
            LdapScheme::Ldaps => "ldaps",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `[ldap]`, validated; paths resolved against the file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// Servers, tried in order (failover between replicas).
    pub urls: Vec<LdapUrl>,
    /// StartTLS on `ldap://` URLs.
    pub starttls: bool,
    /// Allow plaintext `ldap://` without StartTLS.
    pub insecure: bool,
    /// Extra PEM trust anchor (beside the webpki roots).
    pub ca: Option<PathBuf>,
    /// The service account; empty = anonymous bind.
    pub bind_dn: String,
    /// File holding the service account's password (first line).
    pub password_file: Option<PathBuf>,
    /// Where users and contacts are searched.
    pub base: String,
    /// Extra filter ANDed into user searches, with its parentheses; `None` = none.
    pub filter: Option<String>,
    /// Attribute holding a contact's route name; `None` = `routing.contact_route`.
    pub route_attribute: Option<String>,
    /// Full re-read interval when the server offers no RFC 4533 sync.
    pub refresh: Duration,
    /// Connect and per-operation timeout.
    pub timeout: Duration,
    /// Migrator only: where forwarding contacts are created.
    pub contacts_base: Option<String>,
}

/// Reads `[ldap]` from `s` (the caller has opened it with its own key list:
/// [`RELAY_KEYS`], or those plus `contacts_base` for the migrator).
pub fn read(s: &Section, d: &mut Diagnostics, base: &Path) -> LdapConfig {
    let starttls = s.bool(d, "starttls").is_none_or(Spanned::into_inner);
    let insecure = s.bool(d, "insecure").is_some_and(Spanned::into_inner);
    let urls = read_urls(s, d, starttls, insecure);
    let bind_dn = s.string(d, "bind_dn").map(Spanned::into_inner);
    let password_file = s.path(d, "password_file", base).map(Spanned::into_inner);
    let named = bind_dn.as_deref().is_some_and(|dn| !dn.is_empty());
    if named && password_file.is_none() && !s.has("password_file") {
        s.missing(d, "password_file", "\"secrets/ldap.password\"");
    }
    let directory_base = s
        .required_string(d, "base", "\"DC=corp,DC=example\"")
        .and_then(|b| dn_value(s, d, "base", b))
        .unwrap_or_default();
    let filter = s.string(d, "filter").and_then(|f| read_filter(s, d, f));
    let route_attribute = s
        .string(d, "route_attribute")
        .and_then(|a| attribute_name(s, d, "route_attribute", a));
    let contacts_base = s
        .string(d, "contacts_base")
        .and_then(|b| dn_value(s, d, "contacts_base", b));
    LdapConfig {
        urls,
        starttls,
        insecure,
        ca: s
            .string(d, "ca")
            .filter(|c| !c.get_ref().is_empty())
            .map(|c| base.join(c.get_ref())),
        bind_dn: bind_dn.unwrap_or_default(),
        password_file,
        base: directory_base,
        filter,
        route_attribute,
        refresh: timeout(d, s, "refresh").unwrap_or(Duration::from_secs(5 * 60)),
        timeout: timeout(d, s, "timeout").unwrap_or(Duration::from_secs(10)),
        contacts_base,
    }
}

fn read_urls(s: &Section, d: &mut Diagnostics, starttls: bool, insecure: bool) -> Vec<LdapUrl> {
    // One URL may be written as a string; DESIGN.md shows the list form.
    let texts = if let Some(one) = s.string_quiet("url") {
        vec![one]
    } else if s.has("url") {
        match s.strings(d, "url") {
            Some(list) => list.into_inner(),
            None => return Vec::new(),
        }
    } else {
        s.missing(d, "url", "[\"ldaps://dc1.corp.example\"]");
        return Vec::new();
    };
    if texts.is_empty() {
        d.error(
            s.span(),
            &s.key("url"),
            "is empty; list at least one server, e.g. [\"ldaps://dc1.corp.example\"]",
        );
    }
    let mut urls = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let key = format!("{}[{i}]", s.key("url"));
        match parse_url(text.get_ref()) {
            Ok(url) => {
                if url.scheme == LdapScheme::Ldap && !starttls && !insecure {
                    d.error(
                        Some(&text.span()),
                        &key,
                        format!("\"{}\" is plaintext LDAP and starttls = false: the bind password would cross the network in clear; use ldaps://, set starttls = true, or set insecure = true if you really mean it", text.get_ref()),
                    );
                }
                urls.push(url);
            }
            Err(why) => d.error(Some(&text.span()), &key, why),
        }
    }
    urls
}

/// `ldap[s]://host[:port][/]`; anything after the host part (a base DN, a
/// filter) is refused: those belong in `base` and `filter`.
pub fn parse_url(text: &str) -> Result<LdapUrl, String> {
    let example = "write e.g. \"ldaps://dc1.corp.example\" or \"ldap://10.0.0.5:389\"";
    let (scheme, rest) = match text.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("ldap") => (LdapScheme::Ldap, rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("ldaps") => (LdapScheme::Ldaps, rest),
        Some((s, _)) => {
            return Err(format!(
                "\"{text}\": unknown scheme \"{s}\"; use ldap:// or ldaps:// ({example})"
            ))
        }
        None => return Err(format!("\"{text}\" is not an LDAP URL; {example}")),
    };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.contains(['/', '?', '@']) {
        return Err(format!(
            "\"{text}\": only scheme://host[:port] is read here; put the base DN in base and the filter in filter"
        ));
    }
    let default_port = match scheme {
        LdapScheme::Ldap => 389,
        LdapScheme::Ldaps => 636,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("\"{text}\": unclosed [ in the host; {example}"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("\"{text}\": junk after the host; {example}")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{text}\" names no host; {example}"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "\"{text}\": port \"{p}\" is not 1-65535; {example}"
                ))
            }
        },
    };
    Ok(LdapUrl {
        text: text.to_string(),
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// A DN: non-empty, each RDN `attr=value`.
fn dn_value(s: &Section, d: &mut Diagnostics, key: &str, text: Spanned<String>) -> Option<String> {
    let dn = text.get_ref().trim();
    let well_formed = !dn.is_empty()
        && dn.split(',').all(|rdn| {
            rdn.split_once('=')
                .is_some_and(|(a, v)| !a.trim().is_empty() && !v.trim().is_empty())
        });
    if !well_formed {
        d.error(
            Some(&text.span()),
            &s.key(key),
            format!(
                "\"{}\" is not a DN; write e.g. \"OU=Cloud Contacts,DC=corp,DC=example\"",
                text.get_ref()
            ),
        );
        return None;
    }
    Some(dn.to_string())
}

/// `filter`: "" = none; otherwise an RFC 4515 filter, parenthesised if needed.
fn read_filter(s: &Section, d: &mut Diagnostics, text: Spanned<String>) -> Option<String> {
    let raw = text.get_ref().trim();
    if raw.is_empty() {
        return None;
    }
    let filter = if raw.starts_with('(') {
        raw.to_string()
    } else {
        format!("({raw})")
    };
    if ldap3::parse_filter(&filter).is_err() {
        d.error(
            Some(&text.span()),
            &s.key("filter"),
            format!("\"{}\" is not an LDAP filter (RFC 4515); write e.g. \"(memberOf=CN=Migrating,OU=Groups,DC=corp,DC=example)\"", text.get_ref()),
        );
        return None;
    }
    Some(filter)
}

/// An attribute name (RFC 4512 descr): a letter, then letters, digits, `-`.
fn attribute_name(
    s: &Section,
    d: &mut Diagnostics,
    key: &str,
    text: Spanned<String>,
) -> Option<String> {
    let name = text.get_ref();
    if name.is_empty() {
        return None;
    }
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        d.error(
            Some(&text.span()),
            &s.key(key),
            format!("\"{name}\" is not an attribute name; write e.g. \"extensionAttribute1\", or \"\" for routing.contact_route"),
        );
        return None;
    }
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("ldaps://DC1.corp.example").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (LdapScheme::Ldaps, "dc1.corp.example", 636)
        );
        let u = parse_url("ldap://10.0.0.5:3389/").unwrap();
        assert_eq!((u.scheme, u.port), (LdapScheme::Ldap, 3389));
        assert_eq!(u.connect_url(), "ldap://10.0.0.5:3389");
        let u = parse_url("ldap://[::1]:3389").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.connect_url(), "ldap://[::1]:3389");
        for bad in [
            "dc1",
            "ldapi:///x",
            "ldap://",
            "ldap://h:0",
            "ldap://h/dc=x",
            "ldap://h:x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
