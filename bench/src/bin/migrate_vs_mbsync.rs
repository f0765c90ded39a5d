//! `migrate-vs-mbsync [--messages N] [--reps R] [--mailboxes M] [--per-mailbox K]`:
//! coexist-migrator against mbsync (Debian `isync`) copying the same mailbox,
//! Dovecot → Dovecot, side by side. Run it with `bench/migrate-vs-mbsync`, which
//! builds the release binaries first (`--no-build` there skips that).
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
//! - `coexist-migrator sync USER` once more right after its copy, nothing
//!   changed: the unchanged-mailbox sync (one EXAMINE per folder).
//!
//! Then the parallel comparison (issue 14), what an administrator would do
//! instead of `--parallel`: M mailboxes (default 8) of K messages each (default
//! 2,500, the same mix) copied by `coexist-migrator sync U1..UM --parallel 4`
//! and by 4 `mbsync -a` processes at once, each with M/4 of the mailboxes; a
//! fresh target per repetition, the order alternating. `--mailboxes 0` skips it.
//!
//! With `MIGRATE_VS_MBSYNC_BEFORE=PATH` (an older coexist-migrator), that
//! binary is timed too in every repetition, into its own target users, the
//! three tools' order rotating: a before/after comparison in one quiet window.
//! With `MIGRATE_VS_MBSYNC_WRAP="valgrind --tool=callgrind ..."` (or `perf
//! record ...`) the migrator's syncs run under that command: a profile on the
//! bench's own servers and mailbox (its times then mean nothing);
//! `MIGRATE_VS_MBSYNC_WRAP_MBSYNC=1` runs the single-mailbox mbsync under it
//! too.
//!
//! Printed per repetition and as medians: wall seconds, CPU seconds of the
//! client processes (user + system, from the reaped children), messages per
//! second (aggregate for the parallel runs) and the ratios migrator / mbsync.
//! Both copies are checked afterwards: same folders, same message counts.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USER: &str = "alice@corp.example";
const MIGRATOR_TARGET: &str = "alice@tenant.cloud.example";
const MBSYNC_TARGET: &str = "bob@tenant.cloud.example";
const MIGRATE_TARGET: &str = "carol@tenant.cloud.example";
const BEFORE_TARGET: &str = "dave@tenant.cloud.example";

