//! One outbound SMTP session: connect, greeting, EHLO, STARTTLS by policy,
//! and transactions with a result per recipient.
//!
//! Built on mail-send's `SmtpClient` lower-level calls (`cmd`, `cmds`, `ehlo`,
//! `read`) over our own stream type, because a relay needs what mail-send's
//! `send()` does not give: one result per RCPT, ESMTP parameters (SIZE, BODY,
//! SMTPUTF8, DSN), and the message written byte for byte. The DATA writer is
//! our own for the last reason: mail-send's `write_message` always appends
//! CRLF before the final dot (a message that already ends in CRLF gains an
//! empty line) and does not stuff a dot in the very first byte.

pub use super::connect::SessionParams;
use super::connect::{self, Stream};
use super::esmtp::{mail_command, rcpt_command};
use super::mx::NextHop;
use super::status::{DeliverError, Reply, Stage};
pub use super::transaction::{Transaction, TxnRecipient};
use mail_send::SmtpClient;
use smtp_proto::{EXT_CHUNKING, EXT_PIPELINING};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

/// An open session, greeted and EHLO'd, ready for MAIL.
pub struct Session {
    client: SmtpClient<Stream>,
    /// Where it is connected.
    pub hop: NextHop,
    /// EHLO capabilities (smtp-proto `EXT_*` bits; 0 after HELO).
    capabilities: u32,
    /// TLS version and cipher suite, `None` in clear.
    pub tls: Option<String>,
    data_timeout: Duration,
}

/// What a transaction did.
pub struct TxnResult {
    /// Per recipient, in transaction order: the final reply or the error.
    pub recipients: Vec<Result<Reply, DeliverError>>,
    /// False when the session is out of step or broken and must not be reused.
    pub reusable: bool,
}

impl Session {
    /// Connects, reads the greeting, says EHLO, and applies the TLS policy.
    pub async fn open(hop: &NextHop, params: &SessionParams) -> Result<Session, DeliverError> {
        let opened = connect::open(hop, params).await?;
        Ok(Session {
            client: opened.client,
            hop: hop.clone(),
            capabilities: opened.capabilities,
            tls: opened.tls,
            data_timeout: params.data_timeout,
        })
    }

    fn offers(&self, ext: u32) -> bool {
        self.capabilities & ext != 0
    }

    /// RSET before reusing the session for another message (RFC 5321 §4.1.1.5).
    pub async fn reset(&mut self) -> Result<(), DeliverError> {
        let reply = self
            .client
            .cmd(b"RSET\r\n")
            .await
            .map_err(|e| DeliverError::from_client(Stage::Rset, e))?;
        let reply = Reply::from_response(&reply);
        if reply.is_positive() {
            Ok(())
        } else {
            Err(DeliverError::Rejected {
                stage: Stage::Rset,
                reply,
            })
        }
    }

    /// Says QUIT and closes; errors do not matter any more.
    pub async fn quit(mut self) {
        self.client.timeout = self.client.timeout.min(Duration::from_secs(5));
        let _ = self.client.cmd(b"QUIT\r\n").await;
        let _ = self.client.stream.shutdown().await;
    }

