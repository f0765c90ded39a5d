//! The daemon: everything `coexist-relay run` starts, in the order it starts
//! it, and how it stops (mini-redis' `server::run`).
//!
//! The binary owns the process (signals, exit codes); this owns the relay:
//! routing source and its watcher, TLS, spool, delivery, metrics endpoint,
//! listeners, the queue manager and its admin socket. [`Control`] is how the
//! binary speaks to it.

use crate::client_trust::ClientTrust;
use crate::config::{Config, ListenerTls, RoutingSource};
use crate::deliver::{status::DeliverError, Deliverer};
use crate::http::Readiness;
use crate::metrics::metrics;
use crate::policy::Policy;
use crate::queue::attempt::Services;
use crate::queue::spool::{Spool, SpoolError};
use crate::route::mirror::Mirror;
use crate::route::reload::Contacts;
use crate::route::router::Router;
use crate::route::table::TableError;
use crate::server::ServerError;
use crate::smtp::SessionContext;
use crate::tls::{ServerTls, TlsError};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the process around the daemon asks of it (the binary maps signals here).
pub struct Control {
    /// Cancelled to stop (SIGTERM, SIGINT): the listeners close at once,
    /// sessions and deliveries in flight get `server.shutdown_grace`.
    pub shutdown: CancellationToken,
    /// One message per request to re-read the routing source now (SIGHUP).
    pub reload: mpsc::UnboundedReceiver<()>,
}

/// Why the daemon could not start (once running, it does not fail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The contacts table does not load: a configuration error.
    #[error("{}", join_lines(.0))]
    Routing(Vec<TableError>),
    /// The certificate or key cannot be used: a configuration error.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The spool cannot be opened (locked, unreadable, damaged beyond use).
    #[error("spool {}: {source}", path.display())]
    Spool {
        /// `server.spool_dir`.
        path: PathBuf,
        /// Why.
        source: SpoolError,
    },
    /// Outbound delivery cannot be set up (resolver, `ca` of a route).
    #[error("outbound delivery: {0}")]
    Deliver(#[from] DeliverError),
    /// `[metrics] bind` cannot be bound.
    #[error("[metrics] bind {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A listener cannot be bound.
    #[error(transparent)]
    Listen(#[from] ServerError),
    /// The admin socket cannot be created.
    #[error("admin socket: {0}")]
    Admin(std::io::Error),
    /// The directory mirror's snapshot thread cannot be started.
    #[error("directory mirror: cannot start its snapshot thread: {0}")]
    Mirror(std::io::Error),
}

impl RunError {
    /// A configuration error (the binary exits 2), as opposed to a runtime one (1).
    pub fn is_config(&self) -> bool {
        matches!(self, RunError::Routing(_) | RunError::Tls(_))
    }
}

fn join_lines(errors: &[TableError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Runs the relay until `control.shutdown` is cancelled and everything in
/// flight has finished or run out of grace.
pub async fn run(config: Config, control: Control) -> Result<(), RunError> {
    let Control { shutdown, reload } = control;
    let (contacts, reloader, watcher) = start_routing(&config, shutdown.clone())?;
    let config = Arc::new(config);
    let tls = server_tls(&config)?;
    let (spool, recovered) =
        Spool::open(&config.server.spool_dir).map_err(|source| RunError::Spool {
            path: config.server.spool_dir.clone(),
            source,
        })?;
    tracing::info!(messages = recovered.len(), "spool recovered");
    let deliverer = Arc::new(Deliverer::new(&config)?);
    metrics().register_names(
        config.listeners.iter().map(|l| l.name.as_str()),
        config.routes.keys().map(|r| r.as_str()),
    );
    for (name, route) in &config.routes {
        metrics().register_tls_policies(name, &crate::deliver::tls_policy::labels_of(route));
    }
    let router = Arc::new(Router::new(
        &config.relay,
        &config.routing,
        Arc::clone(&contacts),
    ));
    let (ready, http) = start_http(&config, contacts.loaded_flag(), shutdown.clone()).await?;

    let listeners = crate::server::bind(&config.listeners).await?;
    // Ready before the "listening" lines: whoever waits for them may ask /readyz next.
    ready.listeners_bound.store(true, Ordering::Release);
    for l in &listeners {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(listener = %l.config.name, %addr, "listening");
        }
    }
    let (queued, incoming) = mpsc::unbounded_channel();
    let manager = crate::queue::manager::spawn(
        Services {
            config: Arc::clone(&config),
            spool: Arc::clone(&spool),
            deliverer,
            router: Arc::clone(&router),
        },
        recovered,
        incoming,
        shutdown.clone(),
    );
    let admin = crate::queue::admin::serve(
        &config.server.spool_dir,
        manager.admin.clone(),
        shutdown.clone(),
    )
    .map_err(RunError::Admin)?;
    let ctx = Arc::new(SessionContext {
        policy: Arc::new(Policy::new(&config.limits)),
        config: Arc::clone(&config),
        router,
        spool: Arc::clone(&spool),
        queued: Some(queued),
        shutdown: shutdown.clone(),
    });
    let reloads = spawn_reloads(reloader, tls.clone(), reload, shutdown.clone());

    let served = crate::server::serve(ctx, listeners, tls).await;
    shutdown.cancel();
    for task in [reloads, watcher, http, admin, manager.task] {
        let _ = task.await;
    }
    // Finished messages are recorded by the spool's own thread: let it catch up,
    // so that nothing delivered is delivered again after the restart.
    spool.flush();
    tracing::info!("stopped");
    Ok(served?)
}

/// How SIGHUP reaches the routing source.
enum Reloader {
    /// Re-read the contacts table file.
    File(Arc<Contacts>),
    /// Ask the directory mirror for a full re-read.
    Directory(mpsc::UnboundedSender<()>),
}

/// The live table and what keeps it current: the file and its watcher, or
/// the directory mirror (which serves its cache, if any, at once).
fn start_routing(
    config: &Config,
    shutdown: CancellationToken,
) -> Result<(Arc<Contacts>, Reloader, JoinHandle<()>), RunError> {
    let routes: BTreeSet<String> = config.routes.keys().cloned().collect();
    match &config.routing.source {
        RoutingSource::File => {
            let contacts =
                Contacts::load(&config.routing.contacts, routes).map_err(RunError::Routing)?;
            let watcher = contacts.spawn_watcher(shutdown);
            Ok((Arc::clone(&contacts), Reloader::File(contacts), watcher))
        }
        RoutingSource::Ldap(ldap) => {
            let contacts = Contacts::pending(&config.routing.contacts, routes);
            let mirror =
                Mirror::new((**ldap).clone(), Arc::clone(&contacts)).map_err(RunError::Mirror)?;
            mirror.load_cache();
            let (reread, rereads) = mpsc::unbounded_channel();
            let task = mirror.spawn(rereads, shutdown);
            Ok((contacts, Reloader::Directory(reread), task))
        }
    }
}

/// Binds `[metrics] bind` and serves `/metrics`, `/healthz`, `/readyz` on it.
async fn start_http(
    config: &Config,
    table_loaded: Arc<std::sync::atomic::AtomicBool>,
    shutdown: CancellationToken,
) -> Result<(Arc<Readiness>, JoinHandle<()>), RunError> {
    let ready = Readiness::new(config.server.spool_dir.clone(), table_loaded);
    let http = crate::http::bind(config.metrics.bind)
        .await
        .map_err(|source| RunError::Metrics {
            addr: config.metrics.bind,
            source,
        })?;
    if let Ok(addr) = http.local_addr() {
        tracing::info!(%addr, "metrics endpoint ready");
    }
    let task = tokio::spawn(crate::http::serve(http, Arc::clone(&ready), shutdown));
    Ok((ready, task))
}

/// Answers reload requests (SIGHUP) until shutdown, or until nobody can send
/// one: the routing source, then the certificate.
fn spawn_reloads(
    reloader: Reloader,
    tls: Option<Arc<ServerTls>>,
    mut reload: mpsc::UnboundedReceiver<()>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                asked = reload.recv() => match asked {
                    Some(()) => {
                        match &reloader {
                            Reloader::File(contacts) => reload_contacts(contacts).await,
                            Reloader::Directory(mirror) => {
                                tracing::info!("SIGHUP: re-reading the directory");
                                let _ = mirror.send(());
                            }
                        }
                        if let Some(tls) = &tls {
                            reload_certificate(tls).await;
                        }
                    }
                    None => break,
                },
                _ = shutdown.cancelled() => break,
            }
        }
    })
}

