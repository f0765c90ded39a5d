//! End-to-end: what happens to mail while it waits and while the relay stops
//! (issue #16) — the built relay against scripted next hops that are down or
//! answer 451 at the moment it matters.
//!
//! - a user migrated (or rolled back) while mail for them waits is delivered
//!   where they live now;
//! - SIGTERM lets an open transaction finish, tells idle sessions 421 4.3.2;
//! - one "delayed" DSN per message, never twice across a restart;
//! - SIGHUP swaps the certificate for new sessions only, and keeps the old one
//!   when the new pair is broken.

use coexist_e2e::sink::{Received, Script, ScriptSink};
use coexist_e2e::smtp::Client;
use coexist_e2e::tls::{write_atomically, write_self_signed};
use coexist_e2e::{free_port, Relay, RelaySetup};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A next hop that answers every RCPT with 451: "down" for this mail.
fn refusing_sink() -> ScriptSink {
    ScriptSink::start(Script {
        rcpt: Box::new(|_, _| "451 4.3.0 mailbox busy, try later".into()),
        ..Script::default()
    })
}

fn relay(onprem: &str, cloud: &str, contacts: &str, queue: &str) -> Relay {
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
        .contacts(contacts)
        .start()
}

/// One message through the plain listener; returns its queue id.
fn send(relay: &Relay, from: &str, rcpt: &str, message_id: &str) -> String {
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).has(250, "2.1.0"));
    let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    assert!(reply.has(250, "2.1.5"), "{}", reply.text);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(
        format!("From: <{from}>\r\nSubject: t\r\nMessage-ID: <{message_id}>\r\n\r\nhello\r\n.\r\n")
            .as_bytes(),
    );
    let reply = c.read_reply();
    assert!(reply.has(250, "2.0.0"), "{}", reply.text);
    c.cmd("QUIT");
    reply.text.split_whitespace().nth(2).unwrap().to_string()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // The relay's metrics and spool are polled: it offers no event to await.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deferred(relay: &Relay, route: &str) -> f64 {
    relay.metric(&format!(
        "coexist_deliveries_total{{result=\"deferred\",route=\"{route}\"}}"
    ))
}

/// Replaces the contacts table the way the migrator does (new file renamed in),
/// and waits until the relay has loaded it.
fn write_contacts(relay: &Relay, text: &str) {
    let loads = relay.metric("coexist_routing_reloads_total{result=\"ok\"}");
    write_atomically(&relay.dir.path().join("contacts"), text.as_bytes());
    wait_until("the new contacts table", || {
        relay.metric("coexist_routing_reloads_total{result=\"ok\"}") > loads
    });
}

fn rerouted(relay: &Relay, from: &str, to: &str) -> f64 {
    relay.metric(&format!(
        "coexist_recipients_rerouted_total{{from=\"{from}\",to=\"{to}\"}}"
    ))
}

// ---------------------------------------------------------------------------
// Route again at each retry

#[test]
fn a_user_migrated_while_their_mail_waits_gets_it_in_the_cloud() {
    let onprem = refusing_sink();
    let cloud = ScriptSink::start(Script::default());
    let relay = relay(
        &onprem.hostport(),
        &cloud.hostport(),
        "",
        "retry_schedule = [\"1s\"]",
    );
    send(
        &relay,
        "alice@sender.example",
        "bob@corp.example",
        "flip@test",
    );
    wait_until("a deferral toward on-prem", || {
        deferred(&relay, "onprem") >= 1.0
    });

    // The migrator flips bob while on-prem still says 451.
    write_contacts(&relay, "bob@corp.example bob@tenant.cloud.example\n");
    let got = cloud.wait_for(1, WAIT);
    assert_eq!(got[0].recipients, vec!["bob@tenant.cloud.example"]);
    assert_eq!(got[0].message_id().as_deref(), Some("<flip@test>"));
    assert!(
        relay
            .log
            .wait_for("rerouted from onprem to cloud", 0, WAIT)
            .is_some(),
        "{}",
        relay.log.text()
    );
    assert_eq!(rerouted(&relay, "onprem", "cloud"), 1.0);
    wait_until("the queue to empty", || {
        relay.metric("coexist_queue_messages") == 0.0
    });
    assert!(onprem.received().is_empty(), "never into the old mailbox");
}

