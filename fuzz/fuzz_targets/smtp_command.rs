//! SMTP command framing and parsing: `LineReader` + `smtp_proto::Request::parse`, the
//! path every client byte takes before the session acts on it.
//!
//! The first input byte picks the read size, so the same bytes are also split across
//! "network reads" at arbitrary points. Checks: a complete line never exceeds
//! `MAX_LINE`, framing never invents or loses bytes, and an accepted address never
//! carries CR or LF (it would be written back out in a RCPT/MAIL command).
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::smtp::line::{Line, LineReader, MAX_LINE};
use smtp_proto::Request;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut reader = LineReader::default();
    let mut framed = 0usize;
    for piece in data.chunks(chunk) {
        let mut input = piece.iter();
        while let Some(line) = reader.next_line(&mut input) {
            let Line::Complete(line) = line else { continue };
            assert!(line.len() <= MAX_LINE, "line of {} bytes", line.len());
            assert_eq!(line.last(), Some(&b'\n'));
            framed += line.len();
            check_request(&line);
        }
    }
    assert!(framed <= data.len());
});

fn check_request(line: &[u8]) {
    let Ok(request) = Request::parse(&mut line.iter()) else {
        return;
    };
    let addresses: Vec<&str> = match &request {
        Request::Mail { from } => vec![from.address.as_ref()],
        Request::Rcpt { to } => vec![to.address.as_ref()],
        _ => Vec::new(),
    };
    for a in addresses {
        assert!(!a.contains(['\r', '\n']), "address with a line end: {a:?}");
    }
}
