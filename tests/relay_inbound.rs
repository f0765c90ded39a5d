//! End-to-end: `coexist-relay` inbound (issue #2) against real clients — swaks,
//! Python's smtplib, and a raw scripted client for the byte-exact cases.

use coexist_e2e::smtp::Client;
use coexist_e2e::{python, RelaySetup};
use std::process::Command;
use std::time::Duration;

const BODY: &[u8] = b"From: alice@sender.example\r\nTo: bob@corp.example\r\nSubject: t\r\nMessage-ID: <m1@sender.example>\r\n\r\nline one\r\n..dot-stuffed line\r\nline three\r\n";

fn envelope(c: &mut Client, rcpts: &[&str]) {
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd("MAIL FROM:<alice@sender.example>").has(250, "2.1.0"));
    for r in rcpts {
        let reply = c.cmd(&format!("RCPT TO:<{r}>"));
        assert!(reply.has(250, "2.1.5"), "{r}: {}", reply.text);
    }
}

fn queue_id(reply: &coexist_e2e::smtp::Reply) -> String {
    assert!(reply.has(250, "2.0.0"), "{}", reply.text);
    reply
        .text
        .split_whitespace()
        .nth(2)
        .expect("queue id")
        .to_string()
}

#[test]
fn swaks_message_is_spooled_byte_for_byte_with_one_received() {
    let relay = RelaySetup::default().start();
    let body = relay.dir.path().join("body.eml");
    std::fs::write(&body, BODY).unwrap();
    let addr = relay.addr("smtp");
    let out = Command::new("swaks")
        .args([
            "--server",
            &addr.ip().to_string(),
            "--port",
            &addr.port().to_string(),
        ])
        .args(["--from", "alice@sender.example", "--to", "bob@corp.example"])
        .args(["--helo", "swaks.test", "--data"])
        .arg(format!("@{}", body.display()))
        .output()
        .expect("swaks is installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("<- ") && l.contains("Message queued"))
        .expect(&text);
    let id = line.split_whitespace().nth(3).unwrap();
    // swaks dot-stuffs the file on the wire; the relay unstuffs it, so the spool holds
    // exactly one Received field followed by the file's bytes (swaks adds a final CRLF).
    let files = relay.spooled_containing(BODY);
    assert_eq!(
        files.len(),
        1,
        "one spooled record holds the body byte for byte"
    );
    let file = String::from_utf8_lossy(&files[0]).into_owned();
    let at = file
        .find("Received: from swaks.test")
        .expect("Received prepended");
    let (trace, rest) = file[at..]
        .split_once(std::str::from_utf8(BODY).unwrap())
        .unwrap();
    assert_eq!(trace.matches("Received:").count(), 1, "{trace}");
    assert!(trace.contains(&format!("id {id}")), "{trace}");
    assert!(
        trace.ends_with("\r\n") && !trace.contains("\r\n\r\n"),
        "only the trace field: {trace:?}"
    );
    assert_eq!(rest, "\r\n");
}

#[test]
fn smtplib_starttls_and_implicit_tls() {
    let relay = RelaySetup::default().start();
    let smtp = relay.addr("smtp");
    let (ok, out, err) = python(
        "smtplib_send.py",
        &[
            "127.0.0.1",
            &smtp.port().to_string(),
            "--mode",
            "starttls",
            "--rcpt",
            "bob@corp.example",
        ],
    );
    assert!(ok, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["starttls"], 220);
    assert_eq!(v["data"][0], 250);
    for ext in [
        "pipelining",
        "size",
        "8bitmime",
        "smtputf8",
        "enhancedstatuscodes",
        "chunking",
        "dsn",
        "starttls",
    ] {
        assert!(
            v["features"].as_array().unwrap().iter().any(|f| f == ext),
            "{ext} advertised"
        );
    }
    let cipher = v["cipher"].as_str().unwrap().to_string();
    let id = v["data"][1]
        .as_str()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let files = relay.spooled_containing(format!("id {id}").as_bytes());
    assert_eq!(files.len(), 1);
    let file = String::from_utf8_lossy(&files[0]);
    assert!(file.contains("with ESMTPS"), "{file}");
    assert!(
        file.contains("TLS13_") || file.contains(&cipher),
        "cipher in Received: {file}"
    );

    let smtps = relay.addr("smtps");
    let (ok, out, err) = python(
        "smtplib_send.py",
        &[
            "127.0.0.1",
            &smtps.port().to_string(),
            "--mode",
            "ssl",
            "--rcpt",
            "bob@corp.example",
        ],
    );
    assert!(ok, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"][0], 250);
    assert!(v["tls_version"].as_str().unwrap().starts_with("TLSv1."));
    assert!(
        !v["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "starttls"),
        "no STARTTLS inside TLS"
    );
}

#[test]
fn smtplib_smtputf8_and_8bitmime() {
    let relay = RelaySetup::default().start();
    let port = relay.addr("smtp").port().to_string();
    let msg = relay.dir.path().join("utf8.eml");
    std::fs::write(
        &msg,
        "From: jörg@sender.example\r\nSubject: grüße\r\n\r\nÄpfel\r\n",
    )
    .unwrap();
    let m = msg.to_str().unwrap();
    let (ok, out, err) = python(
        "smtplib_send.py",
        &[
            "127.0.0.1",
            &port,
            "--smtputf8",
            "--eightbit",
            "--sender",
            "jörg@sender.example",
            "--rcpt",
            "bob@corp.example",
            "--message-file",
            m,
        ],
    );
    assert!(ok, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mail"][0], 250, "{out}");
    assert_eq!(v["data"][0], 250, "{out}");
    assert_eq!(relay.spooled_containing("Äpfel".as_bytes()).len(), 1);
    let files = relay.spooled_containing("Äpfel".as_bytes());
    assert!(String::from_utf8_lossy(&files[0]).contains("with UTF8SMTP"));

    // The same non-ASCII sender without the SMTPUTF8 parameter is refused (RFC 6531).
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    assert!(c.cmd("MAIL FROM:<jörg@sender.example>").has(553, "5.6.7"));
    assert!(c.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(c.cmd("RCPT TO:<bö@corp.example>").has(553, "5.6.7"));
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    let relay = RelaySetup::default().start();
    let (mut c, greeting) = Client::connect(relay.addr("smtp"));
    assert_eq!(greeting.code, 220);
    c.send(b"EHLO p.test\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<bob@corp.example>\r\nRCPT TO:<nobody@elsewhere.example>\r\nDATA\r\n");
    assert_eq!(c.read_reply().code, 250);
    assert!(c.read_reply().has(250, "2.1.0"));
    assert!(c.read_reply().has(250, "2.1.5"));
    assert!(c.read_reply().has(250, "2.1.5"), "trusted client may relay");
    assert_eq!(c.read_reply().code, 354);
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    queue_id(&c.read_reply());
    assert!(c.read_reply().has(221, "2.0.0"));
}

#[test]
fn bdat_chunks_make_one_message() {
    let relay = RelaySetup::default().start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    envelope(&mut c, &["bob@corp.example"]);
    let part1 = b"Subject: chunked\r\n\r\nfirst ";
    let part2 = b"second\r\n.not-stuffed\r\n";
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes());
    c.send(part1);
    assert!(c.read_reply().has(250, "2.0.0"));
    // Pipelined: the chunk header, its bytes and the next command in one write.
    let mut pipelined = format!("BDAT {} LAST\r\n", part2.len()).into_bytes();
    pipelined.extend_from_slice(part2);
    pipelined.extend_from_slice(b"NOOP\r\n");
    c.send(&pipelined);
    queue_id(&c.read_reply());
    assert!(c.read_reply().has(250, "2.0.0"));
    let files = relay.spooled_containing(b"first second\r\n.not-stuffed\r\n");
    assert_eq!(files.len(), 1, "BDAT is binary-clean: no dot-unstuffing");

    // BDAT 0 LAST ends a message too; a BDAT before RCPT is read and refused.
    envelope(&mut c, &["bob@corp.example"]);
    c.send(b"BDAT 4\r\nabc\n");
    assert!(c.read_reply().has(250, "2.0.0"));
    queue_id(&c.cmd("BDAT 0 LAST"));
    c.send(b"BDAT 3 LAST\r\nxyz");
    assert!(c.read_reply().has(503, "5.5.1"));
    assert!(
        c.cmd("NOOP").has(250, "2.0.0"),
        "chunk bytes were not taken as commands"
    );
}

#[test]
fn size_limits() {
    let relay = RelaySetup::default()
        .section("limits", "max_message_size = \"1KiB\"")
        .start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    let ehlo = c.ehlo();
    assert!(ehlo.text.contains("SIZE 1024"), "{}", ehlo.text);
    assert!(c
        .cmd("MAIL FROM:<a@sender.example> SIZE=2048")
        .has(552, "5.3.4"));
    assert!(c
        .cmd("MAIL FROM:<a@sender.example> SIZE=512")
        .has(250, "2.1.0"));
    assert!(c.cmd("RCPT TO:<bob@corp.example>").has(250, "2.1.5"));
    assert_eq!(c.cmd("DATA").code, 354);
    let big = "x".repeat(200);
    for _ in 0..20 {
        c.send(format!("{big}\r\n").as_bytes());
    }
    c.send(b".\r\n");
    assert!(c.read_reply().has(552, "5.3.4"));
    assert!(c.cmd("NOOP").has(250, "2.0.0"), "session goes on");
    // BDAT over the limit is read in full and refused.
    envelope(&mut c, &["bob@corp.example"]);
    c.send(b"BDAT 2000 LAST\r\n");
    c.send(&[b'y'; 2000]);
    assert!(c.read_reply().has(552, "5.3.4"));
    assert!(c.cmd("NOOP").has(250, "2.0.0"));
}

#[test]
fn recipient_limit_and_loop_detection() {
    let relay = RelaySetup::default()
        .section("limits", "max_recipients = 2\nmax_received_headers = 3")
        .start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    envelope(&mut c, &["a@corp.example", "b@corp.example"]);
    assert!(c.cmd("RCPT TO:<c@corp.example>").has(452, "4.5.3"));
    assert_eq!(c.cmd("DATA").code, 354);
    let mut msg = String::new();
    for i in 0..4 {
        msg.push_str(&format!(
            "Received: from h{i} by h; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        ));
    }
    msg.push_str("Subject: loop\r\n\r\nx\r\n.\r\n");
    c.send(msg.as_bytes());
    assert!(c.read_reply().has(554, "5.4.6"));
}

#[test]
fn relay_denied_for_untrusted_clients_only() {
    let relay = RelaySetup::default().start();
    let addr = relay.addr("smtp");
    let (mut c, _) = Client::connect_from("127.0.0.2".parse().unwrap(), addr);
    c.ehlo();
    assert!(c.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(c
        .cmd("RCPT TO:<victim@elsewhere.example>")
        .has(554, "5.7.1"));
    assert!(c.cmd("RCPT TO:<bob@corp.example>").has(250, "2.1.5"));
    assert!(c
        .cmd("RCPT TO:<bob%elsewhere.example@corp.example>")
        .has(554, "5.7.1"));
    let (mut t, _) = Client::connect(addr);
    t.ehlo();
    assert!(t.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(t
        .cmd("RCPT TO:<victim@elsewhere.example>")
        .has(250, "2.1.5"));
}

/// "a\n.\r\n" must not end DATA, and the commands after it must not become a second
/// message (SMTP smuggling).
const SMUGGLE: &[u8] = b"Subject: s\r\n\r\na\n.\r\nMAIL FROM:<x@sender.example>\r\nRCPT TO:<z@corp.example>\r\nDATA\r\nsmuggled\r\n.\r\n";

#[test]
fn smuggling_is_normalized_into_one_message() {
    let relay = RelaySetup::default().start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    envelope(&mut c, &["bob@corp.example"]);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(SMUGGLE);
    c.send(b"NOOP\r\n");
    queue_id(&c.read_reply());
    assert!(
        c.read_reply().has(250, "2.0.0"),
        "next reply is NOOP's, not a second message"
    );
    let files = relay.spooled_containing(b"smuggled");
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert!(
        f.windows(7).any(|w| w == b"a\r\n.\r\nM"),
        "bare LF normalized to CRLF"
    );
}

#[test]
fn smuggling_is_rejected_with_bare_newline_reject() {
    let relay = RelaySetup::default()
        .section("limits", "bare_newline = \"reject\"")
        .start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    envelope(&mut c, &["bob@corp.example"]);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(SMUGGLE);
    c.send(b"NOOP\r\n");
    assert!(c.read_reply().has(550, "5.6.0"));
    assert!(c.read_reply().has(250, "2.0.0"));
    assert!(
        relay.spooled_containing(b"smuggled").is_empty(),
        "nothing spooled"
    );
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let relay = RelaySetup::default().start();
    let port = relay.addr("smtp").port().to_string();
    let (ok, out, err) = python("starttls_injection.py", &["127.0.0.1", &port]);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("250-relay.test"),
        "first TLS reply answers EHLO, not the injected RSET: {out}"
    );
}

#[test]
fn require_tls_refuses_mail_in_clear() {
    let relay = RelaySetup::default()
        .listeners(&[
            "name = \"smtp\"\nbind = \"127.0.0.1:0\"\ntls = \"starttls\"\nrequire_tls = true",
        ])
        .start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    assert!(c.cmd("MAIL FROM:<a@sender.example>").has(530, "5.7.0"));
}

#[test]
fn command_replies_and_sequence_errors() {
    let relay = RelaySetup::default().start();
    let (mut c, greeting) = Client::connect(relay.addr("smtp"));
    assert!(greeting.text.starts_with("220 relay.test"));
    assert!(
        c.cmd("MAIL FROM:<a@sender.example>").has(503, "5.5.1"),
        "MAIL before EHLO"
    );
    assert_eq!(c.cmd("HELO h.test").code, 250);
    assert!(c.cmd("RCPT TO:<bob@corp.example>").has(503, "5.5.1"));
    assert!(c.cmd("DATA").has(503, "5.5.1"));
    assert!(c.cmd("FOO bar").has(500, "5.5.2"));
    assert!(c.cmd("MAIL FROM:alice").has(501, "5.5.4"));
    assert!(c
        .cmd("MAIL FROM:<a@sender.example> FOO=BAR")
        .has(555, "5.5.4"));
    assert!(c.cmd("VRFY bob").has(252, "2.5.0"));
    assert!(c.cmd("HELP").has(214, "2.0.0"));
    assert!(c.cmd("NOOP").has(250, "2.0.0"));
    assert!(c.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(
        c.cmd("MAIL FROM:<a@sender.example>").has(503, "5.5.1"),
        "nested MAIL"
    );
    assert!(c.cmd("RSET").has(250, "2.0.0"));
    assert!(
        c.cmd("MAIL FROM:<> RET=HDRS ENVID=abc").has(250, "2.1.0"),
        "null sender with DSN"
    );
    assert!(c
        .cmd("RCPT TO:<bob@corp.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@corp.example")
        .has(250, "2.1.5"));
    let long = format!("NOOP {}", "x".repeat(10_000));
    assert!(c.cmd(&long).has(500, "5.5.2"), "line too long");
    assert!(
        c.cmd("NOOP").has(250, "2.0.0"),
        "session survives a long line"
    );
    assert!(c.cmd("QUIT").has(221, "2.0.0"));
    assert!(c.is_closed());
}

#[test]
fn timeouts_error_limit_and_connection_caps() {
    let relay = RelaySetup::default()
        .section("limits", "command_timeout = \"1s\"\nmax_errors = 3")
        .start();
    let addr = relay.addr("smtp");
    // Idle: the server speaks first with 421 4.4.2 when the command timeout passes.
    let (mut idle, _) = Client::connect(addr);
    assert!(idle.read_reply().has(421, "4.4.2"));
    assert!(idle.is_closed());
    // Errors: the fourth error closes with 421 4.7.0.
    let (mut c, _) = Client::connect(addr);
    for _ in 0..3 {
        assert!(c.cmd("BOGUS").has(500, "5.5.2"));
    }
    c.send(b"BOGUS\r\n");
    assert!(c.read_reply().has(500, "5.5.2"));
    assert!(c.read_reply().has(421, "4.7.0"));
    assert!(c.is_closed());
}

#[test]
fn connection_caps_answer_421() {
    let relay = RelaySetup::default()
        .section(
            "limits",
            "max_connections_per_ip = 2
max_connections = 3",
        )
        .start();
    let addr = relay.addr("smtp");
    let (_a, ga) = Client::connect(addr);
    let (_b, gb) = Client::connect(addr);
    assert_eq!((ga.code, gb.code), (220, 220));
    let (_c, gc) = Client::connect(addr);
    assert!(gc.has(421, "4.7.0"), "per-IP cap: {}", gc.text);
    let (_d, gd) = Client::connect_from("127.0.0.2".parse().unwrap(), addr);
    assert_eq!(gd.code, 220, "another address still gets in");
    let (_e, ge) = Client::connect_from("127.0.0.3".parse().unwrap(), addr);
    assert!(ge.has(421, "4.7.0"), "total cap: {}", ge.text);
}

#[test]
fn sigkill_after_250_keeps_the_message() {
    let mut relay = RelaySetup::default().start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    envelope(&mut c, &["bob@corp.example"]);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(b"Subject: durable\r\n\r\nmust survive kill -9\r\n.\r\n");
    let id = queue_id(&c.read_reply());
    relay.kill();
    let from = relay.log.len();
    relay.restart();
    assert!(
        relay
            .log
            .wait_for("messages=1", from, Duration::from_secs(10))
            .is_some(),
        "{}",
        relay.log.text()
    );
    let files = relay.spooled_containing(b"must survive kill -9");
    assert_eq!(files.len(), 1);
    assert!(String::from_utf8_lossy(&files[0]).contains(&id));
}

#[test]
fn sigterm_stops_cleanly_with_exit_zero() {
    let mut relay = RelaySetup::default().start();
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    relay.signal("TERM");
    // An idle session is told the service is going away.
    assert!(c.read_reply().has(421, "4.3.2"));
    assert_eq!(relay.wait_exit(Duration::from_secs(10)), Some(0));
}

fn replace_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn send_to(relay: &coexist_e2e::Relay, rcpt: &str, marker: &str) -> String {
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    envelope(&mut c, &[rcpt]);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(format!("Subject: {marker}\r\n\r\n{marker}\r\n.\r\n").as_bytes());
    let id = queue_id(&c.read_reply());
    let files = relay.spooled_containing(marker.as_bytes());
    assert_eq!(files.len(), 1);
    let _ = id;
    String::from_utf8_lossy(&files[0]).into_owned()
}

#[test]
fn contacts_table_hot_reload_by_rename_and_sighup() {
    let relay = RelaySetup::default().contacts("# empty\n").start();
    let contacts = relay.dir.path().join("contacts");
    let before = send_to(&relay, "bob@corp.example", "marker-before");
    assert!(!before.contains("bob@tenant.cloud.example"));

    let from = relay.log.len();
    replace_atomically(&contacts, "bob@corp.example bob@tenant.cloud.example\n");
    assert!(
        relay
            .log
            .wait_for("contacts table loaded", from, Duration::from_secs(3))
            .is_some(),
        "picked up within 2 s of the rename: {}",
        relay.log.text()
    );
    let after = send_to(&relay, "Bob+news@Corp.Example", "marker-after");
    assert!(
        after.contains("bob+news@tenant.cloud.example"),
        "rewritten with tag: {after}"
    );

    // A broken table is refused and the last good one keeps serving.
    let from = relay.log.len();
    replace_atomically(&contacts, "bob@corp.example\n");
    assert!(
        relay
            .log
            .wait_for("contacts:1", from, Duration::from_secs(3))
            .is_some(),
        "{}",
        relay.log.text()
    );
    let kept = send_to(&relay, "bob@corp.example", "marker-kept");
    assert!(kept.contains("bob@tenant.cloud.example"));

    // SIGHUP reloads at once (written in place: same inode).
    std::fs::write(&contacts, "bob@corp.example bob2@tenant.cloud.example\n").unwrap();
    let from = relay.log.len();
    relay.signal("HUP");
    assert!(relay
        .log
        .wait_for("reloaded", from, Duration::from_secs(3))
        .is_some());
    let hup = send_to(&relay, "bob@corp.example", "marker-hup");
    assert!(hup.contains("bob2@tenant.cloud.example"), "{hup}");
}

#[test]
fn check_and_route_commands() {
    let relay = RelaySetup::default().start();
    let out = relay.cli(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = relay.cli(&[
        "route",
        "--json",
        "USER3@corp.example",
        "x@corp.example",
        "y@elsewhere.example",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["route"], "cloud");
    assert_eq!(v[0]["rewritten"], "user3@tenant.cloud.example");
    assert_eq!(v[1]["route"], "onprem");
    assert_eq!(v[2]["route"], "internet");
    for row in v.as_array().unwrap() {
        for key in ["address", "route", "next_hop", "rewritten", "reason"] {
            assert!(row.get(key).is_some(), "{key}");
        }
    }
    // A broken config: every error as FILE:LINE and exit 2.
    let bad = relay.dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nhostname = \"x\"\nbogus = 1\n").unwrap();
    let out = Command::new(coexist_e2e::binary("coexist-relay"))
        .args(["--config", bad.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:"), "{err}");
}

#[test]
fn shipped_config_checks_ok() {
    let root = coexist_e2e::repo_root();
    let out = Command::new(coexist_e2e::binary("coexist-relay"))
        .args([
            "--config",
            root.join("config/relay.toml").to_str().unwrap(),
            "check",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn per_ip_rate_limits() {
    let relay = RelaySetup::default()
        .section(
            "limits",
            "max_messages_per_minute_per_ip = 2\nmax_connections_per_minute_per_ip = 3",
        )
        .start();
    let addr = relay.addr("smtp");
    let (mut c, _) = Client::connect(addr);
    c.ehlo();
    for _ in 0..2 {
        assert!(c.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
        assert!(c.cmd("RSET").has(250, "2.0.0"));
    }
    assert!(c.cmd("MAIL FROM:<a@sender.example>").has(450, "4.7.1"));
    let (_c2, g2) = Client::connect(addr);
    let (_c3, g3) = Client::connect(addr);
    assert_eq!((g2.code, g3.code), (220, 220));
    let (_c4, g4) = Client::connect(addr);
    assert!(
        g4.has(421, "4.7.0"),
        "fourth connection in a minute: {}",
        g4.text
    );
    let (_d, gd) = Client::connect_from("127.0.0.2".parse().unwrap(), addr);
    assert_eq!(gd.code, 220, "other clients unaffected");
}
