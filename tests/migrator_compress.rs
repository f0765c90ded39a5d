//! End-to-end, COMPRESS=DEFLATE (RFC 4978, issue #14) against real Dovecots
//! with `imap_zlib`, a byte-counting TCP meter in front of each, so what is
//! asserted is what crossed the wire (TLS records and all):
//! - `compress = "always"`: the mail crosses compressed both ways (the FETCH
//!   answers from the source, the APPENDs to the target), well under the
//!   mailbox's size, and arrives byte for byte; `check` says it is on.
//! - `compress = "auto"` (the default) on loopback: nothing is compressed,
//!   and `check` says why.
//! - `always` on a target without `imap_zlib`: `check` fails with the fix;
//!   the copy warns once (two users, four sessions) and goes on uncompressed.
//! - A plaintext source (`imap://`, `allow_insecure`), whose session first
//!   leaves imap-next's TCP stream for the migrator's own: compressed too.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa};
use coexist_e2e::migrator_config::MigratorConfig;
use coexist_e2e::tcp_meter::TcpMeter;
use serde_json::Value;
use std::process::Command;

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";
const ZLIB: &str = "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n";

struct Setup {
    _ca: TestCa,
    source: Dovecot,
    target: Dovecot,
    source_meter: TcpMeter,
    target_meter: TcpMeter,
    dir: tempfile::TempDir,
    /// The bytes of every message seeded.
    mailbox_bytes: u64,
}

/// Mail as it compresses in real life: text lines of words, not a repeated
/// byte (a pseudo-random walk through a small vocabulary).
fn text_mail(i: usize, lines: usize) -> String {
    const WORDS: [&str; 32] = [
        "the",
        "budget",
        "meeting",
        "Thursday",
        "quarterly",
        "figures",
        "please",
        "review",
        "attached",
        "draft",
        "before",
        "we",
        "send",
        "it",
        "to",
        "finance",
        "regards",
        "and",
        "numbers",
        "for",
        "March",
        "April",
        "team",
        "project",
        "deadline",
        "moved",
        "next",
        "week",
        "thanks",
        "call",
        "notes",
        "from",
    ];
    let mut out = format!(
        "From: carol@example.net\r\nTo: alice@corp.example\r\nSubject: report {i}\r\n\
         Message-ID: <report.{i}@example.net>\r\nDate: Mon, 6 Mar 2023 12:00:00 +0100\r\n\r\n"
    );
    let mut x = i as u64 * 2654435761 + 1;
    for _ in 0..lines {
        for _ in 0..11 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push_str(WORDS[(x >> 59) as usize]);
            out.push(' ');
        }
        out.push_str("\r\n");
    }
    out
}

fn dovecot(
    name: &'static str,
    users: Vec<(&'static str, &'static str)>,
    zlib: bool,
    tls: bool,
    ca: &TestCa,
) -> Dovecot {
    Dovecot::start_with(
        DovecotSetup {
            name,
            users,
            quota: None,
            max_mail_size: None,
            tls,
        },
        ca,
        if zlib { ZLIB } else { "" },
    )
}

