//! End-to-end, the copy (issue #14) against a real Dovecot:
//! - MULTIAPPEND (RFC 3502): a batch is one APPEND command (one save
//!   transaction on the target), counted by an IMAP proxy in front of it;
//!   every message arrives byte for byte with its flags and INTERNALDATE; a
//!   batch the target refuses as a whole is sent again message by message, so
//!   only the message at fault is refused.
//! - Progress: in a real pseudo-terminal (`script`) a bar per user with
//!   messages, bytes and ETA; without one, no bar at all.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::imap_proxy::{Fault, ImapProxy};
use serde_json::Value;
use std::process::Command;

const ALICE: &str = "alice@corp.example";
const ALICE_CLOUD: &str = "alice@tenant.cloud.example";

struct Setup {
    _ca: TestCa,
    source: Dovecot,
    target: Dovecot,
    proxy: ImapProxy,
    dir: tempfile::TempDir,
}

/// `n` messages of `size` bytes in INBOX (and `big` of 1 MiB in `Big`), the
/// target's `quota_max_mail_size` at `max_mail`.
fn start(n: usize, size: usize, big: usize, max_mail: Option<&str>) -> Setup {
    let ca = TestCa::new();
    let source = Dovecot::start(
        DovecotSetup {
            name: "source",
            users: vec![(ALICE, "pw")],
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let target = Dovecot::start(
        DovecotSetup {
            name: "target",
            users: vec![(ALICE_CLOUD, "pw")],
            quota: Some("500M"),
            max_mail_size: max_mail,
            tls: true,
        },
        &ca,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut spec = Vec::new();
    let mut add = |folder: &str, flags: &[&str], i: usize, body: String| {
        let file = d.join(format!("{folder}-{i}.eml"));
        std::fs::write(
            &file,
            format!("From: carol@example.net\r\nSubject: {folder} {i}\r\nMessage-ID: <{folder}.{i}@x>\r\n\r\n{body}\r\n"),
        )
        .unwrap();
        spec.push(serde_json::json!({"folder": folder, "flags": flags, "date": format!("{:02}-Mar-2023 12:00:00 +0100", 1 + i % 28), "file": file}));
    };
    for i in 0..n {
        let flags: &[&str] = if i % 3 == 0 {
            &["\\Seen", "$Work"]
        } else {
            &[]
        };
        add("INBOX", flags, i, "y".repeat(size));
    }
    for i in 0..big {
        add(
            "Big",
            &[],
            i,
            "z".repeat(if i == 1 { 1 << 20 } else { 100 }),
        );
    }
    let spec_file = d.join("seed.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    source.seed(ALICE, &spec_file);
    let proxy = ImapProxy::start(&ca, target.imaps_port, Fault::None, None);
    std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(d.join("pw"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("contacts"), "# address target [route]\n").unwrap();
    std::fs::write(
        d.join("users.csv"),
        "address,display_name,target,quota,enabled\nalice@corp.example,Alice,,,true\n",
    )
    .unwrap();
    std::fs::write(
        d.join("migrator.toml"),
        format!(
            "[directory]\nusers = \"users.csv\"\n[routing]\ncontacts = \"contacts\"\n\
             target_template = \"{{local}}@tenant.cloud.example\"\n\
             [source]\nurl = \"{}\"\nauth = \"master\"\nmaster_user = \"{m}\"\npassword_file = \"pw\"\nca = \"ca.pem\"\n\
             [target]\nurl = \"{}\"\nauth = \"authzid\"\nmaster_user = \"{m}\"\npassword_file = \"pw\"\nca = \"ca.pem\"\n\
             [migration]\nstate_dir = \"state\"\n",
            source.url(),
            proxy.url(),
            m = MASTER.0
        ),
    )
    .unwrap();
    Setup {
        _ca: ca,
        source,
        target,
        proxy,
        dir,
    }
}

impl Setup {
    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("migrator.toml")
    }

    fn migrate(&self) -> (i32, String, Value) {
        let report = self.dir.path().join("report.json");
        let out = Command::new(coexist_e2e::binary("coexist-migrator"))
            .arg("--config")
            .arg(self.dir.path().join("migrator.toml"))
            .args(["migrate", ALICE, "--report"])
            .arg(&report)
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let json = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (out.status.code().unwrap_or(-1), text, json)
    }
}

fn non_empty(dump: &Value) -> Value {
    Value::Object(
        dump.as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| !v.as_array().unwrap().is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[test]
fn a_batch_is_one_append_command_and_arrives_byte_for_byte() {
    let s = start(300, 3000, 0, None);
    let (code, out, report) = s.migrate();
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["users"][0]["counters"]["copied"], 300, "{report}");
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
    // 300 messages in batches of at most 64: 5 APPEND commands, not 300.
    assert_eq!(s.proxy.appends(), 5, "{out}");
}

#[test]
fn a_refused_batch_is_sent_again_message_by_message() {
    // The 1 MiB message is over the target's quota_max_mail_size: Dovecot
    // refuses the whole MULTIAPPEND, then that message alone.
    let s = start(0, 0, 3, Some("512k"));
    let (code, out, report) = s.migrate();
    assert_eq!(code, 1, "{out}");
    let user = &report["users"][0];
    assert_eq!(user["counters"]["copied"], 2, "{report}");
    assert_eq!(user["counters"]["failed"], 1, "{report}");
    assert_eq!(user["counters"]["throttled"], 0, "{report}");
    assert_eq!(user["warnings"][0]["uid"], 2, "{report}");
    let target = s.target.dump(ALICE_CLOUD);
    assert_eq!(target["Big"].as_array().unwrap().len(), 2, "{target}");
    // One MULTIAPPEND of 3, then one APPEND each.
    assert_eq!(s.proxy.appends(), 4, "{out}");
}

#[test]
fn a_terminal_gets_a_bar_with_messages_bytes_and_eta_and_a_pipe_does_not() {
    let s = start(150, 2000, 0, None);
    // `script` gives the migrator a pseudo-terminal for stdin, stdout and
    // stderr, and copies everything drawn there to its own stdout.
    let command = format!(
        "stty cols 160 rows 40; exec {} --config {} migrate {ALICE}",
        coexist_e2e::binary("coexist-migrator").display(),
        s.config().display()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .output()
        .expect("script (util-linux)");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{screen}");
    let last_bar = screen
        .split(['\r', '\n'])
        .rfind(|l| l.contains(ALICE) && l.contains(" msgs, "))
        .unwrap_or_else(|| panic!("no bar in:\n{screen:?}"));
    assert!(
        last_bar.contains("[=============================="),
        "{last_bar:?}"
    );
    assert!(last_bar.contains("150/150 msgs, "), "{last_bar:?}");
    assert!(last_bar.contains(" KiB of "), "{last_bar:?}");
    assert!(last_bar.contains("ETA "), "{last_bar:?}");
    // Redrawn in place: terminal control sequences.
    assert!(screen.contains("\x1b["), "{screen:?}");

    // The same run into a pipe: lines, no bar, no control sequences.
    let _ = std::fs::remove_dir_all(s.dir.path().join("state"));
    let (code, text, _) = s.migrate();
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains(" msgs, ") && !text.contains('\x1b'),
        "{text}"
    );
    assert!(
        text.contains("alice@corp.example: 150 message(s)"),
        "{text}"
    );
}
