//! `directory-load`: the directory targets of issue #12, measured against a
//! real OpenLDAP slapd (syncprov) and the built relay with
//! `routing.source = "ldap"`:
//!
//! 1. initial load: USERS users (MIGRATED of them with a forwarding contact)
//!    loaded with slapadd; time from the relay's start to its first snapshot,
//!    and its RSS (VmRSS, VmHWM) after it;
//! 2. change latency: CHANGES users flipped one at a time with ldapmodify
//!    (contact added, altRecipient set); time from ldapmodify's return to the
//!    relay's `coexist_routing_contacts` showing it (p50, p99, max);
//! 3. a burst: BURST contacts re-pointed in one ldapmodify while a client sends
//!    messages through the relay; SMTP accept latency (MAIL to the 250 after
//!    DATA) p99 during the burst against before it, and the time until the
//!    whole burst is in the snapshot (the relay's cache holds the last change,
//!    timed by the snapshot's log line). Before it, a control: as many writes
//!    to entries the relay does not mirror, which shows what slapd's own work
//!    (CPU, fsync) costs the relay's accept latency on the same machine.
//!
//! Build the release binaries first (`cargo build --release --workspace
//! --bins`), then run `./target/release/directory-load` (defaults: 100000
//! users, 50000 migrated, 100 changes, 10000 in the burst). Small, to see it
//! work: `directory-load --users 2000 --migrated 1000 --changes 10 --burst 200`.
//! It times things: run it on a quiet machine. `--directory-nosync` runs
//! slapd with `dbnosync`: its writes then stop queueing on the disk the
//! relay's spool fsyncs to, which is how a directory on a machine of its own
//! behaves (the CPU is still shared). `--directory-cpu N` runs slapd and
//! ldapmodify on CPU N and this program, the relay and the sink on the
//! others (`taskset`): the directory's CPU work then no longer competes with
//! the relay's, as on a machine of its own. With both, the control's ratio
//! shows what is left of the directory's cost, and the burst's what the
//! relay's own mirroring adds.

use coexist_e2e::dovecot::TestCa;
use coexist_e2e::load::memory_kib;
use coexist_e2e::sink::{Script, ScriptSink};
use coexist_e2e::slapd::{self, Slapd, SlapdSetup};
use coexist_e2e::smtp::Client;
use coexist_e2e::{Relay, RelaySetup};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    users: usize,
    migrated: usize,
    changes: usize,
    burst: usize,
    /// slapd's database without fsync (`--directory-nosync`).
    directory_nosync: bool,
    /// The CPU slapd and its tools run on (`--directory-cpu`).
    directory_cpu: Option<usize>,
    /// Control-and-burst pairs (`--reps`); the medians are printed.
    reps: usize,
}

fn args() -> Args {
    let mut a = Args {
        users: 100_000,
        migrated: 50_000,
        changes: 100,
        burst: 10_000,
        directory_nosync: false,
        directory_cpu: None,
        reps: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--directory-nosync" {
            a.directory_nosync = true;
            continue;
        }
        let value = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--users" => a.users = value,
            "--migrated" => a.migrated = value,
            "--changes" => a.changes = value,
            "--burst" => a.burst = value,
            "--directory-cpu" => a.directory_cpu = Some(value),
            "--reps" => a.reps = value.max(1),
            other => {
                panic!("unknown flag {other}; use --users N --migrated N --changes N --burst N --reps N [--directory-nosync] [--directory-cpu N]")
            }
        }
    }
    assert!(
        a.migrated + a.changes <= a.users,
        "--migrated + --changes must not exceed --users"
    );
    assert!(
        a.burst <= a.migrated,
        "--burst must not exceed --migrated (it re-points existing contacts)"
    );
    a
}

fn decoy_dn(i: usize) -> String {
    format!("cn=decoy{i},{}", slapd::USERS)
}

fn address(i: usize) -> String {
    format!("user{i}@corp.example")
}

