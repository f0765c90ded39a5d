//! One reader per table of `relay.toml`: keys, types, defaults and the checks that
//! need only that table. Checks across tables are in `validate`.
//!
//! A key that is missing or wrong gets its default (or a placeholder) after the
//! error is recorded, so reading goes on and later errors are found too; the
//! resulting `Config` is only returned when there were no errors.

use super::fields::{bind_address, checked, list, report, timeout};
use super::reader::{Diagnostics, Section, Span};
use super::routing::{read_route, read_routing, RouteRef, ROUTE_KEYS, ROUTING_KEYS};
use super::values;
use super::{
    BareNewline, Config, DnsConfig, DoctorConfig, Limits, ListenerConfig, ListenerTls,
    MetricsConfig, QueueConfig, RelayConfig, RoutingConfig, RoutingSource, ServerConfig, TlsConfig,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

const TOP_LEVEL: &[&str] = &[
    "server", "listener", "tls", "limits", "relay", "routing", "route", "dns", "queue", "metrics",
    "doctor", "ldap",
];
const SERVER_KEYS: &[&str] = &["hostname", "spool_dir", "shutdown_grace"];
const LISTENER_KEYS: &[&str] = &["name", "bind", "tls", "require_tls"];
const TLS_KEYS: &[&str] = &["cert", "key", "client_ca"];
const LIMITS_KEYS: &[&str] = &[
    "max_message_size",
    "max_recipients",
    "max_connections",
    "max_connections_per_ip",
    "command_timeout",
    "data_timeout",
    "max_errors",
    "max_received_headers",
    "bare_newline",
    "max_messages_per_minute_per_ip",
    "max_connections_per_minute_per_ip",
];
const RELAY_KEYS: &[&str] = &["accepted_domains", "trusted_networks", "trusted_tls_names"];
const DNS_KEYS: &[&str] = &["nameservers", "dnssec", "trust_anchor"];
const QUEUE_KEYS: &[&str] = &[
    "retry_schedule",
    "max_lifetime",
    "delivery_concurrency",
    "per_host_concurrency",
    "delay_warning",
];
const METRICS_KEYS: &[&str] = &["bind"];
const DOCTOR_KEYS: &[&str] = &["spf_include", "public_ip"];

const LISTENER_TLS: &[(&str, ListenerTls)] = &[
    ("none", ListenerTls::None),
    ("starttls", ListenerTls::StartTls),
    ("implicit", ListenerTls::Implicit),
];
const BARE_NEWLINE: &[(&str, BareNewline)] = &[
    ("normalize", BareNewline::Normalize),
    ("reject", BareNewline::Reject),
];

/// Upper bound for counts, high enough never to be the real limit: it only
/// catches an extra digit or two.
const MANY: u64 = 10_000_000;

/// Where things are in the file, for the checks across tables.
pub(super) struct Spans {
    /// Whether `listener` is there but not an array of tables (that error is
    /// already recorded, so "no listener" would be noise).
    pub listener_malformed: bool,
    /// One per entry of `Config::listeners`, same order.
    pub listeners: Vec<ListenerSpans>,
    /// Every place that names a route.
    pub route_refs: Vec<RouteRef>,
    /// `metrics.bind`, if written.
    pub metrics_bind: Option<Span>,
    /// `route.NAME.tls = "dane"` values: (key, span).
    pub dane_routes: Vec<(String, Span)>,
    /// `relay.trusted_tls_names`, when it lists names.
    pub trusted_tls_names: Option<Span>,
}

/// Positions of one `[[listener]]`.
pub(super) struct ListenerSpans {
    /// The `[[listener]]` header.
    pub header: Option<Span>,
    /// `name`, when valid.
    pub name: Option<Span>,
    /// `bind`, when valid.
    pub bind: Option<Span>,
    /// `tls`, when written and valid.
    pub tls: Option<Span>,
    /// Whether `tls` was written but invalid (then nothing is checked against it).
    pub tls_invalid: bool,
}

/// Reads every table of `doc`; `path` is the file, `base` its folder.
pub(super) fn read(
    d: &mut Diagnostics,
    doc: &DeTable,
    path: &Path,
    base: &Path,
) -> (Config, Spans) {
    let root = Section::open(d, doc, None, String::new(), "", TOP_LEVEL);
    let mut spans = Spans {
        listener_malformed: doc
            .get("listener")
            .is_some_and(|v| !matches!(v.get_ref(), DeValue::Array(_))),
        listeners: Vec::new(),
        route_refs: Vec::new(),
        metrics_bind: None,
        dane_routes: Vec::new(),
        trusted_tls_names: None,
    };
    let server = read_server(&root.table(d, "server", SERVER_KEYS), d, base);
    let listeners = root
        .tables(d, "listener", LISTENER_KEYS)
        .iter()
        .map(|s| {
            let (listener, listener_spans) = read_listener(s, d);
            spans.listeners.push(listener_spans);
            listener
        })
        .collect();
    let tls_section = root.table(d, "tls", TLS_KEYS);
    let tls = read_tls(&tls_section, d, base);
    let limits = read_limits(&root.table(d, "limits", LIMITS_KEYS), d);
    let relay_section = root.table(d, "relay", RELAY_KEYS);
    let relay = read_relay(&relay_section, d);
    if !relay.trusted_tls_names.is_empty() {
        spans.trusted_tls_names = relay_section
            .strings(d, "trusted_tls_names")
            .map(|v| v.span());
    }
    let client_ca_set = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if client_ca_set
        && relay.trusted_tls_names.is_empty()
        && !relay_section.has("trusted_tls_names")
    {
        check_unused_client_ca(d, &tls_section);
    }
    let routing_section = root.table(d, "routing", ROUTING_KEYS);
    let mut routing = read_routing(&routing_section, d, base, &mut spans.route_refs);
    read_source(&root, &routing_section, d, base, &mut routing);
    let routes = root
        .named_tables(d, "route", ROUTE_KEYS)
        .iter()
        .map(|(name, s)| {
            if let Err(e) = values::name(name.get_ref()) {
                d.error(Some(&name.span()), s.name(), e);
            }
            let (route, needs) = read_route(s, d, base);
            if let Some(span) = needs.dane {
                spans.dane_routes.push((s.key("tls"), span));
            }
            (name.get_ref().clone(), route)
        })
        .collect::<BTreeMap<_, _>>();
    let dns = read_dns(&root.table(d, "dns", DNS_KEYS), d, base);
    let queue = read_queue(&root.table(d, "queue", QUEUE_KEYS), d);
    let metrics_section = root.table(d, "metrics", METRICS_KEYS);
    let metrics = match bind_address(d, &metrics_section, "bind") {
        Some(bind) => {
            spans.metrics_bind = Some(bind.span());
            MetricsConfig {
                bind: bind.into_inner(),
            }
        }
        None => MetricsConfig::default(),
    };
    let doctor = read_doctor(&root.table(d, "doctor", DOCTOR_KEYS), d);
    let config = Config {
        path: path.to_path_buf(),
        server,
        listeners,
        tls,
        limits,
        relay,
        routing,
        routes,
        dns,
        queue,
        metrics,
        doctor,
    };
    (config, spans)
}

/// `[routing] source` and, for the directory, `[ldap]`.
fn read_source(
    root: &Section,
    routing_section: &Section,
    d: &mut Diagnostics,
    base: &Path,
    routing: &mut RoutingConfig,
) {
    let source = routing_section.choice(d, "source", &[("file", false), ("ldap", true)]);
    let ldap_section = root.table(d, "ldap", super::ldap::RELAY_KEYS);
    let wants_ldap = source.as_ref().is_some_and(|s| *s.get_ref());
    match (wants_ldap, ldap_section.span().is_some()) {
        (true, true) => {
            let config = super::ldap::read(&ldap_section, d, base);
            routing.source = RoutingSource::Ldap(Box::new(config));
        }
        (true, false) => d.error(
            source.as_ref().map(Spanned::span).as_ref(),
            "routing.source",
            "is \"ldap\" but there is no [ldap] section; add [ldap] with url, bind_dn, password_file and base (see config/ldap/relay.toml)",
        ),
        // An unreadable `source` is reported already; don't pile on.
        (false, true) if source.is_none() && routing_section.has("source") => {}
        (false, true) => d.error(
            ldap_section.span(),
            "ldap",
            "[ldap] is only read with routing.source = \"ldap\"; set that, or remove [ldap]",
        ),
        (false, false) => {}
    }
}

fn read_server(s: &Section, d: &mut Diagnostics, base: &Path) -> ServerConfig {
    let hostname = s
        .required_string(d, "hostname", "\"relay.corp.example\"")
        .and_then(|h| checked(d, s, "hostname", &h, values::domain))
        .unwrap_or_default();
    ServerConfig {
        hostname,
        spool_dir: s
            .path(d, "spool_dir", base)
            .map_or_else(|| base.join("spool"), Spanned::into_inner),
        shutdown_grace: s
            .duration(d, "shutdown_grace")
            .map_or(Duration::from_secs(30), Spanned::into_inner),
    }
}

fn read_listener(s: &Section, d: &mut Diagnostics) -> (ListenerConfig, ListenerSpans) {
    let name = s
        .required_string(d, "name", "\"smtp\"")
        .and_then(|n| checked(d, s, "name", &n, |t| values::name(t).map(|()| n.clone())));
    let bind = match s.required_string(d, "bind", "\"127.0.0.1:2525\"") {
        Some(b) => checked(d, s, "bind", &b, values::bind_address).map(|a| (a, b.span())),
        None => None,
    };
    let tls = s.choice(d, "tls", LISTENER_TLS);
    let tls_invalid = tls.is_none() && s.has("tls");
    // DESIGN.md: a listener offers STARTTLS unless told otherwise.
    let mode = tls.as_ref().map_or(ListenerTls::StartTls, |t| *t.get_ref());
    let require_tls = s.bool(d, "require_tls");
    if let Some(require) = &require_tls {
        if *require.get_ref() && !tls_invalid && mode != ListenerTls::StartTls {
            let why = match mode {
                ListenerTls::Implicit => {
                    "with tls = \"implicit\" every session is encrypted from the first byte"
                }
                _ => "with tls = \"none\" STARTTLS is never offered, so no client could send",
            };
            d.error(
                Some(&require.span()),
                &s.key("require_tls"),
                format!("require_tls = true only goes with tls = \"starttls\"; {why}: remove require_tls or set tls = \"starttls\""),
            );
        }
    }
    let spans = ListenerSpans {
        header: s.span().cloned(),
        name: name.as_ref().map(Spanned::span),
        bind: bind.as_ref().map(|(_, span)| span.clone()),
        tls: tls.as_ref().map(Spanned::span),
        tls_invalid,
    };
    let listener = ListenerConfig {
        name: name.map(Spanned::into_inner).unwrap_or_default(),
        bind: bind.map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |(a, _)| a),
        tls: if tls_invalid { ListenerTls::None } else { mode },
        require_tls: require_tls.is_some_and(|r| *r.get_ref()),
    };
    (listener, spans)
}

