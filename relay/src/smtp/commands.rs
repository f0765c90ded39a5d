//! What each SMTP command does to the session (RFC 5321 §4.1, with the extensions of
//! DESIGN.md: PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING, DSN,
//! STARTTLS).

use super::data::{check_content, BodyReader, ContentError};
use super::received::{received_header, Trace};
use super::reply::Reply;
use super::session::{unix_now, Input, Session};
use super::state::{Greeting, Phase, Transaction};
use crate::address::envelope_address;
use crate::config::ListenerTls;
use crate::envelope::{BodyType, Envelope, Notify, Recipient, RecipientStatus, Ret};
use crate::metrics::metrics;
use crate::route::router::RouteError;
use smtp_proto::{MailFrom, RcptTo, Request};
use std::borrow::Cow;

/// What the loop does after a command or a piece of body.
pub(super) enum Action {
    /// Go on with the remaining input.
    Continue,
    /// The input is used up; read more.
    NeedMore,
    /// Send what is queued and close.
    Close,
    /// Send what is queued, then hand over for the TLS handshake.
    StartTls,
}

impl Session {
    /// Dispatches one parsed command.
    pub(super) async fn command(&mut self, request: Request<String>) -> Action {
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                if !matches!(self.phase, Phase::Fresh) {
                    self.phase = Phase::Ready;
                }
                self.reply(Reply::ok());
                Action::Continue
            }
            Request::Noop { .. } => {
                self.reply(Reply::ok());
                Action::Continue
            }
            Request::Quit => {
                self.reply(Reply::bye());
                Action::Close
            }
            Request::Vrfy { .. } => {
                self.reply(Reply::cannot_verify());
                Action::Continue
            }
            Request::Help { .. } => {
                self.reply(Reply::help());
                Action::Continue
            }
            Request::StartTls => self.starttls(),
            // Known to the parser but not offered here.
            Request::Lhlo { .. } => {
                self.reply(Reply::unknown_command());
                Action::Continue
            }
            Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.reply(Reply::not_implemented());
                Action::Continue
            }
        }
    }

    fn hello(&mut self, host: String, extended: bool) -> Action {
        // RFC 5321 §4.1.4: EHLO/HELO also resets any transaction.
        self.phase = Phase::Ready;
        self.greeting = Some(Greeting {
            name: host,
            extended,
        });
        let hostname = self.ctx.config.server.hostname.clone();
        if !extended {
            self.reply(Reply::plain(250, vec![hostname.into()]));
            return Action::Continue;
        }
        let mut lines: Vec<Cow<'static, str>> = vec![
            hostname.into(),
            "PIPELINING".into(),
            format!("SIZE {}", self.ctx.config.limits.max_message_size).into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
            "DSN".into(),
        ];
        if self.conn.listener.tls == ListenerTls::StartTls && self.conn.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        self.reply(Reply::plain(250, lines));
        Action::Continue
    }

    fn starttls(&mut self) -> Action {
        if self.conn.tls.is_some() {
            self.reply(Reply::already_tls());
        } else if self.conn.listener.tls != ListenerTls::StartTls {
            self.reply(Reply::not_implemented());
        } else if self.greeting.is_none() {
            self.reply(Reply::bad_sequence("Send EHLO first"));
        } else {
            self.reply(Reply::ready_for_tls());
            return Action::StartTls;
        }
        Action::Continue
    }

    fn mail(&mut self, from: MailFrom<String>) -> Action {
        let reply = match self.phase {
            Phase::Fresh => Some(Reply::bad_sequence("Send EHLO/HELO first")),
            Phase::Mail(_) => Some(Reply::bad_sequence("Nested MAIL command")),
            Phase::Ready => None,
        };
        if let Some(reply) = reply {
            metrics().reject("sequence");
            self.reply(reply);
            return Action::Continue;
        }
        if self.conn.listener.require_tls && self.conn.tls.is_none() {
            metrics().reject("tls_required");
            self.reply(Reply::tls_required());
            return Action::Continue;
        }
        if !self.ctx.message_rate.allow(self.conn.peer.ip()) {
            metrics().reject("rate");
            self.reply(Reply::message_rate());
            return Action::Continue;
        }
        let max = self.ctx.config.limits.max_message_size;
        // RFC 1870 §6.2: a declared SIZE over the limit is refused before any data.
        if from.size as u64 > max {
            metrics().reject("size");
            self.reply(Reply::too_large(max));
            return Action::Continue;
        }
        if let Some(param) = unoffered_mail_parameter(&from) {
            self.reply(Reply::unsupported_parameter(param));
            return Action::Continue;
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            metrics().reject("syntax");
            self.reply(Reply::needs_smtputf8());
            return Action::Continue;
        }
        let Ok(sender) = envelope_address(&from.address).map(Cow::into_owned) else {
            metrics().reject("syntax");
            self.reply(Reply::bad_sender());
            return Action::Continue;
        };
        let body = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        };
        let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(Ret::Hdrs)
        } else {
            None
        };
        self.phase = Phase::Mail(Transaction {
            sender,
            body,
            smtputf8,
            ret,
            envid: from.env_id,
            recipients: Vec::new(),
            table: self.ctx.router.table(),
            message: Vec::new(),
            bdat_failed: false,
        });
        self.reply(Reply::sender_ok());
        Action::Continue
    }

    fn rcpt(&mut self, to: RcptTo<String>) -> Action {
        let Phase::Mail(txn) = &mut self.phase else {
            metrics().reject("sequence");
            self.reply(Reply::bad_sequence("Need MAIL before RCPT"));
            return Action::Continue;
        };
        if txn.recipients.len() >= self.ctx.config.limits.max_recipients {
            metrics().reject("recipients");
            self.reply(Reply::too_many_recipients());
            return Action::Continue;
        }
        if !txn.smtputf8 && !to.address.is_ascii() {
            metrics().reject("syntax");
            self.reply(Reply::needs_smtputf8());
            return Action::Continue;
        }
        // smtp-proto returns "" for the bare `<postmaster>` of RFC 5321 §4.5.1.
        let address = if to.address.is_empty() {
            "postmaster".to_string()
        } else if let Ok(address) = envelope_address(&to.address) {
            address.into_owned()
        } else {
            metrics().reject("syntax");
            self.reply(Reply::bad_recipient());
            return Action::Continue;
        };
        let decision = self
            .ctx
            .router
            .decide(&txn.table, &address, self.conn.peer.ip());
        let reply = match decision {
            Ok(decision) => {
                txn.recipients.push(Recipient {
                    address,
                    rewritten: decision.rewritten,
                    route: decision.route,
                    reason: decision.reason,
                    notify: notify_from_flags(to.flags),
                    orcpt: to.orcpt,
                    status: RecipientStatus::Pending,
                    attempts: 0,
                    next_attempt: 0,
                    last_error: None,
                });
                Reply::recipient_ok()
            }
            Err(RouteError::RelayDenied) => {
                metrics().reject("relay_denied");
                Reply::relay_denied()
            }
            Err(RouteError::BadAddress(_)) => {
                metrics().reject("syntax");
                Reply::bad_recipient()
            }
        };
        self.reply(reply);
        Action::Continue
    }

    fn data(&mut self) -> Action {
        match &self.phase {
            Phase::Mail(txn) if !txn.recipients.is_empty() && txn.message.is_empty() => {
                self.body.clear();
                self.input = Input::Data(BodyReader::data());
                self.reply(Reply::start_data());
            }
            Phase::Mail(txn) if !txn.message.is_empty() => {
                metrics().reject("sequence");
                self.reply(Reply::bad_sequence("DATA cannot follow BDAT"));
            }
            _ => {
                metrics().reject("sequence");
                // RFC 2920 §3.1: a pipelining client sends the body anyway; those lines
                // then arrive as (unknown) commands and are refused one by one.
                self.reply(Reply::bad_sequence("Need RCPT before DATA"));
            }
        }
        Action::Continue
    }

    fn bdat(&mut self, size: usize, last: bool) -> Action {
        let max = self.ctx.config.limits.max_message_size as usize;
        // RFC 3030 §3: the chunk is always read, even when it will be refused.
        let keep = match &self.phase {
            Phase::Mail(txn) => {
                !txn.recipients.is_empty()
                    && !txn.bdat_failed
                    && txn.message.len().saturating_add(size) <= max
            }
            _ => false,
        };
        let reader = BodyReader::bdat(size, last, !keep);
        // A zero-size chunk (`BDAT 0 LAST`) completes at the next step with no input.
        self.input = Input::Bdat { reader, size, last };
        Action::Continue
    }

    /// A DATA body has been read completely.
    pub(super) async fn data_done(&mut self, reader: BodyReader) -> Action {
        let limit = self.ctx.config.limits.max_message_size;
        let message = std::mem::take(&mut self.body);
        if reader.is_discarding() || message.len() as u64 > limit {
            metrics().reject("size");
            self.phase = Phase::Ready;
            self.reply(Reply::too_large(limit));
            return Action::Continue;
        }
        self.accept_message(message).await
    }

    /// A BDAT chunk has been read completely (RFC 3030 §2: one reply per chunk).
    pub(super) async fn chunk_done(
        &mut self,
        reader: BodyReader,
        size: usize,
        last: bool,
    ) -> Action {
        let max = self.ctx.config.limits.max_message_size;
        let refusal = match &mut self.phase {
            Phase::Mail(txn) if txn.recipients.is_empty() => {
                Some((Reply::bad_sequence("Need RCPT before BDAT"), "sequence"))
            }
            // Already refused; keep refusing until LAST ends the transaction.
            Phase::Mail(txn) if txn.bdat_failed => Some((Reply::too_large(max), "size")),
            Phase::Mail(txn) if reader.is_discarding() => {
                txn.bdat_failed = true;
                txn.message = Vec::new();
                Some((Reply::too_large(max), "size"))
            }
            Phase::Mail(_) => None,
            _ => Some((
                Reply::bad_sequence("Need MAIL and RCPT before BDAT"),
                "sequence",
            )),
        };
        match refusal {
            Some((reply, reason)) => {
                metrics().reject(reason);
                if last && matches!(self.phase, Phase::Mail(_)) {
                    self.phase = Phase::Ready;
                }
                self.reply(reply);
                Action::Continue
            }
            None if last => {
                let message = match &mut self.phase {
                    Phase::Mail(txn) => std::mem::take(&mut txn.message),
                    _ => Vec::new(),
                };
                self.accept_message(message).await
            }
            None => {
                self.reply(Reply::chunk_ok(size));
                Action::Continue
            }
        }
    }

    /// Checks a complete message, spools it, and answers `250` only once it is durable.
    async fn accept_message(&mut self, mut message: Vec<u8>) -> Action {
        let Phase::Mail(txn) = std::mem::take(&mut self.phase) else {
            self.reply(Reply::bad_sequence("No transaction"));
            return Action::Continue;
        };
        self.phase = Phase::Ready;
        let limits = &self.ctx.config.limits;
        match check_content(
            &mut message,
            limits.bare_newline,
            limits.max_received_headers,
        ) {
            Ok(()) => {}
            Err(ContentError::BareNewline) => {
                metrics().reject("syntax");
                self.reply(Reply::bare_newline());
                return Action::Continue;
            }
            Err(ContentError::TooManyReceived) => {
                metrics().reject("loop");
                self.reply(Reply::mail_loop());
                return Action::Continue;
            }
        }
        let id = self.ctx.spool.new_id();
        let greeting = self.greeting.clone().unwrap_or(Greeting {
            name: String::new(),
            extended: false,
        });
        let single = (txn.recipients.len() == 1).then(|| txn.recipients[0].address.as_str());
        let header = received_header(&Trace {
            helo: &greeting.name,
            client_ip: self.conn.peer.ip(),
            hostname: &self.ctx.config.server.hostname,
            extended: greeting.extended,
            smtputf8: txn.smtputf8,
            tls: self.conn.tls.as_ref(),
            id: &id,
            single_recipient: single,
        });
        let size = (header.len() + message.len()) as u64;
        let envelope = Envelope {
            id: id.clone(),
            received_at: unix_now(),
            sender: txn.sender,
            client_ip: self.conn.peer.ip(),
            helo: greeting.name,
            listener: self.conn.listener.name.clone(),
            body: txn.body,
            smtputf8: txn.smtputf8,
            ret: txn.ret,
            envid: txn.envid,
            size,
            recipients: txn.recipients,
        };
        match self.ctx.spool.store(envelope, header, message).await {
            Ok(envelope) => {
                let listener = [self.conn.listener.name.as_str()];
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
                if let Some(queued) = &self.ctx.queued {
                    let _ = queued.send(envelope);
                }
                self.reply(Reply::queued(&id));
            }
            Err(e) => {
                tracing::error!(id = %id, error = %e, "spool write failed");
                metrics().reject("spool");
                self.reply(if e.is_disk_full() {
                    Reply::spool_full()
                } else {
                    Reply::spool_failed()
                });
            }
        }
        Action::Continue
    }
}

