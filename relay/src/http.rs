//! The operator's HTTP endpoint on `[metrics] bind`: `/metrics` (Prometheus text
//! format), `/healthz` (the process answers) and `/readyz` (listeners bound, spool
//! writable, contacts table loaded: safe to send mail here).
//!
//! The migrator serves its own metric set through the same server
//! ([`serve_metrics`]): it passes the function that renders its page and has no
//! `/readyz`.

use crate::metrics::metrics;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/readyz` checks.
#[derive(Debug)]
pub struct Readiness {
    /// Set once every SMTP listener is bound.
    pub listeners_bound: AtomicBool,
    /// Set once a routing snapshot is in force (shared with the live table).
    pub table_loaded: Arc<AtomicBool>,
    /// The spool folder, probed with a small write on each request.
    pub spool_dir: PathBuf,
}

impl Readiness {
    /// Nothing ready yet; `table_loaded` is the live table's flag.
    pub fn new(spool_dir: PathBuf, table_loaded: Arc<AtomicBool>) -> Arc<Self> {
        Arc::new(Readiness {
            listeners_bound: AtomicBool::new(false),
            table_loaded,
            spool_dir,
        })
    }

    /// The failed checks (empty = ready).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.listeners_bound.load(Ordering::Acquire) {
            problems.push("listeners not bound".to_string());
        }
        if !self.table_loaded.load(Ordering::Acquire) {
            problems.push("no routing snapshot yet".to_string());
        }
        let probe = self.spool_dir.join(".readyz-probe");
        if let Err(e) = std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe)) {
            problems.push(format!(
                "spool {} not writable: {e}",
                self.spool_dir.display()
            ));
        }
        problems
    }
}

/// Binds the endpoint (separately from serving, so a bad address fails start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Renders the `/metrics` page (Prometheus text format); called off the async
/// threads.
pub type Render = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// Serves the relay's `/metrics`, `/healthz` and `/readyz` until `shutdown` is
/// cancelled.
pub async fn serve(listener: TcpListener, ready: Arc<Readiness>, shutdown: CancellationToken) {
    let render: Render = Arc::new(|| metrics().render());
    serve_pages(listener, render, Some(ready), shutdown).await
}

/// Serves `/metrics` (rendered by `render`) and `/healthz`, with no `/readyz`,
/// until `shutdown` is cancelled: for another program's metric set.
pub async fn serve_metrics(listener: TcpListener, render: Render, shutdown: CancellationToken) {
    serve_pages(listener, render, None, shutdown).await
}

async fn serve_pages(
    listener: TcpListener,
    render: Render,
    ready: Option<Arc<Readiness>>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (ready, render) = (ready.clone(), Arc::clone(&render));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (ready, render) = (ready.clone(), Arc::clone(&render));
                async move {
                    Ok::<_, std::convert::Infallible>(respond(&req, render, ready.as_ref()).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    req: &Request<hyper::body::Incoming>,
    render: Render,
    ready: Option<&Arc<Readiness>>,
) -> Response<Full<Bytes>> {
    match (req.uri().path(), ready) {
        ("/metrics", _) => {
            let body = tokio::task::spawn_blocking(move || render())
                .await
                .unwrap_or_default();
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                .body(Full::new(Bytes::from(body)))
                .expect("static response")
        }
        ("/healthz", _) => text(StatusCode::OK, "ok\n".into()),
        ("/readyz", Some(ready)) => {
            let ready = Arc::clone(ready);
            let problems = tokio::task::spawn_blocking(move || ready.problems())
                .await
                .unwrap_or_else(|e| vec![e.to_string()]);
            if problems.is_empty() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", problems.join("; ")),
                )
            }
        }
        (_, Some(_)) => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz, /readyz\n".into(),
        ),
        (_, None) => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response")
}
