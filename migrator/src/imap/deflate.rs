//! RFC 4978 COMPRESS=DEFLATE on the wire: once the server has said OK to
//! `COMPRESS DEFLATE`, every byte both ways is raw DEFLATE (RFC 1951, no zlib
//! header), by flate2 over miniz_oxide (no C zlib).
//!
//! - [`Deflate`] compresses what the session writes and ends each burst with a
//!   sync flush (as RFC 4978 asks): the server can decode a whole command as soon
//!   as it is written, not when a later one pushes it out.
//! - [`Inflate`] decompresses what the server sends.
//! - [`CompressStart`] finds where the server's stream turns compressed: right
//!   after the tagged OK line, which may arrive in the same read as the first
//!   compressed bytes.
//!
//! Both halves are cancel-safe, as [`super::transport::Pipe`] needs: a read or
//! write that returns `Pending` has taken nothing and lost nothing.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The compression level of what we send. On a mailbox that is mostly
/// attachments by bytes, miniz_oxide's level 1 sends 59.7 % of the bytes,
/// level 6 55.5 % for 2.2× the CPU (bench/RESULTS.md, "COMPRESS level").
pub const LEVEL: u32 = 1;

/// Room for compressed bytes between writes to the stream below.
const BUFFER: usize = 64 * 1024;

/// The writing half: compresses into a buffer and writes it on.
pub struct Deflate<W> {
    inner: W,
    state: Compress,
    /// `out[sent..len]` is compressed and not yet written below.
    out: Box<[u8]>,
    len: usize,
    sent: usize,
    /// Input was taken since the last sync flush.
    unflushed: bool,
}

impl<W: AsyncWrite + Unpin> Deflate<W> {
    /// Compresses everything written to `inner` from now on.
    pub fn new(inner: W, level: u32) -> Deflate<W> {
        Deflate {
            inner,
            state: Compress::new(Compression::new(level), false),
            out: vec![0; BUFFER].into_boxed_slice(),
            len: 0,
            sent: 0,
            unflushed: false,
        }
    }

    /// Writes what is compressed and not yet written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.len {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.sent..self.len]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.len = 0;
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Compresses `input` into the (empty) buffer; how much of it was taken.
    fn compress(&mut self, input: &[u8], flush: FlushCompress) -> io::Result<usize> {
        let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
        self.state
            .compress(input, &mut self.out, flush)
            .map_err(|e| io::Error::other(format!("COMPRESS: deflate failed: {e}")))?;
        self.len = (self.state.total_out() - before_out) as usize;
        Ok((self.state.total_in() - before_in) as usize)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Deflate<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        input: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was compressed before goes first; no input is taken meanwhile.
        ready!(this.poll_send(cx))?;
        if input.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let taken = this.compress(input, FlushCompress::None)?;
        if taken == 0 {
            // With an empty buffer of 64 KiB deflate always takes something.
            return Poll::Ready(Err(io::Error::other("COMPRESS: deflate took no input")));
        }
        this.unflushed = true;
        // Start writing now; what the stream below does not take yet goes
        // out on the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.poll_send(cx))?;
            if !this.unflushed {
                break;
            }
            this.compress(&[], FlushCompress::Sync)?;
            // A sync flush that fills the buffer may have more to say.
            if this.len < this.out.len() {
                this.unflushed = false;
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The reading half: reads compressed bytes from below and hands out what
/// they decompress to.
pub struct Inflate<R> {
    inner: R,
    state: Decompress,
    /// `input[start..end]` was read and not yet decompressed.
    input: Box<[u8]>,
    start: usize,
    end: usize,
    /// The last call filled the caller's buffer: more may be waiting inside
    /// the decompressor with no further input (one 64 KiB read of a mail
    /// that compresses tenfold).
    more_out: bool,
}

impl<R: AsyncRead + Unpin> Inflate<R> {
    /// Decompresses `already` (what came in the same read as the OK), then
    /// everything read from `inner`.
    pub fn new(inner: R, already: &[u8]) -> Inflate<R> {
        let mut input = vec![0; BUFFER.max(already.len())].into_boxed_slice();
        input[..already.len()].copy_from_slice(already);
        Inflate {
            inner,
            state: Decompress::new(false),
            input,
            start: 0,
            end: already.len(),
            more_out: false,
        }
    }

    /// Decompresses what is buffered into `buf`; how many bytes came out, or
    /// `None` when it needs more input.
    fn decompress(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<Option<usize>> {
        let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
        let room = buf.initialize_unfilled();
        let status = self
            .state
            .decompress(
                &self.input[self.start..self.end],
                room,
                FlushDecompress::None,
            )
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("COMPRESS: the server's deflate stream is corrupt: {e}"),
                )
            })?;
        let used = (self.state.total_in() - before_in) as usize;
        let made = (self.state.total_out() - before_out) as usize;
        self.more_out = made == room.len();
        self.start += used;
        buf.advance(made);
        if made > 0 {
            return Ok(Some(made));
        }
        if status == Status::StreamEnd {
            // RFC 4978 has no end of stream: nothing can follow this.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "COMPRESS: the server ended its deflate stream",
            ));
        }
        Ok((used > 0 && self.start < self.end).then_some(0))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Inflate<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.start < this.end || this.more_out {
                match this.decompress(buf)? {
                    Some(0) => continue,
                    Some(_) => return Poll::Ready(Ok(())),
                    None => {}
                }
            }
            // Needs more input: what is left moves to the front.
            this.input.copy_within(this.start..this.end, 0);
            this.end -= this.start;
            this.start = 0;
            if this.end == this.input.len() {
                return Poll::Ready(Err(io::Error::other(
                    "COMPRESS: inflate made no progress on a full buffer",
                )));
            }
            let mut read = ReadBuf::new(&mut this.input[this.end..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                // The server hung up (mid-stream or not): the caller's end of file.
                return Poll::Ready(Ok(()));
            }
            this.end += n;
        }
    }
}

