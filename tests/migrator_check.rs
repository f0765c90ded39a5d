//! End-to-end: `coexist-migrator check` (issue #14), the pre-flight, against two
//! real Dovecot instances (TLS with a CA made per test, a master user, a quota
//! on the target). Each line is ok / warn / fail with a `fix:`, as
//! `coexist-relay doctor`; `--json`; exit 0 / 1 / 2; nothing is written.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use serde_json::Value;
use std::process::Command;

const ALICE: &str = "alice@corp.example";

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
    s.write_config("ca = \"ca.pem\"");
    s
}

impl Setup {
    fn write_config(&self, target_ca: &str) {
        let d = self.dir.path();
        std::fs::write(d.join("ca.pem"), &self.ca.ca_pem).unwrap();
        std::fs::write(d.join("source.password"), format!("{}\n", MASTER.1)).unwrap();
        std::fs::write(d.join("target.password"), format!("{}\n", MASTER.1)).unwrap();
        std::fs::write(d.join("contacts"), "# address target [route]\n").unwrap();
        std::fs::write(
            d.join("users.csv"),
            "address,display_name,target,quota,enabled\n\
             alice@corp.example,Alice,,,true\n\
             bob@corp.example,Bob,,,true\n\
             carol@corp.example,Carol,,,false\n",
        )
        .unwrap();
        std::fs::write(
            d.join("migrator.toml"),
            format!(
                r#"[directory]
users = "users.csv"

[routing]
contacts = "contacts"
target_template = "{{local}}@tenant.cloud.example"

[source]
url = "{source}"
auth = "master"
master_user = "{master}"
password_file = "source.password"
ca = "ca.pem"

[target]
url = "{target}"
auth = "authzid"
master_user = "{master}"
password_file = "target.password"
{target_ca}

[migration]
state_dir = "state"
"#,
                source = self.source.url(),
                target = self.target.url(),
                master = MASTER.0,
            ),
        )
        .unwrap();
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
    let compress = line(&out, "warn", "target capability COMPRESS=DEFLATE: ").expect(&out);
    assert!(!fix_after(&out, compress).is_empty());

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
    s.write_config("ca = \"\"");
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
