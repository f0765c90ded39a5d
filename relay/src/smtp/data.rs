//! Message content: the DATA and BDAT readers and the checks made on a complete message.
//!
//! The byte-level state machines come from `smtp-proto` (the same ones Stalwart runs):
//! only `<CRLF>.<CRLF>` ends DATA, so a bare LF or CR followed by a dot can never end a
//! message early or smuggle a second one (the 2023 "SMTP smuggling" class). What is
//! added here is the size cap (switch to discarding once over the limit, so memory stays
//! bounded) and the bare-newline policy on the finished message.

use crate::config::BareNewline;
use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, DummyDataReceiver};
use std::slice::Iter;

/// Reads one DATA body or one BDAT chunk into a message buffer.
pub enum BodyReader {
    /// DATA, still storing.
    Data(DataReceiver),
    /// DATA over the size limit: the same end detection, keeping only a short tail.
    DataDiscard {
        /// The receiver that finds the end.
        rx: DataReceiver,
        /// The last bytes seen (enough to recognise a false end).
        tail: Vec<u8>,
    },
    /// BDAT chunk, still storing.
    Bdat(BdatReceiver),
    /// A BDAT chunk that is not kept (over the limit, or no valid transaction).
    Discard {
        /// The receiver that counts the chunk's bytes.
        rx: DummyDataReceiver,
        /// BDAT LAST seen.
        last: bool,
    },
}

/// Bytes of a discarded DATA body kept to recognise a false end.
const DISCARD_TAIL: usize = 64;

/// What a reader did with the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More input is needed.
    NeedMore,
    /// The DATA body or BDAT chunk is complete.
    Done,
}

impl BodyReader {
    /// Starts reading a DATA body.
    pub fn data() -> Self {
        BodyReader::Data(DataReceiver::new())
    }

    /// Starts reading a BDAT chunk of `size` bytes; `discard` when it must not be kept
    /// (no valid transaction, or it would exceed the size limit).
    pub fn bdat(size: usize, last: bool, discard: bool) -> Self {
        if discard {
            BodyReader::Discard {
                rx: DummyDataReceiver::new_bdat(size),
                last,
            }
        } else {
            BodyReader::Bdat(BdatReceiver::new(size, last))
        }
    }

    /// True when this reader keeps nothing.
    pub fn is_discarding(&self) -> bool {
        matches!(
            self,
            BodyReader::Discard { .. } | BodyReader::DataDiscard { .. }
        )
    }

    /// Consumes bytes from `input` into `message`. When `message` grows past `limit`
    /// the reader switches to discarding (the caller sees `message.len() > limit`).
    pub fn ingest(
        &mut self,
        input: &mut Iter<'_, u8>,
        message: &mut Vec<u8>,
        limit: usize,
    ) -> Progress {
        let done = match self {
            BodyReader::Data(rx) => {
                let done = data_ingest(rx, input, message);
                if !done && message.len() > limit {
                    // Stop storing, but keep the very same end detection: a cheaper
                    // receiver here would reopen the false-end hole below.
                    let rx = std::mem::replace(rx, DataReceiver::new());
                    *self = BodyReader::DataDiscard {
                        rx,
                        tail: Vec::new(),
                    };
                }
                done
            }
            BodyReader::DataDiscard { rx, tail } => {
                let done = data_ingest(rx, input, tail);
                if tail.len() > DISCARD_TAIL {
                    tail.drain(..tail.len() - DISCARD_TAIL);
                }
                done
            }
            BodyReader::Bdat(rx) => rx.ingest(input, message),
            BodyReader::Discard { rx, .. } => rx.ingest(input),
        };
        if done {
            Progress::Done
        } else {
            Progress::NeedMore
        }
    }
}

