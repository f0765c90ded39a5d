//! The on-disk format of one spooled message record, as bytes in and values out (no I/O).
//!
//! Records are appended back to back to segment files (see `segment`); each is
//! readable with `less`:
//!
//! ```text
//! COEXIST-SPOOL 2 <queue id> <envelope length> <message length> <crc32, 8 hex digits>\n
//! { ...the envelope as pretty JSON... }\n
//! Received: ...\r\n
//! ...the message exactly as received...
//! ```
//!
//! The lengths are decimal byte counts; the envelope length includes its
//! final newline. The CRC-32 (IEEE) covers everything after the first line
//! (envelope and message), so damage anywhere in an acknowledged message is
//! detected rather than relayed. The queue id is repeated in the first line so
//! that recovery can skip a finished record without reading it.

use crate::envelope::Envelope;
use thiserror::Error;

/// First word of every record.
pub const MAGIC: &str = "COEXIST-SPOOL";
/// Format version written by this code; the only one it reads.
pub const VERSION: u32 = 2;
/// A first line longer than this is not ours (magic, version, id, 2 × u64, crc, spaces).
pub const MAX_FIRST_LINE: usize = 100;

/// Why bytes are not a valid record.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The first line is missing, does not start with the magic, or is malformed.
    #[error("not a coexist spool record (bad first line)")]
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
    #[error("{extra} bytes after the end of the record")]
    TrailingData {
        /// Bytes beyond the promised length.
        extra: u64,
    },
    /// The CRC-32 does not match: the content changed after it was written.
    #[error("checksum mismatch: record says {expected:08x}, content is {actual:08x}")]
    Checksum {
        /// CRC in the first line.
        expected: u32,
        /// CRC of the content.
        actual: u32,
    },
    /// The envelope is not valid JSON for an [`Envelope`].
    #[error("bad envelope: {0}")]
    Envelope(#[from] serde_json::Error),
    /// The envelope belongs to another queue id than the record says (or the
    /// caller asked for).
    #[error("envelope is for queue id {found:?}, expected {expected}")]
    WrongId {
        /// The id expected.
        expected: String,
        /// The id inside the envelope.
        found: String,
    },
}

/// The first line of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Queue id of the message.
    pub id: String,
    /// Length of the first line, newline included.
    pub line_len: u64,
    /// Length of the envelope JSON, final newline included.
    pub envelope_len: u64,
    /// Length of the message (Received header + body).
    pub message_len: u64,
    /// CRC-32 of envelope and message.
    pub crc: u32,
}

impl Head {
    /// Length of the whole record.
    pub fn record_len(&self) -> u64 {
        self.line_len + self.envelope_len + self.message_len
    }
}

/// A record split into its parts.
#[derive(Debug)]
pub struct Decoded {
    /// The envelope embedded in the record.
    pub envelope: Envelope,
    /// Offset of the message bytes (Received header + body) in the record.
    pub message_offset: usize,
}

/// The envelope as it is written into a record (and into `.state` files).
pub fn envelope_json(envelope: &Envelope) -> Result<Vec<u8>, serde_json::Error> {
    let mut json = serde_json::to_vec_pretty(envelope)?;
    json.push(b'\n');
    Ok(json)
}

/// The start of a record: first line and envelope. The caller writes
/// `message` (the parts, in order) right after it.
pub fn encode_prefix(id: &str, envelope_json: &[u8], message: &[&[u8]]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(envelope_json);
    let mut message_len = 0u64;
    for part in message {
        crc.update(part);
        message_len += part.len() as u64;
    }
    let line = format!(
        "{MAGIC} {VERSION} {id} {} {message_len} {:08x}\n",
        envelope_json.len(),
        crc.finalize()
    );
    let mut prefix = Vec::with_capacity(line.len() + envelope_json.len());
    prefix.extend_from_slice(line.as_bytes());
    prefix.extend_from_slice(envelope_json);
    prefix
}

