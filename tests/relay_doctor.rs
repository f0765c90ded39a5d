//! End-to-end: `coexist-relay doctor` against a loopback DNS responder and
//! Postfix's smtp-sink; its lines, its JSON and its exit codes (0 / 1 / 2).

use coexist_e2e::binary;
use coexist_e2e::dns::Zone;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// smtp-sink, stopped when dropped.
struct Sink {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_sink() -> Sink {
    let addr: SocketAddr = ([127, 0, 0, 1], coexist_e2e::free_port()).into();
    let child = Command::new("/usr/sbin/smtp-sink")
        .args(["-u", "root", &addr.to_string(), "10"])
        .stdout(Stdio::null())
        .spawn()
        .expect("smtp-sink (Debian package postfix) must be installed");
    // Owned by the guard at once, so it is reaped on every path.
    let sink = Sink { child, addr };
    // Listening when a connection succeeds; nothing else to wait on.
    for _ in 0..200 {
        if TcpStream::connect(addr).is_ok() {
            return sink;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("smtp-sink did not start on {addr}");
}

fn zone() -> Zone {
    Zone::default()
        .mx("corp.test", 10, "mx.corp.test")
        .a("mx.corp.test", Ipv4Addr::LOCALHOST)
        .txt(
            "corp.test",
            "v=spf1 ip4:192.0.2.0/24 include:spf.cloud.test -all",
        )
        .cname("autodiscover.corp.test", "autodiscover.cloud.test")
}

fn config(dir: &Path, dns: SocketAddr, onprem: &str, cloud: &str) {
    let text = format!(
        "[server]\nhostname = \"relay.test\"\nspool_dir = \"spool\"\n\n\
         [[listener]]\nname = \"smtp\"\nbind = \"127.0.0.1:0\"\ntls = \"none\"\n\n\
         [relay]\naccepted_domains = [\"corp.test\"]\n\n\
         [routing]\ncontacts = \"contacts\"\n\n\
         [route.onprem]\n{onprem}\n\n[route.cloud]\n{cloud}\n\n[route.internet]\nmx = true\n\n\
         [dns]\nnameservers = [\"{dns}\"]\n\n\
         [doctor]\nspf_include = \"spf.cloud.test\"\npublic_ip = \"192.0.2.25\"\n"
    );
    std::fs::write(dir.join("relay.toml"), text).unwrap();
    std::fs::write(dir.join("contacts"), "a@corp.test a@tenant.cloud.test\n").unwrap();
}

fn doctor(dir: &Path, json: bool) -> Output {
    let mut cmd = Command::new(binary("coexist-relay"));
    cmd.arg("--config")
        .arg(dir.join("relay.toml"))
        .arg("doctor");
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run coexist-relay doctor")
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = stdout.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one line starting {prefix:?}:\n{stdout}");
    found[0]
}

#[test]
fn doctor_reports_and_exits_by_the_worst_check() {
    let sink = smtp_sink();
    let dns = zone().serve();
    let dir = tempfile::tempdir().unwrap();
    let hop = format!("smarthost = [\"{}\"]\ntls = \"none\"", sink.addr);
    config(dir.path(), dns, &hop, &hop);

    // Healthy apart from the listener without TLS: warnings only, exit 0.
    let out = doctor(dir.path(), false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    line(&stdout, "ok    contacts table");
    line(&stdout, "ok    route onprem: ");
    line(&stdout, "ok    route cloud: ");
    line(
        &stdout,
        "ok    route internet: MX route: resolved per recipient domain at delivery",
    );
    assert!(line(&stdout, "ok    MX corp.test").contains("10 mx.corp.test → 127.0.0.1"));
    assert!(line(&stdout, "ok    SPF corp.test").contains("covers 192.0.2.25"));
    line(&stdout, "ok    autodiscover corp.test");
    line(&stdout, "ok    queue");
    line(&stdout, "warn  certificate: no listener offers TLS");
    // Each warning is followed by its fix.
    let lines: Vec<&str> = stdout.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("warn") || l.starts_with("fail") {
            assert!(lines[i + 1].starts_with("      fix: "), "{stdout}");
        }
    }

    // JSON: the same checks, machine-readable.
    let out = doctor(dir.path(), true);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let checks = json["checks"].as_array().expect("checks array");
    assert!(checks
        .iter()
        .any(|c| c["what"] == "MX corp.test" && c["status"] == "ok"));

    // The cloud route requires TLS and the sink offers no STARTTLS: exit 1.
    config(
        dir.path(),
        dns,
        &hop,
        &format!("smarthost = [\"{}\"]\ntls = \"required\"", sink.addr),
    );
    let out = doctor(dir.path(), false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(line(&stdout, "fail  route cloud: ").contains("STARTTLS not offered"));

    // A config that does not load: its errors as `check` prints them, exit 2.
    std::fs::write(dir.path().join("relay.toml"), "[server]\nhostname = 5\n").unwrap();
    let out = doctor(dir.path(), false);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("relay.toml:2: "), "{stderr}");
    assert!(out.stdout.is_empty());
}
