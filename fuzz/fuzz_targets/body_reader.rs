//! The DATA/BDAT reader (`BodyReader`) and the checks on a finished message
//! (`check_content`), fed in arbitrary chunks.
//!
//! Input: byte 0 picks DATA or BDAT (and LAST), bytes 1–2 the BDAT chunk size,
//! byte 3 the read size, the rest is the stream. Checks: a BDAT chunk consumes exactly
//! its size and stores exactly it (unless over the limit); the stored message never
//! grows far past the limit (memory stays bounded); DATA ends only on CRLF.CRLF;
//! after `bare_newline = "normalize"` no bare CR or LF is left; the checks made as
//! the message streams past (`ContentScan`, in the read size's pieces, moved out
//! as a session moves them to the spool) give what the whole-message checks give,
//! and `data_ready` says whether the stored bytes could go out as DATA unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::config::BareNewline;
use relay::smtp::data::{check_content, has_bare_newline, BodyReader, ContentScan, Progress};

const LIMIT: usize = 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, stream) = data.split_at(4);
    let bdat = head[0] & 1 == 1;
    let last = head[0] & 2 == 2;
    let size = usize::from(u16::from_le_bytes([head[1], head[2]]));
    let chunk = usize::from(head[3]).max(1);
    let mut reader = if bdat {
        BodyReader::bdat(size, last, size > LIMIT)
    } else {
        BodyReader::data()
    };
    let mut message = Vec::new();
    let mut consumed = 0usize;
    let mut done = false;
    for piece in stream.chunks(chunk) {
        let mut input = piece.iter();
        let progress = reader.ingest(&mut input, &mut message, LIMIT);
        consumed += piece.len() - input.as_slice().len();
        // The reader may grow past the limit by at most one read before discarding.
        assert!(
            message.len() <= LIMIT + 2 * chunk + 8,
            "{} stored",
            message.len()
        );
        if progress == Progress::Done {
            done = true;
            break;
        }
        assert!(input.as_slice().is_empty(), "NeedMore with input left");
    }
    if bdat {
        if done {
            assert_eq!(consumed, size, "BDAT consumed other than its size");
            if !reader.is_discarding() {
                assert_eq!(message.len(), size);
            }
        } else {
            assert!(consumed < size || (size == 0 && stream.is_empty()));
        }
    } else if done && !reader.is_discarding() {
        let end = &stream[..consumed];
        assert!(
            end.ends_with(b"\r\n.\r\n") || end == b".\r\n",
            "DATA ended early"
        );
    }
    let mut normalized = message.clone();
    if check_content(&mut normalized, BareNewline::Normalize, 30).is_ok() {
        assert!(!has_bare_newline(&normalized));
    }
    let _ = check_content(&mut message, BareNewline::Reject, 30);
    for policy in [BareNewline::Normalize, BareNewline::Reject] {
        let mut whole = message.clone();
        let expected = check_content(&mut whole, policy, 30);
        let mut scan = ContentScan::new(policy, 30, 0);
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for piece in message.chunks(chunk) {
            buf.extend_from_slice(piece);
            scan.scan(&mut buf);
            let n = scan.scanned();
            out.extend(buf.drain(..n));
            scan.moved_out(n);
        }
        let verdict = scan.finish(&mut buf);
        out.extend_from_slice(&buf);
        assert_eq!(verdict, expected, "streamed checks differ");
        if verdict.is_ok() {
            assert_eq!(out, whole, "streamed normalization differs");
            // Sendable as DATA unchanged: no line begins with a dot, the last ends.
            let dot_line = out.first() == Some(&b'.') || out.windows(2).any(|w| w == b"\n.");
            let ends = out.is_empty() || out.ends_with(b"\n");
            assert_eq!(scan.data_ready(), !dot_line && ends, "data_ready differs");
        }
    }
});