    /// Runs one transaction: MAIL, every RCPT, then DATA/BDAT for the accepted.
    pub async fn send(&mut self, txn: &Transaction<'_>) -> TxnResult {
        let n = txn.recipients.len();
        let all = |e: DeliverError, reusable: bool| TxnResult {
            recipients: (0..n).map(|_| Err(e.clone())).collect(),
            reusable,
        };
        let replies = match self.envelope(txn).await {
            Ok(replies) => replies,
            Err((e, reusable)) => return all(e, reusable),
        };
        let mail_reply = &replies[0];
        if !mail_reply.is_positive() {
            return all(
                DeliverError::Rejected {
                    stage: Stage::Mail,
                    reply: mail_reply.clone(),
                },
                true,
            );
        }
        let mut results: Vec<Result<Reply, DeliverError>> = replies[1..]
            .iter()
            .map(|r| {
                if r.is_positive() {
                    Ok(r.clone())
                } else {
                    Err(DeliverError::Rejected {
                        stage: Stage::Rcpt,
                        reply: r.clone(),
                    })
                }
            })
            .collect();
        if !results.iter().any(Result::is_ok) {
            return TxnResult {
                recipients: results,
                reusable: true,
            };
        }
        let (final_reply, reusable) = match self.data(txn).await {
            Ok(reply) => (Ok(reply), true),
            Err(e) => {
                let reusable = matches!(e, DeliverError::Rejected { .. });
                (Err(e), reusable)
            }
        };
        // RFC 5321 §3.3: the reply to the end of data applies to every
        // recipient accepted at RCPT time.
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = match &final_reply {
                Ok(reply) if reply.is_positive() => Ok(reply.clone()),
                Ok(reply) => Err(DeliverError::Rejected {
                    stage: Stage::Message,
                    reply: reply.clone(),
                }),
                Err(e) => Err(e.clone()),
            };
        }
        TxnResult {
            recipients: results,
            reusable,
        }
    }

    /// MAIL and the RCPTs; their replies, MAIL's first. On error, whether the
    /// session may still be reused.
    async fn envelope(
        &mut self,
        txn: &Transaction<'_>,
    ) -> Result<Vec<Reply>, (DeliverError, bool)> {
        let mail = mail_command(self.capabilities, txn).map_err(|e| (e, true))?;
        let rcpts: Vec<String> = txn
            .recipients
            .iter()
            .map(|r| rcpt_command(self.capabilities, r))
            .collect();
        let broken = |stage| move |e| (DeliverError::from_client(stage, e), false);
        // RFC 2920 §3.1: MAIL and the RCPTs go out in one write, replies read after.
        if self.offers(EXT_PIPELINING) {
            let mut cmds = Vec::with_capacity(rcpts.len() + 1);
            cmds.push(mail.as_str());
            cmds.extend(rcpts.iter().map(String::as_str));
            let replies = self.client.cmds(cmds).await.map_err(broken(Stage::Rcpt))?;
            return Ok(replies.iter().map(Reply::from_response).collect());
        }
        let mut replies = Vec::with_capacity(rcpts.len() + 1);
        let reply = self
            .client
            .cmd(mail.as_bytes())
            .await
            .map_err(broken(Stage::Mail))?;
        replies.push(Reply::from_response(&reply));
        if replies[0].is_positive() {
            for rcpt in &rcpts {
                let reply = self
                    .client
                    .cmd(rcpt.as_bytes())
                    .await
                    .map_err(broken(Stage::Rcpt))?;
                replies.push(Reply::from_response(&reply));
            }
        }
        Ok(replies)
    }

    /// DATA (dot-stuffed) or BDAT LAST (RFC 3030), and the final reply.
    async fn data(&mut self, txn: &Transaction<'_>) -> Result<Reply, DeliverError> {
        let message = txn.message;
        if self.offers(EXT_CHUNKING) {
            let io = async {
                let mut w = BufWriter::with_capacity(64 * 1024, &mut self.client.stream);
                w.write_all(format!("BDAT {} LAST\r\n", message.len()).as_bytes())
                    .await?;
                w.write_all(message).await?;
                w.flush().await
            };
            tokio::time::timeout(self.data_timeout, io)
                .await
                .map_err(|_| DeliverError::Timeout(Stage::Message))?
                .map_err(|e| lost(Stage::Message, e))?;
        } else {
            let reply = self
                .client
                .cmd(b"DATA\r\n")
                .await
                .map_err(|e| DeliverError::from_client(Stage::Data, e))?;
            let reply = Reply::from_response(&reply);
            if reply.code != 354 {
                return Err(DeliverError::Rejected {
                    stage: Stage::Data,
                    reply,
                });
            }
            let io = async {
                let mut w = BufWriter::with_capacity(64 * 1024, &mut self.client.stream);
                write_dot_stuffed(&mut w, message).await?;
                w.flush().await
            };
            tokio::time::timeout(self.data_timeout, io)
                .await
                .map_err(|_| DeliverError::Timeout(Stage::Message))?
                .map_err(|e| lost(Stage::Message, e))?;
        }
        let reply = tokio::time::timeout(self.data_timeout, self.client.read())
            .await
            .map_err(|_| DeliverError::Timeout(Stage::Message))?
            .map_err(|e| DeliverError::from_client(Stage::Message, e))?;
        Ok(Reply::from_response(&reply))
    }
}

/// Writes `message` with a dot doubled at the start of every line
/// (RFC 5321 §4.5.2), then the end-of-data marker. Lines end at LF; the spool
/// holds CRLF-only messages (the inbound side normalises or refuses bare
/// newlines), so this changes nothing but the stuffed dots.
pub async fn write_dot_stuffed<W: AsyncWrite + Unpin>(w: &mut W, message: &[u8]) -> io::Result<()> {
    let mut start = 0;
    let mut line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if line_start && b == b'.' {
            w.write_all(&message[start..i]).await?;
            w.write_all(b".").await?;
            start = i;
        }
        line_start = b == b'\n';
    }
    w.write_all(&message[start..]).await?;
    if message.is_empty() || message.ends_with(b"\r\n") {
        w.write_all(b".\r\n").await
    } else {
        // RFC 5321 §4.1.1.4: the end marker must begin a line.
        w.write_all(b"\r\n.\r\n").await
    }
}

fn lost(stage: Stage, e: io::Error) -> DeliverError {
    DeliverError::ConnectionLost {
        stage,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stuffed(m: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_dot_stuffed(&mut out, m).await.unwrap();
        out
    }

    #[tokio::test]
    async fn dot_stuffing() {
        assert_eq!(
            stuffed(b"A: b\r\n\r\n.\r\n").await,
            b"A: b\r\n\r\n..\r\n.\r\n"
        );
        assert_eq!(stuffed(b".x\r\n").await, b"..x\r\n.\r\n");
        assert_eq!(stuffed(b"a\r\n..b\r\nc").await, b"a\r\n...b\r\nc\r\n.\r\n");
        assert_eq!(stuffed(b"a.b\r\n").await, b"a.b\r\n.\r\n");
    }
}