/// The directory: base entries, then each user (with an alias); the first
/// `migrated` with their contact.
fn bulk_ldif(path: &std::path::Path, a: &Args) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(slapd::base_ldif().as_bytes()).unwrap();
    // Entries the relay does not mirror (no user, no contact), for the
    // control burst.
    for i in 0..a.burst {
        f.write_all(
            format!(
                "dn: {}\nobjectClass: inetOrgPerson\ncn: decoy{i}\nsn: decoy{i}\ndescription: seeded\n\n",
                decoy_dn(i)
            )
            .as_bytes(),
        )
        .unwrap();
    }
    for i in 0..a.users {
        let mail = address(i);
        if i < a.migrated {
            f.write_all(
                slapd::contact_ldif(&mail, &format!("user{i}@tenant.cloud.example")).as_bytes(),
            )
            .unwrap();
            let alt = slapd::contact_dn(&mail);
            let extra = [
                ("proxyAddresses", format!("smtp:alias{i}@corp.example")),
                ("altRecipient", alt),
            ];
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.write_all(slapd::user_ldif(&format!("user{i}"), &mail, &extra).as_bytes())
                .unwrap();
        } else {
            let alias = format!("smtp:alias{i}@corp.example");
            f.write_all(
                slapd::user_ldif(&format!("user{i}"), &mail, &[("proxyAddresses", &alias)])
                    .as_bytes(),
            )
            .unwrap();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// One transaction: MAIL, RCPT, DATA, 250; its accept latency.
fn transaction(c: &mut Client, n: usize) -> Duration {
    let started = Instant::now();
    assert!(c.cmd("MAIL FROM:<load@example.net>").has(250, "2.1.0"));
    let reply = c.cmd(&format!("RCPT TO:<alias{n}@corp.example>"));
    assert_eq!(reply.code, 250, "{}", reply.text);
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(format!("Subject: load {n}\r\n\r\nx\r\n.\r\n").as_bytes());
    assert_eq!(c.read_reply().code, 250);
    started.elapsed()
}

/// Runs this process's threads (and so every thread and child started
/// after: the relay, the sink, the SMTP client) on every CPU but `cpu`.
fn keep_off_cpu(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let others: Vec<String> = (0..cpus)
        .filter(|c| *c != cpu)
        .map(|c| c.to_string())
        .collect();
    assert!(
        !others.is_empty(),
        "--directory-cpu {cpu}: no other CPU left for the relay"
    );
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &others.join(",")])
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset (util-linux)");
    assert!(status.success(), "taskset failed");
    eprintln!(
        "directory on CPU {cpu}; relay, sink and client on CPU {}",
        others.join(",")
    );
}

