//! What the operator sees while a run goes on: a progress bar per user on a
//! terminal (indicatif), plain periodic lines otherwise (logs, CI).

use crate::report::human_bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
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
