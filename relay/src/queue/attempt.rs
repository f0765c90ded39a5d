//! One delivery attempt for one message: deliver what is due, record every
//! recipient's outcome in the envelope, bounce what failed for good, and persist.

use super::bounce::{send_dsn, Action};
use super::reroute::reroute;
use super::retry::next_delay;
use super::spool::Spool;
use crate::config::{Config, QueueConfig};
use crate::deliver::{Deliverer, Outcome};
use crate::envelope::Failure;
use crate::envelope::{Envelope, RecipientStatus};
use crate::message::Message;
use crate::metrics::{metrics, DeliveryResult};
use crate::route::router::Router;
use std::sync::Arc;

/// What the manager needs to run attempts.
pub struct Services {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The spool.
    pub spool: Arc<Spool>,
    /// Outbound delivery.
    pub deliverer: Arc<Deliverer>,
    /// For routing bounces, and deciding again before each attempt.
    pub router: Arc<Router>,
}

/// The result of one attempt.
pub enum AttemptResult {
    /// Every recipient is delivered or bounced; the message left the spool.
    Done {
        /// Queue id.
        id: String,
        /// DSNs created by this attempt.
        bounces: Vec<Envelope>,
    },
    /// Some recipients remain; the updated envelope is persisted.
    Again {
        /// The envelope with the new state.
        envelope: Envelope,
        /// DSNs created by this attempt.
        bounces: Vec<Envelope>,
    },
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The earliest `next_attempt` of the pending recipients (None when nothing is pending).
pub fn next_due(envelope: &Envelope) -> Option<i64> {
    envelope
        .recipients
        .iter()
        .filter(|r| r.status == RecipientStatus::Pending)
        .map(|r| r.next_attempt)
        .min()
}

/// Runs one attempt. Never panics on I/O: a message that cannot be read stays queued
/// and is retried at the schedule's last interval (logged).
pub async fn attempt(services: Arc<Services>, mut envelope: Envelope) -> AttemptResult {
    let now = unix_now();
    let message = match services.spool.message_in_memory(&envelope.id) {
        // Just received: no need to read it back.
        Some(m) => m,
        None => {
            let spool = Arc::clone(&services.spool);
            let id = envelope.id.clone();
            match tokio::task::spawn_blocking(move || spool.read_message(&id)).await {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return unreadable(&services, envelope, now, e.to_string()),
                Err(e) => return unreadable(&services, envelope, now, e.to_string()),
            }
        }
    };
    // Where each recipient lives now, not where it lived when the mail came in.
    reroute(&services.router, &mut envelope, now);
    let due: Vec<usize> = envelope
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == RecipientStatus::Pending && r.next_attempt <= now)
        .map(|(i, _)| i)
        .collect();
    let outcomes = services
        .deliverer
        .deliver(&envelope, &due, message.clone())
        .await;

    let now = unix_now();
    let failed = record(&services.config.queue, &mut envelope, outcomes, now);
    let mut bounces = Vec::new();
    if let Some(b) = send_dsn(
        &services.spool,
        &services.router,
        &services.config.server.hostname,
        &envelope,
        (Action::Failed, &failed),
        &message,
    )
    .await
    {
        bounces.push(b);
    }
    if let Some(notice) = delay_notice(&services, &mut envelope, now, &message).await {
        bounces.push(notice);
    }
    persist(&services, envelope, bounces).await
}

/// Writes each recipient's outcome into the envelope: delivered, bounced, or
/// deferred to its next try (bounced with 4.4.7 when that would pass
/// `queue.max_lifetime`). Returns the recipients that failed for good.
fn record(
    queue: &QueueConfig,
    envelope: &mut Envelope,
    outcomes: Vec<(usize, Outcome)>,
    now: i64,
) -> Vec<(usize, Failure)> {
    let expires = envelope.received_at + queue.max_lifetime.as_secs() as i64;
    let mut failed: Vec<(usize, Failure)> = Vec::new();
    for (i, outcome) in outcomes {
        let rcpt = &mut envelope.recipients[i];
        match outcome {
            Outcome::Delivered { reply } => rcpt.status = RecipientStatus::Delivered { reply },
            Outcome::Permanent(failure) => {
                rcpt.status = RecipientStatus::Bounced {
                    failure: failure.clone(),
                };
                failed.push((i, failure));
            }
            Outcome::Temporary(failure) => {
                rcpt.attempts += 1;
                rcpt.last_error = Some(failure.clone());
                let delay = next_delay(&queue.retry_schedule, rcpt.attempts, (&envelope.id, i));
                let next = now + delay.as_secs().max(1) as i64;
                if next > expires {
                    // RFC 5321 §4.5.4.1: give up after the queue lifetime, with a DSN.
                    let expired = Failure::expired(rcpt.attempts, failure);
                    rcpt.status = RecipientStatus::Bounced {
                        failure: expired.clone(),
                    };
                    metrics().delivery(&rcpt.route, DeliveryResult::Bounced);
                    tracing::info!(id = %envelope.id, to = %rcpt.rewritten, orig_to = %rcpt.address, route = %rcpt.route, status = "expired", "{expired}");
                    failed.push((i, expired));
                } else {
                    rcpt.next_attempt = next;
                }
            }
        }
    }
    failed
}

