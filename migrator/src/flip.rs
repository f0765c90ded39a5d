//! The flip and its undo. Writing the user's forwarding contact is the moment
//! mail starts flowing to the cloud mailbox (the relay picks the new table up
//! within 2 s, DESIGN.md); `rollback` removes it, and mail flows on-premises
//! again. Copied content stays where it is either way.

use crate::context::UserContext;
use crate::directory::{user, Directory, DirectoryError};
use crate::metrics::UserState as Gauge;
use crate::state::{Phase, StateDir, StateError};

/// Why a contact could not be written or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlipError {
    /// The directory refused the change (or could not be read).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The checkpoint could not be read or saved.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Writes the user's contact and records the flip in the checkpoint.
pub fn write_contact(ctx: &mut UserContext<'_>) -> Result<(), FlipError> {
    ctx.run.directory.write_contact(ctx.user, &ctx.target)?;
    ctx.state.target = Some(ctx.target.clone());
    ctx.state.error = None;
    // A sync of a migrated user re-writes the contact; it stays migrated.
    if ctx.state.phase != Phase::Migrated {
        ctx.state.phase = Phase::Forwarding;
    }
    ctx.save()?;
    ctx.gauge.set(Gauge::ForwardingSet);
    ctx.say(format_args!(
        "contact written; mail now flows to {}",
        ctx.target
    ));
    Ok(())
}

/// One user of `rollback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The address (as the directory spells it, when it knows the user).
    pub address: String,
    /// Whether there was a contact to remove.
    pub had_contact: bool,
}

/// `rollback USER...`: removes each contact (the copied content stays) and
/// marks the user rolled back, so `ready` lists them again. A name the
/// directory does not know is still looked up in the contacts table: a user
/// removed from the directory can be rolled back.
pub fn rollback(
    directory: &Directory,
    states: &StateDir,
    names: &[String],
) -> Result<Vec<RolledBack>, FlipError> {
    let users = directory.users()?;
    let mut out = Vec::new();
    for name in names {
        let address = user::find(&users, name)
            .map(|u| u.address.clone())
            .unwrap_or_else(|| name.clone());
        let had_contact = directory.remove_contact(&address)?;
        let mut st = states.load(&address)?;
        if had_contact || st.phase != Phase::NotStarted {
            st.phase = Phase::RolledBack;
            st.error = None;
            states.save(&mut st)?;
        }
        out.push(RolledBack {
            address,
            had_contact,
        });
    }
    Ok(out)
}
