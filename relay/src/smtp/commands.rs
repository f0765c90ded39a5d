//! What each SMTP command does to the session (RFC 5321 §4.1, with the extensions of
//! DESIGN.md: PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING, DSN,
//! STARTTLS).

use super::reply::Reply;
use super::session::Session;
use super::state::{Action, Addressed, Greeting, Phase, Recipients, Transaction};
use crate::address::envelope_address;
use crate::config::ListenerTls;
use crate::envelope::{BodyType, Notify, Recipient, RecipientStatus, Ret};
use crate::policy::{Policy, Refusal};
use smtp_proto::{MailFrom, RcptTo, Request};
use std::borrow::Cow;

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
                self.phase = std::mem::take(&mut self.phase).reset();
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
        self.phase = Phase::Greeted(Greeting {
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
            format!("SIZE {}", self.ctx.policy.max_message_size()).into(),
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
        } else if self.phase.greeting().is_none() {
            self.reply(Reply::bad_sequence("Send EHLO first"));
        } else {
            self.reply(Reply::ready_for_tls());
            return Action::StartTls;
        }
        Action::Continue
    }

    fn mail(&mut self, from: MailFrom<String>) -> Action {
        match self.open_transaction(from) {
            Ok(()) => self.reply(Reply::sender_ok()),
            Err(Refused::Counted(refusal)) => self.refuse(refusal),
            Err(Refused::Reply(reply)) => self.reply(reply),
        }
        Action::Continue
    }

    /// MAIL FROM: checks the sequence, the policy and the path, then opens the
    /// transaction.
    fn open_transaction(&mut self, from: MailFrom<String>) -> Result<(), Refused> {
        match &self.phase {
            Phase::Greeted(_) | Phase::BdatRefused(..) => {}
            Phase::Fresh => return Err(Refusal::BadSequence("Send EHLO/HELO first").into()),
            _ => return Err(Refusal::BadSequence("Nested MAIL command").into()),
        }
        let conn = &self.conn;
        self.ctx.policy.mail(
            conn.listener.require_tls,
            conn.tls.is_some(),
            conn.peer.ip(),
            from.size as u64,
        )?;
        if let Some(param) = unoffered_mail_parameter(&from) {
            return Err(Refused::Reply(Reply::unsupported_parameter(param)));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            return Err(Refusal::NeedsSmtputf8.into());
        }
        let sender = envelope_address(&from.address)
            .map(Cow::into_owned)
            .map_err(|_| Refusal::BadSender)?;
        let txn = Transaction {
            sender,
            body: if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
                BodyType::EightBitMime
            } else {
                BodyType::SevenBit
            },
            smtputf8,
            ret: if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
                Some(Ret::Full)
            } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
                Some(Ret::Hdrs)
            } else {
                None
            },
            envid: from.env_id,
            table: self.ctx.router.table(),
        };
        let Some(greeting) = std::mem::take(&mut self.phase).into_greeting() else {
            unreachable!("greeted: checked above");
        };
        self.phase = Phase::Mail(greeting, txn);
        Ok(())
    }

    fn rcpt(&mut self, to: RcptTo<String>) -> Action {
        match self.add_recipient(to) {
            Ok(()) => self.reply(Reply::recipient_ok()),
            Err(refusal) => self.refuse(refusal),
        }
        Action::Continue
    }

    /// RCPT TO: checks the sequence, the cap and the path, routes the
    /// recipient and adds it to the transaction.
    fn add_recipient(&mut self, to: RcptTo<String>) -> Result<(), Refusal> {
        let (txn, accepted) = match &self.phase {
            Phase::Mail(_, txn) => (txn, 0),
            Phase::Rcpt(a) => (&a.txn, a.recipients.len()),
            // The Received field naming the recipient is already in the spool.
            Phase::Bdat(..) => return Err(Refusal::BadSequence("RCPT cannot follow BDAT")),
            _ => return Err(Refusal::BadSequence("Need MAIL before RCPT")),
        };
        self.ctx.policy.recipient(accepted)?;
        if !txn.smtputf8 && !to.address.is_ascii() {
            return Err(Refusal::NeedsSmtputf8);
        }
        // smtp-proto returns "" for the bare `<postmaster>` of RFC 5321 §4.5.1.
        let address = if to.address.is_empty() {
            "postmaster".to_string()
        } else {
            envelope_address(&to.address)
                .map_err(|_| Refusal::BadRecipient)?
                .into_owned()
        };
        // A verified client certificate named in relay.trusted_tls_names
        // relays like an address in trusted_networks.
        let by_certificate = self
            .conn
            .tls
            .as_ref()
            .is_some_and(|t| t.trusted_name.is_some());
        let decision = if by_certificate {
            self.ctx.router.decide_local(&txn.table, &address)
        } else {
            self.ctx
                .router
                .decide(&txn.table, &address, self.conn.peer.ip())
        }
        .map_err(|e| Policy::relay(&e))?;
        let recipient = Recipient {
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
        };
        self.phase = match std::mem::take(&mut self.phase) {
            Phase::Mail(greeting, txn) => Phase::Rcpt(Addressed {
                greeting,
                txn,
                recipients: Recipients::first(recipient),
            }),
            mut other => {
                if let Phase::Rcpt(a) = &mut other {
                    a.recipients.push(recipient);
                }
                other
            }
        };
        Ok(())
    }
}

/// Why MAIL is not accepted: a refusal (counted by reason) or a plain error reply.
enum Refused {
    Counted(Refusal),
    Reply(Reply),
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Refused::Counted(refusal)
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
