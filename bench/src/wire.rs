//! Reading SMTP replies (RFC 5321 §4.2: `NNN-text` continuation lines, `NNN text`
//! last line).

use std::io;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One reply: its code and every line's text joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The lines' text after the code and separator.
    pub text: String,
}

/// A peer silent for this long is stuck: fail the run rather than hang it.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Reads one complete reply; `UnexpectedEof` when the peer closed first,
/// `TimedOut` after [`REPLY_TIMEOUT`] without one.
pub async fn read_reply<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Reply> {
    tokio::time::timeout(REPLY_TIMEOUT, read_reply_inner(r))
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in 300 s")))
}

async fn read_reply_inner<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Reply> {
    let mut text = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the reply",
            ));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        let code = l
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad reply {l:?}"))
            })?;
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(l.get(4..).unwrap_or(""));
        if l.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply { code, text });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multi_line_reply_is_one_value() {
        let mut input: &[u8] = b"250-relay.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n220 next\r\n";
        let r = read_reply(&mut input).await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.text, "relay.test\nPIPELINING\n8BITMIME");
        assert_eq!(read_reply(&mut input).await.unwrap().code, 220);
        assert!(read_reply(&mut input).await.is_err());
    }
}
