//! Session state as types: the envelope order (HELO → MAIL → RCPT → DATA/BDAT)
//! is which [`Phase`] the session is in, and each phase owns only the data
//! valid in it (rustls' habit): there is no greeting before EHLO, no
//! transaction without MAIL, no DATA without a recipient, and the body being
//! received belongs to the transaction it completes.

use super::body::Body;
use super::data::BodyReader;
use crate::config::ListenerConfig;
use crate::envelope::{BodyType, Recipient, Ret};
use crate::policy::Refusal;
use crate::route::table::ContactsTable;
use std::net::SocketAddr;
use std::sync::Arc;

/// The negotiated TLS parameters, for the Received field and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// e.g. `TLSv1_3`.
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The `relay.trusted_tls_names` entry the client's verified certificate
    /// proves: the client may relay like one in `trusted_networks`.
    pub trusted_name: Option<String>,
}

/// Facts about the connection that do not change within a session.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The listener it arrived on.
    pub listener: Arc<ListenerConfig>,
    /// The client.
    pub peer: SocketAddr,
    /// TLS, once negotiated.
    pub tls: Option<TlsInfo>,
}

/// What the loop does after a command or a piece of body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on with the remaining input.
    Continue,
    /// The input is used up; read more.
    NeedMore,
    /// Send what is queued and close.
    Close,
    /// Send what is queued, then hand over for the TLS handshake.
    StartTls,
}

/// What the client called itself, and whether it used EHLO.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// The EHLO/HELO argument.
    pub name: String,
    /// EHLO (extended) rather than HELO.
    pub extended: bool,
}

/// What MAIL FROM opened (RFC 5321 §3.3).
pub struct Transaction {
    /// Envelope sender ("" for `<>`).
    pub sender: String,
    /// BODY parameter.
    pub body: BodyType,
    /// SMTPUTF8 given.
    pub smtputf8: bool,
    /// DSN RET.
    pub ret: Option<Ret>,
    /// DSN ENVID.
    pub envid: Option<String>,
    /// The contacts table every recipient of this transaction is routed with: a reload
    /// in the middle never mixes two tables in one message.
    pub table: Arc<ContactsTable>,
}

/// The accepted recipients of a transaction: never empty.
pub struct Recipients(Vec<Recipient>);

impl Recipients {
    /// The first accepted recipient.
    pub fn first(recipient: Recipient) -> Self {
        Recipients(vec![recipient])
    }

    /// One more.
    pub fn push(&mut self, recipient: Recipient) {
        self.0.push(recipient);
    }

    /// How many (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never empty; here for completeness.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// In RCPT order.
    pub fn as_slice(&self) -> &[Recipient] {
        &self.0
    }

    /// In RCPT order.
    pub fn into_vec(self) -> Vec<Recipient> {
        self.0
    }
}

/// A transaction with at least one recipient: DATA or BDAT may follow.
pub struct Addressed {
    /// The greeting of the session it is in.
    pub greeting: Greeting,
    /// MAIL's facts.
    pub txn: Transaction,
    /// The recipients accepted so far.
    pub recipients: Recipients,
}

/// One BDAT chunk being read (RFC 3030 §2).
pub struct Chunk {
    /// Reads exactly the declared size.
    pub reader: BodyReader,
    /// Declared size.
    pub size: usize,
    /// `BDAT … LAST`.
    pub last: bool,
}

/// Where the session is in the envelope order.
#[derive(Default)]
pub enum Phase {
    /// Connected (or just through STARTTLS: RFC 3207 §4.2); no EHLO/HELO yet.
    #[default]
    Fresh,
    /// Greeted; no transaction open.
    Greeted(Greeting),
    /// MAIL accepted; no recipient yet.
    Mail(Greeting, Transaction),
    /// At least one recipient accepted.
    Rcpt(Addressed),
    /// DATA answered `354`: the body is being read.
    Data(Addressed, BodyReader, Body),
    /// BDAT chunks received so far; `Some` while one is being read.
    Bdat(Addressed, Body, Option<Chunk>),
    /// A BDAT chunk of this transaction was refused and the transaction with
    /// it; chunks the client had already pipelined are read and refused until
    /// LAST (RFC 3030 §2).
    BdatRefused(Greeting, Refusal),
    /// A BDAT chunk read only to be thrown away (RFC 3030 §3: it is read even
    /// when refused); then `refusal` is answered and the session is in `after`.
    Discard {
        /// The chunk.
        chunk: Chunk,
        /// The answer once it is read.
        refusal: Refusal,
        /// The phase after it.
        after: Box<Phase>,
    },
}

impl Phase {
    /// The greeting, once EHLO/HELO was given.
    pub fn greeting(&self) -> Option<&Greeting> {
        match self {
            Phase::Fresh => None,
            Phase::Greeted(g) | Phase::Mail(g, _) | Phase::BdatRefused(g, _) => Some(g),
            Phase::Rcpt(a) | Phase::Data(a, ..) | Phase::Bdat(a, ..) => Some(&a.greeting),
            Phase::Discard { after, .. } => after.greeting(),
        }
    }

    /// Takes the greeting out, ending whatever transaction was open.
    pub fn into_greeting(self) -> Option<Greeting> {
        match self {
            Phase::Fresh => None,
            Phase::Greeted(g) | Phase::Mail(g, _) | Phase::BdatRefused(g, _) => Some(g),
            Phase::Rcpt(a) | Phase::Data(a, ..) | Phase::Bdat(a, ..) => Some(a.greeting),
            Phase::Discard { after, .. } => after.into_greeting(),
        }
    }

    /// Greeted with no transaction (RSET, the end of a message); `Fresh` stays so.
    pub fn reset(self) -> Phase {
        self.into_greeting().map_or(Phase::Fresh, Phase::Greeted)
    }

    /// No transaction open: nothing since the greeting, the last `250` after
    /// the data, RSET, or a BDAT transaction already refused. Such a session is
    /// told `421 4.3.2` at once when the relay stops (DESIGN.md "Shutdown").
    pub fn between_transactions(&self) -> bool {
        matches!(
            self,
            Phase::Fresh | Phase::Greeted(_) | Phase::BdatRefused(..)
        )
    }

    /// True while body bytes, not commands, are expected.
    pub fn reads_body(&self) -> bool {
        matches!(
            self,
            Phase::Data(..) | Phase::Bdat(_, _, Some(_)) | Phase::Discard { .. }
        )
    }

    /// True when a chunk of size 0 is to be read: it completes without input.
    pub fn awaits_empty_chunk(&self) -> bool {
        match self {
            Phase::Bdat(_, _, Some(chunk)) | Phase::Discard { chunk, .. } => chunk.size == 0,
            _ => false,
        }
    }
}
