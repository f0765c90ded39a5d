//! Which queued messages a `coexist-relay queue` command is about (Postfix's
//! qselect), and the queue's shape by route and age (Postfix's qshape).

use crate::address::same_address;
use crate::envelope::{Envelope, RecipientStatus};
use serde::Serialize;
use std::time::Duration;

/// A message's place in the queue, for `--status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Held by the postmaster: not attempted until released.
    Held,
    /// Tried at least once, waiting for its next attempt.
    Deferred,
    /// Not tried yet.
    New,
}

impl Status {
    /// Parses `held`, `deferred` or `new`.
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "held" | "hold" => Some(Status::Held),
            "deferred" => Some(Status::Deferred),
            "new" => Some(Status::New),
            _ => None,
        }
    }

    /// The status of `envelope`.
    pub fn of(envelope: &Envelope) -> Status {
        if envelope.held {
            Status::Held
        } else if pending(envelope).any(|r| r.attempts > 0) {
            Status::Deferred
        } else {
            Status::New
        }
    }
}

/// `--route`, `--to`, `--from`, `--older-than`, `--status`; all given must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A pending recipient goes by this route.
    pub route: Option<String>,
    /// A recipient is this address (as received or rewritten), or in this
    /// domain when written `@domain`.
    pub to: Option<String>,
    /// The sender is this address or in this `@domain`; `<>` or `""` for the
    /// null sender.
    pub from: Option<String>,
    /// Received at least this long ago.
    pub older_than: Option<Duration>,
    /// In this state.
    pub status: Option<Status>,
}

impl Filter {
    /// True when no criterion is given (the filter selects everything).
    pub fn is_empty(&self) -> bool {
        self.route.is_none()
            && self.to.is_none()
            && self.from.is_none()
            && self.older_than.is_none()
            && self.status.is_none()
    }

    /// Whether `envelope` is selected, at Unix time `now`.
    pub fn matches(&self, envelope: &Envelope, now: i64) -> bool {
        let route_ok = self
            .route
            .as_ref()
            .is_none_or(|route| pending(envelope).any(|r| &r.route == route));
        let to_ok = self.to.as_ref().is_none_or(|to| {
            envelope
                .recipients
                .iter()
                .any(|r| address_matches(to, &r.address) || address_matches(to, &r.rewritten))
        });
        let from_ok = self.from.as_ref().is_none_or(|from| match from.as_str() {
            "<>" | "" => envelope.sender.is_empty(),
            from => address_matches(from, &envelope.sender),
        });
        let age_ok = self
            .older_than
            .is_none_or(|d| now - envelope.received_at >= d.as_secs() as i64);
        let status_ok = self.status.is_none_or(|s| Status::of(envelope) == s);
        route_ok && to_ok && from_ok && age_ok && status_ok
    }
}

/// `pattern` is the address (case-insensitively), or `@domain` is its domain.
fn address_matches(pattern: &str, address: &str) -> bool {
    match pattern.strip_prefix('@') {
        Some(domain) => address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
        None => same_address(pattern, address),
    }
}

fn pending(envelope: &Envelope) -> impl Iterator<Item = &crate::envelope::Recipient> {
    envelope
        .recipients
        .iter()
        .filter(|r| r.status == RecipientStatus::Pending)
}

/// The age buckets of the shape, in minutes (qshape's default: each twice the last).
pub const BUCKETS_MINUTES: [i64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// One route's row of the shape: pending recipients by the age of their message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteShape {
    /// The route.
    pub route: String,
    /// All its pending recipients.
    pub total: usize,
    /// Counts per age bucket: under 5 min, under 10, … under 1280, then older.
    pub by_age: Vec<usize>,
}

