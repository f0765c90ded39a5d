//! Folder mapping and the message copy, with nothing copied twice.
//!
//! Per folder: EXAMINE the source (read-only, so \Seen never changes there),
//! UID SEARCH by INTERNALDATE, drop the UIDs the checkpoint says are on the
//! target, SELECT the target folder, then FETCH in batches bounded by count and
//! bytes and APPEND each batch pipelined with its flags and INTERNALDATE, the
//! source fetching the next batches meanwhile. A window of batches is written
//! down as `pending` before its first APPEND is sent, and UIDs move to `copied`
//! after the OKs, so a kill costs at most one window of lookups, never a
//! duplicate.
//!
//! When the checkpoint cannot be trusted — no state for the folder, UIDVALIDITY
//! changed (RFC 3501 §2.3.1.1), or a batch was pending — messages are matched
//! against the target by Message-ID, or by a SHA-256 of the header block when
//! there is none, counting duplicates (two copies at the source, one at the
//! target: one more is copied).

use crate::config::Content;
use crate::imap::{AppendRefusal, Folder, ImapError, Message, Session};
use crate::metrics::{metrics, ErrorKind};
use crate::state::{Counters, FolderState};
use mail_parser::MimeHeaders;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most this many messages per FETCH/APPEND batch.
const BATCH_MESSAGES: usize = 64;
/// At most this many bytes per batch (a bigger message goes alone): bounds memory.
const BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// Fetched bytes between the two sides at once: the batch being appended and
/// those fetched meanwhile (a bigger message goes alone).
const IN_FLIGHT_BYTES: u64 = 2 * BATCH_BYTES;
/// Batches fetched ahead of the one being appended.
const FETCH_AHEAD: usize = 2;
/// The checkpoint is written when a window of at least this many messages
/// starts (all of them `pending`)...
const CHECKPOINT_MESSAGES: usize = 512;
/// ...and after a batch when this long has passed since the last write.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// Attempts for a message the target refuses with a "try later" code.
const ATTEMPTS: u32 = 5;

/// Why a folder copy stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// An IMAP command failed on one side.
    #[error("{side}: {source}")]
    Imap {
        /// `source` or `target`.
        side: &'static str,
        /// The failure.
        source: ImapError,
    },
    /// The checkpoint could not be saved.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl CopyError {
    /// Whether a new connection may get further.
    pub fn is_temporary(&self) -> bool {
        matches!(self, CopyError::Imap { source, .. } if source.is_temporary())
    }
}

fn on(side: &'static str) -> impl FnOnce(ImapError) -> CopyError {
    move |source| CopyError::Imap { side, source }
}

/// What to copy and from when.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Mail and/or calendar folders.
    pub content: Content,
    /// Calendar folder names (case-insensitive).
    pub calendar_folders: Vec<String>,
    /// INTERNALDATE on or after.
    pub since: Option<chrono::NaiveDate>,
    /// INTERNALDATE before.
    pub before: Option<chrono::NaiveDate>,
}

/// A source folder and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderPlan {
    /// Source name.
    pub source: String,
    /// Target name.
    pub target: String,
    /// Whether it holds calendar items.
    pub calendar: bool,
}

/// A message that was not copied, or copied with a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Source folder.
    pub folder: String,
    /// Source UID.
    pub uid: u32,
    /// What happened.
    pub reason: String,
}

/// Maps the source folders to target names: the hierarchy delimiter is
/// translated, INBOX stays INBOX, and RFC 6154 special-use folders go to the
/// target's folder with the same use (Sent → "Sent Items" and the like).
pub fn plan_folders(source: &[Folder], target: &[Folder], filter: &Filter) -> Vec<FolderPlan> {
    let target_delimiter = target
        .iter()
        .find_map(|f| f.delimiter)
        .or_else(|| source.iter().find_map(|f| f.delimiter))
        .unwrap_or('/');
    let mut plans = Vec::new();
    for folder in source.iter().filter(|f| !f.no_select) {
        let levels = folder.levels();
        let calendar = levels.iter().any(|level| {
            filter
                .calendar_folders
                .iter()
                .any(|c| c.eq_ignore_ascii_case(level))
        }) || filter
            .calendar_folders
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&folder.name));
        let wanted = if calendar {
            filter.content.calendar
        } else {
            filter.content.mail
        };
        if !wanted {
            continue;
        }
        let special_target = folder.special_use.as_ref().and_then(|use_| {
            target
                .iter()
                .find(|t| t.special_use.as_ref() == Some(use_) && !t.no_select)
                .map(|t| t.name.clone())
        });
        let target_name = if folder.name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else if let Some(name) = special_target {
            name
        } else {
            levels.join(&target_delimiter.to_string())
        };
        plans.push(FolderPlan {
            source: folder.name.clone(),
            target: target_name,
            calendar,
        });
    }
    plans
}

