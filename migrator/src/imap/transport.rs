//! The bytes under a session: what carries `imap-next`'s client state machine.
//!
//! Every TLS connection, and any other byte stream — an in-memory
//! `tokio::io::duplex` in the scripted tests — is driven by `Pipe`: the state
//! machine fed 64 KiB reads, its output written from one buffer. So the
//! commands and the copy above it run the same code against a scripted server
//! with no network. Only a plaintext TCP connection (before STARTTLS, or
//! without TLS where allowed) uses imap-next's own `Stream`, from which the
//! TCP stream can be taken back for the handshake; it becomes a `Pipe` for
//! COMPRESS.
//!
//! After `COMPRESS DEFLATE` (RFC 4978) the `Pipe` reads through
//! [`deflate::inflate`] and writes through [`deflate::deflate`]: the client
//! state machine above never sees a compressed byte.

use super::deflate::{self, CompressStart, Found, InflateError};
use super::ImapError;
use imap_next::client::{Client, Event};
use imap_next::stream::Stream;
use imap_next::{Interrupt, Io, State};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A byte stream a session can run over.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// What a session reads from and writes to.
pub(super) enum Transport {
    /// Plain TCP (before STARTTLS, or plaintext where allowed).
    Net(Box<Stream>),
    /// TLS, or any other byte stream.
    Pipe(Pipe),
}

/// How a peer that hung up is reported, whichever transport carries the
/// session, so the copy sees one error for it.
const CLOSED: &str = "connection closed by the server";

impl Transport {
    /// Progresses `client` until its next event, reading and writing as it asks.
    pub(super) async fn next(&mut self, client: &mut Client) -> Result<Event, ImapError> {
        match self {
            Transport::Net(stream) => stream.next(client).await.map_err(stream_error),
            Transport::Pipe(pipe) => pipe.next(client).await,
        }
    }

    /// The same connection as a [`Pipe`]: plain TCP is taken back from
    /// imap-next's stream, which holds nothing between commands.
    pub(super) fn into_pipe(self) -> Transport {
        match self {
            Transport::Net(stream) => {
                Transport::Pipe(Pipe::new(Box::new(TcpStream::from(*stream))))
            }
            pipe => pipe,
        }
    }

    /// Makes everything after the tagged OK to the command `tag` (COMPRESS
    /// DEFLATE) go through deflate, both ways, at `level`. Only over a
    /// [`Pipe`] ([`Transport::into_pipe`] first): `false` otherwise.
    pub(super) fn compress_after(&mut self, tag: &str, level: u32) -> bool {
        match self {
            Transport::Net(_) => false,
            Transport::Pipe(pipe) => {
                pipe.compress_at = Some((CompressStart::new(tag), level));
                true
            }
        }
    }

    /// Whether the bytes now go through deflate.
    pub(super) fn compressed(&self) -> bool {
        matches!(self, Transport::Pipe(pipe) if pipe.compressed)
    }
}

impl Transport {
    /// Queues `bytes` to be written as they are: for the one command
    /// imap-next has no type for (MULTIAPPEND, encoded by [`super::commands`]
    /// with imap-codec). Only between commands, when the client has nothing
    /// queued; `false` over plain TCP, where imap-next's stream owns the
    /// socket.
    pub(super) fn write_raw(&mut self, bytes: Vec<u8>) -> bool {
        match self {
            Transport::Net(_) => false,
            Transport::Pipe(pipe) => {
                if pipe.output.is_empty() {
                    pipe.output = bytes;
                } else {
                    pipe.output.extend(bytes);
                }
                true
            }
        }
    }

    /// Whether [`Transport::write_raw`] works here.
    pub(super) fn writes_raw(&self) -> bool {
        matches!(self, Transport::Pipe(_))
    }
}

fn stream_error<E: std::fmt::Display>(e: imap_next::stream::Error<E>) -> ImapError {
    match e {
        imap_next::stream::Error::State(e) => ImapError::Protocol(e.to_string()),
        imap_next::stream::Error::Closed => ImapError::Io(CLOSED.into()),
        other => ImapError::Io(other.to_string()),
    }
}