/// Pending recipients per route and message age, busiest route first.
pub fn shape(envelopes: &[Envelope], now: i64) -> Vec<RouteShape> {
    let mut rows: Vec<RouteShape> = Vec::new();
    for envelope in envelopes {
        let minutes = (now - envelope.received_at).max(0) / 60;
        let bucket = BUCKETS_MINUTES
            .iter()
            .position(|&limit| minutes < limit)
            .unwrap_or(BUCKETS_MINUTES.len());
        for r in pending(envelope) {
            let row = match rows.iter().position(|row| row.route == r.route) {
                Some(i) => &mut rows[i],
                None => {
                    rows.push(RouteShape {
                        route: r.route.clone(),
                        total: 0,
                        by_age: vec![0; BUCKETS_MINUTES.len() + 1],
                    });
                    rows.last_mut().expect("just pushed")
                }
            };
            row.total += 1;
            row.by_age[bucket] += 1;
        }
    }
    rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.route.cmp(&b.route)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Recipient;
    use crate::queue::file_format::tests::sample_envelope;

    fn message(sender: &str, to: &[(&str, &str)], age_min: i64, now: i64) -> Envelope {
        let mut e = sample_envelope("0123456789ABCDEF");
        e.sender = sender.into();
        e.received_at = now - age_min * 60;
        let template = e.recipients[0].clone();
        e.recipients = to
            .iter()
            .map(|(address, route)| Recipient {
                address: address.to_string(),
                rewritten: address.to_string(),
                route: route.to_string(),
                ..template.clone()
            })
            .collect();
        e
    }

    #[test]
    fn filters_select_by_route_address_domain_sender_age_and_status() {
        let now = 1_000_000;
        let a = message(
            "alice@sender.example",
            &[("bob@corp.example", "onprem")],
            30,
            now,
        );
        let mut b = message("", &[("eve@partner.example", "internet")], 2, now);
        b.recipients[0].attempts = 1;
        let mut held = message(
            "carol@corp.example",
            &[("bob@corp.example", "cloud")],
            90,
            now,
        );
        held.held = true;
        let pick = |f: Filter| -> Vec<usize> {
            [&a, &b, &held]
                .iter()
                .enumerate()
                .filter(|(_, e)| f.matches(e, now))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(pick(Filter::default()), [0, 1, 2]);
        let route = |r: &str| Filter {
            route: Some(r.into()),
            ..Filter::default()
        };
        assert_eq!(pick(route("onprem")), [0]);
        let to = |t: &str| Filter {
            to: Some(t.into()),
            ..Filter::default()
        };
        assert_eq!(pick(to("BOB@corp.example")), [0, 2]);
        assert_eq!(pick(to("@partner.example")), [1]);
        let from = |f: &str| Filter {
            from: Some(f.into()),
            ..Filter::default()
        };
        assert_eq!(pick(from("<>")), [1]);
        assert_eq!(pick(from("@corp.example")), [2]);
        let older = Filter {
            older_than: Some(Duration::from_secs(20 * 60)),
            ..Filter::default()
        };
        assert_eq!(pick(older), [0, 2]);
        let status = |s| Filter {
            status: Some(s),
            ..Filter::default()
        };
        assert_eq!(pick(status(Status::Held)), [2]);
        assert_eq!(pick(status(Status::Deferred)), [1]);
        assert_eq!(pick(status(Status::New)), [0]);
        let both = Filter {
            to: Some("bob@corp.example".into()),
            status: Some(Status::New),
            ..Filter::default()
        };
        assert_eq!(pick(both), [0], "every criterion must match");
    }

    #[test]
    fn the_shape_counts_pending_recipients_by_route_and_age() {
        let now = 1_000_000;
        let messages = [
            message(
                "a@x",
                &[("b@corp.example", "onprem"), ("c@corp.example", "onprem")],
                1,
                now,
            ),
            message("a@x", &[("d@corp.example", "onprem")], 50, now),
            message("a@x", &[("e@corp.example", "cloud")], 5000, now),
        ];
        let rows = shape(&messages, now);
        assert_eq!(rows[0].route, "onprem");
        assert_eq!(rows[0].total, 3);
        assert_eq!(rows[0].by_age[0], 2, "under 5 minutes");
        assert_eq!(rows[0].by_age[4], 1, "40 to 80 minutes");
        assert_eq!(rows[1].route, "cloud");
        assert_eq!(rows[1].by_age[BUCKETS_MINUTES.len()], 1, "older than 1280");
    }
}
