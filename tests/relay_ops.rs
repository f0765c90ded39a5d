//! End-to-end: the operator's surface (issue #4) — `/metrics` moving by exact amounts,
//! `promtool check metrics`, a real Prometheus scraping the relay, `/healthz`, `/readyz`.

use coexist_e2e::prometheus::Prometheus;
use coexist_e2e::smtp::Client;
use coexist_e2e::{http_get, metric_value, RelaySetup};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn send(c: &mut Client, rcpt: &str) {
    assert!(c.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(c.cmd(&format!("RCPT TO:<{rcpt}>")).has(250, "2.1.5"));
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(b"Subject: m\r\n\r\nmetrics\r\n.\r\n");
    assert!(c.read_reply().has(250, "2.0.0"));
}

#[test]
fn metrics_move_by_exact_amounts_and_pass_promtool() {
    let relay = RelaySetup::default()
        .section("limits", "max_message_size = \"1KiB\"")
        .start();
    let m = relay.metrics.expect("metrics endpoint");
    let (_, before) = http_get(m, "/metrics");
    for family in [
        "coexist_smtp_sessions_active",
        "coexist_smtp_connections_total{listener=\"smtp\"}",
        "coexist_messages_received_total{listener=\"smtps\"}",
        "coexist_recipients_rejected_total{reason=\"spool\"}",
        "coexist_deliveries_total{result=\"bounced\",route=\"cloud\"}",
        "coexist_delivery_duration_seconds_count{route=\"onprem\"}",
        "coexist_accept_duration_seconds_count{listener=\"smtps\"}",
        "coexist_queue_messages",
        "coexist_queue_oldest_seconds",
        "coexist_routing_contacts",
        "coexist_routing_reloads_total{result=\"error\"}",
        "coexist_tls_handshakes_total{direction=\"outbound\",result=\"ok\"}",
    ] {
        assert!(
            before.contains(&format!("{family} ")),
            "{family} exists from start"
        );
    }
    for process in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(metric_value(&before, process) > 0.0, "{process} exported");
    }
    assert!(
        before.contains("\nprocess_cpu_seconds_total "),
        "CPU exported"
    );
    assert_eq!(metric_value(&before, "coexist_routing_contacts"), 1.0);
    assert_eq!(
        metric_value(&before, "coexist_routing_reloads_total{result=\"ok\"}"),
        1.0
    );

    let addr = relay.addr("smtp");
    let (mut c, _) = Client::connect(addr);
    c.ehlo();
    send(&mut c, "bob@corp.example");
    send(&mut c, "user3@corp.example");
    // One relay denial and one oversize message.
    let (mut u, _) = Client::connect_from("127.0.0.2".parse().unwrap(), addr);
    u.ehlo();
    assert!(u.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(u.cmd("RCPT TO:<x@elsewhere.example>").has(554, "5.7.1"));
    assert!(u
        .cmd("MAIL FROM:<a@sender.example> SIZE=5000")
        .has(503, "5.5.1"));
    assert!(u.cmd("RSET").has(250, "2.0.0"));
    assert!(u
        .cmd("MAIL FROM:<a@sender.example> SIZE=5000")
        .has(552, "5.3.4"));

    let (_, after) = http_get(m, "/metrics");
    let delta = |series: &str| metric_value(&after, series) - metric_value(&before, series);
    assert_eq!(
        delta("coexist_messages_received_total{listener=\"smtp\"}"),
        2.0
    );
    assert_eq!(
        delta("coexist_messages_received_total{listener=\"smtps\"}"),
        0.0
    );
    assert_eq!(
        delta("coexist_smtp_connections_total{listener=\"smtp\"}"),
        2.0
    );
    assert_eq!(
        delta("coexist_recipients_rejected_total{reason=\"relay_denied\"}"),
        1.0
    );
    assert_eq!(
        delta("coexist_recipients_rejected_total{reason=\"size\"}"),
        1.0
    );
    assert_eq!(
        delta("coexist_recipients_rejected_total{reason=\"sequence\"}"),
        1.0
    );
    // One accept latency per message acknowledged, none for the refused.
    assert_eq!(
        delta("coexist_accept_duration_seconds_count{listener=\"smtp\"}"),
        2.0
    );
    assert!(delta("coexist_accept_duration_seconds_sum{listener=\"smtp\"}") > 0.0);
    assert_eq!(metric_value(&after, "coexist_smtp_sessions_active"), 2.0);
    let bytes = delta("coexist_bytes_received_total{listener=\"smtp\"}");
    assert!(
        bytes > 2.0 * 30.0 && bytes < 2.0 * 1024.0,
        "bytes counted: {bytes}"
    );

    coexist_e2e::promtool_check_metrics(&after);
}

#[test]
fn tls_handshakes_are_counted() {
    let relay = RelaySetup::default().start();
    let port = relay.addr("smtps").port().to_string();
    let before = relay.metric("coexist_tls_handshakes_total{direction=\"inbound\",result=\"ok\"}");
    let (ok, out, err) = coexist_e2e::python(
        "smtplib_send.py",
        &[
            "127.0.0.1",
            &port,
            "--mode",
            "ssl",
            "--rcpt",
            "bob@corp.example",
        ],
    );
    assert!(ok, "{out}{err}");
    // A plaintext client on the implicit-TLS port is a failed handshake.
    let mut raw = std::net::TcpStream::connect(relay.addr("smtps")).unwrap();
    raw.write_all(b"EHLO plain\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut raw, &mut sink);
    let ok_after =
        relay.metric("coexist_tls_handshakes_total{direction=\"inbound\",result=\"ok\"}");
    let err_after =
        relay.metric("coexist_tls_handshakes_total{direction=\"inbound\",result=\"error\"}");
    assert_eq!(ok_after - before, 1.0);
    assert_eq!(err_after, 1.0);
}

#[test]
fn health_and_readiness() {
    let relay = RelaySetup::default().start();
    let m = relay.metrics.unwrap();
    assert_eq!(http_get(m, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http_get(m, "/readyz").0, 200);
    assert_eq!(http_get(m, "/nope").0, 404);
    // A spool that cannot be written makes the relay unready (root ignores modes, so
    // the folder is moved away instead).
    let spool = relay.spool();
    let moved = relay.dir.path().join("spool-away");
    std::fs::rename(&spool, &moved).unwrap();
    let (status, body) = http_get(m, "/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("spool"), "{body}");
    std::fs::rename(&moved, &spool).unwrap();
    assert_eq!(http_get(m, "/readyz").0, 200);
}

#[test]
fn prometheus_scrapes_the_relay() {
    let relay = RelaySetup::default().start();
    let prometheus = Prometheus::start(&[("coexist", &[relay.metrics.unwrap()])]);
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    for _ in 0..3 {
        send(&mut c, "bob@corp.example");
    }
    prometheus.wait_for(
        "coexist_messages_received_total{listener=\"smtp\"}",
        Duration::from_secs(60),
        |series| series.first().map(coexist_e2e::prometheus::value) == Some(3.0),
    );
}

#[test]
fn alert_rules_pass_promtool() {
    let rules = coexist_e2e::repo_root().join("config/prometheus-alerts.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SUCCESS: 7 rules found"), "{text}");
}

/// `promtool test rules`: each alert of config/prometheus-alerts.yml fires on the
/// series that should trigger it, after its `for:`, and not on the look-alikes
/// (config/prometheus-alerts.test.yml); every rule has a test.
#[test]
fn alert_rules_pass_their_unit_tests() {
    let config = coexist_e2e::repo_root().join("config");
    let rules = std::fs::read_to_string(config.join("prometheus-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(config.join("prometheus-alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 7, "{alerts:?}");
    for alert in &alerts {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - exp_labels"
            )),
            "no test where {alert} fires"
        );
    }
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(config.join("prometheus-alerts.test.yml"))
        .output()
        .expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("SUCCESS"), "{text}");
}