/// The key a message is matched by: its Message-ID, or a hash of its header
/// block when it has none (drafts and some calendar items).
pub fn match_key(header: &[u8]) -> String {
    if let Some(message) = mail_parser::MessageParser::new().parse_headers(header) {
        if let Some(id) = message.message_id() {
            return format!("id:{id}");
        }
    }
    let digest = Sha256::digest(header);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("hash:{hex}")
}

/// The header block of a whole message, up to and including the empty line
/// (what BODY[HEADER] returns, RFC 3501 §6.4.5).
pub fn header_of(message: &[u8]) -> &[u8] {
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(i) => &message[..i + 4],
        None => message,
    }
}

/// Whether a calendar item parses and carries iCalendar data; the reason if not.
pub fn check_calendar_item(message: &[u8]) -> Option<String> {
    let Some(parsed) = mail_parser::MessageParser::new().parse(message) else {
        return Some("calendar item does not parse as a MIME message".into());
    };
    let has_ics = parsed
        .parts
        .iter()
        .any(|p| p.is_content_type("text", "calendar"));
    if has_ics {
        None
    } else {
        Some("calendar item has no text/calendar part".into())
    }
}

/// Counts one folder's messages to copy and their bytes (for the review and
/// the quota check).
pub async fn measure(
    src: &mut Session,
    plan: &FolderPlan,
    state: Option<&FolderState>,
    filter: &Filter,
) -> Result<(u64, u64), CopyError> {
    let selected = src.open(&plan.source, false).await.map_err(on("source"))?;
    if selected.exists == 0 {
        return Ok((0, 0));
    }
    let uids = src
        .search(filter.since, filter.before)
        .await
        .map_err(on("source"))?;
    let todo: Vec<u32> = match state {
        Some(s) if s.uid_validity == selected.uid_validity => uids
            .into_iter()
            .filter(|u| !s.copied.contains(*u))
            .collect(),
        _ => uids,
    };
    let mut bytes = 0;
    for chunk in todo.chunks(1000) {
        for m in src.sizes(chunk).await.map_err(on("source"))? {
            bytes += u64::from(m.size);
        }
    }
    Ok((todo.len() as u64, bytes))
}

/// Callbacks from the copy: checkpoints and progress.
pub trait Sink {
    /// Persist the folder's checkpoint.
    fn save(&mut self, folder: &str, state: &FolderState) -> Result<(), CopyError>;
    /// `messages` more done, `bytes` of them appended.
    fn progress(&mut self, messages: u64, bytes: u64);
}

