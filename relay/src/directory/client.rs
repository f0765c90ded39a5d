//! One LDAP connection, made the way DESIGN.md asks: the `url` list tried in
//! order (the first server that connects, secures and binds wins), TLS always
//! verified (webpki roots plus `ca`; `ldaps://` from the first byte, StartTLS on
//! `ldap://` unless `insecure`), a simple bind with the password file's first
//! line, and searches paged so that Active Directory's 1,000-entry cap
//! (MaxPageSize) never truncates a result.
//!
//! ldap3 (tokio) does the protocol; it has no failover or reconnection of its
//! own, so [`connect`] is the failover and the caller reconnects.

use crate::config::ldap::{LdapConfig, LdapScheme, LdapUrl};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use std::path::PathBuf;
use std::sync::Arc;

/// Entries per page: under AD's default MaxPageSize (1,000).
pub const PAGE_SIZE: i32 = 500;

/// RFC 4533 Sync Request control: present in the root DSE's `supportedControl`
/// when the server can stream changes (OpenLDAP syncprov).
pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";

/// Why talking to the directory failed. Every variant carries the server's (or
/// the system's) own words.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The password file cannot be read or is empty.
    #[error("[ldap] password_file {}: {reason}", path.display())]
    Password {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `[ldap] ca` cannot be used.
    #[error("[ldap] ca: {0}")]
    Ca(String),
    /// TCP, TLS or StartTLS failed.
    #[error("{url}: cannot connect: {reason}")]
    Connect {
        /// The URL as configured.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server refused the bind.
    #[error("{url}: bind as \"{dn}\" refused: {reason}")]
    Bind {
        /// The URL as configured.
        url: String,
        /// `bind_dn`.
        dn: String,
        /// The result code and the server's diagnostic text.
        reason: String,
    },
    /// An operation failed after the bind.
    #[error("{url}: {op}: {reason}")]
    Operation {
        /// The URL as configured.
        url: String,
        /// What was being done (`search OU=…`, `add CN=…`).
        op: String,
        /// The result code and the server's diagnostic text, or the I/O error.
        reason: String,
        /// The LDAP result code, when the server answered one.
        rc: Option<u32>,
    },
    /// No URL led to a bound connection; one error per URL, in order.
    #[error("no directory server answered: {}", join(.0))]
    NoServer(Vec<DirectoryError>),
}

fn join(errors: &[DirectoryError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl DirectoryError {
    /// The LDAP result code of a refused operation (`None` for connection
    /// problems: those are worth retrying elsewhere).
    pub fn rc(&self) -> Option<u32> {
        match self {
            DirectoryError::Operation { rc, .. } => *rc,
            _ => None,
        }
    }
}

/// An LDAP error in words: a result's name, code and diagnostic text, or the
/// transport's error.
pub fn describe(e: &LdapError) -> (String, Option<u32>) {
    match e {
        LdapError::LdapResult { result } => (result_words(result), Some(result.rc)),
        other => (other.to_string(), None),
    }
}

/// `insufficientAccessRights (50): no write access to parent`.
pub fn result_words(result: &ldap3::LdapResult) -> String {
    // ldap3's Display carries the name: "rc=50 (insufficientAccessRights), dn: ..., text: ..."
    let shown = result.to_string();
    let name = shown
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map_or("error", |(n, _)| n);
    if result.text.is_empty() {
        format!("{name} ({})", result.rc)
    } else {
        format!("{name} ({}): {}", result.rc, result.text.trim_end())
    }
}

/// A bound connection to one server. A clone shares the connection: ldap3
/// multiplexes the operations of every clone on it (message IDs), so
/// concurrent callers pipeline rather than queue.
#[derive(Clone)]
pub struct Connection {
    /// The handle (clone it for concurrent operations on the same connection).
    pub ldap: ldap3::Ldap,
    /// The server it is connected to.
    pub url: LdapUrl,
    config: Arc<LdapConfig>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url.text)
            .finish()
    }
}

/// Reads the service account's password: the file's first line, without its
/// line ending (the file is what a secrets manager writes).
pub fn read_password(config: &LdapConfig) -> Result<String, DirectoryError> {
    let Some(path) = &config.password_file else {
        return Ok(String::new());
    };
    let error = |reason: String| DirectoryError::Password {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(error(
            "empty; write the service account's password on the first line".into(),
        ));
    }
    Ok(line.to_string())
}

/// Tries each `url` in order; returns the first bound connection, or one error
/// per URL.
pub async fn connect(config: &Arc<LdapConfig>) -> Result<Connection, DirectoryError> {
    let password = read_password(config)?;
    let tls = crate::deliver::tls::verifying(config.ca.as_deref())
        .map_err(|e| DirectoryError::Ca(e.to_string()))?;
    let mut errors = Vec::new();
    for url in &config.urls {
        match connect_one(config, url, &password, &tls).await {
            Ok(c) => return Ok(c),
            Err(e) => errors.push(e),
        }
    }
    Err(DirectoryError::NoServer(errors))
}

async fn connect_one(
    config: &Arc<LdapConfig>,
    url: &LdapUrl,
    password: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Connection, DirectoryError> {
    let settings = LdapConnSettings::new()
        .set_conn_timeout(config.timeout)
        .set_config(Arc::clone(tls))
        // `insecure` never turns StartTLS off: it only permits starttls = false.
        .set_starttls(url.scheme == LdapScheme::Ldap && config.starttls);
    let connect_error = |e: LdapError| DirectoryError::Connect {
        url: url.text.clone(),
        reason: describe(&e).0,
    };
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url.connect_url())
        .await
        .map_err(connect_error)?;
    let text = url.text.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(url = %text, "LDAP connection ended: {e}");
        }
    });
    ldap.with_timeout(config.timeout);
    let bound = ldap
        .simple_bind(&config.bind_dn, password)
        .await
        .and_then(|r| r.success());
    if let Err(e) = bound {
        return Err(DirectoryError::Bind {
            url: url.text.clone(),
            dn: config.bind_dn.clone(),
            reason: describe(&e).0,
        });
    }
    Ok(Connection {
        ldap,
        url: url.clone(),
        config: Arc::clone(config),
    })
}

