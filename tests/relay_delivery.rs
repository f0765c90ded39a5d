//! End-to-end: delivery (issue #3) — the built relay in front of real next hops
//! (Postfix's smtp-sink) and scripted sinks that fail on purpose.

use coexist_e2e::postfix::Postfix;
use coexist_e2e::sink::{PostfixSink, Script, ScriptSink};
use coexist_e2e::smtp::Client;
use coexist_e2e::{Relay, RelaySetup};
use mail_parser::MimeHeaders;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A relay whose onprem and cloud routes go to the given next hops.
fn relay_to(onprem: &str, cloud: &str, queue: &str) -> Relay {
    RelaySetup::default()
        .section(
            "route.onprem",
            &format!("smarthost = [\"{onprem}\"]\ntls = \"none\""),
        )
        .section(
            "route.cloud",
            &format!("smarthost = [\"{cloud}\"]\ntls = \"none\""),
        )
        .section("queue", queue)
        .start()
}

fn send(relay: &Relay, sender: &str, rcpts: &[&str], message_id: &str) -> String {
    let message = format!("From: <{sender}>\r\nSubject: t\r\nMessage-ID: <{message_id}>\r\n\r\n..leading dot\r\nbody\r\n");
    send_data(relay, sender, rcpts, &message)
}

/// One transaction; `data` is what goes between DATA and the final dot line
/// (dot-stuffed by the caller). Returns the queue id from the `250`.
fn send_data(relay: &Relay, sender: &str, rcpts: &[&str], data: &str) -> String {
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd(&format!("MAIL FROM:<{sender}>")).has(250, "2.1.0"));
    for r in rcpts {
        let reply = c.cmd(&format!("RCPT TO:<{r}>"));
        assert!(reply.has(250, "2.1.5"), "{r}: {}", reply.text);
    }
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(format!("{data}.\r\n").as_bytes());
    let reply = c.read_reply();
    assert!(reply.has(250, "2.0.0"), "{}", reply.text);
    c.cmd("QUIT");
    reply.text.split_whitespace().nth(2).unwrap().to_string()
}

