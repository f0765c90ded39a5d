//! One outbound SMTP session: connect, greeting, EHLO, STARTTLS by policy,
//! and transactions with a result per recipient.
//!
//! Built on mail-send's `SmtpClient` lower-level calls (`cmd`, `cmds`, `ehlo`,
//! `read`) over our own stream type, because a relay needs what mail-send's
//! `send()` does not give: one result per RCPT, ESMTP parameters (SIZE, BODY,
//! SMTPUTF8, DSN), and the message written byte for byte. The DATA writer is
//! our own for the last reason: mail-send's `write_message` always appends
//! CRLF before the final dot (a message that already ends in CRLF gains an
//! empty line) and does not stuff a dot in the very first byte.

use super::mx::NextHop;
use super::status::{DeliverError, Reply, Stage};
use crate::config::OutboundTls;
use crate::enhanced_code::EnhancedCode;
use crate::envelope::{BodyType, Notify, Ret};
use crate::metrics::{metrics, Direction};
use mail_send::SmtpClient;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use smtp_proto::{
    EXT_8BIT_MIME, EXT_CHUNKING, EXT_DSN, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

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

/// How to open a session: the route's settings that matter on the wire.
#[derive(Clone)]
pub struct SessionParams {
    /// EHLO name.
    pub helo: String,
    /// The route's TLS policy.
    pub policy: OutboundTls,
    /// Client configuration for the handshake (verifying for `verify`).
    pub tls_config: Arc<ClientConfig>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Per-command timeout.
    pub command_timeout: Duration,
    /// Timeout for sending the message and reading the final reply.
    pub data_timeout: Duration,
}

/// An open session, greeted and EHLO'd, ready for MAIL.
pub struct Session {
    client: SmtpClient<Stream>,
    /// Where it is connected.
    pub hop: NextHop,
    /// EHLO capabilities (smtp-proto `EXT_*` bits; 0 after HELO).
    capabilities: u32,
    /// TLS version and cipher suite, `None` in clear.
    pub tls: Option<String>,
    data_timeout: Duration,
}

/// One recipient of a transaction.
pub struct TxnRecipient<'a> {
    /// The address for RCPT TO (the rewritten one).
    pub address: &'a str,
    /// The address as the relay received it, sent as ORCPT when the client gave none.
    pub original: &'a str,
    /// DSN NOTIFY.
    pub notify: Notify,
    /// DSN ORCPT as received (address only, xtext decoded).
    pub orcpt: Option<&'a str>,
}

/// One message for one session.
pub struct Transaction<'a> {
    /// Envelope sender; empty for `<>`.
    pub sender: &'a str,
    /// BODY parameter.
    pub body: BodyType,
    /// SMTPUTF8 requested.
    pub smtputf8: bool,
    /// DSN RET.
    pub ret: Option<Ret>,
    /// DSN ENVID (decoded).
    pub envid: Option<&'a str>,
    /// Recipients.
    pub recipients: Vec<TxnRecipient<'a>>,
    /// The message, exactly as spooled.
    pub message: &'a [u8],
}

/// What a transaction did.
pub struct TxnResult {
    /// Per recipient, in transaction order: the final reply or the error.
    pub recipients: Vec<Result<Reply, DeliverError>>,
    /// False when the session is out of step or broken and must not be reused.
    pub reusable: bool,
}

