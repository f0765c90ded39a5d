//! The HTTP client under libdav: hyper 1 over hyper-rustls with the same
//! rustls configuration (ring, webpki roots plus the side's `ca`, always
//! verified unless insecure connections are allowed) as the IMAP sessions, and
//! the side's credentials on every request (HTTP Basic; a bearer token once
//! OAuth2 lands).

use super::DavError;
use crate::config::{Endpoint, Side};
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use libdav::dav::WebDavClient;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long one DAV request may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// One side's connection pool, shared by every user of the run.
#[derive(Clone)]
pub struct Pool {
    http: Client<Https, String>,
}

impl Pool {
    /// The pool for `endpoint`'s DAV server. `http://` is refused unless
    /// `insecure`, before any credential is sent (as `imap://` without STARTTLS).
    pub fn new(endpoint: &Endpoint, insecure: bool) -> Result<Pool, DavError> {
        let dav = endpoint
            .dav
            .as_ref()
            .ok_or_else(|| DavError::Config(format!("[{}] has no dav_url", endpoint.side)))?;
        if !dav.tls && !insecure {
            return Err(DavError::Insecure(format!(
                "{} {}: plain HTTP would send the password in the clear; use https:// or allow_insecure",
                endpoint.side, dav.url
            )));
        }
        let tls = crate::imap::tls::client_config(endpoint.ca.as_deref(), insecure)
            .map_err(|e| DavError::Tls(format!("{} {}: {e}", endpoint.side, dav.url)))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Pool { http })
    }

    /// A WebDAV client on this pool that logs in as `login` with `password`.
    pub fn client(
        &self,
        side: Side,
        base: &str,
        login: &str,
        password: &str,
    ) -> Result<WebDavClient<Authorized>, DavError> {
        let base = base
            .parse::<http::Uri>()
            .map_err(|e| DavError::Config(format!("{side} dav_url {base:?}: {e}")))?;
        let mut header = basic(login, password).map_err(|_| {
            DavError::Config(format!("{side} {login}: not usable in an HTTP header"))
        })?;
        // Kept out of any debug output hyper or libdav might produce.
        header.set_sensitive(true);
        Ok(WebDavClient::new(
            base,
            Authorized {
                inner: self.http.clone(),
                authorization: header,
            },
        ))
    }
}

/// `Basic base64(login:password)` (RFC 7617).
fn basic(login: &str, password: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}"))
}

/// The pool's client with this login's `Authorization` on every request.
#[derive(Clone)]
pub struct Authorized {
    inner: Client<Https, String>,
    authorization: HeaderValue,
}

impl tower_service::Service<Request<String>> for Authorized {
    type Response = Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<String>) -> Self::Future {
        request
            .headers_mut()
            .insert(AUTHORIZATION, self.authorization.clone());
        self.inner.call(request)
    }
}

/// The WebDAV client of one side for one user.
pub type Dav = WebDavClient<Authorized>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_rfc7617() {
        // RFC 7617 §2's example.
        assert_eq!(
            basic("Aladdin", "open sesame").unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