/// Drives a client over any byte stream, as imap-next's `Stream::next` does over
/// TCP: hand input to the state machine, write what it outputs, and while output
/// is pending read at the same time, so a server that answers while a big
/// pipelined APPEND is still being written never deadlocks against us.
pub(super) struct Pipe {
    reader: Reader,
    writer: Writer,
    /// `chunk[..filled]` was read and not yet handed to the client.
    filled: usize,
    /// What the client produced; `output[written..]` is not yet written.
    output: Vec<u8>,
    written: usize,
    /// A burst of output was written and is not yet flushed (TLS records,
    /// deflate's sync flush).
    unflushed: bool,
    chunk: Box<[u8]>,
    /// Watching for the answer to COMPRESS, and the level to compress at.
    compress_at: Option<(CompressStart, u32)>,
    /// Reading and writing through deflate.
    compressed: bool,
}

/// Bytes read at once.
const READ_CHUNK: usize = 64 * 1024;

impl Pipe {
    pub(super) fn new(stream: Box<dyn ByteStream>) -> Pipe {
        let (reader, writer) = tokio::io::split(stream);
        Pipe {
            reader: Box::new(reader),
            writer: Box::new(writer),
            filled: 0,
            output: Vec::new(),
            written: 0,
            unflushed: false,
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            compress_at: None,
            compressed: false,
        }
    }

    async fn next(&mut self, client: &mut Client) -> Result<Event, ImapError> {
        loop {
            if self.filled > 0 {
                self.hand_input(client);
            }
            match client.next() {
                Ok(event) => return Ok(event),
                Err(Interrupt::Error(e)) => return Err(ImapError::Protocol(e.to_string())),
                // A whole command (an APPEND literal included): taken as it
                // is when nothing is waiting, not copied.
                Err(Interrupt::Io(Io::Output(bytes))) if self.output.is_empty() => {
                    self.output = bytes
                }
                Err(Interrupt::Io(Io::Output(bytes))) => self.output.extend(bytes),
                Err(Interrupt::Io(Io::NeedMoreInput)) => {}
            }
            // Reading goes on while writing or flushing: all three are
            // cancel-safe (through deflate too, see its module), and a server
            // that answers before it has read everything must never find us
            // deaf. A finished burst is flushed before the next is written
            // (RFC 4978: deflate's sync flush, so the server can act on each
            // command at once).
            let read = read(
                &mut self.reader,
                &mut self.chunk,
                &mut self.filled,
                self.compressed,
            );
            if self.unflushed {
                tokio::select! {
                    read = read => read?,
                    flushed = self.writer.flush() => {
                        flushed.map_err(io_error)?;
                        self.unflushed = false;
                    }
                }
            } else if self.written < self.output.len() {
                tokio::select! {
                    read = read => read?,
                    written = self.writer.write(&self.output[self.written..]) => match written {
                        Ok(0) => return Err(ImapError::Io(CLOSED.into())),
                        Ok(n) => {
                            // An offset, not a drain: a 16 MiB batch goes out
                            // in many writes, and moving the rest each time
                            // would copy it over and over.
                            self.written += n;
                            if self.written == self.output.len() {
                                self.output.clear();
                                self.written = 0;
                                self.unflushed = true;
                            }
                        }
                        Err(e) => return Err(io_error(e)),
                    },
                }
            } else {
                read.await?;
            }
        }
    }

    /// Hands what was read to the client; while the answer to COMPRESS is
    /// awaited, only up to its end, and what follows it is compressed.
    fn hand_input(&mut self, client: &mut Client) {
        let input = &self.chunk[..self.filled];
        self.filled = 0;
        let Some((start, level)) = &mut self.compress_at else {
            client.enqueue_input(input);
            return;
        };
        let level = *level;
        match start.find(input) {
            Found::NotYet => client.enqueue_input(input),
            Found::Refused(_) => {
                client.enqueue_input(input);
                self.compress_at = None;
            }
            Found::Compressed(at) => {
                client.enqueue_input(&input[..at]);
                let already = input[at..].to_vec();
                self.compress_at = None;
                self.start_deflate(&already, level);
            }
        }
    }

