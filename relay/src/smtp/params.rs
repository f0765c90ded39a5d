//! MAIL/RCPT parameters given more than once.
//!
//! smtp-proto folds parameters into flags and fields, so `RET=FULL RET=HDRS` sets
//! both RET flags and `SIZE=1 SIZE=2` keeps one of the two silently. Each extension
//! defines its parameter once per command (RFC 1870 §4 SIZE, RFC 3461 §4.1–4.4
//! NOTIFY/ORCPT/RET/ENVID, RFC 6152 BODY, RFC 6531 §3.4 SMTPUTF8); a repeated one is
//! ambiguous, so it is refused (`501 5.5.4`, as Postfix does) before the parser
//! picks a meaning for it.

/// The first parameter keyword (upper case) repeated on a MAIL or RCPT line, if any.
pub fn repeated_parameter(line: &[u8]) -> Option<String> {
    let verb = line.get(..4)?;
    if !verb.eq_ignore_ascii_case(b"MAIL") && !verb.eq_ignore_ascii_case(b"RCPT") {
        return None;
    }
    let rest = &line[memchr::memchr(b':', line)? + 1..];
    let params = after_path(rest)?;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for param in params
        .split(|&b| b == b' ')
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
    {
        let keyword = param.split(|&b| b == b'=').next()?.to_ascii_uppercase();
        if seen.contains(&keyword) {
            return Some(String::from_utf8_lossy(&keyword).into_owned());
        }
        seen.push(keyword);
    }
    None
}

/// What follows the `<path>` (quoted local parts may hold `>` and spaces).
fn after_path(rest: &[u8]) -> Option<&[u8]> {
    let rest = rest.trim_ascii_start();
    if rest.first() != Some(&b'<') {
        // Not a valid path; the parser will say so.
        return None;
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in rest.iter().enumerate().skip(1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(&rest[i + 1..]),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keywords_are_found_case_insensitively() {
        for (line, param) in [
            (&b"MAIL FROM:<a@x> SIZE=1 SIZE=2\r\n"[..], "SIZE"),
            (b"mail from:<a@x> ret=FULL RET=HDRS\r\n", "RET"),
            (
                b"MAIL FROM:<a@x> ENVID=a BODY=8BITMIME envid=b\r\n",
                "ENVID",
            ),
            (b"MAIL FROM:<a@x> SMTPUTF8 SMTPUTF8\r\n", "SMTPUTF8"),
            (b"RCPT TO:<b@y> NOTIFY=NEVER NOTIFY=SUCCESS\r\n", "NOTIFY"),
            (
                b"RCPT TO:<\"a> b\"@y> ORCPT=rfc822;a ORCPT=rfc822;b\r\n",
                "ORCPT",
            ),
        ] {
            assert_eq!(repeated_parameter(line).as_deref(), Some(param));
        }
    }

    #[test]
    fn single_parameters_and_other_commands_pass() {
        for line in [
            &b"MAIL FROM:<a@x> SIZE=1 BODY=8BITMIME RET=HDRS ENVID=x SMTPUTF8\r\n"[..],
            b"RCPT TO:<\"SIZE=1 SIZE=1\"@y> NOTIFY=NEVER\r\n",
            b"RCPT TO:<b@y>\r\n",
            b"MAIL FROM:<>\r\n",
            b"EHLO SIZE=1 SIZE=1\r\n",
            b"MAIL FROM:a@x SIZE=1 SIZE=1\r\n",
            b"MAIL\r\n",
        ] {
            assert_eq!(repeated_parameter(line), None, "{line:?}");
        }
    }
}
