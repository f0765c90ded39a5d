//! The DAV keys of `[source]` / `[target]`: `dav_url`, `dav_home`,
//! `dav_addressbook_home`, validated like the rest of `migrator.toml`
//! (`FILE:LINE: key: what is wrong; what would be valid`).

use crate::config::{Auth, DavEndpoint};
use relay::config::reader::{Diagnostics, Section};

/// The placeholders a `dav_home` template may use.
const PLACEHOLDERS: &[&str] = &["{address}", "{local}", "{domain}", "{target}"];

/// Reads the DAV keys of one side. `Some(None)`: no `dav_url` (or `""`);
/// `None`: an error was recorded.
pub fn read(d: &mut Diagnostics, t: &Section, auth: Auth) -> Option<Option<DavEndpoint>> {
    let url = t.string(d, "dav_url");
    let home = template(d, t, "dav_home");
    let addressbook_home = template(d, t, "dav_addressbook_home");
    let (home, addressbook_home) = (home?, addressbook_home?);
    let Some(url) = url.filter(|u| !u.get_ref().is_empty()) else {
        return Some(None);
    };
    let span = url.span();
    let (tls, host, port) = match parse_dav_url(url.get_ref()) {
        Ok(v) => v,
        Err(why) => {
            d.error(Some(&span), &t.key("dav_url"), why);
            return None;
        }
    };
    if auth != Auth::Password && home.is_none() {
        d.error(
            Some(&span),
            &t.key("dav_home"),
            "required with an admin login (auth = master, authzid or oauth2): HTTP has no \
             authzid, so the admin (or the application's token) reaches each user's calendars \
             by path; add dav_home = \"/{address}/\" (Radicale) or \
             \"/dav/calendars/user/{local}/\" (Cyrus)",
        );
        return None;
    }
    Some(Some(DavEndpoint {
        url: url.get_ref().trim_end_matches('/').to_string(),
        tls,
        host,
        port,
        home,
        addressbook_home,
        url_span: span,
    }))
}

/// A path template: `""`/absent = `None`; must be an absolute path whose only
/// `{...}` are the known placeholders.
fn template(d: &mut Diagnostics, t: &Section, key: &str) -> Option<Option<String>> {
    let Some(value) = t.string(d, key) else {
        return Some(None);
    };
    let text = value.get_ref();
    if text.is_empty() {
        return Some(None);
    }
    let why = if !text.starts_with('/') {
        Some(format!(
            "{text:?} is not a path; write an absolute path such as \"/{{address}}/\""
        ))
    } else if text.contains("://") || text.contains('?') || text.contains('#') {
        Some(format!(
            "{text:?}: only the path goes here (the server is dav_url); write e.g. \"/{{address}}/\""
        ))
    } else {
        unknown_placeholder(text).map(|p| {
            format!("{text:?}: unknown placeholder {p}; use {{address}}, {{local}}, {{domain}} or {{target}}")
        })
    };
    match why {
        Some(why) => {
            d.error(Some(&value.span()), &t.key(key), why);
            None
        }
        None => Some(Some(text.clone())),
    }
}

/// The first `{...}` in `text` that is not a known placeholder.
fn unknown_placeholder(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let end = after.find('}').map_or(after.len(), |e| e + 1);
        let found = &after[..end];
        if !PLACEHOLDERS.contains(&found) {
            return Some(found.to_string());
        }
        rest = &after[end..];
    }
    None
}

/// Why a `dav_url` is not one the migrator can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DavUrlError {
    /// Neither `https://` nor `http://`.
    #[error("{0:?} is not an HTTP URL; {VALID}")]
    NotHttp(String),
    /// A user name, a query or a fragment, or no host.
    #[error("{0:?}: expected a host, an optional port and an optional path; {VALID}")]
    Malformed(String),
    /// The port is not 1 to 65535.
    #[error("{url:?}: port {port:?} is not a number from 1 to 65535")]
    BadPort {
        /// The URL.
        url: String,
        /// The port as written.
        port: String,
    },
}

const VALID: &str =
    "write https://HOST[:PORT][/PATH] (the server's base URL; discovery starts there)";

/// Splits `https://host[:port][/path]` into (TLS, host, port).
pub fn parse_dav_url(url: &str) -> Result<(bool, String, u16), DavUrlError> {
    let (tls, rest, default_port) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest, 443)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest, 80)
    } else {
        return Err(DavUrlError::NotHttp(url.to_string()));
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || rest.contains(['@', '?', '#', ' ']) {
        return Err(DavUrlError::Malformed(url.to_string()));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| DavUrlError::Malformed(url.to_string()))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(DavUrlError::Malformed(url.to_string()));
    }
    let port = match port {
        None => default_port,
        Some(p) => {
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| DavUrlError::BadPort {
                    url: url.to_string(),
                    port: p.to_string(),
                })?
        }
    };
    Ok((tls, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dav_urls() {
        assert_eq!(
            parse_dav_url("https://dav.example/").unwrap(),
            (true, "dav.example".into(), 443)
        );
        assert_eq!(
            parse_dav_url("http://127.0.0.1:5232/radicale").unwrap(),
            (false, "127.0.0.1".into(), 5232)
        );
        assert_eq!(
            parse_dav_url("https://[::1]:8443").unwrap(),
            (true, "::1".into(), 8443)
        );
        assert!(matches!(
            parse_dav_url("caldav://x"),
            Err(DavUrlError::NotHttp(_))
        ));
        assert!(matches!(
            parse_dav_url("https://u@x/"),
            Err(DavUrlError::Malformed(_))
        ));
        assert!(matches!(
            parse_dav_url("https://x:0/"),
            Err(DavUrlError::BadPort { .. })
        ));
    }

    #[test]
    fn placeholders() {
        assert_eq!(unknown_placeholder("/{address}/x/{local}"), None);
        assert_eq!(unknown_placeholder("/{user}/"), Some("{user}".into()));
        assert_eq!(unknown_placeholder("/{local"), Some("{local".into()));
    }
}
