//! End-to-end: outbound and inbound security (issue 17) against real peers.
//!
//! - Certificate connectors: a route presents `client_cert` to a Postfix that
//!   requires a client certificate (`smtpd_tls_req_ccert`); inbound, a client
//!   whose verified certificate is in `relay.trusted_tls_names` may relay.

use coexist_e2e::pki::{self, Ca, Issued, Purpose};
use coexist_e2e::postfix::Postfix;
use coexist_e2e::sink::PostfixSink;
use coexist_e2e::{Relay, RelaySetup};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// swaks through STARTTLS (optionally presenting `cert`) up to RCPT; the
/// relay's reply to RCPT.
fn rcpt_reply(relay: &Relay, to: &str, cert: Option<&Issued>) -> String {
    let addr = relay.addr("smtp");
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--from", "sender@tenant.cloud.example", "--to", to])
        .args(["--helo", "tenant.test", "--tls", "--quit-after", "RCPT"]);
    if let Some(c) = cert {
        cmd.arg("--tls-cert")
            .arg(&c.cert)
            .arg("--tls-key")
            .arg(&c.key);
    }
    let out = cmd
        .output()
        .expect("swaks is installed (tests/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines().skip_while(|l| !l.contains("RCPT TO:"));
    lines.next();
    lines
        .next()
        .unwrap_or_else(|| panic!("no reply to RCPT in swaks output:\n{text}"))
        .to_string()
}

fn absolute(p: &Path) -> String {
    p.display().to_string()
}

/// Sends one message with swaks to the relay (a trusted client), expecting 250.
fn send(relay: &Relay, to: &str) {
    let addr = relay.addr("smtp");
    let out = Command::new("swaks")
        .args(["--server", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--from", "alice@corp.example", "--to", to])
        .output()
        .expect("swaks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_route_presents_its_client_certificate_to_postfix_requiring_one() {
    let sink = PostfixSink::start();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("coexist test CA");
    let ca_pem = certs.path().join("ca.pem");
    ca.write_pem(&ca_pem);
    let server = ca.issue(
        certs.path(),
        "postfix",
        &["localhost", "127.0.0.1"],
        Purpose::Server,
    );
    let client = ca.issue(
        certs.path(),
        "connector",
        &["relay.connector.test"],
        Purpose::Client,
    );
    let postfix = Postfix::start(
        &["tenant.cloud.example"],
        sink.addr,
        &format!(
            "smtpd_tls_security_level = encrypt\n\
             smtpd_tls_req_ccert = yes\n\
             smtpd_tls_CAfile = {}\n\
             smtpd_tls_cert_file = {}\n\
             smtpd_tls_key_file = {}\n\
             smtpd_tls_received_header = yes\n\
             smtpd_tls_loglevel = 1",
            absolute(&ca_pem),
            absolute(&server.cert),
            absolute(&server.key)
        ),
    );
    let hop = postfix.addr.to_string();
    let relay = RelaySetup::default()
        .section(
            "route.cloud",
            &format!(
                "smarthost = [\"{hop}\"]\ntls = \"verify\"\nca = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"",
                absolute(&ca_pem),
                absolute(&client.cert),
                absolute(&client.key)
            ),
        )
        .section(
            "route.nocert",
            &format!("smarthost = [\"{hop}\"]\ntls = \"verify\"\nca = \"{}\"", absolute(&ca_pem)),
        )
        .contacts(
            "user3@corp.example  user3@tenant.cloud.example\n\
             user4@corp.example  user4@tenant.cloud.example  nocert\n",
        )
        .start();

    send(&relay, "user3@corp.example");
    let messages = sink.wait_for(1, Duration::from_secs(30));
    assert!(
        messages[0].contains("user3@tenant.cloud.example"),
        "{}",
        messages[0]
    );
    // Postfix's own trace says it verified the certificate the route presented.
    assert!(
        messages[0].contains("Client CN \"relay.connector.test\"")
            && messages[0].contains("(verified OK)"),
        "Postfix saw no verified client certificate:\n{}",
        messages[0]
    );

    send(&relay, "user4@corp.example");
    let i = relay
        .log
        .wait_for(
            "to=<user4@tenant.cloud.example>",
            0,
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("no delivery line for user4:\n{}", relay.log.text()));
    let line = relay
        .log
        .text()
        .lines()
        .nth(i)
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("status=deferred"), "{line}");
    assert!(
        line.contains("4.7.1") || line.contains("4.7.0"),
        "Postfix's refusal without a client certificate: {line}"
    );
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing delivered without a certificate"
    );
}

/// A relay on STARTTLS that trusts no network, only certificates naming
/// `mail.tenant.cloud.example` issued by `ca`.
fn trusting_relay(ca_pem: &Path) -> Relay {
    RelaySetup::default()
        .section(
            "relay",
            "accepted_domains = [\"corp.example\"]\ntrusted_networks = [\"192.0.2.0/24\"]\ntrusted_tls_names = [\"mail.tenant.cloud.example\"]",
        )
        .section(
            "tls",
            &format!(
                "cert = \"certs/relay.crt\"\nkey = \"certs/relay.key\"\nclient_ca = \"{}\"",
                absolute(ca_pem)
            ),
        )
        .start()
}

#[test]
fn a_client_is_trusted_for_relaying_by_its_verified_certificate_name() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("tenant CA");
    let ca_pem = certs.path().join("ca.pem");
    ca.write_pem(&ca_pem);
    let relay = trusting_relay(&ca_pem);
    let tenant = ca.issue(
        certs.path(),
        "tenant",
        &["mail.tenant.cloud.example"],
        Purpose::Client,
    );
    let other = ca.issue(
        certs.path(),
        "other",
        &["mail.other.example"],
        Purpose::Client,
    );
    let forged = pki::self_signed(
        certs.path(),
        "forged",
        &["mail.tenant.cloud.example"],
        Purpose::Client,
    );

    let trusted = rcpt_reply(&relay, "someone@elsewhere.example", Some(&tenant));
    assert!(trusted.contains("250"), "trusted by certificate: {trusted}");

    for (what, cert) in [
        ("no certificate", None),
        ("a verified certificate for another name", Some(&other)),
        (
            "a self-signed certificate for the trusted name",
            Some(&forged),
        ),
    ] {
        let reply = rcpt_reply(&relay, "someone@elsewhere.example", cert);
        assert!(reply.contains("554 5.7.1"), "{what}: {reply}");
    }
    // Mail for the accepted domain needs no trust at all.
    let local = rcpt_reply(&relay, "bob@corp.example", None);
    assert!(local.contains("250"), "{local}");
}
