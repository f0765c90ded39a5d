//! The `Received:` trace field (RFC 5321 §4.4, RFC 5322 §3.6.7).

use super::state::TlsInfo;
use std::net::IpAddr;

/// What goes into the trace field.
pub struct Trace<'a> {
    /// EHLO/HELO name given by the client.
    pub helo: &'a str,
    /// Client address.
    pub client_ip: IpAddr,
    /// Our host name.
    pub hostname: &'a str,
    /// EHLO (true) or HELO.
    pub extended: bool,
    /// SMTPUTF8 transaction.
    pub smtputf8: bool,
    /// TLS in use.
    pub tls: Option<&'a TlsInfo>,
    /// Queue id.
    pub id: &'a str,
    /// The only recipient, if there is exactly one (several would leak Bcc).
    pub single_recipient: Option<&'a str>,
}

/// Builds the field, folded, CRLF-terminated, in one buffer (it is built for
/// every message: a `format!` per clause cost an allocation each).
pub fn received_header(t: &Trace<'_>) -> Vec<u8> {
    use std::fmt::Write;
    // RFC 3848 / RFC 6531 §4.3 "with" protocol names.
    let protocol = match (t.smtputf8, t.extended, t.tls.is_some()) {
        (true, _, true) => "UTF8SMTPS",
        (true, _, false) => "UTF8SMTP",
        (false, true, true) => "ESMTPS",
        (false, true, false) => "ESMTP",
        (false, false, _) => "SMTP",
    };
    let mut s = String::with_capacity(256);
    s.push_str("Received: from ");
    push_sanitized(&mut s, t.helo);
    // Writing to a String cannot fail.
    let _ = match t.client_ip {
        IpAddr::V4(v4) => write!(s, " ([{v4}])\r\n"),
        IpAddr::V6(v6) => write!(s, " ([IPv6:{v6}])\r\n"),
    };
    if let Some(tls) = t.tls {
        let _ = write!(
            s,
            "\t(using {} with cipher {})\r\n",
            tls.version, tls.cipher
        );
    }
    let _ = write!(
        s,
        "\tby {} (coexist) with {protocol} id {}",
        t.hostname, t.id
    );
    if let Some(rcpt) = t.single_recipient {
        s.push_str("\r\n\tfor <");
        push_sanitized(&mut s, rcpt);
        s.push('>');
    }
    let _ = write!(s, ";\r\n\t{}\r\n", chrono::Local::now().to_rfc2822());
    s.into_bytes()
}

/// Client-supplied text must not break the header (no CR/LF, no control
/// characters): appends `text`, at most 255 characters, with those replaced.
fn push_sanitized(out: &mut String, text: &str) {
    out.extend(text.chars().take(255).map(|c| {
        if c.is_control() || c == '(' || c == ')' {
            '_'
        } else {
            c
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parses_and_carries_tls_and_id() {
        let tls = TlsInfo {
            version: "TLSv1_3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            trusted_name: None,
        };
        let h = received_header(&Trace {
            helo: "client.example\r\nX-Injected: 1",
            client_ip: "127.0.0.1".parse().unwrap(),
            hostname: "relay.test",
            extended: true,
            smtputf8: false,
            tls: Some(&tls),
            id: "Q123",
            single_recipient: Some("a@b.example"),
        });
        let text = String::from_utf8(h.clone()).unwrap();
        assert!(text.starts_with("Received: from client.example__X-Injected: 1 ([127.0.0.1])\r\n"));
        assert!(text.contains("with ESMTPS id Q123"));
        assert!(text.contains("TLS13_AES_256_GCM_SHA384"));
        assert!(text.ends_with("\r\n"));
        let mut msg = h;
        msg.extend_from_slice(b"Subject: t\r\n\r\nbody\r\n");
        let parsed = mail_parser::MessageParser::new().parse(&msg).unwrap();
        assert_eq!(parsed.subject(), Some("t"));
        let rcv = parsed.received().expect("Received parses");
        assert_eq!(rcv.id(), Some("Q123"));
    }
}
