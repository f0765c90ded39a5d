//! The metric set of DESIGN.md, declared in one place.
//!
//! Every family is registered at start and, where it has labels, pre-created
//! at zero for each configured listener and route, so dashboards and alerts
//! see a series before the first event. Counters are updated where the event
//! happens; nothing here is recomputed by scanning.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Why a recipient (or a whole transaction) is refused: the `reason` label of
/// `recipients_rejected_total` (DESIGN.md "Metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `relay_denied`
    RelayDenied,
    /// `size`
    Size,
    /// `recipients`
    Recipients,
    /// `loop`
    Loop,
    /// `syntax`
    Syntax,
    /// `sequence`
    Sequence,
    /// `tls_required`
    TlsRequired,
    /// `rate`
    Rate,
    /// `connections`
    Connections,
    /// `spool`
    Spool,
    /// `routing`: no routing snapshot loaded yet (directory source).
    Routing,
}

impl RejectReason {
    /// Every reason, for the zero-valued series at start.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::RelayDenied,
        RejectReason::Size,
        RejectReason::Recipients,
        RejectReason::Loop,
        RejectReason::Syntax,
        RejectReason::Sequence,
        RejectReason::TlsRequired,
        RejectReason::Rate,
        RejectReason::Connections,
        RejectReason::Spool,
        RejectReason::Routing,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::RelayDenied => "relay_denied",
            RejectReason::Size => "size",
            RejectReason::Recipients => "recipients",
            RejectReason::Loop => "loop",
            RejectReason::Syntax => "syntax",
            RejectReason::Sequence => "sequence",
            RejectReason::TlsRequired => "tls_required",
            RejectReason::Rate => "rate",
            RejectReason::Connections => "connections",
            RejectReason::Spool => "spool",
            RejectReason::Routing => "routing",
        }
    }
}

/// What became of one recipient in one attempt: the `result` label of
/// `deliveries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    /// `delivered`: the next hop accepted it.
    Delivered,
    /// `deferred`: this attempt failed; it will be retried.
    Deferred,
    /// `bounced`: failed for good (or expired); a DSN goes to the sender.
    Bounced,
}

impl DeliveryResult {
    /// Every result, for the zero-valued series at start.
    pub const ALL: [DeliveryResult; 3] = [
        DeliveryResult::Delivered,
        DeliveryResult::Deferred,
        DeliveryResult::Bounced,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Deferred => "deferred",
            DeliveryResult::Bounced => "bounced",
        }
    }
}

/// Which way a TLS handshake went: the `direction` label of `tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A client of ours.
    Inbound,
    /// A next hop.
    Outbound,
}

impl Direction {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Which outbound TLS policy governed a transaction: the `policy` label of
/// `tls_policy_total` (DESIGN.md "Metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicyLabel {
    /// `dane`: TLSA records of the MX host decided.
    Dane,
    /// `mta_sts`: the domain's MTA-STS policy (enforce or testing) decided.
    MtaSts,
    /// `verify`
    Verify,
    /// `required`
    Required,
    /// `opportunistic`
    Opportunistic,
    /// `none`
    None,
}

impl TlsPolicyLabel {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            TlsPolicyLabel::Dane => "dane",
            TlsPolicyLabel::MtaSts => "mta_sts",
            TlsPolicyLabel::Verify => "verify",
            TlsPolicyLabel::Required => "required",
            TlsPolicyLabel::Opportunistic => "opportunistic",
            TlsPolicyLabel::None => "none",
        }
    }
}

/// `ok` or `error`: the `result` label of reloads and handshakes.
fn outcome_label(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}