/// Copies one folder; updates `state`, adds what it did to `counters` (also when
/// it stops early, so a folder resumed on a new connection is counted once) and
/// reports through `sink`.
#[allow(clippy::too_many_arguments)]
pub async fn sync_folder(
    src: &mut Session,
    dst: &mut Session,
    plan: &FolderPlan,
    state: &mut FolderState,
    filter: &Filter,
    sink: &mut (dyn Sink + Send),
    warnings: &mut Vec<Warning>,
    counters: &mut Counters,
) -> Result<(), CopyError> {
    let metrics = metrics();
    let prepare_started = Instant::now();
    let selected = src.open(&plan.source, false).await.map_err(on("source"))?;
    let mut must_match = state.uid_validity == 0 && state.copied.is_empty();
    if state.uid_validity != 0 && state.uid_validity != selected.uid_validity {
        tracing::warn!(
            "{}: UIDVALIDITY changed ({} -> {}); matching by Message-ID instead of UID",
            plan.source,
            state.uid_validity,
            selected.uid_validity
        );
        state.copied = Default::default();
        state.pending.clear();
        must_match = true;
    }
    state.uid_validity = selected.uid_validity;
    state.target = plan.target.clone();

    let uids = if selected.exists == 0 {
        Vec::new()
    } else {
        src.search(filter.since, filter.before)
            .await
            .map_err(on("source"))?
    };
    let mut todo: Vec<u32> = uids
        .into_iter()
        .filter(|u| !state.copied.contains(*u) && !state.refused.contains(*u))
        .collect();

    if !plan.target.eq_ignore_ascii_case("INBOX") {
        dst.create(&plan.target).await.map_err(on("target"))?;
    }

    // Match what the checkpoint cannot vouch for against the target.
    let candidates: Vec<u32> = if must_match {
        todo.clone()
    } else {
        todo.iter()
            .copied()
            .filter(|u| state.pending.contains(u))
            .collect()
    };
    let mut skipped = 0;
    if !candidates.is_empty() {
        let mut on_target = target_index(dst, &plan.target).await?;
        if !on_target.is_empty() {
            for chunk in candidates.chunks(500) {
                for (uid, header) in src.headers(chunk).await.map_err(on("source"))? {
                    if let Some(n) = on_target.get_mut(&match_key(&header)) {
                        if *n > 0 {
                            *n -= 1;
                            state.copied.insert(uid);
                            skipped += 1;
                        }
                    }
                }
            }
            todo.retain(|u| !state.copied.contains(*u));
        }
    }
    state.pending.clear();
    sink.save(&plan.source, state)?;
    counters.skipped += skipped;
    metrics.messages_skipped.inc_by(skipped);
    sink.progress(skipped, 0);

    // Batches bounded by count and bytes.
    let mut sizes = Vec::with_capacity(todo.len());
    for chunk in todo.chunks(1000) {
        sizes.extend(src.sizes(chunk).await.map_err(on("source"))?);
    }
    let mut batches: Vec<(Vec<u32>, u64)> = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0u64;
    for m in &sizes {
        if !current.is_empty()
            && (current.len() >= BATCH_MESSAGES || current_bytes + u64::from(m.size) > BATCH_BYTES)
        {
            batches.push((std::mem::take(&mut current), current_bytes));
            current_bytes = 0;
        }
        current.push(m.uid);
        current_bytes += u64::from(m.size);
    }
    if !current.is_empty() {
        batches.push((current, current_bytes));
    }

    tracing::debug!(
        "{}: {} to copy in {} batch(es); prepared in {:?}",
        plan.source,
        todo.len(),
        batches.len(),
        prepare_started.elapsed()
    );
    if batches.is_empty() {
        return Ok(());
    }
    // APPEND into the selected mailbox. Into an unselected one, Dovecot
    // (maildir) took longer per APPEND the bigger the folder: 3.5 ms per
    // message into 6,000, against 1.3 ms with the folder selected (measured;
    // presumably it opens the mailbox anew for each APPEND).
    dst.open(&plan.target, true).await.map_err(on("target"))?;
    copy_batches(src, dst, plan, batches, state, sink, warnings, counters).await
}

/// One fetched batch on its way to the target. It holds its share of the
/// in-flight byte budget until it is dropped.
struct Fetched<'a> {
    /// The UIDs asked for (one expunged meanwhile has no message).
    uids: Vec<u32>,
    messages: Vec<Message>,
    fetch_time: Duration,
    _budget: tokio::sync::SemaphorePermit<'a>,
}