    /// From here on both ways go through deflate. Output not yet written
    /// was queued after COMPRESS, so it goes compressed too; a flush still
    /// owed passes down through the deflater's (which adds no bytes when
    /// nothing was written through it).
    fn start_deflate(&mut self, already: &[u8], level: u32) {
        let reader = std::mem::replace(&mut self.reader, Box::new(tokio::io::empty()));
        self.reader = Box::new(deflate::inflate(reader, already));
        let writer = std::mem::replace(&mut self.writer, Box::new(tokio::io::sink()));
        self.writer = Box::new(deflate::deflate(writer, level));
        self.compressed = true;
    }
}

/// One read into `chunk`, its length into `filled` (handed to the client
/// from there, not copied first); cancel-safe (nothing is read unless it
/// completes). Through deflate (`compressed`) the decoder reports a hang-up
/// as an error and gives 0 bytes only after a final block: this is where
/// both are said in the session's words ([`InflateError`]).
async fn read(
    reader: &mut Reader,
    chunk: &mut [u8],
    filled: &mut usize,
    compressed: bool,
) -> Result<(), ImapError> {
    match reader.read(chunk).await {
        Ok(0) if compressed => Err(ImapError::Io(InflateError::Ended.to_string())),
        Ok(0) => Err(ImapError::Io(CLOSED.into())),
        Ok(n) => {
            *filled = n;
            Ok(())
        }
        Err(e) if compressed => Err(match InflateError::from_read(e) {
            InflateError::HungUp => ImapError::Io(CLOSED.into()),
            other => ImapError::Io(other.to_string()),
        }),
        Err(e) => Err(io_error(e)),
    }
}

fn io_error(e: std::io::Error) -> ImapError {
    ImapError::Io(e.to_string())
}

#[cfg(test)]
mod tests {
    use imap_next::client::{Client, Event};
    use imap_next::imap_types::fetch::MessageDataItem;
    use imap_next::imap_types::response::Data;
    use imap_next::{Interrupt, Io, State};

    /// The patched fragmentizer (`patches/imap-codec`) copies the two halves
    /// of its input deque: every literal still arrives byte for byte,
    /// however the input is cut (sizes that make the deque wrap around).
    #[test]
    fn literals_arrive_whole_however_the_input_is_cut() {
        let bodies: Vec<Vec<u8>> = (0..40)
            .map(|i| (0..i * 397 + 1).map(|j| (j % 251 + 1) as u8).collect())
            .collect();
        let mut wire = b"* OK hi\r\n".to_vec();
        for (i, body) in bodies.iter().enumerate() {
            let n = i + 1;
            wire.extend(format!("* {n} FETCH (UID {n} BODY[] {{{}}}\r\n", body.len()).as_bytes());
            wire.extend(body);
            wire.extend(b")\r\n");
        }
        for cut in [1, 7, 64, 4093, 65536] {
            let mut client = Client::new(super::super::session::client_options(false));
            let mut chunks = wire.chunks(cut);
            let mut got = Vec::new();
            loop {
                match client.next() {
                    Ok(Event::DataReceived {
                        data: Data::Fetch { items, .. },
                    }) => {
                        for item in items.into_iter() {
                            if let MessageDataItem::BodyExt { data, .. } = item {
                                got.push(data.into_option().unwrap().into_owned());
                            }
                        }
                    }
                    Ok(_) | Err(Interrupt::Io(Io::Output(_))) => {}
                    Err(Interrupt::Io(Io::NeedMoreInput)) => match chunks.next() {
                        Some(chunk) => client.enqueue_input(chunk),
                        None => break,
                    },
                    Err(Interrupt::Error(e)) => panic!("cut {cut}: {e}"),
                }
            }
            assert!(
                got == bodies,
                "cut {cut}: {} of {} literals whole",
                got.len(),
                bodies.len()
            );
        }
    }
}
