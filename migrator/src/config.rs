//! `migrator.toml` into typed values.
//!
//! Same standard as the relay's configuration (and the same spanned reader,
//! `relay::config::reader`): unknown keys are errors, every problem is reported as
//! `FILE:LINE: key: what is wrong; what would be valid`, all of them at once.
//! Paths are relative to the file's folder. Secrets are never in this file: each
//! side names a `password_file`.

use relay::config::reader::{Diagnostics, Section};
use relay::config::ConfigError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::de::DeTable;

/// The whole migrator configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    /// `[directory] users`: the directory export (CSV; file source only).
    pub users: PathBuf,
    /// `[directory] source` (with `[ldap]` inside when it is the directory).
    pub directory: DirectorySource,
    /// `[directory] default_quota`: the destination quota in bytes when the
    /// destination reports none (and the directory has none for the user).
    pub default_quota: Option<u64>,
    /// `[routing]`
    pub routing: Routing,
    /// `[source]`
    pub source: Endpoint,
    /// `[target]`
    pub target: Endpoint,
    /// `[migration]`
    pub migration: Migration,
    /// `[metrics] bind`: where `/metrics` is served while `migrate` or `sync`
    /// runs; `None` when the section or key is absent.
    pub metrics: Option<SocketAddr>,
}

/// `[directory] source`: where the users and their contacts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    /// `users.csv` and the relay's contacts table.
    File,
    /// LDAP / Active Directory: users read there, contacts written there
    /// (`[ldap]`, with `contacts_base`).
    Ldap(Box<relay::config::ldap::LdapConfig>),
}

/// `[routing]`: where and how forwarding contacts are written.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The relay's contacts table.
    pub contacts: PathBuf,
    /// The contact address when the directory has no `target`:
    /// `{local}`, `{domain}`, `{address}` are replaced.
    pub target_template: String,
    /// Route column for new contacts; `None` = the relay's `contact_route`.
    pub route: Option<String>,
}

/// Which end of the copy a `[source]` / `[target]` section describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The on-premises server the mail is read from.
    Source,
    /// The cloud service the mail is written to.
    Target,
}

impl Side {
    /// The section name, also used in every message about this side.
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a side's connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte (RFC 8314).
    Implicit,
    /// `imap://`: STARTTLS (RFC 3501 §6.2.1); plaintext only with `allow_insecure`.
    StartTls,
}

/// How the migrator logs in to a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Each user's own password, from `password_file` lines `login password`.
    Password,
    /// Dovecot master user: `LOGIN "user*master" master-password`.
    Master,
    /// SASL PLAIN with authzid = user, authcid = master (RFC 4616).
    Authzid,
    /// An app-only OAuth2 token (client-credentials grant) over SASL XOAUTH2 or
    /// OAUTHBEARER; the settings are in [`Endpoint::oauth2`].
    OAuth2,
}

/// Whether a side's sessions use COMPRESS=DEFLATE (RFC 4978), `compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// When the server offers it and is not on loopback (the default).
    Auto,
    /// Whenever the server offers it, loopback included. A server that does
    /// not offer it fails `check`; the copy warns once and goes on
    /// uncompressed.
    Always,
    /// Never.
    Never,
}

impl Compress {
    /// Each value as migrator.toml spells it.
    const CHOICES: [(&'static str, Compress); 3] = [
        ("auto", Compress::Auto),
        ("always", Compress::Always),
        ("never", Compress::Never),
    ];

    /// The value as migrator.toml spells it.
    pub fn name(self) -> &'static str {
        Compress::CHOICES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("auto", |(name, _)| name)
    }
}

/// `[source]` or `[target]`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Which side this is.
    pub side: Side,
    /// The URL as written.
    pub url: String,
    /// Host name or address (what the certificate must name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS mode.
    pub security: Security,
    /// Login method.
    pub auth: Auth,
    /// The master (admin) login for `master` and `authzid`.
    pub master_user: Option<String>,
    /// Where the password(s) are (empty with `auth = "oauth2"`).
    pub password_file: PathBuf,
    /// The token endpoint and client, with `auth = "oauth2"`.
    pub oauth2: Option<crate::oauth::OAuth2>,
    /// Template for the mailbox login on this side: `{address}`, `{local}`,
    /// `{domain}`, `{target}`.
    pub login: String,
    /// Extra PEM trust anchor.
    pub ca: Option<PathBuf>,
    /// COMPRESS=DEFLATE after login.
    pub compress: Compress,
    /// The side's CalDAV/CardDAV server (`dav_url`, `dav_home`,
    /// `dav_addressbook_home`); `None` without `dav_url`.
    pub dav: Option<DavEndpoint>,
}

