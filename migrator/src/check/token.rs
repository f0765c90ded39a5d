//! An OAuth2 side's token endpoint: a token for the configured client, or the
//! failure with what to change.

use crate::config::Side;
use crate::imap::connect::Servers;
use crate::oauth::OAuthError;
use relay::doctor::Check;

/// One line per side with `auth = "oauth2"`: a token fetched, or why not.
pub(super) async fn token_checks(servers: &Servers) -> Vec<Check> {
    let mut checks = Vec::new();
    for side in [Side::Source, Side::Target] {
        if let Some(tokens) = servers.tokens(side) {
            checks.push(match tokens.get().await {
                Ok(_) => Check::ok(
                    format!("{side} token endpoint"),
                    format!(
                        "{}: a token for client_id {:?}",
                        tokens.settings().token_url,
                        tokens.settings().client_id
                    ),
                ),
                Err(e) => token_failure(&e),
            });
        }
    }
    checks
}

pub(super) fn token_fix(e: &OAuthError) -> String {
    match e {
        OAuthError::Refused { .. } => {
            "check client_id, client_secret_file and scope (and the application's permissions in the tenant)".into()
        }
        OAuthError::Secret { .. } => "put the client secret on the first line of client_secret_file (mode 0600)".into(),
        OAuthError::Insecure { .. } => "use an https:// token_url".into(),
        OAuthError::Unavailable { .. } => "check token_url and that it is reachable from this machine".into(),
        OAuthError::Protocol { .. } => "check token_url: it must be the OAuth2 token endpoint".into(),
    }
}

pub(super) fn token_failure(e: &OAuthError) -> Check {
    Check::fail(
        format!("{} token endpoint", e.side()),
        e.to_string(),
        token_fix(e),
    )
}
