//! `coexist-relay`: command line, signals, and the calls into the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use relay::config::Config;
use relay::route::reload::Contacts;
use relay::route::router::Router;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for usage and configuration errors (DESIGN.md: 0 ok, 1 runtime, 2 config).
pub(crate) const EXIT_CONFIG: u8 = 2;

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
    /// Run the relay daemon (logs to stderr; SIGHUP reloads the contacts table).
    Run,
    /// Validate the configuration and the contacts table.
    Check,
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
        command: QueueCommand,
    },
}

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check => check(&cli.config),
        Command::Route {
            json,
            client,
            addresses,
        } => route(&cli.config, json, client, &addresses),
        Command::Doctor { json } => doctor(&cli.config, json),
        Command::Queue { command } => queue_cli::run(&cli.config, command),
        Command::Run => {
            init_logging();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("coexist-relay: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(&cli.config))
        }
    }
}

mod queue_cli;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Loads the config, printing every error; `None` = exit 2.
pub(crate) fn load_config(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            None
        }
    }
}

/// Loads the config and the contacts table, printing every error; `None` = exit 2.
pub(crate) fn load_all(path: &Path) -> Option<(Config, Arc<Contacts>)> {
    let config = load_config(path)?;
    let routes: BTreeSet<String> = config.routes.keys().cloned().collect();
    match Contacts::load(&config.routing.contacts, routes) {
        Ok(contacts) => Some((config, contacts)),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            None
        }
    }
}

