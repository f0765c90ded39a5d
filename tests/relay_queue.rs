//! End-to-end: the queue commands (issue #18), against the built relay, running
//! or stopped: list with filters and its shape, hold/release across a SIGKILL,
//! delete by filter, requeue with the route decided again.

use coexist_e2e::sink::{Script, ScriptSink};
use coexist_e2e::smtp::Client;
use coexist_e2e::tls::write_atomically;
use coexist_e2e::{free_port, Relay, RelaySetup};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A relay whose on-prem hop (`port`) is down until a sink starts there.
fn relay(port: u16, cloud: &str, retry: &str) -> Relay {
    RelaySetup::default()
        .section(
            "route.onprem",
            &format!("smarthost = [\"127.0.0.1:{port}\"]\ntls = \"none\""),
        )
        .section(
            "route.cloud",
            &format!("smarthost = [\"{cloud}\"]\ntls = \"none\""),
        )
        .section("queue", &format!("retry_schedule = [\"{retry}\"]"))
        .contacts("")
        .start()
}

fn send(relay: &Relay, from: &str, rcpt: &str, message_id: &str) -> String {
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).has(250, "2.1.0"));
    assert!(c.cmd(&format!("RCPT TO:<{rcpt}>")).has(250, "2.1.5"));
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(format!("Subject: q\r\nMessage-ID: <{message_id}>\r\n\r\nx\r\n.\r\n").as_bytes());
    let reply = c.read_reply();
    assert!(reply.has(250, "2.0.0"), "{}", reply.text);
    reply.text.split_whitespace().nth(2).unwrap().to_string()
}

