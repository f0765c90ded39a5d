//! End-to-end: MTA-STS (RFC 8461) on an MX route (issue 17), with every peer
//! real and on loopback: the relay's DNS from a responder the test controls,
//! the policy host Python's HTTPS server with a certificate from a test CA (the
//! route's `ca`), the mail exchanger a private Postfix offering STARTTLS with a
//! certificate from the same CA, relaying into smtp-sink.
//!
//! One relay, one message to eight domains, one per case: enforce (delivered),
//! enforce with the MX not in the policy, enforce with a certificate not valid
//! for the MX name (both deferred 4.7.5 naming MTA-STS), testing (delivered,
//! logged), none and no record (the route's policy), a policy host that times
//! out (no policy), and a policy whose TXT id changes (refetched). Then a
//! restart with the policy host gone: the cached policy still applies.

use coexist_e2e::dns::Zone;
use coexist_e2e::mta_sts::{silent_host, PolicyServer};
use coexist_e2e::pki::{Ca, Purpose};
use coexist_e2e::postfix::Postfix;
use coexist_e2e::sink::PostfixSink;
use coexist_e2e::{Relay, RelaySetup};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

/// This test's policy host and the silent one: addresses of its own in 127/8.
const POLICY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 17, 1);
const SILENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 17, 2);

const DOMAINS: [&str; 8] = [
    "enforce.test",
    "badmx.test",
    "badcert.test",
    "testing.test",
    "none.test",
    "plain.test",
    "timeout.test",
    "idchange.test",
];

fn policy(mode: &str, mx: &[&str]) -> String {
    let mut text = format!("version: STSv1\nmode: {mode}\n");
    for m in mx {
        text.push_str(&format!("mx: {m}\n"));
    }
    text.push_str("max_age: 86400\n");
    text
}

fn zone(idchange_id: u32) -> Zone {
    let mut zone = Zone::with_ttl(0);
    for d in DOMAINS {
        zone = zone
            .mx(d, 10, &format!("mx.{d}"))
            .a(&format!("mx.{d}"), Ipv4Addr::LOCALHOST);
        if d == "plain.test" {
            continue;
        }
        let id = if d == "idchange.test" { idchange_id } else { 1 };
        let host = if d == "timeout.test" {
            SILENT_IP
        } else {
            POLICY_IP
        };
        zone = zone
            .txt(&format!("_mta-sts.{d}"), &format!("v=STSv1; id={id}"))
            .a(&format!("mta-sts.{d}"), host);
    }
    zone
}

/// The delivery line for `rcpt` at or after log line `from`: (index, line).
fn delivery(relay: &Relay, rcpt: &str, from: usize, timeout: Duration) -> (usize, String) {
    let needle = format!("to=<{rcpt}>, orig_to");
    let i = relay
        .log
        .wait_for(&needle, from, timeout)
        .unwrap_or_else(|| panic!("no delivery line for {rcpt}:\n{}", relay.log.text()));
    let line = relay.log.text().lines().nth(i).unwrap().to_string();
    (i, line)
}

