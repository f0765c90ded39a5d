//! What the operator sees: a progress bar per user on a terminal (indicatif),
//! plain periodic lines otherwise (logs, CI), and the final per-user report,
//! printed and optionally written as JSON (`--report FILE.json`).

use crate::copy::Warning;
use crate::state::Counters;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// Progress output shared by all users of a run.
#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn new() -> Progress {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { bars }
    }

    /// Starts tracking one user with `total` messages to go.
    pub fn user(&self, address: &str, total: u64) -> UserProgress {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:30} [{bar:30}] {pos}/{len} msgs {msg} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(address.to_string());
            bar
        });
        UserProgress {
            address: address.to_string(),
            bar,
            done: Arc::new(AtomicU64::new(0)),
            bytes: Arc::new(AtomicU64::new(0)),
            total,
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// Prints a line without breaking the bars.
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// One user's progress.
pub struct UserProgress {
    address: String,
    bar: Option<ProgressBar>,
    done: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    total: u64,
    last_line: Mutex<Instant>,
}

impl UserProgress {
    /// `messages` more handled, `bytes` of them copied.
    pub fn inc(&self, messages: u64, bytes: u64) {
        let done = self.done.fetch_add(messages, Ordering::Relaxed) + messages;
        let bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(human_bytes(bytes));
            }
            None => {
                let Ok(mut last) = self.last_line.lock() else {
                    return;
                };
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!(
                        "{}: {done} of {} messages, {}",
                        self.address,
                        self.total,
                        human_bytes(bytes)
                    );
                }
            }
        }
    }

    /// Messages handled so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// The outcome for one user.
#[derive(Debug, Clone, Serialize)]
pub struct UserReport {
    /// The user's address.
    pub address: String,
    /// `ok`, `failed`, `dry-run`, `forwarding-only`.
    pub result: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The contact target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Source bytes and messages to copy (measured before the copy).
    pub planned_messages: u64,
    /// Bytes to copy.
    pub planned_bytes: u64,
    /// Destination quota free before the copy, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_free: Option<u64>,
    /// What this run did.
    pub counters: Counters,
    /// Messages with problems.
    pub warnings: Vec<Warning>,
}

impl UserReport {
    /// Whether the user failed.
    pub fn failed(&self) -> bool {
        self.result == "failed"
    }
}

/// Prints the final report.
pub fn print_final(reports: &[UserReport]) {
    println!("\nresult:");
    for r in reports {
        let c = &r.counters;
        println!(
            "  {:30} {:15} folders {}, copied {} ({}), skipped {}, failed {}, warnings {}, throttled {}",
            r.address,
            r.result,
            c.folders,
            c.copied,
            human_bytes(c.bytes),
            c.skipped,
            c.failed,
            r.warnings.len(),
            c.throttled
        );
        if let Some(e) = &r.error {
            println!("      error: {e}");
        }
        for w in &r.warnings {
            println!("      warning: {} UID {}: {}", w.folder, w.uid, w.reason);
        }
    }
}

/// Writes the report as JSON (`{"users": [...]}`).
pub fn write_json(path: &Path, reports: &[UserReport]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "users": reports }))
        .map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(20 << 20), "20.0 MiB");
    }

    #[test]
    fn json_report_has_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let r = UserReport {
            address: "a@b".into(),
            result: "ok".into(),
            error: None,
            target: Some("a@t".into()),
            planned_messages: 2,
            planned_bytes: 10,
            quota_free: None,
            counters: Counters::default(),
            warnings: vec![],
        };
        write_json(&path, &[r]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["users"][0]["address"], "a@b");
        assert_eq!(v["users"][0]["planned_messages"], 2);
    }
}