/// Runs `coexist-relay queue ARGS`; (exit code, stdout, stderr).
fn queue(relay: &Relay, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    let out = relay.cli(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The queue as `list --json` gives it.
fn listed(relay: &Relay, filter: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(filter);
    let (code, out, err) = queue(relay, &args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(&out)
        .expect("JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ids(list: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = list
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // The relay's spool and metrics are polled: it offers no event to await.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deferred(relay: &Relay) -> f64 {
    relay.metric("coexist_deliveries_total{result=\"deferred\",route=\"onprem\"}")
}

#[test]
fn a_held_message_survives_a_sigkill_and_is_delivered_only_when_released() {
    let port = free_port();
    let mut relay = relay(port, "127.0.0.1:9", "1s");
    let held = send(
        &relay,
        "alice@sender.example",
        "bob@corp.example",
        "held@test",
    );
    wait_until("a deferral", || deferred(&relay) >= 1.0);
    let (code, out, err) = queue(&relay, &["hold", &held]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 message(s) held"), "{out}");
    assert_eq!(listed(&relay, &[])[0]["held"], true);
    let (_, text, _) = queue(&relay, &["list"]);
    assert!(text.contains("HELD"), "{text}");

    // The hop comes back; a flush and another message go through, the held one not.
    let sink = ScriptSink::start_on(port, Script::default());
    let (code, out, _) = queue(&relay, &["flush"]);
    assert_eq!(code, 0);
    assert!(out.contains("scheduled for delivery now"), "{out}");
    send(
        &relay,
        "alice@sender.example",
        "carol@corp.example",
        "first@test",
    );
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].message_id().as_deref(), Some("<first@test>"));

    // Held across a crash: the state file says so. (What was delivered just
    // before the kill may come again: delivery is at-least-once.)
    relay.kill();
    relay.restart();
    send(
        &relay,
        "alice@sender.example",
        "carol@corp.example",
        "second@test",
    );
    wait_until("the second message", || {
        arrived(&sink, "<second@test>") == 1
    });
    assert_eq!(listed(&relay, &["--status", "held"]).len(), 1);
    let (code, out, _) = queue(&relay, &["requeue", &held]);
    assert_eq!(code, 0);
    assert!(out.contains("held; release it first"), "{out}");

    assert_eq!(arrived(&sink, "<held@test>"), 0, "not before the release");
    let (code, out, err) = queue(&relay, &["release", &held]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 message(s) released"), "{out}");
    wait_until("the released message", || {
        arrived(&sink, "<held@test>") == 1
    });
}

/// How many copies of the message with this Message-ID the sink got.
fn arrived(sink: &ScriptSink, message_id: &str) -> usize {
    sink.received()
        .iter()
        .filter(|r| r.message_id().as_deref() == Some(message_id))
        .count()
}

#[test]
fn a_filtered_delete_touches_only_what_it_matched() {
    let port = free_port();
    let relay = relay(port, "127.0.0.1:9", "1h");
    let a1 = send(
        &relay,
        "alice@sender.example",
        "bob@corp.example",
        "a1@test",
    );
    let a2 = send(
        &relay,
        "alice@sender.example",
        "dave@corp.example",
        "a2@test",
    );
    let c = send(
        &relay,
        "carol@partner.example",
        "bob@corp.example",
        "c@test",
    );
    wait_until("three deferrals", || deferred(&relay) >= 3.0);

    // Filters, alone and together.
    assert_eq!(ids(&listed(&relay, &["--from", "alice@sender.example"])), {
        let mut v = vec![a1.clone(), a2.clone()];
        v.sort();
        v
    });
    assert_eq!(
        ids(&listed(
            &relay,
            &["--to", "bob@corp.example", "--from", "@partner.example"]
        )),
        vec![c.clone()]
    );
    assert_eq!(listed(&relay, &["--route", "cloud"]).len(), 0);
    assert_eq!(listed(&relay, &["--older-than", "1h"]).len(), 0);
    assert_eq!(listed(&relay, &["--status", "deferred"]).len(), 3);
    let (_, shape, _) = queue(&relay, &["list", "--summary"]);
    assert!(shape.contains("onprem") && shape.contains(" 3 "), "{shape}");

    // More than one match needs --yes; nothing is touched without it.
    let (code, _, err) = queue(&relay, &["delete", "--from", "alice@sender.example"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2 messages match"), "{err}");
    assert_eq!(listed(&relay, &[]).len(), 3);
    let (code, out, err) = queue(
        &relay,
        &[
            "delete",
            "--silent",
            "--yes",
            "--json",
            "--from",
            "alice@sender.example",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["acted"].as_array().map(Vec::len), Some(2), "{out}");
    wait_until("two messages gone", || listed(&relay, &[]).len() == 1);
    assert_eq!(ids(&listed(&relay, &[])), vec![c]);
    let (code, _, err) = queue(&relay, &["delete", "NOSUCHID0000000A"]);
    assert_eq!(code, 1);
    assert!(err.contains("no message NOSUCHID0000000A"), "{err}");
}

#[test]
fn requeue_attempts_now_and_decides_the_route_again() {
    let port = free_port();
    let cloud = ScriptSink::start(Script::default());
    let relay = relay(port, &cloud.hostport(), "1h");
    let id = send(
        &relay,
        "alice@sender.example",
        "bob@corp.example",
        "rq@test",
    );
    wait_until("a deferral", || deferred(&relay) >= 1.0);
    // bob moves to the cloud while his mail waits an hour for on-prem.
    let loads = relay.metric("coexist_routing_reloads_total{result=\"ok\"}");
    write_atomically(
        &relay.dir.path().join("contacts"),
        b"bob@corp.example bob@tenant.cloud.example\n",
    );
    wait_until("the new table", || {
        relay.metric("coexist_routing_reloads_total{result=\"ok\"}") > loads
    });
    let (code, out, err) = queue(&relay, &["requeue", "--json", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id), "{out}");
    let got = cloud.wait_for(1, WAIT);
    assert_eq!(got[0].recipients, vec!["bob@tenant.cloud.example"]);
}

#[test]
fn the_actions_work_on_the_spool_when_no_relay_runs() {
    let port = free_port();
    let mut relay = relay(port, "127.0.0.1:9", "1s");
    let id = send(
        &relay,
        "alice@sender.example",
        "bob@corp.example",
        "off@test",
    );
    wait_until("a deferral", || deferred(&relay) >= 1.0);
    relay.signal("TERM");
    assert_eq!(relay.wait_exit(WAIT), Some(0));

    let (code, out, err) = queue(&relay, &["hold", "--json", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id), "{out}");
    // Started again with its hop up, the relay leaves the held message alone.
    let sink = ScriptSink::start_on(port, Script::default());
    relay.restart();
    send(
        &relay,
        "alice@sender.example",
        "carol@corp.example",
        "other@test",
    );
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].message_id().as_deref(), Some("<other@test>"));
    assert_eq!(listed(&relay, &["--status", "held"]).len(), 1);
}