#[test]
fn a_rollback_while_the_cloud_is_down_sends_the_mail_home() {
    let onprem = ScriptSink::start(Script::default());
    // Nothing listens: the cloud route is down at the time of the rollback.
    let cloud = format!("127.0.0.1:{}", free_port());
    let relay = relay(
        &onprem.hostport(),
        &cloud,
        "bob@corp.example bob@tenant.cloud.example\n",
        "retry_schedule = [\"1s\"]",
    );
    send(
        &relay,
        "alice@sender.example",
        "bob@corp.example",
        "back@test",
    );
    wait_until("a deferral toward the cloud", || {
        deferred(&relay, "cloud") >= 1.0
    });

    write_contacts(&relay, "");
    let got = onprem.wait_for(1, WAIT);
    assert_eq!(got[0].recipients, vec!["bob@corp.example"]);
    assert_eq!(rerouted(&relay, "cloud", "onprem"), 1.0);
    assert!(relay.log.text().contains("rerouted from cloud to onprem"));
}

// ---------------------------------------------------------------------------
// SIGTERM

#[test]
fn sigterm_lets_an_open_transaction_finish_and_exits_0() {
    let down = format!("127.0.0.1:{}", free_port());
    let mut relay = relay(&down, &down, "", "retry_schedule = [\"1m\"]");
    let (mut open, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(open.ehlo().code, 250);
    assert!(open
        .cmd("MAIL FROM:<alice@sender.example>")
        .has(250, "2.1.0"));
    let (mut idle, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(idle.ehlo().code, 250);

    relay.signal("TERM");
    assert!(relay.log.wait_for("SIGTERM", 0, WAIT).is_some());
    // Between transactions: told at once.
    assert!(idle.read_reply().has(421, "4.3.2"));
    // In a transaction: goes on to its 250, then hears 421.
    assert!(open.cmd("RCPT TO:<bob@corp.example>").has(250, "2.1.5"));
    assert_eq!(open.cmd("DATA").code, 354);
    open.send(b"Subject: late\r\nMessage-ID: <late@test>\r\n\r\nmade it\r\n.\r\n");
    let accepted = open.read_reply();
    assert!(accepted.has(250, "2.0.0"), "{}", accepted.text);
    assert!(open.cmd("NOOP").has(421, "4.3.2"));
    assert_eq!(relay.wait_exit(WAIT), Some(0), "{}", relay.log.text());

    // What was acknowledged is in the spool for the next start.
    let list = relay.cli(&["queue", "list", "--json"]);
    let text = String::from_utf8_lossy(&list.stdout);
    let id = accepted.text.split_whitespace().nth(2).unwrap();
    assert!(text.contains(id), "{text}");
}

#[test]
fn sigterm_after_the_grace_closes_an_unfinished_transaction_without_250() {
    let down = format!("127.0.0.1:{}", free_port());
    let mut relay = RelaySetup::default()
        .section(
            "server",
            "hostname = \"relay.test\"\nspool_dir = \"spool\"\nshutdown_grace = \"1s\"",
        )
        .section("route.onprem", &format!("smarthost = [\"{down}\"]"))
        .start();
    let (mut open, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(open.ehlo().code, 250);
    assert!(open
        .cmd("MAIL FROM:<alice@sender.example>")
        .has(250, "2.1.0"));
    assert!(open.cmd("RCPT TO:<bob@corp.example>").has(250, "2.1.5"));
    assert_eq!(open.cmd("DATA").code, 354);
    open.send(b"Subject: never finished\r\n\r\n");
    relay.signal("TERM");
    assert_eq!(relay.wait_exit(WAIT), Some(0), "{}", relay.log.text());
    // The client is cut off without a 250: it will retry.
    assert!(
        open.try_read_reply().is_none(),
        "no reply, the connection is closed"
    );
    let list = relay.cli(&["queue", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
}

// ---------------------------------------------------------------------------
// Delay notices

/// Every DSN the sink got that says `Action: delayed`.
fn delay_notices(sink: &ScriptSink) -> Vec<Received> {
    sink.received()
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.data).contains("Action: delayed"))
        .collect()
}

/// The attempts made so far for the one recipient of queued message `id`.
fn attempts(relay: &Relay, id: &str) -> u64 {
    let out = relay.cli(&["queue", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.as_array()
        .into_iter()
        .flatten()
        .find(|e| e["id"] == id)
        .and_then(|e| e["recipients"][0]["attempts"].as_u64())
        .unwrap_or(0)
}

#[test]
fn one_delay_notice_per_message_even_across_a_restart() {
    let onprem = refusing_sink();
    // Senders on corp.example are cloud users: their notices go to this sink.
    let cloud = ScriptSink::start(Script::default());
    let mut relay = relay(
        &onprem.hostport(),
        &cloud.hostport(),
        "carol@corp.example carol@tenant.cloud.example\n",
        "retry_schedule = [\"1s\"]\ndelay_warning = \"2s\"",
    );
    let id = send(
        &relay,
        "carol@corp.example",
        "bob@corp.example",
        "slow@test",
    );
    let got = cloud.wait_for(1, WAIT);
    let notice = &got[0];
    assert_eq!(notice.sender, "", "a DSN comes from <>");
    assert_eq!(notice.recipients, vec!["carol@tenant.cloud.example"]);
    let text = String::from_utf8_lossy(&notice.data);
    for field in [
        "Subject: Delayed Mail (still being retried)",
        "Action: delayed",
        "Final-Recipient: rfc822;bob@corp.example",
        "Status: 4.3.0",
        "Diagnostic-Code: smtp; 451 4.3.0 mailbox busy, try later",
        "Content-Type: text/rfc822-headers",
        "Message-ID: <slow@test>",
    ] {
        assert!(text.contains(field), "missing {field:?} in\n{text}");
    }
    assert!(!text.contains("\r\nhello\r\n"), "headers only");

    // More attempts, a restart, more attempts: still the one notice.
    let before = attempts(&relay, &id);
    wait_until("two more attempts", || attempts(&relay, &id) >= before + 2);
    relay.signal("TERM");
    assert_eq!(relay.wait_exit(WAIT), Some(0));
    relay.restart();
    let before = attempts(&relay, &id);
    wait_until("two attempts after the restart", || {
        attempts(&relay, &id) >= before + 2
    });
    assert_eq!(delay_notices(&cloud).len(), 1, "{}", about(&cloud));
}

/// What a sink got, in a line per transaction (for failure messages).
fn about(sink: &ScriptSink) -> String {
    sink.received()
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.data);
            let subject = text
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap_or("");
            format!("<{}> -> {:?}: {subject}", r.sender, r.recipients)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_delay_notice_for_never_for_failure_only_or_the_null_sender() {
    let onprem = refusing_sink();
    let cloud = ScriptSink::start(Script::default());
    let relay = relay(
        &onprem.hostport(),
        &cloud.hostport(),
        "carol@corp.example carol@tenant.cloud.example\n",
        "retry_schedule = [\"1s\"]\ndelay_warning = \"1s\"",
    );
    let mut ids = Vec::new();
    for (from, notify) in [
        ("carol@corp.example", " NOTIFY=NEVER"),
        ("carol@corp.example", " NOTIFY=FAILURE"),
        ("", ""),
        ("carol@corp.example", " NOTIFY=DELAY"),
    ] {
        let (mut c, _) = Client::connect(relay.addr("smtp"));
        assert_eq!(c.ehlo().code, 250);
        assert!(c.cmd(&format!("MAIL FROM:<{from}>")).has(250, "2.1.0"));
        assert!(c
            .cmd(&format!("RCPT TO:<bob@corp.example>{notify}"))
            .has(250, "2.1.5"));
        assert_eq!(c.cmd("DATA").code, 354);
        c.send(
            format!(
                "Subject: n\r\nMessage-ID: <n{}@test>\r\n\r\nx\r\n.\r\n",
                ids.len()
            )
            .as_bytes(),
        );
        let reply = c.read_reply();
        assert!(reply.has(250, "2.0.0"));
        ids.push(reply.text.split_whitespace().nth(2).unwrap().to_string());
    }
    // The one that asked for it gets it; by then the others were past their
    // delay_warning too, and two attempts later still nothing came for them.
    let got = cloud.wait_for(1, WAIT);
    assert!(String::from_utf8_lossy(&got[0].data).contains("Message-ID: <n3@test>"));
    let before: Vec<u64> = ids.iter().map(|id| attempts(&relay, id)).collect();
    wait_until("two more attempts each", || {
        ids.iter()
            .zip(&before)
            .all(|(id, b)| attempts(&relay, id) >= b + 2)
    });
    assert_eq!(delay_notices(&cloud).len(), 1, "{}", about(&cloud));
}

// ---------------------------------------------------------------------------
// Certificate reload

#[test]
fn sighup_reloads_the_certificate_for_new_sessions_and_keeps_a_good_one_on_a_bad_pair() {
    let sink = ScriptSink::start(Script::default());
    let setup = RelaySetup::default().section(
        "route.onprem",
        &format!("smarthost = [\"{}\"]\ntls = \"none\"", sink.hostport()),
    );
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (cert, key) = (certs.join("relay.crt"), certs.join("relay.key"));
    write_self_signed(&cert, &key, "first.relay.test", 2090);
    std::fs::write(dir.path().join("relay.toml"), setup.render()).unwrap();
    std::fs::write(dir.path().join("contacts"), "").unwrap();
    let relay = Relay::start_in(dir);
    let expiry = || relay.metric("coexist_tls_certificate_expiry_timestamp_seconds");
    let first_expiry = expiry();

    let (before, first) = Client::connect(relay.addr("smtp")).0.starttls();
    write_self_signed(&cert, &key, "second.relay.test", 2091);
    let hups = relay.log.len();
    relay.signal("HUP");
    assert!(relay
        .log
        .wait_for("certificate reloaded", hups, WAIT)
        .is_some());
    let (_after, second) = Client::connect(relay.addr("smtp")).0.starttls();
    assert_ne!(first, second, "a new session gets the new certificate");
    assert!(der_names(&second, "second.relay.test"));
    assert_ne!(
        expiry(),
        first_expiry,
        "the expiry metric follows the one in force"
    );

    // The session from before keeps its handshake and still delivers.
    let mut before = before;
    assert!(before.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(before.cmd("RCPT TO:<bob@corp.example>").has(250, "2.1.5"));
    assert_eq!(before.cmd("DATA").code, 354);
    before.send(b"Subject: over the old handshake\r\n\r\nok\r\n.\r\n");
    assert!(before.read_reply().has(250, "2.0.0"));
    assert_eq!(sink.wait_for(1, WAIT).len(), 1);

    // A half-replaced pair (a new certificate, the old key) is refused: the
    // second certificate stays, with the file and the reason in the log.
    let stray = tempfile::tempdir().unwrap();
    write_self_signed(
        &stray.path().join("x.crt"),
        &stray.path().join("x.key"),
        "third.relay.test",
        2092,
    );
    std::fs::copy(stray.path().join("x.crt"), &cert).unwrap();
    let hups = relay.log.len();
    let second_expiry = expiry();
    relay.signal("HUP");
    let line = relay
        .log
        .wait_for("certificate not reloaded", hups, WAIT)
        .expect("the refusal is logged");
    let logged = relay
        .log
        .text()
        .lines()
        .nth(line)
        .unwrap_or_default()
        .to_string();
    assert!(
        logged.contains("relay.crt") && logged.contains("does the key belong"),
        "{logged}"
    );
    let (_later, third) = Client::connect(relay.addr("smtp")).0.starttls();
    assert_eq!(third, second, "the pair in force stays");
    assert_eq!(expiry(), second_expiry);
}

/// True when the DER certificate names `name` (its SAN is stored as ASCII).
fn der_names(der: &[u8], name: &str) -> bool {
    der.windows(name.len()).any(|w| w == name.as_bytes())
}
