//! Finding on the target what the checkpoint cannot vouch for, so it is not
//! sent twice: messages are matched by Message-ID, or by a SHA-256 of the
//! header block when there is none, counting duplicates (two copies at the
//! source, one at the target: one more is copied).

use crate::config::Side;
use crate::imap::{Session, SideError};
use crate::state::UidSet;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Headers fetched per UID FETCH.
pub const HEADER_CHUNK: usize = 500;

/// The key a message is matched by: its Message-ID, or a hash of its header
/// block when it has none (drafts and some calendar items).
pub fn match_key(header: &[u8]) -> String {
    if let Some(message) = mail_parser::MessageParser::new().parse_headers(header) {
        if let Some(id) = message.message_id() {
            return format!("id:{id}");
        }
    }
    let digest = Sha256::digest(header);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("hash:{hex}")
}

/// The header block of a whole message, up to and including the empty line
/// (what `BODY[HEADER]` returns, RFC 3501 §6.4.5).
pub fn header_of(message: &[u8]) -> &[u8] {
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(i) => &message[..i + 4],
        None => message,
    }
}

/// Looks the source messages `candidates` up in `target_folder` (which exists)
/// and adds those found to `copied`; returns how many were found.
pub async fn find_on_target(
    src: &mut Session,
    dst: &mut Session,
    target_folder: &str,
    candidates: &[u32],
    copied: &mut UidSet,
) -> Result<u64, SideError> {
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut on_target = target_index(dst, target_folder)
        .await
        .map_err(SideError::on(Side::Target))?;
    if on_target.is_empty() {
        return Ok(0);
    }
    let mut found = 0;
    for chunk in candidates.chunks(HEADER_CHUNK) {
        let headers = src
            .headers(chunk)
            .await
            .map_err(SideError::on(Side::Source))?;
        for (uid, header) in headers {
            if let Some(n) = on_target.get_mut(&match_key(&header)) {
                if *n > 0 {
                    *n -= 1;
                    copied.insert(uid);
                    found += 1;
                }
            }
        }
    }
    Ok(found)
}

/// Message keys on the target folder, with their counts.
async fn target_index(
    dst: &mut Session,
    folder: &str,
) -> Result<HashMap<String, u32>, crate::imap::ImapError> {
    let mut index = HashMap::new();
    let selected = dst.open(folder, false).await?;
    let uids = if selected.exists == 0 {
        Vec::new()
    } else {
        dst.search(None, None).await?
    };
    for chunk in uids.chunks(HEADER_CHUNK) {
        for (_, header) in dst.headers(chunk).await? {
            *index.entry(match_key(&header)).or_insert(0) += 1;
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_key_prefers_message_id() {
        let a = b"Subject: x\r\nMessage-ID: <1@x>\r\n\r\n";
        assert_eq!(match_key(a), "id:1@x");
        let b = b"Subject: x\r\nFrom: a@b\r\n\r\n";
        let c = b"Subject: y\r\nFrom: a@b\r\n\r\n";
        assert!(match_key(b).starts_with("hash:"));
        assert_ne!(match_key(b), match_key(c));
        let whole = b"Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n\r\nmore";
        assert_eq!(header_of(whole), b);
    }
}
