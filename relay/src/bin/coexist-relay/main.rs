//! `coexist-relay`: command line, signals, exit codes. The library does the work.

mod commands;
mod queue;
mod sink;

use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

// See relay/Cargo.toml's `jemalloc` feature for why (measured in bench/RESULTS.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's pages freed but kept for reuse, returned to the OS now (see
/// `relay::allocator`: after a full directory load).
#[cfg(feature = "jemalloc")]
fn purge_jemalloc() {
    // "arena.<i>.purge" with i = MALLCTL_ARENAS_ALL (4096): every arena.
    // SAFETY: the name is NUL-terminated, and this control neither reads nor
    // writes a value, so every pointer is null and the length 0.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!("jemalloc purge failed: error {rc}");
    }
}

/// Exit code for usage and configuration errors (DESIGN.md: 0 ok, 1 runtime, 2 config).
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "coexist-relay",
    version,
    about = "SMTP relay for mail-migration coexistence"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "config/relay.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay daemon (logs to stderr; SIGHUP reloads the contacts table and the certificate).
    Run,
    /// Validate the configuration and the contacts table (or the directory's cached snapshot).
    Check {
        /// Also connect to the directory: bind, search, count the entries.
        #[arg(long)]
        online: bool,
    },
    /// Show where each address would be routed, and why.
    Route {
        /// Print JSON (one array of objects).
        #[arg(long)]
        json: bool,
        /// Decide as for a client at this address (default: a trusted client).
        #[arg(long)]
        client: Option<IpAddr>,
        /// Addresses to route.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Operational checks (certificate, next hops, DNS, spool): ok / warn / fail with the fix.
    Doctor {
        /// Print JSON (an object with a `checks` array).
        #[arg(long)]
        json: bool,
    },
    /// Inspect and manage the queue (works with or without a running relay).
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// A demonstration next hop: listens where the loopback smarthost routes point
    /// and prints one line per message received (keeps nothing).
    Sink,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { online } => commands::check(&cli.config, online),
        Command::Route {
            json,
            client,
            addresses,
        } => commands::route(&cli.config, json, client, &addresses),
        Command::Doctor { json } => commands::doctor(&cli.config, json),
        Command::Queue { command } => queue::run(&cli.config, command),
        Command::Sink => sink::run(&cli.config),
        Command::Run => {
            init_logging();
            #[cfg(feature = "jemalloc")]
            relay::allocator::set_release(purge_jemalloc);
            match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime.block_on(run(cli.config)),
                Err(e) => {
                    eprintln!("coexist-relay: cannot start the runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// `run`: signals first, then the daemon until SIGTERM/SIGINT.
async fn run(path: PathBuf) -> ExitCode {
    // First of all: until a handler is installed, SIGHUP's default action kills the
    // process. A reload sent while the relay starts (loading a large table takes a
    // second; a migrator may flip a user meanwhile) must not take it down.
    let (control, signals) = match signals() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("coexist-relay: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(config) = commands::load_config(&path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let result = relay::run(config, control).await;
    signals.abort();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(relay::RunError::Routing(errors)) => {
            for e in errors {
                eprintln!("{e}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("coexist-relay: {e}");
            // An unusable certificate or key is a configuration error (exit 2).
            ExitCode::from(if e.is_config() { EXIT_CONFIG } else { 1 })
        }
    }
}

/// Installs the handlers and a task that turns SIGHUP into a reload request
/// and SIGTERM/SIGINT into the shutdown.
fn signals() -> std::io::Result<(relay::Control, tokio::task::JoinHandle<()>)> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (reload, reloads) = tokio::sync::mpsc::unbounded_channel();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hangup.recv() => { let _ = reload.send(()); }
                _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            }
        }
        stop.cancel();
    });
    let control = relay::Control {
        shutdown,
        reload: reloads,
    };
    Ok((control, task))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// What a subscriber built like [`super::init_logging`]'s writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A client's text in a log message (the delivery lines are messages)
    /// cannot drive the terminal that reads the log: ESC and C1 controls are
    /// escaped, anything else is written as is (patches/tracing-subscriber
    /// writes the clean text before the first escape in one piece).
    #[test]
    fn control_characters_in_logged_text_are_escaped() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let sender = "evil\u{1b}[2J@x.example \u{85}next £ é\u{7f}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("queued from=<{sender}>");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let escaped = r"evil\x1b[2J@x.example \u{85}next £ é\x7f";
        assert!(text.contains(escaped), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{85}'),
            "{text}"
        );
    }
}
