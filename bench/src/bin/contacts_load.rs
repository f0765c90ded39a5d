//! `contacts-load [N...]`: how long the relay takes to load a contacts table of N
//! contacts (default 100 000 and 1 000 000) and how much memory the table holds.
//!
//! For each N it writes a synthetic table to a temporary file (one contact in ten
//! with a route column, one comment line per thousand), then measures
//! `relay::route::store::load` (read + UTF-8 check + parse + index) as wall time,
//! the CPU time it used, the resident-set growth it leaves behind (`VmRSS` after minus before: the
//! table), and the peak during the load (`VmHWM`, reset just before). It ends
//! with a lookup check and the lookup rate, so a fast but wrong table shows.

use relay::route::store;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let sizes: Vec<usize> = match std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => vec![100_000, 1_000_000],
        Err(e) => {
            eprintln!("usage: contacts-load [N...]: {e}");
            return ExitCode::from(2);
        }
    };
    for n in sizes {
        if let Err(e) = run(n) {
            eprintln!("contacts-load {n}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn run(n: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("contacts");
    generate(&path, n).map_err(|e| e.to_string())?;
    let file_bytes = fs::metadata(&path).map_err(|e| e.to_string())?.len();

    reset_peak();
    let before = status_kib("VmRSS:")?;
    let cpu_before = cpu_seconds()?;
    let start = Instant::now();
    let table = store::load(&path, &|r| r == "cloud-eu")
        .map_err(|errors| format!("{} errors, first: {}", errors.len(), errors[0]))?;
    let load = start.elapsed();
    let cpu = cpu_seconds()? - cpu_before;
    let after = status_kib("VmRSS:")?;
    let peak = status_kib("VmHWM:")?;

    if table.len() != n {
        return Err(format!("loaded {} contacts, expected {n}", table.len()));
    }
    let start = Instant::now();
    let mut hits = 0usize;
    for i in (0..n).step_by(3) {
        let address = format!("First.Last{i}+tag@Corp.Example");
        if let Some(m) = table.lookup(&address, "+") {
            hits += usize::from(m.rewritten == format!("first.last{i}+tag@tenant.cloud.example"));
        }
    }
    let lookups = n.div_ceil(3);
    let lookup = start.elapsed();
    if hits != lookups {
        return Err(format!("{hits} of {lookups} lookups right"));
    }
    println!(
        "contacts={n} file={:.1}MB load={:.3}s cpu={:.2}s rss_delta={:.1}MB rss_peak_during_load={:.1}MB (before {:.1}MB) lookups={lookups} in {:.3}s ({:.0} ns each, with sub-address)",
        file_bytes as f64 / 1e6,
        load.as_secs_f64(),
        cpu,
        (after.saturating_sub(before)) as f64 / 1024.0,
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
        lookup.as_secs_f64(),
        lookup.as_nanos() as f64 / lookups as f64,
    );
    drop(table);
    Ok(())
}

fn generate(path: &Path, n: usize) -> std::io::Result<()> {
    let mut w = BufWriter::new(fs::File::create(path)?);
    writeln!(
        w,
        "# address                  target                          [route]"
    )?;
    for i in 0..n {
        if i % 1000 == 0 {
            writeln!(w, "# batch {}", i / 1000)?;
        }
        let address = format!("first.last{i}@corp.example");
        let target = format!("first.last{i}@tenant.cloud.example");
        if i % 10 == 0 {
            writeln!(w, "{address:<26} {target:<31} cloud-eu")?;
        } else {
            writeln!(w, "{address:<26} {target}")?;
        }
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// A `kB` field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> Result<u64, String> {
    let status = fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status"))
}

/// User + system CPU time of this process so far (/proc/self/stat fields 14 and
/// 15, in USER_HZ = 1/100 s), so contention from other work on the machine shows
/// as wall time above CPU time rather than as a slower parser.
fn cpu_seconds() -> Result<f64, String> {
    let stat = fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / 100.0),
        _ => Err("cannot parse /proc/self/stat".into()),
    }
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs), so the peak
/// measured is the load's.
fn reset_peak() {
    if let Err(e) = fs::write("/proc/self/clear_refs", "5") {
        eprintln!("warning: cannot reset VmHWM ({e}); peak includes generation");
    }
}
