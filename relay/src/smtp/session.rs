//! The connection loop: read bytes, hand them to the command parser or the body reader,
//! collect replies, write them in one go when the input is used up (RFC 2920 pipelining:
//! replies to a pipelined group leave together, which also keeps TLS records few).

use super::commands::Action;
use super::data::{BodyReader, Progress};
use super::line::{Line, LineReader};
use super::reply::Reply;
use super::state::{Greeting, Phase};
use crate::config::{Config, Limits, ListenerConfig};
use crate::envelope::Envelope;
use crate::metrics::metrics;
use crate::queue::spool::Spool;
use crate::rate::RateLimit;
use crate::route::router::Router;
use smtp_proto::Error as ParseError;
use smtp_proto::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What every session shares.
pub struct SessionContext {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The router (contacts table + rules).
    pub router: Arc<Router>,
    /// The durable spool.
    pub spool: Arc<Spool>,
    /// Where acknowledged messages are announced for delivery (None: nobody listens).
    pub queued: Option<mpsc::UnboundedSender<Envelope>>,
    /// Cancelled on SIGTERM.
    pub shutdown: CancellationToken,
    /// `limits.max_messages_per_minute_per_ip`, counted at MAIL.
    pub message_rate: RateLimit,
}

/// The negotiated TLS parameters, for the Received field and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// e.g. `TLSv1_3`.
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// Facts about the connection that do not change within a session.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The listener it arrived on.
    pub listener: Arc<ListenerConfig>,
    /// The client.
    pub peer: SocketAddr,
    /// The client is in `relay.trusted_networks`.
    pub trusted: bool,
    /// TLS, once negotiated.
    pub tls: Option<TlsInfo>,
}

/// How a session loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// QUIT, an error limit, a timeout, shutdown, or the client went away.
    Closed,
    /// The client asked for STARTTLS and got `220`: the caller runs the handshake
    /// and calls [`Session::run`] again on the encrypted stream.
    StartTls,
}

/// What the loop is reading now.
pub(super) enum Input {
    /// SMTP commands.
    Commands,
    /// A DATA body.
    Data(BodyReader),
    /// One BDAT chunk of `size` bytes; `last` when it ends the message.
    Bdat {
        /// The chunk reader.
        reader: BodyReader,
        /// Declared chunk size.
        size: usize,
        /// BDAT ... LAST.
        last: bool,
    },
}

/// One SMTP session.
pub struct Session {
    pub(super) ctx: Arc<SessionContext>,
    pub(super) conn: ConnectionInfo,
    pub(super) greeting: Option<Greeting>,
    pub(super) phase: Phase,
    pub(super) input: Input,
    /// The DATA body being received (BDAT chunks go into the transaction).
    pub(super) body: Vec<u8>,
    errors: u32,
    lines: LineReader,
    out: Vec<u8>,
    /// When the wait for the current command (or body) began: the timeouts are
    /// deadlines from here, not per read, or a client sending one byte at a time
    /// would hold its slot for ever (slowloris).
    waiting_since: Instant,
    /// Body bytes received since `waiting_since` (they extend the body deadline).
    body_bytes: u64,
}

const READ_BUFFER: usize = 64 * 1024;

/// The slowest body accepted, in bytes per second, once `data_timeout` is used
/// up (Postfix's `smtpd_min_data_rate` default): a large message on a slow link
/// gets its time, a drip does not.
const MIN_DATA_RATE: u64 = 500;

impl Session {
    /// A new session; nothing is sent until [`Session::run`].
    pub fn new(ctx: Arc<SessionContext>, conn: ConnectionInfo) -> Self {
        Session {
            ctx,
            conn,
            greeting: None,
            phase: Phase::Fresh,
            input: Input::Commands,
            body: Vec::new(),
            errors: 0,
            lines: LineReader::default(),
            out: Vec::with_capacity(512),
            waiting_since: Instant::now(),
            body_bytes: 0,
        }
    }

