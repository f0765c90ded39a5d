//! Checks across tables: every route named exists, TLS listeners have `[tls]`,
//! listener names and addresses are unique.

use super::reader::Diagnostics;
use super::sections::Spans;
use super::{Config, ListenerTls};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Records every inconsistency between the tables of `config`.
pub(super) fn check(d: &mut Diagnostics, config: &Config, spans: &Spans) {
    check_route_refs(d, config, spans);
    check_listeners(d, config, spans);
    check_tls_needs(d, config, spans);
}

/// Keys that only work with another table's help: DANE needs validated DNS,
/// trusting client certificates needs a TLS listener to present them on.
fn check_tls_needs(d: &mut Diagnostics, config: &Config, spans: &Spans) {
    if !config.dns.dnssec {
        for (key, span) in &spans.dane_routes {
            d.error(
                Some(span),
                key,
                "tls = \"dane\" needs DNSSEC-validated TLSA records (RFC 7672 §2.2): add dnssec = true to [dns], or choose another policy",
            );
        }
    }
    let has_tls_listener = config.listeners.iter().any(|l| l.tls != ListenerTls::None);
    if let Some(span) = &spans.trusted_tls_names {
        if config.tls.is_none() || !has_tls_listener {
            d.error(
                Some(span),
                "relay.trusted_tls_names",
                "client certificates arrive only over TLS: add a listener with tls = \"starttls\" or \"implicit\" and a [tls] section, or remove trusted_tls_names",
            );
        }
    }
}

fn check_route_refs(d: &mut Diagnostics, config: &Config, spans: &Spans) {
    let defined: Vec<&str> = config.routes.keys().map(String::as_str).collect();
    for r in &spans.route_refs {
        if config.routes.contains_key(&r.name) {
            continue;
        }
        let what = if r.defaulted {
            format!("route \"{}\" (the default; {} is not set)", r.name, r.key)
        } else {
            format!("route \"{}\"", r.name)
        };
        let fix = if r.defaulted {
            format!("add [route.{}] or set {}", r.name, r.key)
        } else {
            format!("add [route.{}] or fix the name", r.name)
        };
        let message = if defined.is_empty() {
            format!("{what} is not defined; there are no [route.NAME] tables ({fix})")
        } else {
            format!(
                "{what} is not defined; defined routes: {} ({fix})",
                defined.join(", ")
            )
        };
        d.error(r.span.as_ref(), &r.key, message);
    }
}

fn check_listeners(d: &mut Diagnostics, config: &Config, spans: &Spans) {
    if config.listeners.is_empty() && !spans.listener_malformed {
        d.error(
            None,
            "listener",
            "no [[listener]] defined; add at least one, e.g. [[listener]] with name = \"smtp\" and bind = \"127.0.0.1:2525\"",
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut binds: HashMap<SocketAddr, String> = HashMap::new();
    if config.metrics.bind.port() != 0 {
        let owner = match &spans.metrics_bind {
            Some(span) => format!("metrics.bind (line {})", d.line(span)),
            None => "metrics.bind (the default)".to_string(),
        };
        binds.insert(config.metrics.bind, owner);
    }
    for (i, (listener, at)) in config.listeners.iter().zip(&spans.listeners).enumerate() {
        let key = |k: &str| format!("listener[{i}].{k}");
        if let Some(span) = &at.name {
            match names.get(listener.name.as_str()) {
                Some(&first) => d.error(
                    Some(span),
                    &key("name"),
                    format!("\"{}\" is already the name of listener[{first}]; listener names must be unique (they label metrics)", listener.name),
                ),
                None => {
                    names.insert(&listener.name, i);
                }
            }
        }
        // Port 0 asks the kernel for a free port, so two of those never clash.
        if let Some(span) = &at.bind {
            if listener.bind.port() != 0 {
                match binds.get(&listener.bind) {
                    Some(owner) => d.error(
                        Some(span),
                        &key("bind"),
                        format!(
                            "{} is already used by {owner}; give each listener its own address",
                            listener.bind
                        ),
                    ),
                    None => {
                        binds.insert(
                            listener.bind,
                            format!("listener[{i}] (line {})", d.line(span)),
                        );
                    }
                }
            }
        }
        if config.tls.is_none() && !at.tls_invalid && listener.tls != ListenerTls::None {
            let (mode, span) = match (&at.tls, listener.tls) {
                (Some(span), ListenerTls::Implicit) => ("tls = \"implicit\"", Some(span)),
                (Some(span), _) => ("tls = \"starttls\"", Some(span)),
                (None, _) => ("STARTTLS (the default)", at.header.as_ref()),
            };
            d.error(
                span,
                &key("tls"),
                format!("listener \"{}\" uses {mode} but there is no [tls] section; add [tls] with cert and key (e.g. cert = \"../certs/relay.crt\", key = \"../certs/relay.key\"), or set tls = \"none\"", listener.name),
            );
        }
    }
}
