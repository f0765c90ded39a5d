//! What the pipeline steps work on: [`RunContext`], shared by every user of one
//! `migrate` / `sync` run, and [`UserContext`], one user's migration in flight
//! (who, where to, the checkpoint, the report being built). The steps
//! ([`crate::plan`], [`crate::flip`], [`crate::copy`]) each take a
//! `UserContext`; [`crate::run`] moves it through them.

use crate::directory::{Directory, User};
use crate::imap::connect::Connector;
use crate::imap::{Connections, SideError};
use crate::metrics::{metrics, UserState as Gauge};
use crate::plan::Filter;
use crate::progress::Progress;
use crate::report::UserReport;
use crate::state::{StateDir, StateError, UserState};
use std::fmt::Display;

/// What the users of one run share.
pub struct RunContext {
    /// Where users come from and contacts go.
    pub directory: Directory,
    /// The checkpoints.
    pub states: StateDir,
    /// What to copy.
    pub filter: Filter,
    /// Bars or lines on stderr.
    pub progress: Progress,
    /// Where the sessions come from (and come again after a lost connection).
    pub connector: Box<dyn Connector>,
    /// Both sides' CalDAV/CardDAV servers, when both have a `dav_url`.
    pub dav: Option<crate::dav::Servers>,
}

/// One user's migration in flight.
pub struct UserContext<'a> {
    /// The run this user is part of.
    pub run: &'a RunContext,
    /// The user.
    pub user: &'a User,
    /// The contact address (the target mailbox).
    pub target: String,
    /// The user's checkpoint, saved at every step.
    pub state: UserState,
    /// What this run did for the user, built up as it goes.
    pub report: &'a mut UserReport,
    /// Where the user is on `coexist_migrator_users`.
    pub gauge: &'a mut UserGauge,
}

impl UserContext<'_> {
    /// Prints `what` about this user (`alice@corp.example: ...`), beside the bars.
    pub fn say(&self, what: impl Display) {
        self.run
            .progress
            .println(&format!("{}: {what}", self.user.address));
    }

    /// Saves the checkpoint.
    pub fn save(&mut self) -> Result<(), StateError> {
        self.run.states.save(&mut self.state)
    }

    /// Logs in to both sides for this user.
    pub async fn connect(&self) -> Result<Connections, SideError> {
        self.run
            .connector
            .open(&self.user.address, &self.target)
            .await
    }
}

/// One user's place on the `coexist_migrator_users` gauge: moving it takes the
/// user off the old state's count and onto the new one's.
#[derive(Debug)]
pub struct UserGauge(Gauge);

impl Default for UserGauge {
    fn default() -> Self {
        UserGauge(Gauge::NotStarted)
    }
}

impl UserGauge {
    /// Moves the user to `next`.
    pub fn set(&mut self, next: Gauge) {
        metrics().user_moves(self.0, next);
        self.0 = next;
    }
}