/// DATA through smtp-proto's receiver, minus one of its leniencies.
///
/// smtp-proto 0.2.5 also ends DATA on <CRLF>.<CR>…<CR><LF> (a dot line with extra CRs)
/// and leaves those CRs in the buffer. Found by fuzzing (issue #6): a sender that passes
/// such a line through as data would let the rest be read as new commands here (SMTP
/// smuggling). The line is put back as data and reading goes on.
fn data_ingest(rx: &mut DataReceiver, input: &mut Iter<'_, u8>, buf: &mut Vec<u8>) -> bool {
    let mut done = rx.ingest(input, buf);
    while done && buf.last() == Some(&b'\r') {
        let crs = buf.iter().rev().take_while(|&&b| b == b'\r').count();
        buf.truncate(buf.len() - crs);
        buf.push(b'.');
        buf.extend(std::iter::repeat_n(b'\r', crs + 1));
        buf.push(b'\n');
        // A fresh receiver that has just seen a CRLF.
        *rx = DataReceiver::new();
        rx.ingest(&mut b"\r\n".iter(), &mut Vec::new());
        done = rx.ingest(input, buf);
    }
    done
}

/// Why a complete message is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentError {
    /// A bare LF or CR, with `bare_newline = "reject"`.
    BareNewline,
    /// More `Received:` fields than allowed: a loop.
    TooManyReceived,
}

/// The checks on a message made as it passes, chunk by chunk, so that a
/// message streamed to the spool gets exactly the checks a whole one would
/// ([`check_content`]): the bare-newline policy and the count of `Received:`
/// fields in its header section (RFC 5321 §6.3 loop detection).
///
/// The reader appends to a buffer; [`ContentScan::scan`] checks (and, with
/// `Normalize`, rewrites) the bytes appended since the last call, up to what
/// can be decided now. What it leaves unscanned at the end of the buffer — a
/// trailing CR whose LF may be coming, or the start of a line a reader may
/// still rewrite — must stay in the buffer ([`ContentScan::scanned`] says how
/// far the buffer may be moved out).
#[derive(Debug)]
pub struct ContentScan {
    policy: BareNewline,
    max_received: usize,
    scanned: usize,
    bare: bool,
    in_headers: bool,
    headers: Vec<u8>,
    received: usize,
    /// A line of the message begins with "." (DATA must stuff it).
    dot_line: bool,
    /// The last byte scanned ended a line (so does our `Received:` field).
    line_start: bool,
}

/// The last line of the buffer is left for later up to this length (the DATA
/// reader may still rewrite it, see `data_ingest`); a longer one is scanned.
const HELD_LINE: usize = 64 * 1024;

impl ContentScan {
    /// Checks the bytes a reader appends after offset `start` of its buffer
    /// (before it: the relay's own `Received:` field).
    pub fn new(policy: BareNewline, max_received: usize, start: usize) -> Self {
        ContentScan {
            policy,
            max_received,
            scanned: start,
            bare: false,
            in_headers: true,
            headers: Vec::new(),
            received: 0,
            dot_line: false,
            line_start: true,
        }
    }

    /// After [`ContentScan::finish`]: whether the bytes as stored are DATA
    /// content as they stand (no line begins with ".", the last ends with
    /// CRLF), so delivery may send the file without reading it (sendfile).
    /// Base64 never has a dot at a line's start, so large attachments are.
    pub fn data_ready(&self) -> bool {
        !self.dot_line && self.line_start
    }

    /// How much of the buffer is checked (and may leave it).
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// The buffer lost its first `n` bytes (they went to the spool).
    pub fn moved_out(&mut self, n: usize) {
        self.scanned = self.scanned.saturating_sub(n);
    }

    /// Checks what can be decided of the bytes appended since the last call.
    pub fn scan(&mut self, buf: &mut Vec<u8>) {
        let tail = &buf[self.scanned..];
        let end = match memchr::memrchr(b'\n', tail) {
            Some(lf) if tail.len() - lf - 1 <= HELD_LINE => self.scanned + lf + 1,
            _ if tail.len() > HELD_LINE => {
                // A line longer than anything a reader rewrites: scan it,
                // all but CRs at the very end (their LF may be coming).
                buf.len() - tail.iter().rev().take_while(|&&b| b == b'\r').count()
            }
            _ => return,
        };
        self.scan_to(buf, end);
    }