/// A side's CalDAV/CardDAV server: where calendars and address books are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavEndpoint {
    /// `dav_url` as written, without a trailing `/`: `https://host[:port][/path]`.
    pub url: String,
    /// Whether the URL is `https://`.
    pub tls: bool,
    /// Host name or address (what the certificate must name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `dav_home`: the path template of the user's calendar home (admin
    /// access); `None` = discovered as the user.
    pub home: Option<String>,
    /// `dav_addressbook_home`: where address books live when not under `home`.
    pub addressbook_home: Option<String>,
    /// Where `dav_url` is written, for errors that involve both sides.
    pub(crate) url_span: relay::config::reader::Span,
}

/// A content name that is not `mail`, `calendar` or `contacts` (config or `--content`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown content \"{0}\"; expected mail, calendar, contacts")]
pub struct UnknownContent(pub String);

/// What to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Content {
    /// Every folder that is not a calendar folder.
    pub mail: bool,
    /// Calendars: over CalDAV when both sides have a `dav_url`, else the
    /// folders named in `calendar_folders`.
    pub calendar: bool,
    /// Address books over CardDAV (both sides need a `dav_url`).
    pub contacts: bool,
}

impl Content {
    /// Everything: what `content` means when it is not written.
    pub const ALL: Content = Content {
        mail: true,
        calendar: true,
        contacts: true,
    };

    /// Parses one item name (`mail`, `calendar`, `contacts`) into `self`.
    pub fn add(&mut self, name: &str) -> Result<(), UnknownContent> {
        match name {
            "mail" => self.mail = true,
            "calendar" => self.calendar = true,
            "contacts" => self.contacts = true,
            other => return Err(UnknownContent(other.to_string())),
        }
        Ok(())
    }

    /// The names, for the review.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.mail {
            v.push("mail");
        }
        if self.calendar {
            v.push("calendar");
        }
        if self.contacts {
            v.push("contacts");
        }
        v
    }

    /// Whether anything goes over CalDAV/CardDAV (given `dav_url` on both sides).
    pub fn wants_dav(&self) -> bool {
        self.calendar || self.contacts
    }
}

/// `[migration]`
#[derive(Debug, Clone)]
pub struct Migration {
    /// Default content to copy.
    pub content: Content,
    /// Folder names that hold calendar items (matched case-insensitively against
    /// the whole name or its last level).
    pub calendar_folders: Vec<String>,
    /// Users migrated at once.
    pub parallel: usize,
    /// Per-user checkpoints.
    pub state_dir: PathBuf,
    /// Allow plaintext IMAP and unverified certificates.
    pub allow_insecure: bool,
}

const TOP: &[&str] = &[
    "directory",
    "ldap",
    "routing",
    "source",
    "target",
    "migration",
    "metrics",
];
const ENDPOINT_KEYS: &[&str] = &[
    "url",
    "auth",
    "master_user",
    "password_file",
    "login",
    "ca",
    "compress",
    "dav_url",
    "dav_home",
    "dav_addressbook_home",
    "sasl",
    "token_url",
    "client_id",
    "client_secret_file",
    "scope",
    "client_auth",
];

