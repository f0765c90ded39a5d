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

use super::body::{self, Sending};
pub use super::connect::SessionParams;
use super::connect::{self, Stream};
use super::esmtp::{mail_command, rcpt_command};
use super::mx::NextHop;
use super::status::{DeliverError, Reply, Stage};
pub use super::transaction::{Transaction, TxnRecipient};
use mail_send::SmtpClient;
use smtp_proto::{EXT_CHUNKING, EXT_PIPELINING};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// An open session, greeted and EHLO'd, ready for MAIL.
pub struct Session {
    client: SmtpClient<Stream>,
    /// Where it is connected.
    pub hop: NextHop,
    /// EHLO capabilities (smtp-proto `EXT_*` bits; 0 after HELO).
    capabilities: u32,
    /// TLS version and cipher suite, `None` in clear.
    pub tls: Option<String>,
    /// The post-handshake certificate audit's verdict (MTA-STS `testing`).
    pub audit: Option<Result<(), String>>,
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
            audit: opened.audit,
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
        // RFC 2920 §3.1: DATA may end the pipelined group (BDAT goes after
        // the replies, RFC 3030 §4.2): a round trip and a write fewer.
        let pipelined_data = self.offers(EXT_PIPELINING) && !self.offers(EXT_CHUNKING);
        let mut replies = match self.envelope(txn, pipelined_data).await {
            Ok(replies) => replies,
            Err((e, reusable)) => return all(e, reusable),
        };
        let data_reply = if pipelined_data { replies.pop() } else { None };
        let mail_reply = &replies[0];
        if !mail_reply.is_positive() {
            let reusable = self.unwanted_data(data_reply.as_ref()).await;
            return all(
                DeliverError::Rejected {
                    stage: Stage::Mail,
                    reply: mail_reply.clone(),
                },
                reusable,
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
            let reusable = self.unwanted_data(data_reply.as_ref()).await;
            return TxnResult {
                recipients: results,
                reusable,
            };
        }
        let (final_reply, reusable) = match self.data(txn, data_reply).await {
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

    /// DATA was pipelined but there is nothing to send (MAIL or every RCPT
    /// refused). A server that answered 354 anyway waits for a message: it
    /// gets just the final dot (RFC 2920 §3.1). Whether the session may be
    /// reused.
    async fn unwanted_data(&mut self, data_reply: Option<&Reply>) -> bool {
        if data_reply.is_none_or(|r| r.code != 354) {
            return true;
        }
        // The reply (a refusal of the empty message, or not) changes nothing.
        self.client.cmd(b".\r\n").await.is_ok()
    }

    /// MAIL and the RCPTs, and DATA when `with_data` (pipelining only);
    /// their replies in that order. On error, whether the session may still
    /// be reused.
    async fn envelope(
        &mut self,
        txn: &Transaction<'_>,
        with_data: bool,
    ) -> Result<Vec<Reply>, (DeliverError, bool)> {
        let mail = mail_command(self.capabilities, txn).map_err(|e| (e, true))?;
        let rcpts: Vec<String> = txn
            .recipients
            .iter()
            .map(|r| rcpt_command(self.capabilities, r))
            .collect();
        let broken = |stage| move |e| (DeliverError::from_client(stage, e), false);
        // RFC 2920 §3.1: MAIL and the RCPTs go out in one write, replies read
        // after. One buffer, so one segment and one syscall (mail-send's
        // `cmds` writes each command on its own: a sendto per command).
        if self.offers(EXT_PIPELINING) {
            let mut group = mail.into_bytes();
            for rcpt in &rcpts {
                group.extend_from_slice(rcpt.as_bytes());
            }
            if with_data {
                group.extend_from_slice(b"DATA\r\n");
            }
            let expected = rcpts.len() + 1 + usize::from(with_data);
            let client = &mut self.client;
            let replies = tokio::time::timeout(client.timeout, async {
                client.stream.write_all(&group).await?;
                client.stream.flush().await?;
                client.read_many(expected).await
            })
            .await
            .unwrap_or(Err(mail_send::Error::Timeout))
            .map_err(broken(Stage::Rcpt))?;
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

    /// The message, as BDAT chunks or dot-stuffed DATA, and the final reply;
    /// `data_reply` is the reply to a DATA already sent in the envelope's group.
    async fn data(
        &mut self,
        txn: &Transaction<'_>,
        data_reply: Option<Reply>,
    ) -> Result<Reply, DeliverError> {
        let how = Sending {
            chunking: self.offers(EXT_CHUNKING),
            pipelining: self.offers(EXT_PIPELINING),
            timeout: self.data_timeout,
        };
        body::send(&mut self.client, txn.message, &how, data_reply).await
    }
}
