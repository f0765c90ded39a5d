//! The migrator's metric set (DESIGN.md: `coexist_migrator_*`), declared in one
//! place and served on `[metrics] bind` while `migrate` or `sync` runs, through
//! the relay's HTTP endpoint (`relay::http::serve_metrics`).
//!
//! Every family exists from the start, zero-valued, with every label value
//! below. Counters are updated where the event happens (the copy, the
//! reconnect loop); the users gauge follows each user of the run through its
//! states.

use crate::imap::ImapError;
use prometheus::Registry;
use prometheus::{Counter, IntCounter, IntCounterVec, IntGaugeVec, Opts};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use tokio_util::sync::CancellationToken;

/// Where a user of this run is: the `state` label of `coexist_migrator_users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    /// Waiting for its turn, connecting, measuring, or a dry run.
    NotStarted,
    /// The contact is written; no content copied yet (or `--forwarding-only`).
    ForwardingSet,
    /// Copy or delta pass under way.
    Copying,
    /// Done.
    Migrated,
    /// Failed (quota, login, TLS, a folder that kept failing, ...).
    Failed,
}

impl UserState {
    /// Every state, in label order.
    pub const ALL: [UserState; 5] = [
        UserState::NotStarted,
        UserState::ForwardingSet,
        UserState::Copying,
        UserState::Migrated,
        UserState::Failed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            UserState::NotStarted => "not_started",
            UserState::ForwardingSet => "forwarding_set",
            UserState::Copying => "copying",
            UserState::Migrated => "migrated",
            UserState::Failed => "failed",
        }
    }
}

/// What went wrong: the `kind` label of `coexist_migrator_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The target refused a message for good (too large, bad syntax): a warning
    /// in the report; the run goes on.
    Refused,
    /// The server asked to slow down: a `NO` with `[THROTTLED]`, `[UNAVAILABLE]`,
    /// `[LIMIT]`, `[INUSE]` or `[SERVERBUG]`, or a `BYE`. Backed off from and
    /// retried; not a failure.
    Throttled,
    /// The connection broke or timed out; the folder resumed on a new one.
    Transient,
    /// A user failed (quota gate, login, TLS, retries exhausted).
    UserFailed,
}

impl ErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Refused,
        ErrorKind::Throttled,
        ErrorKind::Transient,
        ErrorKind::UserFailed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::UserFailed => "user_failed",
        }
    }

    /// How a temporary IMAP error is counted (one exhaustive match).
    pub fn of(error: &ImapError) -> ErrorKind {
        match error {
            ImapError::Bye(_)
            | ImapError::Refused {
                temporary: true, ..
            } => ErrorKind::Throttled,
            ImapError::Io(_) | ImapError::Timeout(_) => ErrorKind::Transient,
            ImapError::Refused { .. }
            | ImapError::Tls(_)
            | ImapError::Insecure(_)
            | ImapError::Login { .. }
            | ImapError::Protocol(_)
            | ImapError::Secret(_)
            | ImapError::OAuth(_) => ErrorKind::UserFailed,
        }
    }
}

/// What a copied item is: the `content` label of the copied counters (DESIGN.md:
/// per content type). Calendar folders copied over IMAP count as `calendar`;
/// `contacts` exists, zero-valued, for the CardDAV copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// A message of a mail folder.
    Mail,
    /// A calendar item.
    Calendar,
    /// An address-book entry.
    Contacts,
}

impl ContentType {
    /// Every type, in label order.
    pub const ALL: [ContentType; 3] = [
        ContentType::Mail,
        ContentType::Calendar,
        ContentType::Contacts,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ContentType::Mail => "mail",
            ContentType::Calendar => "calendar",
            ContentType::Contacts => "contacts",
        }
    }
}

