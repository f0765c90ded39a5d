//! Outbound delivery: one message and a group of its recipients to a next hop.
//!
//! - [`mx`]: next hops from a smarthost list or an MX lookup.
//! - [`client`]: one SMTP session (pipelining, a result per RCPT).
//! - `body`: the message itself, BDAT chunks or dot-stuffed DATA, read from the spool in chunks.
//! - `connect`: opening it: connect, greeting, EHLO, STARTTLS by the TLS policy.
//! - [`transaction`]: one message and the recipients it carries to one next hop.
//! - `esmtp`: MAIL and RCPT with the ESMTP parameters the next hop offers.
//! - [`pool`]: idle sessions for reuse, per-next-hop concurrency.
//! - [`tls`]: client TLS configurations per route (trust anchors, client certificate).
//! - [`tls_policy`]: which TLS policy governs a transaction (the route's, MTA-STS).
//! - [`dane`]: RFC 7672: TLSA records over a validating resolver, the certificate check.
//! - [`mta_sts`]: RFC 8461 policies: lookup, HTTPS fetch, cache in the spool folder.
//! - [`status`]: every error and the one table that says temporary or permanent.
//! - [`dsn`]: RFC 3464 delivery status notifications.
//!
//! [`Deliverer::deliver`] never fails as a whole: every recipient it is given
//! comes back with an [`Outcome`], and the caller (the queue manager) records it.

mod body;
pub mod client;
mod connect;
pub mod dane;
pub mod dsn;
mod esmtp;
pub mod mta_sts;
pub mod mx;
pub mod pool;
pub mod status;
pub mod tls;
pub mod tls_policy;
pub mod transaction;

#[cfg(test)]
mod tests;

use crate::config::OutboundTls;
use crate::config::{Config, RouteConfig};
use crate::envelope::Envelope;
use crate::envelope::Failure;
use crate::message::Message;
use crate::metrics::{metrics, DeliveryResult, TlsPolicyLabel};
use client::{Session, SessionParams, Transaction, TxnRecipient};
use dane::Dane;
use mta_sts::MtaSts;
use mx::{NextHop, Resolver};
use pool::{Pool, PoolKey};
use status::DeliverError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls::RouteTls;
use tls_policy::Applied;

pub use status::DeliverError as Error;

/// How long an idle session is kept for the next message.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The next hop accepted it.
    Delivered {
        /// The next hop's final reply, e.g. `250 2.0.0 Ok: queued as X`.
        reply: String,
    },
    /// Try again later.
    Temporary(Failure),
    /// Give up: bounce.
    Permanent(Failure),
}

/// Delivers messages; holds the resolver, the session pool and TLS configurations.
pub struct Deliverer {
    hostname: String,
    routes: BTreeMap<String, RouteConfig>,
    resolver: Resolver,
    tls: BTreeMap<String, RouteTls>,
    mta_sts: MtaSts,
    dane: Option<Dane>,
    pool: Arc<Pool>,
}

impl Deliverer {
    /// Builds the resolver and the TLS configurations of every route.
    pub fn new(config: &Config) -> Result<Deliverer, DeliverError> {
        let mut tls = BTreeMap::new();
        for (name, route) in &config.routes {
            tls.insert(name.clone(), RouteTls::new(route)?);
        }
        Ok(Deliverer {
            hostname: config.server.hostname.clone(),
            routes: config.routes.clone(),
            resolver: Resolver::new(&config.dns)?,
            tls,
            mta_sts: MtaSts::new(&config.server.spool_dir),
            dane: if config.dns.dnssec && config.routes.values().any(|r| r.tls == OutboundTls::Dane)
            {
                Some(Dane::new(&config.dns)?)
            } else {
                None
            },
            pool: Pool::new(config.queue.per_host_concurrency, IDLE_TIMEOUT),
        })
    }

    /// TCP connections opened so far (connection reuse shows as fewer
    /// connections than transactions).
    pub fn connections_opened(&self) -> usize {
        self.pool.opened()
    }

    /// Closes idle sessions (QUIT); for shutdown.
    pub fn close_idle(&self) {
        self.pool.close_idle();
    }

