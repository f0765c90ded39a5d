//! Envelope addresses as the parser hands them over, made safe to route and to send on.
//!
//! smtp-proto removes the quotes of a quoted local part (`"a b"@x` arrives as
//! `a b@x`) and lets any octet but CR and LF through inside the quotes. RFC 5321
//! §4.1.2 allows only printable ASCII in a Quoted-string (`qtextSMTP`,
//! `quoted-pairSMTP`; RFC 6531 §3.3 adds UTF-8), so a control character (NUL, ESC, …)
//! is refused here: it would otherwise be logged, spooled and written into the next
//! hop's RCPT command. A local part that is not a Dot-string gets its quotes back, so
//! the router, the contacts table and the next hop see the address the client meant.

use std::borrow::Cow;

/// Why an envelope address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// A control character (C0, DEL or C1) anywhere in the address.
    #[error("control character in address")]
    Control,
    /// The domain is neither a (possibly internationalised) domain name nor an
    /// address literal (RFC 5321 §4.1.2 `Domain` / `address-literal`).
    #[error("invalid domain")]
    Domain,
}

/// Checks an address from MAIL/RCPT and puts back the quotes of its local part
/// when it needs them. `""` (null sender, bare postmaster) is returned unchanged.
pub fn envelope_address(address: &str) -> Result<Cow<'_, str>, AddressError> {
    if address.chars().any(char::is_control) {
        return Err(AddressError::Control);
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Ok(Cow::Borrowed(address));
    };
    if !is_domain(domain) {
        return Err(AddressError::Domain);
    }
    if is_dot_string(local) {
        return Ok(Cow::Borrowed(address));
    }
    let mut quoted = String::with_capacity(address.len() + 4);
    quoted.push('"');
    for c in local.chars() {
        // RFC 5321 §4.1.2 quoted-pairSMTP: backslash and quote are escaped.
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push_str("\"@");
    quoted.push_str(domain);
    Ok(Cow::Owned(quoted))
}

/// RFC 5321 §4.1.2 `Dot-string` (atoms of `atext`, RFC 6531 §3.3 adds UTF-8).
fn is_dot_string(local: &str) -> bool {
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom.chars().all(|c| {
                    c.is_ascii_alphanumeric() || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~".contains(c)
                })
        })
}

/// A domain name (letters, digits, hyphens, dots, or UTF-8 U-labels) or an address
/// literal in brackets. Emptiness and dots are the router's business.
fn is_domain(domain: &str) -> bool {
    if let Some(literal) = domain.strip_prefix('[') {
        return literal.strip_suffix(']').is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'[' | b']' | b'\\'))
        });
    }
    domain
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.') || !c.is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_pass_unchanged() {
        for a in [
            "",
            "user@corp.example",
            "first.last+tag@corp.example.",
            "user%other@corp.example",
            "other!user@corp.example",
            "jürgen@bücher.example",
            "user@[192.0.2.1]",
            "user@[IPv6:::1]",
        ] {
            assert_eq!(envelope_address(a), Ok(Cow::Borrowed(a)), "{a}");
        }
    }

    #[test]
    fn quoted_local_parts_get_their_quotes_back() {
        // What smtp-proto hands over for `"a b"@…`, `"a\"b"@…`, `"user@other"@…`.
        assert_eq!(
            envelope_address("a b@corp.example").unwrap(),
            "\"a b\"@corp.example"
        );
        assert_eq!(
            envelope_address("a\"b\\c@corp.example").unwrap(),
            "\"a\\\"b\\\\c\"@corp.example"
        );
        assert_eq!(
            envelope_address("user@elsewhere.example@corp.example").unwrap(),
            "\"user@elsewhere.example\"@corp.example"
        );
        assert_eq!(
            envelope_address(".a..b.@corp.example").unwrap(),
            "\".a..b.\"@corp.example"
        );
    }

    #[test]
    fn control_characters_and_bad_domains_are_refused() {
        for a in [
            "a\0b@corp.example",
            "a\x1b[31mb@corp.example",
            "a\x7f@corp.example",
            "a@corp\u{85}.example",
        ] {
            assert_eq!(envelope_address(a), Err(AddressError::Control), "{a:?}");
        }
        for a in [
            "user@x y.example",
            "user@\"corp\".example",
            "user@[1.2.3.4",
            "user@[]",
            "user@[a]b]",
        ] {
            assert_eq!(envelope_address(a), Err(AddressError::Domain), "{a:?}");
        }
    }
}
