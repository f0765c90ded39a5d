//! Command-line framing with a hard length cap.
//!
//! RFC 5321 §4.5.3.1.4 sets 512 octets for a command line, §4.5.3.1.6 allows more with
//! extensions; we accept up to [`MAX_LINE`] and discard anything longer up to its LF, so
//! a client can never make us buffer without bound, and the tail of an over-long line
//! is never taken as a command of its own.

/// Longest command line accepted, CRLF included.
pub const MAX_LINE: usize = 4096;

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, LF included.
    Complete(Vec<u8>),
    /// A line over [`MAX_LINE`] ended (or started being discarded).
    TooLong,
}

/// Splits the input stream into command lines.
#[derive(Debug, Default)]
pub struct LineReader {
    partial: Vec<u8>,
    discarding: bool,
}

impl LineReader {
    /// Takes bytes from `input` until a line is complete (`Some`), or all of `input`
    /// is used (`None`: read more).
    pub fn next_line(&mut self, input: &mut std::slice::Iter<'_, u8>) -> Option<Line> {
        let bytes = input.as_slice();
        match memchr::memchr(b'\n', bytes) {
            Some(pos) => {
                *input = bytes[pos + 1..].iter();
                if std::mem::take(&mut self.discarding) {
                    // The TooLong reply was already given when discarding started.
                    self.partial.clear();
                    return self.next_line(input);
                }
                if self.partial.len() + pos + 1 > MAX_LINE {
                    self.partial.clear();
                    return Some(Line::TooLong);
                }
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&bytes[..=pos]);
                Some(Line::Complete(line))
            }
            None => {
                *input = [].iter();
                if self.discarding {
                    return None;
                }
                if self.partial.len() + bytes.len() > MAX_LINE {
                    self.partial.clear();
                    self.discarding = true;
                    return Some(Line::TooLong);
                }
                self.partial.extend_from_slice(bytes);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<Line> {
        let mut r = LineReader::default();
        let mut out = Vec::new();
        for c in chunks {
            let mut it = c.iter();
            while let Some(l) = r.next_line(&mut it) {
                out.push(l);
            }
        }
        out
    }

    #[test]
    fn splits_and_joins_lines() {
        assert_eq!(
            lines(&[b"NOOP\r\nQU", b"IT\r\n"]),
            vec![
                Line::Complete(b"NOOP\r\n".to_vec()),
                Line::Complete(b"QUIT\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn long_line_in_one_read_is_one_error() {
        let mut long = vec![b'x'; 10_000];
        long.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(
            lines(&[&long]),
            vec![Line::TooLong, Line::Complete(b"NOOP\r\n".to_vec())]
        );
    }

    #[test]
    fn long_line_across_reads_is_one_error_and_its_tail_is_dropped() {
        let a = vec![b'x'; 3000];
        let b = vec![b'y'; 3000];
        assert_eq!(
            lines(&[&a, &b, b"zzz\r\nNOOP\r\n"]),
            vec![Line::TooLong, Line::Complete(b"NOOP\r\n".to_vec())]
        );
    }

    #[test]
    fn exactly_max_is_accepted() {
        let mut l = vec![b'x'; MAX_LINE - 2];
        l.extend_from_slice(b"\r\n");
        assert_eq!(lines(&[&l]), vec![Line::Complete(l.clone())]);
    }
}
