//! OAuth2 for the IMAP logins (and DAV, once it lands): what Microsoft 365 and
//! Google require today instead of passwords.
//!
//! The migrator is a confidential client with app-only access: it gets a token
//! with the client-credentials grant (RFC 6749 §4.4) from the side's
//! `token_url`, and each mailbox presents it with SASL XOAUTH2 or OAUTHBEARER
//! (RFC 7628) as the mailbox's login.
//! - [`settings`]: the config keys (`sasl`, `token_url`, `client_id`, ...).
//! - [`endpoint`]: the token request over hyper + rustls (certificates verified
//!   as for IMAP), and what its answers mean.
//! - [`token`]: [`TokenSource`], one per side and run: the cached token every
//!   worker shares, renewed 60 s before it expires or once after a refusal.
//! - [`sasl`]: the SASL initial responses and the server's error JSON.
//! - [`secret`]: [`Secret`], the redacting wrapper for client secrets and tokens.

pub mod endpoint;
pub mod sasl;
pub mod secret;
pub mod settings;
pub mod token;

pub use secret::Secret;
pub use settings::{ClientAuth, OAuth2, Sasl};
pub use token::{Token, TokenSource};

use crate::config::Side;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The endpoint refused the client itself (`invalid_client`,
    /// `unauthorized_client`, `invalid_scope`, ...): a configuration error.
    #[error(
        "{side}: the token endpoint {token_url} refused client_id {client_id:?}: {error}{}; \
         check client_id, client_secret_file and scope in [{side}] (and that the application \
         is granted IMAP access in the tenant)",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Refused {
        /// The side.
        side: Side,
        /// `token_url`.
        token_url: String,
        /// `client_id`.
        client_id: String,
        /// The RFC 6749 §5.2 `error` code, or the HTTP status.
        error: String,
        /// `error_description`, with any echo of the secret removed.
        description: Option<String>,
    },
    /// `client_secret_file` cannot be read or is empty: a configuration error.
    #[error("{side}: client_secret_file {why}")]
    Secret {
        /// The side.
        side: Side,
        /// What is wrong with the file (its path, never its content).
        #[source]
        why: SecretFileError,
    },
    /// `http://` token endpoint without `allow_insecure`: a configuration error.
    #[error("{side}: token_url {token_url} is not https; refusing to send the client secret in the clear (use https, or --allow-insecure / allow_insecure = true only on a trusted network)")]
    Insecure {
        /// The side.
        side: Side,
        /// `token_url`.
        token_url: String,
    },
    /// The endpoint did not answer usefully after the retries (5xx, 429,
    /// unreachable, timeout): the users that needed it fail (exit 1).
    #[error("{side}: the token endpoint {token_url} is unavailable: {why}")]
    Unavailable {
        /// The side.
        side: Side,
        /// `token_url`.
        token_url: String,
        /// The last failure.
        why: String,
    },
    /// A 200 answer without a usable bearer token.
    #[error("{side}: the token endpoint {token_url} answered without a usable token: {why}")]
    Protocol {
        /// The side.
        side: Side,
        /// `token_url`.
        token_url: String,
        /// What was wrong.
        why: String,
    },
}

/// What is wrong with `client_secret_file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what}")]
pub struct SecretFileError {
    /// The file.
    pub path: String,
    /// Why it is unusable.
    pub what: String,
}

impl OAuthError {
    /// The side whose token it was.
    pub fn side(&self) -> Side {
        match self {
            OAuthError::Refused { side, .. }
            | OAuthError::Secret { side, .. }
            | OAuthError::Insecure { side, .. }
            | OAuthError::Unavailable { side, .. }
            | OAuthError::Protocol { side, .. } => *side,
        }
    }

    /// Whether the configuration is at fault (exit 2): no retry or other user
    /// will do better.
    pub fn is_config(&self) -> bool {
        match self {
            OAuthError::Refused { .. }
            | OAuthError::Secret { .. }
            | OAuthError::Insecure { .. } => true,
            OAuthError::Unavailable { .. } | OAuthError::Protocol { .. } => false,
        }
    }
}
