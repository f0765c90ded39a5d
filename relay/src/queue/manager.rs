//! The scheduler: holds every queued message, starts delivery attempts when they are
//! due (at most `queue.delivery_concurrency` at once), reschedules what was deferred,
//! and answers the admin commands (`queue flush|requeue|hold|release|delete`).
//!
//! It is one task that owns the schedule; attempts run as their own tasks and report
//! back, so the schedule is never shared and never locked.

use super::admin::{AdminRequest, Answer, Command};
use super::attempt::{attempt, next_due, unix_now, AttemptResult, Services};
use super::bounce::{send_dsn, Action};
use crate::envelope::Failure;
use crate::envelope::{Envelope, RecipientStatus};
use crate::message::Message;
use crate::metrics::metrics;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The running scheduler.
pub struct Manager {
    /// Admin requests go here.
    pub admin: mpsc::Sender<AdminRequest>,
    /// Ends after shutdown, once in-flight attempts finished or the grace ran out.
    pub task: tokio::task::JoinHandle<()>,
}

struct Schedule {
    /// Messages not in flight (an attempt owns its envelope while it runs).
    messages: HashMap<String, Envelope>,
    /// (due time, id) of messages not in flight.
    due: BTreeSet<(i64, String)>,
    /// (received, id) of every message, for `queue_oldest_seconds`.
    by_age: BTreeSet<(i64, String)>,
    in_flight: HashMap<String, AfterAttempt>,
}

/// A message in flight, and what to do with it when its attempt returns.
#[derive(Default)]
struct AfterAttempt {
    /// When it was received (its place in `by_age`).
    received_at: i64,
    /// `queue delete` arrived meanwhile (Some(silent)).
    delete: Option<bool>,
    /// `queue flush|requeue` arrived meanwhile: make it due again at once.
    requeue: bool,
    /// `queue hold` (true) or `release` (false) arrived meanwhile.
    hold: Option<bool>,
}

impl Schedule {
    fn insert(&mut self, envelope: Envelope) {
        let id = envelope.id.clone();
        // A held message is kept, never attempted (until released).
        if let Some(at) = next_due(&envelope).filter(|_| !envelope.held) {
            self.due.insert((at, id.clone()));
        }
        self.by_age.insert((envelope.received_at, id.clone()));
        self.messages.insert(id, envelope);
        self.count();
    }

    fn count(&self) {
        let queued = self.messages.len() + self.in_flight.len();
        metrics().queue_messages.set(queued as i64);
    }

    fn forget(&mut self, id: &str) -> Option<Envelope> {
        let envelope = self.messages.remove(id)?;
        self.by_age.remove(&(envelope.received_at, id.to_string()));
        if let Some(at) = next_due(&envelope).filter(|_| !envelope.held) {
            self.due.remove(&(at, id.to_string()));
        }
        self.count();
        Some(envelope)
    }

    fn update_age(&self) {
        let oldest = self
            .by_age
            .first()
            .map_or(0, |(t, _)| (unix_now() - t).max(0));
        metrics().queue_oldest_seconds.set(oldest);
    }
}

/// Starts the scheduler with the messages recovered from the spool and the channel
/// the SMTP sessions announce new messages on.
pub fn spawn(
    services: Services,
    recovered: Vec<Envelope>,
    incoming: mpsc::UnboundedReceiver<Envelope>,
    shutdown: CancellationToken,
) -> Manager {
    let (admin, admin_rx) = mpsc::channel(16);
    let task = tokio::spawn(run(
        Arc::new(services),
        recovered,
        incoming,
        admin_rx,
        shutdown,
    ));
    Manager { admin, task }
}

async fn run(
    services: Arc<Services>,
    recovered: Vec<Envelope>,
    mut incoming: mpsc::UnboundedReceiver<Envelope>,
    mut admin: mpsc::Receiver<AdminRequest>,
    shutdown: CancellationToken,
) {
    let mut s = Schedule {
        messages: HashMap::new(),
        due: BTreeSet::new(),
        by_age: BTreeSet::new(),
        in_flight: HashMap::new(),
    };
    for envelope in recovered {
        s.insert(envelope);
    }
    s.update_age();
    let concurrency = services.config.queue.delivery_concurrency;
    let mut attempts: JoinSet<AttemptResult> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Start everything due, up to the concurrency limit.
        let now = unix_now();
        while s.in_flight.len() < concurrency {
            let Some((at, id)) = s.due.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            s.due.pop_first();
            // The attempt owns the envelope until it returns it (no copy).
            let Some(envelope) = s.messages.remove(&id) else {
                continue;
            };
            let after = AfterAttempt {
                received_at: envelope.received_at,
                ..AfterAttempt::default()
            };
            s.in_flight.insert(id, after);
            attempts.spawn(attempt(Arc::clone(&services), envelope));
        }
        let next = s.due.first().map(|(at, _)| *at);
        let wait = match next {
            Some(at) if s.in_flight.len() < concurrency => {
                Duration::from_secs((at - now).clamp(0, 3600) as u64)
            }
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            Some(envelope) = incoming.recv() => s.insert(envelope),
            Some(done) = attempts.join_next() => match done {
                Ok(result) => finished(&services, &mut s, result).await,
                Err(e) => tracing::error!(error = %e, "delivery attempt task failed"),
            },
            Some(request) = admin.recv() => handle_admin(&services, &mut s, request).await,
            _ = tokio::time::sleep(wait) => {}
            _ = tick.tick() => s.update_age(),
            _ = shutdown.cancelled() => break,
        }
    }
    // Let attempts in flight finish within the grace period; what does not finish is
    // still in the spool and is retried at the next start.
    let grace = services.config.server.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        while let Some(done) = attempts.join_next().await {
            if let Ok(result) = done {
                finished(&services, &mut s, result).await;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            in_flight = attempts.len(),
            "shutdown grace over with deliveries in flight; they will be retried"
        );
        attempts.abort_all();
    }
    services.deliverer.close_idle();
}

