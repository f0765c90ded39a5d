//! [`TokenSource`]: one side's access token, fetched once and shared by every
//! worker of the run.
//!
//! The token is kept until 60 s before its `expires_in`, so no login presents
//! one that expires on the way. A login the server refuses hands its token
//! back with [`TokenSource::renew`]: the first worker to do so drops it and
//! fetches one new token, the others get that one — one fetch, not one per
//! worker.

use super::endpoint::{Attempt, TokenEndpoint};
use super::{OAuth2, OAuthError, Secret, SecretFileError};
use crate::config::{Endpoint, Side};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long before `expires_in` a token stops being handed out.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The lifetime assumed when the endpoint gives none (RFC 6749 §5.1 makes
/// `expires_in` only RECOMMENDED; Microsoft and Google issue 3600 s).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Pauses before the retries of a token request that failed for a reason that
/// may pass (5xx, 429, unreachable).
const RETRY_AFTER: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// A token, as handed to one login.
#[derive(Debug, Clone)]
pub struct Token {
    secret: Arc<Secret>,
    /// Which fetch it came from (to tell a refused token from its successor).
    generation: u64,
    /// When it stops being handed out.
    good_until: Instant,
}

impl Token {
    /// The bearer token, for the wire only.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }

    /// Whether it may still be handed out at `now`.
    fn fresh(&self, now: Instant) -> bool {
        now < self.good_until
    }
}

/// When a token granted at `granted` with `expires_in` stops being handed out.
fn good_until(granted: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
    granted + lifetime.saturating_sub(EXPIRY_MARGIN)
}

/// One side's token for the whole run.
pub struct TokenSource {
    side: Side,
    settings: OAuth2,
    endpoint: TokenEndpoint,
    /// The current token; the lock is held across a fetch so concurrent
    /// logins wait for it instead of fetching too.
    current: tokio::sync::Mutex<Option<Token>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("side", &self.side)
            .field("token_url", &self.settings.token_url)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// The source for `endpoint` (which must be `auth = "oauth2"`); `None` for
    /// the other login styles.
    pub fn for_endpoint(
        endpoint: &Endpoint,
        insecure: bool,
    ) -> Result<Option<TokenSource>, OAuthError> {
        let Some(settings) = &endpoint.oauth2 else {
            return Ok(None);
        };
        let token_endpoint =
            TokenEndpoint::new(endpoint.side, settings, endpoint.ca.as_deref(), insecure)?;
        Ok(Some(TokenSource {
            side: endpoint.side,
            settings: settings.clone(),
            endpoint: token_endpoint,
            current: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }))
    }

    /// The SASL mechanism and settings of this side.
    pub fn settings(&self) -> &OAuth2 {
        &self.settings
    }

    /// A token that is good for at least another 60 s: the cached one, or a
    /// new one.
    pub async fn get(&self) -> Result<Token, OAuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.fresh(Instant::now())) {
            return Ok(token.clone());
        }
        let token = self.fetch().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// A login refused `refused`: drop it (unless another worker already
    /// replaced it) and return the token to try once more.
    pub async fn renew(&self, refused: &Token) -> Result<Token, OAuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            if token.generation != refused.generation && token.fresh(Instant::now()) {
                return Ok(token.clone());
            }
        }
        *current = None;
        let token = self.fetch().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// How many tokens were requested so far (each retry counts).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Requests a token, retrying what may pass.
    async fn fetch(&self) -> Result<Token, OAuthError> {
        // Read each time: a rotated secret is picked up without a restart.
        let secret = self.secret()?;
        let mut pauses = RETRY_AFTER.iter();
        loop {
            let generation = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
            let started = Instant::now();
            match self.endpoint.request(&secret).await {
                Ok(granted) => {
                    tracing::info!(
                        "{}: OAuth2 token from {} (expires in {} s)",
                        self.side,
                        self.settings.token_url,
                        granted
                            .expires_in
                            .map_or_else(|| "?".to_string(), |s| s.to_string())
                    );
                    return Ok(Token {
                        secret: Arc::new(granted.token),
                        generation,
                        good_until: good_until(started, granted.expires_in),
                    });
                }
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(why)) => match pauses.next() {
                    Some(pause) => {
                        tracing::warn!(
                            "{}: token endpoint {}: {why}; again in {} s",
                            self.side,
                            self.settings.token_url,
                            pause.as_secs()
                        );
                        tokio::time::sleep(*pause).await;
                    }
                    None => return Err(self.endpoint.unavailable(why)),
                },
            }
        }
    }

    /// The client secret: the first non-empty line of `client_secret_file`.
    fn secret(&self) -> Result<Secret, OAuthError> {
        let path = &self.settings.client_secret_file;
        let fail = |what: String| OAuthError::Secret {
            side: self.side,
            why: SecretFileError {
                path: path.display().to_string(),
                what,
            },
        };
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read: {e}")))?,
        );
        let line = text.lines().map(str::trim).find(|l| !l.is_empty());
        match line {
            Some(l) => Ok(Secret::new(l.to_string())),
            None => Err(fail(
                "is empty; put the client secret on its first line".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_handed_out_until_a_minute_before_it_expires() {
        let t0 = Instant::now();
        let token = Token {
            secret: Arc::new(Secret::new("t".into())),
            generation: 1,
            good_until: good_until(t0, Some(3600)),
        };
        assert!(token.fresh(t0 + Duration::from_secs(3539)));
        assert!(!token.fresh(t0 + Duration::from_secs(3540)));
        // A lifetime under a minute is never reused.
        assert_eq!(good_until(t0, Some(30)), t0);
        assert_eq!(good_until(t0, None), t0 + Duration::from_secs(3540));
    }
}