fn read_tls(s: &Section, d: &mut Diagnostics, base: &Path) -> Option<TlsConfig> {
    s.span()?;
    Some(TlsConfig {
        cert: s
            .path(d, "cert", base)
            .map_or_else(|| base.join("../certs/relay.crt"), Spanned::into_inner),
        key: s
            .path(d, "key", base)
            .map_or_else(|| base.join("../certs/relay.key"), Spanned::into_inner),
        client_ca: s
            .optional_path(d, "client_ca", base)
            .map(Spanned::into_inner),
    })
}

/// `[tls] client_ca` anchors client certificates for `relay.trusted_tls_names`
/// only: without names it would be silently ignored.
fn check_unused_client_ca(d: &mut Diagnostics, tls: &Section) {
    if let Some(ca) = tls
        .string(d, "client_ca")
        .filter(|c| !c.get_ref().is_empty())
    {
        d.error(
            Some(&ca.span()),
            &tls.key("client_ca"),
            "client_ca only verifies client certificates for relay.trusted_tls_names, which lists none: add the names, or remove client_ca",
        );
    }
}

fn read_limits(s: &Section, d: &mut Diagnostics) -> Limits {
    let default = Limits::default();
    Limits {
        max_message_size: match s.size(d, "max_message_size") {
            Some(size) if *size.get_ref() == 0 => {
                d.error(
                    Some(&size.span()),
                    &s.key("max_message_size"),
                    "must be more than 0 (e.g. \"35MiB\")",
                );
                default.max_message_size
            }
            Some(size) => size.into_inner(),
            None => default.max_message_size,
        },
        // RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients; fewer
        // is allowed here for tests, but not zero.
        max_recipients: s
            .number(d, "max_recipients", 1..=MANY)
            .unwrap_or(default.max_recipients),
        max_connections: s
            .number(d, "max_connections", 1..=MANY)
            .unwrap_or(default.max_connections),
        max_connections_per_ip: s
            .number(d, "max_connections_per_ip", 1..=MANY)
            .unwrap_or(default.max_connections_per_ip),
        command_timeout: timeout(d, s, "command_timeout").unwrap_or(default.command_timeout),
        data_timeout: timeout(d, s, "data_timeout").unwrap_or(default.data_timeout),
        max_errors: s
            .number(d, "max_errors", 1..=MANY)
            .unwrap_or(default.max_errors),
        max_received_headers: s
            .number(d, "max_received_headers", 1..=MANY)
            .unwrap_or(default.max_received_headers),
        bare_newline: s
            .choice(d, "bare_newline", BARE_NEWLINE)
            .map_or(default.bare_newline, Spanned::into_inner),
        max_messages_per_minute_per_ip: s
            .number(d, "max_messages_per_minute_per_ip", 0..=u32::MAX.into())
            .unwrap_or(default.max_messages_per_minute_per_ip),
        max_connections_per_minute_per_ip: s
            .number(d, "max_connections_per_minute_per_ip", 0..=u32::MAX.into())
            .unwrap_or(default.max_connections_per_minute_per_ip),
    }
}