    /// The connection facts.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.conn
    }

    /// After a successful STARTTLS handshake: RFC 3207 §4.2, the server forgets
    /// everything it learnt from the client (EHLO, envelope) and waits for a new EHLO.
    pub fn tls_established(&mut self, tls: TlsInfo) {
        self.conn.tls = Some(tls);
        self.greeting = None;
        self.phase = Phase::Fresh;
        self.input = Input::Commands;
        self.lines = LineReader::default();
        self.body = Vec::new();
        self.restart_clock();
    }

    /// A new command (or body) is awaited from now on.
    fn restart_clock(&mut self) {
        self.waiting_since = Instant::now();
        self.body_bytes = 0;
    }

    /// How long the next read may wait. Commands: what is left of
    /// `command_timeout` since the previous command (RFC 5321 §4.5.3.2.7 times
    /// the wait for a command, not for each of its bytes). Body: `data_timeout`
    /// per read, and the whole body within `data_timeout` plus its size at
    /// [`MIN_DATA_RATE`].
    fn read_wait(&self, limits: &Limits) -> Duration {
        let now = Instant::now();
        match self.input {
            Input::Commands => {
                (self.waiting_since + limits.command_timeout).saturating_duration_since(now)
            }
            Input::Data(_) | Input::Bdat { .. } => {
                let credit =
                    Duration::from_millis(self.body_bytes.saturating_mul(1000) / MIN_DATA_RATE);
                let whole = (self.waiting_since + limits.data_timeout + credit)
                    .saturating_duration_since(now);
                whole.min(limits.data_timeout)
            }
        }
    }

    /// Queues the `220` greeting (sent with the first write of [`Session::run`]).
    pub fn greet(&mut self) {
        let reply = Reply::greeting(&self.ctx.config.server.hostname);
        reply.write_to(&mut self.out);
    }

    /// Queues a reply, counting errors.
    pub(super) fn reply(&mut self, reply: Reply) {
        if reply.is_error() && reply.code != 421 {
            self.errors += 1;
        }
        reply.write_to(&mut self.out);
    }

    /// Runs the session on `stream` until it closes or asks for STARTTLS.
    pub async fn run<S>(&mut self, stream: &mut S) -> std::io::Result<SessionEnd>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buf = vec![0u8; READ_BUFFER];
        let limits = self.ctx.config.limits.clone();
        loop {
            if !self.out.is_empty() {
                self.send_out(stream).await?;
            }
            let wait = self.read_wait(&limits);
            let n = tokio::select! {
                read = tokio::time::timeout(wait, stream.read(&mut buf)) => match read {
                    Ok(Ok(0)) => return Ok(SessionEnd::Closed),
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return self.close(stream, Reply::timeout()).await;
                    }
                },
                // RFC 5321 §3.8: 421 on shutdown. A body in progress gets the grace
                // period (the server aborts the task when it runs out).
                _ = self.ctx.shutdown.cancelled(), if matches!(self.input, Input::Commands) => {
                    return self.close(stream, Reply::shutting_down()).await;
                }
            };
            if !matches!(self.input, Input::Commands) {
                self.body_bytes += n as u64;
            }
            let mut input = buf[..n].iter();
            // An empty BDAT chunk has no bytes to wait for: step it even on empty input.
            while !input.as_slice().is_empty() || matches!(self.input, Input::Bdat { size: 0, .. })
            {
                match self.step(&mut input).await {
                    // A command was handled or a body ended: the next wait begins.
                    Action::Continue => self.restart_clock(),
                    Action::NeedMore => break,
                    Action::Close => {
                        self.send_out(stream).await?;
                        let _ = stream.shutdown().await;
                        return Ok(SessionEnd::Closed);
                    }
                    Action::StartTls => {
                        self.send_out(stream).await?;
                        // Anything pipelined after STARTTLS was sent in clear and could
                        // be an injection (CVE-2011-0411 class): it is dropped here.
                        return Ok(SessionEnd::StartTls);
                    }
                }
                if self.errors > limits.max_errors {
                    return self.close(stream, Reply::too_many_errors()).await;
                }
            }
        }
    }

    async fn close<S>(&mut self, stream: &mut S, reply: Reply) -> std::io::Result<SessionEnd>
    where
        S: AsyncWrite + Unpin,
    {
        if reply.code == 421 && reply.enhanced == Some((4, 7, 0)) {
            metrics().reject("syntax");
        }
        reply.write_to(&mut self.out);
        self.send_out(stream).await?;
        let _ = stream.shutdown().await;
        Ok(SessionEnd::Closed)
    }

    /// Writes the queued replies. A client that pipelines without reading them
    /// fills the socket buffer; it does not get to hold its slot beyond
    /// `command_timeout` that way either.
    async fn send_out<S>(&mut self, stream: &mut S) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        let limit = self.ctx.config.limits.command_timeout;
        let write = async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(written) => written?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client does not read its replies",
                ))
            }
        }
        self.out.clear();
        Ok(())
    }

    /// Consumes input for one command or one piece of body.
    async fn step(&mut self, input: &mut std::slice::Iter<'_, u8>) -> Action {
        match &mut self.input {
            Input::Commands => {
                let Some(line) = self.lines.next_line(input) else {
                    return Action::NeedMore;
                };
                let parsed = match line {
                    Line::TooLong => Err(ParseError::ResponseTooLong),
                    Line::Complete(bytes) => {
                        if let Some(reply) = precheck(&bytes) {
                            self.reply(reply);
                            return Action::Continue;
                        }
                        Request::parse(&mut bytes.iter()).map(Request::into_owned)
                    }
                };
                match parsed {
                    Ok(request) => self.command(request).await,
                    Err(e) => {
                        let reply = parse_error_reply(e);
                        self.reply(reply);
                        Action::Continue
                    }
                }
            }
            Input::Data(reader) => {
                let limit = self.ctx.config.limits.max_message_size as usize;
                match reader.ingest(input, &mut self.body, limit) {
                    Progress::NeedMore => Action::NeedMore,
                    Progress::Done => match std::mem::replace(&mut self.input, Input::Commands) {
                        Input::Data(reader) => self.data_done(reader).await,
                        _ => unreachable!("matched above"),
                    },
                }
            }
            Input::Bdat { reader, .. } => {
                let limit = self.ctx.config.limits.max_message_size as usize;
                // Chunks accumulate in the transaction; a discarding reader stores nothing.
                let sink = match &mut self.phase {
                    Phase::Mail(txn) => &mut txn.message,
                    _ => &mut self.body,
                };
                match reader.ingest(input, sink, limit) {
                    Progress::NeedMore => Action::NeedMore,
                    Progress::Done => match std::mem::replace(&mut self.input, Input::Commands) {
                        Input::Bdat { reader, size, last } => {
                            self.chunk_done(reader, size, last).await
                        }
                        _ => unreachable!("matched above"),
                    },
                }
            }
        }
    }
}

