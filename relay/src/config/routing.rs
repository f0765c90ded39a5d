//! The routing tables of `relay.toml`: `[routing]` with its `[[routing.rule]]`s,
//! and the `[route.NAME]` next hops. Every place that names a route is kept
//! (`RouteRef`) for the check that it exists (in `validate`).

use super::fields::{checked, report, timeout};
use super::reader::{Diagnostics, Section, Span};
use super::values;
use super::{OutboundTls, RouteConfig, RoutingConfig, RoutingRule};
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

pub(super) const ROUTING_KEYS: &[&str] = &[
    "source",
    "contacts",
    "contact_route",
    "accepted_route",
    "default_route",
    "subaddress_separator",
    "rule",
];
const RULE_KEYS: &[&str] = &["domain", "route"];
pub(super) const ROUTE_KEYS: &[&str] = &[
    "smarthost",
    "mx",
    "tls",
    "port",
    "helo_name",
    "ca",
    "client_cert",
    "client_key",
    "mta_sts",
    "connect_timeout",
    "command_timeout",
    "data_timeout",
];
const OUTBOUND_TLS: &[(&str, OutboundTls)] = &[
    ("none", OutboundTls::None),
    ("opportunistic", OutboundTls::Opportunistic),
    ("required", OutboundTls::Required),
    ("verify", OutboundTls::Verify),
    ("dane", OutboundTls::Dane),
];
/// A place in the file that names a route.
pub(super) struct RouteRef {
    /// The key, e.g. `routing.contact_route` or `routing.rule[2].route`.
    pub key: String,
    /// The route named.
    pub name: String,
    /// The value, or the `[routing]` header when the name is the default.
    pub span: Option<Span>,
    /// Whether the name is the built-in default rather than written in the file.
    pub defaulted: bool,
}

pub(super) fn read_routing(
    s: &Section,
    d: &mut Diagnostics,
    base: &Path,
    refs: &mut Vec<RouteRef>,
) -> RoutingConfig {
    let mut route_name = |d: &mut Diagnostics, key: &str, default: &str| -> String {
        match s.string(d, key) {
            Some(name) => {
                refs.push(RouteRef {
                    key: s.key(key),
                    name: name.get_ref().clone(),
                    span: Some(name.span()),
                    defaulted: false,
                });
                name.into_inner()
            }
            // Written but not a string: already reported, don't add "not defined".
            None if s.has(key) => default.to_string(),
            None => {
                refs.push(RouteRef {
                    key: s.key(key),
                    name: default.to_string(),
                    span: s.span().cloned(),
                    defaulted: true,
                });
                default.to_string()
            }
        }
    };
    let contact_route = route_name(d, "contact_route", "cloud");
    let accepted_route = route_name(d, "accepted_route", "onprem");
    let default_route = route_name(d, "default_route", "internet");
    RoutingConfig {
        // `source` and `[ldap]` are read by `sections::read_source`.
        source: super::RoutingSource::File,
        contacts: s
            .path(d, "contacts", base)
            .map_or_else(|| base.join("contacts"), Spanned::into_inner),
        contact_route,
        accepted_route,
        default_route,
        subaddress_separator: read_separator(s, d),
        rules: read_rules(s, d, refs),
    }
}

/// `subaddress_separator`: one character, or "" for off.
fn read_separator(s: &Section, d: &mut Diagnostics) -> String {
    let Some(sep) = s.string(d, "subaddress_separator") else {
        return "+".to_string();
    };
    let text = sep.get_ref();
    let mut chars = text.chars();
    let ok = match (chars.next(), chars.next()) {
        (None, _) => true,
        (Some(c), None) => c != '@' && !c.is_whitespace() && !c.is_control(),
        _ => false,
    };
    if !ok {
        d.error(
            Some(&sep.span()),
            &s.key("subaddress_separator"),
            format!("\"{text}\" is not a separator; write one character other than '@' and spaces (e.g. \"+\" or \"-\"), or \"\" to disable"),
        );
    }
    sep.into_inner()
}

/// `[[routing.rule]]`, in order; a second rule for a domain is an error.
fn read_rules(s: &Section, d: &mut Diagnostics, refs: &mut Vec<RouteRef>) -> Vec<RoutingRule> {
    let mut rules: Vec<RoutingRule> = Vec::new();
    let mut rule_lines: Vec<usize> = Vec::new();
    for rule in s.tables(d, "rule", RULE_KEYS) {
        let domain = rule
            .required_string(d, "domain", "\"eu.corp.example\"")
            .and_then(|t| checked(d, &rule, "domain", &t, values::domain).map(|v| (v, t.span())));
        let route = rule.required_string(d, "route", "\"onprem\"");
        if let Some(route) = &route {
            refs.push(RouteRef {
                key: rule.key("route"),
                name: route.get_ref().clone(),
                span: Some(route.span()),
                defaulted: false,
            });
        }
        if let (Some((domain, span)), Some(route)) = (domain, route) {
            if let Some(earlier) = rules.iter().position(|r| r.domain == domain) {
                d.error(
                    Some(&span),
                    &rule.key("domain"),
                    format!("\"{domain}\" already has a rule at line {}; rules are tried in order, so this one would never match: remove it", rule_lines[earlier]),
                );
            }
            rule_lines.push(d.line(&span));
            rules.push(RoutingRule {
                domain,
                route: route.into_inner(),
            });
        }
    }
    rules
}

