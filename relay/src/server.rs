//! Listeners, the accept loop, connection caps, TLS hand-over, and the drain on shutdown.

use crate::config::{ListenerConfig, ListenerTls};
use crate::metrics::{metrics, Direction};
use crate::smtp::reply::Reply;
use crate::smtp::{ConnectionInfo, Session, SessionContext, SessionEnd, TlsInfo};
use crate::tls::ServerTls;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener address could not be bound.
    #[error("listener {name}: cannot bind {addr}: {source}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// A listener uses TLS but no acceptor was given.
    #[error("listener {0} uses TLS but no certificate is loaded")]
    NoTls(String),
}

/// A bound listener, ready to accept.
pub struct BoundListener {
    /// Its configuration.
    pub config: Arc<ListenerConfig>,
    /// The socket.
    pub socket: TcpListener,
}

impl BoundListener {
    /// The address actually bound (the port is chosen by the OS for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Binds every configured listener (all or nothing).
pub async fn bind(listeners: &[ListenerConfig]) -> Result<Vec<BoundListener>, ServerError> {
    let mut bound = Vec::with_capacity(listeners.len());
    for l in listeners {
        let socket = TcpListener::bind(l.bind)
            .await
            .map_err(|source| ServerError::Bind {
                name: l.name.clone(),
                addr: l.bind,
                source,
            })?;
        bound.push(BoundListener {
            config: Arc::new(l.clone()),
            socket,
        });
    }
    Ok(bound)
}

/// Accepts on every listener until shutdown, then gives open sessions
/// `server.shutdown_grace` to finish.
pub async fn serve(
    ctx: Arc<SessionContext>,
    listeners: Vec<BoundListener>,
    tls: Option<Arc<ServerTls>>,
) -> Result<(), ServerError> {
    for l in &listeners {
        if l.config.tls != ListenerTls::None && tls.is_none() {
            return Err(ServerError::NoTls(l.config.name.clone()));
        }
    }
    let sessions = TaskTracker::new();
    let mut accept_loops = Vec::new();
    for listener in listeners {
        accept_loops.push(tokio::spawn(accept_loop(
            Arc::clone(&ctx),
            listener,
            tls.clone(),
            sessions.clone(),
        )));
    }
    for l in accept_loops {
        let _ = l.await;
    }
    sessions.close();
    let grace = ctx.config.server.shutdown_grace;
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!(
            open = sessions.len(),
            "shutdown grace period over; closing remaining sessions"
        );
    }
    Ok(())
}

async fn accept_loop(
    ctx: Arc<SessionContext>,
    listener: BoundListener,
    tls: Option<Arc<ServerTls>>,
    sessions: TaskTracker,
) {
    let name = listener.config.name.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.socket.accept() => accepted,
            _ = ctx.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: keep the listener alive, back off a little.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        metrics()
            .connections_total
            .with_label_values(&[&name])
            .inc();
        let _ = stream.set_nodelay(true);
        let slot = match ctx.policy.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::info!(listener = %name, client = %peer, "connection refused: {refusal:?}");
                sessions.spawn(refuse(stream, refusal.counted()));
                continue;
            }
        };
        let conn = ConnectionInfo {
            listener: Arc::clone(&listener.config),
            peer,
            tls: None,
        };
        let ctx = Arc::clone(&ctx);
        let tls = tls.clone();
        sessions.spawn(async move {
            let _slot = slot;
            metrics().sessions_active.inc();
            if let Err(e) = connection(ctx, conn, stream, tls).await {
                tracing::debug!(client = %peer, error = %e, "session ended with an error");
            }
            metrics().sessions_active.dec();
        });
    }
}

/// Says why and closes (RFC 5321 §3.1 allows 421 instead of 220).
async fn refuse(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// One connection: implicit TLS or plain, with at most one STARTTLS upgrade.
async fn connection(
    ctx: Arc<SessionContext>,
    conn: ConnectionInfo,
    stream: TcpStream,
    tls: Option<Arc<ServerTls>>,
) -> std::io::Result<()> {
    let handshake_timeout = ctx.config.limits.command_timeout;
    let implicit = conn.listener.tls == ListenerTls::Implicit;
    let mut session = Session::new(ctx, conn);
    if implicit {
        let Some(tls) = tls else { return Ok(()) };
        let Some((mut stream, info)) = handshake(&tls, stream, handshake_timeout).await else {
            return Ok(());
        };
        session.tls_established(info);
        session.greet();
        session.run(&mut stream).await?;
        return Ok(());
    }
    let mut stream = stream;
    session.greet();
    if session.run(&mut stream).await? == SessionEnd::StartTls {
        let Some(tls) = tls else { return Ok(()) };
        let Some((mut stream, info)) = handshake(&tls, stream, handshake_timeout).await else {
            return Ok(());
        };
        session.tls_established(info);
        session.run(&mut stream).await?;
    }
    Ok(())
}

async fn handshake(
    tls: &ServerTls,
    stream: TcpStream,
    limit: std::time::Duration,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, TlsInfo)> {
    // The certificate in force now: a reload reaches new sessions only.
    let result = tokio::time::timeout(limit, tls.acceptor().accept(stream)).await;
    match result {
        Ok(Ok(stream)) => {
            metrics().tls_handshake(Direction::Inbound, true);
            let mut info = tls_info(&stream);
            info.trusted_name = tls.trusted_name(stream.get_ref().1);
            Some((stream, info))
        }
        Ok(Err(e)) => {
            metrics().tls_handshake(Direction::Inbound, false);
            tracing::info!(error = %e, "inbound TLS handshake failed");
            None
        }
        Err(_) => {
            metrics().tls_handshake(Direction::Inbound, false);
            tracing::info!("inbound TLS handshake timed out");
            None
        }
    }
}

fn tls_info<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &tokio_rustls::server::TlsStream<S>,
) -> TlsInfo {
    let (_, conn) = stream.get_ref();
    TlsInfo {
        version: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        trusted_name: None,
    }
}
