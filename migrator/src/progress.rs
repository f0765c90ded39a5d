//! What the operator sees while a run goes on (DESIGN.md, "Progress"): on a
//! terminal a bar per user (indicatif) with messages, bytes and the ETA;
//! otherwise (logs, CI) a line per user and minute.

use crate::report::human_bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a line is printed per user when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(60);

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

    /// Starts tracking one user with `total` messages and `total_bytes` to go.
    pub fn user(&self, address: &str, total: u64, total_bytes: u64) -> UserProgress {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:30} [{bar:30}] {pos}/{len} msgs, {msg}, ETA {eta} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(address.to_string());
            bar.set_message(format!("0 B of {}", human_bytes(total_bytes)));
            bar
        });
        UserProgress {
            address: address.to_string(),
            bar,
            done: Arc::new(AtomicU64::new(0)),
            bytes: Arc::new(AtomicU64::new(0)),
            total,
            total_bytes,
            started: Instant::now(),
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
    total_bytes: u64,
    started: Instant,
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
                bar.set_message(format!(
                    "{} of {}",
                    human_bytes(bytes),
                    human_bytes(self.total_bytes)
                ));
            }
            None => {
                let Ok(mut last) = self.last_line.lock() else {
                    return;
                };
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line(done, bytes));
                }
            }
        }
    }

    /// The periodic line: `alice@…: 1200 of 5000 messages, 40.0 MiB of
    /// 160.0 MiB, ETA 3m10s`. The ETA is from the rate so far, by bytes when
    /// they are known (a few big messages take longer than many small ones).
    fn line(&self, done: u64, bytes: u64) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let fraction = if self.total_bytes > 0 {
            bytes as f64 / self.total_bytes as f64
        } else if self.total > 0 {
            done as f64 / self.total as f64
        } else {
            1.0
        };
        let eta = if fraction > 0.0 {
            let left = (elapsed / fraction - elapsed).max(0.0) as u64;
            format!("{}m{:02}s", left / 60, left % 60)
        } else {
            "unknown".into()
        };
        format!(
            "{}: {done} of {} messages, {} of {}, ETA {eta}",
            self.address,
            self.total,
            human_bytes(bytes),
            human_bytes(self.total_bytes)
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_periodic_line_has_messages_bytes_and_eta() {
        let p = Progress { bars: None };
        let u = p.user("alice@corp.example", 10, 10 << 20);
        let line = u.line(5, 5 << 20);
        assert!(
            line.starts_with("alice@corp.example: 5 of 10 messages, 5.0 MiB of 10.0 MiB, ETA 0m"),
            "{line}"
        );
        assert!(u.line(0, 0).ends_with("ETA unknown"));
    }
}
