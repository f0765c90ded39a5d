//! Checks that need no network: the config, the contacts table, the server
//! certificate.

use super::Check;
use crate::config::{Config, ListenerTls, TlsConfig};
use crate::route::store;
use crate::route::table::ContactsTable;
use crate::tls::{self, TlsError};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Fewer days than this before expiry is a warning: enough to renew by hand
/// (and more than the 14 days ACME clients renew ahead, so a working renewal
/// never warns).
pub(super) const EXPIRY_WARN_DAYS: i64 = 21;

/// The common name rcgen gives the development certificate (`tls::ensure_dev_certificate`).
const DEV_CERT_CN: &str = "rcgen self signed cert";

const SECONDS_PER_DAY: i64 = 86_400;

/// The config loaded (the caller already refused one that does not).
pub(super) fn config(config: &Config) -> Check {
    Check::ok(
        "config",
        format!(
            "{}: {} listener(s), {} route(s), {} accepted domain(s)",
            config.path.display(),
            config.listeners.len(),
            config.routes.len(),
            config.relay.accepted_domains.len()
        ),
    )
}

/// Parses the contacts table as the relay would load it; returns it when valid.
pub(super) fn contacts(config: &Config, checks: &mut Vec<Check>) -> Option<ContactsTable> {
    let path = &config.routing.contacts;
    let what = format!("contacts table {}", path.display());
    let routes = |r: &str| config.routes.contains_key(r);
    let directory = matches!(config.routing.source, crate::config::RoutingSource::Ldap(_));
    if directory && !path.exists() {
        checks.push(Check::warn(
            format!("routing cache {}", path.display()),
            "none yet: a relay started while no directory server answers would refuse mail for the accepted domains (451 4.3.0)",
            "start the relay once while the directory answers; it writes the cache at its first load",
        ));
        return None;
    }
    match store::load(path, &routes) {
        Ok(table) => {
            checks.push(Check::ok(what, format!("{} contact(s)", table.len())));
            Some(table)
        }
        Err(errors) => {
            // The first few say what kind of problem it is; `check` lists them all.
            let shown: Vec<String> = errors.iter().take(3).map(|e| e.to_string()).collect();
            let more = errors.len().saturating_sub(shown.len());
            let mut detail = format!("{} error(s): {}", errors.len(), shown.join("; "));
            if more > 0 {
                detail.push_str(&format!("; and {more} more"));
            }
            checks.push(Check::fail(
                what,
                detail,
                "correct the lines named (`coexist-relay check` lists every error); \
                 until then a running relay keeps its last good table and a starting one refuses to start",
            ));
            None
        }
    }
}

/// The server certificate: readable, matches its key, expiry, issuer.
pub(super) fn certificate(config: &Config) -> Vec<Check> {
    let uses_tls = config.listeners.iter().any(|l| l.tls != ListenerTls::None);
    let Some(tls) = config.tls.as_ref().filter(|_| uses_tls) else {
        return vec![Check::warn(
            "certificate",
            "no listener offers TLS: mail to the relay travels in clear",
            "set tls = \"starttls\" on the [[listener]] that receives internet and cloud mail, \
             and name a certificate in [tls]",
        )];
    };
    let what = format!("certificate {}", tls.cert.display());
    match (tls.cert.exists(), tls.key.exists()) {
        (false, false) => {
            return vec![Check::warn(
                what,
                "does not exist yet: `run` will generate a self-signed development certificate",
                format!(
                    "install a certificate for {} and its key at {} and {}",
                    config.server.hostname,
                    tls.cert.display(),
                    tls.key.display()
                ),
            )]
        }
        (true, false) | (false, true) => {
            return vec![Check::fail(
                what,
                format!(
                    "only one of {} and {} exists",
                    tls.cert.display(),
                    tls.key.display()
                ),
                "install both files, or remove both to have a development certificate generated",
            )]
        }
        (true, true) => {}
    }
    if let Err(e) = tls::server_config(tls) {
        let fix = match e {
            TlsError::Rejected { .. } => {
                "install the key that belongs to this certificate \
                 (`openssl x509 -noout -pubkey -in CERT` and `openssl pkey -pubout -in KEY` must print the same)"
            }
            _ => "make both files readable by the relay's user and PEM-encoded (certificate chain, then the key)",
        };
        return vec![Check::fail(what, e.to_string(), fix)];
    }
    let der = match tls::load_certs(&tls.cert) {
        Ok(certs) => certs[0].clone(),
        Err(e) => {
            return vec![Check::fail(
                what,
                e.to_string(),
                "install a readable PEM certificate",
            )]
        }
    };
    let cert = match X509Certificate::from_der(der.as_ref()) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return vec![Check::fail(
                what,
                format!("not a valid X.509 certificate: {e}"),
                "install a valid PEM certificate",
            )]
        }
    };
    let now = chrono::Utc::now().timestamp();
    vec![
        names(&what, &cert, &config.server.hostname),
        expiry(&cert, now, tls),
        issuer(&cert, &config.server.hostname),
    ]
}

