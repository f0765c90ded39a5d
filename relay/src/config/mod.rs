//! `relay.toml` into typed values.
//!
//! [`Config::load`] reads the file, [`Config::from_str`] does the rest without I/O:
//! the TOML is parsed with byte spans, each table is read into the types below with
//! the defaults of `shared/DESIGN.md`, and the sections are checked against each
//! other. Every problem becomes a [`ConfigError`] `FILE:LINE: key: what is wrong and
//! what would be valid`; all of them are returned, not just the first, so an
//! operator fixes the file in one pass. Paths are resolved against the folder of
//! the file (not canonicalised: they may not exist yet).
//!
//! Layout: [`units`] (sizes, durations), `values` (domains, next hops, networks),
//! `reader` (spanned tables, unknown keys, line numbers), `fields` (checked
//! values), `sections`
//! (one reader per table, defaults), `routing` (`[routing]`, `[route.NAME]`),
//! `validate` (checks across tables: route names, TLS).

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::DeTable;

mod fields;
pub mod ldap;
pub mod reader;
mod routing;
mod sections;
pub mod units;
mod validate;
pub(crate) mod values;

use reader::Diagnostics;

/// The whole relay configuration, validated; paths resolved against the file's folder.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    /// `[server]`
    pub server: ServerConfig,
    /// `[[listener]]`, at least one.
    pub listeners: Vec<ListenerConfig>,
    /// `[tls]`; `Some` whenever a listener uses TLS (defaults filled in).
    pub tls: Option<TlsConfig>,
    /// `[limits]`
    pub limits: Limits,
    /// `[relay]`
    pub relay: RelayConfig,
    /// `[routing]`
    pub routing: RoutingConfig,
    /// `[route.NAME]`
    pub routes: BTreeMap<String, RouteConfig>,
    /// `[dns]`
    pub dns: DnsConfig,
    /// `[queue]`
    pub queue: QueueConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[doctor]`: hints for `coexist-relay doctor`.
    pub doctor: DoctorConfig,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Greeting, EHLO to next hops, Received.
    pub hostname: String,
    /// Spool folder (resolved).
    pub spool_dir: PathBuf,
    /// Time sessions and deliveries get to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

/// TLS mode of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerTls {
    /// Plain SMTP, no STARTTLS.
    None,
    /// STARTTLS offered.
    StartTls,
    /// TLS from the first byte (RFC 8314).
    Implicit,
}

/// `[[listener]]`
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The `listener` metric label.
    pub name: String,
    /// Address to bind.
    pub bind: SocketAddr,
    /// TLS mode.
    pub tls: ListenerTls,
    /// Refuse MAIL before STARTTLS (530 5.7.0).
    pub require_tls: bool,
}

/// `[tls]`
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain (resolved path).
    pub cert: PathBuf,
    /// PEM private key (resolved path).
    pub key: PathBuf,
    /// Extra PEM trust anchor for client certificates (beside the webpki
    /// roots), checked for `relay.trusted_tls_names` (resolved path).
    pub client_ca: Option<PathBuf>,
}

/// What to do with a bare LF or bare CR in message data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareNewline {
    /// Turn it into CRLF.
    Normalize,
    /// Refuse the message with 550 5.6.0.
    Reject,
}

/// `[limits]`
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes; advertised as SIZE.
    pub max_message_size: u64,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// Concurrent connections, all listeners.
    pub max_connections: usize,
    /// Concurrent connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Time to wait for a command.
    pub command_timeout: Duration,
    /// Time to wait for each read during DATA/BDAT.
    pub data_timeout: Duration,
    /// Errors before the session is closed with 421 4.7.0.
    pub max_errors: u32,
    /// More Received fields than this is a loop (554 5.4.6).
    pub max_received_headers: usize,
    /// Bare LF/CR handling.
    pub bare_newline: BareNewline,
    /// Messages accepted per minute from one IP address; 0 = unlimited.
    pub max_messages_per_minute_per_ip: u32,
    /// Connections accepted per minute from one IP address; 0 = unlimited.
    pub max_connections_per_minute_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 35 * 1024 * 1024,
            max_recipients: 500,
            max_connections: 1000,
            max_connections_per_ip: 50,
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            max_errors: 10,
            max_received_headers: 50,
            bare_newline: BareNewline::Normalize,
            max_messages_per_minute_per_ip: 0,
            max_connections_per_minute_per_ip: 0,
        }
    }
}

/// `[relay]`
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Domains accepted from anyone (lower case, no trailing dot).
    pub accepted_domains: Vec<String>,
    /// Clients that may relay to any domain.
    pub trusted_networks: Vec<IpNet>,
    /// Verified client-certificate names (lower case) that may relay too.
    pub trusted_tls_names: Vec<String>,
}

/// `[[routing.rule]]`
#[derive(Debug, Clone)]
pub struct RoutingRule {
    /// Domain (lower case).
    pub domain: String,
    /// Route name.
    pub route: String,
}

/// `[routing] source`: where the contacts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingSource {
    /// The contacts table file (`routing.contacts`), hot-reloaded.
    File,
    /// The directory, mirrored; `routing.contacts` is its last good snapshot.
    Ldap(Box<ldap::LdapConfig>),
}

/// `[routing]`
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Where the contacts come from (`[ldap]` is inside when it is the directory).
    pub source: RoutingSource,
    /// The contacts table (resolved path); with the directory, its cache.
    pub contacts: PathBuf,
    /// Route for contacts without a route column.
    pub contact_route: String,
    /// Route for accepted domains.
    pub accepted_route: String,
    /// Route for every other domain.
    pub default_route: String,
    /// Sub-address separator; empty = disabled.
    pub subaddress_separator: String,
    /// Per-domain overrides of `accepted_route`, in order.
    pub rules: Vec<RoutingRule>,
}

/// Outbound TLS policy of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundTls {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, any certificate; clear otherwise.
    Opportunistic,
    /// Encrypt, any certificate; never send in clear.
    Required,
    /// Encrypt, valid certificate for the host name.
    Verify,
    /// RFC 7672: DNSSEC-validated TLSA records decide; without them, opportunistic.
    Dane,
}

impl OutboundTls {
    /// The name in `relay.toml` and in the `policy` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundTls::None => "none",
            OutboundTls::Opportunistic => "opportunistic",
            OutboundTls::Required => "required",
            OutboundTls::Verify => "verify",
            OutboundTls::Dane => "dane",
        }
    }
}

/// One `smarthost` entry, parsed at load: a host name or IP address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smarthost {
    /// Host name (lower case) or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (`route.port` when the entry had none).
    pub port: u16,
}

impl std::fmt::Display for Smarthost {
    /// `host:port`, IPv6 in brackets as in RFC 5321 address literals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Compares with the `host:port` text (tests, and `route` output).
impl PartialEq<&str> for Smarthost {
    fn eq(&self, other: &&str) -> bool {
        let Some((host, port)) = other.rsplit_once(':') else {
            return false;
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        host == self.host && port.parse() == Ok(self.port)
    }
}

/// `[route.NAME]`
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Next hops, tried in order (empty when `mx`).
    pub smarthost: Vec<Smarthost>,
    /// Deliver by MX lookup.
    pub mx: bool,
    /// TLS policy.
    pub tls: OutboundTls,
    /// Port for MX hosts and smarthosts without one (default 25).
    pub port: u16,
    /// EHLO name (default `server.hostname`).
    pub helo_name: Option<String>,
    /// Extra trust anchor for `verify`, DANE's fallback and MTA-STS (resolved path).
    pub ca: Option<PathBuf>,
    /// Client certificate chain presented on STARTTLS (certificate connectors).
    pub client_cert: Option<PathBuf>,
    /// Its private key; set exactly when `client_cert` is.
    pub client_key: Option<PathBuf>,
    /// Apply MTA-STS (RFC 8461); MX routes only (always false otherwise).
    pub mta_sts: bool,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Per-command reply timeout.
    pub command_timeout: Duration,
    /// Timeout for the data phase.
    pub data_timeout: Duration,
}

/// `[dns]`
#[derive(Debug, Clone, Default)]
pub struct DnsConfig {
    /// Name servers; empty = system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// Validate answers with DNSSEC (needed by `tls = "dane"`).
    pub dnssec: bool,
    /// File of DS/DNSKEY records to trust instead of the IANA root (resolved path).
    pub trust_anchor: Option<PathBuf>,
}

/// `[queue]`
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Retry intervals; the last repeats.
    pub retry_schedule: Vec<Duration>,
    /// Age after which a message bounces.
    pub max_lifetime: Duration,
    /// Age after which the sender gets one "delayed" DSN; zero = none.
    pub delay_warning: Duration,
    /// Concurrent outbound transactions.
    pub delivery_concurrency: usize,
    /// Concurrent outbound transactions per next hop.
    pub per_host_concurrency: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        QueueConfig {
            retry_schedule: vec![
                minutes(1),
                minutes(5),
                minutes(15),
                minutes(30),
                minutes(60),
                minutes(120),
                minutes(240),
            ],
            max_lifetime: Duration::from_secs(5 * 24 * 3600),
            delay_warning: Duration::from_secs(4 * 3600),
            delivery_concurrency: 100,
            per_host_concurrency: 20,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Address of /metrics, /healthz, /readyz.
    pub bind: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 9125)),
        }
    }
}

/// `[doctor]`: facts `coexist-relay doctor` cannot find out by itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorConfig {
    /// The SPF include the accepted domains should carry for the cloud service
    /// (e.g. `spf.protection.outlook.com`), lower case; checked when set.
    pub spf_include: Option<String>,
    /// The address the relay sends from as seen on the internet, when it is behind
    /// NAT; checked against SPF and reverse DNS when set.
    pub public_ip: Option<IpAddr>,
}

/// One configuration error, displayed as `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in.
    pub file: PathBuf,
    /// 1-based line (0 when the error is about the file as a whole).
    pub line: usize,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates `path`; on failure returns every error found.
    ///
    /// A file that cannot be read is one error at line 0.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        Config::from_str(&reader::read_file(path)?, path)
    }

    /// Parses and validates `text` as if read from `path` (used for messages and
    /// to resolve relative paths); no I/O. On failure returns every error found,
    /// in line order; a TOML syntax error is reported alone.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        let mut diagnostics = Diagnostics::new(path, text);
        let document = match DeTable::parse(text) {
            Ok(document) => document,
            Err(e) => {
                diagnostics.syntax(&e);
                return Err(diagnostics.finish());
            }
        };
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        let (config, spans) = sections::read(&mut diagnostics, document.get_ref(), path, base);
        validate::check(&mut diagnostics, &config, &spans);
        if diagnostics.is_clean() {
            Ok(config)
        } else {
            Err(diagnostics.finish())
        }
    }
}

#[cfg(test)]
mod tests;