    /// The message is complete: checks the rest and says whether it passes.
    pub fn finish(&mut self, buf: &mut Vec<u8>) -> Result<(), ContentError> {
        let end = buf.len();
        self.scan_to(buf, end);
        self.close_headers();
        if self.bare && self.policy == BareNewline::Reject {
            return Err(ContentError::BareNewline);
        }
        if self.received > self.max_received {
            return Err(ContentError::TooManyReceived);
        }
        Ok(())
    }

    fn scan_to(&mut self, buf: &mut Vec<u8>, end: usize) {
        let start = self.scanned;
        if start >= end {
            return;
        }
        let region = &buf[start..end];
        if has_bare_newline(region) {
            self.bare = true;
            if self.policy == BareNewline::Normalize {
                let fixed = normalize_newlines(region);
                let grown = fixed.len() - region.len();
                buf.splice(start..end, fixed);
                self.note_lines(&buf[start..end + grown]);
                self.count_received(&buf[start..end + grown]);
                self.scanned = end + grown;
                return;
            }
        }
        self.note_lines(&buf[start..end]);
        self.count_received(&buf[start..end]);
        self.scanned = end;
    }

    /// Looks for a line beginning with "." in bytes as they will be stored.
    fn note_lines(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else {
            return;
        };
        if !self.dot_line {
            self.dot_line = (self.line_start && bytes[0] == b'.')
                || memchr::memmem::find(bytes, b"\n.").is_some();
        }
        self.line_start = last == b'\n';
    }

    /// Keeps the header section (up to [`MAX_HEADERS`]) as it passes; when
    /// it is complete, counts its `Received:` fields with the same parser a
    /// whole message gets.
    fn count_received(&mut self, bytes: &[u8]) {
        if !self.in_headers {
            return;
        }
        let room = MAX_HEADERS.saturating_sub(self.headers.len());
        self.headers
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        let complete = memchr::memmem::find(&self.headers, b"\r\n\r\n").is_some()
            || self.headers.starts_with(b"\r\n")
            || self.headers.len() >= MAX_HEADERS;
        if complete {
            self.close_headers();
        }
    }

    fn close_headers(&mut self) {
        if self.in_headers {
            self.in_headers = false;
            self.received = count_received(&self.headers);
            self.headers = Vec::new();
        }
    }
}

/// The header section kept for the loop check: RFC 5322 sets no limit, but
/// the `Received:` fields of a loop are at the top (Postfix keeps 100 kB,
/// `header_size_limit`).
const MAX_HEADERS: usize = 256 * 1024;

/// Applies the bare-newline policy and the loop check to a complete message.
///
/// With `Normalize`, bare LF and bare CR become CRLF (RFC 5321 §2.3.8 requires CRLF;
/// a gateway that passes bare LFs on lets the next hop disagree about line ends).
pub fn check_content(
    message: &mut Vec<u8>,
    policy: BareNewline,
    max_received: usize,
) -> Result<(), ContentError> {
    if has_bare_newline(message) {
        match policy {
            BareNewline::Reject => return Err(ContentError::BareNewline),
            BareNewline::Normalize => *message = normalize_newlines(message),
        }
    }
    if count_received(message) > max_received {
        return Err(ContentError::TooManyReceived);
    }
    Ok(())
}

/// True when `bytes` holds an LF not preceded by CR or a CR not followed by LF.
///
/// In a CRLF-only text every pair of neighbouring bytes is either "CR, LF" or
/// has neither (a CR first without the LF, or an LF second without the CR, is
/// a bare one), and it neither starts with LF nor ends with CR. The pairs are
/// compared in blocks the compiler vectorises: stopping at every CR and LF
/// (memchr2, twice a line) was a tenth of the relay's CPU with 10 MiB messages.
pub fn has_bare_newline(bytes: &[u8]) -> bool {
    const BLOCK: usize = 512;
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if first == b'\n' || last == b'\r' {
        return true;
    }
    let (firsts, seconds) = (&bytes[..bytes.len() - 1], &bytes[1..]);
    firsts
        .chunks(BLOCK)
        .zip(seconds.chunks(BLOCK))
        .any(|(firsts, seconds)| {
            let bare = firsts.iter().zip(seconds).fold(0u8, |bare, (&a, &b)| {
                bare | ((a == b'\r') as u8 ^ (b == b'\n') as u8)
            });
            bare != 0
        })
}

