//! The envelope commands with their ESMTP parameters (RFC 1870 SIZE, RFC 6152
//! BODY, RFC 6531 SMTPUTF8, RFC 3461 DSN), as far as the next hop offers them.

use super::status::{DeliverError, Reply, Stage};
use super::transaction::{Transaction, TxnRecipient};
use crate::enhanced_code::EnhancedCode;
use crate::envelope::{BodyType, Ret};
use smtp_proto::{EXT_8BIT_MIME, EXT_DSN, EXT_SIZE, EXT_SMTP_UTF8};

/// MAIL FROM with the parameters the next hop offers (SIZE, BODY, SMTPUTF8,
/// RET/ENVID); an address it cannot carry is refused here.
pub fn mail_command(capabilities: u32, txn: &Transaction<'_>) -> Result<String, DeliverError> {
    let offers = |ext: u32| capabilities & ext != 0;
    let mut cmd = format!("MAIL FROM:<{}>", txn.sender);
    if offers(EXT_SIZE) {
        cmd.push_str(&format!(" SIZE={}", txn.message.len()));
    }
    match txn.body {
        BodyType::SevenBit => {}
        // RFC 6152 §3: with no 8BITMIME at the next hop the message goes
        // as is (what Postfix does); converting would break DKIM.
        BodyType::EightBitMime if offers(EXT_8BIT_MIME) => cmd.push_str(" BODY=8BITMIME"),
        BodyType::EightBitMime => {}
    }
    if txn.smtputf8 {
        if offers(EXT_SMTP_UTF8) {
            cmd.push_str(" SMTPUTF8");
        } else if !txn.sender.is_ascii() || txn.recipients.iter().any(|r| !r.address.is_ascii()) {
            // RFC 6531 §3.2: an internationalized address cannot be
            // downgraded; bounce rather than mangle it.
            return Err(DeliverError::Rejected {
                stage: Stage::Mail,
                reply: local_reply(
                    553,
                    EnhancedCode::new(5, 6, 7),
                    "next hop does not support SMTPUTF8",
                ),
            });
        }
    }
    if offers(EXT_DSN) {
        match txn.ret {
            Some(Ret::Full) => cmd.push_str(" RET=FULL"),
            Some(Ret::Hdrs) => cmd.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = txn.envid {
            cmd.push_str(" ENVID=");
            cmd.push_str(&xtext(envid));
        }
    }
    cmd.push_str("\r\n");
    Ok(cmd)
}

/// RCPT TO with NOTIFY and ORCPT when the next hop offers DSN.
pub fn rcpt_command(capabilities: u32, r: &TxnRecipient<'_>) -> String {
    let offers = |ext: u32| capabilities & ext != 0;
    let mut cmd = format!("RCPT TO:<{}>", r.address);
    if offers(EXT_DSN) {
        // RFC 3461 §4.1
        let n = r.notify;
        let mut notify = Vec::new();
        if n.never {
            notify.push("NEVER");
        } else {
            if n.success {
                notify.push("SUCCESS");
            }
            if n.failure {
                notify.push("FAILURE");
            }
            if n.delay {
                notify.push("DELAY");
            }
        }
        if !notify.is_empty() {
            cmd.push_str(" NOTIFY=");
            cmd.push_str(&notify.join(","));
        }
        // RFC 3461 §4.2: pass ORCPT on; when the client gave none, the
        // address as received is the original recipient (what Postfix does),
        // so a DSN from further on names the address the sender used.
        let orcpt = r.orcpt.map(strip_rfc822).unwrap_or(r.original);
        if orcpt.is_ascii() {
            cmd.push_str(" ORCPT=rfc822;");
            cmd.push_str(&xtext(orcpt));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

/// xtext (RFC 3461 §4): `+XX` for `+`, `=`, controls, space and non-ASCII.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn strip_rfc822(orcpt: &str) -> &str {
    match orcpt.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("rfc822;") => &orcpt[7..],
        _ => orcpt,
    }
}

fn local_reply(code: u16, enhanced: EnhancedCode, text: &str) -> Reply {
    Reply {
        code,
        enhanced: Some(enhanced),
        text: text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("a+b=c d@x"), "a+2Bb+3Dc+20d@x");
    }
}
