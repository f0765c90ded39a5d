//! End-to-end: `coexist-relay` under hostile input (issue #6): a corpus of malformed
//! SMTP, every open-relay trick from an untrusted address, and the TLS floor.
//!
//! Each malformed case runs on its own connection from 127.0.0.2 (untrusted) and checks
//! the exact reply codes; afterwards a new client must still be served, and no case
//! may leave anything in the spool.

use coexist_e2e::smtp::{Client, Reply};
use coexist_e2e::{Relay, RelaySetup};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn relay() -> Relay {
    RelaySetup::default()
        .section("limits", "data_timeout = \"2s\"")
        .start()
}

/// Every queued record in the spool (each starts with the spool format's magic).
fn spooled(relay: &Relay) -> Vec<Vec<u8>> {
    relay.spooled_containing(b"COEXIST-SPOOL")
}

/// The envelope JSON at the head of a spool file.
fn envelope_of(file: &[u8]) -> serde_json::Value {
    let start = file
        .iter()
        .position(|&b| b == b'\n')
        .expect("spool header line")
        + 1;
    serde_json::Deserializer::from_slice(&file[start..])
        .into_iter::<serde_json::Value>()
        .next()
        .expect("envelope")
        .expect("envelope JSON")
}

fn still_serves(relay: &Relay) {
    let (mut c, greeting) = Client::connect_from(UNTRUSTED, relay.addr("smtp"));
    assert_eq!(greeting.code, 220);
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd("NOOP").has(250, "2.0.0"));
    assert!(c.cmd("QUIT").has(221, "2.0.0"));
}

/// Sends `bytes` on a fresh untrusted connection and checks one reply per entry of
/// `expected` (`(code, "")` checks the code only, e.g. for the multi-line EHLO).
fn case(relay: &Relay, name: &str, bytes: &[u8], expected: &[(u16, &str)]) -> Client {
    let (mut c, greeting) = Client::connect_from(UNTRUSTED, relay.addr("smtp"));
    assert_eq!(greeting.code, 220);
    c.send(bytes);
    for (i, &(code, enhanced)) in expected.iter().enumerate() {
        let reply: Reply = c
            .try_read_reply()
            .unwrap_or_else(|| panic!("{name}: EOF before reply {i}"));
        let ok = if enhanced.is_empty() {
            reply.code == code
        } else {
            reply.has(code, enhanced)
        };
        assert!(
            ok,
            "{name}: reply {i}: want {code} {enhanced}, got {}",
            reply.text
        );
    }
    c
}

const EHLO: &[u8] = b"EHLO hostile.test\r\n";

fn with_ehlo(rest: &[u8]) -> Vec<u8> {
    [EHLO, rest].concat()
}

/// A corpus entry: name, bytes sent after the greeting, expected replies.
type Case = (&'static str, Vec<u8>, Vec<(u16, &'static str)>);

