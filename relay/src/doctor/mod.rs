//! `coexist-relay doctor`: the checks an operator runs before and during a
//! migration, each an [`Check`] that is ok, warn or fail with the fix.
//!
//! - `local`: the config, the contacts table, the server certificate.
//! - `hops`: every route's next hops: resolvable, reachable, EHLO, STARTTLS as
//!   the route's policy needs. No mail is sent (QUIT after EHLO).
//! - `dns`: each accepted domain: MX, SPF, autodiscover.
//! - `spool`: free space, damaged files, queue size and age.
//! - `directory`: with `routing.source = "ldap"`, bind, search, counts and
//!   the change-tracking mode.
//! - `tls`: each route's outbound TLS policy (MTA-STS, DANE, cached policies)
//!   and its client certificate.
//!
//! Nothing here changes state: the spool is read without its lock (the relay
//! may be running), the contacts table is parsed, not loaded into a live relay.

mod directory;
mod dns;
mod hops;
mod local;
mod spool;
mod tls;

#[cfg(test)]
mod tests;

use crate::config::Config;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but needs attention (does not change the exit code).
    Warn,
    /// Broken: mail is or will be affected.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so `{:<5}` lines the report up.
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The outcome.
    pub status: Status,
    /// What was checked, e.g. `route cloud: mx.tenant.example[192.0.2.1]:25`.
    pub what: String,
    /// What was found.
    pub detail: String,
    /// What to do about it (warn and fail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn ok(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            status: Status::Ok,
            what: what.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warn(
        what: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warn,
            what: what.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A failure with its fix.
    pub fn fail(
        what: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Fail,
            what: what.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    /// `ok    what: detail`, then `      fix: ...` on its own line for warn/fail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<5} {}: {}", self.status, self.what, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every check, in the order they ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst status (ok for an empty report).
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// DESIGN.md exit codes: 0 when nothing failed (warnings allowed), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Status::Fail => 1,
            Status::Ok | Status::Warn => 0,
        }
    }

    /// The checks whose `what` starts with `prefix` (for tests and scripts).
    pub fn find<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks
            .iter()
            .filter(move |c| c.what.starts_with(prefix))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Knobs of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Cap on all next-hop probes together; each probe is also bounded by its
    /// route's `connect_timeout` and `command_timeout`.
    pub probe_budget: Duration,
    /// Cap on the DNS checks of all accepted domains together.
    pub dns_budget: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            probe_budget: Duration::from_secs(60),
            dns_budget: Duration::from_secs(30),
        }
    }
}

/// Runs every check against a loaded config. The config itself is valid by
/// construction; the caller prints its errors (exit 2) when it is not.
pub async fn run(config: &Config, options: &Options) -> Report {
    let mut checks = vec![local::config(config)];
    let contacts = local::contacts(config, &mut checks);
    checks.extend(local::certificate(config));
    checks.extend(hops::check(config, contacts.as_ref(), options.probe_budget).await);
    checks.extend(tls::check(config));
    checks.extend(dns::check(config, options.dns_budget).await);
    checks.extend(spool::check(config));
    checks.extend(directory::check(config, options.dns_budget).await);
    Report { checks }
}