/// Alice with 200 text mails of ~15 KB, Bob with 3; both sides with
/// `imap_zlib` unless `target_zlib` is false; `compress` on both sides
/// (`None`: the key left out); over implicit TLS, or with `plain` the
/// source in plaintext (`imap://`, `allow_insecure`).
fn start(target_zlib: bool, compress: Option<&str>, plain: bool) -> Setup {
    let ca = TestCa::new();
    let source = dovecot(
        "source",
        vec![(ALICE, "pw"), (BOB, "pw")],
        true,
        !plain,
        &ca,
    );
    let target = dovecot(
        "target",
        vec![
            ("alice@tenant.cloud.example", "pw"),
            ("bob@tenant.cloud.example", "pw"),
        ],
        target_zlib,
        true,
        &ca,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut mailbox_bytes = 0;
    for (user, n) in [(ALICE, 200), (BOB, 3)] {
        let mut spec = Vec::new();
        for i in 0..n {
            let file = d.join(format!("{user}-{i}.eml"));
            let mail = text_mail(i, 180);
            mailbox_bytes += mail.len() as u64;
            std::fs::write(&file, mail).unwrap();
            spec.push(serde_json::json!({"folder": "INBOX", "flags": ["\\Seen"], "date": "06-Mar-2023 12:00:00 +0100", "file": file}));
        }
        let spec_file = d.join(format!("{user}.json"));
        std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
        source.seed(user, &spec_file);
    }
    let (source_meter, source_url) = if plain {
        let meter = TcpMeter::start(source.imap_port);
        let url = format!("imap://127.0.0.1:{}", meter.port());
        (meter, url)
    } else {
        let meter = TcpMeter::start(source.imaps_port);
        let url = format!("imaps://127.0.0.1:{}", meter.port());
        (meter, url)
    };
    let target_meter = TcpMeter::start(target.imaps_port);
    let mut config = MigratorConfig::new(
        &source_url,
        &format!("imaps://127.0.0.1:{}", target_meter.port()),
    );
    if plain {
        config = config.raw("migration", "allow_insecure", "true");
    }
    if let Some(c) = compress {
        config = config
            .set("source", "compress", c)
            .set("target", "compress", c);
    }
    config.write(d, &ca.ca_pem);
    Setup {
        _ca: ca,
        source,
        target,
        source_meter,
        target_meter,
        dir,
        mailbox_bytes,
    }
}

impl Setup {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(coexist_e2e::binary("coexist-migrator"))
            .arg("--config")
            .arg(self.dir.path().join("migrator.toml"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Migrates both users; asserts it succeeded and every message arrived
    /// byte for byte (sha256, flags, INTERNALDATE). Returns stderr.
    fn migrate(&self) -> String {
        let (code, out, err) = self.run(&["migrate", ALICE, BOB]);
        assert_eq!(code, 0, "{out}\n{err}");
        for (src, dst) in [
            (ALICE, "alice@tenant.cloud.example"),
            (BOB, "bob@tenant.cloud.example"),
        ] {
            let (a, b) = (
                non_empty(&self.source.dump(src)),
                non_empty(&self.target.dump(dst)),
            );
            assert_eq!(a, b, "{src}");
        }
        err
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

/// The `check` line `STATUS WHAT: ...` whose what starts with `prefix`.
fn line<'a>(out: &'a str, status: &str, prefix: &str) -> Option<&'a str> {
    let start = format!("{status:<5} {prefix}");
    out.lines().find(|l| l.starts_with(&start))
}

#[test]
fn always_compresses_both_ways_and_the_mail_arrives_byte_for_byte() {
    let s = start(true, Some("always"), false);
    s.migrate();
    let (fetched, appended) = (s.source_meter.to_client(), s.target_meter.to_server());
    eprintln!(
        "mail {} B; from the source {fetched} B, to the target {appended} B",
        s.mailbox_bytes
    );
    // Text mail deflates about 3:1 at level 1; uncompressed, each side
    // carries more than the mailbox (headers, TLS).
    assert!(
        fetched * 2 < s.mailbox_bytes && appended * 2 < s.mailbox_bytes,
        "source sent {fetched}, target got {appended} bytes for {} bytes of mail",
        s.mailbox_bytes
    );
    let (code, out, err) = s.run(&["check", ALICE]);
    assert_eq!(code, 0, "{out}\n{err}");
    for side in ["source", "target"] {
        let prefix = format!("{side} COMPRESS=DEFLATE (compress = \"always\"): on");
        assert!(line(&out, "ok", &prefix).is_some(), "{out}");
    }
}

#[test]
fn auto_leaves_a_loopback_link_uncompressed() {
    let s = start(true, None, false);
    s.migrate();
    let (fetched, appended) = (s.source_meter.to_client(), s.target_meter.to_server());
    eprintln!(
        "mail {} B; from the source {fetched} B, to the target {appended} B",
        s.mailbox_bytes
    );
    assert!(
        fetched > s.mailbox_bytes && appended > s.mailbox_bytes,
        "source sent {fetched}, target got {appended} bytes for {} bytes of mail",
        s.mailbox_bytes
    );
    let (code, out, err) = s.run(&["check", ALICE]);
    assert_eq!(code, 0, "{out}\n{err}");
    for side in ["source", "target"] {
        let prefix = format!("{side} COMPRESS=DEFLATE (compress = \"auto\"): offered; off: the server is on loopback");
        assert!(line(&out, "ok", &prefix).is_some(), "{out}");
    }
}

#[test]
fn always_without_the_plugin_fails_check_and_the_copy_warns_once() {
    let s = start(false, Some("always"), false);
    let (code, out, err) = s.run(&["check", ALICE]);
    assert_eq!(code, 1, "{out}\n{err}");
    let fail = line(
        &out,
        "fail",
        "target COMPRESS=DEFLATE (compress = \"always\"): ",
    )
    .expect(&out);
    assert!(fail.contains("does not offer it"), "{fail}");
    let fix = out
        .lines()
        .skip_while(|l| *l != fail)
        .nth(1)
        .unwrap_or_default();
    assert!(
        fix.contains("imap_zlib") && fix.contains("compress = \"auto\""),
        "{out}"
    );
    assert!(
        line(
            &out,
            "ok",
            "source COMPRESS=DEFLATE (compress = \"always\"): on"
        )
        .is_some(),
        "{out}"
    );

    let before = s.source_meter.to_client();
    let err = s.migrate();
    let warning =
        "target: compression off: the server does not offer COMPRESS=DEFLATE; copying uncompressed";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert!(!err.contains("source: compression"), "{err}");
    // The source still compressed its side; the target's did not.
    let fetched = s.source_meter.to_client() - before;
    assert!(
        fetched * 2 < s.mailbox_bytes,
        "{fetched} of {}",
        s.mailbox_bytes
    );
    assert!(s.target_meter.to_server() > s.mailbox_bytes);
}

#[test]
fn a_plaintext_session_compresses_too() {
    let s = start(true, Some("always"), true);
    s.migrate();
    let fetched = s.source_meter.to_client();
    assert!(
        fetched * 2 < s.mailbox_bytes,
        "{fetched} of {}",
        s.mailbox_bytes
    );
}
