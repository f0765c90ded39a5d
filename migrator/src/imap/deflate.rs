//! RFC 4978 COMPRESS=DEFLATE on the wire: once the server has said OK to
//! `COMPRESS DEFLATE`, every byte both ways is raw DEFLATE (RFC 1951, no zlib
//! header), by async-compression's tokio adapters over flate2 and miniz_oxide
//! (no C zlib).
//!
//! - [`deflate`] compresses what the session writes; each burst ends with a
//!   sync flush (as RFC 4978 asks), so the server can decode a whole command as
//!   soon as it is written, not when a later one pushes it out.
//! - [`inflate`] decompresses what the server sends, starting with the bytes
//!   that came in the same read as the OK.
//! - [`CompressStart`] finds where the server's stream turns compressed: right
//!   after the tagged OK line, which may arrive in the same read as the first
//!   compressed bytes.
//! - [`InflateError`] says what a failed read through [`inflate`] means.
//!
//! What [`super::transport::Pipe`] relies on, as async-compression 0.4.52
//! and its compression-codecs 0.4.48 do it (paths in those crates):
//! 1. The encoder's `poll_flush` is a deflate sync flush: `Encoder::do_poll_flush`
//!    (`src/generic/write/encoder.rs`) calls `FlateEncoder::flush`
//!    (`src/flate/encoder.rs`), which compresses with `FlushCompress::Sync` and
//!    drains miniz_oxide into its buffer; then the buffer is written out and
//!    the stream below flushed. Everything written so far decodes at once.
//! 2. A read returns what is decompressed as soon as the stream below has
//!    nothing more right now: `do_poll_read` (`src/generic/bufread/decoder.rs`)
//!    returns `Ready` with the output it has when `poll_fill_buf` is
//!    `Pending`, and first drains what the decompressor still holds, with no
//!    new input. It never waits to fill the caller's buffer or for the end of
//!    the stream (an IMAP deflate stream never ends).
//! 3. Both halves are cancel-safe as the `Pipe` races them (a read against a
//!    write or a flush, the loser dropped): a `poll_write` that is `Pending`
//!    has taken no input (`Encoder::poll_write`: `Pending` only "if
//!    input.written().is_empty()"), a `poll_read` that is `Pending` has
//!    handed out nothing (`do_poll_read`: "Pending if
//!    output.written().is_empty()"), and what they did take meanwhile
//!    (compressed bytes not yet written below, input read below and consumed
//!    by the decompressor) stays inside the adapter for the next call. A
//!    flush dropped half way resumes where it stopped. The test
//!    `reads_writes_and_flushes_dropped_while_pending_lose_nothing` drops
//!    every call that would wait.

use async_compression::tokio::bufread::DeflateDecoder;
use async_compression::tokio::write::DeflateEncoder;
use async_compression::Level;
use std::fmt;
use std::io::{self, Cursor};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader, Chain};

/// The compression level of what we send. On a mailbox that is mostly
/// attachments by bytes, miniz_oxide's level 1 sends 59.7 % of the bytes,
/// level 6 55.5 % for 2.2× the CPU (bench/RESULTS.md, "COMPRESS level").
pub const LEVEL: u32 = 1;

/// Compressed bytes read from the server at once.
const READ_BUFFER: usize = 64 * 1024;

/// The writing half: raw deflate of everything written to the stream below.
pub type Deflate<W> = DeflateEncoder<W>;

/// The reading half: what the server's compressed bytes decompress to.
pub type Inflate<R> = DeflateDecoder<BufReader<Chain<Cursor<Vec<u8>>, R>>>;

/// Compresses everything written to `inner` from now on, at `level`
/// (0 to 9, as flate2 counts).
pub fn deflate<W: AsyncWrite>(inner: W, level: u32) -> Deflate<W> {
    // Each `poll_flush` is a sync flush (point 1 above); one with nothing
    // written since the last adds no bytes (`FlateEncoder`'s `flushed`).
    let level = i32::try_from(level).unwrap_or(i32::MAX);
    DeflateEncoder::with_quality(inner, Level::Precise(level))
}

