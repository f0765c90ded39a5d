//! The message itself: DATA and BDAT (RFC 5321 §4.1.1.4, RFC 3030), streamed
//! to the spool as it arrives behind our `Received:` field, its checks, and
//! the hand-over that earns the `250`.

use super::body::Body;
use super::data::{BodyReader, ContentError};
use super::received::{received_header, Trace};
use super::reply::Reply;
use super::session::{unix_now, Session};
use super::state::{Action, Addressed, Chunk, Phase};
use crate::envelope::Envelope;
use crate::metrics::metrics;
use crate::policy::Refusal;

impl Session {
    /// DATA: `354` when the transaction has a recipient.
    pub(super) fn data(&mut self) -> Action {
        self.phase = match std::mem::take(&mut self.phase) {
            Phase::Rcpt(addressed) => {
                self.reply(Reply::start_data());
                let body = self.body_for(&addressed);
                Phase::Data(addressed, BodyReader::data(), body)
            }
            other => {
                let text = match other {
                    Phase::Bdat(..) => "DATA cannot follow BDAT",
                    // RFC 2920 §3.1: a pipelining client sends the body anyway; those
                    // lines then arrive as (unknown) commands and are refused one by one.
                    _ => "Need RCPT before DATA",
                };
                self.refuse(Refusal::BadSequence(text));
                other
            }
        };
        Action::Continue
    }

    /// A new queue id, and the body it will be stored under: our `Received:`
    /// field first (RFC 5321 §4.4), written before any byte of the client's.
    fn body_for(&self, addressed: &Addressed) -> Body {
        let id = self.ctx.spool.new_id();
        let recipients = addressed.recipients.as_slice();
        // One recipient is named; several would tell each of the others (Bcc).
        let single = (recipients.len() == 1).then(|| recipients[0].address.as_str());
        let header = received_header(&Trace {
            helo: &addressed.greeting.name,
            client_ip: self.conn.peer.ip(),
            hostname: &self.ctx.config.server.hostname,
            extended: addressed.greeting.extended,
            smtputf8: addressed.txn.smtputf8,
            tls: self.conn.tls.as_ref(),
            id: &id,
            single_recipient: single,
        });
        let mut incoming = self.ctx.spool.incoming(id);
        incoming.buffer().extend_from_slice(&header);
        Body::new(incoming, &self.ctx.config.limits)
    }

    /// BDAT: the chunk is read next, kept or (RFC 3030 §3: even when refused)
    /// thrown away.
    pub(super) fn bdat(&mut self, size: usize, last: bool) -> Action {
        let keep = |reader| Chunk { reader, size, last };
        let discard = || keep(BodyReader::bdat(size, last, true));
        let fits = |body: &Body| {
            self.ctx
                .policy
                .size(body.received().saturating_add(size as u64))
        };
        self.phase = match std::mem::take(&mut self.phase) {
            Phase::Rcpt(a) => {
                let body = self.body_for(&a);
                match fits(&body) {
                    Ok(()) => Phase::Bdat(a, body, Some(keep(BodyReader::bdat(size, last, false)))),
                    Err(refusal) => refused(a, refusal, discard(), last),
                }
            }
            Phase::Bdat(a, body, None) => match fits(&body) {
                Ok(()) => Phase::Bdat(a, body, Some(keep(BodyReader::bdat(size, last, false)))),
                Err(refusal) => refused(a, refusal, discard(), last),
            },
            // Already refused: keep refusing until LAST ends the transaction.
            Phase::BdatRefused(greeting, refusal) => Phase::Discard {
                chunk: discard(),
                refusal: refusal.clone(),
                after: Box::new(if last {
                    Phase::Greeted(greeting)
                } else {
                    Phase::BdatRefused(greeting, refusal)
                }),
            },
            other => {
                let text = match other {
                    Phase::Mail(..) => "Need RCPT before BDAT",
                    _ => "Need MAIL and RCPT before BDAT",
                };
                // LAST ends a transaction that had no recipient yet.
                let after = match other {
                    Phase::Mail(..) if last => other.reset(),
                    other => other,
                };
                Phase::Discard {
                    chunk: discard(),
                    refusal: Refusal::BadSequence(text),
                    after: Box::new(after),
                }
            }
        };
        // A zero-size chunk (`BDAT 0 LAST`) completes at the next step with no input.
        Action::Continue
    }

