//! The queue commands when no relay runs: the same actions as the manager's,
//! on the spool itself. Opening the spool takes its lock, so a relay started
//! meanwhile waits for this to finish rather than racing it.

use super::admin::{Answer, Command};
use super::attempt::Services;
use super::manager::delete_message;
use super::spool::{Spool, SpoolError};
use crate::config::Config;
use crate::deliver::status::DeliverError;
use crate::deliver::Deliverer;
use crate::envelope::{Envelope, RecipientStatus};
use crate::route::reload::Contacts;
use crate::route::router::Router;
use std::sync::Arc;

/// Why an offline command could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The spool could not be opened or written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Deleting with a DSN needs outbound delivery's set-up (the resolver).
    #[error("outbound delivery: {0}")]
    Deliver(#[from] DeliverError),
}

/// Runs `command` on the spool of `config` (`contacts` routes the DSNs of a delete).
pub async fn apply(
    config: &Config,
    contacts: Arc<Contacts>,
    command: &Command,
) -> Result<Answer, OfflineError> {
    let (spool, envelopes) = Spool::open(&config.server.spool_dir)?;
    let wanted = |id: &str| match command {
        Command::Requeue { ids: None } => true,
        Command::Requeue { ids: Some(ids) }
        | Command::Delete { ids, .. }
        | Command::Hold { ids }
        | Command::Release { ids } => ids.iter().any(|i| i == id),
    };
    let mut answer = Answer::default();
    let mut chosen: Vec<Envelope> = envelopes.into_iter().filter(|e| wanted(&e.id)).collect();
    if let Command::Delete { silent, .. } = command {
        let services = Services {
            config: Arc::new(config.clone()),
            spool: Arc::clone(&spool),
            deliverer: Arc::new(Deliverer::new(config)?),
            router: Arc::new(Router::new(&config.relay, &config.routing, contacts)),
        };
        for envelope in &chosen {
            delete_message(&services, envelope, *silent).await;
            answer.acted.push(envelope.id.clone());
        }
    } else {
        for envelope in &mut chosen {
            match command {
                Command::Requeue { .. } if envelope.held => {
                    answer.held.push(envelope.id.clone());
                    continue;
                }
                Command::Requeue { .. } => make_due(envelope),
                Command::Hold { .. } => envelope.held = true,
                Command::Release { .. } => {
                    envelope.held = false;
                    make_due(envelope);
                }
                Command::Delete { .. } => unreachable!("handled above"),
            }
            spool.update(envelope)?;
            answer.acted.push(envelope.id.clone());
        }
    }
    if let Command::Delete { ids, .. }
    | Command::Hold { ids }
    | Command::Release { ids }
    | Command::Requeue { ids: Some(ids) } = command
    {
        answer.missing = ids
            .iter()
            .filter(|id| !chosen.iter().any(|e| &e.id == *id))
            .cloned()
            .collect();
    }
    // Finished messages are recorded by the spool's own thread.
    spool.flush();
    Ok(answer)
}

fn make_due(envelope: &mut Envelope) {
    for r in &mut envelope.recipients {
        if r.status == RecipientStatus::Pending {
            r.next_attempt = 0;
        }
    }
}