/// The inbound certificate when a listener needs one; generates the
/// development certificate on first start.
fn server_tls(config: &Config) -> Result<Option<Arc<ServerTls>>, TlsError> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    if config.listeners.iter().all(|l| l.tls == ListenerTls::None) {
        return Ok(None);
    }
    if crate::tls::ensure_dev_certificate(tls, &config.server.hostname)? {
        tracing::warn!(
            cert = %tls.cert.display(),
            "generated a self-signed development certificate; configure a real one for production"
        );
    }
    let trust = if config.relay.trusted_tls_names.is_empty() {
        None
    } else {
        Some(ClientTrust::new(
            &config.relay.trusted_tls_names,
            tls.client_ca.as_deref(),
        )?)
    };
    Ok(Some(Arc::new(ServerTls::load(tls, trust)?)))
}

/// SIGHUP: re-read the contacts table now. Parsing a large table must not
/// stall an async worker.
async fn reload_contacts(contacts: &Arc<Contacts>) {
    let contacts = Arc::clone(contacts);
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(n) = contacts.reload() {
            tracing::info!(contacts = n, "contacts table reloaded (SIGHUP)");
        }
    })
    .await;
}

/// SIGHUP: the certificate and key as the files are now; a pair that cannot
/// be used keeps the one in force (DESIGN.md "TLS"), and the next SIGHUP tries
/// again.
async fn reload_certificate(tls: &Arc<ServerTls>) {
    let tls = Arc::clone(tls);
    let done = tokio::task::spawn_blocking(move || {
        let cert = tls.cert_path().display().to_string();
        match tls.reload() {
            Ok(not_after) => tracing::info!(%cert, not_after, "certificate reloaded (SIGHUP)"),
            Err(e) => tracing::error!(
                %cert,
                "certificate not reloaded, keeping the one in force: {e}"
            ),
        }
    });
    let _ = done.await;
}
