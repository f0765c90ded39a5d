//! Address syntax, in one place.
//!
//! Two forms reach the relay, with different rules:
//! - **envelope paths** from MAIL/RCPT, as smtp-proto hands them over
//!   ([`envelope_address`]): made safe to route and to send on;
//! - **table addresses**, the `local@domain` fields of the contacts table and
//!   of the migrator's directory ([`check_address`]): stricter, since they are
//!   written by people and become routing keys.
//!
//! Both share RFC 5322 `atext` ([`is_atext`]) and compare case-insensitively
//! ([`same_address`]).
//!
//! smtp-proto removes the quotes of a quoted local part (`"a b"@x` arrives as
//! `a b@x`) and lets any octet but CR and LF through inside the quotes. RFC 5321
//! §4.1.2 allows only printable ASCII in a Quoted-string (`qtextSMTP`,
//! `quoted-pairSMTP`; RFC 6531 §3.3 adds UTF-8), so a control character (NUL, ESC, …)
//! is refused here: it would otherwise be logged, spooled and written into the next
//! hop's RCPT command. A local part that is not a Dot-string gets its quotes back, so
//! the router, the contacts table and the next hop see the address the client meant.

use std::borrow::Cow;

/// Longest address accepted, in octets: RFC 5321 §4.5.3.1.3 limits a path to 256
/// octets including the angle brackets.
pub const MAX_ADDRESS_LEN: usize = 254;

/// RFC 5322 §3.2.3 `atext`, plus any non-ASCII character (RFC 6531 §3.3).
pub fn is_atext(c: char) -> bool {
    matches!(c,
        'a'..='z' | 'A'..='Z' | '0'..='9'
        | '!' | '#' | '$' | '%' | '&' | '\'' | '*' | '+' | '-' | '/' | '='
        | '?' | '^' | '_' | '`' | '{' | '|' | '}' | '~')
        || !c.is_ascii()
}

// ---- Envelope paths (MAIL FROM, RCPT TO) ----

/// Why an envelope address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
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
pub fn envelope_address(address: &str) -> Result<Cow<'_, str>, PathError> {
    if address.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Ok(Cow::Borrowed(address));
    };
    if !is_domain(domain) {
        return Err(PathError::Domain);
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
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
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

// ---- Table addresses (contacts table, directory) ----

/// Why a field is not a usable `local@domain` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// No `@` at all.
    #[error("no \"@\" (expected local@domain)")]
    NoAt,
    /// Nothing before the `@`.
    #[error("empty local part")]
    EmptyLocal,
    /// Nothing after the `@`.
    #[error("empty domain")]
    EmptyDomain,
    /// A second `@` outside a quoted local part.
    #[error("more than one \"@\" (an \"@\" in the local part must be quoted)")]
    MultipleAt,
    /// A quoted local part without its closing quote.
    #[error("unterminated quoted local part")]
    UnterminatedQuote,
    /// A quoted local part not followed by `@`.
    #[error("quoted local part must be followed by \"@\"")]
    AfterQuote,
    /// A character not allowed in an unquoted local part (RFC 5322 §3.2.3 atext).
    #[error("character {0:?} not allowed in an unquoted local part")]
    LocalChar(char),
    /// `[1.2.3.4]`: contacts name host domains, not address literals.
    #[error("address literal domains are not supported; use a domain name")]
    AddressLiteral,
    /// A character not allowed in a domain name.
    #[error("character {0:?} not allowed in a domain")]
    DomainChar(char),
    /// `a..b`, `.a`, `a.`: a domain label is empty.
    #[error("empty label in domain (leading, trailing or doubled dot)")]
    EmptyLabel,
    /// Longer than [`MAX_ADDRESS_LEN`].
    #[error("{0} octets long; at most 254 (RFC 5321 §4.5.3.1.3)")]
    TooLong(usize),
}

/// Checks that `address` is `local@domain` as the table accepts it.
///
/// The local part is either a quoted string (which may hold `@`) or RFC 5322 atext
/// and dots; UTF-8 is allowed in both parts (RFC 6531). Dot placement in the local
/// part is not policed: addresses like `a..b@` exist in the wild and the next hop
/// is the judge. The domain is one or more non-empty labels of letters, digits,
/// `-`, `_` or UTF-8 (IDN U-labels); no address literals.
pub fn check_address(address: &str) -> Result<(), AddressError> {
    if address.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong(address.len()));
    }
    let domain = if let Some(quoted) = address.strip_prefix('"') {
        let end = closing_quote(quoted).ok_or(AddressError::UnterminatedQuote)?;
        if end == 0 {
            return Err(AddressError::EmptyLocal);
        }
        quoted[end + 1..]
            .strip_prefix('@')
            .ok_or(AddressError::AfterQuote)?
    } else {
        let (local, domain) = address.split_once('@').ok_or(AddressError::NoAt)?;
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        if let Some(c) = local.chars().find(|&c| !is_local_char(c)) {
            return Err(AddressError::LocalChar(c));
        }
        domain
    };
    check_domain(domain)
}

/// One pass over the domain (this runs a million times per table load).
fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.starts_with('[') {
        return Err(AddressError::AddressLiteral);
    }
    let mut label_len = 0usize;
    for c in domain.chars() {
        match c {
            '.' if label_len == 0 => return Err(AddressError::EmptyLabel),
            '.' => label_len = 0,
            '@' => return Err(AddressError::MultipleAt),
            c if is_domain_char(c) => label_len += 1,
            c => return Err(AddressError::DomainChar(c)),
        }
    }
    if label_len == 0 {
        return Err(AddressError::EmptyLabel);
    }
    Ok(())
}

/// Byte offset of the closing `"` in the text after the opening one.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// An unquoted local part of the table: atext and dots, dots anywhere.
fn is_local_char(c: char) -> bool {
    c == '.' || is_atext(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '-'
        || c == '_'
        || c == '.'
        || (!c.is_ascii() && !c.is_control())
}

// ---- Comparison ----

/// True when two addresses are the same contact: equal after case folding.
pub fn same_address(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        fold(a).eq(fold(b))
    }
}

/// Unicode lower-casing, character by character (the same for hashing and equality).
pub(crate) fn fold(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
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
            assert_eq!(envelope_address(a), Err(PathError::Control), "{a:?}");
        }
        for a in [
            "user@x y.example",
            "user@\"corp\".example",
            "user@[1.2.3.4",
            "user@[]",
            "user@[a]b]",
        ] {
            assert_eq!(envelope_address(a), Err(PathError::Domain), "{a:?}");
        }
    }
}
