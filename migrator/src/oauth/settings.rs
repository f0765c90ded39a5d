//! The OAuth2 keys of a `[source]` / `[target]` section (DESIGN.md, migrator.toml):
//! `sasl`, `token_url`, `client_id`, `client_secret_file`, `scope`,
//! `client_auth`. Read by [`crate::config`] with the same spanned reader, so
//! every mistake is `FILE:LINE: key: what; the fix`.

use relay::config::reader::{Diagnostics, Section};
use std::path::{Path, PathBuf};

/// The keys only `auth = "oauth2"` takes.
pub const KEYS: &[&str] = &[
    "sasl",
    "token_url",
    "client_id",
    "client_secret_file",
    "scope",
    "client_auth",
];

/// The SASL mechanism that carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sasl {
    /// Google's and Microsoft's `XOAUTH2`.
    XOAuth2,
    /// RFC 7628 `OAUTHBEARER`.
    OAuthBearer,
}

impl Sasl {
    /// The mechanism's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Sasl::XOAuth2 => "XOAUTH2",
            Sasl::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (the default; RFC 6749
    /// says servers MUST support it).
    Basic,
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    Post,
}

/// OAuth2 settings of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// The SASL mechanism.
    pub sasl: Sasl,
    /// The token endpoint, as written (https://, or http:// with `allow_insecure`).
    pub token_url: String,
    /// The application's client id.
    pub client_id: String,
    /// The file holding the client secret (its first line).
    pub client_secret_file: PathBuf,
    /// The scope asked for (`https://outlook.office365.com/.default`).
    pub scope: String,
    /// Basic or post.
    pub client_auth: ClientAuth,
}

/// Reads the OAuth2 keys of `t` for `auth = "oauth2"`; `None` after reporting
/// what is wrong. The master keys are errors here (there is no master user).
pub fn read(d: &mut Diagnostics, t: &Section, base: &Path) -> Option<OAuth2> {
    for key in ["master_user", "password_file"] {
        if let Some(value) = t.string(d, key) {
            d.error(
                Some(&value.span()),
                &t.key(key),
                format!(
                    "not used with auth = \"oauth2\" (the token comes from token_url); remove {key}, \
                     or use auth = \"master\" / \"authzid\""
                ),
            );
        }
    }
    let sasl = t
        .choice(
            d,
            "sasl",
            &[
                ("xoauth2", Sasl::XOAuth2),
                ("oauthbearer", Sasl::OAuthBearer),
            ],
        )
        .map(|s| s.into_inner());
    let sasl = match sasl {
        Some(s) => Some(s),
        None if t.has("sasl") => None,
        None => Some(Sasl::XOAuth2),
    };
    let token_url = t.required_string(
        d,
        "token_url",
        "\"https://login.microsoftonline.com/TENANT/oauth2/v2.0/token\"",
    );
    let token_url = token_url.and_then(|url| match check_token_url(url.get_ref()) {
        Ok(()) => Some(url.into_inner()),
        Err(why) => {
            d.error(Some(&url.span()), &t.key("token_url"), why);
            None
        }
    });
    let client_id = non_empty(
        d,
        t,
        "client_id",
        "\"00000000-0000-0000-0000-000000000000\"",
    );
    let scope = non_empty(d, t, "scope", "\"https://outlook.office365.com/.default\"");
    let client_secret_file = match t.path(d, "client_secret_file", base) {
        Some(p) => Some(p.into_inner()),
        None if t.has("client_secret_file") => None,
        None => {
            t.missing(d, "client_secret_file", "\"secrets/target.client-secret\"");
            None
        }
    };
    let client_auth = t
        .choice(
            d,
            "client_auth",
            &[("basic", ClientAuth::Basic), ("post", ClientAuth::Post)],
        )
        .map(|c| c.into_inner());
    let client_auth = match client_auth {
        Some(c) => Some(c),
        None if t.has("client_auth") => None,
        None => Some(ClientAuth::Basic),
    };
    Some(OAuth2 {
        sasl: sasl?,
        token_url: token_url?,
        client_id: client_id?,
        client_secret_file: client_secret_file?,
        scope: scope?,
        client_auth: client_auth?,
    })
}

/// Reports each OAuth2 key in `t` when the side's `auth` is not `oauth2`.
pub fn refuse_without_oauth2(d: &mut Diagnostics, t: &Section, auth: &str) {
    for key in KEYS {
        if let Some(value) = t.string(d, key) {
            d.error(
                Some(&value.span()),
                &t.key(key),
                format!(
                    "only used with auth = \"oauth2\" (this side has auth = \"{auth}\"); \
                     remove {key}, or set auth = \"oauth2\""
                ),
            );
        }
    }
}

fn non_empty(d: &mut Diagnostics, t: &Section, key: &str, example: &str) -> Option<String> {
    let value = t.required_string(d, key, example)?;
    if value.get_ref().trim().is_empty() {
        d.error(
            Some(&value.span()),
            &t.key(key),
            format!("is empty; write {key} = {example}"),
        );
        return None;
    }
    Some(value.into_inner())
}

/// An `https://HOST/...` (or `http://`) URL with a host: what the token request
/// can be sent to. Whether `http://` is allowed is decided at run time, where
/// `--allow-insecure` is known.
pub fn check_token_url(url: &str) -> Result<(), String> {
    const VALID: &str = "write the token endpoint as https://HOST/PATH";
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e}); {VALID}"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(format!("{url:?} is not an http(s) URL; {VALID}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host; {VALID}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls() {
        assert!(check_token_url("https://login.example/t/oauth2/v2.0/token").is_ok());
        assert!(check_token_url("http://127.0.0.1:8080/token").is_ok());
        assert!(check_token_url("ftp://x/token").is_err());
        assert!(check_token_url("login.example/token").is_err());
        assert!(check_token_url("https:///token").is_err());
    }
}