/// Where a route asks for something another table must provide.
#[derive(Default)]
pub(super) struct RouteNeeds {
    /// `tls = "dane"`: the value's span (needs `[dns] dnssec = true`).
    pub dane: Option<Span>,
}

pub(super) fn read_route(
    s: &Section,
    d: &mut Diagnostics,
    base: &Path,
) -> (RouteConfig, RouteNeeds) {
    let port = s.number(d, "port", 1..=u16::MAX.into()).unwrap_or(25);
    let hosts = s.strings(d, "smarthost");
    let has_hosts = hosts
        .as_ref()
        .map_or(s.has("smarthost"), |h| !h.get_ref().is_empty());
    let smarthost = hosts.map_or_else(Vec::new, |hosts| {
        hosts
            .get_ref()
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let key = format!("{}[{i}]", s.key("smarthost"));
                report(d, &key, text, values::smarthost(text.get_ref(), port))
            })
            .collect()
    });
    let mx = s.bool(d, "mx");
    let mx_on = mx.as_ref().is_some_and(|m| *m.get_ref());
    match (&mx, has_hosts, mx_on) {
        (Some(mx), true, true) => d.error(
            Some(&mx.span()),
            &s.key("mx"),
            "a route has either smarthost or mx = true, not both: remove smarthost to deliver by MX lookup, or mx to use the smarthosts",
        ),
        (_, false, false) if !s.has("mx") || mx.is_some() => d.error(
            s.span(),
            s.name(),
            "no next hop; add smarthost = [\"host:port\"] or mx = true",
        ),
        _ => {}
    }
    let helo_name = s
        .string(d, "helo_name")
        .and_then(|h| checked(d, s, "helo_name", &h, values::domain));
    let defaults = (
        Duration::from_secs(30),
        Duration::from_secs(5 * 60),
        Duration::from_secs(10 * 60),
    );
    let tls = s.choice(d, "tls", OUTBOUND_TLS);
    let needs = RouteNeeds {
        dane: tls
            .as_ref()
            .filter(|t| *t.get_ref() == OutboundTls::Dane)
            .map(Spanned::span),
    };
    let (client_cert, client_key) = read_client_pair(s, d, base);
    let mta_sts = match s.bool(d, "mta_sts") {
        Some(v) if *v.get_ref() && !mx_on && has_hosts => {
            d.error(
                Some(&v.span()),
                &s.key("mta_sts"),
                "MTA-STS (RFC 8461) applies to delivery by MX lookup only; remove mta_sts from this smarthost route (use tls = \"verify\" to authenticate a smarthost)",
            );
            false
        }
        Some(v) => *v.get_ref() && mx_on,
        // DESIGN.md: on by default for MX routes.
        None => mx_on,
    };
    let route = RouteConfig {
        smarthost,
        mx: mx_on,
        tls: tls.map_or(OutboundTls::Opportunistic, Spanned::into_inner),
        port,
        helo_name,
        ca: s.optional_path(d, "ca", base).map(Spanned::into_inner),
        client_cert,
        client_key,
        mta_sts,
        connect_timeout: timeout(d, s, "connect_timeout").unwrap_or(defaults.0),
        command_timeout: timeout(d, s, "command_timeout").unwrap_or(defaults.1),
        data_timeout: timeout(d, s, "data_timeout").unwrap_or(defaults.2),
    };
    (route, needs)
}

/// `client_cert` and `client_key`: both or neither.
fn read_client_pair(
    s: &Section,
    d: &mut Diagnostics,
    base: &Path,
) -> (Option<std::path::PathBuf>, Option<std::path::PathBuf>) {
    let cert = s.path(d, "client_cert", base);
    let key = s.path(d, "client_key", base);
    match (&cert, &key) {
        (Some(c), None) if !s.has("client_key") => d.error(
            Some(&c.span()),
            &s.key("client_cert"),
            "client_cert needs its private key: add client_key = \"FILE.key\" (PEM), or remove client_cert",
        ),
        (None, Some(k)) if !s.has("client_cert") => d.error(
            Some(&k.span()),
            &s.key("client_key"),
            "client_key needs its certificate: add client_cert = \"FILE.crt\" (PEM chain), or remove client_key",
        ),
        _ => {}
    }
    match (cert, key) {
        (Some(c), Some(k)) => (Some(c.into_inner()), Some(k.into_inner())),
        _ => (None, None),
    }
}