/// The registry and every metric family of the relay.
pub struct Metrics {
    /// Registry that `/metrics` renders.
    pub registry: Registry,
    /// `coexist_smtp_sessions_active`
    pub sessions_active: IntGauge,
    /// `coexist_smtp_connections_total{listener}`
    pub connections_total: IntCounterVec,
    /// `coexist_messages_received_total{listener}`
    pub messages_received_total: IntCounterVec,
    /// `coexist_bytes_received_total{listener}`
    pub bytes_received_total: IntCounterVec,
    /// `coexist_recipients_rejected_total{reason}`
    pub recipients_rejected_total: IntCounterVec,
    /// `coexist_deliveries_total{route,result}`
    pub deliveries_total: IntCounterVec,
    /// `coexist_delivery_duration_seconds{route}`
    pub delivery_duration_seconds: HistogramVec,
    /// `coexist_accept_duration_seconds{listener}`: from the end of a message's
    /// data to its `250` (content checks and the spool commit), what a client waits
    /// for. Not in DESIGN's list; added for #18 (the dashboard's accept latency).
    pub accept_duration_seconds: HistogramVec,
    /// `coexist_queue_messages`
    pub queue_messages: IntGauge,
    /// `coexist_queue_oldest_seconds`
    pub queue_oldest_seconds: IntGauge,
    /// `coexist_routing_contacts`
    pub routing_contacts: IntGauge,
    /// `coexist_routing_reloads_total{result}`
    pub routing_reloads_total: IntCounterVec,
    /// `coexist_routing_source_up`: 1 while the routing source answers
    /// (always 1 for a file).
    pub routing_source_up: IntGauge,
    /// `coexist_routing_source_last_sync_timestamp_seconds`: when the
    /// snapshot in force was completed (for a file: its last good load).
    pub routing_source_last_sync: IntGauge,
    /// `coexist_tls_handshakes_total{direction,result}`
    pub tls_handshakes_total: IntCounterVec,
    /// `coexist_tls_policy_total{route,policy,result}`
    pub tls_policy_total: IntCounterVec,
    /// `coexist_recipients_rerouted_total{from,to}`: queued recipients moved to
    /// another route when decided again before an attempt. Not in DESIGN's list;
    /// added for #16.
    pub recipients_rerouted_total: IntCounterVec,
    /// `coexist_tls_certificate_expiry_timestamp_seconds` (0 when no certificate is
    /// loaded): for the certificate-expiry alert. Not in DESIGN's list; added for #4.
    pub tls_certificate_expiry: IntGauge,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("coexist")
}