/// Parses the first line at the start of `bytes` (the start of a record; more
/// may follow). A first line cut short is [`FormatError::Truncated`].
pub fn parse_head(bytes: &[u8]) -> Result<Head, FormatError> {
    let head = &bytes[..bytes.len().min(MAX_FIRST_LINE)];
    let line_end =
        head.iter()
            .position(|&b| b == b'\n')
            .ok_or(if bytes.len() < MAX_FIRST_LINE {
                // A first line that was cut short is a torn write like any other.
                FormatError::Truncated {
                    expected: MAX_FIRST_LINE as u64,
                    actual: bytes.len() as u64,
                }
            } else {
                FormatError::NotASpoolFile
            })?;
    let line = std::str::from_utf8(&bytes[..line_end]).map_err(|_| FormatError::NotASpoolFile)?;
    let mut fields = line.split(' ');
    if fields.next() != Some(MAGIC) {
        return Err(FormatError::NotASpoolFile);
    }
    let version: u32 = number(fields.next(), 10)?;
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let id = fields
        .next()
        .filter(|id| super::id::is_valid(id))
        .ok_or(FormatError::NotASpoolFile)?
        .to_string();
    let envelope_len = number(fields.next(), 10)?;
    let message_len = number(fields.next(), 10)?;
    let crc = number(fields.next(), 16)?;
    if fields.next().is_some() {
        return Err(FormatError::NotASpoolFile);
    }
    let head = Head {
        id,
        line_len: line_end as u64 + 1,
        envelope_len,
        message_len,
        crc,
    };
    // Lengths that overflow are not ours either.
    head.line_len
        .checked_add(envelope_len)
        .and_then(|n| n.checked_add(message_len))
        .ok_or(FormatError::NotASpoolFile)?;
    Ok(head)
}

/// Checks one whole record (lengths, checksum, envelope, id) and splits it.
pub fn decode(record: &[u8]) -> Result<Decoded, FormatError> {
    let head = parse_head(record)?;
    let expected = head.record_len();
    let actual = record.len() as u64;
    if actual < expected {
        return Err(FormatError::Truncated { expected, actual });
    }
    if actual > expected {
        return Err(FormatError::TrailingData {
            extra: actual - expected,
        });
    }
    let body_start = head.line_len as usize;
    let actual_crc = crc32fast::hash(&record[body_start..]);
    if actual_crc != head.crc {
        return Err(FormatError::Checksum {
            expected: head.crc,
            actual: actual_crc,
        });
    }
    // Both lengths fit: their sum equals the length of an in-memory slice.
    let message_offset = body_start + head.envelope_len as usize;
    let envelope: Envelope = serde_json::from_slice(&record[body_start..message_offset])?;
    if envelope.id != head.id {
        return Err(FormatError::WrongId {
            expected: head.id,
            found: envelope.id,
        });
    }
    Ok(Decoded {
        envelope,
        message_offset,
    })
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
    use crate::envelope::{Recipient, RecipientStatus, RouteReason};

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
            delay_notified: false,
            held: false,
            external: None,
        }
    }

    fn file(envelope: &Envelope, parts: &[&[u8]]) -> Vec<u8> {
        let json = envelope_json(envelope).expect("json");
        let mut f = encode_prefix(&envelope.id, &json, parts);
        for p in parts {
            f.extend_from_slice(p);
        }
        f
    }

    #[test]
    fn round_trip_keeps_envelope_and_bytes() {
        let env = sample_envelope("0123456789ABCDEF");
        let f = file(&env, &[b"Received: x\r\n", b"Subject: hi\r\n\r\nbody\r\n"]);
        assert!(f.starts_with(b"COEXIST-SPOOL 2 0123456789ABCDEF "));
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
            decode(b"COEXIST-SPOOL 1 0 0 00000000\n"),
            Err(FormatError::UnsupportedVersion(1))
        ));
        assert!(matches!(
            decode(b"COEXIST-SPOOL 2 0123456789ABCDEF -1 0 00000000\n"),
            Err(FormatError::NotASpoolFile)
        ));
        assert!(matches!(
            decode(b"COEXIST-SPOOL 2 ../etc/passwd 0 0 00000000\n"),
            Err(FormatError::NotASpoolFile)
        ));
        assert!(matches!(
            decode(b"COEXIST-SPOOL 2 0123456789ABCDEF 18446744073709551615 1 00000000\n"),
            Err(FormatError::NotASpoolFile)
        ));
    }

    #[test]
    fn a_bad_envelope_with_good_checksum_is_refused() {
        let json = b"{\"id\": 3}\n";
        let mut f = encode_prefix("0123456789ABCDEF", json, &[b"m"]);
        f.push(b'm');
        assert!(matches!(decode(&f), Err(FormatError::Envelope(_))));
        // A record whose first line names another message than its envelope.
        let env = sample_envelope("0123456789ABCDEF");
        let json = envelope_json(&env).expect("json");
        let mut f = encode_prefix("0123456789ABCDEG", &json, &[b"m"]);
        f.push(b'm');
        assert!(matches!(decode(&f), Err(FormatError::WrongId { .. })));
    }
}