/// Waits until the queue holds no message (polls the queue gauge; deliveries finish
/// asynchronously and the relay offers no event a test can await besides its metrics).
fn wait_spool_empty(relay: &Relay) {
    let deadline = Instant::now() + WAIT;
    loop {
        let n = relay.metric("coexist_queue_messages");
        if n == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue still holds {n} message(s)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn routes_to_onprem_and_cloud_smtp_sinks_with_rewrite() {
    let onprem = PostfixSink::start();
    let cloud = PostfixSink::start();
    let relay = relay_to(
        &onprem.addr.to_string(),
        &cloud.addr.to_string(),
        "retry_schedule = [\"1s\"]",
    );
    send(
        &relay,
        "alice@sender.example",
        &[
            "bob@corp.example",
            "carol@corp.example",
            "user3@corp.example",
        ],
        "m1@test",
    );
    let on = onprem.wait_for(1, WAIT);
    let cl = cloud.wait_for(1, WAIT);
    assert_eq!(
        on.len(),
        1,
        "one transaction for the two on-premises recipients"
    );
    assert!(
        on[0].contains("X-Rcpt-Args: <bob@corp.example>") || on[0].contains("bob@corp.example"),
        "{}",
        on[0]
    );
    assert_eq!(on[0].matches("X-Rcpt-Args:").count(), 2, "{}", on[0]);
    assert!(
        cl[0].contains("user3@tenant.cloud.example"),
        "rewritten to the contact: {}",
        cl[0]
    );
    assert!(!cl[0].contains("bob@corp.example\n"), "{}", cl[0]);
    // Byte for byte: one Received added, the body (with its leading dot) intact.
    assert!(on[0].contains("\n.leading dot\nbody\n"), "{}", on[0]);
    assert_eq!(
        on[0].matches("(coexist)").count(),
        1,
        "one Received of ours"
    );
    wait_spool_empty(&relay);
    assert!(
        relay.log.wait_for("status=sent", 0, WAIT).is_some(),
        "Postfix-style log line"
    );
    let delivered = relay.metric("coexist_deliveries_total{result=\"delivered\",route=\"onprem\"}");
    assert_eq!(delivered, 2.0);
    assert_eq!(
        relay.metric("coexist_deliveries_total{result=\"delivered\",route=\"cloud\"}"),
        1.0
    );
}

#[test]
fn temporary_failure_is_retried_and_delivered_once() {
    // The first RCPT gets 451; later ones are accepted.
    let tries = std::sync::atomic::AtomicUsize::new(0);
    let sink = ScriptSink::start(Script {
        rcpt: Box::new(move |_, _| {
            if tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                "451 4.3.0 try later".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    });
    let relay = relay_to(
        &sink.hostport(),
        &sink.hostport(),
        "retry_schedule = [\"1s\"]",
    );
    send(
        &relay,
        "alice@sender.example",
        &["bob@corp.example"],
        "retry@test",
    );
    let got = sink.wait_for(1, WAIT);
    wait_spool_empty(&relay);
    assert_eq!(got.len(), 1);
    assert_eq!(sink.received().len(), 1, "delivered once");
    assert!(relay.metric("coexist_deliveries_total{result=\"deferred\",route=\"onprem\"}") >= 1.0);
    assert!(relay.log.text().contains("status=deferred"));
}

#[test]
fn one_permanent_failure_bounces_with_a_readable_dsn() {
    let sink = ScriptSink::start(Script {
        rcpt: Box::new(|rcpt, _| {
            if rcpt.starts_with("carol@") {
                "550 5.1.1 no such user".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    });
    let relay = relay_to(
        &sink.hostport(),
        &sink.hostport(),
        "retry_schedule = [\"1s\"]",
    );
    // The sender is on-premises too, so the DSN comes back through the same sink.
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    assert!(c
        .cmd("MAIL FROM:<alice@corp.example> RET=HDRS ENVID=env-42")
        .has(250, "2.1.0"));
    for r in [
        "bob@corp.example",
        "carol@corp.example",
        "dave@corp.example",
    ] {
        assert!(c
            .cmd(&format!("RCPT TO:<{r}> NOTIFY=FAILURE ORCPT=rfc822;{r}"))
            .has(250, "2.1.5"));
    }
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(b"Subject: three\r\nMessage-ID: <three@test>\r\n\r\nsecret body\r\n.\r\n");
    let id = c
        .read_reply()
        .text
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let got = sink.wait_for(2, WAIT);
    wait_spool_empty(&relay);
    let original = got
        .iter()
        .find(|r| r.sender == "alice@corp.example")
        .expect("original");
    assert_eq!(
        original.recipients,
        vec!["bob@corp.example", "dave@corp.example"]
    );
    let dsn = got
        .iter()
        .find(|r| r.sender.is_empty())
        .expect("a DSN with MAIL FROM:<>");
    assert_eq!(dsn.recipients, vec!["alice@corp.example"]);
    let parsed = mail_parser::MessageParser::new()
        .parse(&dsn.data)
        .expect("DSN parses");
    let ct = parsed.content_type().expect("content type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let text = String::from_utf8_lossy(&dsn.data);
    assert!(text.contains("Original-Envelope-Id: env-42"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822;carol@corp.example"),
        "{text}"
    );
    assert!(
        text.contains("Original-Recipient: rfc822;carol@corp.example"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"),
        "{text}"
    );
    assert!(
        !text.contains("bob@corp.example\r\nAction"),
        "only the failed recipient is reported"
    );
    assert!(
        text.contains("text/rfc822-headers"),
        "RET=HDRS returns headers: {text}"
    );
    assert!(
        !text.contains("secret body"),
        "RET=HDRS must not return the body"
    );
    assert!(text.contains(&id), "{text}");
}

#[test]
fn connection_dropped_mid_data_is_retried() {
    let sink = ScriptSink::start(Script {
        drop_in_data: Box::new(|conn| conn == 1),
        ..Script::default()
    });
    let relay = relay_to(
        &sink.hostport(),
        &sink.hostport(),
        "retry_schedule = [\"1s\"]",
    );
    send(
        &relay,
        "alice@sender.example",
        &["bob@corp.example"],
        "drop@test",
    );
    let got = sink.wait_for(1, WAIT);
    wait_spool_empty(&relay);
    assert_eq!(got[0].message_id().as_deref(), Some("<drop@test>"));
    assert!(sink.connections() >= 2);
}

#[test]
fn tls_required_never_sends_in_clear() {
    let sink = ScriptSink::start(Script::default()); // offers no STARTTLS
    let relay = RelaySetup::default()
        .section(
            "route.onprem",
            &format!("smarthost = [\"{}\"]\ntls = \"required\"", sink.hostport()),
        )
        .section("queue", "retry_schedule = [\"1h\"]")
        .start();
    let id = send(
        &relay,
        "alice@sender.example",
        &["bob@corp.example"],
        "tls@test",
    );
    assert!(
        relay.log.wait_for("status=deferred", 0, WAIT).is_some(),
        "{}",
        relay.log.text()
    );
    assert_eq!(sink.mail_commands(), 0, "no MAIL FROM in clear");
    // The attempt logs before it persists the new state: wait for `queue list` to show it.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let out = relay.cli(&["queue", "list"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("deferred, next try in") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        text.contains(&id) && text.contains("deferred, next try in"),
        "{text}"
    );
    assert!(text.contains("4.7."), "TLS reason shown: {text}");
    assert_eq!(sink.mail_commands(), 0, "no MAIL FROM in clear");
}

#[test]
fn sessions_are_reused_for_several_messages() {
    let sink = ScriptSink::start(Script::default());
    let relay = relay_to(
        &sink.hostport(),
        &sink.hostport(),
        "retry_schedule = [\"1s\"]\ndelivery_concurrency = 1",
    );
    for i in 0..5 {
        send(
            &relay,
            "alice@sender.example",
            &["bob@corp.example"],
            &format!("reuse{i}@test"),
        );
    }
    sink.wait_for(5, WAIT);
    assert!(
        sink.connections() < 5,
        "5 messages over {} connection(s)",
        sink.connections()
    );
}

#[test]
fn queue_commands_flush_and_delete() {
    // The next hop refuses RCPT until the test flips it.
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&open);
    let sink = ScriptSink::start(Script {
        rcpt: Box::new(move |_, _| {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                "250 2.1.5 Ok".into()
            } else {
                "450 4.2.1 mailbox busy".into()
            }
        }),
        ..Script::default()
    });
    let relay = relay_to(
        &sink.hostport(),
        &sink.hostport(),
        "retry_schedule = [\"1h\"]",
    );
    let keep = send(
        &relay,
        "alice@corp.example",
        &["bob@corp.example"],
        "keep@test",
    );
    let silent = send(
        &relay,
        "alice@corp.example",
        &["bob@corp.example"],
        "silent@test",
    );
    let bounced = send(
        &relay,
        "alice@corp.example",
        &["bob@corp.example"],
        "bounce@test",
    );
    let deadline = Instant::now() + WAIT;
    while relay.metric("coexist_deliveries_total{result=\"deferred\",route=\"onprem\"}") < 3.0 {
        assert!(Instant::now() < deadline, "three deferrals");
        std::thread::sleep(Duration::from_millis(50));
    }
    let show = relay.cli(&["queue", "show", &keep]);
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("\"last_error\"") && text.contains("Message-ID: <keep@test>"),
        "{text}"
    );

    let out = relay.cli(&["queue", "delete", "--silent", &silent]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = relay.cli(&["queue", "delete", &bounced]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = relay.cli(&["queue", "delete", "NOSUCHID0000000A"]);
    assert_eq!(out.status.code(), Some(1));

    open.store(true, std::sync::atomic::Ordering::SeqCst);
    let out = relay.cli(&["queue", "flush"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sink.wait_for(2, WAIT);
    wait_spool_empty(&relay);
    let by_id: HashMap<Option<String>, usize> = got.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.message_id()).or_default() += 1;
        m
    });
    assert_eq!(
        by_id.get(&Some("<keep@test>".into())),
        Some(&1),
        "{by_id:?}"
    );
    assert!(!by_id.contains_key(&Some("<silent@test>".into())));
    assert!(!by_id.contains_key(&Some("<bounce@test>".into())));
    let dsns: Vec<_> = got.iter().filter(|r| r.sender.is_empty()).collect();
    assert_eq!(dsns.len(), 1, "one DSN, for the non-silent delete");
    assert!(String::from_utf8_lossy(&dsns[0].data).contains("deleted from the queue"));
}

#[test]
fn sigkill_with_200_queued_then_restart_delivers_all() {
    // A next hop that is down: connections refused.
    let port = coexist_e2e::free_port();
    let hop = format!("127.0.0.1:{port}");
    let mut relay = relay_to(&hop, &hop, "retry_schedule = [\"1s\"]");
    for i in 0..200 {
        send(
            &relay,
            "alice@sender.example",
            &["bob@corp.example"],
            &format!("k{i}@test"),
        );
    }
    relay.kill();
    // Bring the next hop up on that port, then restart the relay.
    let sink = ScriptSink::start_on(port, Script::default());
    relay.restart();
    let got = sink.wait_for(200, Duration::from_secs(120));
    wait_spool_empty(&relay);
    let mut ids: Vec<String> = got.iter().filter_map(|r| r.message_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every acknowledged message arrived");
}

/// A body of about `len` bytes in base64-like lines; with `dots`, every
/// seventh line begins with a dot (as the client sends it: doubled).
fn large_body(len: usize, dots: bool) -> (String, String) {
    let (mut wire, mut stored) = (String::new(), String::new());
    let mut n = 0;
    while stored.len() < len {
        let line =
            format!("{n:06}QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n");
        if dots && n % 7 == 3 {
            wire.push_str(&format!("..{line}"));
            stored.push_str(&format!(".{line}"));
        } else {
            wire.push_str(&line);
            stored.push_str(&line);
        }
        n += 1;
    }
    (wire, stored)
}

/// Issue #15: large messages (streamed to their own spool file, whose first
/// attempt goes out by sendfile) arrive byte for byte at real next hops:
/// Postfix's smtpd, which offers CHUNKING (one `BDAT <n> LAST`), and
/// smtp-sink, which does not (DATA: the file as it is without dot lines,
/// dot-stuffed through user space with them).
#[test]
fn large_messages_arrive_intact_by_bdat_and_by_data() {
    let onprem = PostfixSink::start();
    let cloud = PostfixSink::start();
    let postfix = Postfix::start(&["tenant.cloud.example"], cloud.addr, "");
    let relay = relay_to(
        &onprem.addr.to_string(),
        &postfix.addr.to_string(),
        "retry_schedule = [\"1s\"]",
    );
    let mut expected = Vec::new();
    for (n, dots) in [false, true].into_iter().enumerate() {
        let (wire, stored) = large_body(700 * 1024, dots);
        for rcpt in ["bob@corp.example", "user3@corp.example"] {
            let data = format!("Subject: large {n}\r\nMessage-ID: <large{n}.{rcpt}>\r\n\r\n{wire}");
            send_data(&relay, "a@sender.example", &[rcpt], &data);
        }
        expected.push(stored.replace("\r\n", "\n"));
    }
    for (hop, dumps) in [
        ("smtp-sink", onprem.wait_for(2, WAIT)),
        ("Postfix", cloud.wait_for(2, WAIT)),
    ] {
        assert_eq!(dumps.len(), 2, "{hop}");
        for (n, body) in expected.iter().enumerate() {
            let dump = dumps
                .iter()
                .find(|d| d.contains(&format!("Subject: large {n}\n")))
                .unwrap_or_else(|| panic!("{hop}: message {n} missing"));
            let start = dump.find("\n\n").expect("header end") + 2;
            // smtp-sink ends a dump with an empty line of its own.
            assert_eq!(&dump[start..], format!("{body}\n"), "{hop}: message {n}");
        }
    }
    wait_spool_empty(&relay);
}