impl Session {
    /// Connects, reads the greeting, says EHLO, and applies the TLS policy.
    pub async fn open(hop: &NextHop, params: &SessionParams) -> Result<Session, DeliverError> {
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
        let mut capabilities = hello(&mut client, &params.helo).await?;
        let offered = capabilities & EXT_START_TLS != 0;
        let start_tls = match params.policy {
            OutboundTls::None => false,
            OutboundTls::Opportunistic => offered,
            OutboundTls::Required | OutboundTls::Verify if offered => true,
            // RFC 3207 §4: without STARTTLS the policy forbids sending; give
            // up before MAIL so nothing leaves in clear.
            OutboundTls::Required | OutboundTls::Verify => {
                let _ = client.cmd(b"QUIT\r\n").await;
                return Err(DeliverError::TlsUnavailable);
            }
        };
        let mut tls = None;
        if start_tls {
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
                Ok(Ok(stream)) => {
                    metrics().tls_handshake(Direction::Outbound, true);
                    stream
                }
                Ok(Err(e)) => {
                    metrics().tls_handshake(Direction::Outbound, false);
                    return Err(DeliverError::Tls(e.to_string()));
                }
                Err(_) => {
                    metrics().tls_handshake(Direction::Outbound, false);
                    return Err(DeliverError::Timeout(Stage::StartTls));
                }
            };
            let conn = stream.get_ref().1;
            tls = Some(format!(
                "{} {}",
                conn.protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default(),
                conn.negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default()
            ));
            client = SmtpClient {
                stream: Stream::Tls(Box::new(stream)),
                timeout: params.command_timeout,
            };
            // RFC 3207 §4.2: forget what was learnt in clear, ask again.
            capabilities = hello(&mut client, &params.helo).await?;
        }
        Ok(Session {
            client,
            hop: hop.clone(),
            capabilities,
            tls,
            data_timeout: params.data_timeout,
        })
    }

    fn offers(&self, ext: u32) -> bool {
        self.capabilities & ext != 0
    }

    /// RSET before reusing the session for another message (RFC 5321 §4.1.1.5).
    pub async fn reset(&mut self) -> Result<(), DeliverError> {
        let reply = self
            .client
            .cmd(b"RSET\r\n")
            .await
            .map_err(|e| DeliverError::from_client(Stage::Rset, e))?;
        let reply = Reply::from_response(&reply);
        if reply.is_positive() {
            Ok(())
        } else {
            Err(DeliverError::Rejected {
                stage: Stage::Rset,
                reply,
            })
        }
    }

    /// Says QUIT and closes; errors do not matter any more.
    pub async fn quit(mut self) {
        self.client.timeout = self.client.timeout.min(Duration::from_secs(5));
        let _ = self.client.cmd(b"QUIT\r\n").await;
        let _ = self.client.stream.shutdown().await;
    }

    /// Runs one transaction: MAIL, every RCPT, then DATA/BDAT for the accepted.
    pub async fn send(&mut self, txn: &Transaction<'_>) -> TxnResult {
        let n = txn.recipients.len();
        let all = |e: DeliverError, reusable: bool| TxnResult {
            recipients: (0..n).map(|_| Err(clone_error(&e))).collect(),
            reusable,
        };
        let mail = match self.mail_command(txn) {
            Ok(m) => m,
            Err(e) => return all(e, true),
        };
        let rcpts: Vec<String> = txn
            .recipients
            .iter()
            .map(|r| self.rcpt_command(r))
            .collect();

        // RFC 2920 §3.1: MAIL and the RCPTs go out in one write, replies read after.
        let replies: Vec<Reply> = if self.offers(EXT_PIPELINING) {
            let mut cmds = Vec::with_capacity(n + 1);
            cmds.push(mail.as_str());
            cmds.extend(rcpts.iter().map(String::as_str));
            match self.client.cmds(cmds).await {
                Ok(r) => r.iter().map(Reply::from_response).collect(),
                Err(e) => return all(DeliverError::from_client(Stage::Rcpt, e), false),
            }
        } else {
            let mut replies = Vec::with_capacity(n + 1);
            match self.client.cmd(mail.as_bytes()).await {
                Ok(r) => replies.push(Reply::from_response(&r)),
                Err(e) => return all(DeliverError::from_client(Stage::Mail, e), false),
            }
            if replies[0].is_positive() {
                for rcpt in &rcpts {
                    match self.client.cmd(rcpt.as_bytes()).await {
                        Ok(r) => replies.push(Reply::from_response(&r)),
                        Err(e) => return all(DeliverError::from_client(Stage::Rcpt, e), false),
                    }
                }
            }
            replies
        };
        let mail_reply = &replies[0];
        if !mail_reply.is_positive() {
            return all(
                DeliverError::Rejected {
                    stage: Stage::Mail,
                    reply: mail_reply.clone(),
                },
                true,
            );
        }
        let mut results: Vec<Result<Reply, DeliverError>> = replies[1..]
            .iter()
            .map(|r| {
                if r.is_positive() {
                    Ok(r.clone())
                } else {
                    Err(DeliverError::Rejected {
                        stage: Stage::Rcpt,
                        reply: r.clone(),
                    })
                }
            })
            .collect();
        if !results.iter().any(Result::is_ok) {
            return TxnResult {
                recipients: results,
                reusable: true,
            };
        }
        let (final_reply, reusable) = match self.data(txn).await {
            Ok(reply) => (Ok(reply), true),
            Err(e) => {
                let reusable = matches!(e, DeliverError::Rejected { .. });
                (Err(e), reusable)
            }
        };
        // RFC 5321 §3.3: the reply to the end of data applies to every
        // recipient accepted at RCPT time.
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = match &final_reply {
                Ok(reply) if reply.is_positive() => Ok(reply.clone()),
                Ok(reply) => Err(DeliverError::Rejected {
                    stage: Stage::Message,
                    reply: reply.clone(),
                }),
                Err(e) => Err(clone_error(e)),
            };
        }
        TxnResult {
            recipients: results,
            reusable,
        }
    }

    fn mail_command(&self, txn: &Transaction<'_>) -> Result<String, DeliverError> {
        let mut cmd = format!("MAIL FROM:<{}>", txn.sender);
        if self.offers(EXT_SIZE) {
            cmd.push_str(&format!(" SIZE={}", txn.message.len()));
        }
        match txn.body {
            BodyType::SevenBit => {}
            // RFC 6152 §3: with no 8BITMIME at the next hop the message goes
            // as is (what Postfix does); converting would break DKIM.
            BodyType::EightBitMime if self.offers(EXT_8BIT_MIME) => cmd.push_str(" BODY=8BITMIME"),
            BodyType::EightBitMime => {}
        }
        if txn.smtputf8 {
            if self.offers(EXT_SMTP_UTF8) {
                cmd.push_str(" SMTPUTF8");
            } else if !txn.sender.is_ascii() || txn.recipients.iter().any(|r| !r.address.is_ascii())
            {
                // RFC 6531 §3.2: an internationalized address cannot be
                // downgraded; bounce rather than mangle it.
                return Err(DeliverError::Rejected {
                    stage: Stage::Mail,
                    reply: local_reply(
                        553,
                        EnhancedCode::new(5, 6, 7),
                        "next hop does not support SMTPUTF8",
                    ),
                });
            }
        }
        if self.offers(EXT_DSN) {
            match txn.ret {
                Some(Ret::Full) => cmd.push_str(" RET=FULL"),
                Some(Ret::Hdrs) => cmd.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = txn.envid {
                cmd.push_str(" ENVID=");
                cmd.push_str(&xtext(envid));
            }
        }
        cmd.push_str("\r\n");
        Ok(cmd)
    }

    fn rcpt_command(&self, r: &TxnRecipient<'_>) -> String {
        let mut cmd = format!("RCPT TO:<{}>", r.address);
        if self.offers(EXT_DSN) {
            // RFC 3461 §4.1
            let n = r.notify;
            let mut notify = Vec::new();
            if n.never {
                notify.push("NEVER");
            } else {
                if n.success {
                    notify.push("SUCCESS");
                }
                if n.failure {
                    notify.push("FAILURE");
                }
                if n.delay {
                    notify.push("DELAY");
                }
            }
            if !notify.is_empty() {
                cmd.push_str(" NOTIFY=");
                cmd.push_str(&notify.join(","));
            }
            // RFC 3461 §4.2: pass ORCPT on; when the client gave none, the
            // address as received is the original recipient (what Postfix does),
            // so a DSN from further on names the address the sender used.
            let orcpt = r.orcpt.map(strip_rfc822).unwrap_or(r.original);
            if orcpt.is_ascii() {
                cmd.push_str(" ORCPT=rfc822;");
                cmd.push_str(&xtext(orcpt));
            }
        }
        cmd.push_str("\r\n");
        cmd
    }

    /// DATA (dot-stuffed) or BDAT LAST (RFC 3030), and the final reply.
    async fn data(&mut self, txn: &Transaction<'_>) -> Result<Reply, DeliverError> {
        let message = txn.message;
        if self.offers(EXT_CHUNKING) {
            let io = async {
                let mut w = BufWriter::with_capacity(64 * 1024, &mut self.client.stream);
                w.write_all(format!("BDAT {} LAST\r\n", message.len()).as_bytes())
                    .await?;
                w.write_all(message).await?;
                w.flush().await
            };
            tokio::time::timeout(self.data_timeout, io)
                .await
                .map_err(|_| DeliverError::Timeout(Stage::Message))?
                .map_err(|e| lost(Stage::Message, e))?;
        } else {
            let reply = self
                .client
                .cmd(b"DATA\r\n")
                .await
                .map_err(|e| DeliverError::from_client(Stage::Data, e))?;
            let reply = Reply::from_response(&reply);
            if reply.code != 354 {
                return Err(DeliverError::Rejected {
                    stage: Stage::Data,
                    reply,
                });
            }
            let io = async {
                let mut w = BufWriter::with_capacity(64 * 1024, &mut self.client.stream);
                write_dot_stuffed(&mut w, message).await?;
                w.flush().await
            };
            tokio::time::timeout(self.data_timeout, io)
                .await
                .map_err(|_| DeliverError::Timeout(Stage::Message))?
                .map_err(|e| lost(Stage::Message, e))?;
        }
        let reply = tokio::time::timeout(self.data_timeout, self.client.read())
            .await
            .map_err(|_| DeliverError::Timeout(Stage::Message))?
            .map_err(|e| DeliverError::from_client(Stage::Message, e))?;
        Ok(Reply::from_response(&reply))
    }
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
        Err(_) if policy != OutboundTls::Verify => Ok(ServerName::IpAddress(hop.addr.ip().into())),
        Err(_) => Err(DeliverError::TlsName(hop.host.clone())),
    }
}

