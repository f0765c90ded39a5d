//! The Grafana dashboard `config/grafana/coexist.json` (issue #18) against a real
//! Prometheus scraping a running relay and a running migrator: every PromQL
//! expression in it (panel targets and the template variables' queries) answers
//! `success`, every metric it names is one the binaries export, and the key panels
//! return series with the values the traffic made: mail through both routes, one
//! user migrated with mail and calendar items.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::imap_proxy::{self, Fault, Hold, ImapProxy};
use coexist_e2e::prometheus::{value, Prometheus};
use coexist_e2e::sink::{Script, ScriptSink};
use coexist_e2e::smtp::Client;
use coexist_e2e::RelaySetup;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

const ALICE: &str = "alice@corp.example";

/// Grafana's variables as the test fills them: every job and instance, a 1 m rate
/// window (the scrape interval is 1 s).
const VARIABLES: [(&str, &str); 6] = [
    ("$__rate_interval", "1m"),
    ("$__interval", "15s"),
    ("$migrator_instance", ".*"),
    ("$migrator_job", ".*"),
    ("$instance", ".*"),
    ("$job", ".*"),
];

fn dashboard() -> Value {
    let path = coexist_e2e::repo_root().join("config/grafana/coexist.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every (panel title, PromQL) of the dashboard, rows' nested panels included; a
/// query variable's `label_values(SELECTOR, LABEL)` (Grafana's, not PromQL) is
/// asked as `group by (LABEL) (SELECTOR)`, which is what Grafana sends for it.
fn expressions(dash: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("every target has an expr");
                out.push((title.clone(), expr.to_string()));
            }
            walk(p["panels"].as_array().map_or(&[], |v| v), out);
        }
    }
    let mut out = Vec::new();
    walk(dash["panels"].as_array().unwrap(), &mut out);
    for v in dash["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {q}: expected label_values(...)"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        out.push((
            format!("${}", v["name"].as_str().unwrap()),
            format!("group by ({}) ({})", label.trim(), selector.trim()),
        ));
    }
    out
}

fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (name, val) in VARIABLES {
        e = e.replace(name, val);
    }
    assert!(
        !e.contains('$'),
        "a variable the test does not know: {expr}"
    );
    e
}

/// Metric names in an expression: identifiers that start like ours or Prometheus's.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("coexist_") || w.starts_with("process_") || *w == "up")
        .map(str::to_string)
        .collect()
}

/// A `coexist-migrator migrate` held at bob's login to the target, after alice
/// is migrated, so its `/metrics` stays up with alice's final numbers.
struct HeldMigration {
    child: Child,
    metrics: SocketAddr,
    _proxy: ImapProxy,
    _source: Dovecot,
    _target: Dovecot,
    _ca: TestCa,
    _dir: tempfile::TempDir,
}

impl Drop for HeldMigration {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn message(id: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "From: carol@example.net\r\nTo: {ALICE}\r\nSubject: {id}\r\nMessage-ID: <{id}@x>\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}"
    )
    .into_bytes()
}

