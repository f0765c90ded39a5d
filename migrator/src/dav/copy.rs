//! One user's calendars and address books, source to target.
//!
//! Per source collection: find (or make) the target collection of the same
//! name, list what changed since the last pass (sync token, ETags), fetch it
//! in multigets of [`BATCH`], and PUT each resource: `If-None-Match: *` for a
//! new one, `If-Match` on the target's ETag for one this migrator wrote and
//! the source changed since. Nothing is written twice: a resource already at
//! that path is compared (same UID and version: adopted; else left alone), a
//! UID already elsewhere in the collection is left alone; both count as
//! skipped. The checkpoint is saved after every batch.

use super::collections::{self, Collection};
use super::discover;
use super::item::Item;
use super::resources::{self, Listed, Listing, Put};
use super::schedule;
use super::state::{CollectionState, ItemState, Kind};
use super::{client::Dav, DavError, Servers};
use crate::config::Side;
use crate::context::UserContext;
use crate::metrics::metrics;
use crate::report::DavWarning;
use libdav::caldav::TimeRange;
use sha2::Digest;
use std::collections::BTreeMap;
use std::time::Duration;

/// Resources per multiget and per checkpoint.
pub const BATCH: usize = 100;

/// PUTs in flight at once per collection.
const PARALLEL_PUTS: usize = 4;

/// How often a PUT that got no answer is tried again (after 2 s, 4 s, 8 s).
const RETRIES: u32 = 3;

/// Copies the user's calendars and/or address books (as `content` says).
pub async fn copy_user(ctx: &mut UserContext<'_>, servers: &Servers) -> Result<(), DavError> {
    let content = ctx.run.filter.content;
    let (address, target) = (ctx.user.address.clone(), ctx.target.clone());
    let src = servers.source.client(&servers.logins, &address, &target)?;
    let dst = servers.target.client(&servers.logins, &address, &target)?;
    let src_dav = servers.source.endpoint.dav.as_ref().expect("DAV side");
    let dst_dav = servers.target.endpoint.dav.as_ref().expect("DAV side");
    let src_homes = discover::homes(&src, Side::Source, src_dav, &address, &target).await?;
    let dst_homes = discover::homes(&dst, Side::Target, dst_dav, &address, &target).await?;
    let range = resources::time_range(ctx.run.filter.since, ctx.run.filter.before);
    let mut kinds = Vec::new();
    if content.calendar {
        kinds.push((Kind::Calendar, &src_homes.calendars, &dst_homes.calendars));
    }
    if content.contacts {
        kinds.push((
            Kind::Contacts,
            &src_homes.addressbooks,
            &dst_homes.addressbooks,
        ));
    }
    for (kind, src_home, dst_home) in kinds {
        let (Some(src_home), Some(dst_home)) = (src_home, dst_home) else {
            ctx.say(format_args!(
                "{}: no {} home on the {}; nothing copied",
                kind.label(),
                kind.label(),
                if src_home.is_none() {
                    "source"
                } else {
                    "target"
                }
            ));
            continue;
        };
        let marking = kind == Kind::Calendar
            && discover::auto_schedules(&dst, Side::Target, dst_home).await?;
        let sources = collections::list(&src, Side::Source, src_home, kind).await?;
        let mut targets = match collections::list(&dst, Side::Target, dst_home, kind).await {
            Err(DavError::NotFound(_)) => {
                // A Radicale principal appears on the user's first login; the
                // admin makes it (a plain collection) so calendars fit under it.
                collections::make_home(&dst, dst_home).await?;
                ctx.say(format_args!(
                    "{}: created the home {dst_home} on the target",
                    kind.label()
                ));
                Vec::new()
            }
            other => other?,
        };
        for source in &sources {
            let (pair, created) = collections::pair(&dst, dst_home, source, &src, &targets).await?;
            if created {
                ctx.say(format_args!(
                    "{}: created {} {:?} at {}",
                    kind.label(),
                    kind.label(),
                    pair.name(),
                    pair.href
                ));
                targets.push(pair.clone());
            }
            let job = Job {
                src: &src,
                dst: &dst,
                source,
                target: &pair,
                marking,
                range: range.as_ref(),
            };
            job.run(ctx).await?;
            ctx.report.content_mut(kind).counters.collections += 1;
        }
    }
    Ok(())
}

/// One collection's copy.
struct Job<'a> {
    src: &'a Dav,
    dst: &'a Dav,
    source: &'a Collection,
    target: &'a Collection,
    /// Add `SCHEDULE-AGENT=CLIENT` (the target schedules).
    marking: bool,
    range: Option<&'a TimeRange>,
}