    /// Delivers the recipients `indices` of `envelope` and returns one outcome
    /// per index, in the order given. Recipients are grouped by route and, for
    /// MX routes, by domain; each group is one transaction.
    pub async fn deliver(
        &self,
        envelope: &Envelope,
        indices: &[usize],
        message: Message,
    ) -> Vec<(usize, Outcome)> {
        let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(indices.len());
        for &i in indices {
            let Some(r) = envelope.recipients.get(i) else {
                continue;
            };
            let mx = self.routes.get(&r.route).map(|c| c.mx).unwrap_or(false);
            let domain = if mx {
                domain_of(&r.rewritten)
            } else {
                String::new()
            };
            groups.entry((r.route.clone(), domain)).or_default().push(i);
        }
        for ((route, domain), group) in groups {
            outcomes.extend(
                self.deliver_group(envelope, &route, &domain, &group, &message)
                    .await,
            );
        }
        // Back in the caller's order.
        let position = |i: usize| indices.iter().position(|&x| x == i).unwrap_or(usize::MAX);
        outcomes.sort_by_key(|(i, _)| position(*i));
        outcomes
    }

    async fn deliver_group(
        &self,
        envelope: &Envelope,
        route_name: &str,
        domain: &str,
        group: &[usize],
        message: &Message,
    ) -> Vec<(usize, Outcome)> {
        let started = Instant::now();
        let plan = match self.plan(route_name, domain).await {
            Ok(plan) => plan,
            Err((label, e)) => return self.fail_all(envelope, route_name, group, None, &label, &e),
        };
        let mut last: Option<(NextHop, DeliverError, HopTls)> = None;
        for hop in &plan.hops {
            let hop_tls = match plan.dane {
                Some(d) => {
                    match self
                        .dane_params(d, plan.route_tls, &plan.params, &plan.applied, hop)
                        .await
                    {
                        Ok(t) => t,
                        Err((t, e)) => {
                            tracing::debug!(queue_id = %envelope.id, next_hop = %hop, error = %e, "next hop skipped");
                            last = Some((hop.clone(), e, t));
                            continue;
                        }
                    }
                }
                None => HopTls {
                    params: plan.params.clone(),
                    label: plan.applied.label(),
                    metric: plan.applied.metric(),
                },
            };
            let params = &hop_tls.params;
            let key = PoolKey::new(route_name, hop.addr, &hop.host, params.policy, &params.helo);
            let _permit = self.pool.permit(hop.addr).await;
            let session = match self.session(&key, hop, params).await {
                Ok(s) => s,
                Err(e) => {
                    let e = if params.policy == OutboundTls::Dane {
                        dane_error(hop, e)
                    } else {
                        plan.applied.explain(e)
                    };
                    tracing::debug!(queue_id = %envelope.id, next_hop = %hop, error = %e, "next hop skipped");
                    last = Some((hop.clone(), e, hop_tls));
                    continue;
                }
            };
            // Under `testing` the policy is met only when enforce would have
            // delivered here too: a listed MX with a valid certificate.
            let met = match &session.audit {
                Some(Err(why)) => {
                    tracing::warn!(queue_id = %envelope.id, next_hop = %hop, "{} policy would refuse this next hop: {why}", hop_tls.label);
                    false
                }
                _ => plan.applied.allows(&hop.host),
            };
            metrics().tls_policy(route_name, hop_tls.metric, met);
            let via = Via {
                route: route_name,
                label: &hop_tls.label,
            };
            let outcomes = self
                .transaction(envelope, via, group, message, session, key)
                .await;
            metrics()
                .delivery_duration_seconds
                .with_label_values(&[route_name])
                .observe(started.elapsed().as_secs_f64());
            return outcomes;
        }
        let (hop, e, hop_tls) = last.expect("at least one next hop was tried");
        if e.is_tls() {
            metrics().tls_policy(route_name, hop_tls.metric, false);
        }
        self.fail_all(envelope, route_name, group, Some(&hop), &hop_tls.label, &e)
    }