/// Copies `batches` (UIDs and RFC822.SIZE total each): the source FETCHes the
/// next batches while the target APPENDs this one, over a channel bounded by
/// batch count and by bytes ([`IN_FLIGHT_BYTES`]), so neither side waits for
/// the other and memory stays bounded. The two futures run in this task, each
/// on its own connection.
#[allow(clippy::too_many_arguments)]
async fn copy_batches(
    src: &mut Session,
    dst: &mut Session,
    plan: &FolderPlan,
    batches: Vec<(Vec<u32>, u64)>,
    state: &mut FolderState,
    sink: &mut (dyn Sink + Send),
    warnings: &mut Vec<Warning>,
    counters: &mut Counters,
) -> Result<(), CopyError> {
    let started = Instant::now();
    let budget = tokio::sync::Semaphore::new(IN_FLIGHT_BYTES as usize);
    let (tx, rx) = tokio::sync::mpsc::channel::<Fetched<'_>>(FETCH_AHEAD);
    let mut appender = Appender {
        dst,
        plan,
        ahead: batches.iter().map(|(uids, _)| uids.clone()).collect(),
        next: 0,
        window_end: 0,
        last_save: Instant::now(),
        state,
        sink,
        warnings,
        counters,
        times: Times::default(),
    };
    let fetch = async {
        let tx = tx;
        let mut fetch_time = Duration::ZERO;
        for (uids, bytes) in batches {
            // A message bigger than the budget goes alone.
            let want = bytes.clamp(1, IN_FLIGHT_BYTES) as u32;
            let Ok(permit) = budget.acquire_many(want).await else {
                break; // the appender stopped
            };
            if tx.is_closed() {
                break;
            }
            let t = Instant::now();
            let messages = src.messages(&uids).await.map_err(on("source"))?;
            fetch_time += t.elapsed();
            let batch = Fetched {
                uids,
                messages,
                fetch_time: t.elapsed(),
                _budget: permit,
            };
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        Ok::<_, CopyError>(fetch_time)
    };
    let append = async {
        let mut rx = rx;
        let mut result = Ok(());
        loop {
            let t = Instant::now();
            let Some(batch) = rx.recv().await else {
                break;
            };
            appender.times.wait += t.elapsed();
            if let Err(e) = appender.batch(batch).await {
                result = Err(e);
                break;
            }
        }
        // Stop the fetcher at its next step; what it fetched is dropped.
        drop(rx);
        budget.close();
        // Whatever the outcome, record what the target confirmed; `pending`
        // still names every UID that may have been sent without an answer.
        let saved = appender.save();
        result.and(saved)
    };
    let (fetched, appended) = tokio::join!(fetch, append);
    let t = &appender.times;
    tracing::debug!(
        "{}: {} batch(es) in {:?}: fetch {:?}, append {:?}, waiting for the source {:?}, {} checkpoint save(s) {:?}",
        plan.source,
        appender.next,
        started.elapsed(),
        fetched.as_ref().copied().unwrap_or_default(),
        t.append,
        t.wait,
        t.saves,
        t.save
    );
    appended?;
    fetched.map(|_| ())
}

/// Where the append side's time went, for the debug trace.
#[derive(Debug, Default)]
struct Times {
    append: Duration,
    wait: Duration,
    save: Duration,
    saves: u32,
}

/// The target side of [`copy_batches`]: APPENDs each batch, retries what the
/// target asks to slow down for, and keeps the checkpoint.
///
/// The checkpoint is saved when a window of batches (at least
/// [`CHECKPOINT_MESSAGES`] messages) starts, with the whole window as
/// `pending`, and after a batch when [`CHECKPOINT_INTERVAL`] has passed: a
/// UID is recorded as copied only after the target's OK, and every UID that
/// may be on the target without being recorded is `pending`, so a re-run looks
/// it up instead of sending it again.
struct Appender<'a> {
    dst: &'a mut Session,
    plan: &'a FolderPlan,
    /// Every batch's UIDs, in order.
    ahead: Vec<Vec<u32>>,
    /// Index of the next batch to come.
    next: usize,
    /// First batch not covered by the saved `pending`.
    window_end: usize,
    last_save: Instant,
    state: &'a mut FolderState,
    sink: &'a mut (dyn Sink + Send),
    warnings: &'a mut Vec<Warning>,
    counters: &'a mut Counters,
    times: Times,
}