/// Writes `message` with a dot doubled at the start of every line
/// (RFC 5321 §4.5.2), then the end-of-data marker. Lines end at LF; the spool
/// holds CRLF-only messages (the inbound side normalises or refuses bare
/// newlines), so this changes nothing but the stuffed dots.
pub async fn write_dot_stuffed<W: AsyncWrite + Unpin>(w: &mut W, message: &[u8]) -> io::Result<()> {
    let mut start = 0;
    let mut line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if line_start && b == b'.' {
            w.write_all(&message[start..i]).await?;
            w.write_all(b".").await?;
            start = i;
        }
        line_start = b == b'\n';
    }
    w.write_all(&message[start..]).await?;
    if message.is_empty() || message.ends_with(b"\r\n") {
        w.write_all(b".\r\n").await
    } else {
        // RFC 5321 §4.1.1.4: the end marker must begin a line.
        w.write_all(b"\r\n.\r\n").await
    }
}

/// xtext (RFC 3461 §4): `+XX` for `+`, `=`, controls, space and non-ASCII.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn strip_rfc822(orcpt: &str) -> &str {
    match orcpt.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("rfc822;") => &orcpt[7..],
        _ => orcpt,
    }
}

fn local_reply(code: u16, enhanced: EnhancedCode, text: &str) -> Reply {
    Reply {
        code,
        enhanced: Some(enhanced),
        text: text.to_string(),
    }
}

