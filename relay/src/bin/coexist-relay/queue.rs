//! `coexist-relay queue ...`: list and show read the spool directly (no lock, so they
//! work beside a running relay); flush and delete go through the running relay's admin
//! socket, or act on the spool themselves when no relay runs.

use crate::commands::{load_all, load_config};
use crate::EXIT_CONFIG;
use clap::Subcommand;
use relay::envelope::{Envelope, RecipientStatus};
use relay::queue::admin;
use relay::queue::spool::Spool;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// `coexist-relay queue …`.
#[derive(Subcommand)]
pub(crate) enum QueueCommand {
    /// Every queued message: id, age, size, sender, recipients with route and status.
    List {
        /// Print JSON (one array of envelopes).
        #[arg(long)]
        json: bool,
    },
    /// One message: its envelope (JSON) and its headers.
    Show {
        /// Queue id.
        id: String,
    },
    /// Retry every pending recipient now.
    Flush,
    /// Remove a message; its sender gets a DSN unless --silent.
    Delete {
        /// No DSN to the sender.
        #[arg(long)]
        silent: bool,
        /// Queue id.
        id: String,
    },
}

pub(crate) fn run(config_path: &Path, command: QueueCommand) -> ExitCode {
    let Some(config) = load_config(config_path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let spool_dir = config.server.spool_dir.clone();
    match command {
        QueueCommand::List { json } => list(&spool_dir, json),
        QueueCommand::Show { id } => show(&spool_dir, &id),
        QueueCommand::Flush => match admin::request(&spool_dir, "FLUSH") {
            Some(answer) => report(&answer, |rest| {
                format!("{rest} message(s) scheduled for delivery now")
            }),
            None => offline_flush(&spool_dir),
        },
        QueueCommand::Delete { silent, id } => {
            let command = format!("DELETE {id}{}", if silent { " SILENT" } else { "" });
            match admin::request(&spool_dir, &command) {
                Some(answer) => report(&answer, |_| format!("{id} deleted")),
                None => offline_delete(config_path, &id, silent),
            }
        }
    }
}

fn report(answer: &str, ok: impl Fn(&str) -> String) -> ExitCode {
    match answer.strip_prefix("OK") {
        Some(rest) => {
            println!("{}", ok(rest.trim()));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "coexist-relay: {}",
                answer.trim_start_matches("ERR ").trim()
            );
            ExitCode::FAILURE
        }
    }
}

fn list(spool_dir: &Path, json: bool) -> ExitCode {
    let envelopes = match Spool::scan(spool_dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&envelopes).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let now = chrono::Utc::now().timestamp();
    for e in &envelopes {
        let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
        println!(
            "{}  age {}  {} bytes  from {}",
            e.id,
            human_age(now - e.received_at),
            e.size,
            sender
        );
        for r in &e.recipients {
            let status = match &r.status {
                RecipientStatus::Pending if r.next_attempt > now => {
                    format!("deferred, next try in {}", human_age(r.next_attempt - now))
                }
                RecipientStatus::Pending => "pending, due now".to_string(),
                RecipientStatus::Delivered { .. } => "delivered".to_string(),
                RecipientStatus::Bounced { .. } => "bounced".to_string(),
            };
            let rewritten = if r.rewritten != r.address {
                format!(" -> {}", r.rewritten)
            } else {
                String::new()
            };
            println!(
                "    {}{}  route {}  {}",
                r.address, rewritten, r.route, status
            );
            if let (RecipientStatus::Pending, Some(err)) = (&r.status, &r.last_error) {
                println!("        last error: {err}");
            }
        }
    }
    println!("{} message(s) in the queue", envelopes.len());
    ExitCode::SUCCESS
}

fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{}s", secs / 60, secs % 60),
        3600..=86399 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86400, secs % 86400 / 3600),
    }
}

fn show(spool_dir: &Path, id: &str) -> ExitCode {
    match Spool::show(spool_dir, id) {
        Ok((envelope, message)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&envelope).unwrap_or_default()
            );
            println!();
            let end = message
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(message.len(), |p| p + 2);
            print!("{}", String::from_utf8_lossy(&message[..end]));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn offline_flush(spool_dir: &Path) -> ExitCode {
    let (spool, envelopes) = match Spool::open(spool_dir) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut n = 0;
    for mut e in envelopes {
        for r in &mut e.recipients {
            if r.status == RecipientStatus::Pending {
                r.next_attempt = 0;
            }
        }
        if let Err(err) = spool.update(&e) {
            eprintln!("coexist-relay: {}: {err}", e.id);
            return ExitCode::FAILURE;
        }
        n += 1;
    }
    println!("no relay is running: {n} message(s) marked due; they are tried at its next start");
    ExitCode::SUCCESS
}

fn offline_delete(config_path: &Path, id: &str, silent: bool) -> ExitCode {
    let Some((config, contacts)) = load_all(config_path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let (spool, envelopes) = match Spool::open(&config.server.spool_dir) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(envelope): Option<Envelope> = envelopes.into_iter().find(|e| e.id == id) else {
        eprintln!("coexist-relay: no message {id} in the queue");
        return ExitCode::FAILURE;
    };
    let router = Arc::new(relay::route::router::Router::new(
        &config.relay,
        &config.routing,
        contacts,
    ));
    let deliverer = match relay::deliver::Deliverer::new(&config) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let services = relay::queue::attempt::Services {
        config: Arc::new(config),
        spool,
        deliverer,
        router,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bounce = runtime.block_on(relay::queue::manager::delete_message(
        &services, &envelope, silent,
    ));
    match bounce {
        Some(b) => println!("{id} deleted; DSN {} queued for {}", b.id, envelope.sender),
        None => println!("{id} deleted"),
    }
    ExitCode::SUCCESS
}