fn doctor(path: &Path, json: bool) -> ExitCode {
    // A broken contacts table is one of the things doctor reports, so only the
    // config itself is a usage error here.
    let Some(config) = load_config(path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let report = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(relay::doctor::run(&config, &Default::default())),
        Err(e) => {
            eprintln!("coexist-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", serde_json::json!(report));
    } else {
        print!("{report}");
    }
    ExitCode::from(report.exit_code())
}

fn check(path: &Path) -> ExitCode {
    match load_all(path) {
        Some((config, contacts)) => {
            println!(
                "{}: OK ({} listener(s), {} route(s), {} contact(s) in {})",
                path.display(),
                config.listeners.len(),
                config.routes.len(),
                contacts.current().len(),
                config.routing.contacts.display()
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::from(EXIT_CONFIG),
    }
}

fn route(path: &Path, json: bool, client: Option<IpAddr>, addresses: &[String]) -> ExitCode {
    let Some((config, contacts)) = load_all(path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let router = Router::new(&config.relay, &config.routing, contacts);
    let table = router.table();
    // Without --client, answer as for a trusted client (what the relay would do for
    // mail it accepts from the organisation itself).
    let client = client
        .or_else(|| config.relay.trusted_networks.first().map(|n| n.addr()))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let mut rows = Vec::new();
    for address in addresses {
        let row = match router.decide(&table, address, client) {
            Ok(d) => {
                let next_hop = config
                    .routes
                    .get(&d.route)
                    .map(|r| {
                        if r.mx {
                            let domain = d.rewritten.rsplit('@').next().unwrap_or("");
                            format!("MX of {domain}")
                        } else {
                            r.smarthost
                                .iter()
                                .map(|h| h.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    })
                    .unwrap_or_default();
                serde_json::json!({
                    "address": address,
                    "route": d.route,
                    "next_hop": next_hop,
                    "rewritten": d.rewritten,
                    "reason": reason_text(&d.reason),
                })
            }
            Err(e) => serde_json::json!({
                "address": address,
                "route": null,
                "next_hop": null,
                "rewritten": null,
                "reason": format!("{e} (for client {client})"),
            }),
        };
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in rows {
            match r["route"].as_str() {
                Some(route) => println!(
                    "{} -> {} via {} [{}]: {}",
                    r["address"].as_str().unwrap_or(""),
                    r["rewritten"].as_str().unwrap_or(""),
                    route,
                    r["next_hop"].as_str().unwrap_or(""),
                    r["reason"].as_str().unwrap_or("")
                ),
                None => println!(
                    "{} -> refused: {}",
                    r["address"].as_str().unwrap_or(""),
                    r["reason"].as_str().unwrap_or("")
                ),
            }
        }
    }
    ExitCode::SUCCESS
}

fn reason_text(reason: &relay::envelope::RouteReason) -> String {
    use relay::envelope::RouteReason;
    match reason {
        RouteReason::Contact => "contact in the contacts table".into(),
        RouteReason::Rule { domain } => format!("[[routing.rule]] for {domain}"),
        RouteReason::AcceptedDomain => "accepted domain (routing.accepted_route)".into(),
        RouteReason::Default => "other domain, trusted client (routing.default_route)".into(),
    }
}

async fn run(path: &Path) -> ExitCode {
    // First of all: until a handler is installed, SIGHUP's default action kills the
    // process. A reload sent while the relay starts (loading a large table takes a
    // second; a migrator may flip a user meanwhile) must not take it down.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("coexist-relay: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((config, contacts)) = load_all(path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    match serve(config, contacts, signals).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("coexist-relay: {e:#}");
            // An unusable certificate or key is a configuration error (exit 2).
            if e.downcast_ref::<relay::tls::TlsError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The daemon's signal streams, installed before anything else happens.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

async fn serve(config: Config, contacts: Arc<Contacts>, signals: Signals) -> anyhow::Result<()> {
    use relay::queue::spool::Spool;
    use relay::smtp::SessionContext;
    use tokio_util::sync::CancellationToken;

    let Signals {
        mut hangup,
        mut terminate,
        mut interrupt,
    } = signals;

    let config = Arc::new(config);
    let acceptor = match &config.tls {
        Some(tls)
            if config
                .listeners
                .iter()
                .any(|l| l.tls != relay::config::ListenerTls::None) =>
        {
            if relay::tls::ensure_dev_certificate(tls, &config.server.hostname)? {
                tracing::warn!(
                    cert = %tls.cert.display(),
                    "generated a self-signed development certificate; configure a real one for production"
                );
            }
            let acceptor = relay::tls::acceptor(tls)?;
            relay::metrics::metrics()
                .tls_certificate_expiry
                .set(relay::tls::not_after(&tls.cert)?);
            Some(acceptor)
        }
        _ => None,
    };
    let (spool, recovered) = Spool::open(&config.server.spool_dir)
        .with_context(|| format!("spool {}", config.server.spool_dir.display()))?;
    tracing::info!(messages = recovered.len(), "spool recovered");
    let deliverer = Arc::new(relay::deliver::Deliverer::new(&config).context("outbound delivery")?);

    relay::metrics::metrics().register_names(
        config.listeners.iter().map(|l| l.name.as_str()),
        config.routes.keys().map(|r| r.as_str()),
    );
    let shutdown = CancellationToken::new();
    let router = Arc::new(Router::new(
        &config.relay,
        &config.routing,
        Arc::clone(&contacts),
    ));
    let watcher = contacts.spawn_watcher(shutdown.clone());

    let ready = relay::http::Readiness::new(config.server.spool_dir.clone());
    ready
        .table_loaded
        .store(true, std::sync::atomic::Ordering::Release);
    let http = relay::http::bind(config.metrics.bind)
        .await
        .with_context(|| format!("[metrics] bind {}", config.metrics.bind))?;
    tracing::info!(addr = %http.local_addr()?, "metrics endpoint ready");
    let http = tokio::spawn(relay::http::serve(
        http,
        Arc::clone(&ready),
        shutdown.clone(),
    ));

    let listeners = relay::server::bind(&config.listeners).await?;
    // Ready before the "listening" lines: whoever waits for them may ask /readyz next.
    ready
        .listeners_bound
        .store(true, std::sync::atomic::Ordering::Release);
    for l in &listeners {
        tracing::info!(listener = %l.config.name, addr = %l.local_addr()?, "listening");
    }
    let (queued, incoming) = tokio::sync::mpsc::unbounded_channel();
    let manager = relay::queue::manager::spawn(
        relay::queue::attempt::Services {
            config: Arc::clone(&config),
            spool: Arc::clone(&spool),
            deliverer,
            router: Arc::clone(&router),
        },
        recovered,
        incoming,
        shutdown.clone(),
    );
    let admin = relay::queue::admin::serve(
        &config.server.spool_dir,
        manager.admin.clone(),
        shutdown.clone(),
    )
    .context("admin socket")?;
    let ctx = Arc::new(SessionContext {
        config: Arc::clone(&config),
        router,
        spool: Arc::clone(&spool),
        queued: Some(queued),
        shutdown: shutdown.clone(),
        policy: Arc::new(relay::policy::Policy::new(&config.limits)),
    });

    let signals = {
        let shutdown = shutdown.clone();
        let contacts = Arc::clone(&contacts);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hangup.recv() => {
                        let contacts = Arc::clone(&contacts);
                        // Parsing a large table must not stall an async worker.
                        let _ = tokio::task::spawn_blocking(move || {
                            if let Ok(n) = contacts.reload() {
                                tracing::info!(contacts = n, "contacts table reloaded (SIGHUP)");
                            }
                        }).await;
                    }
                    _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                    _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                    _ = shutdown.cancelled() => break,
                }
            }
            shutdown.cancel();
        })
    };

    relay::server::serve(ctx, listeners, acceptor).await?;
    shutdown.cancel();
    let _ = signals.await;
    let _ = watcher.await;
    let _ = http.await;
    let _ = admin.await;
    let _ = manager.task.await;
    // Finished messages are recorded by the spool's own thread: let it catch up,
    // so that nothing delivered is delivered again after the restart.
    spool.flush();
    tracing::info!("stopped");
    Ok(())
}