/// DESIGN.md "Durability": one "delayed" DSN per message still queued after
/// `queue.delay_warning`, for the pending recipients that want it (RFC 3461
/// §4.1 NOTIFY), never to `<>`. At most once, across restarts: the envelope
/// records it durably before the notice is spooled, so a crash in between
/// loses the notice rather than sending it twice.
async fn delay_notice(
    services: &Arc<Services>,
    envelope: &mut Envelope,
    now: i64,
    message: &Message,
) -> Option<Envelope> {
    let after = services.config.queue.delay_warning.as_secs() as i64;
    let due = after > 0
        && !envelope.delay_notified
        && !envelope.sender.is_empty()
        && now - envelope.received_at >= after;
    if !due {
        return None;
    }
    let delayed: Vec<(usize, Failure)> = envelope
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == RecipientStatus::Pending)
        .filter_map(|(i, r)| Some((i, r.last_error.clone()?)))
        .collect();
    if delayed.is_empty() {
        return None;
    }
    envelope.delay_notified = true;
    let spool = Arc::clone(&services.spool);
    let recorded = envelope.clone();
    match tokio::task::spawn_blocking(move || spool.update(&recorded)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(id = %envelope.id, error = %e, "delay notice not sent: its state could not be recorded");
            return None;
        }
        Err(e) => {
            tracing::error!(id = %envelope.id, error = %e, "delay notice not sent");
            return None;
        }
    }
    send_dsn(
        &services.spool,
        &services.router,
        &services.config.server.hostname,
        envelope,
        (Action::Delayed, &delayed),
        message,
    )
    .await
}

/// Writes the new state, or removes the message when nothing is pending.
async fn persist(
    services: &Arc<Services>,
    envelope: Envelope,
    bounces: Vec<Envelope>,
) -> AttemptResult {
    let spool = Arc::clone(&services.spool);
    if next_due(&envelope).is_none() {
        if let Err(e) = spool.remove(&envelope.id) {
            tracing::error!(id = %envelope.id, error = %e, "could not remove a finished message");
        }
        return AttemptResult::Done {
            id: envelope.id,
            bounces,
        };
    }
    // Moved to the blocking pool and back: no copy of the envelope.
    let id = envelope.id.clone();
    let written = tokio::task::spawn_blocking(move || {
        let result = spool.update(&envelope);
        (envelope, result)
    })
    .await;
    let envelope = match written {
        Ok((envelope, Ok(()))) => envelope,
        Ok((envelope, Err(e))) => {
            // The next attempt may repeat deliveries already made: at-least-once.
            tracing::error!(id = %envelope.id, error = %e, "could not persist delivery state");
            envelope
        }
        Err(e) => {
            // The spool still holds the message; the next start schedules it.
            tracing::error!(%id, error = %e, "persisting delivery state failed; retried after a restart");
            return AttemptResult::Done { id, bounces };
        }
    };
    AttemptResult::Again { envelope, bounces }
}

fn unreadable(
    services: &Services,
    mut envelope: Envelope,
    now: i64,
    error: String,
) -> AttemptResult {
    tracing::error!(id = %envelope.id, %error, "cannot read the queued message; will retry");
    let later = services
        .config
        .queue
        .retry_schedule
        .last()
        .map_or(3600, |d| d.as_secs() as i64);
    for r in &mut envelope.recipients {
        if r.status == RecipientStatus::Pending {
            r.next_attempt = now + later;
        }
    }
    AttemptResult::Again {
        envelope,
        bounces: Vec::new(),
    }
}