/// Rewrites every bare LF and bare CR as CRLF.
pub fn normalize_newlines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Counts `Received:` fields in the header section (RFC 5321 §6.3 loop detection).
///
/// Field names only, line by line (RFC 5322 §2.2: a field starts a line, a
/// line starting with white space continues the one before, an empty line
/// ends the section; `obs-optional` allows white space before the colon).
/// Parsing the fields with mail-parser read every value by its kind
/// (addresses, dates, each clause of each `Received:`): 8 % of the relay's
/// instructions per 4 KiB message, for a count that needs none of it.
pub fn count_received(message: &[u8]) -> usize {
    let mut count = 0;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None => break,
            Some(b' ' | b'\t') => continue,
            Some(_) => {}
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        if line[..colon]
            .trim_ascii_end()
            .eq_ignore_ascii_case(b"received")
        {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut BodyReader, chunks: &[&[u8]], limit: usize) -> (Vec<u8>, bool) {
        let mut msg = Vec::new();
        for c in chunks {
            let mut it = c.iter();
            if reader.ingest(&mut it, &mut msg, limit) == Progress::Done {
                return (msg, true);
            }
        }
        (msg, false)
    }

    #[test]
    fn data_ends_only_on_crlf_dot_crlf() {
        let mut r = BodyReader::data();
        let (msg, done) = feed(&mut r, &[b"a\n.\nb\r.\rc\r\n", b".\r\n"], 1000);
        assert!(done);
        assert_eq!(msg, b"a\n.\nb\r.\rc\r\n");
    }

    #[test]
    fn smuggled_second_message_stays_inside_the_first() {
        let mut r = BodyReader::data();
        let body: &[u8] = b"x\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nevil\r\n.\r\n";
        let (msg, done) = feed(&mut r, &[body], 1000);
        assert!(done);
        assert!(msg.ends_with(b"DATA\r\nevil\r\n"));
    }

    /// Regression (fuzz, issue #6): `<CRLF>.<CR><CR><LF>` is not the end of DATA.
    #[test]
    fn dot_line_with_extra_crs_does_not_end_data() {
        let mut r = BodyReader::data();
        let body: &[u8] = b"a\r\n.\r\r\nMAIL FROM:<x@y>\r\n.\r\r\r\n.\r\n";
        let (msg, done) = feed(&mut r, &[body], 1000);
        assert!(done);
        assert_eq!(msg, b"a\r\n.\r\r\nMAIL FROM:<x@y>\r\n.\r\r\r\n");
        // Split across reads at every point, the same.
        for cut in 1..body.len() {
            let mut r = BodyReader::data();
            let (split, done) = feed(&mut r, &[&body[..cut], &body[cut..]], 1000);
            assert!(done, "cut {cut}");
            assert_eq!(split, msg, "cut {cut}");
        }
    }

    #[test]
    fn oversize_data_is_discarded_but_end_is_found() {
        let mut r = BodyReader::data();
        let big = vec![b'x'; 5000];
        let (msg, done) = feed(&mut r, &[b"hdr\r\n", &big, &big, b"\r\n.\r\n"], 1000);
        assert!(done);
        assert!(r.is_discarding());
        assert!(
            msg.len() > 1000 && msg.len() < 6000,
            "stopped storing: {}",
            msg.len()
        );
    }

    #[test]
    fn oversize_data_does_not_end_on_a_dot_line_with_extra_crs() {
        let mut r = BodyReader::data();
        let big = vec![b'x'; 5000];
        let tail: &[u8] = b"\r\n.\r\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n";
        let (_, done) = feed(&mut r, &[&big, tail], 1000);
        assert!(!done, "a false end while discarding");
        assert!(r.is_discarding());
        let mut msg = Vec::new();
        let mut it = b"x\r\n.\r\nNOOP\r\n".iter();
        assert_eq!(r.ingest(&mut it, &mut msg, 1000), Progress::Done);
        assert_eq!(it.as_slice(), b"NOOP\r\n", "the real end is found");
    }

    #[test]
    fn bdat_takes_exact_chunk() {
        let mut r = BodyReader::bdat(5, true, false);
        let mut msg = Vec::new();
        let mut it = b"12345QUIT\r\n".iter();
        assert_eq!(r.ingest(&mut it, &mut msg, 100), Progress::Done);
        assert_eq!(msg, b"12345");
        assert_eq!(it.as_slice(), b"QUIT\r\n");
    }

    #[test]
    fn bare_newlines() {
        assert!(!has_bare_newline(b"a\r\nb\r\n"));
        assert!(has_bare_newline(b"a\nb\r\n"));
        assert!(has_bare_newline(b"a\rb\r\n"));
        assert!(has_bare_newline(b"\n"));
        assert!(has_bare_newline(b"a\r"));
        assert_eq!(normalize_newlines(b"a\nb\rc\r\n"), b"a\r\nb\r\nc\r\n");
        let mut m = b"a\nb\r\n".to_vec();
        assert_eq!(
            check_content(&mut m, BareNewline::Reject, 50),
            Err(ContentError::BareNewline)
        );
        assert_eq!(check_content(&mut m, BareNewline::Normalize, 50), Ok(()));
        assert_eq!(m, b"a\r\nb\r\n");
    }

    /// The pairwise check against the definition, byte by byte, on inputs
    /// dense in CRs and LFs, long enough to cross its blocks.
    #[test]
    fn bare_newline_check_matches_the_definition() {
        fn by_definition(bytes: &[u8]) -> bool {
            (0..bytes.len()).any(|i| match bytes[i] {
                b'\n' => i == 0 || bytes[i - 1] != b'\r',
                b'\r' => bytes.get(i + 1) != Some(&b'\n'),
                _ => false,
            })
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 1100) as usize;
            let mut bytes: Vec<u8> = b"ab\r\n".repeat(len / 4 + 1);
            bytes.truncate(len);
            // A few bytes changed at random places, often none.
            for _ in 0..next() % 3 {
                if !bytes.is_empty() {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = b"\r\nx"[(next() % 3) as usize];
                }
            }
            assert_eq!(has_bare_newline(&bytes), by_definition(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn received_loop() {
        let mut m = Vec::new();
        for i in 0..3 {
            m.extend_from_slice(
                format!("Received: from h{i} by x; Mon, 1 Jan 2024 00:00:00 +0000\r\n").as_bytes(),
            );
        }
        m.extend_from_slice(b"Subject: x\r\n\r\nReceived: in body\r\n");
        assert_eq!(count_received(&m), 3);
        assert_eq!(
            check_content(&mut m, BareNewline::Reject, 2),
            Err(ContentError::TooManyReceived)
        );
        assert_eq!(check_content(&mut m, BareNewline::Reject, 3), Ok(()));
    }

    /// The count by field names is mail-parser's count, on fields whose
    /// values it reads by kind (addresses, dates, ids, received) and on the
    /// odd lines (folded, no colon, white space before the colon).
    #[test]
    fn received_count_by_names_is_the_full_parse_count() {
        fn full_parse(message: &[u8]) -> usize {
            mail_parser::MessageParser::new()
                .parse_headers(message)
                .map_or(0, |m| {
                    m.headers()
                        .iter()
                        .filter(|h| h.name == mail_parser::HeaderName::Received)
                        .count()
                })
        }
        let samples: [&[u8]; 8] = [
            b"Received: from a (a [192.0.2.1]) by b with ESMTPS id X;\r\n Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: \"Q, R\" <q@r>, (c) s@t\r\nReceived: by c; Tue, 2 Jan 2024 00:00:00 +0000\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nReceived: body\r\n",
            b"To: a@b,\r\n c@d\r\nreceived:x\r\nRECEIVED : y\r\n\tReceived: folded\r\nSubject: =?utf-8?q?Received=3A?=\r\n\r\n",
            b"Received: from x\r\n",
            b"no colon here\r\nReceived: after\r\n\r\n",
            b"\r\nReceived: none (body only)\r\n",
            b"From: (comment\r\n continued) a@b\r\nReceived: z\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nReceived: part\r\n",
            b"",
            b"X: bare\nReceived: lf only\n\nReceived: body\n",
        ];
        for m in samples {
            assert_eq!(
                count_received(m),
                full_parse(m),
                "{:?}",
                String::from_utf8_lossy(m)
            );
        }
        assert_eq!(count_received(samples[0]), 2);
    }

    /// Streams `message` behind `prefix` in pieces of `piece` bytes, moving
    /// what is scanned out of the buffer as a session does; returns what
    /// reached the spool, the verdict and `data_ready`.
    fn streamed(
        prefix: &[u8],
        message: &[u8],
        piece: usize,
        policy: BareNewline,
        max: usize,
    ) -> (Vec<u8>, Result<(), ContentError>, bool) {
        let mut buf = prefix.to_vec();
        let mut out = Vec::new();
        let mut scan = ContentScan::new(policy, max, prefix.len());
        for chunk in message.chunks(piece.max(1)) {
            buf.extend_from_slice(chunk);
            scan.scan(&mut buf);
            let n = scan.scanned();
            out.extend(buf.drain(..n));
            scan.moved_out(n);
        }
        let verdict = scan.finish(&mut buf);
        out.extend_from_slice(&buf);
        (out, verdict, scan.data_ready())
    }

    /// Issue #15: checks made as the message passes, in any pieces, are the
    /// checks made on the whole.
    #[test]
    fn streamed_checks_are_the_whole_message_checks() {
        let prefix: &[u8] = b"Received: ours\r\n";
        let samples: [&[u8]; 6] = [
            b"Received: a\r\nReceived: b\r\nReceived: c\r\nSubject: s\r\n\r\nReceived: no\r\n",
            b"Subject: bare\nlines\r\nand\rcr\r\n\r\nbody\n\r",
            b"received : x\r\n RECEIVED: folded\r\nReceived:y\r\n\r\n",
            b"no header end at all\r\nReceived: z\r",
            b"\r\n\r\nReceived: in the body\r\n",
            b"a\r\r\nb\n\nc\r\r\r\n",
        ];
        for message in samples {
            for policy in [BareNewline::Normalize, BareNewline::Reject] {
                for max in [0, 2, 3] {
                    let mut whole = message.to_vec();
                    let expected = check_content(&mut whole, policy, max);
                    let mut expected_out = prefix.to_vec();
                    expected_out.extend_from_slice(&whole);
                    for piece in 1..=message.len() + 1 {
                        let (out, verdict, _) = streamed(prefix, message, piece, policy, max);
                        assert_eq!(verdict, expected, "{message:?} in pieces of {piece}");
                        if verdict.is_ok() {
                            assert_eq!(out, expected_out, "{message:?} in pieces of {piece}");
                        }
                    }
                }
            }
        }
    }

    /// Issue #15: `data_ready` says, in any pieces, whether the stored bytes
    /// can go out as DATA unchanged: no line starts with a dot, the last ends.
    #[test]
    fn data_ready_is_no_dot_line_and_a_final_line_end() {
        let prefix: &[u8] = b"Received: ours\r\n";
        let samples: [(&[u8], bool); 7] = [
            (b"Subject: s\r\n\r\nbody\r\n", true),
            (b".starts with a dot\r\n", false),
            (b"Subject: s\r\n\r\nline\r\n.dot line\r\n", false),
            (b"Subject: s\r\n\r\na.b\r\n", true),
            (b"Subject: s\r\n\r\nno final line end", false),
            (b"Subject: s\r\n\r\nbare\n.dot after a bare LF\r\n", false),
            (b"", true),
        ];
        for (message, ready) in samples {
            for piece in 1..=message.len() + 1 {
                let (_, verdict, data_ready) =
                    streamed(prefix, message, piece, BareNewline::Normalize, 30);
                verdict.unwrap();
                assert_eq!(data_ready, ready, "{message:?} in pieces of {piece}");
            }
        }
    }
}