impl Appender<'_> {
    fn save(&mut self) -> Result<(), CopyError> {
        let t = Instant::now();
        self.sink.save(&self.plan.source, self.state)?;
        self.last_save = Instant::now();
        self.times.save += t.elapsed();
        self.times.saves += 1;
        Ok(())
    }

    async fn batch(&mut self, batch: Fetched<'_>) -> Result<(), CopyError> {
        let metrics = metrics();
        let plan = self.plan;
        let index = self.next;
        self.next += 1;
        if index >= self.window_end {
            // Written down before the first APPEND of the window is sent.
            let mut end = index;
            let mut count = 0;
            while end < self.ahead.len() && count < CHECKPOINT_MESSAGES {
                count += self.ahead[end].len();
                end += 1;
            }
            self.state.pending = self.ahead[index..end].concat();
            self.window_end = end;
            self.save()?;
        }
        let Fetched {
            mut uids,
            mut messages,
            fetch_time,
            ..
        } = batch;
        uids.sort_unstable();
        if plan.calendar {
            for m in &messages {
                if let Some(reason) = check_calendar_item(&m.body) {
                    self.warnings.push(Warning {
                        folder: plan.source.clone(),
                        uid: m.uid,
                        reason,
                    });
                }
            }
        }
        let bytes: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
        let count = messages.len();
        let t = Instant::now();
        for attempt in 1..=ATTEMPTS {
            let results = append(self.dst, &plan.target, &messages).await?;
            let verdicts = judge(&results, attempt < ATTEMPTS);
            let mut retry = Vec::new();
            let mut slow_down = None;
            for ((m, result), verdict) in messages.iter().zip(results).zip(verdicts) {
                let (uid, size) = (m.uid, m.body.len() as u64);
                match (result, verdict) {
                    (Ok(()), _) => {
                        self.state.copied.insert(uid);
                        self.counters.copied += 1;
                        self.counters.bytes += size;
                        metrics.messages_copied.inc();
                        metrics.bytes_copied.inc_by(size);
                        self.sink.progress(1, size);
                    }
                    (Err(refusal), Verdict::Retry) => {
                        self.counters.throttled += 1;
                        metrics.error(ErrorKind::Throttled);
                        slow_down.get_or_insert(refusal.text);
                        retry.push(uid);
                    }
                    (Err(refusal), Verdict::Refused) => {
                        self.state.refused.insert(uid);
                        self.counters.failed += 1;
                        metrics.error(ErrorKind::Refused);
                        self.sink.progress(1, 0);
                        tracing::warn!(
                            "{}: UID {uid}: the target refused it: {}",
                            plan.source,
                            refusal.text
                        );
                        self.warnings.push(Warning {
                            folder: plan.source.clone(),
                            uid,
                            reason: format!("target refused it: {}", refusal.text),
                        });
                    }
                }
            }
            let Some(why) = slow_down else {
                break;
            };
            // Throttled: back off (1 s, 2 s, 4 s, ...) rather than count a failure.
            let delay = Duration::from_secs(1 << (attempt - 1).min(5));
            tracing::warn!(
                "{}: the target asks to slow down ({why}); retrying {} message(s) in {delay:?}",
                plan.source,
                retry.len()
            );
            metrics.backoff_seconds.inc_by(delay.as_secs_f64());
            tokio::time::sleep(delay).await;
            messages.retain(|m| retry.contains(&m.uid));
        }
        let append_time = t.elapsed();
        self.times.append += append_time;
        // Every UID of the batch is now copied, refused, or was expunged
        // between SEARCH and FETCH (nothing to copy).
        self.state
            .pending
            .retain(|u| uids.binary_search(u).is_err());
        if self.last_save.elapsed() >= CHECKPOINT_INTERVAL {
            self.save()?;
        }
        tracing::trace!(
            "{}: batch {index}: {count} message(s), {bytes} B: fetch {fetch_time:?}, append {append_time:?}",
            plan.source
        );
        Ok(())
    }
}

/// What to do with one APPEND's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Done, or refused for good: a warning.
    Refused,
    /// The server asked to slow down: back off and send it again.
    Retry,
}

/// Sorts a pipelined batch's refusals into "slow down" and "refused".
///
/// `[LIMIT]` is ambiguous: RFC 5530 §3 means an implementation limit on the
/// message (Dovecot refuses a message over `quota_max_mail_size` with it), while
/// some providers send it when rate-limiting. When a later APPEND of the same
/// pipeline was accepted, the server was not refusing everything at that moment,
/// so the limit is about this message: refused at once, not retried. Every other
/// try-later code is retried while `may_retry`.
fn judge(results: &[Result<(), AppendRefusal>], may_retry: bool) -> Vec<Verdict> {
    results
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Ok(()) => Verdict::Refused,
            Err(refusal) if !refusal.temporary || !may_retry => Verdict::Refused,
            Err(refusal) if refusal.limit && results[i + 1..].iter().any(Result::is_ok) => {
                Verdict::Refused
            }
            Err(_) => Verdict::Retry,
        })
        .collect()
}

