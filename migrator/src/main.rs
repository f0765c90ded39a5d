//! `coexist-migrator`: the command line. The library does the work.
//!
//! Exit codes (DESIGN.md): 0 success, 1 some user or message failed, 2 usage or
//! configuration error.

use clap::{Parser, Subcommand};
use migrator::config::{Config, Content};
use migrator::directory::Directory;
use migrator::run::{self, MigrateOptions};
use migrator::state::StateDir;
use migrator::{flip, plan, print, report};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "coexist-migrator",
    version,
    about = "Flip users to the cloud and copy their mailboxes over IMAP"
)]
struct Cli {
    /// The configuration file.
    #[arg(long, default_value = "config/migrator.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct CopyArgs {
    /// Only write the forwarding contacts; copy nothing.
    #[arg(long)]
    forwarding_only: bool,
    /// What to copy: mail, calendar, contacts (comma-separated; calendars and
    /// contacts over CalDAV/CardDAV when both sides have a dav_url).
    #[arg(long, value_delimiter = ',')]
    content: Vec<String>,
    /// Only messages with INTERNALDATE on or after this day, and events with an
    /// occurrence on or after it (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    since: Option<chrono::NaiveDate>,
    /// Only messages with INTERNALDATE before this day, and events with an
    /// occurrence before it (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    before: Option<chrono::NaiveDate>,
    /// Allow plaintext IMAP and unverified certificates.
    #[arg(long)]
    allow_insecure: bool,
    /// Users migrated at once (default: migration.parallel).
    #[arg(long)]
    parallel: Option<usize>,
    /// Show what would happen; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also write the final report as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Enabled users with no contact yet, with sizes and destination quota.
    Ready {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Allow plaintext IMAP and unverified certificates.
        #[arg(long)]
        allow_insecure: bool,
    },
    /// Flip users to the cloud and copy their mailboxes.
    Migrate {
        /// Users to migrate.
        #[arg(required_unless_present = "all_ready", conflicts_with = "all_ready")]
        users: Vec<String>,
        /// Every ready user.
        #[arg(long)]
        all_ready: bool,
        #[command(flatten)]
        copy: CopyArgs,
    },
    /// Incremental copy only.
    Sync {
        /// Users to sync.
        #[arg(required = true)]
        users: Vec<String>,
        #[command(flatten)]
        copy: CopyArgs,
    },
    /// Where each user is.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// One user only.
        user: Option<String>,
    },
    /// Pre-flight: directory, each side's TLS and login, capabilities, token
    /// endpoint, size against free quota. Writes nothing.
    Check {
        /// JSON output (`{"checks": [...]}`).
        #[arg(long)]
        json: bool,
        /// Allow plaintext IMAP and unverified certificates.
        #[arg(long)]
        allow_insecure: bool,
        /// Users whose mailboxes to open (default: a sample of the enabled ones).
        users: Vec<String>,
    },
    /// Remove the contacts so mail flows on-premises again (copied content stays).
    Rollback {
        /// Users to roll back.
        #[arg(required = true)]
        users: Vec<String>,
    },
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("{s:?}: {e}; write YYYY-MM-DD"))
}

fn options(
    users: Vec<String>,
    all_ready: bool,
    copy: CopyArgs,
    sync_only: bool,
) -> anyhow::Result<MigrateOptions> {
    let content = if copy.content.is_empty() {
        None
    } else {
        let mut c = Content::default();
        for name in &copy.content {
            c.add(name.trim())?;
        }
        Some(c)
    };
    Ok(MigrateOptions {
        users,
        all_ready,
        forwarding_only: copy.forwarding_only,
        content,
        since: copy.since,
        before: copy.before,
        allow_insecure: copy.allow_insecure,
        parallel: copy.parallel,
        dry_run: copy.dry_run,
        sync_only,
        report: copy.report,
    })
}

/// Runs the command; `Ok(false)` when some user or message failed (exit 1),
/// `Err` for a usage or configuration error (exit 2).
async fn dispatch(config: &Config, command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Ready {
            json,
            allow_insecure,
        } => {
            let rows = plan::ready(config, allow_insecure).await?;
            print::ready(&rows, json);
            Ok(rows.iter().all(|r| r.error.is_none()))
        }
        Command::Migrate {
            users,
            all_ready,
            copy,
        } => {
            let reports = run::migrate(config, options(users, all_ready, copy, false)?).await?;
            Ok(!reports.iter().any(|r| r.has_failures()))
        }
        Command::Sync { users, copy } => {
            let reports = run::migrate(config, options(users, false, copy, true)?).await?;
            Ok(!reports.iter().any(|r| r.has_failures()))
        }
        Command::Status { json, user } => {
            let directory = Directory::new(config);
            let states = StateDir::new(&config.migration.state_dir);
            print::status(&report::status(&directory, &states, user.as_deref())?, json);
            Ok(true)
        }
        Command::Check {
            json,
            allow_insecure,
            users,
        } => {
            let opts = migrator::check::CheckOptions {
                users,
                allow_insecure,
            };
            let report = migrator::check::run(config, &opts).await;
            print::check(&report, json);
            Ok(report.exit_code() == 0)
        }
        Command::Rollback { users } => {
            let directory = Directory::new(config);
            let states = StateDir::new(&config.migration.state_dir);
            print::rollback(&flip::rollback(&directory, &states, &users)?);
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        // imap-next traces every byte it reads and writes, LOGIN passwords
        // and AUTHENTICATE tokens included: never at any RUST_LOG.
        .with(tracing_subscriber::filter::filter_fn(|meta| {
            !meta.target().starts_with("imap_next") || *meta.level() <= tracing::Level::DEBUG
        }))
        .init();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(&config, cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