/// The registry and every family of the migrator.
pub struct Metrics {
    /// Registry that `/metrics` renders (with the process metrics).
    pub registry: Registry,
    /// `coexist_migrator_users{state}`
    pub users: IntGaugeVec,
    /// `coexist_migrator_messages_copied_total{content}`
    pub messages_copied: IntCounterVec,
    /// `coexist_migrator_bytes_copied_total{content}`
    pub bytes_copied: IntCounterVec,
    /// `coexist_migrator_messages_skipped_total`
    pub messages_skipped: IntCounter,
    /// `coexist_migrator_errors_total{kind}`
    pub errors: IntCounterVec,
    /// `coexist_migrator_backoff_seconds_total`
    pub backoff_seconds: Counter,
    /// `coexist_migrator_items_total{content,result}`: calendar objects and
    /// vCards, by content (calendar, contacts) and result (copied, updated,
    /// skipped, refused).
    pub items: IntCounterVec,
    /// `coexist_migrator_item_bytes_total{content}`
    pub item_bytes: IntCounterVec,
    /// `coexist_migrator_schedule_agent_marked_total`
    pub schedule_agent_marked: IntCounter,
}

/// The `content` label values of the DAV families.
pub const DAV_CONTENT: [&str; 2] = ["calendar", "contacts"];

/// The `result` label values of `coexist_migrator_items_total`.
pub const ITEM_RESULTS: [&str; 4] = ["copied", "updated", "skipped", "refused"];

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .namespace("coexist")
        .subsystem("migrator")
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let register = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("unique metric");
        };
        let users = IntGaugeVec::new(
            opts(
                "users",
                "Users of this run, by state: not_started, forwarding_set, copying, migrated, failed.",
            ),
            &["state"],
        )
        .expect("valid metric");
        let counter =
            |name: &str, help: &str| IntCounter::with_opts(opts(name, help)).expect("valid metric");
        let per_content = |name: &str, help: &str| {
            IntCounterVec::new(opts(name, help), &["content"]).expect("valid metric")
        };
        let messages_copied = per_content(
            "messages_copied_total",
            "Items appended to the target and confirmed, by content type: mail, calendar, contacts.",
        );
        let bytes_copied = per_content(
            "bytes_copied_total",
            "Bytes of the items appended to the target, by content type.",
        );
        let messages_skipped = counter(
            "messages_skipped_total",
            "Messages found already on the target (checkpoint or Message-ID match).",
        );
        let errors = IntCounterVec::new(
            opts(
                "errors_total",
                "Problems, by kind: refused (a message, a warning), throttled (backed off, retried), transient (reconnected), user_failed.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let backoff_seconds = Counter::with_opts(opts(
            "backoff_seconds_total",
            "Time spent waiting before a retry after throttling or a lost connection.",
        ))
        .expect("valid metric");
        let items = IntCounterVec::new(
            opts(
                "items_total",
                "Calendar objects and vCards over CalDAV/CardDAV, by content (calendar, contacts) and result (copied, updated, skipped, refused).",
            ),
            &["content", "result"],
        )
        .expect("valid metric");
        let item_bytes = IntCounterVec::new(
            opts(
                "item_bytes_total",
                "Bytes of calendar objects and vCards written to the target, by content.",
            ),
            &["content"],
        )
        .expect("valid metric");
        let schedule_agent_marked = counter(
            "schedule_agent_marked_total",
            "Events sent with SCHEDULE-AGENT=CLIENT to a target that schedules (RFC 6638): no invitation or reply is sent.",
        );
        register(Box::new(items.clone()));
        register(Box::new(item_bytes.clone()));
        register(Box::new(schedule_agent_marked.clone()));
        for content in DAV_CONTENT {
            item_bytes.with_label_values(&[content]);
            for result in ITEM_RESULTS {
                items.with_label_values(&[content, result]);
            }
        }
        register(Box::new(users.clone()));
        register(Box::new(messages_copied.clone()));
        register(Box::new(bytes_copied.clone()));
        register(Box::new(messages_skipped.clone()));
        register(Box::new(errors.clone()));
        register(Box::new(backoff_seconds.clone()));
        for state in UserState::ALL {
            users.with_label_values(&[state.label()]);
        }
        for kind in ErrorKind::ALL {
            errors.with_label_values(&[kind.label()]);
        }
        for content in ContentType::ALL {
            messages_copied.with_label_values(&[content.label()]);
            bytes_copied.with_label_values(&[content.label()]);
        }
        Metrics {
            registry,
            users,
            messages_copied,
            bytes_copied,
            messages_skipped,
            errors,
            backoff_seconds,
            items,
            item_bytes,
            schedule_agent_marked,
        }
    }

    /// Counts one calendar object or vCard (`result` one of [`ITEM_RESULTS`]).
    pub fn item(&self, content: &str, result: &str, bytes: u64) {
        self.items.with_label_values(&[content, result]).inc();
        if bytes > 0 {
            self.item_bytes.with_label_values(&[content]).inc_by(bytes);
        }
    }

    /// `n` more users enter the run, not started.
    pub fn users_queued(&self, n: usize) {
        self.users
            .with_label_values(&[UserState::NotStarted.label()])
            .add(n as i64);
    }

    /// One user moves from `from` to `to`.
    pub fn user_moves(&self, from: UserState, to: UserState) {
        if from != to {
            self.users.with_label_values(&[from.label()]).dec();
            self.users.with_label_values(&[to.label()]).inc();
        }
    }

    /// Counts one item of `size` bytes copied.
    pub fn copied(&self, content: ContentType, size: u64) {
        let label = [content.label()];
        self.messages_copied.with_label_values(&label).inc();
        self.bytes_copied.with_label_values(&label).inc_by(size);
    }

    /// Counts one problem.
    pub fn error(&self, kind: ErrorKind) {
        self.errors.with_label_values(&[kind.label()]).inc();
    }

    /// Renders the registry, and the process metrics, in the text format.
    pub fn render(&self) -> Vec<u8> {
        relay::metrics::render_with_process(&self.registry)
    }
}