impl Config {
    /// Reads and validates `path`; on failure every error found.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        Config::from_str(&relay::config::reader::read_file(path)?, path)
    }

    /// Parses and validates `text` as if read from `path`; no I/O.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        let mut d = Diagnostics::new(path, text);
        let document = match DeTable::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                d.syntax(&e);
                return Err(d.finish());
            }
        };
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        let root = Section::open(&mut d, document.get_ref(), None, String::new(), "", TOP);

        let directory = root.table(&mut d, "directory", &["source", "users", "default_quota"]);
        let users = directory
            .path(&mut d, "users", base)
            .map(|p| p.into_inner())
            .unwrap_or_else(|| base.join("users.csv"));
        // DESIGN.md: "" = unknown (allowed).
        let quota_unset = directory
            .string_quiet("default_quota")
            .is_some_and(|q| q.get_ref().is_empty());
        let default_quota = if quota_unset {
            None
        } else {
            directory
                .size(&mut d, "default_quota")
                .map(|q| q.into_inner())
                .filter(|&q| q > 0)
        };
        let directory_source = read_directory_source(&mut d, &root, &directory, base);
        let file_source = directory_source == DirectorySource::File;

        let routing = read_routing(&mut d, &root, base, file_source);
        let source = read_endpoint(&mut d, &root, base, Side::Source);
        let target = read_endpoint(&mut d, &root, base, Side::Target);
        let migration = read_migration(&mut d, &root, base);
        let metrics = read_metrics(&mut d, &root);
        if let (Some(source), Some(target), Some(migration)) = (&source, &target, &migration) {
            check_dav_sides(&mut d, source, target, migration.content);
        }

        match (routing, source, target, migration) {
            (Some(routing), Some(source), Some(target), Some(migration)) if d.is_clean() => {
                Ok(Config {
                    path: path.to_path_buf(),
                    users,
                    directory: directory_source,
                    default_quota,
                    routing,
                    source,
                    target,
                    migration,
                    metrics,
                })
            }
            _ => Err(d.finish()),
        }
    }
}

/// `[directory] source` and, for the directory, `[ldap]` (the relay's keys
/// plus `contacts_base`, which is required here).
fn read_directory_source(
    d: &mut Diagnostics,
    root: &Section,
    directory: &Section,
    base: &Path,
) -> DirectorySource {
    let source = directory.choice(d, "source", &[("file", false), ("ldap", true)]);
    let mut keys = relay::config::ldap::RELAY_KEYS.to_vec();
    keys.push("contacts_base");
    let ldap = root.table(d, "ldap", &keys);
    match (
        source.as_ref().is_some_and(|s| *s.get_ref()),
        ldap.span().is_some(),
    ) {
        (true, true) => {
            let config = relay::config::ldap::read(&ldap, d, base);
            if !ldap.has("contacts_base") {
                ldap.missing(
                    d,
                    "contacts_base",
                    "\"OU=Cloud Contacts,DC=corp,DC=example\"",
                );
            }
            DirectorySource::Ldap(Box::new(config))
        }
        (true, false) => {
            d.error(
                source.as_ref().map(|s| s.span()).as_ref(),
                "directory.source",
                "is \"ldap\" but there is no [ldap] section; add [ldap] with url, bind_dn, password_file, base and contacts_base (see config/ldap/migrator.toml)",
            );
            DirectorySource::File
        }
        (false, true) if source.is_none() && directory.has("source") => DirectorySource::File,
        (false, true) => {
            d.error(
                ldap.span(),
                "ldap",
                "[ldap] is only read with directory.source = \"ldap\"; set that, or remove [ldap]",
            );
            DirectorySource::File
        }
        (false, false) => DirectorySource::File,
    }
}

fn read_routing(
    d: &mut Diagnostics,
    root: &Section,
    base: &Path,
    file_source: bool,
) -> Option<Routing> {
    let t = root.table(d, "routing", &["contacts", "target_template", "route"]);
    let contacts = match t.path(d, "contacts", base) {
        Some(p) => p.into_inner(),
        None if t.has("contacts") => return None,
        // With the directory, contacts are written there, not to a table.
        None if !file_source => base.join("contacts"),
        None => {
            t.missing(d, "contacts", "\"../config/contacts\"");
            return None;
        }
    };
    let template = t.required_string(d, "target_template", "\"{local}@tenant.cloud.example\"")?;
    let expanded = expand(template.get_ref(), "user@corp.example", "");
    if relay::address::check_address(&expanded).is_err() {
        d.error(
            Some(&template.span()),
            &t.key("target_template"),
            format!(
                "gives {expanded:?} for user@corp.example, not an address; write a template \
                 such as \"{{local}}@tenant.cloud.example\" ({{local}} {{domain}} {{address}})"
            ),
        );
        return None;
    }
    let route = match t.string(d, "route") {
        Some(r) if r.get_ref().is_empty() => None,
        Some(r) if r.get_ref().chars().any(char::is_whitespace) || r.get_ref().starts_with('#') => {
            d.error(
                Some(&r.span()),
                &t.key("route"),
                "must be one word that does not start with #; write the name of a [route.NAME] of the relay, or \"\"",
            );
            return None;
        }
        Some(r) => Some(r.into_inner()),
        None => None,
    };
    Some(Routing {
        contacts,
        target_template: template.into_inner(),
        route,
    })
}