/// MAIL parameters the parser understands but that we do not advertise (RFC 5321
/// §4.1.1.11: a parameter not offered is refused with 555).
fn unoffered_mail_parameter(from: &MailFrom<String>) -> Option<&'static str> {
    use smtp_proto::*;
    if from.flags & MAIL_BODY_BINARYMIME != 0 {
        Some("BODY=BINARYMIME")
    } else if from.flags & MAIL_REQUIRETLS != 0 {
        Some("REQUIRETLS")
    } else if from.auth.is_some() {
        Some("AUTH")
    } else if from.trans_id.is_some() {
        Some("TRANSID")
    } else if from.by != 0 || from.flags & (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE) != 0 {
        Some("BY")
    } else if from.hold_for != 0 || from.hold_until != 0 {
        Some("HOLDFOR/HOLDUNTIL")
    } else if from.mtrk.is_some() {
        Some("MTRK")
    } else if from.solicit.is_some() {
        Some("SOLICIT")
    } else if from.mt_priority != 0 {
        Some("MT-PRIORITY")
    } else if from.flags & MAIL_CONPERM != 0 {
        Some("CONPERM")
    } else {
        None
    }
}

fn notify_from_flags(flags: u64) -> Notify {
    use smtp_proto::*;
    Notify {
        success: flags & RCPT_NOTIFY_SUCCESS != 0,
        failure: flags & RCPT_NOTIFY_FAILURE != 0,
        delay: flags & RCPT_NOTIFY_DELAY != 0,
        never: flags & RCPT_NOTIFY_NEVER != 0,
    }
}