#[test]
fn malformed_smtp_corpus() {
    let relay = relay();
    let mut one_mb = b"MAIL FROM:<".to_vec();
    one_mb.resize(1 << 20, b'x');
    one_mb.extend_from_slice(b"@x.example>\r\nNOOP\r\n");
    let cases: Vec<Case> = vec![
        (
            "NUL bytes",
            with_ehlo(b"NO\0OP\r\nMAIL FROM:<a\0b@x.example>\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b\0c@corp.example>\r\nRCPT TO:<\"b\0c\"@corp.example>\r\nRCPT TO:<b@corp.example\0>\r\n"),
            vec![(250, ""), (500, "5.5.2"), (501, "5.1.7"), (250, "2.1.0"), (501, "5.1.3"), (501, "5.1.3"), (501, "5.1.3")],
        ),
        (
            "1 MB line",
            with_ehlo(&one_mb),
            vec![(250, ""), (500, "5.5.2"), (250, "2.0.0")],
        ),
        (
            "invalid UTF-8 in commands and addresses",
            with_ehlo(b"\xff\xfeNOOP\r\nMAIL FROM:<\xff@x.example>\r\nMAIL FROM:<\xff@x.example> SMTPUTF8\r\nMAIL FROM:<a@x.example> SMTPUTF8\r\nRCPT TO:<us\xc3er@corp.example>\r\nRCPT TO:<b@corp.example> ORCPT=rfc822;\xff@corp.example\r\n"),
            vec![(250, ""), (500, "5.5.2"), (501, "5.1.7"), (501, "5.1.7"), (250, "2.1.0"), (501, "5.1.3"), (501, "5.1.3")],
        ),
        (
            "SMTPUTF8 addresses without the parameter",
            with_ehlo("MAIL FROM:<jürgen@x.example>\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<jürgen@corp.example>\r\nRCPT TO:<user@bücher.example>\r\n".as_bytes()),
            vec![(250, ""), (553, "5.6.7"), (250, "2.1.0"), (553, "5.6.7"), (553, "5.6.7")],
        ),
        (
            "unbalanced brackets",
            with_ehlo(b"MAIL FROM:<a@x.example\r\nMAIL FROM:a@x.example>\r\nMAIL FROM:<<a@x.example>>\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@corp.example\r\nRCPT TO:b@corp.example>\r\nRCPT TO:<[b@corp.example>\r\n"),
            vec![(250, ""), (501, "5.5.4"), (501, "5.5.4"), (501, "5.1.7"), (250, "2.1.0"), (501, "5.5.4"), (501, "5.5.4"), (501, "5.1.3")],
        ),
        (
            "parameters repeated",
            with_ehlo(b"MAIL FROM:<a@x.example> SIZE=1 SIZE=2\r\nMAIL FROM:<a@x.example> RET=FULL RET=HDRS\r\nMAIL FROM:<a@x.example> ENVID=a ENVID=b\r\nMAIL FROM:<a@x.example> BODY=8BITMIME BODY=7BIT\r\nMAIL FROM:<a@x.example> SIZE=10 RET=HDRS\r\nRCPT TO:<b@corp.example> NOTIFY=SUCCESS NOTIFY=NEVER\r\nRCPT TO:<b@corp.example> ORCPT=rfc822;b@corp.example ORCPT=rfc822;c@corp.example\r\nRCPT TO:<b@corp.example> NOTIFY=FAILURE\r\nRSET\r\n"),
            vec![(250, ""), (501, "5.5.4"), (501, "5.5.4"), (501, "5.5.4"), (501, "5.5.4"), (250, "2.1.0"), (501, "5.5.4"), (501, "5.5.4"), (250, "2.1.5"), (250, "2.0.0")],
        ),
        (
            "DATA without recipients, body pipelined",
            with_ehlo(b"MAIL FROM:<a@x.example>\r\nDATA\r\nSubject: HOSTILE-NORCPT\r\n\r\nhello\r\n.\r\nNOOP\r\n"),
            vec![(250, ""), (250, "2.1.0"), (503, "5.5.1"), (500, "5.5.2"), (500, "5.5.2"), (500, "5.5.2"), (500, "5.5.2"), (250, "2.0.0")],
        ),
        (
            "BDAT 0",
            with_ehlo(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@corp.example>\r\nBDAT 0\r\nRSET\r\n"),
            vec![(250, ""), (250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0"), (250, "2.0.0")],
        ),
        (
            "BDAT size beyond any integer",
            with_ehlo(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@corp.example>\r\nBDAT 99999999999999999999\r\nNOOP\r\nRSET\r\n"),
            vec![(250, ""), (250, "2.1.0"), (250, "2.1.5"), (501, "5.5.4"), (250, "2.0.0"), (250, "2.0.0")],
        ),
        (
            "BDAT without a transaction",
            with_ehlo(b"BDAT 15 LAST\r\nHOSTILE-NOTXN\r\nNOOP\r\n"),
            vec![(250, ""), (503, "5.5.1"), (250, "2.0.0")],
        ),
    ];
    for (name, bytes, expected) in &cases {
        let mut c = case(&relay, name, bytes, expected);
        assert!(c.cmd("QUIT").has(221, "2.0.0"), "{name}: QUIT");
        still_serves(&relay);
    }
    assert!(
        spooled(&relay).is_empty(),
        "a malformed case spooled something"
    );
}

#[test]
fn commands_after_quit_are_not_read() {
    let relay = relay();
    let mut c = case(
        &relay,
        "after QUIT",
        &with_ehlo(b"QUIT\r\nMAIL FROM:<a@x.example>\r\nNOOP\r\n"),
        &[(250, ""), (221, "2.0.0")],
    );
    assert!(c.is_closed(), "connection closed after 221");
    still_serves(&relay);
}

#[test]
fn bdat_sizes_that_lie() {
    let relay = relay();
    let envelope = b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@corp.example>\r\n";
    // Declared smaller than sent: the chunk is exactly the declared octets, the rest is
    // read as commands and refused.
    let mut c = case(
        &relay,
        "BDAT smaller than sent",
        &with_ehlo(
            &[
                &envelope[..],
                b"BDAT 12 LAST\r\nHOSTILE-HEADHOSTILE-TAIL\r\nNOOP\r\n",
            ]
            .concat(),
        ),
        &[
            (250, ""),
            (250, "2.1.0"),
            (250, "2.1.5"),
            (250, "2.0.0"),
            (500, "5.5.2"),
            (250, "2.0.0"),
        ],
    );
    assert!(c.cmd("QUIT").has(221, "2.0.0"));
    let files = spooled(&relay);
    assert_eq!(files.len(), 1, "the declared chunk is one message");
    assert!(
        files[0].ends_with(b"HOSTILE-HEAD"),
        "exactly the declared octets"
    );
    assert!(relay.spooled_containing(b"HOSTILE-TAIL").is_empty());

    // Declared bigger than sent, then the client stops: data_timeout (2 s) ends it.
    let start = Instant::now();
    let mut c = case(
        &relay,
        "BDAT bigger than sent, client silent",
        &with_ehlo(&[&envelope[..], b"BDAT 100 LAST\r\nHOSTILE-SHORT1"].concat()),
        &[(250, ""), (250, "2.1.0"), (250, "2.1.5"), (421, "4.4.2")],
    );
    assert!(c.is_closed());
    assert!(start.elapsed() < Duration::from_secs(30));

    // Declared bigger than sent, then the client closes its side (no QUIT): the relay
    // must see the EOF inside the chunk, store nothing and close.
    let mut raw = raw_connect(&relay);
    raw.write_all(&with_ehlo(
        &[&envelope[..], b"BDAT 100 LAST\r\nHOSTILE-SHORT2"].concat(),
    ))
    .unwrap();
    raw.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut raw, &mut answer).unwrap();
    let codes: Vec<&str> = answer
        .lines()
        .map(|l| &l[..4])
        .filter(|c| c.ends_with(' '))
        .collect();
    assert_eq!(codes, ["220 ", "250 ", "250 ", "250 "], "{answer}");

    still_serves(&relay);
    assert!(relay.spooled_containing(b"HOSTILE-SHORT").is_empty());
    assert_eq!(spooled(&relay).len(), 1);
}

/// A plain socket from the untrusted address, for what `Client` cannot do.
fn raw_connect(relay: &Relay) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(UNTRUSTED, 0).into()).unwrap();
    socket.connect(&relay.addr("smtp").into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

#[test]
fn open_relay_tricks_from_an_untrusted_address() {
    let relay = relay();
    // (recipient, needs SMTPUTF8, expected: Ok((route, rewritten)) or Err((code, enhanced)))
    type Want = Result<(&'static str, &'static str), (u16, &'static str)>;
    let denied: Want = Err((554, "5.7.1"));
    let bad: Want = Err((501, "5.1.3"));
    let tricks: Vec<(&str, bool, Want)> = vec![
        ("user%other@corp.example", false, denied),
        ("user%elsewhere.example@corp.example", false, denied),
        ("other!user@corp.example", false, denied),
        ("elsewhere.example!user@corp.example", false, denied),
        (
            "@a.example,@b.example:user@elsewhere.example",
            false,
            denied,
        ),
        ("@corp.example:user@elsewhere.example", false, denied),
        // A source route is ignored (RFC 5321 §3.6.1); the mailbox is ours.
        (
            "@elsewhere.example:user@corp.example",
            false,
            Ok(("onprem", "user@corp.example")),
        ),
        ("\"user@elsewhere.example\"@corp.example", false, denied),
        ("\"user%elsewhere.example\"@corp.example", false, denied),
        ("\"user@corp.example\"@elsewhere.example", false, denied),
        ("user@elsewhere.example.", false, denied),
        (
            "user@corp.example.",
            false,
            Ok(("onprem", "user@corp.example")),
        ),
        ("user@[127.0.0.1]", false, bad),
        ("user@[IPv6:::1]", false, bad),
        ("USER@ELSEWHERE.EXAMPLE", false, denied),
        (
            "user@CORP.EXAMPLE",
            false,
            Ok(("onprem", "user@CORP.EXAMPLE")),
        ),
        (
            "user3@CORP.EXAMPLE",
            false,
            Ok(("cloud", "user3@tenant.cloud.example")),
        ),
        ("user@bücher.example", true, denied),
        ("user@xn--bcher-kva.example", false, denied),
        ("user@corp.example.elsewhere.example", false, denied),
        ("user@elsewhere.example@corp.example", false, bad),
        ("user@corp.example@elsewhere.example", false, bad),
        ("user@corp．example", true, denied), // fullwidth dot
        (
            "\"a b\"@corp.example",
            false,
            Ok(("onprem", "\"a b\"@corp.example")),
        ),
    ];
    for (i, (rcpt, utf8, want)) in tricks.iter().enumerate() {
        let marker = format!("HOSTILE-RELAY-{i}");
        let (mut c, _) = Client::connect_from(UNTRUSTED, relay.addr("smtp"));
        assert_eq!(c.ehlo().code, 250);
        let param = if *utf8 { " SMTPUTF8" } else { "" };
        assert!(c
            .cmd(&format!("MAIL FROM:<a@x.example>{param}"))
            .has(250, "2.1.0"));
        let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        match want {
            Err((code, enhanced)) => {
                assert!(reply.has(*code, enhanced), "{rcpt}: {}", reply.text);
                assert!(
                    c.cmd("DATA").has(503, "5.5.1"),
                    "{rcpt}: no recipient, no DATA"
                );
            }
            Ok((route, rewritten)) => {
                assert!(reply.has(250, "2.1.5"), "{rcpt}: {}", reply.text);
                assert_eq!(c.cmd("DATA").code, 354);
                let queued = c.cmd(&format!("Subject: {marker}\r\n\r\nx\r\n."));
                assert!(queued.has(250, "2.0.0"), "{rcpt}: {}", queued.text);
                let files = relay.spooled_containing(format!("Subject: {marker}\r\n").as_bytes());
                assert_eq!(files.len(), 1, "{rcpt}");
                let env = envelope_of(&files[0]);
                let r = &env["recipients"][0];
                assert_eq!(r["route"], *route, "{rcpt}: {env}");
                assert_eq!(r["rewritten"], *rewritten, "{rcpt}: {env}");
            }
        }
        assert!(c.cmd("QUIT").has(221, "2.0.0"));
    }
    // Whatever was accepted, nothing may leave for a foreign domain.
    for file in spooled(&relay) {
        let env = envelope_of(&file);
        for r in env["recipients"].as_array().unwrap() {
            assert_ne!(r["route"], "internet", "{env}");
            let rewritten = r["rewritten"].as_str().unwrap().to_lowercase();
            let domain = rewritten.rsplit('@').next().unwrap();
            assert!(
                domain == "corp.example" || domain == "tenant.cloud.example",
                "{env}"
            );
        }
    }
}

/// Runs a Python `ssl` client against the implicit-TLS listener, pinned to one
/// version; prints `ok <version> <cipher>` or `fail <error>`.
fn tls_client(relay: &Relay, version: &str) -> String {
    const SCRIPT: &str = r#"
import socket, ssl, sys
port, version = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
# Let this OpenSSL offer the old versions at all: the refusal must come from the relay.
ctx.set_ciphers("ALL:@SECLEVEL=0")
v = getattr(ssl.TLSVersion, version)
ctx.minimum_version = v
ctx.maximum_version = v
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            print("ok", s.version(), s.cipher()[0])
except ssl.SSLError as e:
    print("fail", e.reason, e)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            SCRIPT,
            &relay.addr("smtps").port().to_string(),
            version,
        ])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn only_tls_1_2_and_1_3_with_modern_suites() {
    let relay = relay();
    for old in ["TLSv1", "TLSv1_1"] {
        let out = tls_client(&relay, old);
        // An alert received from the relay (rustls answers handshake_failure), not a
        // client-side refusal to offer the version (NO_PROTOCOLS_AVAILABLE).
        assert!(
            out.starts_with("fail") && out.contains("_ALERT_"),
            "{old}: {out}"
        );
    }
    let tls12 = tls_client(&relay, "TLSv1_2");
    assert!(tls12.starts_with("ok TLSv1.2 ECDHE-"), "{tls12}");
    assert!(
        tls12.contains("GCM") || tls12.contains("CHACHA20"),
        "AEAD only: {tls12}"
    );
    let tls13 = tls_client(&relay, "TLSv1_3");
    assert!(tls13.starts_with("ok TLSv1.3 TLS_"), "{tls13}");
    still_serves(&relay);
}

fn openssl_pair(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert, key)
}

#[test]
fn certificate_key_mismatch_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, _) = openssl_pair(dir.path(), "a");
    let (_, key_b) = openssl_pair(dir.path(), "b");
    let config = RelaySetup::default()
        .section(
            "tls",
            &format!("cert = {:?}\nkey = {:?}", cert_a.display(), key_b.display()),
        )
        .render();
    std::fs::write(dir.path().join("relay.toml"), config).unwrap();
    std::fs::write(dir.path().join("contacts"), "").unwrap();
    let mut child = Command::new(coexist_e2e::binary("coexist-relay"))
        .arg("--config")
        .arg(dir.path().join("relay.toml"))
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("relay started with a mismatched certificate and key");
        }
        // Polling a child's exit has no event to await in std.
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let code = status.code();
    assert_eq!(code, Some(2), "a configuration error: {stderr}");
    assert!(
        stderr.contains(&cert_a.display().to_string()),
        "names the certificate: {stderr}"
    );
    assert!(
        stderr.contains(&key_b.display().to_string()),
        "names the key: {stderr}"
    );
    assert!(stderr.contains("does the key belong"), "{stderr}");
}
