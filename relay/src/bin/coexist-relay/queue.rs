//! `coexist-relay queue …`, as useful as postqueue/postsuper: `list` and `show`
//! read the spool directly (no lock, so they work beside a running relay); the
//! actions go through the running relay's admin socket, or act on the spool
//! themselves when no relay runs. `--json` everywhere.

use crate::commands::{load_all, load_config};
use crate::EXIT_CONFIG;
use clap::{Args, Subcommand};
use relay::envelope::{Envelope, RecipientStatus};
use relay::queue::admin::{self, Answer, Command};
use relay::queue::select::{self, Filter, Status, BUCKETS_MINUTES};
use relay::queue::spool::Spool;
use std::path::Path;
use std::process::ExitCode;

/// `coexist-relay queue …`.
#[derive(Subcommand)]
pub(crate) enum QueueCommand {
    /// Queued messages (id, age, size, sender, recipients with route and status),
    /// then their shape by route and age.
    List {
        /// Print JSON (an array of envelopes; with --summary, of route rows).
        #[arg(long)]
        json: bool,
        /// Only the shape: pending recipients per route and message age (qshape).
        #[arg(long)]
        summary: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// One message: its envelope (JSON) and its headers.
    Show {
        /// Queue id.
        id: String,
    },
    /// Retry every pending recipient now (held messages stay held).
    Flush {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Attempt these messages now, deciding their routes again.
    Requeue {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Every queued message.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Queue ids.
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
    },
    /// Keep these messages queued without attempting them, until released
    /// (kept across restarts).
    Hold {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Queue ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Release held messages: they are attempted now.
    Release {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Queue ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove messages, by id or by filter; their senders get a DSN unless --silent.
    Delete {
        /// No DSN to the senders.
        #[arg(long)]
        silent: bool,
        /// Needed when a filter selects more than one message.
        #[arg(long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Queue ids (or give a filter instead).
        ids: Vec<String>,
    },
}

/// Which messages (Postfix's qselect): all given must match.
#[derive(Args, Default)]
pub(crate) struct FilterArgs {
    /// A pending recipient goes by this route.
    #[arg(long)]
    route: Option<String>,
    /// A recipient is this address (as received or rewritten), or in `@domain`.
    #[arg(long)]
    to: Option<String>,
    /// The sender is this address, or in `@domain`; `<>` for the null sender.
    #[arg(long)]
    from: Option<String>,
    /// Received at least this long ago (e.g. 30m, 4h, 2d).
    #[arg(long, value_parser = parse_age)]
    older_than: Option<std::time::Duration>,
    /// held, deferred (tried at least once) or new (not tried yet).
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
}

fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    relay::config::units::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text).ok_or_else(|| "expected held, deferred or new".to_string())
}

impl FilterArgs {
    fn filter(self) -> Filter {
        Filter {
            route: self.route,
            to: self.to,
            from: self.from,
            older_than: self.older_than,
            status: self.status,
        }
    }
}

pub(crate) fn run(config_path: &Path, command: QueueCommand) -> ExitCode {
    let Some(config) = load_config(config_path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let spool_dir = config.server.spool_dir.clone();
    let (command, json) = match command {
        QueueCommand::List {
            json,
            summary,
            filter,
        } => return list(&spool_dir, json, summary, &filter.filter()),
        QueueCommand::Show { id } => return show(&spool_dir, &id),
        QueueCommand::Flush { json } => (Command::Requeue { ids: None }, json),
        QueueCommand::Requeue { json, all, ids } => {
            let ids = (!all).then_some(ids);
            (Command::Requeue { ids }, json)
        }
        QueueCommand::Hold { json, ids } => (Command::Hold { ids }, json),
        QueueCommand::Release { json, ids } => (Command::Release { ids }, json),
        QueueCommand::Delete {
            silent,
            yes,
            json,
            filter,
            ids,
        } => match delete_ids(&spool_dir, ids, filter.filter(), yes) {
            Ok(ids) if ids.is_empty() => return print_answer(&Answer::default(), "deleted", json),
            Ok(ids) => (Command::Delete { ids, silent }, json),
            Err(code) => return code,
        },
    };
    let answer = match admin::request(&spool_dir, &command) {
        Some(answer) => answer,
        None => match offline(config_path, &command) {
            Some(answer) => answer,
            None => return ExitCode::FAILURE,
        },
    };
    let verb = match command {
        Command::Requeue { .. } => "scheduled for delivery now",
        Command::Hold { .. } => "held",
        Command::Release { .. } => "released",
        Command::Delete { .. } => "deleted",
    };
    print_answer(&answer, verb, json)
}

/// The ids a delete acts on: those given, or what the filter selects (more
/// than one only with `--yes`). `Err` is the exit code of a refusal.
fn delete_ids(
    spool_dir: &Path,
    ids: Vec<String>,
    filter: Filter,
    yes: bool,
) -> Result<Vec<String>, ExitCode> {
    match (ids.is_empty(), filter.is_empty()) {
        (false, true) => return Ok(ids),
        (false, false) => {
            eprintln!("coexist-relay: give queue ids or a filter, not both");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
        (true, true) => {
            eprintln!("coexist-relay: give queue ids, or a filter (--route, --to, --from, --older-than, --status)");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
        (true, false) => {}
    }
    let now = chrono::Utc::now().timestamp();
    let chosen: Vec<String> = scan(spool_dir)
        .ok_or(ExitCode::FAILURE)?
        .into_iter()
        .filter(|e| filter.matches(e, now))
        .map(|e| e.id)
        .collect();
    if chosen.len() > 1 && !yes {
        eprintln!(
            "coexist-relay: {} messages match; add --yes to delete them all",
            chosen.len()
        );
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    Ok(chosen)
}

/// No relay runs: the command on the spool itself.
fn offline(config_path: &Path, command: &Command) -> Option<Answer> {
    let (config, contacts) = load_all(config_path)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| eprintln!("coexist-relay: {e}"))
        .ok()?;
    match runtime.block_on(relay::queue::offline::apply(&config, contacts, command)) {
        Ok(answer) => {
            if !answer.acted.is_empty() && matches!(command, Command::Requeue { .. }) {
                eprintln!("no relay is running: the messages are tried at its next start");
            }
            Some(answer)
        }
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            None
        }
    }
}

/// `N message(s) <verb>`, the ids that were not there; exit 1 when any was not.
fn print_answer(answer: &Answer, verb: &str, json: bool) -> ExitCode {
    if let Some(error) = &answer.error {
        eprintln!("coexist-relay: {error}");
        return ExitCode::FAILURE;
    }
    if json {
        println!("{}", serde_json::to_string(answer).unwrap_or_default());
    } else {
        println!("{} message(s) {verb}", answer.acted.len());
        for id in &answer.held {
            println!("{id}: held; release it first");
        }
    }
    for id in &answer.missing {
        eprintln!("coexist-relay: no message {id} in the queue");
    }
    if answer.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn scan(spool_dir: &Path) -> Option<Vec<Envelope>> {
    Spool::scan(spool_dir)
        .map_err(|e| eprintln!("coexist-relay: {e}"))
        .ok()
}

fn list(spool_dir: &Path, json: bool, summary: bool, filter: &Filter) -> ExitCode {
    let Some(envelopes) = scan(spool_dir) else {
        return ExitCode::FAILURE;
    };
    let now = chrono::Utc::now().timestamp();
    let envelopes: Vec<Envelope> = envelopes
        .into_iter()
        .filter(|e| filter.matches(e, now))
        .collect();
    let shape = select::shape(&envelopes, now);
    match (json, summary) {
        (true, true) => println!(
            "{}",
            serde_json::to_string_pretty(&shape).unwrap_or_default()
        ),
        (true, false) => println!(
            "{}",
            serde_json::to_string_pretty(&envelopes).unwrap_or_default()
        ),
        (false, summary) => {
            if !summary {
                for e in &envelopes {
                    print_message(e, now);
                }
                println!("{} message(s) in the queue", envelopes.len());
            }
            if !shape.is_empty() {
                print_shape(&shape);
            }
        }
    }
    ExitCode::SUCCESS
}

fn print_message(e: &Envelope, now: i64) {
    let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
    let held = if e.held { "  HELD" } else { "" };
    println!(
        "{}  age {}  {} bytes  from {}{held}",
        e.id,
        human_age(now - e.received_at),
        e.size,
        sender
    );
    for r in &e.recipients {
        let status = match &r.status {
            RecipientStatus::Pending if e.held => "held".to_string(),
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

/// qshape's table: pending recipients per route by message age in minutes.
fn print_shape(rows: &[select::RouteShape]) {
    let mut header = format!("{:>20} {:>6}", "route (age, min)", "T");
    for limit in BUCKETS_MINUTES {
        header.push_str(&format!(" {:>5}", format!("<{limit}")));
    }
    header.push_str(&format!(" {:>6}", format!("{}+", BUCKETS_MINUTES[8])));
    println!("{header}");
    for row in rows {
        let mut line = format!("{:>20} {:>6}", row.route, row.total);
        for n in &row.by_age {
            line.push_str(&format!(" {n:>5}"));
        }
        println!("{line}");
    }
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
            match message.header_section() {
                Ok(headers) => print!("{}", String::from_utf8_lossy(&headers)),
                Err(e) => eprintln!("coexist-relay: cannot read the message: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coexist-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