/// Matches its key (already checked) and covers `server.hostname`.
fn names(what: &str, cert: &X509Certificate<'_>, hostname: &str) -> Check {
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                dns_names.push(n.to_ascii_lowercase());
            }
        }
    }
    let hostname = hostname.to_ascii_lowercase();
    let covered = dns_names.iter().any(|n| {
        n == &hostname
            || n.strip_prefix("*.").is_some_and(|parent| {
                hostname
                    .split_once('.')
                    .is_some_and(|(_, rest)| rest == parent)
            })
    });
    if covered {
        Check::ok(what, format!("matches its key; covers {hostname}"))
    } else {
        Check::warn(
            what,
            format!(
                "matches its key, but its names ({}) do not include server.hostname {hostname}",
                if dns_names.is_empty() {
                    "none".to_string()
                } else {
                    dns_names.join(", ")
                }
            ),
            format!("get a certificate whose subjectAltName includes {hostname}, or set server.hostname to a name it covers"),
        )
    }
}

/// Days to expiry, at `now` (Unix seconds).
pub(super) fn expiry(cert: &X509Certificate<'_>, now: i64, tls: &TlsConfig) -> Check {
    let not_after = cert.validity().not_after;
    let left = not_after.timestamp() - now;
    let days = left.div_euclid(SECONDS_PER_DAY);
    let when = not_after.to_datetime().date().to_string();
    let fix = format!(
        "renew it and replace {} and {} (a running relay picks the new files up on restart)",
        tls.cert.display(),
        tls.key.display()
    );
    if left <= 0 {
        Check::fail(
            "certificate expiry",
            format!("expired on {when}: clients that verify refuse the relay"),
            fix,
        )
    } else if days < EXPIRY_WARN_DAYS {
        Check::warn(
            "certificate expiry",
            format!("expires on {when}, in {days} day(s) (warning under {EXPIRY_WARN_DAYS})"),
            fix,
        )
    } else {
        Check::ok(
            "certificate expiry",
            format!("valid until {when} ({days} days)"),
        )
    }
}

/// Who issued it: the generated development certificate, another self-signed
/// one, or a CA.
fn issuer(cert: &X509Certificate<'_>, hostname: &str) -> Check {
    let subject = cert.subject();
    let self_signed = subject.as_raw() == cert.issuer().as_raw();
    let dev = self_signed
        && subject
            .iter_common_name()
            .any(|cn| cn.as_str() == Ok(DEV_CERT_CN));
    if dev {
        Check::warn(
            "certificate issuer",
            "the generated self-signed development certificate",
            format!("replace with a real certificate for {hostname}: senders and cloud connectors that verify TLS refuse this one"),
        )
    } else if self_signed {
        Check::warn(
            "certificate issuer",
            format!("self-signed ({subject})"),
            format!("use a certificate for {hostname} from a CA the sending servers trust"),
        )
    } else {
        Check::ok("certificate issuer", cert.issuer().to_string())
    }
}
