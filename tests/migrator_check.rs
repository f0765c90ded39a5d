//! End-to-end: `coexist-migrator check` (issue #14), the pre-flight, against two
//! real Dovecot instances (TLS with a CA made per test, a master user, a quota
//! on the target). Each line is ok / warn / fail with a `fix:`, as
//! `coexist-relay doctor`; `--json`; exit 0 / 1 / 2; nothing is written.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa};
use coexist_e2e::migrator_config::MigratorConfig;
use coexist_e2e::radicale::Radicale;
use coexist_e2e::slapd::{self, Slapd, SlapdSetup};
use serde_json::Value;
use std::process::Command;

const ALICE: &str = "alice@corp.example";
const ALICE_CLOUD: &str = "alice@tenant.cloud.example";

struct Setup {
    ca: TestCa,
    source: Dovecot,
    target: Dovecot,
    dir: tempfile::TempDir,
}

fn start(target_quota: &str, body_bytes: usize) -> Setup {
    let ca = TestCa::new();
    let source = Dovecot::start(
        DovecotSetup {
            name: "source",
            users: vec![(ALICE, "pw"), ("bob@corp.example", "pw")],
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let target = Dovecot::start(
        DovecotSetup {
            name: "target",
            users: vec![
                ("alice@tenant.cloud.example", "pw"),
                ("bob@tenant.cloud.example", "pw"),
            ],
            quota: Some(target_quota),
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let eml = d.join("m.eml");
    std::fs::write(
        &eml,
        format!(
            "From: carol@example.net\r\nSubject: hi\r\nMessage-ID: <c1@x>\r\n\r\n{}\r\n",
            "x".repeat(body_bytes)
        ),
    )
    .unwrap();
    let spec = d.join("seed.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&serde_json::json!([{"folder": "INBOX", "flags": [], "date": "01-Jan-2024 10:00:00 +0000", "file": eml}]))
            .unwrap(),
    )
    .unwrap();
    source.seed(ALICE, &spec);
    let s = Setup {
        ca,
        source,
        target,
        dir,
    };
    s.write_config("ca.pem");
    s
}

impl Setup {
    /// The shared set-up; `target_ca` is the target's `ca` value.
    fn config(&self, target_ca: &str) -> MigratorConfig {
        MigratorConfig::new(&self.source.url(), &self.target.url()).set("target", "ca", target_ca)
    }

    fn write_config(&self, target_ca: &str) {
        self.config(target_ca)
            .write(self.dir.path(), &self.ca.ca_pem);
    }

    fn check(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(coexist_e2e::binary("coexist-migrator"))
            .arg("--config")
            .arg(self.dir.path().join("migrator.toml"))
            .arg("check")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The line (and its fix line) whose `what` starts with `prefix`.
fn line<'a>(out: &'a str, status: &str, prefix: &str) -> Option<&'a str> {
    let start = format!("{status:<5} {prefix}");
    out.lines().find(|l| l.starts_with(&start))
}

fn fix_after<'a>(out: &'a str, first: &str) -> &'a str {
    let mut lines = out.lines().skip_while(|l| *l != first);
    lines.next();
    lines
        .next()
        .and_then(|l| l.trim_start().strip_prefix("fix: "))
        .unwrap_or_else(|| panic!("no fix after {first:?} in:\n{out}"))
}

#[test]
fn a_ready_setup_passes_and_nothing_is_written() {
    let s = start("100M", 1000);
    let (code, out, err) = s.check(&[ALICE]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (status, prefix) in [
        ("ok", "config: "),
        ("ok", "directory users: "),
        ("ok", "contacts table: "),
        ("ok", "contacts folder: "),
        ("ok", "state folder: "),
        ("ok", "source IMAP imaps://127.0.0.1:"),
        ("ok", "target IMAP imaps://127.0.0.1:"),
        (
            "ok",
            "target capability LITERAL+/LITERAL-: LITERAL+ offered",
        ),
        ("ok", "target capability QUOTA: "),
        ("ok", "target capability MULTIAPPEND: "),
        ("ok", "source capability CONDSTORE/QRESYNC: "),
    ] {
        assert!(
            line(&out, status, prefix).is_some(),
            "no {status} {prefix} in:\n{out}"
        );
    }
    let user = line(&out, "ok", "user alice@corp.example: ").expect(&out);
    assert!(user.contains("both mailboxes open; 1 message(s)"), "{user}");
    assert!(user.contains("fits"), "{user}");
    assert!(line(&out, "ok", "target IMAP")
        .unwrap()
        .contains("certificate verified"));
    // Dovecot without its zlib plugin: a warning, with what it costs.
    let compress = line(
        &out,
        "warn",
        "target COMPRESS=DEFLATE (compress = \"auto\"): ",
    )
    .expect(&out);
    assert!(compress.contains("not offered"), "{compress}");
    assert!(fix_after(&out, compress).contains("imap_zlib"), "{out}");

    // The pre-flight wrote nothing.
    assert!(!s.dir.path().join("state").exists());
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("contacts")).unwrap(),
        "# address target [route]\n"
    );

    let (code, out, _) = s.check(&["--json", ALICE]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).unwrap();
    let checks = json["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{out}");
    assert!(checks
        .iter()
        .any(|c| c["what"] == "user alice@corp.example" && c["status"] == "ok"));
}

#[test]
fn failures_come_with_their_fixes_and_exit_1() {
    // A 1 MiB target quota for a 2 MB mailbox, an unknown and a disabled user.
    let s = start("1M", 2_000_000);
    let (code, out, err) = s.check(&[ALICE, "nobody@corp.example", "carol@corp.example"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let user = line(&out, "fail", "user alice@corp.example: ").expect(&out);
    assert!(user.contains("DOES NOT FIT"), "{user}");
    assert!(
        fix_after(&out, user).contains("raise the target quota"),
        "{out}"
    );
    let unknown = line(&out, "fail", "user nobody@corp.example: ").expect(&out);
    assert!(fix_after(&out, unknown).contains("add the user"), "{out}");
    assert!(
        line(&out, "warn", "user carol@corp.example: disabled").is_some(),
        "{out}"
    );

    // The target's CA not trusted: the TLS line fails, no user can be opened.
    s.write_config("");
    let (code, out, _) = s.check(&[ALICE]);
    assert_eq!(code, 1, "{out}");
    let tls = line(&out, "fail", "target IMAP ").expect(&out);
    assert!(tls.contains("TLS"), "{tls}");
    assert!(fix_after(&out, tls).contains("[target] ca"), "{out}");
    assert!(
        line(&out, "fail", "user alice@corp.example: target: TLS").is_some(),
        "{out}"
    );
    assert!(
        line(&out, "warn", "capabilities: not checked").is_some(),
        "{out}"
    );
}

#[test]
fn a_config_that_does_not_load_exits_2() {
    let s = start("100M", 10);
    let path = s.dir.path().join("migrator.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("state_dir", "stat_dir")).unwrap();
    let (code, out, err) = s.check(&[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("migrator.toml:"), "{err}");
    assert!(err.contains("migration.stat_dir: unknown key"), "{err}");
}

/// Two Radicales beside the Dovecots: alice has a calendar (one event) and an
/// address book on the source; the target Radicale has never seen her.
fn start_dav() -> (Setup, Radicale, Radicale) {
    let s = start("100M", 1000);
    let source = Radicale::start("source", &[(ALICE, "pw")], &s.ca);
    let target = Radicale::start("target", &[(ALICE_CLOUD, "pw")], &s.ca);
    source.must(
        ALICE,
        "pw",
        &["mkcalendar", "/alice@corp.example/work/", "Work"],
    );
    source.must(
        ALICE,
        "pw",
        &["mkaddressbook", "/alice@corp.example/contacts/", "Contacts"],
    );
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//test//EN\r\nBEGIN:VEVENT\r\n\
                 UID:e1\r\nDTSTAMP:20250101T080000Z\r\nDTSTART:20250310T090000Z\r\nSUMMARY:x\r\n\
                 END:VEVENT\r\nEND:VCALENDAR\r\n";
    source.put(
        ALICE,
        "pw",
        "/alice@corp.example/work/e1.ics",
        event,
        s.dir.path(),
    );
    (s, source, target)
}

#[test]
fn dav_homes_scheduling_and_quota_are_checked_and_nothing_is_created() {
    let (s, source, target) = start_dav();
    let dav = s.config("ca.pem").dav(&source.url(), &target.url());
    dav.write(s.dir.path(), &s.ca.ca_pem);
    let (code, out, err) = s.check(&[ALICE]);
    assert_eq!(code, 0, "{out}\n{err}");
    for side in ["source", "target"] {
        let l = line(&out, "ok", &format!("{side} DAV https://127.0.0.1:")).expect(&out);
        assert!(l.contains("TLS certificate verified for 127.0.0.1"), "{l}");
    }
    let src = line(&out, "ok", "user alice@corp.example source DAV: ").expect(&out);
    assert!(
        src.contains(
            "homes from dav_home: 1 calendar(s) at /alice@corp.example/; 1 address book(s) at /alice@corp.example/"
        ),
        "{src}"
    );
    let dst = line(&out, "ok", "user alice@corp.example target DAV: ").expect(&out);
    assert!(
        dst.contains("/alice@tenant.cloud.example/ is not there yet: migrate creates it"),
        "{dst}"
    );
    let scheduling = line(&out, "ok", "target DAV scheduling: ").expect(&out);
    assert!(
        scheduling.contains("no calendar-auto-schedule"),
        "{scheduling}"
    );
    let quota = line(&out, "ok", "user alice@corp.example target DAV quota: ").expect(&out);
    assert!(quota.contains("no RFC 4331 quota"), "{quota}");
    let user = line(&out, "ok", "user alice@corp.example: ").expect(&out);
    assert!(user.contains("of calendars and contacts to copy"), "{user}");
    // Nothing created on the target, not even the missing home.
    assert!(
        !target
            .dir
            .path()
            .join("collections/collection-root/alice@tenant.cloud.example")
            .exists(),
        "check created the target home"
    );
    assert!(!s.dir.path().join("state").exists());

    let (code, json, _) = s.check(&["--json", ALICE]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&json).unwrap();
    let checks = json["checks"].as_array().unwrap();
    for what in [
        "user alice@corp.example source DAV",
        "user alice@corp.example target DAV",
        "target DAV scheduling",
        "user alice@corp.example target DAV quota",
    ] {
        assert!(
            checks
                .iter()
                .any(|c| c["what"] == what && c["status"] == "ok"),
            "no ok {what} in {json:#}"
        );
    }

    // After a migrate, what is copied no longer counts against the quota.
    let out = Command::new(coexist_e2e::binary("coexist-migrator"))
        .arg("--config")
        .arg(s.dir.path().join("migrator.toml"))
        .args(["migrate", ALICE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out, _) = s.check(&[ALICE]);
    assert_eq!(code, 0, "{out}");
    let quota = line(&out, "ok", "user alice@corp.example target DAV quota: ").expect(&out);
    assert!(quota.contains(": 0 B of calendars and contacts"), "{quota}");
    let dst = line(&out, "ok", "user alice@corp.example target DAV: ").expect(&out);
    assert!(
        dst.contains("1 calendar(s) at /alice@tenant.cloud.example/"),
        "{dst}"
    );

    // Without dav_home, as the user: found through current-user-principal.
    let own = dav
        .set("source", "auth", "password")
        .set("source", "login", "{address}")
        .unset("source", "master_user")
        .unset("source", "dav_home")
        .file("source.password", &format!("{ALICE} pw\n"));
    own.write(s.dir.path(), &s.ca.ca_pem);
    let (code, out, err) = s.check(&[ALICE]);
    assert_eq!(code, 0, "{out}\n{err}");
    let src = line(&out, "ok", "user alice@corp.example source DAV: ").expect(&out);
    assert!(
        src.contains("homes from principal /alice@corp.example/: 1 calendar(s)"),
        "{src}"
    );
}

#[test]
fn dav_failures_come_with_their_fixes_and_exit_1() {
    let (s, source, target) = start_dav();
    // The target's DAV server is not there; the source's home template is wrong.
    let closed = format!("https://127.0.0.1:{}", coexist_e2e::free_port());
    s.config("ca.pem")
        .dav(&source.url(), &closed)
        .set("source", "dav_home", "/nobody-{local}/")
        .write(s.dir.path(), &s.ca.ca_pem);
    let (code, out, err) = s.check(&[ALICE]);
    assert_eq!(code, 1, "{out}\n{err}");
    let reach = line(&out, "fail", &format!("target DAV {closed}/: ")).expect(&out);
    assert!(
        fix_after(&out, reach).contains("check [target] dav_url"),
        "{out}"
    );
    let dst = line(&out, "fail", "user alice@corp.example target DAV: ").expect(&out);
    assert!(fix_after(&out, dst).contains("[target] dav_url"), "{out}");
    let src = line(&out, "warn", "user alice@corp.example source DAV: ").expect(&out);
    assert!(src.contains("/nobody-alice/ is not there (404)"), "{src}");
    assert!(
        fix_after(&out, src).contains("correct [source] dav_home"),
        "{out}"
    );
    // No quota line without both sides: the gate could not be measured.
    assert!(!out.contains("target DAV quota"), "{out}");

    // The target's CA not trusted: the DAV line says TLS, and what to do.
    s.config("other-ca.pem")
        .dav(&source.url(), &target.url())
        .file("other-ca.pem", &TestCa::new().ca_pem)
        .write(s.dir.path(), &s.ca.ca_pem);
    let (code, out, _) = s.check(&[ALICE]);
    assert_eq!(code, 1, "{out}");
    let tls = line(&out, "fail", &format!("target DAV {}/: ", target.url())).expect(&out);
    assert!(tls.contains("TLS"), "{tls}");
    assert!(fix_after(&out, tls).contains("[target] ca"), "{out}");
}

/// The Dovecots and a real slapd holding alice, bob and (disabled) carol;
/// `service_writes`: the service account may write contacts and the users'
/// forwarding attributes.
fn start_ldap(service_writes: bool) -> (Setup, Slapd, MigratorConfig) {
    let s = start("100M", 1000);
    let ldif = format!(
        "{}{}{}",
        slapd::user_ldif("alice", ALICE, &[]),
        slapd::user_ldif("bob", "bob@corp.example", &[]),
        slapd::user_ldif("carol", "carol@corp.example", &[])
            .replace("userAccountControl: 512", "userAccountControl: 514"),
    );
    let ldap = Slapd::start(
        SlapdSetup {
            name: "ad".into(),
            ldif,
            service_writes,
            ..Default::default()
        },
        &s.ca,
    );
    let config = s
        .config("ca.pem")
        .unset("directory", "users")
        .set("directory", "source", "ldap")
        .unset("routing", "contacts")
        .raw("ldap", "url", &format!("[\"{}\"]", ldap.url()))
        .set("ldap", "ca", "ca.pem")
        .set("ldap", "bind_dn", slapd::SERVICE.0)
        .set("ldap", "password_file", "ldap.password")
        .set("ldap", "base", slapd::SUFFIX)
        .set("ldap", "contacts_base", slapd::CONTACTS)
        .file("ldap.password", &format!("{}\n", slapd::SERVICE.1));
    config.write(s.dir.path(), &s.ca.ca_pem);
    (s, ldap, config)
}

/// What the directory holds that a flip would have written.
fn flip_traces(ldap: &Slapd) -> String {
    format!(
        "{}{}",
        ldap.search("(objectClass=contact)", &["dn"]),
        ldap.search("(altRecipient=*)", &["dn"])
    )
}

#[test]
fn ldap_bind_users_and_both_flip_writes_are_asked_without_writing() {
    let (s, ldap, _) = start_ldap(true);
    let (code, out, err) = s.check(&[ALICE]);
    assert_eq!(code, 0, "{out}\n{err}");
    let bind = line(&out, "ok", "directory bind: ").expect(&out);
    assert!(
        bind.contains(&format!(
            "{}: bound as \"{}\"",
            ldap.url(),
            slapd::SERVICE.0
        )),
        "{bind}"
    );
    let users = line(&out, "ok", "directory users: ").expect(&out);
    assert!(
        users.contains("3 user(s) with mail, 2 enabled, 0 forwarded already"),
        "{users}"
    );
    assert!(
        line(
            &out,
            "ok",
            &format!("contacts_base: {} is there", slapd::CONTACTS)
        )
        .is_some(),
        "{out}"
    );
    let add = line(&out, "ok", "contacts_base write: ").expect(&out);
    assert!(
        add.contains("No-Op control") && add.contains("wrote nothing"),
        "{add}"
    );
    let modify = line(&out, "ok", "user alice@corp.example forwarding write: ").expect(&out);
    assert!(modify.contains("No-Op control"), "{modify}");
    assert!(
        !out.contains("contacts table"),
        "a file-directory line: {out}"
    );
    assert_eq!(flip_traces(&ldap), "", "check wrote to the directory");
}

#[test]
fn ldap_refusals_a_bad_bind_and_a_missing_contacts_base_fail_with_fixes() {
    let (s, ldap, config) = start_ldap(false);
    let (code, out, err) = s.check(&[ALICE]);
    assert_eq!(code, 1, "{out}\n{err}");
    let add = line(&out, "fail", "contacts_base write: ").expect(&out);
    assert!(add.contains("insufficientAccessRights (50)"), "{add}");
    assert!(
        fix_after(&out, add).contains("the right to add and delete contact entries"),
        "{out}"
    );
    let modify = line(&out, "fail", "user alice@corp.example forwarding write: ").expect(&out);
    assert!(modify.contains("insufficientAccessRights (50)"), "{modify}");
    assert!(
        fix_after(&out, modify).contains("write access to users' altRecipient"),
        "{out}"
    );
    assert_eq!(flip_traces(&ldap), "");

    config
        .clone()
        .set("ldap", "contacts_base", "ou=Nowhere,dc=corp,dc=example")
        .write(s.dir.path(), &s.ca.ca_pem);
    let (code, out, _) = s.check(&[ALICE]);
    assert_eq!(code, 1, "{out}");
    let base = line(&out, "fail", "contacts_base: ").expect(&out);
    assert!(base.contains("noSuchObject (32)"), "{base}");
    assert!(fix_after(&out, base).contains("create that entry"), "{out}");

    config
        .file("ldap.password", "not-the-password\n")
        .write(s.dir.path(), &s.ca.ca_pem);
    let (code, out, _) = s.check(&[ALICE]);
    assert_eq!(code, 1, "{out}");
    let bind = line(&out, "fail", "directory bind: ").expect(&out);
    assert!(bind.contains("invalidCredentials (49)"), "{bind}");
    assert!(fix_after(&out, bind).contains("[ldap] bind_dn"), "{out}");
}