/// Finds the end of the tagged answer to `COMPRESS` in what the server sends,
/// however it is cut into reads. Literals (`{n}`) are skipped, so a line of
/// message text is never taken for the answer.
#[derive(Debug)]
pub struct CompressStart {
    /// `TAG ` of the COMPRESS command.
    tag: Vec<u8>,
    /// The first bytes of the current line (enough for `TAG OK`).
    head: Vec<u8>,
    /// Its last bytes (enough for a literal's `{4294967295}\r\n`).
    tail: Vec<u8>,
    /// Bytes of a literal still to pass.
    literal: u64,
}

/// What [`CompressStart::find`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Not the end of the answer yet: all of it is plain.
    NotYet,
    /// The tagged OK ends at this offset: what follows is compressed.
    Compressed(usize),
    /// The tagged NO or BAD ends at this offset: nothing changes.
    Refused(usize),
}

const HEAD: usize = 8;
const TAIL: usize = 24;

impl CompressStart {
    /// Watches for the answer to the command tagged `tag`.
    pub fn new(tag: &str) -> CompressStart {
        CompressStart {
            tag: format!("{tag} ").into_bytes(),
            head: Vec::new(),
            tail: Vec::new(),
            literal: 0,
        }
    }

    /// Looks at the next bytes the server sent.
    pub fn find(&mut self, input: &[u8]) -> Found {
        let mut i = 0;
        while i < input.len() {
            if self.literal > 0 {
                let n = self.literal.min((input.len() - i) as u64);
                self.literal -= n;
                i += n as usize;
                continue;
            }
            let Some(lf) = memchr::memchr(b'\n', &input[i..]) else {
                self.note(&input[i..]);
                return Found::NotYet;
            };
            let end = i + lf + 1;
            self.note(&input[i..end]);
            i = end;
            if let Some(n) = literal_announced(&self.tail) {
                self.literal = n;
            } else if let Some(status) = self.head.strip_prefix(self.tag.as_slice()) {
                let ok = status.len() >= 2 && status[..2].eq_ignore_ascii_case(b"OK");
                return if ok {
                    Found::Compressed(i)
                } else {
                    Found::Refused(i)
                };
            }
            self.head.clear();
            self.tail.clear();
        }
        Found::NotYet
    }

    fn note(&mut self, bytes: &[u8]) {
        let want = (self.tag.len() + HEAD).saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..want.min(bytes.len())]);
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
        let extra = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..extra);
    }
}

