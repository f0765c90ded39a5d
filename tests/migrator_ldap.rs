//! End-to-end: `coexist-migrator` with `directory.source = "ldap"` (issue
//! #12) against a real OpenLDAP `slapd` (the shipped schema, syncprov) and two
//! real Dovecots, with two relays following the same directory.
//!
//! - the flip creates the hidden contact and sets `altRecipient`; both relays
//!   route the user's next message to the cloud within 2 s, no SIGHUP;
//!   rollback clears it and mail goes home again;
//! - a run killed between the two writes (held at the ModifyRequest by a
//!   proxy, then SIGKILLed) and started again ends with one contact;
//! - a write the directory refuses fails that user with the server's words
//!   and writes nothing.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::ldap_proxy::{self, LdapProxy};
use coexist_e2e::sink::{Script, ScriptSink};
use coexist_e2e::slapd::{self, Slapd, SlapdSetup};
use coexist_e2e::smtp::Client;
use coexist_e2e::{binary, Relay, RelaySetup};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const ALICE: &str = "alice@corp.example";
const ALICE_CLOUD: &str = "alice@tenant.cloud.example";

struct Setup {
    _ca: TestCa,
    ldap: Slapd,
    _source: Dovecot,
    _target: Dovecot,
    dir: tempfile::TempDir,
}

