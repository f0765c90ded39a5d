//! End-to-end, the copy (issue #14) against a real Dovecot:
//! - MULTIAPPEND (RFC 3502): a batch is one APPEND command (one save
//!   transaction on the target), counted by an IMAP proxy in front of it;
//!   every message arrives byte for byte with its flags and INTERNALDATE; a
//!   batch the target refuses as a whole is sent again message by message, so
//!   only the message at fault is refused.
//! - An unchanged mailbox: `sync` opens each source folder and stops there
//!   (its UIDNEXT and, with CONDSTORE, its HIGHESTMODSEQ are the ones the last
//!   complete pass saw).
//! - CONDSTORE (RFC 7162): a flag changed on the source after the copy is
//!   carried over by the next `sync`, a new message is copied, and a folder
//!   where nothing changed is still only opened.
//! - Progress: in a real pseudo-terminal (`script`) a bar per user with
//!   messages, bytes and ETA; without one, no bar at all.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::imap_proxy::{Fault, Hold, ImapProxy};
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
    // Two calendar items (the IMAP folder of calendar_folders): counted as
    // their own content type.
    for i in 0..2 {
        let file = d.join(format!("cal-{i}.eml"));
        std::fs::write(
            &file,
            format!("From: alice@corp.example\r\nSubject: ev{i}\r\nMessage-ID: <ev{i}@cal>\r\nContent-Type: text/calendar; method=PUBLISH\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:ev{i}\r\nDTSTAMP:20240101T090000Z\r\nDTSTART:20240105T090000Z\r\nSUMMARY:e\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
        )
        .unwrap();
        spec.push(serde_json::json!({"folder": "Calendar", "flags": [], "date": "01-Jan-2024 09:00:00 +0000", "file": file}));
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

    /// `sync` with the migrator's debug log: exit code and stderr.
    fn sync_logged(&self) -> (Option<i32>, String) {
        let out = Command::new(coexist_e2e::binary("coexist-migrator"))
            .arg("--config")
            .arg(self.config())
            .args(["sync", ALICE])
            .env("RUST_LOG", "migrator=debug")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), err)
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
    assert_eq!(report["users"][0]["counters"]["copied"], 302, "{report}");
    // Per content type, in the report and in `status --json`.
    let content = &report["users"][0]["content"];
    assert_eq!(content["mail"]["copied"], 300, "{report}");
    assert_eq!(content["calendar"]["copied"], 2, "{report}");
    assert!(content["mail"]["bytes"].as_u64().unwrap() > 300 * 3000);
    assert!(content["mail"]["duration_ms"].as_u64().is_some());
    let status = Command::new(coexist_e2e::binary("coexist-migrator"))
        .arg("--config")
        .arg(s.config())
        .args(["status", "--json", ALICE])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status[0]["content_totals"]["mail"]["copied"], 300,
        "{status}"
    );
    assert_eq!(
        status[0]["content_totals"]["calendar"]["copied"], 2,
        "{status}"
    );
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
    // 300 messages in batches of at most 64: 5 APPEND commands, not 300;
    // and one for the calendar folder.
    assert_eq!(s.proxy.appends(), 6, "{out}");
}

#[test]
fn a_refused_batch_is_sent_again_message_by_message() {
    // The 1 MiB message is over the target's quota_max_mail_size: Dovecot
    // refuses the whole MULTIAPPEND, then that message alone.
    let s = start(0, 0, 3, Some("512k"));
    let (code, out, report) = s.migrate();
    assert_eq!(code, 1, "{out}");
    let user = &report["users"][0];
    assert_eq!(user["counters"]["copied"], 4, "{report}");
    assert_eq!(user["counters"]["failed"], 1, "{report}");
    assert_eq!(user["counters"]["throttled"], 0, "{report}");
    assert_eq!(user["warnings"][0]["uid"], 2, "{report}");
    let target = s.target.dump(ALICE_CLOUD);
    assert_eq!(target["Big"].as_array().unwrap().len(), 2, "{target}");
    // One MULTIAPPEND of 3, then one APPEND each; one for the calendar.
    assert_eq!(s.proxy.appends(), 5, "{out}");
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
    assert!(last_bar.contains("152/152 msgs, "), "{last_bar:?}");
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
        text.contains("alice@corp.example: 152 message(s)"),
        "{text}"
    );
}

#[test]
fn a_sync_of_an_unchanged_mailbox_only_opens_its_folders() {
    let s = start(200, 500, 3, None);
    let (code, out, _) = s.migrate();
    assert_eq!(code, 0, "{out}");
    let before = s.target.dump(ALICE_CLOUD);

    // The source behind a proxy that keeps back the first UID SEARCH: a sync
    // that searched any folder would hang there.
    let source_proxy = ImapProxy::start(
        &s._ca,
        s.source.imaps_port,
        Fault::None,
        Some(Hold::Line(b"UID SEARCH".to_vec())),
    );
    let config = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(
        s.config(),
        config.replace(&s.source.url(), &source_proxy.url()),
    )
    .unwrap();
    let mut child = Command::new(coexist_e2e::binary("coexist-migrator"))
        .arg("--config")
        .arg(s.config())
        .args(["sync", ALICE])
        .env("RUST_LOG", "migrator=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            !source_proxy.wait_held(std::time::Duration::ZERO),
            "the sync searched a folder"
        );
        assert!(std::time::Instant::now() < deadline, "the sync did not end");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!source_proxy.wait_held(std::time::Duration::ZERO));
    // Three folders, both passes.
    assert_eq!(
        err.matches("unchanged since the last pass").count(),
        6,
        "{err}"
    );
    assert_eq!(s.target.dump(ALICE_CLOUD), before);
}

