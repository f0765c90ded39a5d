//! The on-disk format of one spooled message, as bytes in and values out (no I/O).
//!
//! A message file is readable with `less`:
//!
//! ```text
//! COEXIST-SPOOL 1 <envelope length> <message length> <crc32, 8 hex digits>\n
//! { ...the envelope as pretty JSON... }\n
//! Received: ...\r\n
//! ...the message exactly as received...
//! ```
//!
//! The lengths are decimal byte counts; the envelope length includes its
//! final newline. The CRC-32 (IEEE) covers everything after the first line
//! (envelope and message), so damage anywhere in an acknowledged message is
//! detected rather than relayed.

use super::envelope::Envelope;
use thiserror::Error;

/// First word of every message file.
pub const MAGIC: &str = "COEXIST-SPOOL";
/// Format version written by this code; the only one it reads.
pub const VERSION: u32 = 1;
/// A first line longer than this is not ours (magic + version + 2 × u64 + crc + spaces).
const MAX_FIRST_LINE: usize = 80;

/// Why bytes are not a valid message file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The first line is missing, does not start with the magic, or is malformed.
    #[error("not a coexist spool file (bad first line)")]
    NotASpoolFile,
    /// Written by a newer (or older) format.
    #[error("unsupported spool format version {0}")]
    UnsupportedVersion(u32),
    /// Shorter than the first line says: the write never finished.
    #[error("truncated: {actual} bytes, first line promises {expected}")]
    Truncated {
        /// Length the first line promises.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// Longer than the first line says.
    #[error("{extra} bytes after the end of the message")]
    TrailingData {
        /// Bytes beyond the promised length.
        extra: u64,
    },
    /// The CRC-32 does not match: the content changed after it was written.
    #[error("checksum mismatch: file says {expected:08x}, content is {actual:08x}")]
    Checksum {
        /// CRC in the first line.
        expected: u32,
        /// CRC of the content.
        actual: u32,
    },
    /// The envelope is not valid JSON for an [`Envelope`].
    #[error("bad envelope: {0}")]
    Envelope(#[from] serde_json::Error),
    /// The envelope belongs to another queue id than the file's name.
    #[error("envelope is for queue id {found:?}, file is named {expected}")]
    WrongId {
        /// The id the file name gives.
        expected: String,
        /// The id inside the envelope.
        found: String,
    },
}

/// A message file split into its parts.
#[derive(Debug)]
pub struct Decoded {
    /// The envelope embedded in the file.
    pub envelope: Envelope,
    /// Offset of the message bytes (Received header + body) in the file.
    pub message_offset: usize,
}

/// The envelope as it is written into a message file (and into `.state` files).
pub fn envelope_json(envelope: &Envelope) -> Result<Vec<u8>, serde_json::Error> {
    let mut json = serde_json::to_vec_pretty(envelope)?;
    json.push(b'\n');
    Ok(json)
}

/// The start of a message file: first line and envelope. The caller writes
/// `message` (the parts, in order) right after it.
pub fn encode_prefix(envelope_json: &[u8], message: &[&[u8]]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(envelope_json);
    let mut message_len = 0u64;
    for part in message {
        crc.update(part);
        message_len += part.len() as u64;
    }
    let line = format!(
        "{MAGIC} {VERSION} {} {message_len} {:08x}\n",
        envelope_json.len(),
        crc.finalize()
    );
    let mut prefix = Vec::with_capacity(line.len() + envelope_json.len());
    prefix.extend_from_slice(line.as_bytes());
    prefix.extend_from_slice(envelope_json);
    prefix
}

/// Checks a whole message file (lengths, checksum, envelope) and splits it.
pub fn decode(file: &[u8]) -> Result<Decoded, FormatError> {
    let head = &file[..file.len().min(MAX_FIRST_LINE)];
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(if file.len() < MAX_FIRST_LINE {
            // A first line that was cut short is a torn write like any other.
            FormatError::Truncated {
                expected: MAX_FIRST_LINE as u64,
                actual: file.len() as u64,
            }
        } else {
            FormatError::NotASpoolFile
        })?;
    let (envelope_len, message_len, expected_crc) = parse_first_line(&file[..line_end])?;

    let body_start = line_end + 1;
    let expected = body_start as u64 + envelope_len + message_len;
    let actual = file.len() as u64;
    if actual < expected {
        return Err(FormatError::Truncated { expected, actual });
    }
    if actual > expected {
        return Err(FormatError::TrailingData {
            extra: actual - expected,
        });
    }
    let actual_crc = crc32fast::hash(&file[body_start..]);
    if actual_crc != expected_crc {
        return Err(FormatError::Checksum {
            expected: expected_crc,
            actual: actual_crc,
        });
    }
    // Both lengths fit: their sum equals the length of an in-memory slice.
    let message_offset = body_start + envelope_len as usize;
    let envelope = serde_json::from_slice(&file[body_start..message_offset])?;
    Ok(Decoded {
        envelope,
        message_offset,
    })
}

/// `MAGIC VERSION envelope_len message_len crc` → the three numbers.
fn parse_first_line(line: &[u8]) -> Result<(u64, u64, u32), FormatError> {
    let line = std::str::from_utf8(line).map_err(|_| FormatError::NotASpoolFile)?;
    let mut fields = line.split(' ');
    if fields.next() != Some(MAGIC) {
        return Err(FormatError::NotASpoolFile);
    }
    let version: u32 = number(fields.next(), 10)?;
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let envelope_len = number(fields.next(), 10)?;
    let message_len = number(fields.next(), 10)?;
    let crc = number(fields.next(), 16)?;
    if fields.next().is_some() {
        return Err(FormatError::NotASpoolFile);
    }
    Ok((envelope_len, message_len, crc))
}

fn number<T: TryFrom<u64>>(field: Option<&str>, radix: u32) -> Result<T, FormatError> {
    field
        .filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|f| u64::from_str_radix(f, radix).ok())
        .and_then(|n| T::try_from(n).ok())
        .ok_or(FormatError::NotASpoolFile)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::queue::envelope::{Recipient, RecipientStatus, RouteReason};

    /// An envelope for tests of this module and of the spool.
    pub(crate) fn sample_envelope(id: &str) -> Envelope {
        Envelope {
            id: id.to_string(),
            received_at: 1_700_000_000,
            sender: "alice@example.net".into(),
            client_ip: "192.0.2.7".parse().expect("ip"),
            helo: "client.example.net".into(),
            listener: "smtp".into(),
            body: Default::default(),
            smtputf8: false,
            ret: None,
            envid: None,
            size: 0,
            recipients: vec![Recipient {
                address: "bob@corp.example".into(),
                rewritten: "bob@tenant.cloud.example".into(),
                route: "cloud".into(),
                reason: RouteReason::Contact,
                notify: Default::default(),
                orcpt: None,
                status: RecipientStatus::Pending,
                attempts: 0,
                next_attempt: 0,
                last_error: None,
            }],
        }
    }

    fn file(envelope: &Envelope, parts: &[&[u8]]) -> Vec<u8> {
        let json = envelope_json(envelope).expect("json");
        let mut f = encode_prefix(&json, parts);
        for p in parts {
            f.extend_from_slice(p);
        }
        f
    }

    #[test]
    fn round_trip_keeps_envelope_and_bytes() {
        let env = sample_envelope("0123456789ABCDEF");
        let f = file(&env, &[b"Received: x\r\n", b"Subject: hi\r\n\r\nbody\r\n"]);
        assert!(f.starts_with(b"COEXIST-SPOOL 1 "));
        let d = decode(&f).expect("valid");
        assert_eq!(d.envelope, env);
        assert_eq!(
            &f[d.message_offset..],
            b"Received: x\r\nSubject: hi\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn every_truncation_is_detected() {
        let f = file(&sample_envelope("0123456789ABCDEF"), &[b"msg\r\n"]);
        for len in 0..f.len() {
            match decode(&f[..len]) {
                Err(FormatError::Truncated { .. }) => {}
                other => panic!("length {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn damage_and_extra_bytes_are_detected() {
        let mut f = file(&sample_envelope("0123456789ABCDEF"), &[b"message\r\n"]);
        let last = f.len() - 3;
        f[last] ^= 0x20;
        assert!(matches!(decode(&f), Err(FormatError::Checksum { .. })));
        f[last] ^= 0x20;
        f.push(b'x');
        assert!(matches!(
            decode(&f),
            Err(FormatError::TrailingData { extra: 1 })
        ));
    }

    #[test]
    fn foreign_and_future_files_are_refused() {
        let long = [b'x'; 200];
        assert!(matches!(decode(&long), Err(FormatError::NotASpoolFile)));
        assert!(matches!(
            decode(b"From alice Mon Jan 1\n"),
            Err(FormatError::NotASpoolFile)
        ));
        assert!(matches!(
            decode(b"COEXIST-SPOOL 2 0 0 00000000\n"),
            Err(FormatError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            decode(b"COEXIST-SPOOL 1 -1 0 00000000\n"),
            Err(FormatError::NotASpoolFile)
        ));
    }

    #[test]
    fn a_bad_envelope_with_good_checksum_is_refused() {
        let json = b"{\"id\": 3}\n";
        let mut f = encode_prefix(json, &[b"m"]);
        f.push(b'm');
        assert!(matches!(decode(&f), Err(FormatError::Envelope(_))));
    }
}
