//! End-to-end: `coexist-migrator` (issue #7) between two real Dovecot instances on
//! loopback, with TLS (a CA made per test), a master user and a quota on the
//! target. The source is seeded with Python's imaplib, and both sides are compared
//! with it too — folder by folder, message by message: bytes (SHA-256), flags and
//! INTERNALDATE.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::imap_proxy::{self, Fault, Hold, ImapProxy};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@corp.example";
const ALICE_CLOUD: &str = "alice@tenant.cloud.example";

/// Two Dovecots, a config folder for the migrator, and the seeded messages.
struct Setup {
    _ca: TestCa,
    source: Dovecot,
    target: Dovecot,
    dir: tempfile::TempDir,
    /// Messages seeded at the source, by folder.
    seeded: usize,
}

struct Options<'a> {
    target_quota: &'a str,
    source_tls: bool,
    big: bool,
    bulk: usize,
    /// The target's `quota_max_mail_size`.
    max_mail_size: Option<&'a str>,
    /// A folder `Big` with a 2 MB message between two small ones.
    oversized: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            target_quota: "200M",
            source_tls: true,
            big: true,
            bulk: 0,
            max_mail_size: None,
            oversized: false,
        }
    }
}

fn start(opts: Options) -> Setup {
    let ca = TestCa::new();
    let source = Dovecot::start(
        DovecotSetup {
            name: "source",
            users: vec![(ALICE, "pw"), ("bob@corp.example", "pw")],
            quota: None,
            max_mail_size: None,
            tls: opts.source_tls,
        },
        &ca,
    );
    let target = Dovecot::start(
        DovecotSetup {
            name: "target",
            users: vec![(ALICE_CLOUD, "pw"), ("bob@tenant.cloud.example", "pw")],
            quota: Some(opts.target_quota),
            max_mail_size: opts.max_mail_size,
            tls: true,
        },
        &ca,
    );
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(&source, dir.path(), opts.big, opts.bulk, opts.oversized);
    let s = Setup {
        _ca: ca,
        source,
        target,
        dir,
        seeded,
    };
    s.write_config(&s.source.url());
    s
}