fn read_relay(s: &Section, d: &mut Diagnostics) -> RelayConfig {
    let mut accepted_domains: Vec<String> = Vec::new();
    for (i, text) in list(d, s, "accepted_domains").iter().enumerate() {
        let key = format!("{}[{i}]", s.key("accepted_domains"));
        match values::domain(text.get_ref()) {
            // Listing a domain twice is harmless; keep the first.
            Ok(domain) if !accepted_domains.contains(&domain) => accepted_domains.push(domain),
            Ok(_) => {}
            Err(e) => d.error(Some(&text.span()), &key, e),
        }
    }
    if !s.has("accepted_domains") {
        // DESIGN.md's default (the example organisation's domain); every real
        // deployment sets its own.
        accepted_domains.push("corp.example".to_string());
    }
    let trusted_networks = match s.strings(d, "trusted_networks") {
        Some(texts) => texts
            .get_ref()
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let key = format!("{}[{i}]", s.key("trusted_networks"));
                report(d, &key, text, values::network(text.get_ref()))
            })
            .collect(),
        None if s.has("trusted_networks") => Vec::new(),
        // DESIGN.md default: the local host may relay anywhere.
        None => vec![
            "127.0.0.0/8".parse().expect("valid CIDR"),
            "::1/128".parse().expect("valid CIDR"),
        ],
    };
    let mut trusted_tls_names: Vec<String> = Vec::new();
    for (i, text) in list(d, s, "trusted_tls_names").iter().enumerate() {
        let key = format!("{}[{i}]", s.key("trusted_tls_names"));
        match values::tls_name(text.get_ref()) {
            Ok(name) if !trusted_tls_names.contains(&name) => trusted_tls_names.push(name),
            Ok(_) => {}
            Err(e) => d.error(Some(&text.span()), &key, e),
        }
    }
    RelayConfig {
        accepted_domains,
        trusted_networks,
        trusted_tls_names,
    }
}

