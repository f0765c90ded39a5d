//! The bytes under a session: what carries `imap-next`'s client state machine.
//!
//! Every TLS connection, and any other byte stream — an in-memory
//! `tokio::io::duplex` in the scripted tests — is driven by `Pipe`: the state
//! machine fed 64 KiB reads, its output written from one buffer. So the
//! commands and the copy above it run the same code against a scripted server
//! with no network. Only a plaintext TCP connection (before STARTTLS, or
//! without TLS where allowed) uses imap-next's own `Stream`, from which the
//! TCP stream can be taken back for the handshake.

use super::ImapError;
use imap_next::client::{Client, Event};
use imap_next::stream::Stream;
use imap_next::{Interrupt, Io, State};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// A byte stream a session can run over.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

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
    reader: ReadHalf<Box<dyn ByteStream>>,
    writer: WriteHalf<Box<dyn ByteStream>>,
    /// `chunk[..filled]` was read and not yet handed to the client.
    filled: usize,
    /// What the client produced; `output[written..]` is not yet written.
    output: Vec<u8>,
    written: usize,
    chunk: Box<[u8]>,
}

/// Bytes read at once.
const READ_CHUNK: usize = 64 * 1024;

impl Pipe {
    pub(super) fn new(stream: Box<dyn ByteStream>) -> Pipe {
        let (reader, writer) = tokio::io::split(stream);
        Pipe {
            reader,
            writer,
            filled: 0,
            output: Vec::new(),
            written: 0,
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
        }
    }

    async fn next(&mut self, client: &mut Client) -> Result<Event, ImapError> {
        loop {
            if self.filled > 0 {
                client.enqueue_input(&self.chunk[..self.filled]);
                self.filled = 0;
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
            if self.written == self.output.len() {
                read(&mut self.reader, &mut self.chunk, &mut self.filled).await?;
            } else {
                tokio::select! {
                    read = read(&mut self.reader, &mut self.chunk, &mut self.filled) => read?,
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
                                self.writer.flush().await.map_err(io_error)?;
                            }
                        }
                        Err(e) => return Err(io_error(e)),
                    },
                }
            }
        }
    }
}

/// One read into `chunk`, its length into `filled` (handed to the client
/// from there, not copied first); cancel-safe (nothing is read unless it
/// completes).
async fn read(
    reader: &mut ReadHalf<Box<dyn ByteStream>>,
    chunk: &mut [u8],
    filled: &mut usize,
) -> Result<(), ImapError> {
    match reader.read(chunk).await {
        Ok(0) => Err(ImapError::Io(CLOSED.into())),
        Ok(n) => {
            *filled = n;
            Ok(())
        }
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