    /// Next hops and TLS for a group: resolved, filtered by the TLS policy
    /// (MTA-STS `enforce`), with the session parameters. On failure, the
    /// policy label for the log and the error.
    async fn plan(
        &self,
        route_name: &str,
        domain: &str,
    ) -> Result<Plan<'_>, (String, DeliverError)> {
        let Some(route) = self.routes.get(route_name) else {
            let e = DeliverError::UnknownRoute(route_name.to_string());
            return Err(("none".into(), e));
        };
        let hops = if route.mx {
            self.resolver.mx(domain, route.port).await
        } else {
            self.resolver.smarthosts(&route.smarthost).await
        };
        let hops = match hops {
            Ok(h) if h.is_empty() => Err(DeliverError::NoAddress(route_name.to_string())),
            other => other,
        }
        .map_err(|e| (route.tls.as_str().to_string(), e))?;
        let applied = self.tls_policy(route_name, route, domain).await;
        let hops = applied.select(hops).map_err(|e| {
            metrics().tls_policy(route_name, applied.metric(), false);
            (applied.label(), e)
        })?;
        let route_tls = self.tls.get(route_name);
        let params = SessionParams {
            helo: route
                .helo_name
                .clone()
                .unwrap_or_else(|| self.hostname.clone()),
            policy: applied.wire(),
            tls_config: match route_tls {
                Some(t) => t.config(applied.wire()),
                None => tls::any_certificate(),
            },
            audit: match route_tls {
                Some(t) if applied.testing() => Some(t.audit_verifier()),
                _ => None,
            },
            connect_timeout: route.connect_timeout,
            command_timeout: route.command_timeout,
            data_timeout: route.data_timeout,
        };
        // RFC 7672 §2.2.1: TLSA records count only under a secure MX RRset.
        let dane = match (&self.dane, route.tls) {
            (Some(d), OutboundTls::Dane) if !route.mx => Some(d),
            (Some(d), OutboundTls::Dane) => match d.mx_proof(domain).await {
                dane::MxProof::Secure => Some(d),
                dane::MxProof::NotSecure => None,
                dane::MxProof::Failed(e) => {
                    metrics().tls_policy(route_name, TlsPolicyLabel::Dane, false);
                    return Err(("dane".into(), e));
                }
            },
            _ => None,
        };
        Ok(Plan {
            hops,
            applied,
            params,
            dane,
            route_tls,
        })
    }

    /// The session parameters for `hop` under DANE: its secure TLSA records
    /// decide the certificate; without them, what `applied` says. A bogus or
    /// failed TLSA lookup makes the hop unusable (the error, and the labels).
    async fn dane_params(
        &self,
        dane: &Dane,
        route_tls: Option<&RouteTls>,
        params: &SessionParams,
        applied: &Applied,
        hop: &NextHop,
    ) -> Result<HopTls, (HopTls, DeliverError)> {
        let mut p = params.clone();
        match dane.tlsa(&hop.host, hop.addr.port()).await {
            dane::HopDane::Failed(e) => {
                let t = HopTls {
                    params: p,
                    label: "dane".to_string(),
                    metric: TlsPolicyLabel::Dane,
                };
                return Err((t, e));
            }
            dane::HopDane::NoRecords => {
                return Ok(HopTls {
                    params: p,
                    label: applied.label(),
                    metric: applied.metric(),
                })
            }
            dane::HopDane::Unusable => {
                p.policy = OutboundTls::Required;
                p.tls_config = route_tls
                    .map_or_else(tls::any_certificate, |t| t.config(OutboundTls::Required));
            }
            dane::HopDane::Records(records) => {
                let verifier = Arc::new(dane::DaneVerifier::new(records));
                p.policy = OutboundTls::Dane;
                p.tls_config = match route_tls {
                    Some(t) => t.with_verifier(verifier),
                    None => tls::RouteTls::bare_with_verifier(verifier),
                };
            }
        }
        // DANE takes precedence over MTA-STS (RFC 8461 §2).
        p.audit = None;
        Ok(HopTls {
            params: p,
            label: "dane".to_string(),
            metric: TlsPolicyLabel::Dane,
        })
    }

    /// The TLS policy for `domain` on `route`: MTA-STS where the route applies
    /// it and the domain has a policy in force, else the route's own.
    async fn tls_policy(&self, route_name: &str, route: &RouteConfig, domain: &str) -> Applied {
        if !route.mta_sts || domain.is_empty() {
            return Applied::Route(route.tls);
        }
        let roots = match self.tls.get(route_name) {
            Some(t) => t.roots(),
            None => Arc::new(rustls::RootCertStore::empty()),
        };
        match self.mta_sts.lookup(&self.resolver, domain, roots).await {
            mta_sts::Lookup::Policy(policy) => Applied::MtaSts {
                policy,
                route: route.tls,
            },
            mta_sts::Lookup::NoPolicy => Applied::Route(route.tls),
        }
    }

    /// A fresh-enough pooled session (after a successful RSET), or a new one.
    async fn session(
        &self,
        key: &PoolKey,
        hop: &NextHop,
        params: &SessionParams,
    ) -> Result<Session, DeliverError> {
        while let Some(mut session) = self.pool.take(key) {
            match session.reset().await {
                Ok(()) => return Ok(session),
                // The server closed it while idle: not an error, open another.
                Err(_) => tokio::spawn(session.quit()),
            };
        }
        let session = Session::open(hop, params).await?;
        self.pool.count_open();
        Ok(session)
    }

    async fn transaction(
        &self,
        envelope: &Envelope,
        via: Via<'_>,
        group: &[usize],
        message: &Message,
        mut session: Session,
        key: PoolKey,
    ) -> Vec<(usize, Outcome)> {
        let Via { route, label } = via;
        let recipients = group
            .iter()
            .map(|&i| {
                let r = &envelope.recipients[i];
                TxnRecipient {
                    address: &r.rewritten,
                    original: &r.address,
                    notify: r.notify,
                    orcpt: r.orcpt.as_deref(),
                }
            })
            .collect();
        let txn = Transaction {
            sender: &envelope.sender,
            body: envelope.body,
            smtputf8: envelope.smtputf8,
            ret: envelope.ret,
            envid: envelope.envid.as_deref(),
            recipients,
            message,
        };
        let result = session.send(&txn).await;
        let hop = session.hop.clone();
        let tls = match &session.tls {
            Some(t) => format!("{label} {t}"),
            None => format!("{label} cleartext"),
        };
        let outcomes = group
            .iter()
            .zip(result.recipients)
            .map(|(&i, r)| {
                let outcome = match r {
                    Ok(reply) => Outcome::Delivered {
                        reply: reply.to_string(),
                    },
                    Err(e) => classify(&e, Some(&hop)),
                };
                self.log(envelope, i, route, Some(&hop), &tls, &outcome);
                (i, outcome)
            })
            .collect();
        if result.reusable {
            self.pool.put(key, session);
        } else {
            tokio::spawn(session.quit());
        }
        outcomes
    }

    fn fail_all(
        &self,
        envelope: &Envelope,
        route: &str,
        group: &[usize],
        hop: Option<&NextHop>,
        tls: &str,
        e: &DeliverError,
    ) -> Vec<(usize, Outcome)> {
        group
            .iter()
            .map(|&i| {
                let outcome = classify(e, hop);
                // Failed before a session: only the policy to tell of.
                self.log(envelope, i, route, hop, tls, &outcome);
                (i, outcome)
            })
            .collect()
    }

    /// The Postfix-style line for one recipient and attempt, and its counter.
    fn log(
        &self,
        envelope: &Envelope,
        i: usize,
        route: &str,
        hop: Option<&NextHop>,
        tls: &str,
        outcome: &Outcome,
    ) {
        let r = &envelope.recipients[i];
        let (status, result, text) = match outcome {
            Outcome::Delivered { reply } => ("sent", DeliveryResult::Delivered, reply.clone()),
            Outcome::Temporary(f) => ("deferred", DeliveryResult::Deferred, f.to_string()),
            Outcome::Permanent(f) => ("bounced", DeliveryResult::Bounced, f.to_string()),
        };
        metrics().delivery(route, result);
        let delay = (chrono::Utc::now().timestamp() - envelope.received_at).max(0);
        let relay = hop.map_or_else(|| "none".to_string(), |h| h.to_string());
        tracing::info!(
            "{}: to=<{}>, orig_to=<{}>, route={}, relay={}, delay={}, tls={}, status={} ({})",
            envelope.id,
            r.rewritten,
            r.address,
            route,
            relay,
            delay,
            tls,
            status,
            text
        );
    }
}

