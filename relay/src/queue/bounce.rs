//! Turning failed or delayed recipients into a DSN that goes back through the
//! router and the spool like any message.

pub use crate::deliver::dsn::Action;
use crate::deliver::dsn::{self, Report, Returned};
use crate::envelope::Envelope;
use crate::envelope::Failure;
use crate::message::Message;
use crate::queue::spool::Spool;
use crate::route::router::Router;

/// Builds the DSN saying `action` for the (index, failure) recipients of
/// `envelope`, routes it and spools it. Returns the spooled DSN's envelope, or
/// `None` when no DSN is due (null sender, NOTIFY) or it could not be
/// routed/stored (logged).
pub async fn send_dsn(
    spool: &Spool,
    router: &Router,
    hostname: &str,
    envelope: &Envelope,
    (action, recipients): (Action, &[(usize, Failure)]),
    message: &Message,
) -> Option<Envelope> {
    if recipients.is_empty() {
        return None;
    }
    if envelope.sender.is_empty() {
        // RFC 5321 §4.5.5: a bounce that bounces is dropped, with a trace in the log.
        tracing::info!(id = %envelope.id, "no DSN: the failed message had the null sender <>");
        return None;
    }
    let reports: Vec<Report<'_>> = recipients
        .iter()
        .map(|(index, failure)| Report {
            index: *index,
            action,
            failure,
        })
        .collect();
    let content = returned_bytes(message).await;
    // A large message (in its own file) returns its headers, whatever RET
    // says: a DSN is built in memory (Postfix caps it, bounce_size_limit).
    let returned = match (message.in_memory(), &content) {
        (Some(whole), _) => Returned::choose(envelope, action, whole),
        (None, bytes) => Returned::Headers(bytes),
    };
    let dsn = dsn::build(envelope, hostname, &reports, returned, chrono::Utc::now())?;
    let mut bounce = dsn.envelope;
    let table = router.table();
    for rcpt in &mut bounce.recipients {
        match router.decide_local(&table, &rcpt.address) {
            Ok(d) => {
                rcpt.route = d.route;
                rcpt.rewritten = d.rewritten;
                rcpt.reason = d.reason;
            }
            Err(e) => {
                tracing::warn!(id = %envelope.id, sender = %rcpt.address, error = %e, "DSN dropped: cannot route it");
                return None;
            }
        }
    }
    bounce.id = spool.new_id();
    let id = bounce.id.clone();
    match spool.store_message(bounce, dsn.message).await {
        Ok(stored) => {
            let what = match action {
                Action::Failed => "sender non-delivery notification queued",
                Action::Delayed => "sender delay notification queued",
            };
            tracing::info!(id = %envelope.id, dsn = %id, to = %envelope.sender, "{what}");
            Some(stored)
        }
        Err(e) => {
            tracing::error!(id = %envelope.id, error = %e, "DSN could not be spooled");
            None
        }
    }
}

/// The header section of a message in its own file (read on the blocking
/// pool); nothing for one in memory, which is used as it is.
async fn returned_bytes(message: &Message) -> Vec<u8> {
    if message.in_memory().is_some() {
        return Vec::new();
    }
    let message = message.clone();
    match tokio::task::spawn_blocking(move || message.header_section()).await {
        Ok(Ok(headers)) => headers,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "DSN without the original headers: cannot read them");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}