/// Two Dovecots, alice seeded with 3 messages in INBOX and 1 event in Calendar.
fn held_migration() -> HeldMigration {
    let ca = TestCa::new();
    let setup = |name, users| DovecotSetup {
        name,
        users,
        quota: None,
        max_mail_size: None,
        tls: true,
    };
    let source = Dovecot::start(
        setup("source", vec![(ALICE, "pw"), ("bob@corp.example", "pw")]),
        &ca,
    );
    let target = Dovecot::start(
        setup(
            "target",
            vec![
                ("alice@tenant.cloud.example", "pw"),
                ("bob@tenant.cloud.example", "pw"),
            ],
        ),
        &ca,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//test//EN\r\nBEGIN:VEVENT\r\nUID:ev1\r\nDTSTAMP:20240101T090000Z\r\nDTSTART:20240105T090000Z\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let items = [
        ("INBOX", message("m1", "text/plain", "one\r\n")),
        ("INBOX", message("m2", "text/plain", "two\r\n")),
        ("INBOX", message("m3", "text/plain", "three\r\n")),
        ("Calendar", message("ev1", "text/calendar", event)),
    ];
    let spec: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (folder, bytes))| {
            let file = d.join(format!("{i}.eml"));
            std::fs::write(&file, bytes).unwrap();
            serde_json::json!({"folder": folder, "flags": [], "date": "01-Jan-2024 09:00:00 +0000", "file": file})
        })
        .collect();
    std::fs::write(d.join("seed.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    source.seed(ALICE, &d.join("seed.json"));

    // SASL PLAIN for bob on the target: authzid NUL master NUL password.
    let bob_login = imap_proxy::base64(
        format!("bob@tenant.cloud.example\0{}\0{}", MASTER.0, MASTER.1).as_bytes(),
    );
    let proxy = ImapProxy::start(
        &ca,
        target.imaps_port,
        Fault::None,
        Some(Hold::Line(bob_login.into_bytes())),
    );
    std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(d.join("password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("contacts"), "").unwrap();
    std::fs::write(
        d.join("users.csv"),
        "address,display_name,target,quota,enabled\nalice@corp.example,Alice,,,true\nbob@corp.example,Bob,,,true\n",
    )
    .unwrap();
    std::fs::write(
        d.join("migrator.toml"),
        format!(
            "[directory]\nusers = \"users.csv\"\n\n[routing]\ncontacts = \"contacts\"\ntarget_template = \"{{local}}@tenant.cloud.example\"\n\n\
             [source]\nurl = \"{}\"\nauth = \"master\"\nmaster_user = \"{m}\"\npassword_file = \"password\"\nca = \"ca.pem\"\n\n\
             [target]\nurl = \"{}\"\nauth = \"authzid\"\nmaster_user = \"{m}\"\npassword_file = \"password\"\nca = \"ca.pem\"\n\n\
             [migration]\nparallel = 1\nstate_dir = \"state\"\n\n[metrics]\nbind = \"127.0.0.1:0\"\n",
            source.url(),
            proxy.url(),
            m = MASTER.0,
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(coexist_e2e::binary("coexist-migrator"))
        .arg("--config")
        .arg(d.join("migrator.toml"))
        .args(["migrate", ALICE, "bob@corp.example"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stderr is read to the end (a full pipe would stop it), and kept for the
    // failure messages.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    let metrics = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no metrics line: {log:#?}"));
        if let Some(rest) = line.strip_prefix("metrics: serving http://") {
            break rest.trim_end_matches("/metrics").parse().unwrap();
        }
        log.push(line);
    };
    if !proxy.wait_held(Duration::from_secs(60)) {
        log.extend(lines.try_iter());
        panic!(
            "bob's target login never came: {:?}\n{log:#?}",
            child.try_wait()
        );
    }
    HeldMigration {
        child,
        metrics,
        _proxy: proxy,
        _source: source,
        _target: target,
        _ca: ca,
        _dir: dir,
    }
}

/// The sample values of a result vector, keyed by one label.
fn by_label(series: &[Value], label: &str) -> BTreeMap<String, f64> {
    series
        .iter()
        .map(|s| {
            (
                s["metric"][label].as_str().unwrap_or("").to_string(),
                value(s),
            )
        })
        .collect()
}

fn send(relay: &coexist_e2e::Relay, rcpt: &str) {
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    assert!(c.cmd("MAIL FROM:<a@sender.example>").has(250, "2.1.0"));
    assert!(c.cmd(&format!("RCPT TO:<{rcpt}>")).has(250, "2.1.5"));
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(b"Subject: dashboard\r\n\r\nhello\r\n.\r\n");
    assert!(c.read_reply().has(250, "2.0.0"));
}

#[test]
fn every_dashboard_query_runs_against_a_prometheus_scraping_relay_and_migrator() {
    let dash = dashboard();
    let exprs = expressions(&dash);
    assert!(exprs.len() > 30, "{} expressions", exprs.len());

    let (onprem, cloud) = (
        ScriptSink::start(Script::default()),
        ScriptSink::start(Script::default()),
    );
    let relay = RelaySetup::default()
        .section(
            "route.onprem",
            &format!("smarthost = [\"{}\"]\ntls = \"none\"", onprem.hostport()),
        )
        .section(
            "route.cloud",
            &format!("smarthost = [\"{}\"]\ntls = \"none\"", cloud.hostport()),
        )
        .start();
    let migration = held_migration();
    let relay_metrics = relay.metrics.unwrap();
    let prometheus = Prometheus::start(&[
        ("coexist", &[relay_metrics]),
        ("coexist-migrator", &[migration.metrics]),
    ]);
    let both_up = |s: &[Value]| s.len() == 2 && s.iter().all(|s| value(s) == 1.0);
    prometheus.wait_for("up", Duration::from_secs(60), both_up);

    // Mail after the first scrapes, so that the rates see it arrive.
    for _ in 0..3 {
        send(&relay, "bob@corp.example");
        send(&relay, "user3@corp.example");
    }
    onprem.wait_for(3, Duration::from_secs(30));
    cloud.wait_for(3, Duration::from_secs(30));
    prometheus.wait_for(
        "sum by (route) (coexist_deliveries_total{result=\"delivered\"}) >= 3",
        Duration::from_secs(60),
        |s| s.len() == 2,
    );
    prometheus.wait_for(
        "coexist_queue_messages == 0",
        Duration::from_secs(60),
        |s| s.len() == 1,
    );

    // rate() and increase() need two samples in their window: three scrapes of each.
    prometheus.wait_for(
        "count_over_time(up[1m]) >= 3",
        Duration::from_secs(60),
        |s| s.len() == 2,
    );

    // Every metric the dashboard names is exported by one of the two.
    let pages = [
        coexist_e2e::http_get(relay_metrics, "/metrics").1,
        coexist_e2e::http_get(migration.metrics, "/metrics").1,
    ];
    for name in exprs.iter().flat_map(|(_, e)| metric_names(e)) {
        let exported = name == "up"
            || pages.iter().any(|p| {
                p.lines().any(|l| {
                    l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))
                })
            });
        assert!(
            exported,
            "the dashboard queries {name}, which neither binary exports"
        );
    }

    // Every expression answers success; keep each panel's series.
    let mut results: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (title, expr) in &exprs {
        let (status, answer) = prometheus.query(&substitute(expr));
        assert!(
            status == 200 && answer["status"] == "success",
            "panel {title:?}: {expr}\n{status} {answer}"
        );
        let series = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        results.entry(title.clone()).or_default().extend(series);
    }
    let panel = |title: &str| -> &Vec<Value> {
        let s = results
            .get(title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        assert!(!s.is_empty(), "panel {title:?} returned no series");
        s
    };

    // The relay.
    assert_eq!(value(&panel("Relay up")[0]), 1.0);
    assert!(by_label(panel("Messages in, per listener"), "listener")["smtp"] > 0.0);
    let out = by_label(panel("Messages out, per route"), "route");
    assert!(out["onprem"] > 0.0 && out["cloud"] > 0.0, "{out:?}");
    let failed = panel("Deferrals and bounces, per route");
    assert!(failed.iter().all(|s| value(s) == 0.0), "{failed:?}");
    assert!(
        failed.len() >= 6,
        "route x {{deferred, bounced}}: {failed:?}"
    );
    assert_eq!(value(&panel("Queue size")[0]), 0.0);
    assert_eq!(value(&panel("Oldest queued message")[0]), 0.0);
    for title in ["Accept latency", "Delivery latency, per route"] {
        let finite: Vec<f64> = panel(title)
            .iter()
            .map(value)
            .filter(|v| v.is_finite())
            .collect();
        assert!(
            !finite.is_empty() && finite.iter().all(|v| *v > 0.0),
            "{title}: {finite:?}"
        );
    }
    let tls = panel("TLS handshakes");
    let directions: BTreeSet<&str> = tls
        .iter()
        .filter_map(|s| s["metric"]["direction"].as_str())
        .collect();
    assert_eq!(directions, BTreeSet::from(["inbound", "outbound"]));
    let policies = panel("Outbound TLS policy, per route");
    assert!(
        policies.iter().any(|s| s["metric"]["route"] == "onprem"
            && s["metric"]["policy"] == "none"
            && value(s) > 0.0),
        "{policies:?}"
    );
    assert_eq!(value(&panel("Routing source up")[0]), 1.0);
    assert_eq!(value(&panel("Contacts")[0]), 1.0);
    assert!(value(&panel("Certificate expires in")[0]) > 86400.0);

    // The migration: alice migrated (3 mail, 1 calendar item), bob waiting.
    let users = by_label(panel("Users by state"), "state");
    assert_eq!(users["migrated"], 1.0, "{users:?}");
    assert_eq!(users["not_started"], 1.0, "{users:?}");
    let copied = by_label(panel("Copied so far, per content type"), "content");
    assert_eq!(copied["mail"], 3.0, "{copied:?}");
    assert_eq!(copied["calendar"], 1.0, "{copied:?}");
    assert_eq!(copied["contacts"], 0.0, "{copied:?}");
    let bytes = by_label(panel("Bytes copied so far, per content type"), "content");
    assert!(bytes["mail"] > 0.0 && bytes["calendar"] > 0.0, "{bytes:?}");
    // Over IMAP here, so the DAV families stand at zero, one series per content
    // and result.
    let dav = panel("DAV items so far, by content and result");
    assert!(
        dav.len() >= 8 && dav.iter().all(|s| value(s) == 0.0),
        "{dav:?}"
    );
    let errors = by_label(panel("Migration errors, by kind"), "kind");
    assert_eq!(errors.len(), 4, "{errors:?}");

    // The variables list the two jobs.
    assert_eq!(by_label(panel("$job"), "job").len(), 1);
    assert!(by_label(panel("$migrator_job"), "job").contains_key("coexist-migrator"));
}
