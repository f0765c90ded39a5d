//! The token request (RFC 6749 §4.4.2) and what its answers mean (§5.1, §5.2).
//!
//! HTTPS over hyper with rustls (ring), the certificate verified against the
//! webpki roots plus the side's `ca`, exactly as the IMAP connections are;
//! `http://` only when insecure connections are allowed.

use super::settings::{ClientAuth, OAuth2};
use super::{OAuthError, Secret};
use crate::config::Side;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use std::path::Path;
use std::time::Duration;

/// How long one token request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest token answer read (a JWT with many claims is a few KiB).
const MAX_ANSWER: usize = 256 * 1024;

/// One side's token endpoint.
pub struct TokenEndpoint {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: http::Uri,
    side: Side,
    settings: OAuth2,
}

/// A token the endpoint granted.
#[derive(Debug)]
pub struct Granted {
    /// The access token.
    pub token: Secret,
    /// `expires_in`, seconds, when given.
    pub expires_in: Option<u64>,
}

/// One attempt's failure: worth retrying, or final.
#[derive(Debug)]
pub enum Attempt {
    /// 5xx, 429, a connection or timeout failure: try again after a pause.
    Retry(String),
    /// Anything else.
    Final(OAuthError),
}

impl TokenEndpoint {
    /// The endpoint of `settings` for `side`, trusting `ca` besides the webpki
    /// roots. `http://` is refused unless `insecure`.
    pub fn new(
        side: Side,
        settings: &OAuth2,
        ca: Option<&Path>,
        insecure: bool,
    ) -> Result<TokenEndpoint, OAuthError> {
        let uri: http::Uri = settings
            .token_url
            .parse()
            .map_err(|e| OAuthError::Protocol {
                side,
                token_url: settings.token_url.clone(),
                why: format!("not a URL: {e}"),
            })?;
        if uri.scheme_str() != Some("https") && !insecure {
            return Err(OAuthError::Insecure {
                side,
                token_url: settings.token_url.clone(),
            });
        }
        let tls =
            crate::imap::tls::client_config(ca, insecure).map_err(|e| OAuthError::Unavailable {
                side,
                token_url: settings.token_url.clone(),
                why: e.to_string(),
            })?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*tls).clone());
        let connector = if insecure {
            builder.https_or_http().enable_http1().build()
        } else {
            builder.https_only().enable_http1().build()
        };
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(TokenEndpoint {
            client,
            uri,
            side,
            settings: settings.clone(),
        })
    }

    /// One client-credentials request with `secret`.
    pub async fn request(&self, secret: &Secret) -> Result<Granted, Attempt> {
        let request = self.build(secret).map_err(Attempt::Final)?;
        let answer = async {
            let response = self.client.request(request).await.map_err(|e| {
                // The connector's error chain says what failed (DNS, TCP, TLS).
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(&format!(": {s}"));
                    source = s.source();
                }
                why
            })?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Err(_) => {
                return Err(Attempt::Retry(format!(
                    "no answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                )))
            }
            Ok(Err(why)) => {
                if why.to_ascii_lowercase().contains("certificate") {
                    return Err(Attempt::Final(self.unavailable(format!("TLS: {why}"))));
                }
                return Err(Attempt::Retry(why));
            }
            Ok(Ok(answer)) => answer,
        };
        self.judge(status, &body, secret)
    }

    /// The POST of RFC 6749 §4.4.2, the client authenticated by HTTP Basic
    /// (§2.3.1: id and secret form-encoded first) or in the body.
    fn build(&self, secret: &Secret) -> Result<http::Request<Full<Bytes>>, OAuthError> {
        let s = &self.settings;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        form.append_pair("scope", &s.scope);
        let mut request = http::Request::post(self.uri.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("coexist-migrator/", env!("CARGO_PKG_VERSION")),
            );
        match s.client_auth {
            ClientAuth::Basic => {
                let encode =
                    |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", encode(&s.client_id), encode(secret.expose()));
                let value = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                );
                let mut value = http::HeaderValue::try_from(value)
                    .map_err(|e| self.protocol(format!("Authorization header: {e}")))?;
                value.set_sensitive(true);
                request = request.header(http::header::AUTHORIZATION, value);
            }
            ClientAuth::Post => {
                form.append_pair("client_id", &s.client_id);
                form.append_pair("client_secret", secret.expose());
            }
        }
        let body = zeroize::Zeroizing::new(form.finish());
        request
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| self.protocol(format!("request: {e}")))
    }

    /// What an answer means.
    fn judge(
        &self,
        status: http::StatusCode,
        body: &[u8],
        secret: &Secret,
    ) -> Result<Granted, Attempt> {
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(Attempt::Retry(format!("HTTP {status}")));
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let kind = field("token_type").unwrap_or_default();
        if !status.is_success() {
            // RFC 6749 §5.2: 400 or 401 with `error`; any other 4xx (a wrong
            // path, a proxy's refusal) is as much the configuration's fault.
            let error = field("error").unwrap_or_else(|| format!("HTTP {status}"));
            let description = field("error_description").map(|d| scrub(&d, secret));
            return Err(Attempt::Final(OAuthError::Refused {
                side: self.side,
                token_url: self.settings.token_url.clone(),
                client_id: self.settings.client_id.clone(),
                error: scrub(&error, secret),
                description,
            }));
        }
        let Some(json) = json else {
            return Err(Attempt::Final(
                self.protocol("the answer is not JSON".into()),
            ));
        };
        let token = match json.get("access_token").and_then(|v| v.as_str()) {
            Some(t) if !t.is_empty() => Secret::new(t.to_string()),
            _ => return Err(Attempt::Final(self.protocol("no access_token".into()))),
        };
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(Attempt::Final(
                self.protocol(format!("token_type {kind:?}, expected Bearer")),
            ));
        }
        // A number per RFC 6749 §5.1; some servers send a string.
        let expires_in = match json.get("expires_in") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(Granted { token, expires_in })
    }

    fn protocol(&self, why: String) -> OAuthError {
        OAuthError::Protocol {
            side: self.side,
            token_url: self.settings.token_url.clone(),
            why,
        }
    }

    /// The error for a failure that retries did not cure.
    pub fn unavailable(&self, why: String) -> OAuthError {
        OAuthError::Unavailable {
            side: self.side,
            token_url: self.settings.token_url.clone(),
            why,
        }
    }
}