fn lost(stage: Stage, e: io::Error) -> DeliverError {
    DeliverError::ConnectionLost {
        stage,
        detail: e.to_string(),
    }
}

/// `DeliverError` holds an `io::Error` and is not `Clone`; one error often
/// applies to several recipients.
pub(crate) fn clone_error(e: &DeliverError) -> DeliverError {
    match e {
        DeliverError::Connect(io) => {
            DeliverError::Connect(io::Error::new(io.kind(), io.to_string()))
        }
        DeliverError::Timeout(s) => DeliverError::Timeout(*s),
        DeliverError::ConnectionLost { stage, detail } => DeliverError::ConnectionLost {
            stage: *stage,
            detail: detail.clone(),
        },
        DeliverError::Protocol(s) => DeliverError::Protocol(*s),
        DeliverError::Rejected { stage, reply } => DeliverError::Rejected {
            stage: *stage,
            reply: reply.clone(),
        },
        DeliverError::Tls(s) => DeliverError::Tls(s.clone()),
        DeliverError::TlsUnavailable => DeliverError::TlsUnavailable,
        DeliverError::TlsName(s) => DeliverError::TlsName(s.clone()),
        DeliverError::DnsTemporary { name, detail } => DeliverError::DnsTemporary {
            name: name.clone(),
            detail: detail.clone(),
        },
        DeliverError::NoSuchDomain(s) => DeliverError::NoSuchDomain(s.clone()),
        DeliverError::NullMx(s) => DeliverError::NullMx(s.clone()),
        DeliverError::NoAddress(s) => DeliverError::NoAddress(s.clone()),
        DeliverError::UnknownRoute(s) => DeliverError::UnknownRoute(s.clone()),
        DeliverError::Ca { path, detail } => DeliverError::Ca {
            path: path.clone(),
            detail: detail.clone(),
        },
        DeliverError::Resolver(s) => DeliverError::Resolver(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stuffed(m: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_dot_stuffed(&mut out, m).await.unwrap();
        out
    }

    #[tokio::test]
    async fn dot_stuffing() {
        assert_eq!(
            stuffed(b"A: b\r\n\r\n.\r\n").await,
            b"A: b\r\n\r\n..\r\n.\r\n"
        );
        assert_eq!(stuffed(b".x\r\n").await, b"..x\r\n.\r\n");
        assert_eq!(stuffed(b"a\r\n..b\r\nc").await, b"a\r\n...b\r\nc\r\n.\r\n");
        assert_eq!(stuffed(b"a.b\r\n").await, b"a.b\r\n.\r\n");
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("a+b=c d@x"), "a+2Bb+3Dc+20d@x");
    }
}