    /// A DATA body or a BDAT chunk has been read completely.
    pub(super) async fn body_done(&mut self) -> Action {
        match std::mem::take(&mut self.phase) {
            Phase::Data(addressed, reader, body) => {
                let limit = self.ctx.policy.max_message_size();
                if reader.is_discarding() || body.received() > limit {
                    self.phase = Phase::Greeted(addressed.greeting);
                    self.refuse(Refusal::TooLarge { limit });
                    return Action::Continue;
                }
                self.accept(addressed, body).await
            }
            Phase::Bdat(addressed, mut body, Some(chunk)) => {
                if chunk.last {
                    return self.accept(addressed, body).await;
                }
                // Chunks that each arrive whole still leave the buffer when it is full.
                body.absorb().await;
                // RFC 3030 §2: one reply per chunk.
                self.phase = Phase::Bdat(addressed, body, None);
                self.reply(Reply::chunk_ok(chunk.size));
                Action::Continue
            }
            Phase::Discard { refusal, after, .. } => {
                self.phase = *after;
                self.refuse(refusal);
                Action::Continue
            }
            other => {
                self.phase = other;
                Action::Continue
            }
        }
    }

    /// Checks a complete message, spools it, and answers `250` only once it is durable.
    async fn accept(&mut self, addressed: Addressed, mut body: Body) -> Action {
        let ended = std::time::Instant::now();
        let Addressed {
            greeting,
            txn,
            recipients,
        } = addressed;
        if let Err(e) = body.finish() {
            self.phase = Phase::Greeted(greeting);
            self.refuse(match e {
                ContentError::BareNewline => Refusal::BareNewline,
                ContentError::TooManyReceived => Refusal::MailLoop,
            });
            return Action::Continue;
        }
        let id = body.id().to_string();
        let envelope = Envelope {
            id: id.clone(),
            received_at: unix_now(),
            sender: txn.sender,
            client_ip: self.conn.peer.ip(),
            helo: greeting.name.clone(),
            listener: self.conn.listener.name.clone(),
            body: txn.body,
            smtputf8: txn.smtputf8,
            ret: txn.ret,
            envid: txn.envid,
            size: 0,
            recipients: recipients.into_vec(),
            delay_notified: false,
            held: false,
            external: None,
        };
        self.phase = Phase::Greeted(greeting);
        match self.ctx.spool.store(envelope, body.into_incoming()).await {
            Ok(envelope) => self.queued(envelope, ended),
            Err(e) => {
                tracing::error!(id = %id, error = %e, "spool write failed");
                self.refuse(if e.is_disk_full() {
                    Refusal::SpoolFull
                } else {
                    Refusal::SpoolFailed
                });
            }
        }
        Action::Continue
    }

    /// The message is durable: count it, announce it for delivery, say `250`.
    /// `ended` is when its data was complete (the accept latency starts there).
    fn queued(&mut self, envelope: Envelope, ended: std::time::Instant) {
        let size = envelope.size;
        let listener = [self.conn.listener.name.as_str()];
        metrics()
            .accept_duration_seconds
            .with_label_values(&listener)
            .observe(ended.elapsed().as_secs_f64());
        metrics()
            .messages_received_total
            .with_label_values(&listener)
            .inc();
        metrics()
            .bytes_received_total
            .with_label_values(&listener)
            .inc_by(size);
        tracing::info!(
            id = %envelope.id,
            from = %envelope.sender,
            client = %self.conn.peer.ip(),
            size,
            nrcpt = envelope.recipients.len(),
            "queued"
        );
        let reply = Reply::queued(&envelope.id);
        if let Some(queued) = &self.ctx.queued {
            let _ = queued.send(envelope);
        }
        self.reply(reply);
    }
}

/// A BDAT chunk over the limit: read it, refuse it, and the transaction with it
/// (until LAST, later chunks are refused the same way).
fn refused(addressed: Addressed, refusal: Refusal, chunk: Chunk, last: bool) -> Phase {
    let greeting = addressed.greeting;
    let after = if last {
        Phase::Greeted(greeting)
    } else {
        Phase::BdatRefused(greeting, refusal.clone())
    };
    Phase::Discard {
        chunk,
        refusal,
        after: Box::new(after),
    }
}