fn flush(relay: &Relay) {
    let out = relay.cli(&["queue", "flush"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mta_sts_enforce_testing_none_timeout_id_change_and_restart() {
    let sink = PostfixSink::start();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("coexist test CA");
    let ca_pem = certs.path().join("ca.pem");
    ca.write_pem(&ca_pem);
    // The MX certificate names every MX but mx.badcert.test.
    let mx_names: Vec<String> = DOMAINS
        .iter()
        .filter(|d| **d != "badcert.test")
        .map(|d| format!("mx.{d}"))
        .collect();
    let mx_refs: Vec<&str> = mx_names.iter().map(String::as_str).collect();
    let mx_cert = ca.issue(certs.path(), "mx", &mx_refs, Purpose::Server);
    let sts_names: Vec<String> = DOMAINS.iter().map(|d| format!("mta-sts.{d}")).collect();
    let sts_refs: Vec<&str> = sts_names.iter().map(String::as_str).collect();
    let sts_cert = ca.issue(certs.path(), "mta-sts", &sts_refs, Purpose::Server);

    let postfix = Postfix::start(
        &DOMAINS,
        sink.addr,
        &format!(
            "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}",
            mx_cert.cert.display(),
            mx_cert.key.display()
        ),
    );
    let mut policies = PolicyServer::start(IpAddr::V4(POLICY_IP), &sts_cert.cert, &sts_cert.key);
    silent_host(IpAddr::V4(SILENT_IP));
    policies.set_policy("enforce.test", &policy("enforce", &["mx.enforce.test"]));
    policies.set_policy("badmx.test", &policy("enforce", &["mail.badmx.test"]));
    policies.set_policy("badcert.test", &policy("enforce", &["mx.badcert.test"]));
    policies.set_policy("testing.test", &policy("testing", &["other.testing.test"]));
    policies.set_policy("none.test", &policy("none", &["other.none.test"]));
    policies.set_policy("idchange.test", &policy("enforce", &["old.idchange.test"]));
    let (dns, zone_handle) = zone(1).serve_mutable();

    let mut relay = RelaySetup::default()
        .section(
            "route.internet",
            &format!(
                "mx = true\nport = {}\ntls = \"opportunistic\"\nca = \"{}\"",
                postfix.addr.port(),
                ca_pem.display()
            ),
        )
        .section("dns", &format!("nameservers = [\"{dns}\"]"))
        .section("queue", "retry_schedule = [\"1h\"]")
        .start();
    let rcpts: Vec<String> = DOMAINS.iter().map(|d| format!("user@{d}")).collect();
    let addr = relay.addr("smtp");
    let out = Command::new("swaks")
        .args(["--server", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--from", "alice@corp.example", "--to", &rcpts.join(",")])
        .output()
        .expect("swaks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let wait = Duration::from_secs(40);
    let line = |d: &str| delivery(&relay, &format!("user@{d}"), 0, wait).1;
    let enforce = line("enforce.test");
    assert!(enforce.contains("status=sent"), "{enforce}");
    assert!(enforce.contains("tls=mta-sts:enforce TLS"), "{enforce}");
    for d in ["badmx.test", "badcert.test", "idchange.test"] {
        let l = line(d);
        assert!(l.contains("status=deferred"), "{d}: {l}");
        assert!(l.contains("4.7.5") && l.contains("MTA-STS"), "{d}: {l}");
    }
    assert!(line("badmx.test").contains("lists none of its MX hosts (mx.badmx.test)"));
    assert!(
        line("badcert.test").contains("certificate"),
        "{}",
        line("badcert.test")
    );
    let testing = line("testing.test");
    assert!(
        testing.contains("status=sent") && testing.contains("tls=mta-sts:testing TLS"),
        "{testing}"
    );
    assert!(
        relay
            .log
            .text()
            .contains("MTA-STS policy (testing) would refuse MX hosts mx.testing.test"),
        "testing mode logs what enforce would refuse"
    );
    for d in ["none.test", "plain.test"] {
        let l = line(d);
        assert!(
            l.contains("status=sent") && l.contains("tls=opportunistic TLS"),
            "{d}: {l}"
        );
    }
    // The silent policy host: no policy after the 10 s bound, delivered as the route says.
    let timeout = line("timeout.test");
    assert!(
        timeout.contains("status=sent") && timeout.contains("tls=opportunistic"),
        "{timeout}"
    );
    assert!(relay
        .log
        .text()
        .contains("no policy from mta-sts.timeout.test within 10 s"));
    assert_eq!(policies.fetches("none.test"), 1);
    assert_eq!(policies.fetches("plain.test"), 0, "no TXT record, no fetch");
    assert_eq!(sink.wait_for(5, wait).len(), 5);
    let failed = relay.metric(
        "coexist_tls_policy_total{policy=\"mta_sts\",result=\"failed\",route=\"internet\"}",
    );
    assert!(
        failed >= 4.0,
        "badmx, badcert, idchange and testing failed: {failed}"
    );
    let ok = relay
        .metric("coexist_tls_policy_total{policy=\"mta_sts\",result=\"ok\",route=\"internet\"}");
    assert_eq!(ok, 1.0, "enforce.test met its policy");

    // A new TXT id: the policy is fetched again, and the new one lets the MX in.
    policies.set_policy("idchange.test", &policy("enforce", &["*.idchange.test"]));
    *zone_handle.lock().unwrap() = zone(2);
    let from = relay.log.len();
    flush(&relay);
    let (_, idchange) = delivery(&relay, "user@idchange.test", from, wait);
    assert!(
        idchange.contains("status=sent") && idchange.contains("mta-sts:enforce"),
        "{idchange}"
    );
    assert_eq!(
        policies.fetches("idchange.test"),
        2,
        "refetched for the new id"
    );
    let (_, badmx) = delivery(&relay, "user@badmx.test", from, wait);
    assert!(badmx.contains("MTA-STS"), "{badmx}");
    assert_eq!(
        policies.fetches("badmx.test"),
        1,
        "same id, cached: not refetched"
    );

    // Restart without the policy host: the policies cached in the spool still apply.
    assert!(relay.spool().join("mta-sts/badmx.test.json").exists());
    policies.stop();
    relay.kill();
    relay.restart();
    let from = relay.log.len();
    flush(&relay);
    let (_, badmx) = delivery(&relay, "user@badmx.test", from, wait);
    assert!(
        badmx.contains("status=deferred") && badmx.contains("MTA-STS"),
        "{badmx}"
    );

    // `route` and `doctor` show what a recipient domain gets.
    let out = relay.cli(&["route", "user@badmx.test", "user@plain.test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tls mta-sts:enforce (id 1, mx mail.badmx.test"),
        "{text}"
    );
    assert!(
        text.contains("tls opportunistic (no MTA-STS policy for plain.test)"),
        "{text}"
    );
    let out = relay.cli(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("TLS policy of route internet:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("badmx.test enforce") && line.contains("testing.test testing"),
        "{line}"
    );
}
