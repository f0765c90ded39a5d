//! The connection loop: read bytes, hand them to the command parser or the body reader,
//! collect replies, write them in one go when the input is used up (RFC 2920 pipelining:
//! replies to a pipelined group leave together, which also keeps TLS records few).

use super::data::Progress;
use super::line::{Line, LineReader};
use super::reply::Reply;
use super::state::{Action, ConnectionInfo, Phase, TlsInfo};
use crate::config::{Config, Limits};
use crate::envelope::Envelope;
use crate::policy::{Policy, Refusal};
use crate::queue::spool::Spool;
use crate::route::router::Router;
use smtp_proto::Error as ParseError;
use smtp_proto::Request;
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
    /// Who may connect, send and relay.
    pub policy: Arc<Policy>,
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

/// One SMTP session.
pub struct Session {
    pub(super) ctx: Arc<SessionContext>,
    pub(super) conn: ConnectionInfo,
    pub(super) phase: Phase,
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
            phase: Phase::Fresh,
            errors: 0,
            lines: LineReader::default(),
            out: Vec::with_capacity(512),
            waiting_since: Instant::now(),
            body_bytes: 0,
        }
    }

    /// After a successful STARTTLS handshake: RFC 3207 §4.2, the server forgets
    /// everything it learnt from the client (EHLO, envelope) and waits for a new EHLO.
    pub fn tls_established(&mut self, tls: TlsInfo) {
        self.conn.tls = Some(tls);
        self.phase = Phase::Fresh;
        self.lines = LineReader::default();
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
        if !self.phase.reads_body() {
            return (self.waiting_since + limits.command_timeout).saturating_duration_since(now);
        }
        let credit = Duration::from_millis(self.body_bytes.saturating_mul(1000) / MIN_DATA_RATE);
        let whole =
            (self.waiting_since + limits.data_timeout + credit).saturating_duration_since(now);
        whole.min(limits.data_timeout)
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

    /// Queues a refusal's reply and counts it under its reason.
    pub(super) fn refuse(&mut self, refusal: Refusal) {
        self.reply(refusal.counted());
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
                // A stop asked for wins over input already waiting (below).
                biased;
                // RFC 5321 §3.8: 421 on shutdown (DESIGN.md "Shutdown"): at once
                // between transactions; a transaction in progress, body and all,
                // may finish and get its 250 within the grace period (the server
                // drops the session when it runs out).
                _ = self.ctx.shutdown.cancelled(), if self.phase.between_transactions() => {
                    return self.close(stream, Reply::shutting_down()).await;
                }
                read = tokio::time::timeout(wait, stream.read(&mut buf)) => match read {
                    Ok(Ok(0)) => return Ok(SessionEnd::Closed),
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return self.close(stream, Reply::timeout()).await;
                    }
                },
            };
            if self.phase.reads_body() {
                self.body_bytes += n as u64;
            }
            let mut input = buf[..n].iter();
            // An empty BDAT chunk has no bytes to wait for: step it even on empty input.
            while !input.as_slice().is_empty() || self.phase.awaits_empty_chunk() {
                // Commands pipelined after the transaction that was allowed to
                // finish do not open another one.
                if self.ctx.shutdown.is_cancelled() && self.phase.between_transactions() {
                    return self.close(stream, Reply::shutting_down()).await;
                }
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
                    return self.close(stream, Refusal::TooManyErrors.counted()).await;
                }
            }
        }
    }

    async fn close<S>(&mut self, stream: &mut S, reply: Reply) -> std::io::Result<SessionEnd>
    where
        S: AsyncWrite + Unpin,
    {
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
        let max = self.ctx.policy.max_message_size();
        let progress = match &mut self.phase {
            Phase::Data(_, reader, body) => {
                let limit = body.buffer_limit(max);
                reader.ingest(input, body.buffer(), limit)
            }
            Phase::Bdat(_, body, Some(chunk)) => {
                let limit = body.buffer_limit(max);
                chunk.reader.ingest(input, body.buffer(), limit)
            }
            // A discarding reader stores nothing.
            Phase::Discard { chunk, .. } => {
                chunk.reader.ingest(input, &mut Vec::new(), max as usize)
            }
            _ => return self.next_command(input).await,
        };
        match progress {
            Progress::NeedMore => {
                // Checked and, when the buffer is full, on its way to the spool.
                if let Phase::Data(_, _, body) | Phase::Bdat(_, body, Some(_)) = &mut self.phase {
                    body.absorb().await;
                }
                Action::NeedMore
            }
            Progress::Done => self.body_done().await,
        }
    }

    /// Reads and runs one command line.
    async fn next_command(&mut self, input: &mut std::slice::Iter<'_, u8>) -> Action {
        let Some(line) = self.lines.next_line(input) else {
            return Action::NeedMore;
        };
        let parsed = match line {
            Line::TooLong => Err(ParseError::ResponseTooLong),
            Line::Complete(bytes) => {
                if let Some(answer) = precheck(&bytes) {
                    match answer {
                        Ok(reply) => self.reply(reply),
                        Err(refusal) => self.refuse(refusal),
                    }
                    return Action::Continue;
                }
                Request::parse(&mut bytes.iter()).map(Request::into_owned)
            }
        };
        match parsed {
            Ok(request) => self.command(request).await,
            Err(e) => {
                match parse_error_reply(e) {
                    Ok(reply) => self.reply(reply),
                    Err(refusal) => self.refuse(refusal),
                }
                Action::Continue
            }
        }
    }
}

/// Refusals decided on the raw line, before smtp-proto folds it into a value and the
/// facts are lost.
fn precheck(line: &[u8]) -> Option<Result<Reply, Refusal>> {
    let verb = line.get(..4).map(<[u8]>::to_ascii_uppercase);
    let (mail, rcpt) = (
        verb.as_deref() == Some(b"MAIL"),
        verb.as_deref() == Some(b"RCPT"),
    );
    // RFC 6531 §3.3: addresses are UTF-8. The parser would turn other octets into
    // U+FFFD and the relay would forward an address the client never sent.
    if (mail || rcpt) && std::str::from_utf8(line).is_err() {
        return Some(Err(if mail {
            Refusal::BadSender
        } else {
            Refusal::BadRecipient
        }));
    }
    super::params::repeated_parameter(line).map(|param| Ok(Reply::repeated_parameter(&param)))
}

/// The one table from parser errors to replies; a bad address is a refusal.
fn parse_error_reply(e: ParseError) -> Result<Reply, Refusal> {
    Ok(match e {
        ParseError::UnknownCommand => Reply::unknown_command(),
        ParseError::InvalidSenderAddress => return Err(Refusal::BadSender),
        ParseError::InvalidRecipientAddress => return Err(Refusal::BadRecipient),
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
    })
}

/// Wall-clock seconds since the epoch.
pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}