/// The process-wide metric set.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The `/metrics` endpoint of one run; stops serving when dropped.
pub struct Endpoint {
    /// The bound address (the real port when the config says port 0).
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Endpoint {
    /// Binds `addr` and serves `/metrics` and `/healthz` until dropped.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Endpoint> {
        let listener = relay::http::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let render: relay::http::Render = Arc::new(|| metrics().render());
        tokio::spawn(relay::http::serve_metrics(listener, render, stop.clone()));
        Ok(Endpoint { addr, stop })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_there_from_the_start() {
        let page = String::from_utf8(Metrics::new().render()).unwrap();
        for series in [
            "coexist_migrator_users{state=\"not_started\"} 0",
            "coexist_migrator_users{state=\"failed\"} 0",
            "coexist_migrator_messages_copied_total{content=\"mail\"} 0",
            "coexist_migrator_messages_copied_total{content=\"calendar\"} 0",
            "coexist_migrator_messages_copied_total{content=\"contacts\"} 0",
            "coexist_migrator_bytes_copied_total{content=\"mail\"} 0",
            "coexist_migrator_bytes_copied_total{content=\"contacts\"} 0",
            "coexist_migrator_messages_skipped_total 0",
            "coexist_migrator_errors_total{kind=\"refused\"} 0",
            "coexist_migrator_errors_total{kind=\"throttled\"} 0",
            "coexist_migrator_errors_total{kind=\"transient\"} 0",
            "coexist_migrator_errors_total{kind=\"user_failed\"} 0",
            "coexist_migrator_backoff_seconds_total 0",
            "coexist_migrator_items_total{content=\"calendar\",result=\"copied\"} 0",
            "coexist_migrator_items_total{content=\"contacts\",result=\"refused\"} 0",
            "coexist_migrator_item_bytes_total{content=\"contacts\"} 0",
            "coexist_migrator_schedule_agent_marked_total 0",
        ] {
            assert!(page.contains(series), "{series} missing from\n{page}");
        }
    }

    #[test]
    fn users_move_between_states() {
        let m = Metrics::new();
        m.users_queued(2);
        m.user_moves(UserState::NotStarted, UserState::Copying);
        m.user_moves(UserState::Copying, UserState::Migrated);
        let get = |s: UserState| m.users.with_label_values(&[s.label()]).get();
        assert_eq!(get(UserState::NotStarted), 1);
        assert_eq!(get(UserState::Copying), 0);
        assert_eq!(get(UserState::Migrated), 1);
    }

    #[test]
    fn bye_is_throttling_and_a_lost_connection_transient() {
        assert_eq!(
            ErrorKind::of(&ImapError::Bye("slow down".into())),
            ErrorKind::Throttled
        );
        assert_eq!(
            ErrorKind::of(&ImapError::Io("reset".into())),
            ErrorKind::Transient
        );
    }
}