/// A deterministic byte stream (xorshift) for the big attachment.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn base64_lines(data: &[u8]) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + data.len() / 38);
    for (i, chunk) in data.chunks(3).enumerate() {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63]);
        out.push(T[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        });
        if i % 19 == 18 {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn mail(id: Option<&str>, subject: &str, body: &str) -> Vec<u8> {
    let mut m = format!("From: Carol <carol@example.net>\r\nTo: {ALICE}\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2018 10:00:00 +0000\r\n");
    if let Some(id) = id {
        m.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    m.push_str("\r\n");
    m.push_str(body);
    m.into_bytes()
}

fn ics(uid: &str, summary: &str) -> Vec<u8> {
    format!(
        "From: {ALICE}\r\nSubject: {summary}\r\nMessage-ID: <{uid}@cal>\r\nMIME-Version: 1.0\r\nContent-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T090000Z\r\nDTSTART:20240105T090000Z\r\nDTEND:20240105T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

/// Seeds alice's source mailbox; returns the number of messages.
fn seed(source: &Dovecot, dir: &Path, big: bool, bulk: usize, oversized: bool) -> usize {
    let files = dir.join("seed");
    std::fs::create_dir_all(&files).unwrap();
    let mut spec = Vec::new();
    let mut add = |folder: &str, flags: &[&str], date: &str, bytes: Vec<u8>| {
        let file = files.join(format!("{}.eml", spec.len()));
        std::fs::write(&file, bytes).unwrap();
        spec.push(serde_json::json!({
            "folder": folder, "flags": flags, "date": date, "file": file,
        }));
    };
    add(
        "INBOX",
        &["\\Seen"],
        "01-Jan-2019 10:00:00 +0000",
        mail(Some("m1@x"), "old", "hello 2019\r\n"),
    );
    add(
        "INBOX",
        &["\\Flagged", "$Label1"],
        "15-Jun-2021 08:30:00 +0200",
        {
            let mut m = b"From: carol@example.net\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <m2@x>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
            m.extend_from_slice("Grüße aus Köln — 8-bit body ✓\r\n".as_bytes());
            m
        },
    );
    add(
        "INBOX",
        &[],
        "03-Mar-2023 12:00:00 +0000",
        mail(None, "no message-id", "drafty\r\n"),
    );
    add(
        "INBOX",
        &[],
        "04-Mar-2023 12:00:00 +0000",
        mail(None, "no message-id either", "other\r\n"),
    );
    add(
        "Work/Projects/2024",
        &["\\Answered", "\\Seen"],
        "20-Feb-2024 09:00:00 +0000",
        mail(Some("w1@x"), "plan", "nested\r\n"),
    );
    add(
        "Work/Projects/2024",
        &["\\Draft"],
        "10-Oct-2015 09:00:00 +0000",
        mail(Some("w2@x"), "ancient", "2015\r\n"),
    );
    add(
        "Work",
        &[],
        "11-Nov-2022 11:11:11 +0000",
        mail(Some("w3@x"), "work", "w\r\n"),
    );
    add(
        "Sent",
        &["\\Seen"],
        "05-May-2020 10:00:00 +0000",
        mail(Some("s1@x"), "sent", "sent\r\n"),
    );
    add(
        "Calendar",
        &[],
        "01-Jan-2024 09:00:00 +0000",
        ics("ev1", "Standup"),
    );
    add(
        "Calendar",
        &[],
        "02-Jan-2024 09:00:00 +0000",
        ics("ev2", "Review"),
    );
    add(
        "Calendar",
        &[],
        "03-Jan-2024 09:00:00 +0000",
        mail(Some("notcal@x"), "not a calendar item", "plain\r\n"),
    );
    for i in 0..bulk {
        add(
            "Bulk",
            &[],
            "07-Jul-2022 07:00:00 +0000",
            mail(
                Some(&format!("bulk{i}@x")),
                &format!("bulk {i}"),
                &"x".repeat(2000),
            ),
        );
    }
    if oversized {
        add(
            "Big",
            &[],
            "01-Aug-2022 08:00:00 +0000",
            mail(Some("before-big@x"), "before", "small\r\n"),
        );
        let mut m = b"From: carol@example.net\r\nSubject: too big for the target\r\nMessage-ID: <oversized@x>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        m.extend_from_slice(&base64_lines(&noise(1536 * 1024)));
        add("Big", &[], "02-Aug-2022 08:00:00 +0000", m);
        add(
            "Big",
            &[],
            "03-Aug-2022 08:00:00 +0000",
            mail(Some("after-big@x"), "after", "small\r\n"),
        );
    }
    if big {
        let mut m = b"From: carol@example.net\r\nSubject: big\r\nMessage-ID: <big@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        m.extend_from_slice(&base64_lines(&noise(15 * 1024 * 1024)));
        m.extend_from_slice(b"--b--\r\n");
        assert!(m.len() > 20_000_000);
        add("INBOX", &["\\Seen"], "31-Dec-2022 23:59:59 +0000", m);
    }
    let count = spec.len();
    let spec_file = dir.join("seed.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    source.seed(ALICE, &spec_file);
    count
}

impl Setup {
    fn write_config(&self, source_url: &str) {
        self.write_config_full(source_url, &self.target.url(), "");
    }

    /// The config with another target URL (a proxy) and extra TOML at the end.
    fn write_config_full(&self, source_url: &str, target_url: &str, extra: &str) {
        let d = self.dir.path();
        let ca = &self._ca.ca_pem;
        std::fs::write(d.join("ca.pem"), ca).unwrap();
        std::fs::write(d.join("source.password"), format!("{}\n", MASTER.1)).unwrap();
        std::fs::write(d.join("target.password"), format!("{}\n", MASTER.1)).unwrap();
        if !d.join("contacts").exists() {
            std::fs::write(d.join("contacts"), "# address target [route]\n").unwrap();
        }
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
url = "{source_url}"
auth = "master"
master_user = "{master}"
password_file = "source.password"
ca = "ca.pem"

[target]
url = "{target_url}"
auth = "authzid"
master_user = "{master}"
password_file = "target.password"
ca = "ca.pem"

[migration]
parallel = 2
state_dir = "state"
{extra}"#,
                master = MASTER.0,
            ),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(coexist_e2e::binary("coexist-migrator"));
        c.arg("--config")
            .arg(self.dir.path().join("migrator.toml"))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.command(args).output().expect("run coexist-migrator");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn migrate(&self, extra: &[&str]) -> (i32, String, String, Value) {
        let report = self.dir.path().join("report.json");
        let _ = std::fs::remove_file(&report);
        let mut args = vec!["migrate", ALICE, "--report", report.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out, err) = self.run(&args);
        let json = std::fs::read(&report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        (code, out, err, json)
    }

    fn contacts(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("contacts")).unwrap()
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Messages per folder on the target (non-empty folders only).
    fn target_counts(&self) -> Vec<(String, usize)> {
        counts(&self.target.dump(ALICE_CLOUD))
    }
}

fn counts(dump: &Value) -> Vec<(String, usize)> {
    dump.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().unwrap().len()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Drops empty folders (the target has auto-created ones) for comparison.
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

fn counter(report: &Value, name: &str) -> u64 {
    report["users"][0]["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {report}"))
}

#[test]
fn migrate_copies_every_folder_byte_for_byte_and_rerun_copies_nothing() {
    let s = start(Options::default());
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("review: migrate 1 user(s); content: mail, calendar"),
        "{out}"
    );

    // The forwarding contact is in the relay's table.
    assert!(
        s.contacts()
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [ALICE, ALICE_CLOUD]),
        "{}",
        s.contacts()
    );

    // Folder by folder, message by message: bytes, flags, INTERNALDATE.
    let source = non_empty(&s.source.dump(ALICE));
    let target = non_empty(&s.target.dump(ALICE_CLOUD));
    assert_eq!(source, target);
    let total: usize = counts(&target).iter().map(|(_, n)| n).sum();
    assert_eq!(total, s.seeded);
    assert!(target["Work/Projects/2024"].as_array().unwrap().len() == 2);
    assert_eq!(counter(&report, "copied"), s.seeded as u64);
    assert!(counter(&report, "bytes") > 20_000_000);

    // The calendar item that is not one is reported, and still copied.
    let warnings = report["users"][0]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0]["folder"], "Calendar");
    assert!(warnings[0]["reason"]
        .as_str()
        .unwrap()
        .contains("no text/calendar part"));

    let (code, out, _) = s.run(&["status", "--json", ALICE]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status[0]["state"], "migrated");
    assert_eq!(status[0]["contact"], true);

    // Re-run: nothing copied twice.
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(counter(&report, "copied"), 0);
    assert_eq!(non_empty(&s.target.dump(ALICE_CLOUD)), target);

    // State lost: matching by Message-ID / header hash, still nothing copied.
    std::fs::remove_dir_all(s.state_dir()).unwrap();
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(counter(&report, "copied"), 0, "{report}");
    assert_eq!(counter(&report, "skipped"), s.seeded as u64);
    assert_eq!(non_empty(&s.target.dump(ALICE_CLOUD)), target);

    // UIDVALIDITY changed (a restored or rebuilt source folder): UIDs mean
    // nothing any more, so messages are matched by Message-ID / header hash.
    let state_file = s.state_dir().join(format!("{ALICE}.json"));
    let mut state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    for folder in state["folders"].as_object_mut().unwrap().values_mut() {
        folder["uid_validity"] = Value::from(1);
    }
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(counter(&report, "copied"), 0, "{report}");
    assert_eq!(counter(&report, "skipped"), s.seeded as u64);

    // New mail at the source: `sync` copies exactly that.
    let extra = s.dir.path().join("extra.json");
    let eml = s.dir.path().join("extra.eml");
    std::fs::write(
        &eml,
        mail(Some("late@x"), "late", "arrived after the flip\r\n"),
    )
    .unwrap();
    std::fs::write(&extra, serde_json::to_vec(&serde_json::json!([{"folder": "INBOX", "flags": [], "date": "01-Feb-2025 10:00:00 +0000", "file": eml}])).unwrap()).unwrap();
    s.source.seed(ALICE, &extra);
    let (code, out, err) = s.run(&["sync", ALICE]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("copied 1 "), "{out}");
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
}

#[test]
fn quota_too_small_fails_the_user_and_writes_nothing() {
    let s = start(Options {
        target_quota: "5M",
        ..Options::default()
    });
    let before = s.contacts();
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("DOES NOT FIT"), "{err}");
    let error = report["users"][0]["error"].as_str().unwrap();
    assert!(error.contains("nothing was written"), "{error}");
    assert_eq!(s.contacts(), before);
    assert!(s.target_counts().is_empty(), "{:?}", s.target_counts());
    let (_, out, _) = s.run(&["status", ALICE]);
    assert!(out.contains("failed (the mailbox needs"), "{out}");
    // A date range that fits is allowed through.
    let (code, out, err, _) = s.migrate(&["--before", "2022-01-01"]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn plaintext_source_is_refused_without_allow_insecure() {
    let s = start(Options {
        source_tls: false,
        big: false,
        ..Options::default()
    });
    let logins = |d: &Dovecot| d.log().matches("Login: user=").count();
    let seeded_logins = logins(&s.source);
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 1, "{out}\n{err}");
    let error = report["users"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("does not offer STARTTLS") && error.contains("--allow-insecure"),
        "{error}"
    );
    assert_eq!(s.contacts(), "# address target [route]\n");
    // No credentials reached the plaintext server.
    assert_eq!(logins(&s.source), seeded_logins, "{}", s.source.log());

    let (code, out, err, _) = s.migrate(&["--allow-insecure"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
}

#[test]
fn untrusted_certificate_is_refused_and_starttls_works() {
    let s = start(Options {
        big: false,
        ..Options::default()
    });
    // Without the test CA the certificate does not verify.
    let toml = std::fs::read_to_string(s.dir.path().join("migrator.toml")).unwrap();
    std::fs::write(
        s.dir.path().join("migrator.toml"),
        toml.replacen("ca = \"ca.pem\"\n", "", 1),
    )
    .unwrap();
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 1, "{out}\n{err}");
    let error = report["users"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("source: TLS:") && error.contains("certificate"),
        "{error}"
    );
    assert!(!s.contacts().contains(ALICE));

    // STARTTLS on the source (imap://) with the CA.
    s.write_config(&s.source.starttls_url());
    let (code, out, err, _) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
}

#[test]
fn dry_run_writes_nothing() {
    let s = start(Options {
        big: false,
        ..Options::default()
    });
    let (code, out, err, report) = s.migrate(&["--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("dry run"), "{out}");
    assert!(
        err.contains("would write the contact")
            && err.contains("would copy Work/Projects/2024 -> Work/Projects/2024"),
        "{err}"
    );
    assert_eq!(report["users"][0]["planned_messages"], s.seeded as u64);
    assert_eq!(s.contacts(), "# address target [route]\n");
    assert!(!s.state_dir().exists());
    assert!(s.target_counts().is_empty());
}

#[test]
fn content_filter_copies_only_calendar() {
    let s = start(Options {
        big: false,
        ..Options::default()
    });
    let (code, out, err, _) = s.migrate(&["--content", "calendar"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(s.target_counts(), vec![("Calendar".to_string(), 3)]);
    let source = s.source.dump(ALICE);
    assert_eq!(s.target.dump(ALICE_CLOUD)["Calendar"], source["Calendar"]);
}

#[test]
fn date_range_limits_by_internaldate() {
    let s = start(Options {
        big: false,
        ..Options::default()
    });
    let (code, out, err, _) = s.migrate(&["--since", "2021-01-01", "--before", "2024-01-02"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let target = s.target.dump(ALICE_CLOUD);
    let mut dates: Vec<String> = target
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|m| m[1].as_str().unwrap().to_string())
        })
        .collect();
    dates.sort();
    // 2021-06-15 (8-bit), 2023-03-03, 2023-03-04, 2022-11-11 (Work), 2024-01-01 (Calendar).
    assert_eq!(dates.len(), 5, "{dates:?}");
    assert!(
        dates.iter().all(|d| ["2021", "2022", "2023", "2024"]
            .iter()
            .any(|y| d.contains(y))),
        "{dates:?}"
    );
}

#[test]
fn forwarding_only_then_rollback() {
    let s = start(Options {
        big: false,
        ..Options::default()
    });
    let (code, out, _) = s.run(&["ready", "--json"]);
    assert_eq!(code, 0, "{out}");
    let ready: Value = serde_json::from_str(&out).unwrap();
    let alice = ready
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == ALICE)
        .unwrap();
    assert_eq!(alice["messages"], s.seeded as u64);
    assert_eq!(alice["fits"], true);
    assert!(ready
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["address"] != "carol@corp.example"));

    // Every ready user at once (alice and bob; carol is disabled).
    let report_file = s.dir.path().join("all.json");
    let (code, out, err) = s.run(&[
        "migrate",
        "--all-ready",
        "--forwarding-only",
        "--parallel",
        "2",
        "--report",
        report_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    let results: Vec<(&str, &str)> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["address"].as_str().unwrap(),
                u["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            (ALICE, "forwarding-only"),
            ("bob@corp.example", "forwarding-only")
        ]
    );
    assert!(s.contacts().contains(ALICE_CLOUD));
    assert!(s.contacts().contains("bob@tenant.cloud.example"));
    assert!(!s.contacts().contains("carol"));
    assert!(s.target_counts().is_empty());
    let (_, out, _) = s.run(&["status", ALICE]);
    assert!(out.contains("forwarding set"), "{out}");
    let (_, out, _) = s.run(&["ready", "--json"]);
    assert!(!out.contains(ALICE), "{out}");

    let (code, out, _) = s.run(&["rollback", ALICE]);
    assert_eq!(code, 0);
    assert!(out.contains("contact removed"), "{out}");
    assert!(!s.contacts().contains(ALICE));
    let (_, out, _) = s.run(&["status", ALICE]);
    assert!(out.contains("rolled back"), "{out}");
    let (_, out, _) = s.run(&["ready", "--json"]);
    assert!(
        out.contains(ALICE),
        "a rolled-back user is ready again: {out}"
    );
}

#[test]
fn disabled_and_unknown_users_are_refused() {
    let s = start(Options {
        big: false,
        ..Options::default()
    });
    let (code, out, _) = s.run(&["migrate", "carol@corp.example"]);
    assert_eq!(code, 1);
    assert!(out.contains("disabled in the directory"), "{out}");
    let (code, _, err) = s.run(&["migrate", "nobody@corp.example"]);
    assert_eq!(code, 2);
    assert!(err.contains("not in the directory"), "{err}");
    assert!(!s.contacts().contains("carol"));
}

/// SIGKILL in the middle of a checkpoint window, at a known point: the proxy in
/// front of the target passes the first 100 APPEND answers and keeps the rest
/// back, so the migrator is waiting for the answers to a pipelined batch that
/// the target has stored. The resumed run finds those on the target (they are
/// pending in the checkpoint) and ends where an uninterrupted run would.
#[test]
fn killed_during_copy_resumes_to_the_same_end_state() {
    // APPEND commands, not messages: Dovecot offers MULTIAPPEND, so each
    // batch (up to 64 messages) is one command.
    const ANSWERED: usize = 4;
    let s = start(Options {
        bulk: 600,
        ..Options::default()
    });
    let proxy = through_proxy(
        &s,
        Fault::None,
        Some(Hold::AnswersAfterAppends(ANSWERED)),
        "",
    );
    let mut child = s
        .command(&["migrate", ALICE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        proxy.wait_held(Duration::from_secs(120)),
        "the copy never got {ANSWERED} APPENDs answered"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the copy finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let partial: usize = s.target_counts().iter().map(|(_, n)| n).sum();
    assert!(
        (ANSWERED..s.seeded).contains(&partial),
        "killed mid-copy: {partial} of {}",
        s.seeded
    );
    // The batch the migrator was waiting for is pending in the checkpoint.
    let state_file = s.state_dir().join(format!("{ALICE}.json"));
    let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let pending: usize = state["folders"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|f| f["pending"].as_array())
        .map(Vec::len)
        .sum();
    assert!(pending > 0, "no pending window in {state}");

    proxy.release();
    let (code, out, err, _) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
}

/// The issue's coexistence check: mail keeps flowing through `coexist-relay` to the
/// user while they are migrated; every acknowledged message ends up in the target
/// mailbox exactly once. The relay's onprem and cloud next hops are sinks that APPEND
/// into the source and target Dovecot before they answer 250.
#[test]
fn mail_sent_through_the_relay_during_migration_ends_up_in_the_target_once() {
    use coexist_e2e::sink::{Script, ScriptSink};
    use coexist_e2e::smtp::Client;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let s = start(Options {
        big: false,
        ..Options::default()
    });
    let into_source = s.source.deliverer();
    let into_target = s.target.deliverer();
    let onprem = ScriptSink::start(Script {
        on_message: Some(Box::new(move |m| {
            m.recipients.iter().all(|r| into_source(r, &m.data))
        })),
        ..Script::default()
    });
    let cloud = ScriptSink::start(Script {
        on_message: Some(Box::new(move |m| {
            m.recipients.iter().all(|r| into_target(r, &m.data))
        })),
        ..Script::default()
    });
    let contacts = s.dir.path().join("contacts");
    let relay = coexist_e2e::RelaySetup::default()
        .section(
            "routing",
            &format!("contacts = {:?}", contacts.to_str().unwrap()),
        )
        .section(
            "route.onprem",
            &format!("smarthost = [\"{}\"]\ntls = \"none\"", onprem.hostport()),
        )
        .section(
            "route.cloud",
            &format!("smarthost = [\"{}\"]\ntls = \"none\"", cloud.hostport()),
        )
        .section("queue", "retry_schedule = [\"1s\"]")
        .start();

    // A sender that keeps mailing alice through the relay until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let sender = {
        let (stop, acked, addr) = (Arc::clone(&stop), Arc::clone(&acked), relay.addr("smtp"));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (mut c, _) = Client::connect(addr);
                c.ehlo();
                assert!(c.cmd("MAIL FROM:<news@sender.example>").has(250, "2.1.0"));
                assert!(c.cmd(&format!("RCPT TO:<{ALICE}>")).has(250, "2.1.5"));
                assert_eq!(c.cmd("DATA").code, 354);
                let id = format!("<flow{i}@sender.example>");
                c.send(
                    format!(
                        "Message-ID: {id}\r\nSubject: flow {i}\r\n\r\nduring migration\r\n.\r\n"
                    )
                    .as_bytes(),
                );
                if c.read_reply().code == 250 {
                    acked.lock().unwrap().push(id);
                }
                c.cmd("QUIT");
                i += 1;
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let until = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "sender stalled");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until(5);
    let (code, out, err, _) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let after_migration = acked.lock().unwrap().len();
    until(after_migration + 10);
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while relay.metric("coexist_queue_messages") > 0.0 {
        assert!(Instant::now() < deadline, "relay queue did not drain");
        std::thread::sleep(Duration::from_millis(100));
    }

    let acked = acked.lock().unwrap().clone();
    let target = s.target.inbox_message_ids(ALICE_CLOUD);
    let source = s.source.inbox_message_ids(ALICE);
    assert!(
        !cloud.received().is_empty(),
        "mail flowed to the cloud after the flip"
    );
    assert!(
        !onprem.received().is_empty(),
        "mail flowed on-premises before the flip"
    );
    for id in &acked {
        let n = target.iter().filter(|t| *t == id).count();
        assert_eq!(
            n,
            1,
            "{id}: {n} copies in the target (source has {}; {} acked, {} in target)",
            source.iter().filter(|t| *t == id).count(),
            acked.len(),
            target.len()
        );
    }
}

/// The target behind a fault-injecting IMAP proxy (`tests/src/imap_proxy.rs`).
fn through_proxy(s: &Setup, fault: Fault, hold: Option<Hold>, extra: &str) -> ImapProxy {
    let proxy = ImapProxy::start(&s._ca, s.target.imaps_port, fault, hold);
    s.write_config_full(&s.source.url(), &proxy.url(), extra);
    proxy
}

/// Sum of the message sizes in a dump.
fn dump_bytes(dump: &Value) -> u64 {
    dump.as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().unwrap().iter())
        .map(|m| m[3].as_u64().unwrap())
        .sum()
}

/// While `migrate` runs, `/metrics` has every `coexist_migrator_*` family, and the
/// numbers are the ones copied. The run is held at a known point for the scrape:
/// bob's login to the target is kept back by the proxy until alice is migrated,
/// so the page shows alice's final numbers from a process that is still running.
#[test]
fn metrics_are_served_during_the_run_and_match_what_was_copied() {
    use std::io::BufRead;
    let s = start(Options {
        big: false,
        bulk: 100,
        ..Options::default()
    });
    // SASL PLAIN for bob on the target: authzid NUL master NUL password.
    let bob_login = imap_proxy::base64(
        format!("bob@tenant.cloud.example\0{}\0{}", MASTER.0, MASTER.1).as_bytes(),
    );
    let proxy = through_proxy(
        &s,
        Fault::None,
        Some(Hold::Line(bob_login.into_bytes())),
        "\n[metrics]\nbind = \"127.0.0.1:0\"\n",
    );
    let report_file = s.dir.path().join("report.json");
    let mut child = s
        .command(&[
            "migrate",
            ALICE,
            "bob@corp.example",
            "--report",
            report_file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no metrics line; stderr so far: {log:#?}"));
        if let Some(rest) = line.strip_prefix("metrics: serving http://") {
            break rest.trim_end_matches("/metrics").parse().unwrap();
        }
        log.push(line);
    };
    assert!(
        proxy.wait_held(Duration::from_secs(60)),
        "bob's target login never came"
    );
    let scrape = || {
        let (status, page) = coexist_e2e::http_get(addr, "/metrics");
        assert_eq!(status, 200);
        page
    };
    let value = |page: &str, series: &str| coexist_e2e::metric_value(page, series);
    let migrated = "coexist_migrator_users{state=\"migrated\"}";
    let deadline = Instant::now() + Duration::from_secs(120);
    let page = loop {
        let page = scrape();
        if value(&page, migrated) == 1.0 {
            break page;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended while held"
        );
        assert!(Instant::now() < deadline, "alice never migrated:\n{page}");
        std::thread::sleep(Duration::from_millis(100));
    };

    // Alice is done, bob waits at his login: alice's final numbers.
    let source = s.source.dump(ALICE);
    let seeded_bytes = dump_bytes(&source);
    // The Calendar folder's items count as calendar, the rest as mail.
    let calendar = source["Calendar"].as_array().unwrap();
    let calendar_bytes: u64 = calendar.iter().map(|m| m[3].as_u64().unwrap()).sum();
    let calendar_items = calendar.len() as f64;
    assert!(calendar_items > 0.0, "the seed has calendar items");
    for (series, want) in [
        ("coexist_migrator_users{state=\"not_started\"}", 1.0),
        ("coexist_migrator_users{state=\"forwarding_set\"}", 0.0),
        ("coexist_migrator_users{state=\"copying\"}", 0.0),
        (migrated, 1.0),
        ("coexist_migrator_users{state=\"failed\"}", 0.0),
        (
            "coexist_migrator_messages_copied_total{content=\"mail\"}",
            s.seeded as f64 - calendar_items,
        ),
        (
            "coexist_migrator_messages_copied_total{content=\"calendar\"}",
            calendar_items,
        ),
        (
            "coexist_migrator_messages_copied_total{content=\"contacts\"}",
            0.0,
        ),
        (
            "coexist_migrator_bytes_copied_total{content=\"mail\"}",
            (seeded_bytes - calendar_bytes) as f64,
        ),
        (
            "coexist_migrator_bytes_copied_total{content=\"calendar\"}",
            calendar_bytes as f64,
        ),
        ("coexist_migrator_messages_skipped_total", 0.0),
        ("coexist_migrator_errors_total{kind=\"refused\"}", 0.0),
        ("coexist_migrator_errors_total{kind=\"throttled\"}", 0.0),
        ("coexist_migrator_errors_total{kind=\"transient\"}", 0.0),
        ("coexist_migrator_errors_total{kind=\"user_failed\"}", 0.0),
        ("coexist_migrator_backoff_seconds_total", 0.0),
    ] {
        assert!(
            page.lines().any(|l| l.starts_with(&format!("{series} "))),
            "{series} missing:\n{page}"
        );
        assert_eq!(value(&page, series), want, "{series}\n{page}");
    }
    assert_eq!(coexist_e2e::http_get(addr, "/healthz").0, 200);

    coexist_e2e::promtool_check_metrics(&page);

    proxy.release();
    let status = child.wait().unwrap();
    log.extend(lines.try_iter());
    assert_eq!(status.code(), Some(0), "{log:#?}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["users"][0]["counters"]["copied"], s.seeded as u64);
    assert_eq!(report["users"][0]["counters"]["bytes"], seeded_bytes);
    assert_eq!(report["users"][1]["result"], "ok", "{report}");
    assert_eq!(non_empty(&source), non_empty(&s.target.dump(ALICE_CLOUD)));
}

/// `NO [THROTTLED]` on APPEND: backed off from, retried, reported, not a failure.
#[test]
fn throttled_appends_are_retried_after_backoff_and_not_failed() {
    let s = start(Options {
        big: false,
        ..Options::default()
    });
    let proxy = through_proxy(&s, Fault::Throttle(3), None, "");
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(proxy.throttled(), 3);
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
    assert_eq!(report["users"][0]["result"], "ok");
    assert_eq!(counter(&report, "copied"), s.seeded as u64);
    assert_eq!(counter(&report, "failed"), 0);
    assert_eq!(counter(&report, "throttled"), 3, "{report}");
    // Only the calendar folder's non-calendar item is a warning.
    assert_eq!(
        report["users"][0]["warnings"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert!(
        err.contains("the target asks to slow down ([THROTTLED] Request is throttled"),
        "{err}"
    );
    assert!(out.contains("throttled 3"), "{out}");
    let (code, out, _) = s.run(&["status", "--json", ALICE]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status[0]["state"], "migrated");
    assert_eq!(status[0]["totals"]["throttled"], 3, "{status}");
    assert_eq!(status[0]["totals"]["failed"], 0, "{status}");
}

/// A `BYE` in the middle of a pipelined APPEND batch: the folder resumes on a new
/// connection after a back-off; what the target stored before the BYE is found
/// there (the batch was written down as pending), so every message is on the
/// target exactly once.
#[test]
fn bye_during_appends_reconnects_and_copies_every_message_once() {
    let s = start(Options {
        big: false,
        bulk: 40,
        ..Options::default()
    });
    let proxy = through_proxy(&s, Fault::Bye(6), None, "");
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(proxy.byes(), 1);
    // Folder by folder, message by message: no message missing, none twice.
    assert_eq!(
        non_empty(&s.source.dump(ALICE)),
        non_empty(&s.target.dump(ALICE_CLOUD))
    );
    assert_eq!(report["users"][0]["result"], "ok");
    assert_eq!(
        counter(&report, "copied") + counter(&report, "skipped"),
        s.seeded as u64,
        "{report}"
    );
    assert_eq!(counter(&report, "failed"), 0);
    assert_eq!(counter(&report, "throttled"), 1, "{report}\n{err}");
    assert!(
        err.contains("server closed the session: Too many requests")
            && err.contains("throttled, reconnecting in 2s"),
        "{err}"
    );
}

/// A message the target refuses for good (over Dovecot's `quota_max_mail_size`:
/// `NO [LIMIT] Mail size is larger than ...`) is a warning with its folder, UID
/// and reason; the messages after it, in the same pipelined batch, are copied,
/// and the run goes on. Exit 1: a message failed (DESIGN.md).
#[test]
fn refused_append_is_a_warning_and_the_rest_is_copied() {
    let s = start(Options {
        big: false,
        oversized: true,
        max_mail_size: Some("1M"),
        ..Options::default()
    });
    let (code, out, err, report) = s.migrate(&[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(report["users"][0]["result"], "ok", "{report}");
    assert_eq!(counter(&report, "failed"), 1, "{report}\n{err}");
    assert_eq!(counter(&report, "copied"), s.seeded as u64 - 1);
    assert_eq!(
        counter(&report, "throttled"),
        0,
        "refused at once: {report}"
    );
    let warnings = report["users"][0]["warnings"].as_array().unwrap();
    let refused: Vec<&Value> = warnings.iter().filter(|w| w["folder"] == "Big").collect();
    assert_eq!(refused.len(), 1, "{report}");
    assert_eq!(refused[0]["uid"], 2);
    let reason = refused[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("[LIMIT] Mail size is larger than the maximum size"),
        "{reason}"
    );
    assert!(
        out.contains("warning: Big UID 2: target refused it"),
        "{out}"
    );

    // Everything else is there, byte for byte.
    let mut expected = non_empty(&s.source.dump(ALICE));
    expected["Big"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m[3].as_u64().unwrap() < 1024 * 1024);
    assert_eq!(expected["Big"].as_array().unwrap().len(), 2);
    assert_eq!(expected, non_empty(&s.target.dump(ALICE_CLOUD)));
}