impl Job<'_> {
    async fn run(&self, ctx: &mut UserContext<'_>) -> Result<(), DavError> {
        let kind = self.source.kind;
        let key = self.source.href.clone();
        let mut st = ctx
            .state
            .dav
            .remove(&key)
            .unwrap_or_else(|| CollectionState {
                kind,
                target: self.target.href.clone(),
                sync_token: None,
                items: BTreeMap::new(),
            });
        st.target = self.target.href.clone();
        // A date-filtered pass sees part of the collection: it neither uses
        // nor moves the token, and says nothing about deletions.
        let token = if self.range.is_some() {
            None
        } else {
            st.sync_token.clone()
        };
        let listing = resources::list(self.src, self.source, token.as_deref(), self.range).await;
        let listing = match listing {
            Ok(l) => l,
            Err(e) => {
                ctx.state.dav.insert(key, st);
                return Err(e);
            }
        };
        let (changed, deleted, new_token) = match listing {
            Listing::Full {
                items,
                token,
                expired,
            } => {
                if expired {
                    ctx.say(format_args!(
                        "{}: the sync token was refused (expired); comparing every ETag instead",
                        self.source.href
                    ));
                }
                let deleted = if self.range.is_none() {
                    let present: std::collections::HashSet<&str> =
                        items.iter().map(|i| i.href.as_str()).collect();
                    st.items
                        .keys()
                        .filter(|h| !present.contains(h.as_str()))
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                (items, deleted, token)
            }
            Listing::Delta {
                changed,
                deleted,
                token,
            } => (changed, deleted, Some(token)),
        };
        let todo: Vec<Listed> = changed
            .into_iter()
            .filter(|l| st.items.get(&l.href).is_none_or(|s| s.etag != l.etag))
            .collect();
        for href in deleted {
            if let Some(gone) = st.items.remove(&href) {
                let c = ctx.report.content_mut(kind);
                c.counters.deleted_on_source += 1;
                c.warnings.push(DavWarning {
                    collection: self.source.href.clone(),
                    resource: href,
                    uid: gone.uid,
                    reason: "deleted on the source after it was copied; left on the target".into(),
                });
            }
        }
        let bar = ctx.run.progress.user(
            &format!("{} {}", ctx.user.address, self.source.name()),
            todo.len() as u64,
            0,
        );
        let mut refused = false;
        let mut result = Ok(());
        for batch in todo.chunks(BATCH) {
            let hrefs: Vec<String> = batch.iter().map(|l| l.href.clone()).collect();
            let fetched =
                match resources::fetch(self.src, Side::Source, kind, &self.source.href, &hrefs)
                    .await
                {
                    Ok(f) => f,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
            let planned: Vec<_> = fetched
                .into_iter()
                .map(|(href, content)| {
                    let plan = content.map(|(data, etag)| (etag, self.plan(&st, &href, &data)));
                    (href, plan)
                })
                .collect();
            let mut queue = planned.into_iter().peekable();
            while queue.peek().is_some() && result.is_ok() {
                let group: Vec<_> = queue.by_ref().take(PARALLEL_PUTS).collect();
                let firsts = self.first_puts(&group).await;
                for ((href, plan), first) in group.into_iter().zip(firsts) {
                    let outcome = match (plan, first) {
                        (Err(status), _) => {
                            Ok(Some(format!("the source answered {status} for it")))
                        }
                        (Ok((_, Planned::Refuse(why))), _) => Ok(Some(why)),
                        (Ok((etag, Planned::Put { prep, target, .. })), Some(Ok(put))) => {
                            self.copy_one(ctx, &mut st, &href, &etag, prep, target, put)
                                .await
                        }
                        (Ok(_), Some(Err(e))) => Err(e),
                        (Ok(_), None) => Err(DavError::Transport(format!(
                            "target PUT for {href}: the task did not finish"
                        ))),
                    };
                    match outcome {
                        Ok(None) => {}
                        Ok(Some(why)) => {
                            refused = true;
                            let c = ctx.report.content_mut(kind);
                            c.counters.refused += 1;
                            c.warnings.push(DavWarning {
                                collection: self.source.href.clone(),
                                resource: href,
                                uid: String::new(),
                                reason: why,
                            });
                            metrics().item(kind.label(), "refused", 0);
                            metrics().error(crate::metrics::ErrorKind::Refused);
                        }
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                    bar.inc(1, 0);
                }
            }
            if result.is_err() {
                break;
            }
            ctx.state.dav.insert(key.clone(), st);
            let saved = ctx.save();
            st = ctx.state.dav.remove(&key).expect("just inserted");
            saved.map_err(|e| DavError::Config(e.to_string()))?;
        }
        bar.finish();
        // The token moves only when every change it covers is on the target:
        // a refused resource is tried again by the next pass.
        if result.is_ok() && !refused && self.range.is_none() {
            st.sync_token = new_token;
        }
        ctx.state.dav.insert(key, st);
        ctx.save().map_err(|e| DavError::Config(e.to_string()))?;
        result
    }

    /// What the first PUT of a fetched resource is: a create at the source's
    /// last segment, or an update of this migrator's copy with `If-Match`.
    fn plan(&self, st: &CollectionState, href: &str, data: &str) -> Planned {
        let item = Item::read(self.source.kind, data);
        // Marked in the text whatever the parser made of it: a resource it
        // cannot read may still carry attendees a scheduling target would mail.
        let marked = if self.marking {
            schedule::mark_client_scheduling(data)
        } else {
            None
        };
        let prep = Prepared {
            marked: marked.is_some(),
            body: marked.unwrap_or_else(|| data.to_string()),
            item,
        };
        match st.items.get(href) {
            Some(prev) => match &prev.target_etag {
                Some(etag) => Planned::Put {
                    target: prev.target.clone(),
                    if_match: Some(etag.clone()),
                    prep,
                },
                None => Planned::Refuse(
                    "changed on the source, but the target gave no ETag to update it safely".into(),
                ),
            },
            None => Planned::Put {
                target: format!("{}{}", self.target.href, segment(href)),
                if_match: None,
                prep,
            },
        }
    }

    /// The first PUTs of `group`, [`PARALLEL_PUTS`] at once (servers answer
    /// one PUT at a time slowly: Radicale writes and fsyncs, Cyrus schedules).
    /// One result per entry, `None` where there was nothing to PUT.
    async fn first_puts(
        &self,
        group: &[(String, PlannedFetch)],
    ) -> Vec<Option<Result<Put, DavError>>> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (_, plan)) in group.iter().enumerate() {
            if let Ok((
                _,
                Planned::Put {
                    prep,
                    target,
                    if_match,
                },
            )) = plan
            {
                let dst = self.dst.clone();
                let (kind, target, body, if_match) = (
                    self.source.kind,
                    target.clone(),
                    prep.body.clone(),
                    if_match.clone(),
                );
                tasks.spawn(async move {
                    (
                        i,
                        put_retrying(&dst, kind, &target, &body, if_match.as_deref()).await,
                    )
                });
            }
        }
        let mut out: Vec<Option<Result<Put, DavError>>> = (0..group.len()).map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, r)) = done {
                out[i] = Some(r);
            }
        }
        out
    }

    /// Acts on the first PUT's answer for one resource (compares what is
    /// there on a 412, goes beside another object); `Ok(Some(reason))` when
    /// it was refused.
    #[allow(clippy::too_many_arguments)]
    async fn copy_one(
        &self,
        ctx: &mut UserContext<'_>,
        st: &mut CollectionState,
        href: &str,
        etag: &str,
        prep: Prepared,
        target_href: String,
        first: Put,
    ) -> Result<Option<String>, DavError> {
        let kind = self.source.kind;
        let Prepared { item, body, marked } = prep;
        let body = body.as_str();
        let label = kind.label();
        if let Some(prev) = st.items.get(href).cloned() {
            // Ours, and changed on the source since: updated unless the
            // target's copy changed too (the target wins).
            return match first {
                Put::Stored(new) => {
                    let c = ctx.report.content_mut(kind);
                    c.counters.updated += 1;
                    c.counters.bytes += body.len() as u64;
                    if marked {
                        c.counters.schedule_agent_marked += 1;
                        metrics().schedule_agent_marked.inc();
                    }
                    metrics().item(label, "updated", body.len() as u64);
                    st.items.insert(
                        href.to_string(),
                        ItemState {
                            etag: etag.to_string(),
                            target_etag: new,
                            ..prev
                        },
                    );
                    Ok(None)
                }
                Put::Precondition => {
                    let c = ctx.report.content_mut(kind);
                    c.counters.conflicts += 1;
                    c.warnings.push(DavWarning {
                        collection: self.source.href.clone(),
                        resource: href.to_string(),
                        uid: prev.uid.clone(),
                        reason:
                            "changed on the source and on the target; the target's copy is kept"
                                .into(),
                    });
                    st.items.insert(
                        href.to_string(),
                        ItemState {
                            etag: etag.to_string(),
                            ..prev
                        },
                    );
                    Ok(None)
                }
                Put::UidTaken(why) | Put::Refused(why) => Ok(Some(why)),
            };
        }
        let mut put = first;
        let mut at = target_href;
        if put == Put::Precondition {
            match self.compare(&at, &item).await? {
                Found::Same(target_etag) => {
                    self.skipped(ctx, kind);
                    st.items.insert(
                        href.to_string(),
                        ItemState {
                            uid: item.uid.clone().unwrap_or_default(),
                            etag: etag.to_string(),
                            target: at,
                            target_etag,
                        },
                    );
                    return Ok(None);
                }
                Found::OtherVersion => {
                    self.skipped(ctx, kind);
                    return Ok(None);
                }
                Found::OtherObject => {
                    // Another object holds the name: this one goes beside it.
                    at = format!("{}{}", self.target.href, hashed_name(&item, href, kind));
                    put = put_retrying(self.dst, kind, &at, body, None).await?;
                }
            }
        }
        match put {
            Put::Stored(target_etag) => {
                let c = ctx.report.content_mut(kind);
                c.counters.copied += 1;
                c.counters.bytes += body.len() as u64;
                if marked {
                    c.counters.schedule_agent_marked += 1;
                    metrics().schedule_agent_marked.inc();
                }
                metrics().item(label, "copied", body.len() as u64);
                st.items.insert(
                    href.to_string(),
                    ItemState {
                        uid: item.uid.clone().unwrap_or_default(),
                        etag: etag.to_string(),
                        target: at,
                        target_etag,
                    },
                );
                Ok(None)
            }
            Put::UidTaken(_) | Put::Precondition => {
                // The UID is on the target already, not written by this migrator.
                self.skipped(ctx, kind);
                Ok(None)
            }
            Put::Refused(why) if item.parsed => Ok(Some(why)),
            Put::Refused(why) => Ok(Some(format!(
                "{why}; the source's data does not parse as {}",
                match kind {
                    Kind::Calendar => "iCalendar",
                    Kind::Contacts => "a vCard",
                }
            ))),
        }
    }

    fn skipped(&self, ctx: &mut UserContext<'_>, kind: Kind) {
        ctx.report.content_mut(kind).counters.skipped += 1;
        metrics().item(kind.label(), "skipped", 0);
    }

    /// What is at `href` on the target, against the source's `item`.
    async fn compare(&self, href: &str, item: &Item) -> Result<Found, DavError> {
        let fetched = resources::fetch(
            self.dst,
            Side::Target,
            self.source.kind,
            &self.target.href,
            &[href.to_string()],
        )
        .await?;
        let Some((_, Ok((data, etag)))) = fetched.into_iter().next() else {
            return Ok(Found::OtherVersion);
        };
        let there = Item::read(self.source.kind, &data);
        Ok(if there.same_as(item) {
            Found::Same(Some(etag))
        } else if there.uid.is_some() && there.uid == item.uid {
            Found::OtherVersion
        } else {
            Found::OtherObject
        })
    }
}

