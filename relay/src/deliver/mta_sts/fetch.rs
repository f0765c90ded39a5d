//! The policy fetch of RFC 8461 §3.3: `GET /.well-known/mta-sts.txt` from
//! `mta-sts.<domain>` over HTTPS on port 443, the certificate verified for that
//! name (webpki roots plus the route's `ca`), `200` only (no redirects), a
//! `text/plain` body of at most 64 KiB, the whole exchange within 10 s.
//!
//! The HTTP/1.1 exchange is hyper's; the connection is made here (the address
//! from `[dns] nameservers`, TLS with tokio-rustls and the route's anchors), so
//! the fetch sees the same DNS and trust as delivery does.

use crate::deliver::mx::Resolver;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// RFC 8461 §3.3: senders may limit the policy size; 64 KiB is its suggestion.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// DESIGN.md: the fetch is bounded to 10 s.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches the policy body of `domain`, or says why not.
pub async fn fetch(
    resolver: &Resolver,
    domain: &str,
    roots: Arc<RootCertStore>,
    port: u16,
) -> Result<String, String> {
    match tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(resolver, domain, roots, port)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no policy from mta-sts.{domain} within {} s",
            FETCH_TIMEOUT.as_secs()
        )),
    }
}

async fn fetch_inner(
    resolver: &Resolver,
    domain: &str,
    roots: Arc<RootCertStore>,
    port: u16,
) -> Result<String, String> {
    let host = format!("mta-sts.{domain}");
    let ips = resolver
        .addresses(&host)
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let mut last = format!("{host}: no address");
    for ip in ips {
        match get(SocketAddr::new(ip, port), &host, roots.clone()).await {
            Ok(body) => return Ok(body),
            Err(e) => last = format!("https://{host}/ ({ip}): {e}"),
        }
    }
    Err(last)
}

async fn get(addr: SocketAddr, host: &str, roots: Arc<RootCertStore>) -> Result<String, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "coexist-relay")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };
    let result = read_policy(response).await;
    driver.abort();
    result
}

async fn read_policy(response: hyper::Response<hyper::body::Incoming>) -> Result<String, String> {
    // RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed"; only 200 is a policy.
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("HTTP status {}", response.status()));
    }
    let media = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // RFC 8461 §3.2: the policy is served as text/plain.
    if !media
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
    {
        return Err(format!("Content-Type {media:?}, not text/plain"));
    }
    let body = Limited::new(response.into_body(), MAX_POLICY_BYTES)
        .collect()
        .await
        .map_err(|e| format!("body: {e} (limit {MAX_POLICY_BYTES} bytes)"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the policy is not UTF-8".to_string())
}