fn start(service_writes: bool) -> Setup {
    let ca = TestCa::new();
    let ldif = format!(
        "{}{}{}{}",
        slapd::user_ldif(
            "alice",
            ALICE,
            &[("proxyAddresses", "smtp:ally@corp.example")]
        ),
        slapd::user_ldif("bob", "bob@corp.example", &[]),
        slapd::user_ldif("carol", "carol@corp.example", &[])
            .replace("userAccountControl: 512", "userAccountControl: 514"),
        slapd::user_ldif(
            "dave",
            "dave@corp.example",
            &[("targetAddress", "SMTP:dave@tenant.cloud.example")]
        ),
    );
    let ldap = Slapd::start(
        SlapdSetup {
            name: "ad".into(),
            ldif,
            service_writes,
            ..Default::default()
        },
        &ca,
    );
    let users =
        |domain: &'static str| vec![(if domain == "corp" { ALICE } else { ALICE_CLOUD }, "pw")];
    let source = Dovecot::start(
        DovecotSetup {
            name: "source",
            users: users("corp"),
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let target = Dovecot::start(
        DovecotSetup {
            name: "target",
            users: users("cloud"),
            quota: Some("100M"),
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(d.join("imap.password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("ldap.password"), format!("{}\n", slapd::SERVICE.1)).unwrap();
    let s = Setup {
        _ca: ca,
        ldap,
        _source: source,
        _target: target,
        dir,
    };
    s.write_config(
        &format!("url = [\"{}\"]", s.ldap.url()),
        &s._source.url(),
        &s._target.url(),
    );
    s
}

impl Setup {
    fn write_config(&self, ldap_url: &str, source: &str, target: &str) {
        let (master, svc, base, contacts) =
            (MASTER.0, slapd::SERVICE.0, slapd::SUFFIX, slapd::CONTACTS);
        let text = format!(
            r#"[directory]
source = "ldap"

[ldap]
{ldap_url}
ca = "ca.pem"
bind_dn = "{svc}"
password_file = "ldap.password"
base = "{base}"
contacts_base = "{contacts}"

[routing]
target_template = "{{local}}@tenant.cloud.example"

[source]
url = "{source}"
auth = "master"
master_user = "{master}"
password_file = "imap.password"
ca = "ca.pem"

[target]
url = "{target}"
auth = "authzid"
master_user = "{master}"
password_file = "imap.password"
ca = "ca.pem"

[migration]
state_dir = "state"
"#
        );
        std::fs::write(self.dir.path().join("migrator.toml"), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary("coexist-migrator"));
        c.arg("--config")
            .arg(self.dir.path().join("migrator.toml"))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().expect("run coexist-migrator");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn contacts(&self) -> Vec<String> {
        self.ldap
            .search("(objectClass=contact)", &["dn"])
            .lines()
            .filter_map(|l| l.strip_prefix("dn: ").map(str::to_string))
            .collect()
    }

    fn alt_recipient(&self, cn: &str) -> Option<String> {
        let out = self.ldap.search(&format!("(cn={cn})"), &["altRecipient"]);
        out.lines()
            .find_map(|l| l.strip_prefix("altRecipient: ").map(str::to_string))
    }

    fn relay(&self, hops: &(ScriptSink, ScriptSink)) -> Relay {
        let password = self.dir.path().join("ldap.password");
        let section = slapd::relay_ldap_section(&[self.ldap.url()], &self.ldap.ca_file, &password);
        let relay = RelaySetup::default()
            .section(
                "route.onprem",
                &format!("smarthost = [\"{}\"]\ntls = \"none\"", hops.0.hostport()),
            )
            .section(
                "route.cloud",
                &format!("smarthost = [\"{}\"]\ntls = \"none\"", hops.1.hostport()),
            )
            .section("routing", "source = \"ldap\"\ncontacts = \"contacts\"")
            .section("ldap", &section)
            .no_contacts()
            .start();
        assert!(
            relay
                .log
                .wait_for("directory snapshot loaded", 0, WAIT)
                .is_some(),
            "{}",
            relay.log.text()
        );
        relay
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // Metrics and the directory are polled: neither offers an event here.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One message to `rcpt` through `relay`; waits until `sink` has it; its recipients.
fn deliver(relay: &Relay, sink: &ScriptSink, rcpt: &str, id: &str) -> Vec<String> {
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    assert!(c.cmd("MAIL FROM:<s@example.net>").has(250, "2.1.0"));
    let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    assert!(reply.has(250, "2.1.5"), "{}", reply.text);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(format!("Subject: t\r\nMessage-ID: <{id}>\r\n\r\nhi\r\n.\r\n").as_bytes());
    assert_eq!(c.read_reply().code, 250);
    c.cmd("QUIT");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = sink
            .received()
            .into_iter()
            .find(|m| m.message_id().as_deref() == Some(&format!("<{id}>")))
        {
            return m.recipients;
        }
        assert!(Instant::now() < deadline, "{id} not delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_flip_in_the_directory_reaches_two_relays_within_2s_and_rollback_brings_mail_home() {
    let s = start(true);
    let hops = (
        ScriptSink::start(Script::default()),
        ScriptSink::start(Script::default()),
    );
    let relays = [s.relay(&hops), s.relay(&hops)];

    let (code, out, err) = s.run(&["ready", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let ready: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = ready
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    // carol is disabled (0x2), dave has a targetAddress of his own (Hybrid).
    assert_eq!(names, [ALICE, "bob@corp.example"], "{out}");

    let (code, out, err) = s.run(&["migrate", ALICE, "--forwarding-only"]);
    assert_eq!(code, 0, "{out}{err}");
    let flipped = Instant::now();
    let contact = slapd::contact_dn(ALICE);
    assert_eq!(s.contacts(), std::slice::from_ref(&contact));
    let entry = s
        .ldap
        .search(&format!("(targetAddress=SMTP:{ALICE_CLOUD})"), &["*"]);
    for line in [
        "objectClass: contact",
        "cn: alice@corp.example (cloud)",
        "displayName: alice",
        "mail: alice@tenant.cloud.example",
        "targetAddress: SMTP:alice@tenant.cloud.example",
        "msExchHideFromAddressLists: TRUE",
    ] {
        assert!(entry.contains(line), "{line} missing in\n{entry}");
    }
    assert_eq!(s.alt_recipient("alice").as_deref(), Some(contact.as_str()));
    assert!(s
        .ldap
        .search("(cn=alice)", &["deliverAndRedirect"])
        .contains("deliverAndRedirect: FALSE"));
    for r in &relays {
        // dave (Hybrid) was routed before; alice's mail and alias now too.
        wait_until("alice in the snapshot", Duration::from_secs(2), || {
            r.metric("coexist_routing_contacts") == 3.0
        });
    }
    assert!(
        flipped.elapsed() < Duration::from_secs(2),
        "{:?}",
        flipped.elapsed()
    );
    for (i, r) in relays.iter().enumerate() {
        assert_eq!(
            deliver(r, &hops.1, "ally@corp.example", &format!("flip-{i}@t")),
            [ALICE_CLOUD]
        );
    }
    let (_, out, _) = s.run(&["ready", "--json"]);
    assert!(!out.contains(ALICE), "{out}");
    let (_, out, _) = s.run(&["status", ALICE]);
    assert!(out.contains("forwarding set"), "{out}");

    let (code, out, err) = s.run(&["rollback", ALICE]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("contact removed"), "{out}");
    assert_eq!(s.alt_recipient("alice"), None);
    assert!(s.contacts().is_empty());
    for (i, r) in relays.iter().enumerate() {
        wait_until(
            "alice gone from the snapshot",
            Duration::from_secs(2),
            || r.metric("coexist_routing_contacts") == 1.0,
        );
        assert_eq!(deliver(r, &hops.0, ALICE, &format!("home-{i}@t")), [ALICE]);
    }
    let (_, out, _) = s.run(&["ready", "--json"]);
    assert!(out.contains(ALICE), "rolled back: ready again: {out}");
}

#[test]
fn a_run_killed_between_the_two_writes_ends_with_one_contact() {
    let s = start(true);
    // Plaintext through a proxy that holds the first ModifyRequest (the flip),
    // after the contact was added.
    let proxy = LdapProxy::start(s.ldap.port, ldap_proxy::MODIFY);
    s.write_config(
        &format!(
            "url = [\"{}\"]\nstarttls = false\ninsecure = true",
            proxy.url()
        ),
        &s._source.url(),
        &s._target.url(),
    );
    let mut child = s
        .command(&["migrate", ALICE, "--forwarding-only"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(proxy.wait_held(WAIT), "the migrator never sent the flip");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        s.contacts(),
        [slapd::contact_dn(ALICE)],
        "the first write happened"
    );
    assert_eq!(s.alt_recipient("alice"), None, "the second did not");

    // Started again (directly, StartTLS): the same end state, one contact.
    s.write_config(
        &format!("url = [\"{}\"]", s.ldap.url()),
        &s._source.url(),
        &s._target.url(),
    );
    for _ in 0..2 {
        let (code, out, err) = s.run(&["migrate", ALICE, "--forwarding-only"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(s.contacts(), [slapd::contact_dn(ALICE)]);
        assert_eq!(s.alt_recipient("alice"), Some(slapd::contact_dn(ALICE)));
    }
}

#[test]
fn a_write_the_directory_refuses_fails_that_user_with_the_servers_words() {
    let s = start(false);
    let before = s.ldap.search("(objectClass=*)", &["*"]);
    let report = s.dir.path().join("report.json");
    let (code, out, err) = s.run(&[
        "migrate",
        ALICE,
        "--forwarding-only",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let error = json["users"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("insufficientAccessRights (50)"), "{error}");
    assert!(
        error.contains(&format!("add {}", slapd::contact_dn(ALICE))),
        "{error}"
    );
    assert_eq!(
        s.ldap.search("(objectClass=*)", &["*"]),
        before,
        "nothing written"
    );
}

#[test]
fn a_contacts_base_missing_on_the_server_fails_the_user_and_writes_nothing() {
    let s = start(true);
    let text = std::fs::read_to_string(s.dir.path().join("migrator.toml")).unwrap();
    let text = text.replace(
        &format!("contacts_base = \"{}\"", slapd::CONTACTS),
        "contacts_base = \"ou=Nowhere,dc=corp,dc=example\"",
    );
    std::fs::write(s.dir.path().join("migrator.toml"), text).unwrap();
    let before = s.ldap.search("(objectClass=*)", &["*"]);
    let report = s.dir.path().join("report.json");
    let (code, out, err) = s.run(&[
        "migrate",
        ALICE,
        "--forwarding-only",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let error = json["users"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("noSuchObject (32)"), "{error}");
    assert_eq!(
        s.ldap.search("(objectClass=*)", &["*"]),
        before,
        "nothing written"
    );
}