fn read_endpoint(d: &mut Diagnostics, root: &Section, base: &Path, side: Side) -> Option<Endpoint> {
    let t = root.table(d, side.name(), ENDPOINT_KEYS);
    let url = t.required_string(d, "url", "\"imaps://imap.corp.example:993\"")?;
    let (security, host, port) = match parse_url(url.get_ref()) {
        Ok(v) => v,
        Err(why) => {
            d.error(Some(&url.span()), &t.key("url"), why);
            return None;
        }
    };
    let auth = t
        .choice(
            d,
            "auth",
            &[
                ("password", Auth::Password),
                ("master", Auth::Master),
                ("authzid", Auth::Authzid),
                ("oauth2", Auth::OAuth2),
            ],
        )
        .map(|a| a.into_inner());
    let auth = match auth {
        Some(a) => a,
        None if t.has("auth") => return None,
        None => {
            t.missing(d, "auth", "\"master\"");
            return None;
        }
    };
    if auth == Auth::OAuth2 {
        let oauth2 = crate::oauth::settings::read(d, &t, base)?;
        return Some(Endpoint {
            side,
            url: url.into_inner(),
            host,
            port,
            security,
            auth,
            master_user: None,
            password_file: PathBuf::new(),
            oauth2: Some(oauth2),
            login: login(d, &t, side),
            ca: ca(d, &t, base),
            compress: compress(d, &t)?,
            dav: crate::dav::config::read(d, &t, auth)?,
        });
    }
    crate::oauth::settings::refuse_without_oauth2(
        d,
        &t,
        match auth {
            Auth::Password => "password",
            Auth::Master => "master",
            _ => "authzid",
        },
    );
    let master_user = t.string(d, "master_user").map(|s| s.into_inner());
    if auth != Auth::Password && master_user.as_deref().unwrap_or("").is_empty() {
        t.missing(d, "master_user", "\"admin\"");
    }
    let password_file = match t.path(d, "password_file", base) {
        Some(p) => p.into_inner(),
        None => {
            if !t.has("password_file") {
                t.missing(d, "password_file", "\"secrets/source.password\"");
            }
            return None;
        }
    };
    let compress = compress(d, &t)?;
    let dav = crate::dav::config::read(d, &t, auth)?;
    Some(Endpoint {
        side,
        url: url.into_inner(),
        host,
        port,
        security,
        auth,
        master_user,
        password_file,
        oauth2: None,
        login: login(d, &t, side),
        ca: ca(d, &t, base),
        compress,
        dav,
    })
}

/// `login`, defaulting to the address at the source and the contact at the target.
fn login(d: &mut Diagnostics, t: &Section, side: Side) -> String {
    let default_login = match side {
        Side::Source => "{address}",
        Side::Target => "{target}",
    };
    t.string(d, "login")
        .map(|s| s.into_inner())
        .unwrap_or_else(|| default_login.to_string())
}

/// `ca`: "" or absent = none.
fn ca(d: &mut Diagnostics, t: &Section, base: &Path) -> Option<PathBuf> {
    match t.string(d, "ca") {
        Some(s) if s.get_ref().is_empty() => None,
        Some(s) => Some(base.join(s.get_ref())),
        None => None,
    }
}

/// `compress`: "auto" when absent.
fn compress(d: &mut Diagnostics, t: &Section) -> Option<Compress> {
    match t.choice(d, "compress", &Compress::CHOICES) {
        Some(c) => Some(c.into_inner()),
        None if t.has("compress") => None,
        None => Some(Compress::Auto),
    }
}

