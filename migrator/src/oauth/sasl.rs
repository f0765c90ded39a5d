//! The SASL messages that carry a bearer token, and the server's answer when
//! it refuses one. No I/O.

use super::Sasl;
use zeroize::Zeroizing;

/// The client's initial response for `mechanism`: the mailbox `user`, the
/// token, and for OAUTHBEARER the server's `host` and `port` (RFC 7628 §3.1).
pub fn initial_response(
    mechanism: Sasl,
    user: &str,
    host: &str,
    port: u16,
    token: &str,
) -> Zeroizing<Vec<u8>> {
    let text = match mechanism {
        // user=USER ^A auth=Bearer TOKEN ^A ^A
        Sasl::XOAuth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
        // gs2-header "n,a=USER," then key/value pairs, each ended by ^A.
        Sasl::OAuthBearer => format!(
            "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01",
            saslname(user)
        ),
    };
    Zeroizing::new(text.into_bytes())
}

/// What the client sends after the server's error challenge, so the server
/// can end the exchange with its tagged NO: RFC 7628 §3.2.3 asks for a
/// single ^A; XOAUTH2 takes an empty response.
pub fn after_error(mechanism: Sasl) -> Vec<u8> {
    match mechanism {
        Sasl::OAuthBearer => vec![0x01],
        Sasl::XOAuth2 => Vec::new(),
    }
}

/// RFC 5801 §4 saslname: `,` and `=` escaped.
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The server's error challenge (already base64-decoded: a JSON object such
/// as `{"status":"401","schemes":"bearer","scope":"mail"}`), as words for the
/// report. Unexpected bytes are shown as text, bounded.
pub fn server_error(challenge: &[u8]) -> String {
    let text = String::from_utf8_lossy(challenge);
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(challenge) {
        Ok(fields) => fields
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k}={s}"),
                None => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => text.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoauth2_and_oauthbearer_initial_responses() {
        assert_eq!(
            &initial_response(Sasl::XOAuth2, "a@t.example", "h", 993, "TOK")[..],
            b"user=a@t.example\x01auth=Bearer TOK\x01\x01"
        );
        assert_eq!(
            &initial_response(Sasl::OAuthBearer, "a,b=c@t.example", "imap.t.example", 993, "TOK")
                [..],
            b"n,a=a=2Cb=3Dc@t.example,\x01host=imap.t.example\x01port=993\x01auth=Bearer TOK\x01\x01"
        );
    }

    #[test]
    fn the_servers_error_json_is_read_out() {
        let words = server_error(br#"{"status":"401","schemes":"bearer","scope":"mail"}"#);
        for part in ["status=401", "schemes=bearer", "scope=mail"] {
            assert!(words.contains(part), "{words}");
        }
        assert_eq!(server_error(b"not json"), "not json");
    }
}