async fn append(
    dst: &mut Session,
    folder: &str,
    messages: &[Message],
) -> Result<Vec<Result<(), AppendRefusal>>, CopyError> {
    dst.append(folder, messages).await.map_err(on("target"))
}

/// Message keys on the target folder, with their counts.
async fn target_index(dst: &mut Session, folder: &str) -> Result<HashMap<String, u32>, CopyError> {
    let mut index = HashMap::new();
    let selected = dst.open(folder, false).await.map_err(on("target"))?;
    let uids = if selected.exists == 0 {
        Vec::new()
    } else {
        dst.search(None, None).await.map_err(on("target"))?
    };
    for chunk in uids.chunks(500) {
        for (_, header) in dst.headers(chunk).await.map_err(on("target"))? {
            *index.entry(match_key(&header)).or_insert(0) += 1;
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, delimiter: char, special: Option<&str>) -> Folder {
        Folder {
            name: name.into(),
            delimiter: Some(delimiter),
            special_use: special.map(str::to_string),
            no_select: false,
        }
    }

    fn filter(mail: bool, calendar: bool) -> Filter {
        Filter {
            content: Content { mail, calendar },
            calendar_folders: vec!["Calendar".into()],
            ..Filter::default()
        }
    }

    #[test]
    fn folders_map_delimiters_and_special_use() {
        let source = vec![
            folder("INBOX", '.', None),
            folder("INBOX.Work.2024", '.', None),
            folder("Sent Messages", '.', Some("sent")),
            folder("Calendar", '.', None),
            folder("Calendar.Holidays", '.', None),
            Folder {
                no_select: true,
                ..folder("Shared", '.', None)
            },
        ];
        let target = vec![
            folder("INBOX", '/', None),
            folder("Sent Items", '/', Some("sent")),
        ];
        let plans = plan_folders(&source, &target, &filter(true, true));
        let pairs: Vec<(&str, &str, bool)> = plans
            .iter()
            .map(|p| (p.source.as_str(), p.target.as_str(), p.calendar))
            .collect();
        assert_eq!(
            pairs,
            [
                ("INBOX", "INBOX", false),
                ("INBOX.Work.2024", "INBOX/Work/2024", false),
                ("Sent Messages", "Sent Items", false),
                ("Calendar", "Calendar", true),
                ("Calendar.Holidays", "Calendar/Holidays", true),
            ]
        );
        let only_calendar = plan_folders(&source, &target, &filter(false, true));
        assert_eq!(only_calendar.len(), 2);
        assert!(only_calendar.iter().all(|p| p.calendar));
        let only_mail = plan_folders(&source, &target, &filter(true, false));
        assert_eq!(only_mail.len(), 3);
    }

    #[test]
    fn match_key_prefers_message_id() {
        let a = b"Subject: x\r\nMessage-ID: <1@x>\r\n\r\n";
        assert_eq!(match_key(a), "id:1@x");
        let b = b"Subject: x\r\nFrom: a@b\r\n\r\n";
        let c = b"Subject: y\r\nFrom: a@b\r\n\r\n";
        assert!(match_key(b).starts_with("hash:"));
        assert_ne!(match_key(b), match_key(c));
        let whole = b"Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n\r\nmore";
        assert_eq!(header_of(whole), b);
    }

    #[test]
    fn limit_is_the_message_when_a_later_append_got_through() {
        let refusal = |temporary, limit| {
            Err(AppendRefusal {
                text: "x".into(),
                temporary,
                limit,
            })
        };
        let results = vec![
            refusal(true, false), // [THROTTLED]
            refusal(true, true),  // [LIMIT], a later one got through
            Ok(()),
            refusal(false, false), // [OVERQUOTA]
            refusal(true, true),   // [LIMIT], nothing after it got through
        ];
        use Verdict::*;
        assert_eq!(
            judge(&results, true),
            [Retry, Refused, Refused, Refused, Retry]
        );
        assert!(judge(&results, false).iter().all(|v| *v == Refused));
    }

    #[test]
    fn calendar_items_are_checked() {
        let ics = b"From: a@b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n";
        assert_eq!(check_calendar_item(ics), None);
        let plain = b"From: a@b\r\nContent-Type: text/plain\r\n\r\nhello\r\n";
        assert!(check_calendar_item(plain)
            .unwrap()
            .contains("no text/calendar part"));
    }
}