fn main() -> ExitCode {
    let mut messages = 10_000usize;
    let mut reps = 3usize;
    let mut mailboxes = 8usize;
    let mut per_mailbox = 2_500usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), value) {
            ("--messages", Some(v)) => messages = v,
            ("--reps", Some(v)) if v > 0 => reps = v,
            ("--mailboxes", Some(v)) if v % 4 == 0 => mailboxes = v,
            ("--per-mailbox", Some(v)) => per_mailbox = v,
            _ => {
                eprintln!("usage: migrate-vs-mbsync [--messages N] [--reps R] [--mailboxes M (a multiple of 4)] [--per-mailbox K]");
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
    let many: Vec<String> = (1..=mailboxes)
        .map(|i| format!("user{i}@corp.example"))
        .collect();
    let mut source_users = vec![(USER, "pw")];
    source_users.extend(many.iter().map(|u| (u.as_str(), "pw")));
    let source = Dovecot::start(
        DovecotSetup {
            name: "bench-source",
            users: source_users,
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let work = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let bytes = seed(&source, &work.path().join("one"), USER, messages);
    eprintln!(
        "seeded {messages} messages ({:.1} MiB) in {:.1} s",
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut unchanged = Vec::new();
    let before: Option<PathBuf> = std::env::var_os("MIGRATE_VS_MBSYNC_BEFORE").map(PathBuf::from);
    let mut befores = Vec::new();
    let mut befores_unchanged = Vec::new();
    let one_target = [
        (MIGRATOR_TARGET, "pw"),
        (MBSYNC_TARGET, "pw"),
        (MIGRATE_TARGET, "pw"),
        (BEFORE_TARGET, "pw"),
    ];
    for rep in 0..reps {
        let target = start_target(&ca, &one_target);
        let dir = tempfile::tempdir().expect("tempdir");
        write_migrator_config(
            dir.path(),
            &ca,
            &source,
            &target,
            &[(USER, MIGRATOR_TARGET)],
        );
        write_mbsync_config(
            dir.path(),
            "mbsyncrc",
            &source,
            &target,
            &[(USER, MBSYNC_TARGET)],
        );
        let bdir = tempfile::tempdir().expect("tempdir");
        if before.is_some() {
            write_migrator_config(bdir.path(), &ca, &source, &target, &[(USER, BEFORE_TARGET)]);
        }
        // Each tool in turn, the order rotating between repetitions, so no
        // tool always meets the freshest (or the fullest) target.
        let tools = if before.is_some() { 3 } else { 2 };
        for k in 0..tools {
            match (k + rep) % tools {
                0 => {
                    let sync = || {
                        timed(
                            wrapped(&migrator)
                                .arg("--config")
                                .arg(dir.path().join("migrator.toml"))
                                .args(["sync", USER]),
                        )
                    };
                    let (wall, cpu) = sync();
                    ours.push((wall, cpu));
                    eprintln!(
                        "rep {}: coexist-migrator sync {wall:.2} s ({cpu:.2} s CPU)",
                        rep + 1
                    );
                    let (wall, cpu) = sync();
                    unchanged.push((wall, cpu));
                    eprintln!(
                        "rep {}: coexist-migrator sync, nothing changed {wall:.3} s ({cpu:.3} s CPU)",
                        rep + 1
                    );
                }
                1 => {
                    let mut mbsync = if std::env::var_os("MIGRATE_VS_MBSYNC_WRAP_MBSYNC").is_some()
                    {
                        wrapped(Path::new("mbsync"))
                    } else {
                        Command::new("mbsync")
                    };
                    let (wall, cpu) =
                        timed(mbsync.arg("-c").arg(dir.path().join("mbsyncrc")).arg("-a"));
                    theirs.push((wall, cpu));
                    eprintln!("rep {}: mbsync {wall:.2} s ({cpu:.2} s CPU)", rep + 1);
                }
                _ => {
                    let before = before.as_ref().expect("a third tool only with BEFORE");
                    let sync = || {
                        timed(
                            Command::new(before)
                                .arg("--config")
                                .arg(bdir.path().join("migrator.toml"))
                                .args(["sync", USER]),
                        )
                    };
                    let (wall, cpu) = sync();
                    befores.push((wall, cpu));
                    eprintln!("rep {}: before: sync {wall:.2} s ({cpu:.2} s CPU)", rep + 1);
                    let (wall, cpu) = sync();
                    befores_unchanged.push((wall, cpu));
                    eprintln!(
                        "rep {}: before: sync, nothing changed {wall:.3} s ({cpu:.3} s CPU)",
                        rep + 1
                    );
                }
            }
        }
        if before.is_some() {
            assert_eq!(
                counts(&target, BEFORE_TARGET),
                counts(&target, MBSYNC_TARGET)
            );
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
    let target = start_target(&ca, &one_target);
    let dir = tempfile::tempdir().expect("tempdir");
    write_migrator_config(
        dir.path(),
        &ca,
        &source,
        &target,
        &[(USER, MIGRATOR_TARGET)],
    );
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
    println!(
        "  coexist-migrator sync, nothing changed {:.3} s wall  {:.3} s CPU",
        median(&unchanged, 0),
        median(&unchanged, 1)
    );
    println!("ratio wall migrator/mbsync: {:.2}", ow / tw);
    println!("ratio CPU migrator/mbsync: {:.2}", oc / tc);
    if !befores.is_empty() {
        let (bw, bc) = (median(&befores, 0), median(&befores, 1));
        println!(
            "  before: coexist-migrator sync  {bw:7.2} s wall  {bc:6.2} s CPU  {:7.0} msg/s; nothing changed {:.3} s",
            messages as f64 / bw,
            median(&befores_unchanged, 0)
        );
        println!(
            "  before: ratio wall {:.2}, CPU {:.2} (vs mbsync)",
            bw / tw,
            bc / tc
        );
    }
    if mailboxes > 0 {
        parallel(
            &ca,
            &source,
            &migrator,
            before.as_deref(),
            work.path(),
            &many,
            Size { per_mailbox, reps },
        );
    }
    ExitCode::SUCCESS
}

/// The median of field `i` (0 = wall, 1 = CPU seconds) of repetitions' (wall, CPU).
fn median(v: &[(f64, f64)], i: usize) -> f64 {
    let mut x: Vec<f64> = v.iter().map(|p| if i == 0 { p.0 } else { p.1 }).collect();
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

/// The pairs as borrowed strings.
fn refs(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// How much the parallel comparison copies: messages per mailbox, repetitions.
struct Size {
    per_mailbox: usize,
    reps: usize,
}

/// The parallel comparison: `--parallel 4` against 4 mbsync processes.
fn parallel(
    ca: &TestCa,
    source: &Dovecot,
    migrator: &Path,
    before: Option<&Path>,
    work: &Path,
    users: &[String],
    size: Size,
) {
    let Size { per_mailbox, reps } = size;
    let t = Instant::now();
    let bytes: u64 = std::thread::scope(|s| {
        let seeds: Vec<_> = users
            .iter()
            .map(|u| s.spawn(move || seed(source, &work.join(u), u, per_mailbox)))
            .collect();
        seeds.into_iter().map(|h| h.join().expect("seed")).sum()
    });
    let total = users.len() * per_mailbox;
    eprintln!(
        "seeded {} mailboxes of {per_mailbox} messages ({:.1} MiB) in {:.1} s",
        users.len(),
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let ours_t: Vec<String> = (1..=users.len())
        .map(|i| format!("m{i}@tenant.cloud.example"))
        .collect();
    let theirs_t: Vec<String> = (1..=users.len())
        .map(|i| format!("b{i}@tenant.cloud.example"))
        .collect();
    let before_t: Vec<String> = (1..=users.len())
        .map(|i| format!("o{i}@tenant.cloud.example"))
        .collect();
    let accounts: Vec<(&str, &str)> = ours_t
        .iter()
        .chain(&theirs_t)
        .chain(&before_t)
        .map(|u| (u.as_str(), "pw"))
        .collect();
    let pairs = |t: &[String]| -> Vec<(String, String)> {
        users.iter().cloned().zip(t.iter().cloned()).collect()
    };
    let (ours_pairs, theirs_pairs) = (pairs(&ours_t), pairs(&theirs_t));
    let before_pairs = pairs(&before_t);
    let mut befores = Vec::new();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for rep in 0..reps {
        let target = start_target(ca, &accounts);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write_migrator_config(d, ca, source, &target, &refs(&ours_pairs));
        let groups: Vec<String> = theirs_pairs
            .chunks(users.len() / 4)
            .enumerate()
            .map(|(i, chunk)| {
                let name = format!("mbsyncrc{i}");
                write_mbsync_config(d, &name, source, &target, &refs(chunk));
                name
            })
            .collect();
        let bdir = tempfile::tempdir().expect("tempdir");
        if before.is_some() {
            write_migrator_config(bdir.path(), ca, source, &target, &refs(&before_pairs));
        }
        let tools = if before.is_some() { 3 } else { 2 };
        for k in 0..tools {
            match (k + rep) % tools {
                0 => {
                    let (wall, cpu) = timed(
                        wrapped(migrator)
                            .arg("--config")
                            .arg(d.join("migrator.toml"))
                            .arg("sync")
                            .args(users)
                            .args(["--parallel", "4"]),
                    );
                    ours.push((wall, cpu));
                    eprintln!(
                        "parallel rep {}: coexist-migrator sync --parallel 4 {wall:.2} s ({cpu:.2} s CPU)",
                        rep + 1
                    );
                }
                1 => {
                    let mut cmds: Vec<Command> = groups
                        .iter()
                        .map(|g| {
                            let mut c = Command::new("mbsync");
                            c.arg("-c").arg(d.join(g)).arg("-a");
                            c
                        })
                        .collect();
                    let (wall, cpu) = timed_all(&mut cmds);
                    theirs.push((wall, cpu));
                    eprintln!(
                        "parallel rep {}: 4 × mbsync {wall:.2} s ({cpu:.2} s CPU)",
                        rep + 1
                    );
                }
                _ => {
                    let before = before.expect("a third tool only with BEFORE");
                    let (wall, cpu) = timed(
                        Command::new(before)
                            .arg("--config")
                            .arg(bdir.path().join("migrator.toml"))
                            .arg("sync")
                            .args(users)
                            .args(["--parallel", "4"]),
                    );
                    befores.push((wall, cpu));
                    eprintln!(
                        "parallel rep {}: before: sync --parallel 4 {wall:.2} s ({cpu:.2} s CPU)",
                        rep + 1
                    );
                }
            }
        }
        if before.is_some() {
            for ((_, a), (_, b)) in before_pairs.iter().zip(&theirs_pairs) {
                assert_eq!(counts(&target, a), counts(&target, b));
            }
        }
        for ((_, a), (_, b)) in ours_pairs.iter().zip(&theirs_pairs) {
            let (a, b) = (counts(&target, a), counts(&target, b));
            assert_eq!(a, b, "both tools copied the same folders and counts");
            assert_eq!(a.iter().map(|(_, n)| n).sum::<usize>(), per_mailbox);
        }
    }
    let (ow, oc, tw, tc) = (
        median(&ours, 0),
        median(&ours, 1),
        median(&theirs, 0),
        median(&theirs, 1),
    );
    println!(
        "{} mailboxes × {per_mailbox} messages, {:.1} MiB, {reps} repetition(s), medians:",
        users.len(),
        bytes as f64 / 1048576.0
    );
    println!(
        "  coexist-migrator sync --parallel 4  {ow:7.2} s wall  {oc:6.2} s CPU  {:7.0} msg/s",
        total as f64 / ow
    );
    println!(
        "  4 mbsync processes                  {tw:7.2} s wall  {tc:6.2} s CPU  {:7.0} msg/s",
        total as f64 / tw
    );
    println!("ratio parallel msg/s migrator/mbsync: {:.2}", tw / ow);
    if !befores.is_empty() {
        let bw = median(&befores, 0);
        println!(
            "  before: sync --parallel 4  {bw:7.2} s wall  {:6.2} s CPU  {:7.0} msg/s; ratio msg/s vs mbsync {:.2}",
            median(&befores, 1),
            total as f64 / bw,
            tw / bw
        );
    }
    println!("ratio parallel CPU migrator/mbsync: {:.2}", oc / tc);
}

/// A command running `program`, under `MIGRATE_VS_MBSYNC_WRAP` when set
/// (split at spaces, e.g. `valgrind --tool=callgrind
/// --callgrind-out-file=/tmp/cg.%p` or `perf record -g -o /tmp/perf.data`):
/// how the migrator is profiled on the bench's own servers and mailbox.
fn wrapped(program: &Path) -> Command {
    match std::env::var("MIGRATE_VS_MBSYNC_WRAP") {
        Ok(wrap) if !wrap.trim().is_empty() => {
            let mut words = wrap.split_whitespace();
            let mut c = Command::new(words.next().expect("a word"));
            c.args(words).arg(program);
            c
        }
        _ => Command::new(program),
    }
}

fn start_target(ca: &TestCa, users: &[(&str, &str)]) -> Dovecot {
    Dovecot::start(
        DovecotSetup {
            name: "bench-target",
            users: users.to_vec(),
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

/// Runs every command at once, to completion; (wall seconds until the last
/// ends, CPU seconds of all of them).
fn timed_all(cmds: &mut [Command]) -> (f64, f64) {
    let before = children_cpu();
    let t = Instant::now();
    let children: Vec<_> = cmds
        .iter_mut()
        .map(|c| {
            c.stdout(std::process::Stdio::null())
                .spawn()
                .expect("start")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "a parallel run failed");
    }
    (t.elapsed().as_secs_f64(), children_cpu() - before)
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
fn seed(source: &Dovecot, dir: &Path, user: &str, n: usize) -> u64 {
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
            "From: Carol <carol@example.net>\r\nTo: {user}\r\nSubject: message {i}\r\nDate: Mon, 1 Jan 2018 10:00:00 +0000\r\nMessage-ID: <bench{i}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
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
    source.seed(user, &spec_file);
    total
}

/// `pairs`: (source user, target user).
fn write_migrator_config(
    d: &Path,
    ca: &TestCa,
    source: &Dovecot,
    target: &Dovecot,
    pairs: &[(&str, &str)],
) {
    std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(d.join("source.password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("target.password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("contacts"), "# address target [route]\n").unwrap();
    let mut users = String::from("address,display_name,target,quota,enabled\n");
    for (s, t) in pairs {
        users.push_str(&format!("{s},User,{t},,true\n"));
    }
    std::fs::write(d.join("users.csv"), users).unwrap();
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

/// One mbsync config `name` with a channel per (source user, target user),
/// which `mbsync -a` runs one after the other.
fn write_mbsync_config(
    d: &Path,
    name: &str,
    source: &Dovecot,
    target: &Dovecot,
    pairs: &[(&str, &str)],
) {
    let mut rc = String::new();
    for (i, (from, to)) in pairs.iter().enumerate() {
        let state: PathBuf = d.join(format!("mbsync-state-{name}-{i}"));
        std::fs::create_dir_all(&state).unwrap();
        rc.push_str(&format!(
            "IMAPAccount src{i}\nHost localhost\nPort {sp}\nUser {from}*{m}\nPass {p}\nSSLType IMAPS\nCertificateFile {d}/ca.pem\n\n\
             IMAPStore src{i}\nAccount src{i}\n\n\
             IMAPAccount dst{i}\nHost localhost\nPort {tp}\nUser {to}*{m}\nPass {p}\nSSLType IMAPS\nCertificateFile {d}/ca.pem\n\n\
             IMAPStore dst{i}\nAccount dst{i}\n\n\
             Channel copy{i}\nFar :src{i}:\nNear :dst{i}:\nPatterns *\nCreate Near\nSync Pull\nSyncState {s}/\n\n",
            sp = source.imaps_port,
            tp = target.imaps_port,
            m = MASTER.0,
            p = MASTER.1,
            d = d.display(),
            s = state.display(),
        ));
    }
    std::fs::write(d.join(name), rc).unwrap();
}
