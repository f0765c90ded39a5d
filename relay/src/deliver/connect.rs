//! Opening an outbound session: TCP connect, the greeting, EHLO (HELO as the
//! fallback), and STARTTLS as the route's TLS policy says (RFC 3207).

use super::mx::NextHop;
use super::status::{DeliverError, Reply, Stage};
use crate::config::OutboundTls;
use crate::metrics::{metrics, Direction};
use mail_send::SmtpClient;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::ClientConfig;
use smtp_proto::EXT_START_TLS;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How to open a session: the route's settings that matter on the wire.
#[derive(Clone)]
pub struct SessionParams {
    /// EHLO name.
    pub helo: String,
    /// The route's TLS policy.
    pub policy: OutboundTls,
    /// Client configuration for the handshake (verifying for `verify`).
    pub tls_config: Arc<ClientConfig>,
    /// A check of the certificate after the handshake that decides nothing
    /// (MTA-STS `testing`): its verdict is reported, the session goes on.
    pub audit: Option<Arc<dyn ServerCertVerifier>>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Per-command timeout.
    pub command_timeout: Duration,
    /// Timeout for sending the message and reading the final reply.
    pub data_timeout: Duration,
}

/// Plain TCP, or TLS after STARTTLS.
pub enum Stream {
    /// Before STARTTLS, or a route with `tls = "none"`.
    Plain(TcpStream),
    /// After a successful STARTTLS handshake.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl super::body::PlainTcp for Stream {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(_) => None,
        }
    }
}

/// A session greeted and EHLO'd, with TLS as the policy wants it.
pub struct Opened {
    /// The client over the (possibly encrypted) stream.
    pub client: SmtpClient<Stream>,
    /// The EHLO capabilities (after STARTTLS, the second EHLO's).
    pub capabilities: u32,
    /// `version cipher` when TLS is in use, for the delivery log.
    pub tls: Option<String>,
    /// The audit's verdict (`SessionParams::audit`): `Err` says what would fail.
    pub audit: Option<Result<(), String>>,
}

/// Connects, reads the greeting, says EHLO, and applies the TLS policy.
pub async fn open(hop: &NextHop, params: &SessionParams) -> Result<Opened, DeliverError> {
    let mut client = greeted(hop, params).await?;
    let capabilities = hello(&mut client, &params.helo).await?;
    let offered = capabilities & EXT_START_TLS != 0;
    let start_tls = match params.policy {
        OutboundTls::None => false,
        OutboundTls::Opportunistic => offered,
        // `Dane` here means the next hop has secure TLSA records (without
        // them the session is opened as opportunistic): TLS is mandatory.
        OutboundTls::Required | OutboundTls::Verify | OutboundTls::Dane if offered => true,
        // RFC 3207 §4: without STARTTLS the policy forbids sending; give
        // up before MAIL so nothing leaves in clear.
        OutboundTls::Required | OutboundTls::Verify | OutboundTls::Dane => {
            let _ = client.cmd(b"QUIT\r\n").await;
            return Err(DeliverError::TlsUnavailable);
        }
    };
    if !start_tls {
        let audit = params
            .audit
            .as_ref()
            .map(|_| Err("the next hop does not offer STARTTLS".to_string()));
        return Ok(Opened {
            client,
            capabilities,
            tls: None,
            audit,
        });
    }
    let (mut client, tls, audit) = start_tls_on(client, hop, params).await?;
    // RFC 3207 §4.2: forget what was learnt in clear, ask again.
    let capabilities = hello(&mut client, &params.helo).await?;
    Ok(Opened {
        client,
        capabilities,
        tls: Some(tls),
        audit,
    })
}

/// TCP connect and a positive greeting.
async fn greeted(
    hop: &NextHop,
    params: &SessionParams,
) -> Result<SmtpClient<Stream>, DeliverError> {
    let tcp = tokio::time::timeout(params.connect_timeout, TcpStream::connect(hop.addr))
        .await
        .map_err(|_| DeliverError::Timeout(Stage::Connect))?
        .map_err(DeliverError::Connect)?;
    // Commands are small and each waits for a reply: do not let Nagle
    // hold them back behind a delayed ACK.
    let _ = tcp.set_nodelay(true);
    let mut client = SmtpClient {
        stream: Stream::Plain(tcp),
        timeout: params.command_timeout,
    };
    let greeting = tokio::time::timeout(params.command_timeout, client.read())
        .await
        .map_err(|_| DeliverError::Timeout(Stage::Greeting))?
        .map_err(|e| DeliverError::from_client(Stage::Greeting, e))?;
    let greeting = Reply::from_response(&greeting);
    if !greeting.is_positive() {
        return Err(DeliverError::Rejected {
            stage: Stage::Greeting,
            reply: greeting,
        });
    }
    Ok(client)
}