fn main() {
    let a = args();
    if let Some(cpu) = a.directory_cpu {
        keep_off_cpu(cpu);
    }
    let ca = TestCa::new();
    let work = tempfile::tempdir().unwrap();
    let ldif = work.path().join("bulk.ldif");
    let t = Instant::now();
    bulk_ldif(&ldif, &a);
    let dir = Slapd::start(
        SlapdSetup {
            name: "bench".into(),
            bulk: Some(ldif),
            no_sync: a.directory_nosync,
            cpus: a.directory_cpu.map(|c| c.to_string()),
            ..Default::default()
        },
        &ca,
    );
    eprintln!(
        "directory: {} users, {} migrated, slapadd + start {:.1}s",
        a.users,
        a.migrated,
        t.elapsed().as_secs_f64()
    );

    let sink = ScriptSink::start(Script::default());
    let password = work.path().join("ldap.password");
    std::fs::write(&password, format!("{}\n", slapd::SERVICE.1)).unwrap();
    let section = slapd::relay_ldap_section(&[dir.url()], &dir.ca_file, &password)
        .replace("timeout = \"5s\"", "timeout = \"60s\"");
    let started = Instant::now();
    let relay: Relay = RelaySetup::default()
        .section(
            "route.onprem",
            &format!("smarthost = [\"{}\"]\ntls = \"none\"", sink.hostport()),
        )
        .section(
            "route.cloud",
            &format!("smarthost = [\"{}\"]\ntls = \"none\"", sink.hostport()),
        )
        .section("routing", "source = \"ldap\"\ncontacts = \"contacts\"")
        .section("ldap", &section)
        .no_contacts()
        .start();
    relay
        .log
        .wait_for("directory snapshot loaded", 0, Duration::from_secs(600))
        .expect("first snapshot");
    let load = started.elapsed();
    let (rss, hwm) = memory_kib(relay.pid());
    let keys = relay.metric("coexist_routing_contacts");
    println!(
        "initial load: users={} migrated={} routing_keys={keys} time={:.2}s rss={:.1}MB peak_rss={:.1}MB",
        a.users,
        a.migrated,
        load.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    // 2. One change at a time.
    let mut latencies = Vec::with_capacity(a.changes);
    for k in 0..a.changes {
        let i = a.migrated + k;
        let mail = address(i);
        let before = relay.metric("coexist_routing_contacts");
        let change = format!(
            "{}dn: {}\nchangetype: modify\nreplace: altRecipient\naltRecipient: {}\n",
            slapd::contact_ldif(&mail, &format!("user{i}@tenant.cloud.example")).replace(
                "objectClass: contact",
                "changetype: add\nobjectClass: contact"
            ),
            slapd::user_dn(&format!("user{i}")),
            slapd::contact_dn(&mail)
        );
        dir.modify(&change);
        let written = Instant::now();
        while relay.metric("coexist_routing_contacts") < before + 2.0 {
            assert!(
                written.elapsed() < Duration::from_secs(30),
                "change {k} never arrived"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(written.elapsed());
    }
    latencies.sort();
    println!(
        "change latency: changes={} p50={} p99={} max={} (ldapmodify returned -> routing_contacts; includes the 2 ms poll)",
        a.changes,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );

    let (rss, _) = memory_kib(relay.pid());
    println!(
        "after the changes: rss={:.1}MB (the allocator has returned what the load freed)",
        rss as f64 / 1024.0
    );

    // 3. Bursts while mail flows: first writes the relay does not see (the
    // decoys are no user or contact), as a control for what slapd's own work
    // costs the relay's accept latency on a shared machine; then the burst.
    // Repeated in pairs: one burst's p99 is a few dozen samples.
    let mut ratios = (Vec::new(), Vec::new());
    for rep in 0..a.reps {
        let mut decoys = String::with_capacity(a.burst * 100);
        for i in 0..a.burst {
            decoys.push_str(&format!(
                "dn: {}\nchangetype: modify\nreplace: description\ndescription: burst {rep} {i}\n\n",
                decoy_dn(i)
            ));
        }
        ratios.0.push(burst(&relay, &dir, "control", &decoys, None));
        let mut change = String::with_capacity(a.burst * 160);
        for i in 0..a.burst {
            change.push_str(&format!(
                "dn: {}\nchangetype: modify\nreplace: targetAddress\ntargetAddress: SMTP:user{i}@burst{rep}.cloud.example\n\n",
                slapd::contact_dn(&address(i))
            ));
        }
        let last = format!("user{}@burst{rep}.cloud.example", a.burst - 1);
        ratios
            .1
            .push(burst(&relay, &dir, "burst", &change, Some(&last)));
    }
    println!(
        "median of {} pairs: control ratio={:.2} burst ratio={:.2}",
        a.reps,
        median(&mut ratios.0),
        median(&mut ratios.1)
    );
    let (rss, hwm) = memory_kib(relay.pid());
    println!(
        "at the end: rss={:.1}MB peak_rss={:.1}MB queued={} (mail accepted in the bursts, not yet delivered to the sink)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        relay.metric("coexist_queue_messages")
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One ldapmodify of `ldif` while a client sends mail; with `last`, the
/// burst ends when the relay's snapshot holds that address (else when
/// ldapmodify returns). Prints accept p99 before and during; returns their
/// ratio.
fn burst(relay: &Relay, dir: &Slapd, label: &str, ldif: &str, last: Option<&str>) -> f64 {
    let changes = ldif.matches("changetype: modify").count();
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let sender = {
        let (stop, samples, addr) = (Arc::clone(&stop), Arc::clone(&samples), relay.addr("smtp"));
        std::thread::spawn(move || {
            let (mut c, _) = Client::connect(addr);
            c.ehlo();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let took = transaction(&mut c, n % 1000);
                samples.lock().unwrap().push((Instant::now(), took));
                n += 1;
            }
            c.cmd("QUIT");
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    // When each snapshot is swapped in, seen as its log line appears (the
    // cache file lags by up to a second: the writer's pace).
    let snapshots: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (log, snapshots, watching) = (
            Arc::clone(&relay.log),
            Arc::clone(&snapshots),
            Arc::clone(&watching),
        );
        let mut from = log.len();
        std::thread::spawn(move || {
            while watching.load(Ordering::Relaxed) {
                let seen = log.wait_for(
                    "directory snapshot loaded",
                    from,
                    Duration::from_millis(100),
                );
                if let Some(i) = seen {
                    snapshots.lock().unwrap().push(Instant::now());
                    from = i + 1;
                }
            }
        })
    };
    let burst_start = Instant::now();
    dir.modify(ldif);
    let written = Instant::now();
    let burst_end = match last {
        None => written,
        Some(last) => {
            let cache = relay.dir.path().join("contacts");
            while !std::fs::read_to_string(&cache)
                .unwrap_or_default()
                .contains(last)
            {
                assert!(
                    written.elapsed() < Duration::from_secs(120),
                    "the burst never arrived"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            // No change follows the burst, so the last snapshot swapped in is
            // the one that holds its last change.
            *snapshots
                .lock()
                .unwrap()
                .last()
                .expect("a snapshot was logged")
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    watching.store(false, Ordering::Relaxed);
    sender.join().unwrap();
    watcher.join().unwrap();
    let samples = samples.lock().unwrap();
    let mut before: Vec<Duration> = samples
        .iter()
        .filter(|(t, _)| *t < burst_start)
        .map(|(_, d)| *d)
        .collect();
    let mut during: Vec<Duration> = samples
        .iter()
        .filter(|(t, _)| *t >= burst_start && *t <= burst_end)
        .map(|(_, d)| *d)
        .collect();
    before.sort();
    during.sort();
    let ratio =
        percentile(&during, 0.99).as_secs_f64() / percentile(&before, 0.99).as_secs_f64().max(1e-9);
    println!(
        "{label}: changes={changes} applied_in={:.2}s (ldapmodify {:.2}s) snapshots={} accept p99 before={} ({} msgs) during={} ({} msgs) ratio={ratio:.2}",
        (burst_end - burst_start).as_secs_f64(),
        (written - burst_start).as_secs_f64(),
        snapshots.lock().unwrap().len(),
        ms(percentile(&before, 0.99)),
        before.len(),
        ms(percentile(&during, 0.99)),
        during.len(),
    );
    ratio
}