async fn finished(services: &Arc<Services>, s: &mut Schedule, result: AttemptResult) {
    let (id, envelope, bounces) = match result {
        AttemptResult::Done { id, bounces } => (id, None, bounces),
        AttemptResult::Again { envelope, bounces } => {
            (envelope.id.clone(), Some(envelope), bounces)
        }
    };
    let after = s.in_flight.remove(&id).unwrap_or_default();
    // Put back by `insert` below if it stays.
    s.by_age.remove(&(after.received_at, id.clone()));
    s.count();
    for bounce in bounces {
        s.insert(bounce);
    }
    match (envelope, after.delete) {
        (Some(envelope), Some(silent)) => {
            delete_now(services, s, envelope, silent).await;
        }
        (Some(mut envelope), None) => {
            if let Some(hold) = after.hold {
                set_held(services, &mut envelope, hold).await;
            }
            if after.requeue || after.hold == Some(false) {
                make_due(&mut envelope, unix_now());
            }
            s.insert(envelope)
        }
        (None, _) => {}
    }
}

async fn handle_admin(services: &Arc<Services>, s: &mut Schedule, request: AdminRequest) {
    let AdminRequest { command, reply } = request;
    let ids = match &command {
        Command::Requeue { ids: None } => s
            .messages
            .keys()
            .chain(s.in_flight.keys())
            .cloned()
            .collect(),
        Command::Requeue { ids: Some(ids) }
        | Command::Delete { ids, .. }
        | Command::Hold { ids }
        | Command::Release { ids } => ids.clone(),
    };
    let mut answer = Answer::default();
    for id in ids {
        match admin_one(services, s, &command, &id).await {
            Some(true) => answer.acted.push(id),
            Some(false) => answer.held.push(id),
            None => answer.missing.push(id),
        }
    }
    tracing::info!(?command, acted = answer.acted.len(), "queue command");
    let _ = reply.send(answer);
}

/// Applies `command` to one message: `Some(true)` done, `Some(false)` left
/// alone because it is held, `None` not in the queue. A message in flight
/// gets it when its attempt returns.
async fn admin_one(
    services: &Arc<Services>,
    s: &mut Schedule,
    command: &Command,
    id: &str,
) -> Option<bool> {
    if let Some(after) = s.in_flight.get_mut(id) {
        match command {
            Command::Requeue { .. } => after.requeue = true,
            Command::Delete { silent, .. } => after.delete = Some(*silent),
            Command::Hold { .. } => after.hold = Some(true),
            Command::Release { .. } => after.hold = Some(false),
        }
        return Some(true);
    }
    let mut envelope = s.forget(id)?;
    let mut done = true;
    match command {
        Command::Requeue { .. } if envelope.held => done = false,
        Command::Requeue { .. } => make_due(&mut envelope, unix_now()),
        Command::Delete { silent, .. } => {
            delete_now(services, s, envelope, *silent).await;
            return Some(true);
        }
        Command::Hold { .. } => set_held(services, &mut envelope, true).await,
        Command::Release { .. } => {
            set_held(services, &mut envelope, false).await;
            make_due(&mut envelope, unix_now());
        }
    }
    s.insert(envelope);
    Some(done)
}

/// Holds or releases a message, durably: a held message stays held across
/// restarts (its state file says so).
async fn set_held(services: &Arc<Services>, envelope: &mut Envelope, held: bool) {
    if envelope.held == held {
        return;
    }
    envelope.held = held;
    let spool = Arc::clone(&services.spool);
    let state = envelope.clone();
    match tokio::task::spawn_blocking(move || spool.update(&state)).await {
        Ok(Ok(())) => {
            tracing::info!(id = %envelope.id, held, "{}", if held { "held" } else { "released" })
        }
        Ok(Err(e)) => {
            tracing::error!(id = %envelope.id, error = %e, "could not record hold/release")
        }
        Err(e) => tracing::error!(id = %envelope.id, error = %e, "could not record hold/release"),
    }
}

fn make_due(envelope: &mut Envelope, now: i64) {
    for r in &mut envelope.recipients {
        if r.status == RecipientStatus::Pending {
            r.next_attempt = now;
        }
    }
}

async fn delete_now(services: &Arc<Services>, s: &mut Schedule, envelope: Envelope, silent: bool) {
    if let Some(bounce) = delete_message(services, &envelope, silent).await {
        s.insert(bounce);
    }
}

/// Removes a message from the spool; unless `silent`, its pending recipients are
/// bounced to the sender first. Also used by the offline `queue delete`.
pub async fn delete_message(
    services: &Services,
    envelope: &Envelope,
    silent: bool,
) -> Option<Envelope> {
    let mut bounce = None;
    if !silent {
        let failure = Failure::deleted();
        let failed: Vec<(usize, Failure)> = envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status == RecipientStatus::Pending)
            .map(|(i, _)| (i, failure.clone()))
            .collect();
        let message = services
            .spool
            .read_message(&envelope.id)
            .unwrap_or_else(|_| Message::Memory(Default::default()));
        bounce = send_dsn(
            &services.spool,
            &services.router,
            &services.config.server.hostname,
            envelope,
            (Action::Failed, &failed),
            &message,
        )
        .await;
    }
    if let Err(e) = services.spool.remove(&envelope.id) {
        tracing::error!(id = %envelope.id, error = %e, "queue delete: could not remove");
    }
    tracing::info!(id = %envelope.id, silent, "deleted from the queue");
    bounce
}
