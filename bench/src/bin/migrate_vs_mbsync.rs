//! `migrate-vs-mbsync [--messages N] [--reps R]`: coexist-migrator against mbsync
//! (Debian `isync`) copying the same mailbox, Dovecot → Dovecot, side by side.
//! Run it with `bench/migrate-vs-mbsync`, which builds the release binaries first.
//!
//! One source Dovecot holds N messages (default 10,000) for one user, in three
//! folders (INBOX 60 %, `Archive/2023` 30 %, `Sent` 10 %), 1–16 KiB each, with
//! flags. Each repetition starts a fresh target Dovecot (TLS, master user, the
//! same test harness as `tests/migrator.rs`) and copies the mailbox twice into
//! it, once per tool, each into its own user; the order alternates between
//! repetitions. Both connect over implicit TLS with the certificate verified.
//!
//! - `coexist-migrator sync USER`: the copy alone (both passes, checkpoints on
//!   disk), the same job mbsync does. `migrate` adds the contact flip and waits
//!   (5 s plus until the source INBOX is quiet) before its delta pass; it is
//!   timed once at the end, separately.
//! - `mbsync -a` with `Sync Pull`, `Create Near`, a fresh `SyncState`.
//!
//! Printed per repetition and as medians: wall seconds, CPU seconds of the
//! client process (user + system, from the reaped child), and the ratio
//! migrator / mbsync of the wall times. Both copies are checked afterwards:
//! same folders, same message counts.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USER: &str = "alice@corp.example";
const MIGRATOR_TARGET: &str = "alice@tenant.cloud.example";
const MBSYNC_TARGET: &str = "bob@tenant.cloud.example";
const MIGRATE_TARGET: &str = "carol@tenant.cloud.example";