/// The size of the literal a line ends by announcing (`{123}\r\n`, `~{123}`).
fn literal_announced(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
        .unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Text that compresses as mail does (headers, words, repeats).
    fn mail(n: usize) -> Vec<u8> {
        let mut m = Vec::new();
        let mut i = 0u64;
        while m.len() < n {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let word = [
                "the",
                "meeting",
                "budget",
                "Received:",
                "from",
                "by",
                "with",
                "ESMTPS",
            ][(i >> 60) as usize % 8];
            m.extend_from_slice(word.as_bytes());
            m.extend_from_slice(if i.is_multiple_of(7) { b"\r\n" } else { b" " });
        }
        m.truncate(n);
        m
    }

    /// Everything written through `Deflate` in bursts reads back the same
    /// through `Inflate`, however the compressed bytes are cut, and a sync
    /// flush makes each burst readable before the next is written.
    #[tokio::test]
    async fn round_trip_with_a_sync_flush_per_burst() {
        let bursts: Vec<Vec<u8>> = vec![
            b"M1 NOOP\r\n".to_vec(),
            mail(300_000),
            b"M2 LOGOUT\r\n".to_vec(),
        ];
        let (a, b) = tokio::io::duplex(4096);
        let (b_read, _b_write) = tokio::io::split(b);
        let mut writer = Deflate::new(a, LEVEL);
        let mut reader = Inflate::new(b_read, &[]);
        for burst in &bursts {
            let burst = burst.clone();
            let write = async {
                writer.write_all(&burst).await.unwrap();
                writer.flush().await.unwrap();
            };
            let mut got = vec![0; burst.len()];
            // The burst is readable whole without anything after it.
            let (_, read) = tokio::join!(write, reader.read_exact(&mut got));
            read.unwrap();
            assert!(got == burst, "a burst of {} bytes differs", burst.len());
        }
    }

    /// The server's OK and its first compressed bytes in one read: the
    /// bytes after the OK line are compressed, the line itself is not.
    #[tokio::test]
    async fn ok_and_compressed_bytes_in_one_read() {
        let mut compressed = Vec::new();
        let mut d = Deflate::new(&mut compressed, LEVEL);
        d.write_all(b"* 1 EXISTS\r\nM4 OK done\r\n").await.unwrap();
        d.flush().await.unwrap();
        drop(d);
        let mut wire = b"* OK hint\r\nM3 OK DEFLATE active\r\n".to_vec();
        let ok_end = wire.len();
        wire.extend(&compressed);
        let mut start = CompressStart::new("M3");
        assert_eq!(start.find(&wire), Found::Compressed(ok_end));
        let mut reader = Inflate::new(tokio::io::empty(), &wire[ok_end..]);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"* 1 EXISTS\r\nM4 OK done\r\n");
    }

    /// The answer is found however the reads cut it, and not inside a
    /// literal that happens to hold a line like it.
    #[test]
    fn the_answer_is_found_across_reads_and_not_in_literals() {
        let wire = b"* 1 FETCH (BODY[] {12}\r\nM3 OK fake\r\n)\r\nM3 OK go\r\nZZZ";
        let end = wire.len() - 3;
        for cut in 1..wire.len() {
            let mut start = CompressStart::new("M3");
            let first = start.find(&wire[..cut]);
            let found = match first {
                Found::NotYet => match start.find(&wire[cut..]) {
                    Found::Compressed(at) => Found::Compressed(cut + at),
                    other => other,
                },
                other => other,
            };
            assert_eq!(found, Found::Compressed(end), "cut at {cut}");
        }
        let mut start = CompressStart::new("M3");
        assert_eq!(
            start.find(b"M3 NO [COMPRESSIONACTIVE] no\r\n"),
            Found::Refused(30)
        );
        let mut start = CompressStart::new("M3");
        assert_eq!(start.find(b"M30 OK other\r\n"), Found::NotYet);
    }

    /// A mail that compresses a hundredfold read through a small buffer:
    /// the decompressor's pending output comes out with no more input.
    #[tokio::test]
    async fn output_larger_than_the_buffer_comes_out_whole() {
        let body = vec![b'y'; 5 << 20];
        let mut compressed = Vec::new();
        let mut d = Deflate::new(&mut compressed, LEVEL);
        d.write_all(&body).await.unwrap();
        d.flush().await.unwrap();
        drop(d);
        assert!(compressed.len() < body.len() / 100, "{}", compressed.len());
        // The compressed stream is read in one go, then the peer stays silent.
        let (mut peer, ours) = tokio::io::duplex(compressed.len() + 1);
        peer.write_all(&compressed).await.unwrap();
        let mut reader = Inflate::new(ours, &[]);
        let mut got = vec![0; body.len()];
        let mut chunk = [0u8; 4096];
        let mut n = 0;
        while n < body.len() {
            let k = reader.read(&mut chunk).await.unwrap();
            assert!(k > 0);
            got[n..n + k].copy_from_slice(&chunk[..k]);
            n += k;
        }
        assert!(got == body);
    }

    /// A server that hangs up mid-stream is the end of the stream (the
    /// session reports the closed connection); garbage is an error.
    #[tokio::test]
    async fn a_hang_up_mid_stream_ends_it_and_garbage_is_an_error() {
        let mut compressed = Vec::new();
        let mut d = Deflate::new(&mut compressed, LEVEL);
        d.write_all(&mail(100_000)).await.unwrap();
        d.flush().await.unwrap();
        drop(d);
        let half = &compressed[..compressed.len() / 2];
        let mut reader = Inflate::new(tokio::io::empty(), half);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert!(!got.is_empty() && got.len() < 100_000);
        let mut reader = Inflate::new(tokio::io::empty(), &[0xff; 64]);
        let e = reader.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
    }

    #[test]
    fn literals_are_read_from_the_line_end() {
        assert_eq!(literal_announced(b"* 1 FETCH (BODY[] {123}\r\n"), Some(123));
        assert_eq!(literal_announced(b"X APPEND a {5+}\r\n"), Some(5));
        assert_eq!(literal_announced(b"* 1 FETCH (BINARY[] ~{7}\r\n"), Some(7));
        assert_eq!(literal_announced(b"M1 OK {not}\r\n"), None);
        assert_eq!(literal_announced(b"M1 OK done\r\n"), None);
    }
}