#[test]
fn systemd_unit_verifies_without_warnings() {
    // systemd-analyze checks that ExecStart exists: point it at the built binary.
    let unit =
        std::fs::read_to_string(coexist_e2e::repo_root().join("packaging/coexist-relay.service"))
            .unwrap();
    for key in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=coexist",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStartPre=/usr/bin/coexist-relay --config /etc/coexist/relay.toml check",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let binary = coexist_e2e::binary("coexist-relay");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coexist-relay.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/coexist-relay", binary.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

/// The configs the Debian package installs in /etc/coexist load with the binaries
/// of this tree, so a new or renamed key shows here and not only in the package
/// test (packaging/test-install.sh, which installs them for real).
#[test]
fn packaged_configs_load() {
    let etc = coexist_e2e::repo_root().join("packaging/etc");
    for (binary, config, command) in [
        ("coexist-relay", "relay.toml", "check"),
        ("coexist-migrator", "migrator.toml", "status"),
    ] {
        let out = Command::new(coexist_e2e::binary(binary))
            .arg("--config")
            .arg(etc.join(config))
            .arg(command)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{binary} {command} on packaging/etc/{config}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn certificate_expiry_is_exported() {
    let relay = RelaySetup::default().start();
    let expiry = relay.metric("coexist_tls_certificate_expiry_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now + 86400.0,
        "generated certificate expiry exported: {expiry}"
    );
}

/// The README's demonstration (issue #18): `coexist-relay sink` stands in for
/// the on-prem server and the cloud tenant wherever the loopback smarthost
/// routes point, and shows one message arriving by each route, the cloud one
/// rewritten to its contact.
#[test]
fn the_demo_sink_shows_one_message_per_route() {
    use coexist_e2e::{binary, free_port};
    use std::io::{BufRead, BufReader};
    let (onprem, cloud) = (free_port(), free_port());
    let relay = RelaySetup::default()
        .section(
            "route.onprem",
            &format!("smarthost = [\"127.0.0.1:{onprem}\"]"),
        )
        .section(
            "route.cloud",
            &format!("smarthost = [\"localhost:{cloud}\"]"),
        )
        .start();
    let mut sink = Command::new(binary("coexist-relay"))
        .arg("--config")
        .arg(relay.config_path())
        .arg("sink")
        .stdout(Stdio::piped())
        .spawn()
        .expect("sink");
    let mut lines = BufReader::new(sink.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("utf-8");
    let listening = [next(), next()];
    assert!(
        listening.iter().any(|l| l.contains("route onprem"))
            && listening.iter().any(|l| l.contains("route cloud")),
        "{listening:?}"
    );
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(c.ehlo().code, 250);
    send(&mut c, "bob@corp.example");
    let first = next();
    send(&mut c, "user3@corp.example");
    let second = next();
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(
        first.starts_with("onprem: from=<a@sender.example> to=<bob@corp.example>"),
        "{first}"
    );
    assert!(
        second.starts_with("cloud: from=<a@sender.example> to=<user3@tenant.cloud.example>"),
        "{second}"
    );
    assert!(second.contains("subject=\"m\""), "{second}");
}
