//! End-to-end: DANE (RFC 7672) on an MX route (issue 17). The zones are
//! served by a real Knot DNS on loopback, `dane.test` signed by knotd with keys
//! it made at start and given to the relay as `[dns] trust_anchor`;
//! `unsigned.test` unsigned and outside the anchor (it cannot validate). Under
//! `dane.test`, `insecure.dane.test` is an unsigned zone delegated without DS
//! (provably insecure), and `bogus.dane.test` a signed zone whose DS in the
//! parent matches none of its keys (bogus). The mail exchanger is a private
//! Postfix offering STARTTLS with a certificate (and its CA in the chain) made
//! by the test.
//!
//! One message to eight domains: a DANE-EE SPKI match and a DANE-TA match
//! (delivered, `tls=dane`), a mismatch (deferred 4.7.5 naming DANE), no TLSA
//! records, and an insecure zone whose TLSA records do not count (delivered
//! opportunistically); a bogus MX RRset, a secure MX whose host's TLSA records
//! are bogus, and a zone outside the private anchor (each deferred 4.7.5: an
//! answer that does not validate must not turn DANE off, RFC 7672 §2.1.1).

use coexist_e2e::knot::{Knot, ZoneFile};
use coexist_e2e::pki::{Ca, Purpose};
use coexist_e2e::postfix::Postfix;
use coexist_e2e::sink::PostfixSink;
use coexist_e2e::{Relay, RelaySetup};
use std::process::Command;
use std::time::Duration;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    // sha256sum: an implementation independent of the relay's.
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn delivery(relay: &Relay, rcpt: &str) -> String {
    let needle = format!("to=<{rcpt}>, orig_to");
    let i = relay
        .log
        .wait_for(&needle, 0, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("no delivery line for {rcpt}:\n{}", relay.log.text()));
    relay.log.text().lines().nth(i).unwrap().to_string()
}