/// `text` with any occurrence of the secret replaced: a server that echoes
/// what it was sent must not put the secret into our messages.
fn scrub(text: &str, secret: &Secret) -> String {
    if secret.expose().len() < 4 {
        return text.to_string();
    }
    text.replace(secret.expose(), super::secret::REDACTED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn endpoint() -> TokenEndpoint {
        let settings = OAuth2 {
            sasl: super::super::Sasl::XOAuth2,
            token_url: "https://login.example/token".into(),
            client_id: "app-1".into(),
            client_secret_file: PathBuf::from("secret"),
            scope: "https://imap.example/.default".into(),
            client_auth: ClientAuth::Basic,
        };
        TokenEndpoint::new(Side::Target, &settings, None, false).unwrap()
    }

    fn secret() -> Secret {
        Secret::new("s3cr3t-value".into())
    }

    #[test]
    fn a_bearer_token_with_its_lifetime_is_granted() {
        let e = endpoint();
        let g = e
            .judge(
                http::StatusCode::OK,
                br#"{"access_token":"tok","token_type":"Bearer","expires_in":3599}"#,
                &secret(),
            )
            .unwrap();
        assert_eq!((g.token.expose(), g.expires_in), ("tok", Some(3599)));
        let g = e
            .judge(
                http::StatusCode::OK,
                br#"{"access_token":"tok","token_type":"bearer","expires_in":"60"}"#,
                &secret(),
            )
            .unwrap();
        assert_eq!(g.expires_in, Some(60));
    }

    #[test]
    fn invalid_client_is_a_configuration_error_without_the_secret() {
        let e = endpoint();
        let Err(Attempt::Final(err)) = e.judge(
            http::StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"bad secret s3cr3t-value"}"#,
            &secret(),
        ) else {
            panic!("not final");
        };
        assert!(err.is_config());
        let text = err.to_string();
        assert!(
            text.contains("refused client_id \"app-1\": invalid_client"),
            "{text}"
        );
        assert!(text.contains("https://login.example/token"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn server_errors_are_retried_and_odd_answers_are_not_tokens() {
        let e = endpoint();
        assert!(matches!(
            e.judge(http::StatusCode::SERVICE_UNAVAILABLE, b"", &secret()),
            Err(Attempt::Retry(_))
        ));
        assert!(matches!(
            e.judge(http::StatusCode::TOO_MANY_REQUESTS, b"", &secret()),
            Err(Attempt::Retry(_))
        ));
        assert!(matches!(
            e.judge(
                http::StatusCode::OK,
                br#"{"token_type":"Bearer"}"#,
                &secret()
            ),
            Err(Attempt::Final(OAuthError::Protocol { .. }))
        ));
        assert!(matches!(
            e.judge(
                http::StatusCode::OK,
                br#"{"access_token":"t","token_type":"mac"}"#,
                &secret()
            ),
            Err(Attempt::Final(OAuthError::Protocol { .. }))
        ));
    }

    #[test]
    fn http_is_refused_unless_insecure() {
        let mut settings = endpoint().settings;
        settings.token_url = "http://127.0.0.1:1/token".into();
        assert!(matches!(
            TokenEndpoint::new(Side::Source, &settings, None, false),
            Err(OAuthError::Insecure { .. })
        ));
        assert!(TokenEndpoint::new(Side::Source, &settings, None, true).is_ok());
    }
}
