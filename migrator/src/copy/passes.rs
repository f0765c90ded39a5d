//! One user's copy: every planned folder, then a delta pass for what arrived
//! meanwhile. A folder that stops on a temporary failure (a lost connection, a
//! `BYE`, a timeout, throttling) resumes on a new connection after a back-off;
//! its checkpoint says where.

use super::mail::{self, CopyError, Sink};
use crate::context::UserContext;
use crate::imap::{Connections, Session};
use crate::metrics::{metrics, ErrorKind};
use crate::plan::FolderPlan;
use crate::progress::UserProgress;
use crate::state::{FolderState, StateDir, StateError, UserState};
use std::time::Duration;
use tokio::time::Instant;

/// How many times a folder is retried on a new connection after a temporary
/// failure (connection lost, BYE, timeout, throttling).
const RECONNECTS: u32 = 3;

/// Time between writing the contact and the delta pass.
const DELTA_SETTLE: Duration = Duration::from_secs(5);

/// How long the delta pass waits, at most, for the source INBOX to stop growing.
const QUIET_INBOX_WAIT: Duration = Duration::from_secs(60);

/// How often the source INBOX is looked at while waiting for it to stop growing.
const QUIET_INBOX_POLL: Duration = Duration::from_secs(2);

/// A folder's copy failed for good (or kept failing).
#[derive(Debug, thiserror::Error)]
#[error("{folder}: {source}")]
pub struct FolderError {
    /// The source folder.
    pub folder: String,
    /// What stopped it.
    pub source: CopyError,
}

/// Copies every folder of `folders`, then runs the delta pass: pass 1 copies,
/// pass 2 picks up what arrived meanwhile. `flipped_at` is when this run wrote
/// the contact, if it did: the delta pass then waits until the relay has
/// switched and the source has stopped receiving.
pub async fn copy_user(
    ctx: &mut UserContext<'_>,
    conns: &mut Connections,
    folders: &[FolderPlan],
    bar: &UserProgress,
    flipped_at: Option<Instant>,
) -> Result<(), FolderError> {
    for pass in 0..2 {
        if pass == 1 {
            if let Some(flipped) = flipped_at {
                // The relay switches tables within 2 s of the rename (DESIGN.md), and
                // mail it routed on-premises just before may still be on its way: the
                // delta pass starts only once the source has stopped receiving.
                tokio::time::sleep_until(flipped + DELTA_SETTLE).await;
                wait_for_quiet_inbox(&mut conns.src).await;
            }
        }
        for plan in folders {
            let (before, started) = (ctx.report.counters, Instant::now());
            let copied = copy_folder(ctx, conns, plan, bar).await;
            // Counted also when the folder stopped on an error.
            let kind = if plan.calendar { "calendar" } else { "mail" };
            ctx.report
                .add_imap_content(kind, &before, started.elapsed());
            copied.map_err(|source| FolderError {
                folder: plan.source.clone(),
                source,
            })?;
            if pass == 0 {
                ctx.report.counters.folders += 1;
            }
        }
    }
    Ok(())
}

/// Waits (at most a minute) until the source INBOX stops growing: deliveries the relay
/// routed on-premises before the flip may still be arriving, and the delta pass must
/// come after the last of them.
async fn wait_for_quiet_inbox(src: &mut Session) {
    let deadline = Instant::now() + QUIET_INBOX_WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        let Ok(now) = src.open("INBOX", false).await.map(|s| s.exists) else {
            return;
        };
        if last == Some(now) {
            return;
        }
        last = Some(now);
        tokio::time::sleep(QUIET_INBOX_POLL).await;
    }
}

/// Copies one folder, reconnecting (2 s, 4 s, 8 s) after a temporary failure;
/// the folder's checkpoint makes the next attempt resume, not restart.
async fn copy_folder(
    ctx: &mut UserContext<'_>,
    conns: &mut Connections,
    plan: &FolderPlan,
    bar: &UserProgress,
) -> Result<(), CopyError> {
    let mut attempt = 0;
    loop {
        let mut folder_state = ctx
            .state
            .folders
            .get(&plan.source)
            .cloned()
            .unwrap_or_default();
        let mut checkpoint = Checkpoint {
            states: &ctx.run.states,
            state: &mut ctx.state,
            bar,
        };
        let copied = mail::sync_folder(
            conns,
            plan,
            &ctx.run.filter,
            &mut folder_state,
            &mut checkpoint,
            ctx.report,
        )
        .await;
        let e = match copied {
            Ok(()) => return Ok(()),
            Err(CopyError::Imap(e)) if e.is_temporary() && attempt < RECONNECTS => e,
            Err(e) => return Err(e),
        };
        attempt += 1;
        let kind = ErrorKind::of(&e.source);
        metrics().error(kind);
        if kind == ErrorKind::Throttled {
            ctx.report.counters.throttled += 1;
        }
        let delay = Duration::from_secs(2u64.pow(attempt));
        let why = match kind {
            ErrorKind::Throttled => "throttled",
            _ => "connection lost",
        };
        ctx.say(format_args!(
            "{}: {e}; {why}, reconnecting in {delay:?}",
            plan.source
        ));
        metrics().backoff_seconds.inc_by(delay.as_secs_f64());
        tokio::time::sleep(delay).await;
        *conns = ctx.connect().await?;
    }
}

/// The copy's checkpoints go into the user's state file, its progress onto
/// the user's bar (and the "copying n of m" of `status`).
struct Checkpoint<'a> {
    states: &'a StateDir,
    state: &'a mut UserState,
    bar: &'a UserProgress,
}

impl Sink for Checkpoint<'_> {
    fn save(&mut self, folder: &str, state: &FolderState) -> Result<(), StateError> {
        self.state.folders.insert(folder.to_string(), state.clone());
        self.state.progress.0 = self.bar.done();
        self.states.save(self.state)
    }

    fn progress(&mut self, messages: u64, bytes: u64) {
        self.bar.inc(messages, bytes);
    }
}