/// `calendar`/`contacts` with a `dav_url` on one side only cannot be copied:
/// one error, at the `dav_url` that is there.
fn check_dav_sides(d: &mut Diagnostics, source: &Endpoint, target: &Endpoint, content: Content) {
    let (with, without) = match (&source.dav, &target.dav) {
        (Some(_), None) => (Side::Source, Side::Target),
        (None, Some(_)) => (Side::Target, Side::Source),
        _ => return,
    };
    if !content.wants_dav() {
        return;
    }
    let span = match with {
        Side::Source => source.dav.as_ref().map(|v| v.url_span.clone()),
        Side::Target => target.dav.as_ref().map(|v| v.url_span.clone()),
    };
    d.error(
        span.as_ref(),
        &format!("{with}.dav_url"),
        format!(
            "calendars and contacts need a dav_url on both sides; add dav_url to [{without}], \
             or remove this one (calendar then means the IMAP folders in calendar_folders)"
        ),
    );
}

fn read_migration(d: &mut Diagnostics, root: &Section, base: &Path) -> Option<Migration> {
    let t = root.table(
        d,
        "migration",
        &[
            "content",
            "calendar_folders",
            "parallel",
            "state_dir",
            "allow_insecure",
        ],
    );
    let mut ok = true;
    let content = match t.strings(d, "content") {
        Some(list) => {
            let mut c = Content::default();
            for item in list.get_ref() {
                if let Err(why) = c.add(item.get_ref()) {
                    d.error(Some(&item.span()), &t.key("content"), why);
                    ok = false;
                }
            }
            if ok && c == Content::default() {
                d.error(
                    Some(&list.span()),
                    &t.key("content"),
                    "empty; write some of [\"mail\", \"calendar\", \"contacts\"]",
                );
                ok = false;
            }
            c
        }
        None => Content::ALL,
    };
    let calendar_folders = t
        .strings(d, "calendar_folders")
        .map(|l| l.into_inner().into_iter().map(|s| s.into_inner()).collect())
        .unwrap_or_else(|| vec!["Calendar".to_string()]);
    let parallel = t.number::<usize>(d, "parallel", 1..=256).unwrap_or(4);
    let state_dir = t
        .path(d, "state_dir", base)
        .map(|p| p.into_inner())
        .unwrap_or_else(|| base.join("state"));
    let allow_insecure = t
        .bool(d, "allow_insecure")
        .map(|b| b.into_inner())
        .unwrap_or(false);
    ok.then_some(Migration {
        content,
        calendar_folders,
        parallel,
        state_dir,
        allow_insecure,
    })
}

/// `[metrics] bind = "IP:PORT"`: optional; port 0 lets the system choose (the
/// address is printed at start).
fn read_metrics(d: &mut Diagnostics, root: &Section) -> Option<SocketAddr> {
    let t = root.table(d, "metrics", &["bind"]);
    let bind = t.string(d, "bind")?;
    match bind.get_ref().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            d.error(
                Some(&bind.span()),
                &t.key("bind"),
                format!(
                    "{:?} is not an address to bind; write IP:PORT (e.g. \"127.0.0.1:9126\"); host names are not resolved",
                    bind.get_ref()
                ),
            );
            None
        }
    }
}

/// Why a `url` is not one the migrator can connect to. Each message names the
/// URL and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Neither `imaps://` nor `imap://`.
    #[error("{0:?} is not an IMAP URL; {VALID_URL}")]
    NotImap(String),
    /// A path, a user name or nothing after the scheme.
    #[error("{0:?}: expected only a host and port; {VALID_URL}")]
    NotHostAndPort(String),
    /// `[` without `]` around an IPv6 address.
    #[error("{0:?}: unclosed [; {VALID_URL}")]
    UnclosedBracket(String),
    /// The port is not 1 to 65535.
    #[error("{url:?}: port {port:?} is not a number from 1 to 65535")]
    BadPort {
        /// The URL.
        url: String,
        /// The port as written.
        port: String,
    },
    /// Nothing before the port.
    #[error("{0:?}: the host is empty; {VALID_URL}")]
    EmptyHost(String),
}

const VALID_URL: &str = "write imaps://HOST:993 (implicit TLS) or imap://HOST:143 (STARTTLS)";