fn main() -> ExitCode {
    let mut messages = 10_000usize;
    let mut reps = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), value) {
            ("--messages", Some(v)) => messages = v,
            ("--reps", Some(v)) if v > 0 => reps = v,
            _ => {
                eprintln!("usage: migrate-vs-mbsync [--messages N] [--reps R]");
                return ExitCode::from(2);
            }
        }
    }
    let migrator = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("coexist-migrator")))
        .filter(|p| p.exists());
    let Some(migrator) = migrator else {
        eprintln!("coexist-migrator is not built next to this binary; run bench/migrate-vs-mbsync");
        return ExitCode::from(2);
    };

    let ca = TestCa::new();
    let source = Dovecot::start(
        DovecotSetup {
            name: "bench-source",
            users: vec![(USER, "pw")],
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let work = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let bytes = seed(&source, work.path(), messages);
    eprintln!(
        "seeded {messages} messages ({:.1} MiB) in {:.1} s",
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for rep in 0..reps {
        let target = start_target(&ca);
        let dir = tempfile::tempdir().expect("tempdir");
        write_migrator_config(dir.path(), &ca, &source, &target);
        write_mbsync_config(dir.path(), &source, &target);
        let mut run_ours = || {
            let (wall, cpu) = timed(
                Command::new(&migrator)
                    .arg("--config")
                    .arg(dir.path().join("migrator.toml"))
                    .args(["sync", USER]),
            );
            ours.push((wall, cpu));
            eprintln!(
                "rep {}: coexist-migrator sync {wall:.2} s ({cpu:.2} s CPU)",
                rep + 1
            );
        };
        let mut run_theirs = || {
            let (wall, cpu) = timed(
                Command::new("mbsync")
                    .arg("-c")
                    .arg(dir.path().join("mbsyncrc"))
                    .arg("-a"),
            );
            theirs.push((wall, cpu));
            eprintln!("rep {}: mbsync {wall:.2} s ({cpu:.2} s CPU)", rep + 1);
        };
        if rep % 2 == 0 {
            run_ours();
            run_theirs();
        } else {
            run_theirs();
            run_ours();
        }
        let a = counts(&target, MIGRATOR_TARGET);
        let b = counts(&target, MBSYNC_TARGET);
        assert_eq!(a, b, "both tools copied the same folders and counts");
        assert_eq!(
            a.iter().map(|(_, n)| n).sum::<usize>(),
            messages,
            "every message copied: {a:?}"
        );
    }

    // `migrate` once: the contact flip and the settle wait before the delta pass.
    let target = start_target(&ca);
    let dir = tempfile::tempdir().expect("tempdir");
    write_migrator_config(dir.path(), &ca, &source, &target);
    std::fs::write(
        dir.path().join("users.csv"),
        format!("address,display_name,target,quota,enabled\n{USER},Alice,{MIGRATE_TARGET},,true\n"),
    )
    .unwrap();
    let (migrate_wall, migrate_cpu) = timed(
        Command::new(&migrator)
            .arg("--config")
            .arg(dir.path().join("migrator.toml"))
            .args(["migrate", USER]),
    );
    let copied: usize = counts(&target, MIGRATE_TARGET).iter().map(|(_, n)| n).sum();
    assert_eq!(copied, messages);

    let median = |v: &[(f64, f64)], i: usize| {
        let mut x: Vec<f64> = v.iter().map(|p| if i == 0 { p.0 } else { p.1 }).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (ow, oc, tw, tc) = (
        median(&ours, 0),
        median(&ours, 1),
        median(&theirs, 0),
        median(&theirs, 1),
    );
    println!(
        "{messages} messages, {:.1} MiB, {reps} repetition(s), medians:",
        bytes as f64 / 1048576.0
    );
    println!(
        "  coexist-migrator sync  {ow:7.2} s wall  {oc:6.2} s CPU  {:7.0} msg/s",
        messages as f64 / ow
    );
    println!(
        "  mbsync                 {tw:7.2} s wall  {tc:6.2} s CPU  {:7.0} msg/s",
        messages as f64 / tw
    );
    println!("  coexist-migrator migrate (once, incl. flip + settle before the delta pass) {migrate_wall:.2} s wall  {migrate_cpu:.2} s CPU");
    println!("ratio wall migrator/mbsync: {:.2}", ow / tw);
    println!("ratio CPU migrator/mbsync: {:.2}", oc / tc);
    ExitCode::SUCCESS
}

fn start_target(ca: &TestCa) -> Dovecot {
    Dovecot::start(
        DovecotSetup {
            name: "bench-target",
            users: vec![
                (MIGRATOR_TARGET, "pw"),
                (MBSYNC_TARGET, "pw"),
                (MIGRATE_TARGET, "pw"),
            ],
            quota: Some("10G"),
            max_mail_size: None,
            tls: true,
        },
        ca,
    )
}

/// Runs `cmd` to completion; (wall seconds, CPU seconds of the reaped child).
fn timed(cmd: &mut Command) -> (f64, f64) {
    let before = children_cpu();
    let t = Instant::now();
    let out = cmd.output().expect("start");
    let wall = t.elapsed().as_secs_f64();
    // MIGRATE_VS_MBSYNC_LOGS=FILE keeps every run's stderr (with RUST_LOG, the
    // migrator's per-batch timings).
    if let Ok(log) = std::env::var("MIGRATE_VS_MBSYNC_LOGS") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("MIGRATE_VS_MBSYNC_LOGS");
        let _ = writeln!(f, "=== {cmd:?}: {wall:.2} s");
        let _ = f.write_all(&out.stderr);
    }
    assert!(
        out.status.success(),
        "{:?} failed:\n{}\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (wall, children_cpu() - before)
}

/// cutime + cstime of this process (reaped children), seconds.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; cutime, cstime are 16 and 17.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(13)
        .take(2)
        .map(|v| v.parse().expect("number"))
        .collect();
    let ticks = 100.0; // USER_HZ on Linux
    (f[0] + f[1]) / ticks
}

/// Messages per folder of `user` (non-empty folders), sorted.
fn counts(d: &Dovecot, user: &str) -> Vec<(String, usize)> {
    let dump = d.dump(user);
    let mut v: Vec<(String, usize)> = dump
        .as_object()
        .expect("dump")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().map_or(0, Vec::len)))
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort();
    v
}

