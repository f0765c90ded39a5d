//! The HTTP client under libdav: hyper 1 over hyper-rustls with the same
//! rustls configuration (ring, webpki roots plus the side's `ca`, always
//! verified unless insecure connections are allowed) as the IMAP sessions, and
//! the side's credentials on every request: HTTP Basic, or with
//! `auth = "oauth2"` the side's OAuth2 token as `Authorization: Bearer` — the
//! same cached token the IMAP logins present, fetched again once when the
//! server answers 401 (expired or revoked mid-run). A read (PROPFIND, REPORT,
//! GET) whose answer is lost with its connection is sent again.

use super::DavError;
use crate::config::{Endpoint, Side};
use crate::imap::connect::Servers as Logins;
use crate::oauth::OAuthError;
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use libdav::dav::WebDavClient;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
        let mut header = basic(login, password).map_err(|_| {
            DavError::Config(format!("{side} {login}: not usable in an HTTP header"))
        })?;
        // Kept out of any debug output hyper or libdav might produce.
        header.set_sensitive(true);
        self.with(side, base, Credentials::Basic(header))
    }

    /// A WebDAV client on this pool that presents `side`'s OAuth2 token from
    /// `logins` (the run's token cache, shared with the IMAP logins).
    pub fn bearer_client(
        &self,
        side: Side,
        base: &str,
        logins: Arc<Logins>,
    ) -> Result<WebDavClient<Authorized>, DavError> {
        if logins.tokens(side).is_none() {
            return Err(DavError::Config(format!(
                "{side}: auth = \"oauth2\" but no token source"
            )));
        }
        self.with(side, base, Credentials::Bearer { logins, side })
    }

    /// One OPTIONS on `url` with no credentials (`check`): proves TCP, TLS
    /// (the certificate verified unless insecure) and HTTP. Any answer will
    /// do, a 401 included; its status is returned.
    pub async fn reach(&self, side: Side, url: &str) -> Result<StatusCode, DavError> {
        let request = Request::builder()
            .method(http::Method::OPTIONS)
            .uri(url)
            .body(String::new())
            .map_err(|e| DavError::Config(format!("{side} dav_url {url:?}: {e}")))?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| {
                DavError::Transport(format!(
                    "{side} OPTIONS {url}: no answer in {}s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?;
        match answer {
            Ok(r) => Ok(r.status()),
            Err(e) => {
                let mut words = e.to_string();
                let mut tls = false;
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    words.push_str(&format!(": {s}"));
                    tls |= s
                        .downcast_ref::<std::io::Error>()
                        .and_then(|io| io.get_ref())
                        .is_some_and(|inner| inner.is::<rustls::Error>());
                    tls |= s.is::<rustls::Error>();
                    source = s.source();
                }
                // rustls' own words, where its error is wrapped out of reach.
                tls |= words.contains("peer certificate") || words.contains("handshake");
                let text = format!("{side} {url}: {words}");
                Err(if tls {
                    DavError::Tls(text)
                } else {
                    DavError::Transport(text)
                })
            }
        }
    }

    fn with(
        &self,
        side: Side,
        base: &str,
        credentials: Credentials,
    ) -> Result<WebDavClient<Authorized>, DavError> {
        let base = base
            .parse::<http::Uri>()
            .map_err(|e| DavError::Config(format!("{side} dav_url {base:?}: {e}")))?;
        Ok(WebDavClient::new(
            base,
            Authorized {
                inner: self.http.clone(),
                credentials,
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

/// What goes in `Authorization`.
#[derive(Clone)]
enum Credentials {
    /// HTTP Basic, fixed for the client's life.
    Basic(HeaderValue),
    /// The side's current OAuth2 token, asked for on every request (it is
    /// cached; a renewal by any worker, IMAP or DAV, is seen by all).
    Bearer { logins: Arc<Logins>, side: Side },
}

/// The pool's client with this login's `Authorization` on every request.
#[derive(Clone)]
pub struct Authorized {
    inner: Client<Https, String>,
    credentials: Credentials,
}

/// Why a request got no answer: the connection, or no token to present.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Connecting, TLS, or the exchange itself.
    #[error(transparent)]
    Http(#[from] hyper_util::client::legacy::Error),
    /// No OAuth2 token could be had.
    #[error(transparent)]
    Token(#[from] OAuthError),
    /// The token does not fit in an HTTP header.
    #[error("the OAuth2 token is not usable in an HTTP header")]
    Header,
}

type Answer = Result<Response<hyper::body::Incoming>, HttpError>;

impl tower_service::Service<Request<String>> for Authorized {
    type Response = Response<hyper::body::Incoming>;
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(HttpError::Http)
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        let (inner, credentials) = (self.inner.clone(), self.credentials.clone());
        Box::pin(async move {
            let mut request = request;
            let mut attempt = 0;
            loop {
                // A read can be sent again as it is; a write is retried by
                // its caller, who knows how to tell whether it landed.
                let again = (is_safe(request.method()) && attempt < READ_RETRIES)
                    .then(|| copy_of(&request));
                match send(&inner, &credentials, request).await {
                    Err(HttpError::Http(e)) if again.is_some() => {
                        let again = again.expect("checked");
                        attempt += 1;
                        let delay = Duration::from_secs(1 << attempt);
                        tracing::warn!(
                            "DAV {} {}: {e}; trying again in {delay:?}",
                            again.method(),
                            again.uri().path()
                        );
                        tokio::time::sleep(delay).await;
                        request = again;
                    }
                    answer => return answer,
                }
            }
        })
    }
}

/// How often a read that got no answer is sent again (after 2, 4, 8 s).
const READ_RETRIES: u32 = 3;

/// Methods that change nothing on the server (RFC 9110 §9.2.1; PROPFIND and
/// REPORT, RFC 4918 §9.1 and RFC 3253 §3.6), so a lost answer can be asked
/// for again.
fn is_safe(method: &http::Method) -> bool {
    matches!(
        method.as_str(),
        "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT"
    )
}

/// One exchange with the login's credentials.
async fn send(
    inner: &Client<Https, String>,
    credentials: &Credentials,
    mut request: Request<String>,
) -> Answer {
    match credentials {
        Credentials::Basic(header) => {
            request.headers_mut().insert(AUTHORIZATION, header.clone());
            Ok(inner.request(request).await?)
        }
        Credentials::Bearer { logins, side } => {
            with_bearer(inner.clone(), logins, *side, request).await
        }
    }
}

/// Sends `request` with the side's token; on 401 the token is handed back
/// (the token source fetches one new token for every worker) and the request
/// is sent once more with the new one. A second 401 is the answer.
async fn with_bearer(
    inner: Client<Https, String>,
    logins: &Logins,
    side: Side,
    request: Request<String>,
) -> Answer {
    let tokens = logins.tokens(side).expect("checked in bearer_client");
    let token = tokens.get().await?;
    let again = copy_of(&request);
    let answer = inner.request(bearer(request, token.expose())?).await?;
    if answer.status() != StatusCode::UNAUTHORIZED {
        return Ok(answer);
    }
    tracing::info!(
        "{side} DAV {} {}: 401 with the current token; getting a new one",
        again.method(),
        again.uri().path()
    );
    drop(answer);
    let token = tokens.renew(&token).await?;
    Ok(inner.request(bearer(again, token.expose())?).await?)
}

/// `request` with `Authorization: Bearer TOKEN` (RFC 6750 §2.1), marked
/// sensitive.
fn bearer(mut request: Request<String>, token: &str) -> Result<Request<String>, HttpError> {
    let mut header =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| HttpError::Header)?;
    header.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, header);
    Ok(request)
}

/// The same request again (method, URI, version, headers, body).
fn copy_of(request: &Request<String>) -> Request<String> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
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