impl Metrics {
    // Long on purpose: one declaration per family of DESIGN.md, in one place,
    // so the list reads like the contract.
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(opts(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(opts(name, help)).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let m = Metrics {
            sessions_active: gauge("smtp_sessions_active", "SMTP sessions currently open."),
            connections_total: counter(
                "smtp_connections_total",
                "SMTP connections accepted, per listener.",
                &["listener"],
            ),
            messages_received_total: counter(
                "messages_received_total",
                "Messages acknowledged with 250 after DATA/BDAT, per listener.",
                &["listener"],
            ),
            bytes_received_total: counter(
                "bytes_received_total",
                "Message bytes acknowledged, per listener.",
                &["listener"],
            ),
            recipients_rejected_total: counter(
                "recipients_rejected_total",
                "Recipients or transactions refused, by reason.",
                &["reason"],
            ),
            deliveries_total: counter(
                "deliveries_total",
                "Delivery outcomes per recipient: delivered, deferred (each failed attempt), bounced.",
                &["route", "result"],
            ),
            delivery_duration_seconds: {
                // 1 ms to 10 min: a loopback hand-off to a slow remote data phase.
                let buckets = vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 120.0, 300.0, 600.0,
                ];
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "delivery_duration_seconds",
                        "Duration of one outbound transaction, per route.",
                    )
                    .namespace("coexist")
                    .buckets(buckets),
                    &["route"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            accept_duration_seconds: {
                // 50 µs to 10 s: a group commit on a fast disk to a stalled one.
                let buckets = vec![
                    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ];
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "accept_duration_seconds",
                        "From the end of a message's data to its 250 reply (checks and spool commit), per listener.",
                    )
                    .namespace("coexist")
                    .buckets(buckets),
                    &["listener"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            queue_messages: gauge("queue_messages", "Messages in the spool."),
            queue_oldest_seconds: gauge(
                "queue_oldest_seconds",
                "Age of the oldest message in the spool (0 when empty).",
            ),
            routing_contacts: gauge("routing_contacts", "Contacts in the loaded table."),
            routing_source_up: gauge(
                "routing_source_up",
                "1 while the routing source answers (always 1 for a file).",
            ),
            routing_source_last_sync: gauge(
                "routing_source_last_sync_timestamp_seconds",
                "When the routing snapshot in force was completed, Unix seconds.",
            ),
            routing_reloads_total: counter(
                "routing_reloads_total",
                "Contacts table loads, by result.",
                &["result"],
            ),
            tls_handshakes_total: counter(
                "tls_handshakes_total",
                "TLS handshakes, by direction and result.",
                &["direction", "result"],
            ),
            tls_policy_total: counter(
                "tls_policy_total",
                "Outbound transactions by the TLS policy that governed them and whether it was met (ok) or refused the next hop (failed).",
                &["route", "policy", "result"],
            ),
            recipients_rerouted_total: counter(
                "recipients_rerouted_total",
                "Queued recipients moved to another route before an attempt (a user migrated or rolled back while the mail waited).",
                &["from", "to"],
            ),
            tls_certificate_expiry: gauge(
                "tls_certificate_expiry_timestamp_seconds",
                "notAfter of the inbound TLS certificate, Unix seconds.",
            ),
            registry,
        };
        for reason in RejectReason::ALL {
            m.recipients_rejected_total
                .with_label_values(&[reason.label()]);
        }
        for result in ["ok", "error"] {
            m.routing_reloads_total.with_label_values(&[result]);
            for direction in ["inbound", "outbound"] {
                m.tls_handshakes_total
                    .with_label_values(&[direction, result]);
            }
        }
        m
    }

    /// Creates the zero-valued series for every configured listener and route.
    pub fn register_names<'a>(
        &self,
        listeners: impl IntoIterator<Item = &'a str>,
        routes: impl IntoIterator<Item = &'a str>,
    ) {
        for listener in listeners {
            self.connections_total.with_label_values(&[listener]);
            self.messages_received_total.with_label_values(&[listener]);
            self.bytes_received_total.with_label_values(&[listener]);
            self.accept_duration_seconds.with_label_values(&[listener]);
        }
        let routes: Vec<&str> = routes.into_iter().collect();
        for route in &routes {
            for result in DeliveryResult::ALL {
                self.deliveries_total
                    .with_label_values(&[route, result.label()]);
            }
            self.delivery_duration_seconds.with_label_values(&[route]);
            for to in routes.iter().filter(|to| *to != route) {
                self.recipients_rerouted_total
                    .with_label_values(&[route, to]);
            }
        }
    }

    /// Counts one refusal.
    pub fn reject(&self, reason: RejectReason) {
        self.recipients_rejected_total
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// Counts one recipient's outcome on `route`.
    pub fn delivery(&self, route: &str, result: DeliveryResult) {
        self.deliveries_total
            .with_label_values(&[route, result.label()])
            .inc();
    }

    /// Counts one queued recipient moved from route `from` to `to`.
    pub fn reroute(&self, from: &str, to: &str) {
        self.recipients_rerouted_total
            .with_label_values(&[from, to])
            .inc();
    }

    /// Creates the zero-valued `tls_policy_total` series of `route` for each of `policies`.
    pub fn register_tls_policies(&self, route: &str, policies: &[TlsPolicyLabel]) {
        for policy in policies {
            for result in ["ok", "failed"] {
                self.tls_policy_total
                    .with_label_values(&[route, policy.label(), result]);
            }
        }
    }

    /// Counts one transaction's TLS policy outcome on `route`.
    pub fn tls_policy(&self, route: &str, policy: TlsPolicyLabel, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls_policy_total
            .with_label_values(&[route, policy.label(), result])
            .inc();
    }

    /// Counts one TLS handshake.
    pub fn tls_handshake(&self, direction: Direction, ok: bool) {
        self.tls_handshakes_total
            .with_label_values(&[direction.label(), outcome_label(ok)])
            .inc();
    }

    /// Counts one routing-table load.
    pub fn routing_reload(&self, ok: bool) {
        self.routing_reloads_total
            .with_label_values(&[outcome_label(ok)])
            .inc();
    }

    /// Renders the registry in the Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        render_with_process(&self.registry)
    }
}

/// A registry and the process_* metrics (kept in the default registry) in the
/// Prometheus text format; the migrator serves its own registry the same way.
pub fn render_with_process(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::with_capacity(8192);
    let mut families = registry.gather();
    families.extend(prometheus::gather());
    TextEncoder::new()
        .encode(&families, &mut out)
        .expect("text encoding cannot fail");
    out
}

/// The process-wide metric set.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