#[test]
fn dane_match_ta_mismatch_no_tlsa_insecure_and_bogus_zones() {
    let sink = PostfixSink::start();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("coexist DANE test CA");
    let names = [
        "mx1.dane.test",
        "mx2.dane.test",
        "mx3.dane.test",
        "mx4.dane.test",
        "mx.unsigned.test",
        "mx.insecure.dane.test",
        "mx.bogus.dane.test",
    ];
    let mx = ca.issue(certs.path(), "mx", &names, Purpose::Server);
    // Leaf then CA: DANE-TA(2) needs the anchor in the presented chain (RFC 7672 §3.1.2).
    let chain = certs.path().join("chain.pem");
    std::fs::write(
        &chain,
        format!("{}{}", std::fs::read_to_string(&mx.cert).unwrap(), ca.pem()),
    )
    .unwrap();
    let domains = [
        "match.dane.test",
        "ta.dane.test",
        "mismatch.dane.test",
        "none.dane.test",
        "unsigned.test",
        "insecure.dane.test",
        "bogus.dane.test",
        "tlsabogus.dane.test",
    ];
    let postfix = Postfix::start(
        &domains,
        sink.addr,
        &format!(
            "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}",
            chain.display(),
            mx.key.display()
        ),
    );
    let port = postfix.addr.port();
    let spki_sha256 = sha256(&mx.spki);
    let ca_sha256 = sha256(&ca.der());
    let signed = format!(
        "match MX 10 mx1\nta MX 10 mx3\nmismatch MX 10 mx2\nnone MX 10 mx4\n\
         mx1 A 127.0.0.1\nmx2 A 127.0.0.1\nmx3 A 127.0.0.1\nmx4 A 127.0.0.1\n\
         _{port}._tcp.mx1 TLSA 3 1 1 {spki_sha256}\n\
         _{port}._tcp.mx3 TLSA 2 0 1 {ca_sha256}\n\
         _{port}._tcp.mx2 TLSA 3 1 1 {}\n\
         insecure NS ns.insecure\nns.insecure A 127.0.0.1\n\
         bogus NS ns.bogus\nns.bogus A 127.0.0.1\nbogus DS 12345 13 2 {}\n\
         tlsabogus MX 10 mx.bogus\n",
        hex(&[0u8; 32]),
        hex(&[0u8; 32])
    );
    // The TLSA records would match: only the broken chain may refuse them.
    let child = format!("@ MX 10 mx\nmx A 127.0.0.1\n_{port}._tcp.mx TLSA 3 1 1 {spki_sha256}\n");
    let unsigned = format!(
        "@ MX 10 mx\nmx A 127.0.0.1\n_{port}._tcp.mx TLSA 3 1 1 {}\n",
        hex(&[0u8; 32])
    );
    let knot = Knot::start(&[
        ZoneFile {
            apex: "dane.test",
            records: signed,
            signed: true,
        },
        ZoneFile {
            apex: "unsigned.test",
            records: unsigned,
            signed: false,
        },
        ZoneFile {
            apex: "insecure.dane.test",
            records: child.clone(),
            signed: false,
        },
        ZoneFile {
            apex: "bogus.dane.test",
            records: child,
            signed: true,
        },
    ]);
    let anchor = knot.write_trust_anchor("dane.test", &certs.path().join("anchor.key"));

    let relay = RelaySetup::default()
        .section(
            "route.internet",
            &format!("mx = true\nport = {port}\ntls = \"dane\"\nmta_sts = false"),
        )
        .section(
            "dns",
            &format!(
                "nameservers = [\"{}\"]\ndnssec = true\ntrust_anchor = \"{}\"",
                knot.addr,
                anchor.display()
            ),
        )
        .section("queue", "retry_schedule = [\"1h\"]")
        .start();
    let rcpts: Vec<String> = domains.iter().map(|d| format!("user@{d}")).collect();
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

    for d in ["match.dane.test", "ta.dane.test"] {
        let l = delivery(&relay, &format!("user@{d}"));
        assert!(
            l.contains("status=sent") && l.contains("tls=dane TLS"),
            "{d}: {l}"
        );
    }
    let l = delivery(&relay, "user@mismatch.dane.test");
    assert!(
        l.contains("status=deferred") && l.contains("4.7.5") && l.contains("DANE"),
        "{l}"
    );
    for d in ["bogus.dane.test", "tlsabogus.dane.test", "unsigned.test"] {
        let l = delivery(&relay, &format!("user@{d}"));
        assert!(
            l.contains("status=deferred") && l.contains("4.7.5") && l.contains("bogus"),
            "{d}: {l}"
        );
    }
    for d in ["none.dane.test", "insecure.dane.test"] {
        let l = delivery(&relay, &format!("user@{d}"));
        assert!(
            l.contains("status=sent") && l.contains("tls=opportunistic TLS"),
            "{d}: {l}"
        );
    }
    assert_eq!(sink.wait_for(4, Duration::from_secs(30)).len(), 4);
    let series = |policy: &str, result: &str| {
        relay.metric(&format!(
            "coexist_tls_policy_total{{policy=\"{policy}\",result=\"{result}\",route=\"internet\"}}"
        ))
    };
    assert_eq!(series("dane", "ok"), 2.0);
    assert_eq!(series("dane", "failed"), 4.0);
    assert_eq!(series("opportunistic", "ok"), 2.0);

    let out = relay.cli(&[
        "route",
        "user@match.dane.test",
        "user@insecure.dane.test",
        "user@bogus.dane.test",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tls dane: mx1.dane.test (1 usable TLSA record(s))"),
        "{text}"
    );
    assert!(
        text.contains("tls dane: the MX of insecure.dane.test is not DNSSEC-secure"),
        "{text}"
    );
    assert!(
        text.contains("fail DNSSEC validation (bogus); deferred"),
        "{text}"
    );
}