/// Decompresses `already` (what came in the same read as the OK), then
/// everything read from `inner`.
pub fn inflate<R: AsyncRead>(inner: R, already: &[u8]) -> Inflate<R> {
    // Reads hand out what is decompressed at once (point 2 above). The
    // decoder reads through `poll_fill_buf`, hence the `BufReader`.
    let wire = Cursor::new(already.to_vec()).chain(inner);
    DeflateDecoder::new(BufReader::with_capacity(READ_BUFFER, wire))
}

/// What a failed read through [`inflate`] means.
#[derive(Debug)]
pub enum InflateError {
    /// The server hung up. async-compression reports the stream below
    /// ending inside the deflate stream as `UnexpectedEof` (the flate decoder
    /// since our patch, `patches/compression-codecs/PATCHED.md`), and that is
    /// where every hang-up is: RFC 4978 streams have no end.
    HungUp,
    /// What the server sent does not decompress.
    Corrupt(io::Error),
    /// A read gave 0 bytes: the decoder's end of file, which it gives only
    /// after the server ended its deflate stream (a final block). Nothing
    /// can follow, so the session cannot go on.
    Ended,
    /// The stream below failed (TLS, the socket).
    Io(io::Error),
}

impl InflateError {
    /// What a read through [`inflate`] that gave `e` means.
    pub fn from_read(e: io::Error) -> InflateError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return InflateError::HungUp;
        }
        // flate2 reports a corrupt stream as an `Other` error wrapping its
        // `DecompressError`; async-compression passes it on as it is.
        let corrupt = e
            .get_ref()
            .is_some_and(|inner| inner.is::<flate2::DecompressError>());
        if corrupt {
            InflateError::Corrupt(e)
        } else {
            InflateError::Io(e)
        }
    }
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::HungUp => f.write_str("COMPRESS: the server hung up mid-stream"),
            InflateError::Corrupt(e) => {
                write!(f, "COMPRESS: the server's deflate stream is corrupt: {e}")
            }
            InflateError::Ended => f.write_str("COMPRESS: the server ended its deflate stream"),
            InflateError::Io(e) => e.fmt(f),
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
    use tokio::io::AsyncWriteExt;

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

    /// Everything written through [`deflate`] in bursts reads back the same
    /// through [`inflate`], however the compressed bytes are cut, and a sync
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
        let mut writer = deflate(a, LEVEL);
        let mut reader = inflate(b_read, &[]);
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
        let mut d = deflate(&mut compressed, LEVEL);
        d.write_all(b"* 1 EXISTS\r\nM4 OK done\r\n").await.unwrap();
        d.flush().await.unwrap();
        drop(d);
        let mut wire = b"* OK hint\r\nM3 OK DEFLATE active\r\n".to_vec();
        let ok_end = wire.len();
        wire.extend(&compressed);
        let mut start = CompressStart::new("M3");
        assert_eq!(start.find(&wire), Found::Compressed(ok_end));
        // Nothing more comes from below: all of it is in what was read.
        let mut reader = inflate(tokio::io::empty(), &wire[ok_end..]);
        let mut got = [0u8; 24];
        reader.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"* 1 EXISTS\r\nM4 OK done\r\n");
    }

    /// Polls `f` once: its output, or `None` when it would wait (and then
    /// it is dropped, as `select!` drops the branch that lost).
    async fn once<F: std::future::Future>(f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }

    /// The `Pipe`'s way of using both halves: bursts written then flushed,
    /// and every write, flush and read that would wait dropped, as the
    /// `Pipe`'s `select!` drops the branch that lost. Nothing is lost or
    /// doubled, and once a flush is done the burst reads back whole.
    #[tokio::test]
    async fn reads_writes_and_flushes_dropped_while_pending_lose_nothing() {
        let sent = mail(600_000);
        // A small pipe, so writes and flushes wait on reads.
        let (a, b) = tokio::io::duplex(512);
        let (b_read, _b_write) = tokio::io::split(b);
        let mut writer = deflate(a, LEVEL);
        let mut reader = inflate(b_read, &[]);
        let (mut written, mut burst_end, mut unflushed) = (0, 0, false);
        let (mut got, mut chunk) = (Vec::new(), [0u8; 1000]);
        let (mut writes_dropped, mut flushes_dropped, mut reads_dropped) = (0, 0, 0);
        // Unconstrained: this loop never yields to the runtime, so tokio's
        // cooperative budget would run out and the duplex say Pending from
        // then on.
        tokio::task::unconstrained(async {
            while written < sent.len() || unflushed {
                let waits = if unflushed {
                    match once(writer.flush()).await {
                        Some(done) => {
                            done.unwrap();
                            unflushed = false;
                            // All of the burst decodes now, with nothing after.
                            while let Some(n) = once(reader.read(&mut chunk)).await {
                                got.extend_from_slice(&chunk[..n.unwrap()]);
                            }
                            reads_dropped += 1;
                            assert_eq!(got.len(), written);
                            false
                        }
                        None => {
                            flushes_dropped += 1;
                            true
                        }
                    }
                } else {
                    if written == burst_end {
                        burst_end = (written + 150_000).min(sent.len());
                    }
                    match once(writer.write(&sent[written..burst_end])).await {
                        Some(n) => {
                            written += n.unwrap();
                            unflushed = written == burst_end;
                            false
                        }
                        None => {
                            writes_dropped += 1;
                            true
                        }
                    }
                };
                // The pipe is full: reading makes room.
                if waits {
                    match once(reader.read(&mut chunk)).await {
                        Some(n) => got.extend_from_slice(&chunk[..n.unwrap()]),
                        None => reads_dropped += 1,
                    }
                }
            }
        })
        .await;
        assert!(got == sent, "{} of {} bytes", got.len(), sent.len());
        // The races did happen.
        assert!(
            writes_dropped > 0 && flushes_dropped > 0 && reads_dropped > 0,
            "{writes_dropped} {flushes_dropped} {reads_dropped}"
        );
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
        let mut d = deflate(&mut compressed, LEVEL);
        d.write_all(&body).await.unwrap();
        d.flush().await.unwrap();
        drop(d);
        assert!(compressed.len() < body.len() / 100, "{}", compressed.len());
        // The compressed stream is read in one go, then the peer stays silent.
        let (mut peer, ours) = tokio::io::duplex(compressed.len() + 1);
        peer.write_all(&compressed).await.unwrap();
        let mut reader = inflate(ours, &[]);
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

    /// A server that hangs up mid-stream: what was decodable comes out,
    /// then the read fails as a hang-up (the session reports the closed
    /// connection); garbage is an error that says so.
    #[tokio::test]
    async fn a_hang_up_mid_stream_ends_it_and_garbage_is_an_error() {
        let mut compressed = Vec::new();
        let mut d = deflate(&mut compressed, LEVEL);
        d.write_all(&mail(100_000)).await.unwrap();
        d.flush().await.unwrap();
        drop(d);
        let half = &compressed[..compressed.len() / 2];
        let mut reader = inflate(tokio::io::empty(), half);
        let mut got = Vec::new();
        let e = reader.read_to_end(&mut got).await.unwrap_err();
        assert!(!got.is_empty() && got.len() < 100_000);
        let e = InflateError::from_read(e);
        assert!(matches!(e, InflateError::HungUp), "{e:?} {}", got.len());
        let mut reader = inflate(tokio::io::empty(), &[0xff; 64]);
        let e = reader.read_to_end(&mut Vec::new()).await.unwrap_err();
        let e = InflateError::from_read(e);
        assert!(matches!(e, InflateError::Corrupt(_)), "{e:?}");
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
