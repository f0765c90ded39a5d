//! End-to-end: the directory as the routing source (issue #12), the built
//! relay against real OpenLDAP `slapd` instances (syncprov, the shipped
//! schema), with scripted next hops.
//!
//! - two relays on one directory both route a user changed with ldapmodify to
//!   the cloud within 2 s, without SIGHUP;
//! - the directory stopped: routing goes on, `routing_source_up` 0, a relay
//!   restarted meanwhile routes from its cache, then 1 and a change is picked
//!   up when slapd is back;
//! - failover to a syncrepl replica listed second in `url`;
//! - no cache and no directory: `/readyz` 503 and `451 4.3.0` at RCPT;
//! - a refused bind, a missing base, an unreachable URL: clear errors.

use coexist_e2e::dovecot::TestCa;
use coexist_e2e::sink::{Script, ScriptSink};
use coexist_e2e::slapd::{self, Slapd, SlapdSetup};
use coexist_e2e::smtp::Client;
use coexist_e2e::{http_get, Relay, RelaySetup};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

struct Hops {
    onprem: ScriptSink,
    cloud: ScriptSink,
}

fn hops() -> Hops {
    Hops {
        onprem: ScriptSink::start(Script::default()),
        cloud: ScriptSink::start(Script::default()),
    }
}

/// A directory with alice (on-premises) and bob (migrated: contact + altRecipient).
fn directory(ca: &TestCa) -> Slapd {
    let ldif = format!(
        "{}{}{}",
        slapd::user_ldif(
            "alice",
            "alice@corp.example",
            &[("proxyAddresses", "smtp:ally@corp.example")]
        ),
        slapd::contact_ldif("bob@corp.example", "bob@tenant.cloud.example"),
        slapd::user_ldif(
            "bob",
            "bob@corp.example",
            &[
                ("altRecipient", &slapd::contact_dn("bob@corp.example")),
                ("deliverAndRedirect", "FALSE")
            ]
        ),
    );
    Slapd::start(
        SlapdSetup {
            name: "provider".into(),
            ldif,
            ..Default::default()
        },
        ca,
    )
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("ldap.password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path
}

fn setup(hops: &Hops, ldap_section: &str) -> RelaySetup {
    RelaySetup::default()
        .section(
            "route.onprem",
            &format!(
                "smarthost = [\"{}\"]\ntls = \"none\"",
                hops.onprem.hostport()
            ),
        )
        .section(
            "route.cloud",
            &format!(
                "smarthost = [\"{}\"]\ntls = \"none\"",
                hops.cloud.hostport()
            ),
        )
        .section("routing", "source = \"ldap\"\ncontacts = \"contacts\"")
        .section("ldap", ldap_section)
        .no_contacts()
}

/// A relay following `urls`, bound as the service account.
fn relay(hops: &Hops, urls: &[String], ca_file: &Path, secrets: &Path) -> Relay {
    let section =
        slapd::relay_ldap_section(urls, ca_file, &password_file(secrets, slapd::SERVICE.1));
    setup(hops, &section).start()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // The relay's metrics are polled: it offers no event to await.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn snapshots(relay: &Relay) -> f64 {
    relay.metric("coexist_routing_reloads_total{result=\"ok\"}")
}

fn wait_for_snapshot(relay: &Relay) {
    assert!(
        relay
            .log
            .wait_for("directory snapshot loaded", 0, WAIT)
            .is_some(),
        "no snapshot:\n{}",
        relay.log.text()
    );
}

/// Sends one message to `rcpt`; returns the final reply code of RCPT.
fn send(relay: &Relay, rcpt: &str, id: &str) -> u16 {
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd("MAIL FROM:<sender@example.net>").has(250, "2.1.0"));
    let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    if reply.code != 250 {
        c.cmd("QUIT");
        return reply.code;
    }
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(
        format!(
            "From: <sender@example.net>\r\nSubject: t\r\nMessage-ID: <{id}>\r\n\r\nhello\r\n.\r\n"
        )
        .as_bytes(),
    );
    let reply = c.read_reply();
    assert!(reply.has(250, "2.0.0"), "{}", reply.text);
    c.cmd("QUIT");
    250
}