/// STARTTLS and the handshake; the client over TLS, and `version cipher`.
async fn start_tls_on(
    mut client: SmtpClient<Stream>,
    hop: &NextHop,
    params: &SessionParams,
) -> Result<(SmtpClient<Stream>, String, Option<Result<(), String>>), DeliverError> {
    let reply = client
        .cmd(b"STARTTLS\r\n")
        .await
        .map_err(|e| DeliverError::from_client(Stage::StartTls, e))?;
    let reply = Reply::from_response(&reply);
    if !reply.is_positive() {
        return Err(DeliverError::Rejected {
            stage: Stage::StartTls,
            reply,
        });
    }
    let Stream::Plain(tcp) = client.stream else {
        unreachable!("STARTTLS is only sent on a plain stream");
    };
    let name = server_name(hop, params.policy)?;
    let connector = TlsConnector::from(params.tls_config.clone());
    let handshake =
        tokio::time::timeout(params.command_timeout, connector.connect(name, tcp)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            metrics().tls_handshake(Direction::Outbound, false);
            return Err(DeliverError::Tls(e.to_string()));
        }
        Err(_) => {
            metrics().tls_handshake(Direction::Outbound, false);
            return Err(DeliverError::Timeout(Stage::StartTls));
        }
    };
    metrics().tls_handshake(Direction::Outbound, true);
    let conn = stream.get_ref().1;
    let tls = format!(
        "{} {}",
        conn.protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        conn.negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default()
    );
    let audit = params.audit.as_ref().map(|v| audit(v.as_ref(), conn, hop));
    let client = SmtpClient {
        stream: Stream::Tls(Box::new(stream)),
        timeout: params.command_timeout,
    };
    Ok((client, tls, audit))
}

/// Verifies the certificate the next hop presented for its host name, after
/// the fact (the handshake's own verifier accepted it).
fn audit(
    verifier: &dyn ServerCertVerifier,
    conn: &rustls::ClientConnection,
    hop: &NextHop,
) -> Result<(), String> {
    let chain = conn
        .peer_certificates()
        .ok_or_else(|| "no certificate".to_string())?;
    let (end_entity, intermediates) = chain
        .split_first()
        .ok_or_else(|| "no certificate".to_string())?;
    let name = ServerName::try_from(hop.host.clone())
        .map_err(|_| format!("{:?} is not a TLS server name", hop.host))?;
    verifier
        .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// EHLO, falling back to HELO when EHLO is refused with 5xx (RFC 5321 §3.2).
async fn hello(client: &mut SmtpClient<Stream>, helo: &str) -> Result<u32, DeliverError> {
    match client.ehlo(helo).await {
        Ok(ehlo) => Ok(ehlo.capabilities),
        Err(mail_send::Error::UnexpectedReply(r)) if (500..600).contains(&r.code) => {
            let reply = client
                .cmd(format!("HELO {helo}\r\n").as_bytes())
                .await
                .map_err(|e| DeliverError::from_client(Stage::Ehlo, e))?;
            let reply = Reply::from_response(&reply);
            if reply.is_positive() {
                Ok(0)
            } else {
                Err(DeliverError::Rejected {
                    stage: Stage::Ehlo,
                    reply,
                })
            }
        }
        Err(e) => Err(DeliverError::from_client(Stage::Ehlo, e)),
    }
}

/// The name to present in SNI and, for `verify`, to check the certificate against.
fn server_name(hop: &NextHop, policy: OutboundTls) -> Result<ServerName<'static>, DeliverError> {
    match ServerName::try_from(hop.host.clone()) {
        Ok(name) => Ok(name),
        // Without verification any name will do; the address is always valid.
        Err(_) if !matches!(policy, OutboundTls::Verify | OutboundTls::Dane) => {
            Ok(ServerName::IpAddress(hop.addr.ip().into()))
        }
        Err(_) => Err(DeliverError::TlsName(hop.host.clone())),
    }
}