/// On the source: INBOX.0 loses \Seen, INBOX.1 gets \Flagged \Answered (the
/// folder's UIDNEXT stays the same); a new message lands in `Big`.
const PY_CHANGE: &str = r#"
M.select("INBOX")
for mid, op, flags in [("<INBOX.0@x>", "-FLAGS", "(\\Seen)"), ("<INBOX.1@x>", "FLAGS", "(\\Flagged \\Answered)")]:
    typ, data = M.uid("SEARCH", "HEADER", "Message-ID", '"' + mid + '"')
    uids = data[0].split()
    assert len(uids) == 1, (mid, data)
    typ, resp = M.uid("STORE", uids[0].decode(), op, flags)
    assert typ == "OK", resp
msg = b"From: carol@example.net\r\nSubject: late\r\nMessage-ID: <late@x>\r\n\r\nlate\r\n"
typ, resp = M.append("Big", "(\\Seen)", '"02-Mar-2023 12:00:00 +0100"', msg)
assert typ == "OK", resp
M.logout()
"#;

#[test]
fn a_sync_carries_flag_changes_over_and_copies_what_is_new() {
    let s = start(20, 200, 3, None);
    let (code, out, _) = s.migrate();
    assert_eq!(code, 0, "{out}");
    s.source.imaplib(PY_CHANGE, ALICE, &[]);
    assert_ne!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD)),
        "the change is visible to the dump"
    );
    let (code, err) = s.sync_logged();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD)),
        "{err}"
    );
    assert!(
        err.contains("INBOX: flags changed since mod-sequence")
            && err.contains("2 message(s) updated on the target"),
        "{err}"
    );
    // Calendar (nothing changed) and INBOX once its flags are carried over
    // in the first pass; all three folders in the delta pass.
    assert_eq!(
        err.matches("unchanged since the last pass").count(),
        5,
        "{err}"
    );
    // Once more, nothing changed: every folder only opened, in both passes.
    let (code, err) = s.sync_logged();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("flags changed since"), "{err}");
    assert_eq!(
        err.matches("unchanged since the last pass").count(),
        6,
        "{err}"
    );
}

/// Pipelining across batches: the next batch's MULTIAPPEND goes out before
/// the previous one is answered, and a kill while two are stored on the
/// target but unconfirmed loses and doubles nothing. A proxy in front of the
/// target passes the first two APPEND answers and keeps every later one
/// back: without pipelining the migrator would send a third APPEND and wait;
/// with it, a fourth is on its way too. Every message the target then holds
/// is `copied` or `pending` in the checkpoint, and the resumed run ends with
/// each message there once.
#[test]
fn pipelined_batches_go_out_before_the_answers_and_a_kill_loses_or_doubles_nothing() {
    const ANSWERED: usize = 2;
    let s = start(600, 500, 0, None);
    let held = ImapProxy::start(
        &s._ca,
        s.target.imaps_port,
        Fault::None,
        Some(Hold::AnswersAfterAppends(ANSWERED)),
    );
    let config = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(s.config(), config.replace(&s.proxy.url(), &held.url())).unwrap();
    let mut child = Command::new(coexist_e2e::binary("coexist-migrator"))
        .arg("--config")
        .arg(s.config())
        .args(["sync", ALICE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        held.wait_held(std::time::Duration::from_secs(120)),
        "the copy never got {ANSWERED} APPENDs answered"
    );
    // The hold keeps every answer back from here on: what still arrives was
    // sent without waiting for one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while held.appends() < ANSWERED + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} APPEND command(s) after {ANSWERED} answers: the batches were not pipelined",
            held.appends()
        );
        assert!(child.try_wait().unwrap().is_none(), "the copy ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Source UID i + 1 is `<INBOX.i@x>` (seeded in order into an empty folder).
    let on_target: Vec<u32> = s
        .target
        .inbox_message_ids(ALICE_CLOUD)
        .iter()
        .map(|id| {
            let i: u32 = id
                .trim_start_matches("<INBOX.")
                .trim_end_matches("@x>")
                .parse()
                .unwrap_or_else(|_| panic!("{id}"));
            i + 1
        })
        .collect();
    assert!(
        on_target.len() >= 2 * 64,
        "two unconfirmed batches are stored: {}",
        on_target.len()
    );
    let state_file = s.dir.path().join("state").join(format!("{ALICE}.json"));
    let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let inbox = &state["folders"]["INBOX"];
    let in_ranges = |uid: u32| {
        inbox["copied"].as_array().unwrap().iter().any(|r| {
            let (a, b) = (r[0].as_u64().unwrap(), r[1].as_u64().unwrap());
            (a..=b).contains(&u64::from(uid))
        })
    };
    let pending: Vec<u32> = inbox["pending"]
        .as_array()
        .map(|p| p.iter().map(|u| u.as_u64().unwrap() as u32).collect())
        .unwrap_or_default();
    for uid in &on_target {
        assert!(
            in_ranges(*uid) || pending.contains(uid),
            "UID {uid} is on the target but neither copied nor pending: {inbox}"
        );
    }

    held.release();
    let (code, err) = s.sync_logged();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD)),
        "every message once"
    );
}