fn read_dns(s: &Section, d: &mut Diagnostics, base: &Path) -> DnsConfig {
    let nameservers = list(d, s, "nameservers")
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let key = format!("{}[{i}]", s.key("nameservers"));
            report(d, &key, text, values::name_server(text.get_ref()))
        })
        .collect();
    let dnssec = s.bool(d, "dnssec");
    let trust_anchor = s.optional_path(d, "trust_anchor", base);
    let dnssec_on = dnssec.as_ref().is_some_and(|v| *v.get_ref());
    if let (Some(anchor), false) = (&trust_anchor, dnssec_on) {
        if !s.has("dnssec") || dnssec.is_some() {
            d.error(
                Some(&anchor.span()),
                &s.key("trust_anchor"),
                "a trust anchor is only used to validate DNSSEC; add dnssec = true to [dns], or remove trust_anchor",
            );
        }
    }
    DnsConfig {
        nameservers,
        dnssec: dnssec_on,
        trust_anchor: trust_anchor.map(Spanned::into_inner),
    }
}

fn read_queue(s: &Section, d: &mut Diagnostics) -> QueueConfig {
    let default = QueueConfig::default();
    let retry_schedule = match s.durations(d, "retry_schedule") {
        Some(list) if list.get_ref().is_empty() => {
            d.error(
                Some(&list.span()),
                &s.key("retry_schedule"),
                "is empty; list at least one interval (e.g. [\"1m\", \"5m\", \"15m\", \"1h\"]); the last one repeats",
            );
            default.retry_schedule
        }
        Some(list) if list.get_ref().contains(&Duration::ZERO) => {
            d.error(
                Some(&list.span()),
                &s.key("retry_schedule"),
                "an interval of 0s would retry in a busy loop; every interval must be longer than zero",
            );
            default.retry_schedule
        }
        Some(list) => list.into_inner(),
        None => default.retry_schedule,
    };
    let max_lifetime = timeout(d, s, "max_lifetime").unwrap_or(default.max_lifetime);
    let delay_warning = match s.duration(d, "delay_warning") {
        // A notice due after the message expires would never be sent.
        Some(w) if *w.get_ref() >= max_lifetime => {
            d.error(
                Some(&w.span()),
                &s.key("delay_warning"),
                format!(
                    "a delay notice after {} would come after queue.max_lifetime ({}) bounced the message; make it shorter, or \"0s\" to send none",
                    crate::config::units::format_duration(*w.get_ref()),
                    crate::config::units::format_duration(max_lifetime)
                ),
            );
            default.delay_warning
        }
        Some(w) => w.into_inner(),
        None => default.delay_warning,
    };
    QueueConfig {
        retry_schedule,
        max_lifetime,
        delay_warning,
        delivery_concurrency: s
            .number(d, "delivery_concurrency", 1..=MANY)
            .unwrap_or(default.delivery_concurrency),
        per_host_concurrency: s
            .number(d, "per_host_concurrency", 1..=MANY)
            .unwrap_or(default.per_host_concurrency),
    }
}

fn read_doctor(s: &Section, d: &mut Diagnostics) -> DoctorConfig {
    DoctorConfig {
        spf_include: s
            .string(d, "spf_include")
            .and_then(|t| checked(d, s, "spf_include", &t, values::domain)),
        public_ip: s.string(d, "public_ip").and_then(|t| {
            match t.get_ref().parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    d.error(
                        Some(&t.span()),
                        &s.key("public_ip"),
                        format!("\"{}\" is not an IP address; write e.g. \"192.0.2.25\" or \"2001:db8::25\"", t.get_ref()),
                    );
                    None
                }
            }
        }),
    }
}