/// Seeds the source; returns the total bytes.
fn seed(source: &Dovecot, dir: &Path, n: usize) -> u64 {
    let files = dir.join("seed");
    std::fs::create_dir_all(&files).unwrap();
    let mut spec = Vec::with_capacity(n);
    let mut total = 0u64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let folder = match i % 10 {
            0..=5 => "INBOX",
            6..=8 => "Archive/2023",
            _ => "Sent",
        };
        let flags: &[&str] = match i % 4 {
            0 => &[],
            1 => &["\\Seen"],
            2 => &["\\Seen", "\\Answered"],
            _ => &["\\Flagged"],
        };
        let size = 1024 + (x % (15 * 1024)) as usize;
        let mut m = format!(
            "From: Carol <carol@example.net>\r\nTo: {USER}\r\nSubject: message {i}\r\nDate: Mon, 1 Jan 2018 10:00:00 +0000\r\nMessage-ID: <bench{i}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        )
        .into_bytes();
        let line = b"The quick brown fox jumps over the lazy dog; 0123456789 abcdefghij.\r\n";
        while m.len() < size {
            m.extend_from_slice(line);
        }
        total += m.len() as u64;
        let file = files.join(format!("{i}.eml"));
        std::fs::write(&file, &m).unwrap();
        let day = 1 + (i % 28);
        spec.push(serde_json::json!({
            "folder": folder,
            "flags": flags,
            "date": format!("{day:02}-Mar-2023 10:00:00 +0000"),
            "file": file,
        }));
    }
    let spec_file = dir.join("seed.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    source.seed(USER, &spec_file);
    total
}

fn write_migrator_config(d: &Path, ca: &TestCa, source: &Dovecot, target: &Dovecot) {
    std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(d.join("source.password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("target.password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("contacts"), "# address target [route]\n").unwrap();
    std::fs::write(
        d.join("users.csv"),
        format!(
            "address,display_name,target,quota,enabled\n{USER},Alice,{MIGRATOR_TARGET},,true\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("migrator.toml"),
        format!(
            "[directory]\nusers = \"users.csv\"\n\n[routing]\ncontacts = \"contacts\"\ntarget_template = \"{{local}}@tenant.cloud.example\"\n\n\
             [source]\nurl = \"{}\"\nauth = \"master\"\nmaster_user = \"{m}\"\npassword_file = \"source.password\"\nca = \"ca.pem\"\n\n\
             [target]\nurl = \"{}\"\nauth = \"authzid\"\nmaster_user = \"{m}\"\npassword_file = \"target.password\"\nca = \"ca.pem\"\n\n\
             [migration]\nstate_dir = \"state\"\n",
            source.url(),
            target.url(),
            m = MASTER.0,
        ),
    )
    .unwrap();
}

fn write_mbsync_config(d: &Path, source: &Dovecot, target: &Dovecot) {
    let state: PathBuf = d.join("mbsync-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        d.join("mbsyncrc"),
        format!(
            "IMAPAccount src\nHost localhost\nPort {sp}\nUser {USER}*{m}\nPass {p}\nSSLType IMAPS\nCertificateFile {d}/ca.pem\n\n\
             IMAPStore src\nAccount src\n\n\
             IMAPAccount dst\nHost localhost\nPort {tp}\nUser {MBSYNC_TARGET}*{m}\nPass {p}\nSSLType IMAPS\nCertificateFile {d}/ca.pem\n\n\
             IMAPStore dst\nAccount dst\n\n\
             Channel copy\nFar :src:\nNear :dst:\nPatterns *\nCreate Near\nSync Pull\nSyncState {s}/\n",
            sp = source.imaps_port,
            tp = target.imaps_port,
            m = MASTER.0,
            p = MASTER.1,
            d = d.display(),
            s = state.display(),
        ),
    )
    .unwrap();
}