/// Refusals decided on the raw line, before smtp-proto folds it into a value and the
/// facts are lost.
fn precheck(line: &[u8]) -> Option<Reply> {
    let verb = line.get(..4).map(<[u8]>::to_ascii_uppercase);
    let (mail, rcpt) = (
        verb.as_deref() == Some(b"MAIL"),
        verb.as_deref() == Some(b"RCPT"),
    );
    // RFC 6531 §3.3: addresses are UTF-8. The parser would turn other octets into
    // U+FFFD and the relay would forward an address the client never sent.
    if (mail || rcpt) && std::str::from_utf8(line).is_err() {
        metrics().reject("syntax");
        return Some(if mail {
            Reply::bad_sender()
        } else {
            Reply::bad_recipient()
        });
    }
    super::params::repeated_parameter(line).map(|param| Reply::repeated_parameter(&param))
}

/// The one table from parser errors to replies.
fn parse_error_reply(e: ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::unknown_command(),
        ParseError::InvalidSenderAddress => {
            metrics().reject("syntax");
            Reply::bad_sender()
        }
        ParseError::InvalidRecipientAddress => {
            metrics().reject("syntax");
            Reply::bad_recipient()
        }
        ParseError::SyntaxError { syntax } => Reply::syntax(format!("Syntax: {syntax}")),
        ParseError::InvalidParameter { param } => {
            Reply::syntax(format!("Invalid value for parameter {param}"))
        }
        ParseError::UnsupportedParameter { param } => Reply::unsupported_parameter(&param),
        ParseError::ResponseTooLong => Reply::line_too_long(),
        // Response-side errors cannot come from the request parser.
        ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
            Reply::syntax("Syntax error")
        }
    }
}

/// Wall-clock seconds since the epoch.
pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}
