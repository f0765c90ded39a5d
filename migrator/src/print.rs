//! Everything the commands print on stdout: the review before a run, the
//! `ready` and `status` tables (or their JSON), the `rollback` lines and the
//! final report. Progress during the run goes to stderr ([`crate::progress`]).

use crate::directory::User;
use crate::flip::RolledBack;
use crate::plan::{Filter, ReadyRow};
use crate::report::{human_bytes, StatusRow, UserReport};
use serde::Serialize;

/// What a `migrate` / `sync` run is about to do.
pub struct Review<'a> {
    /// `sync` rather than `migrate`.
    pub sync: bool,
    /// Only the contacts are written.
    pub forwarding_only: bool,
    /// What is copied.
    pub filter: &'a Filter,
    /// Users at once.
    pub parallel: usize,
    /// Nothing is written.
    pub dry_run: bool,
    /// Each user with its contact address.
    pub users: Vec<(&'a User, String)>,
}

/// The review, before anything happens: one summary line, then each user.
pub fn review(r: &Review<'_>) {
    let verb = if r.sync { "sync" } else { "migrate" };
    let mut line = format!("review: {verb} {} user(s)", r.users.len());
    if r.forwarding_only {
        line.push_str("; content: none (forwarding only)");
    } else {
        line.push_str(&format!(
            "; content: {}",
            r.filter.content.names().join(", ")
        ));
    }
    line.push_str("; dates: ");
    match (r.filter.since, r.filter.before) {
        (None, None) => line.push_str("all"),
        (since, before) => {
            let mut parts = Vec::new();
            if let Some(d) = since {
                parts.push(format!("since {d}"));
            }
            if let Some(d) = before {
                parts.push(format!("before {d}"));
            }
            line.push_str(&parts.join(" "));
        }
    }
    if r.parallel > 1 {
        line.push_str(&format!("; {} at once", r.parallel));
    }
    if r.dry_run {
        line.push_str("; dry run: nothing is written");
    }
    println!("{line}");
    for (user, target) in &r.users {
        println!(
            "  {} -> {target}{}",
            user.address,
            if user.enabled {
                ""
            } else {
                "  (disabled in the directory)"
            }
        );
    }
}

fn json<T: Serialize>(rows: &T) {
    println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
}

/// `ready`: a table, or the rows as JSON.
pub fn ready(rows: &[ReadyRow], as_json: bool) {
    if as_json {
        return json(&rows);
    }
    println!(
        "{:32} {:>9} {:>11} {:>11} fits",
        "address", "messages", "size", "free"
    );
    for r in rows {
        match &r.error {
            Some(e) => println!("{:32} error: {e}", r.address),
            None => println!(
                "{:32} {:>9} {:>11} {:>11} {}",
                r.address,
                r.messages,
                human_bytes(r.bytes),
                r.quota_free
                    .map(human_bytes)
                    .unwrap_or_else(|| "unknown".into()),
                match r.fits {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "?",
                }
            ),
        }
    }
}

/// `status`: a line per user, or the rows as JSON.
pub fn status(rows: &[StatusRow], as_json: bool) {
    if as_json {
        return json(&rows);
    }
    for r in rows {
        let t = &r.totals;
        println!(
            "{:32} {}; folders {}, copied {} ({}), skipped {}, failed {}, throttled {}",
            r.address,
            r.state,
            r.folders,
            t.copied,
            human_bytes(t.bytes),
            t.skipped,
            t.failed,
            t.throttled
        );
        for (content, n) in &r.content {
            println!("{:32} {content}: {n} on the target", "");
        }
    }
}

/// `rollback`: what happened to each user.
pub fn rollback(rows: &[RolledBack]) {
    for r in rows {
        if r.had_contact {
            println!("{}: contact removed; mail flows on-premises again (copied content stays on the target)", r.address);
        } else {
            println!("{}: had no contact; nothing to do", r.address);
        }
    }
}

/// The final report of a run.
pub fn final_report(reports: &[UserReport]) {
    println!("\nresult:");
    for r in reports {
        let c = &r.counters;
        println!(
            "  {:30} {:15} folders {}, copied {} ({}), skipped {}, failed {}, warnings {}, throttled {}",
            r.address,
            r.result,
            c.folders,
            c.copied,
            human_bytes(c.bytes),
            c.skipped,
            c.failed,
            r.warnings.len(),
            c.throttled
        );
        if let Some(e) = &r.error {
            println!("      error: {e}");
        }
        for w in &r.warnings {
            println!("      warning: {} UID {}: {}", w.folder, w.uid, w.reason);
        }
        for (content, c) in &r.content {
            let n = &c.counters;
            println!(
                "      {content}: collections {}, copied {}, updated {}, skipped {}, refused {}, conflicts {}, deleted on source {}, marked SCHEDULE-AGENT=CLIENT {}, {}",
                n.collections,
                n.copied,
                n.updated,
                n.skipped,
                n.refused,
                n.conflicts,
                n.deleted_on_source,
                n.schedule_agent_marked,
                human_bytes(n.bytes)
            );
            for w in &c.warnings {
                println!("      warning: {} {}: {}", content, w.resource, w.reason);
            }
        }
    }
}

/// `check`: one line per check (and its `fix:`), or `{"checks": [...]}`.
pub fn check(report: &crate::check::Report, as_json: bool) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into())
        );
    } else {
        print!("{report}");
    }
}