/// What [`Deliverer::plan`] decided for a group.
struct Plan<'a> {
    hops: Vec<NextHop>,
    applied: Applied,
    params: SessionParams,
    /// Set when the route is `dane` and the MX RRset is secure.
    dane: Option<&'a Dane>,
    route_tls: Option<&'a RouteTls>,
}

/// The TLS of one next hop: how to open the session, and how to report it.
struct HopTls {
    params: SessionParams,
    /// For the log: `opportunistic`, `mta-sts:enforce`, `dane`, …
    label: String,
    metric: TlsPolicyLabel,
}

/// The route of a transaction and the TLS policy label its log lines carry.
#[derive(Clone, Copy)]
struct Via<'a> {
    route: &'a str,
    label: &'a str,
}

/// A TLS failure under DANE, as the queue records it (4.7.5, RFC 7672 §2.2).
fn dane_error(hop: &NextHop, e: DeliverError) -> DeliverError {
    if e.is_tls() {
        DeliverError::TlsPolicy(format!(
            "DANE: TLSA records of {} require TLS with a matching certificate: {e}",
            hop.host
        ))
    } else {
        e
    }
}

/// Error → outcome, through the one classification table.
fn classify(e: &DeliverError, hop: Option<&NextHop>) -> Outcome {
    let failure = e.failure(hop.cloned());
    if e.is_permanent() {
        Outcome::Permanent(failure)
    } else {
        Outcome::Temporary(failure)
    }
}

/// The domain of `local@domain`, lower case; empty when there is none.
fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}