/// Splits `imaps://host:port` / `imap://host:port`; the port defaults to 993 / 143.
pub fn parse_url(url: &str) -> Result<(Security, String, u16), UrlError> {
    let (security, rest, default_port) = if let Some(rest) = url.strip_prefix("imaps://") {
        (Security::Implicit, rest, 993)
    } else if let Some(rest) = url.strip_prefix("imap://") {
        (Security::StartTls, rest, 143)
    } else {
        return Err(UrlError::NotImap(url.to_string()));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(UrlError::NotHostAndPort(url.to_string()));
    }
    // [v6]:port, host:port, host
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err(UrlError::UnclosedBracket(url.to_string()));
        };
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| UrlError::BadPort {
                url: url.to_string(),
                port: p.to_string(),
            })?,
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost(url.to_string()));
    }
    Ok((security, host, port))
}

/// Fills `{address}`, `{local}`, `{domain}` and `{target}` in a template.
pub fn expand(template: &str, address: &str, target: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    template
        .replace("{address}", address)
        .replace("{local}", local)
        .replace("{domain}", domain)
        .replace("{target}", target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[directory]
users = "users.csv"
[routing]
contacts = "contacts"
target_template = "{local}@tenant.cloud.example"
[source]
url = "imaps://127.0.0.1:10993"
auth = "master"
master_user = "admin"
password_file = "secrets/source.password"
[target]
url = "imap://imap.example"
auth = "authzid"
master_user = "admin"
password_file = "secrets/target.password"
ca = "ca.pem"
[migration]
content = ["mail"]
parallel = 2
"#;

    fn errors(text: &str) -> Vec<String> {
        Config::from_str(text, Path::new("/etc/m/migrator.toml"))
            .expect_err("should fail")
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn good_config_reads_with_defaults() {
        let c = Config::from_str(GOOD, Path::new("/etc/m/migrator.toml")).unwrap();
        assert_eq!(c.users, Path::new("/etc/m/users.csv"));
        assert_eq!(c.routing.contacts, Path::new("/etc/m/contacts"));
        assert_eq!(c.source.security, Security::Implicit);
        assert_eq!(
            (c.source.host.as_str(), c.source.port),
            ("127.0.0.1", 10993)
        );
        assert_eq!(c.target.security, Security::StartTls);
        assert_eq!(c.target.port, 143);
        assert_eq!(c.target.auth, Auth::Authzid);
        assert_eq!(c.target.login, "{target}");
        assert_eq!(c.source.login, "{address}");
        assert_eq!(c.target.ca.as_deref(), Some(Path::new("/etc/m/ca.pem")));
        assert_eq!(c.source.compress, Compress::Auto);
        assert!(c.migration.content.mail && !c.migration.content.calendar);
        assert_eq!(c.migration.parallel, 2);
        assert_eq!(c.migration.calendar_folders, ["Calendar"]);
        assert_eq!(c.migration.state_dir, Path::new("/etc/m/state"));
        assert!(!c.migration.allow_insecure);
        assert_eq!(c.metrics, None);
    }

    #[test]
    fn metrics_bind_is_read() {
        let text = format!("{GOOD}[metrics]\nbind = \"127.0.0.1:0\"\n");
        let c = Config::from_str(&text, Path::new("/etc/m/migrator.toml")).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn broken_metrics_section_is_reported_with_its_line() {
        let text = format!("{GOOD}[metrics]\nbind = \"localhost:9126\"\n");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "/etc/m/migrator.toml:22: metrics.bind: \"localhost:9126\" is not an address to bind; write IP:PORT"
            ),
            "{e:?}"
        );
        let text = format!("{GOOD}[metrics]\nport = 9126\n");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("/etc/m/migrator.toml:22: metrics.port: unknown key"),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let text = GOOD.replace("parallel = 2", "paralel = 2");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "/etc/m/migrator.toml:20: migration.paralel: unknown key (did you mean parallel?)"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn bad_url_auth_and_content_all_reported() {
        let text = GOOD
            .replace("imaps://127.0.0.1:10993", "https://x")
            .replace("auth = \"authzid\"", "auth = \"kerberos\"")
            .replace("[\"mail\"]", "[\"mail\", \"tasks\"]");
        let e = errors(&text);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].contains(":8: source.url: \"https://x\" is not an IMAP URL; write imaps://"),
            "{e:?}"
        );
        assert!(e[1].contains(":14: target.auth: unknown value \"kerberos\"; expected one of: password, master, authzid"), "{e:?}");
        assert!(
            e[2].contains(":19: migration.content: unknown content \"tasks\""),
            "{e:?}"
        );
    }

    #[test]
    fn oauth2_side_reads_its_keys_with_defaults() {
        let text = GOOD.replace(
            "auth = \"authzid\"\nmaster_user = \"admin\"\npassword_file = \"secrets/target.password\"",
            "auth = \"oauth2\"\ntoken_url = \"https://login.example/t/token\"\nclient_id = \"app\"\n\
             client_secret_file = \"secrets/target.client-secret\"\nscope = \"https://imap.example/.default\"",
        );
        let c = Config::from_str(&text, Path::new("/etc/m/migrator.toml")).unwrap();
        assert_eq!(c.target.auth, Auth::OAuth2);
        let o = c.target.oauth2.as_ref().unwrap();
        assert_eq!(o.sasl, crate::oauth::Sasl::XOAuth2);
        assert_eq!(o.client_auth, crate::oauth::ClientAuth::Basic);
        assert_eq!(
            o.client_secret_file,
            Path::new("/etc/m/secrets/target.client-secret")
        );
        assert_eq!(c.target.master_user, None);
        assert_eq!(c.target.ca.as_deref(), Some(Path::new("/etc/m/ca.pem")));
        assert!(c.source.oauth2.is_none());
    }

    #[test]
    fn compress_is_read_per_side() {
        let text = GOOD
            .replace("ca = \"ca.pem\"", "ca = \"ca.pem\"\ncompress = \"always\"")
            .replace(
                "password_file = \"secrets/source.password\"",
                "password_file = \"secrets/source.password\"\ncompress = \"never\"",
            );
        let c = Config::from_str(&text, Path::new("/etc/m/migrator.toml")).unwrap();
        assert_eq!(c.target.compress, Compress::Always);
        assert_eq!(c.source.compress, Compress::Never);
        let e = errors(&GOOD.replace("ca = \"ca.pem\"", "compress = \"yes\""));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains(
                ":17: target.compress: unknown value \"yes\"; expected one of: auto, always, never"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn master_auth_needs_master_user() {
        let text = GOOD.replacen("master_user = \"admin\"\n", "", 1);
        let e = errors(&text);
        assert!(
            e.iter().any(
                |e| e.contains(":7: source.master_user: required; add master_user = \"admin\"")
            ),
            "{e:?}"
        );
    }

    #[test]
    fn template_must_give_an_address() {
        let text = GOOD.replace("{local}@tenant.cloud.example", "{local}");
        let e = errors(&text);
        assert!(
            e[0].contains("routing.target_template: gives \"user\""),
            "{e:?}"
        );
    }

    #[test]
    fn shipped_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/migrator.toml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.routing.contacts.ends_with("config/contacts"));
        assert_eq!(c.routing.route, None);
        assert_eq!(c.source.auth, Auth::Master);
        assert_eq!(c.target.auth, Auth::Authzid);
        assert_eq!(c.source.ca, None);
        let users = crate::directory::csv::load(&c.users).unwrap();
        assert_eq!(users.iter().filter(|u| u.enabled).count(), 4);
        assert_eq!(c.metrics, Some("127.0.0.1:9126".parse().unwrap()));
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("imaps://h").unwrap(),
            (Security::Implicit, "h".into(), 993)
        );
        assert_eq!(
            parse_url("imap://[::1]:1430").unwrap(),
            (Security::StartTls, "::1".into(), 1430)
        );
        assert!(parse_url("imap://h:0").is_err());
        assert!(parse_url("imap://user@h").is_err());
    }

    #[test]
    fn templates() {
        assert_eq!(
            expand("{local}@t.example", "Bob@corp.example", ""),
            "Bob@t.example"
        );
        assert_eq!(expand("{address}", "a@b", ""), "a@b");
        assert_eq!(expand("{target}", "a@b", "x@y"), "x@y");
    }
}