/// A PUT, tried again after 2, 4, 8 s when it gets no answer.
async fn put_retrying(
    dst: &Dav,
    kind: Kind,
    href: &str,
    body: &str,
    if_match: Option<&str>,
) -> Result<Put, DavError> {
    let mut attempt = 0;
    loop {
        match resources::put(dst, kind, href, body, if_match).await {
            Err(e) if e.is_temporary() && attempt < RETRIES => {
                attempt += 1;
                let delay = Duration::from_secs(2u64.pow(attempt));
                tracing::warn!("{e}; trying again in {delay:?}");
                metrics().backoff_seconds.inc_by(delay.as_secs_f64());
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// A fetched resource ready to go: what calcard read, and the bytes to send.
struct Prepared {
    item: Item,
    body: String,
    /// `SCHEDULE-AGENT=CLIENT` was added.
    marked: bool,
}

/// A fetched resource's (source ETag, plan), or the status the source gave.
type PlannedFetch = Result<(String, Planned), http::StatusCode>;

/// The first PUT for a resource, or why there is none.
enum Planned {
    /// PUT `prep` at `target` (`If-Match` when updating, else `If-None-Match: *`).
    Put {
        prep: Prepared,
        target: String,
        if_match: Option<String>,
    },
    /// Refused before sending.
    Refuse(String),
}

/// What a PUT that found something at its path found there.
enum Found {
    /// The same UID and version: adopted, with the target's ETag.
    Same(Option<String>),
    /// The same UID in another version: left alone.
    OtherVersion,
    /// Another object.
    OtherObject,
}

/// The last path segment of a resource.
fn segment(href: &str) -> &str {
    href.rsplit('/').next().unwrap_or(href)
}

/// A name for a resource whose path is taken on the target by another object.
fn hashed_name(item: &Item, href: &str, kind: Kind) -> String {
    let key = item.uid.as_deref().unwrap_or(href);
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    let ext = match kind {
        Kind::Calendar => "ics",
        Kind::Contacts => "vcf",
    };
    format!("coexist-{hex}.{ext}")
}