/// Waits until `sink` got the message `id`; returns its recipients.
fn delivered(sink: &ScriptSink, id: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = sink
            .received()
            .into_iter()
            .find(|m| m.message_id().as_deref() == Some(&format!("<{id}>")))
        {
            return m.recipients;
        }
        assert!(Instant::now() < deadline, "message {id} not delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn migrate_in_directory(dir: &Slapd, cn: &str, address: &str, target: &str) {
    dir.add(&slapd::contact_ldif(address, target));
    dir.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: altRecipient\naltRecipient: {}\n-\nreplace: deliverAndRedirect\ndeliverAndRedirect: FALSE\n",
        slapd::user_dn(cn),
        slapd::contact_dn(address)
    ));
}

#[test]
fn two_relays_route_a_user_changed_in_the_directory_to_the_cloud_within_2s() {
    let ca = TestCa::new();
    let dir = directory(&ca);
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    let relays: Vec<Relay> = (0..2)
        .map(|_| relay(&hops, &[dir.url()], &dir.ca_file, secrets.path()))
        .collect();
    for r in &relays {
        wait_for_snapshot(r);
        assert_eq!(r.metric("coexist_routing_source_up"), 1.0);
        // bob is migrated: his mail and his alias go to the contact's targetAddress.
        assert_eq!(r.metric("coexist_routing_contacts"), 1.0);
    }
    assert_eq!(send(&relays[0], "bob@corp.example", "bob-1@test"), 250);
    assert_eq!(
        delivered(&hops.cloud, "bob-1@test"),
        ["bob@tenant.cloud.example"]
    );
    assert_eq!(send(&relays[1], "alice@corp.example", "alice-1@test"), 250);
    assert_eq!(
        delivered(&hops.onprem, "alice-1@test"),
        ["alice@corp.example"]
    );

    // The change is made in the directory itself; no SIGHUP.
    let before: Vec<f64> = relays.iter().map(snapshots).collect();
    let written = Instant::now();
    migrate_in_directory(
        &dir,
        "alice",
        "alice@corp.example",
        "alice@tenant.cloud.example",
    );
    for (r, before) in relays.iter().zip(before) {
        wait_until("the change in the snapshot", Duration::from_secs(2), || {
            r.metric("coexist_routing_contacts") == 3.0 && snapshots(r) > before
        });
    }
    let took = written.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    for (i, r) in relays.iter().enumerate() {
        let id = format!("alice-2-{i}@test");
        assert_eq!(send(r, "ally@corp.example", &id), 250);
        assert_eq!(delivered(&hops.cloud, &id), ["alice@tenant.cloud.example"]);
    }
    // The cache on disk is the contacts-table format, commented with the DN
    // (written off the routing path, so it follows the snapshot shortly).
    let cached = |cache: &str| {
        cache.lines().any(|l| {
            l.starts_with("ally@corp.example")
                && l.contains("alice@tenant.cloud.example")
                && l.ends_with(
                    "# cn=alice@corp.example (cloud),ou=Cloud Contacts,dc=corp,dc=example",
                )
        })
    };
    let file = relays[0].dir.path().join("contacts");
    wait_until("the change in the cache", Duration::from_secs(5), || {
        cached(&std::fs::read_to_string(&file).unwrap_or_default())
    });
    let out = relays[0].cli(&["route", "ally@corp.example"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("contact in the directory (cn=alice@corp.example (cloud),ou=Cloud Contacts,dc=corp,dc=example)"), "{shown}");
}

#[test]
fn the_directory_down_keeps_routing_and_a_restarted_relay_routes_from_its_cache() {
    let ca = TestCa::new();
    let mut dir = directory(&ca);
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    let mut relays: Vec<Relay> = (0..2)
        .map(|_| relay(&hops, &[dir.url()], &dir.ca_file, secrets.path()))
        .collect();
    for r in &relays {
        wait_for_snapshot(r);
    }
    dir.stop();
    for r in &relays {
        wait_until("routing_source_up 0", Duration::from_secs(15), || {
            r.metric("coexist_routing_source_up") == 0.0
        });
        assert_eq!(http_get(r.metrics.unwrap(), "/readyz").0, 200);
    }
    assert!(relays[0].log.wait_for("directory: ", 0, WAIT).is_some());
    assert_eq!(send(&relays[0], "bob@corp.example", "down-1@test"), 250);
    assert_eq!(
        delivered(&hops.cloud, "down-1@test"),
        ["bob@tenant.cloud.example"]
    );

    // A relay restarted while no server answers routes from its cache at once.
    relays[1].kill();
    let from = relays[1].log.len();
    relays[1].restart();
    assert!(
        relays[1]
            .log
            .wait_for("serving the cached directory snapshot", from, WAIT)
            .is_some(),
        "{}",
        relays[1].log.text()
    );
    assert_eq!(http_get(relays[1].metrics.unwrap(), "/readyz").0, 200);
    assert_eq!(relays[1].metric("coexist_routing_source_up"), 0.0);
    assert_eq!(send(&relays[1], "bob@corp.example", "down-2@test"), 250);
    assert_eq!(
        delivered(&hops.cloud, "down-2@test"),
        ["bob@tenant.cloud.example"]
    );

    // Back: both catch up, and a change made after that is picked up.
    dir.restart();
    for r in &relays {
        wait_until("routing_source_up 1", WAIT, || {
            r.metric("coexist_routing_source_up") == 1.0
        });
    }
    migrate_in_directory(
        &dir,
        "alice",
        "alice@corp.example",
        "alice@tenant.cloud.example",
    );
    for (i, r) in relays.iter().enumerate() {
        wait_until("alice in the snapshot", Duration::from_secs(5), || {
            r.metric("coexist_routing_contacts") == 3.0
        });
        let id = format!("back-{i}@test");
        assert_eq!(send(r, "alice@corp.example", &id), 250);
        assert_eq!(delivered(&hops.cloud, &id), ["alice@tenant.cloud.example"]);
    }
}

#[test]
fn failover_to_a_replica_listed_second() {
    let ca = TestCa::new();
    let mut provider = directory(&ca);
    let replica = Slapd::start(
        SlapdSetup {
            name: "replica".into(),
            provider: Some(provider.url()),
            ..Default::default()
        },
        &ca,
    );
    // The replica has the provider's content before the test goes on.
    wait_until("the replica to copy the provider", WAIT, || {
        replica
            .search("(mail=bob@corp.example)", &["dn"])
            .contains("dn: cn=bob")
    });
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    // ldaps:// for the provider, StartTLS for the replica: both verified with `ca`.
    let relay = relay(
        &hops,
        &[provider.ldaps_url(), replica.url()],
        &provider.ca_file,
        secrets.path(),
    );
    wait_for_snapshot(&relay);
    assert!(
        relay
            .log
            .text()
            .contains(&format!("url={}", provider.ldaps_url())),
        "{}",
        relay.log.text()
    );
    provider.stop();
    let from = relay.log.len();
    assert!(
        relay
            .log
            .wait_for(&format!("url={}", replica.url()), from, WAIT)
            .is_some(),
        "no failover:\n{}",
        relay.log.text()
    );
    wait_until("routing_source_up 1 on the replica", WAIT, || {
        relay.metric("coexist_routing_source_up") == 1.0
    });
    assert_eq!(send(&relay, "bob@corp.example", "replica-1@test"), 250);
    assert_eq!(
        delivered(&hops.cloud, "replica-1@test"),
        ["bob@tenant.cloud.example"]
    );
}

#[test]
fn no_cache_and_no_directory_means_451_not_on_premises() {
    let ca = TestCa::new();
    let mut dir = directory(&ca);
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    let url = dir.url();
    dir.stop();
    let relay = relay(&hops, &[url], &dir.ca_file, secrets.path());
    assert!(
        relay
            .log
            .wait_for("directory: no directory server answered", 0, WAIT)
            .is_some(),
        "{}",
        relay.log.text()
    );
    let (status, body) = http_get(relay.metrics.unwrap(), "/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("no routing snapshot yet"), "{body}");
    let (mut c, _) = Client::connect(relay.addr("smtp"));
    c.ehlo();
    assert!(c.cmd("MAIL FROM:<s@example.net>").has(250, "2.1.0"));
    let reply = c.cmd("RCPT TO:<bob@corp.example>");
    assert!(reply.has(451, "4.3.0"), "{}", reply.text);
    c.cmd("QUIT");
    assert_eq!(
        relay.metric("coexist_recipients_rejected_total{reason=\"routing\"}"),
        1.0
    );
    // The directory answers: the first snapshot loads and bob goes to the cloud.
    dir.restart();
    wait_until("the first snapshot", WAIT, || {
        http_get(relay.metrics.unwrap(), "/readyz").0 == 200
    });
    assert_eq!(send(&relay, "bob@corp.example", "late-1@test"), 250);
    assert_eq!(
        delivered(&hops.cloud, "late-1@test"),
        ["bob@tenant.cloud.example"]
    );
}

/// `check --online` on a relay whose `[ldap]` is `section`: (exit code, stderr).
fn check_online(relay: &Relay) -> (i32, String) {
    let out = relay.cli(&["check", "--online"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_password_a_missing_base_and_an_unreachable_url_are_clear_errors() {
    let ca = TestCa::new();
    let dir = directory(&ca);
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    let good = password_file(secrets.path(), slapd::SERVICE.1);
    let bad_password = secrets.path().join("wrong.password");
    std::fs::write(&bad_password, "not-the-password\n").unwrap();
    let cases = [
        (
            slapd::relay_ldap_section(&[dir.url()], &dir.ca_file, &bad_password),
            "bind as \"cn=coexist,ou=Service,dc=corp,dc=example\" refused: invalidCredentials (49)",
        ),
        (
            slapd::relay_ldap_section(&[dir.url()], &dir.ca_file, &good)
                .replace("base = \"dc=corp", "base = \"ou=Nowhere,dc=corp"),
            "noSuchObject (32)",
        ),
        (
            slapd::relay_ldap_section(
                &[format!("ldap://127.0.0.1:{}", coexist_e2e::free_port())],
                &dir.ca_file,
                &good,
            ),
            "cannot connect: I/O error: Connection refused",
        ),
    ];
    for (section, expected) in cases {
        let relay = setup(&hops, &section).start();
        let (code, stderr) = check_online(&relay);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(expected), "wanted {expected:?} in {stderr}");
        // The daemon says the same, once per attempt, and writes no cache.
        assert!(
            relay.log.wait_for(expected, 0, WAIT).is_some(),
            "{}",
            relay.log.text()
        );
        assert_eq!(http_get(relay.metrics.unwrap(), "/readyz").0, 503);
        assert!(!relay.dir.path().join("contacts").exists());
        let out = relay.cli(&["doctor", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["what"].as_str().unwrap_or("").starts_with("directory "))
            .cloned()
            .unwrap();
        assert_eq!(check["status"], "fail", "{check}");
        assert!(
            check["detail"].as_str().unwrap().contains(expected),
            "{check}"
        );
        assert!(!check["fix"].as_str().unwrap().is_empty(), "{check}");
    }
    // A good one counts what it would route.
    let relay = setup(
        &hops,
        &slapd::relay_ldap_section(&[dir.url()], &dir.ca_file, &good),
    )
    .start();
    let out = relay.cli(&["check", "--online"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 user(s), 1 contact(s), 1 address(es) routed, 0 left out; changes by RFC 4533 refreshAndPersist"), "{stdout}");
    // doctor: the same look, as a check with its status.
    let out = relay.cli(&["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["what"] == "directory dc=corp,dc=example")
        .cloned();
    let check = check.unwrap_or_else(|| panic!("no directory check: {report}"));
    assert_eq!(check["status"], "ok", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("bound as cn=coexist,ou=Service,dc=corp,dc=example"),
        "{check}"
    );
}

#[test]
fn plaintext_ldap_without_insecure_is_a_config_error() {
    let hops = hops();
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&hops, "url = [\"ldap://127.0.0.1:389\"]\nstarttls = false\nbind_dn = \"cn=x\"\npassword_file = \"p\"\nbase = \"dc=corp,dc=example\"").render();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, &config).unwrap();
    let line = config
        .lines()
        .position(|l| l.starts_with("url = "))
        .unwrap()
        + 1;
    for command in [&["check"][..], &["run"][..]] {
        let out = std::process::Command::new(coexist_e2e::binary("coexist-relay"))
            .arg("--config")
            .arg(&path)
            .args(command)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "relay.toml:{line}: ldap.url[0]: \"ldap://127.0.0.1:389\" is plaintext LDAP"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn without_rfc4533_the_relay_re_reads_every_refresh() {
    let ca = TestCa::new();
    let ldif = slapd::user_ldif("alice", "alice@corp.example", &[]);
    let dir = Slapd::start(
        SlapdSetup {
            name: "no-syncprov".into(),
            ldif,
            without_syncprov: true,
            ..Default::default()
        },
        &ca,
    );
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    let section = slapd::relay_ldap_section(
        &[dir.url()],
        &dir.ca_file,
        &password_file(secrets.path(), slapd::SERVICE.1),
    );
    let relay = setup(&hops, &format!("{section}\nrefresh = \"1s\"")).start();
    wait_for_snapshot(&relay);
    assert!(
        relay.log.text().contains("mode=\"periodic re-read\""),
        "{}",
        relay.log.text()
    );
    assert_eq!(relay.metric("coexist_routing_contacts"), 0.0);
    migrate_in_directory(
        &dir,
        "alice",
        "alice@corp.example",
        "alice@tenant.cloud.example",
    );
    wait_until("the next re-read", Duration::from_secs(3), || {
        relay.metric("coexist_routing_contacts") == 1.0
    });
    assert_eq!(send(&relay, "alice@corp.example", "poll-1@test"), 250);
    assert_eq!(
        delivered(&hops.cloud, "poll-1@test"),
        ["alice@tenant.cloud.example"]
    );
}

#[test]
fn the_shipped_example_directory_loads_and_routes_bob_and_his_alias() {
    let ca = TestCa::new();
    let ldif = std::fs::read_to_string(coexist_e2e::repo_root().join("config/ldap/directory.ldif"))
        .unwrap();
    let dir = Slapd::start(
        SlapdSetup {
            name: "example".into(),
            ldif,
            bare: true,
            ..Default::default()
        },
        &ca,
    );
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    let section = slapd::relay_ldap_section(
        &[dir.url()],
        &dir.ca_file,
        &password_file(secrets.path(), "change-me-too"),
    );
    let relay = setup(&hops, &section).start();
    wait_for_snapshot(&relay);
    assert_eq!(relay.metric("coexist_routing_contacts"), 2.0);
    // `route` reads the cache, written just after the snapshot is served.
    let cache = relay.dir.path().join("contacts");
    wait_until("the cache", Duration::from_secs(5), || cache.exists());
    let out = relay.cli(&[
        "route",
        "bobby@corp.example",
        "a.adams@corp.example",
        "carol@corp.example",
    ]);
    let shown = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(lines[0].starts_with("bobby@corp.example -> bob@tenant.cloud.example via cloud") && lines[0].contains("contact in the directory (cn=bob@corp.example (cloud),ou=Cloud Contacts,dc=corp,dc=example)"), "{shown}");
    assert!(
        lines[1].starts_with("a.adams@corp.example -> a.adams@corp.example via onprem"),
        "{shown}"
    );
    assert!(
        lines[2].starts_with("carol@corp.example -> carol@corp.example via onprem"),
        "{shown}"
    );
}

#[test]
fn sighup_re_reads_and_an_unusable_entry_is_left_out_with_its_dn() {
    let ca = TestCa::new();
    let dir = directory(&ca);
    let hops = hops();
    let secrets = tempfile::tempdir().unwrap();
    let relay = relay(&hops, &[dir.url()], &dir.ca_file, secrets.path());
    wait_for_snapshot(&relay);
    assert!(relay.metric("coexist_routing_source_last_sync_timestamp_seconds") > 1.7e9);
    let errors = relay.metric("coexist_routing_reloads_total{result=\"error\"}");
    // carol's altRecipient names no contact: carol is left out, bob still routes.
    dir.add(&slapd::user_ldif(
        "carol",
        "carol@corp.example",
        &[(
            "altRecipient",
            "cn=nobody,ou=Cloud Contacts,dc=corp,dc=example",
        )],
    ));
    let line = relay
        .log
        .wait_for("left out of the routing snapshot", 0, WAIT)
        .expect("carol reported");
    let text = relay.log.text();
    let shown = text.lines().nth(line).unwrap();
    assert!(
        shown.contains("dn=cn=carol,ou=Users,dc=corp,dc=example")
            && shown.contains(
                "altRecipient \"cn=nobody,ou=Cloud Contacts,dc=corp,dc=example\" is not a contact"
            ),
        "{shown}"
    );
    wait_until("the error counted", WAIT, || {
        relay.metric("coexist_routing_reloads_total{result=\"error\"}") > errors
    });
    assert_eq!(relay.metric("coexist_routing_contacts"), 1.0);
    assert_eq!(send(&relay, "bob@corp.example", "left-1@test"), 250);
    assert_eq!(
        delivered(&hops.cloud, "left-1@test"),
        ["bob@tenant.cloud.example"]
    );

    // SIGHUP: a full re-read now (a new connection, a new first snapshot).
    let from = relay.log.len();
    relay.signal("HUP");
    assert!(relay
        .log
        .wait_for("SIGHUP: re-reading the directory", from, WAIT)
        .is_some());
    assert!(
        relay
            .log
            .wait_for("directory connected", from, WAIT)
            .is_some(),
        "{}",
        relay.log.text()
    );
    assert!(relay
        .log
        .wait_for("directory snapshot loaded", from, WAIT)
        .is_some());
    assert_eq!(relay.metric("coexist_routing_source_up"), 1.0);
}