impl Connection {
    /// The error for a failed operation, in the server's words.
    pub fn error(&self, op: impl Into<String>, e: &LdapError) -> DirectoryError {
        let (reason, rc) = describe(e);
        DirectoryError::Operation {
            url: self.url.text.clone(),
            op: op.into(),
            reason,
            rc,
        }
    }

    /// A handle with the configured per-operation timeout set.
    pub fn handle(&self) -> ldap3::Ldap {
        let mut ldap = self.ldap.clone();
        ldap.with_timeout(self.config.timeout);
        ldap
    }

    /// Whether the server offers RFC 4533 content synchronisation (its root
    /// DSE lists the Sync Request control).
    pub async fn offers_sync(&self) -> Result<bool, DirectoryError> {
        let (entries, _) = self
            .handle()
            .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| self.error("read the root DSE", &e))?;
        Ok(entries.into_iter().any(|e| {
            SearchEntry::construct(e)
                .attrs
                .get("supportedControl")
                .is_some_and(|oids| oids.iter().any(|o| o == SYNC_REQUEST_OID))
        }))
    }

    /// A whole subtree search, page by page (RFC 2696), every entry collected.
    pub async fn search_all(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let op = || format!("search {base} for {filter}");
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE_SIZE)),
        ];
        let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
        let mut ldap = self.handle();
        let mut stream = ldap
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs)
            .await
            .map_err(|e| self.error(op(), &e))?;
        let mut out = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(entry)) => out.push(SearchEntry::construct(entry)),
                Ok(None) => break,
                Err(e) => return Err(self.error(op(), &e)),
            }
        }
        let result = stream.finish().await;
        if result.rc != 0 {
            return Err(DirectoryError::Operation {
                url: self.url.text.clone(),
                op: op(),
                reason: result_words(&result),
                rc: Some(result.rc),
            });
        }
        Ok(out)
    }

    /// A cheap round trip (WhoAmI, RFC 4532): proves the connection is alive.
    pub async fn probe(&self) -> Result<(), DirectoryError> {
        self.handle()
            .extended(ldap3::exop::WhoAmI)
            .await
            .and_then(|r| r.success())
            .map(|_| ())
            .map_err(|e| self.error("who am I", &e))
    }

    /// Unbinds (best effort): a clean end for the server's log.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}
