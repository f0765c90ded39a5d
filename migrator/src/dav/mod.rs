//! Calendars and address books over CalDAV (RFC 4791) and CardDAV (RFC 6352),
//! on libdav over hyper 1 + rustls (ring). Used when both sides have a
//! `dav_url` (DESIGN.md "Calendars and contacts").
//!
//! The files follow one user's copy:
//! - [`config`]: the `dav_url` / `dav_home` / `dav_addressbook_home` keys;
//! - [`client`]: the HTTP stack and the credentials on each request;
//! - [`discover`]: where the user's calendars and address books live (the
//!   `dav_home` template for admin access, else RFC 6764 well-known,
//!   `current-user-principal`, the home sets), and what the server offers
//!   (`calendar-auto-schedule`, RFC 4331 quota);
//! - [`collections`]: listing them, pairing source and target by display
//!   name, creating what is missing (MKCALENDAR / extended MKCOL);
//! - [`resources`]: listing (sync-collection, ETags, time-range), multiget,
//!   the conditional PUT with the server's reason when it refuses;
//! - [`item`]: what the copy needs to know about one iCalendar / vCard
//!   (UID, version), parsed with calcard; [`schedule`]: the
//!   `SCHEDULE-AGENT=CLIENT` marking;
//! - [`copy`]: one collection's copy with its checkpoint ([`state`]), and
//!   [`copy_user`], every collection of a user.

pub mod client;
pub mod collections;
pub mod config;
pub mod copy;
pub mod discover;
pub mod item;
pub mod measure;
pub mod resources;
pub mod schedule;
pub mod state;

pub use copy::copy_user;

use crate::config::{Auth, Config, Endpoint, Side};
use std::fmt::Display;

/// Why a DAV step failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DavError {
    /// The configuration cannot work (a missing key at run time).
    #[error("{0}")]
    Config(String),
    /// The credentials could not be read.
    #[error("{0}")]
    Secret(String),
    /// `http://` without `allow_insecure`.
    #[error("{0}")]
    Insecure(String),
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),
    /// The request did not get an answer (connection, timeout): temporary.
    #[error("{0}")]
    Transport(String),
    /// The server answered with an error status.
    #[error("{0}")]
    Status(String),
    /// 404: the path is not there.
    #[error("{0}")]
    NotFound(String),
    /// 401 or 403: the credentials were refused, or they may not read or
    /// write there.
    #[error("{0}")]
    Denied(String),
    /// No calendar or address book home could be found for the user.
    #[error("{0}")]
    Discovery(String),
}

impl DavError {
    /// Whether a new attempt may get further.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DavError::Transport(_))
    }

    /// Wraps a libdav error: `side what: error`, transport failures apart.
    pub fn from_libdav<E: Display>(
        side: Side,
        what: impl Display,
        e: &libdav::dav::WebDavError<E>,
    ) -> DavError {
        use libdav::dav::WebDavError as W;
        let text = format!("{side} {what}: {e}");
        match e {
            W::Request(_) => DavError::Transport(text),
            W::BadStatusCode(http::StatusCode::NOT_FOUND) => DavError::NotFound(text),
            W::BadStatusCode(http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN) => {
                DavError::Denied(text)
            }
            W::BadStatusCode(s) if s.is_server_error() => DavError::Transport(text),
            _ => DavError::Status(text),
        }
    }
}

/// Both sides' DAV servers for a run: the connection pools and the endpoints.
pub struct Servers {
    /// The run's IMAP servers, for an `auth = "oauth2"` side's token (one
    /// cache for IMAP and DAV).
    pub logins: std::sync::Arc<crate::imap::connect::Servers>,
    /// `[source]`.
    pub source: SideServer,
    /// `[target]`.
    pub target: SideServer,
}

/// One side's DAV server.
pub struct SideServer {
    /// The side's configuration (`dav` is `Some`).
    pub endpoint: Endpoint,
    /// Its connection pool.
    pub pool: client::Pool,
}

impl Servers {
    /// The DAV servers of `config` when both sides have a `dav_url`; `None`
    /// when neither has one. The one-sided case is refused by the configuration.
    /// `logins` is the run's IMAP servers (a clone shares their token cache).
    pub fn new(
        config: &Config,
        insecure: bool,
        logins: &crate::imap::connect::Servers,
    ) -> Result<Option<Servers>, DavError> {
        if config.source.dav.is_none() || config.target.dav.is_none() {
            return Ok(None);
        }
        let side = |endpoint: &Endpoint| -> Result<SideServer, DavError> {
            Ok(SideServer {
                endpoint: endpoint.clone(),
                pool: client::Pool::new(endpoint, insecure)?,
            })
        };
        Ok(Some(Servers {
            logins: std::sync::Arc::new(logins.clone()),
            source: side(&config.source)?,
            target: side(&config.target)?,
        }))
    }
}

impl SideServer {
    /// Logs in for the user `address` (contact `target`): the user's own login
    /// with `auth = password`, else the admin (`master_user`), who reaches the
    /// user through the `dav_home` templates; with `auth = oauth2` the
    /// application's token from `logins` (also through `dav_home`).
    pub fn client(
        &self,
        logins: &std::sync::Arc<crate::imap::connect::Servers>,
        address: &str,
        target: &str,
    ) -> Result<client::Dav, DavError> {
        let e = &self.endpoint;
        let dav = e.dav.as_ref().expect("a DAV side has a dav_url");
        let base = format!("{}/", dav.url);
        let login = match e.auth {
            Auth::Password => crate::config::expand(&e.login, address, target),
            Auth::Master | Auth::Authzid => e.master_user.clone().unwrap_or_default(),
            Auth::OAuth2 => return self.pool.bearer_client(e.side, &base, logins.clone()),
        };
        let password = crate::imap::connect::password(e, &login)
            .map_err(|err| DavError::Secret(err.to_string()))?;
        self.pool.client(e.side, &base, &login, &password)
    }
}
