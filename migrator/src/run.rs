//! The commands: `ready`, `migrate` (and `sync`), `status`, `rollback`.
//!
//! A migration, per user, up to `parallel` users at once: connect both sides
//! (insecure connections refused before any credential is sent), measure what is
//! to copy, check it against the destination's free quota (a user who does not
//! fit fails here, before anything is written), write the forwarding contact,
//! copy every folder, run a delta pass for what arrived meanwhile, record the
//! user as migrated.

use crate::config::{expand, Config, Content};
use crate::contacts;
use crate::copy::{self, CopyError, Filter, FolderPlan, Sink};
use crate::directory::{self, User};
use crate::imap::{ImapError, Quota, Session};
use crate::metrics::{metrics, ErrorKind, UserState as Gauge};
use crate::report::{human_bytes, Progress, UserProgress, UserReport};
use crate::state::{Counters, FolderState, Phase, StateDir, UserState};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How many times a folder is retried on a new connection after a transient
/// failure (connection lost, BYE, timeout, throttling).
const RECONNECTS: u32 = 3;

/// Errors that stop a command before any user is handled (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The directory, the contacts table or the state could not be read.
    #[error("{0}")]
    Setup(String),
    /// The command line names something that does not exist.
    #[error("{0}")]
    Usage(String),
}

/// Options of `migrate` and `sync`.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Users named on the command line.
    pub users: Vec<String>,
    /// Every ready user instead.
    pub all_ready: bool,
    /// Only write the contacts.
    pub forwarding_only: bool,
    /// Overrides `migration.content`.
    pub content: Option<Content>,
    /// INTERNALDATE on or after.
    pub since: Option<chrono::NaiveDate>,
    /// INTERNALDATE before.
    pub before: Option<chrono::NaiveDate>,
    /// Allow plaintext and unverified certificates.
    pub allow_insecure: bool,
    /// Overrides `migration.parallel`.
    pub parallel: Option<usize>,
    /// Show, write nothing.
    pub dry_run: bool,
    /// `sync`: copy only (no quota gate on a user not yet flipped, no contact).
    pub sync_only: bool,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
}

fn setup<E: std::fmt::Display>(e: E) -> RunError {
    RunError::Setup(e.to_string())
}

fn resolve_users(config: &Config, opts: &MigrateOptions) -> Result<Vec<User>, RunError> {
    let users = directory::load(&config.users).map_err(setup)?;
    if opts.all_ready {
        let flipped = contacts::current(&config.routing).map_err(setup)?;
        return Ok(users
            .into_iter()
            .filter(|u| u.enabled && !flipped.contains(&u.address.to_ascii_lowercase()))
            .collect());
    }
    let mut out = Vec::new();
    for name in &opts.users {
        match directory::find(&users, name) {
            Some(u) => out.push(u.clone()),
            None => {
                return Err(RunError::Usage(format!(
                    "{name}: not in the directory {}",
                    config.users.display()
                )))
            }
        }
    }
    Ok(out)
}

/// `migrate` / `sync`: returns one report per user.
pub async fn migrate(config: &Config, opts: MigrateOptions) -> Result<Vec<UserReport>, RunError> {
    let users = resolve_users(config, &opts)?;
    contacts::check_route(&config.routing).map_err(setup)?;
    let filter = Filter {
        content: opts.content.unwrap_or(config.migration.content),
        calendar_folders: config.migration.calendar_folders.clone(),
        since: opts.since,
        before: opts.before,
    };
    let parallel = opts.parallel.unwrap_or(config.migration.parallel).max(1);

    // The review, before anything happens.
    let verb = if opts.sync_only { "sync" } else { "migrate" };
    let mut review = format!("review: {verb} {} user(s)", users.len());
    if opts.forwarding_only {
        review.push_str("; content: none (forwarding only)");
    } else {
        review.push_str(&format!("; content: {}", filter.content.names().join(", ")));
    }
    review.push_str("; dates: ");
    match (filter.since, filter.before) {
        (None, None) => review.push_str("all"),
        (since, before) => {
            let mut parts = Vec::new();
            if let Some(d) = since {
                parts.push(format!("since {d}"));
            }
            if let Some(d) = before {
                parts.push(format!("before {d}"));
            }
            review.push_str(&parts.join(" "));
        }
    }
    if parallel > 1 {
        review.push_str(&format!("; {parallel} at once"));
    }
    if opts.dry_run {
        review.push_str("; dry run: nothing is written");
    }
    println!("{review}");
    for u in &users {
        println!(
            "  {} -> {}{}",
            u.address,
            contacts::target_for(u, &config.routing),
            if u.enabled {
                ""
            } else {
                "  (disabled in the directory)"
            }
        );
    }

    // Served until this function returns: the whole run, final report included.
    let _endpoint = match config.metrics {
        Some(addr) => {
            let endpoint = crate::metrics::Endpoint::start(addr).await.map_err(|e| {
                RunError::Setup(format!("[metrics] bind {addr}: cannot listen: {e}"))
            })?;
            eprintln!("metrics: serving http://{}/metrics", endpoint.addr);
            Some(endpoint)
        }
        None => None,
    };
    metrics().users_queued(users.len());

    let config = Arc::new(config.clone());
    let opts = Arc::new(opts);
    let filter = Arc::new(filter);
    let progress = Progress::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, user) in users.into_iter().enumerate() {
        let (config, opts, filter, progress, permits) = (
            config.clone(),
            opts.clone(),
            filter.clone(),
            progress.clone(),
            permits.clone(),
        );
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (
                i,
                migrate_user(&config, &user, &opts, &filter, &progress).await,
            )
        });
    }
    let mut reports = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(r) => reports.push(r),
            Err(e) => return Err(RunError::Setup(format!("a user task crashed: {e}"))),
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<UserReport> = reports.into_iter().map(|(_, r)| r).collect();
    crate::report::print_final(&reports);
    if let Some(path) = &opts.report {
        crate::report::write_json(path, &reports).map_err(|e| {
            RunError::Setup(format!("{}: cannot write the report: {e}", path.display()))
        })?;
    }
    Ok(reports)
}

/// The login on one side for `user`.
fn login_for(template: &str, user: &User, target: &str) -> String {
    expand(template, &user.address, target)
}

struct Connections {
    src: Session,
    dst: Session,
}

async fn connect(
    config: &Config,
    user: &User,
    target: &str,
    insecure: bool,
) -> Result<Connections, String> {
    let src_login = login_for(&config.source.login, user, target);
    let dst_login = login_for(&config.target.login, user, target);
    let src = Session::connect(&config.source, &src_login, insecure)
        .await
        .map_err(|e| format!("source: {e}"))?;
    let dst = Session::connect(&config.target, &dst_login, insecure)
        .await
        .map_err(|e| format!("target: {e}"))?;
    Ok(Connections { src, dst })
}

/// Sizes and quota of one user, for the review, `ready` and the quota gate.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// Folders to copy.
    pub folders: Vec<FolderPlan>,
    /// Messages not yet on the target.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The destination's storage quota, when known.
    pub quota: Option<Quota>,
}

impl Measure {
    /// Whether the bytes fit in the free quota (unknown quota = fits).
    pub fn fits(&self) -> bool {
        self.quota.is_none_or(|q| self.bytes <= q.free())
    }
}

async fn measure(
    c: &mut Connections,
    user: &User,
    state: &UserState,
    filter: &Filter,
) -> Result<Measure, String> {
    let src_folders = c.src.list().await.map_err(|e| format!("source: {e}"))?;
    let dst_folders = c.dst.list().await.map_err(|e| format!("target: {e}"))?;
    let folders = copy::plan_folders(&src_folders, &dst_folders, filter);
    let mut m = Measure {
        folders,
        messages: 0,
        bytes: 0,
        quota: None,
    };
    for plan in &m.folders {
        let (n, b) = copy::measure(&mut c.src, plan, state.folders.get(&plan.source), filter)
            .await
            .map_err(|e| e.to_string())?;
        m.messages += n;
        m.bytes += b;
    }
    m.quota = match c.dst.quota().await.map_err(|e| format!("target: {e}"))? {
        Some(q) => Some(q),
        // The directory's quota when the server has no QUOTA extension; usage unknown.
        None => user.quota.map(|limit| Quota { usage: 0, limit }),
    };
    Ok(m)
}

fn quota_words(m: &Measure) -> String {
    match m.quota {
        Some(q) => format!(
            "target quota {} free of {}: {}",
            human_bytes(q.free()),
            human_bytes(q.limit),
            if m.fits() { "fits" } else { "DOES NOT FIT" }
        ),
        None => "target quota unknown".to_string(),
    }
}

struct StateSink<'a> {
    states: &'a StateDir,
    state: &'a mut UserState,
    progress: &'a UserProgress,
}

impl Sink for StateSink<'_> {
    fn save(&mut self, folder: &str, state: &FolderState) -> Result<(), CopyError> {
        self.state.folders.insert(folder.to_string(), state.clone());
        self.state.progress.0 = self.progress.done();
        self.states.save(self.state)?;
        Ok(())
    }

    fn progress(&mut self, messages: u64, bytes: u64) {
        self.progress.inc(messages, bytes);
    }
}

async fn migrate_user(
    config: &Config,
    user: &User,
    opts: &MigrateOptions,
    filter: &Filter,
    progress: &Progress,
) -> UserReport {
    let target = contacts::target_for(user, &config.routing);
    let mut report = UserReport {
        address: user.address.clone(),
        result: "ok".into(),
        error: None,
        target: Some(target.clone()),
        planned_messages: 0,
        planned_bytes: 0,
        quota_free: None,
        counters: Counters::default(),
        warnings: Vec::new(),
    };
    let states = StateDir::new(&config.migration.state_dir);
    // Another process on this user: say so, and leave its checkpoint alone.
    let _lock = if opts.dry_run {
        None
    } else {
        match states.lock(&user.address) {
            Ok(lock) => Some(lock),
            Err(e) => {
                progress.println(&format!("{}: failed: {e}", user.address));
                report.result = "failed".into();
                report.error = Some(e.to_string());
                metrics().error(ErrorKind::UserFailed);
                metrics().user_moves(Gauge::NotStarted, Gauge::Failed);
                return report;
            }
        }
    };
    let mut gauge = GaugeState(Gauge::NotStarted);
    let outcome = run_user(
        config,
        user,
        &target,
        opts,
        filter,
        progress,
        &states,
        &mut report,
        &mut gauge,
    )
    .await;
    if let Err(why) = outcome {
        metrics().error(ErrorKind::UserFailed);
        gauge.set(Gauge::Failed);
        progress.println(&format!("{}: failed: {why}", user.address));
        report.result = "failed".into();
        report.error = Some(why.clone());
        if !opts.dry_run {
            if let Ok(mut st) = states.load(&user.address) {
                st.phase = Phase::Failed;
                st.error = Some(why);
                let _ = states.save(&mut st);
            }
        }
    }
    report
}

/// Where one user is on the `coexist_migrator_users` gauge.
struct GaugeState(Gauge);

impl GaugeState {
    fn set(&mut self, next: Gauge) {
        metrics().user_moves(self.0, next);
        self.0 = next;
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_user(
    config: &Config,
    user: &User,
    target: &str,
    opts: &MigrateOptions,
    filter: &Filter,
    progress: &Progress,
    states: &StateDir,
    report: &mut UserReport,
    gauge: &mut GaugeState,
) -> Result<(), String> {
    if !user.enabled {
        return Err("disabled in the directory (synchronised accounts stay disabled until activated); enable it first".into());
    }
    let insecure = opts.allow_insecure || config.migration.allow_insecure;
    let mut st = states.load(&user.address).map_err(|e| e.to_string())?;
    st.address = user.address.clone();
    let mut c = connect(config, user, target, insecure).await?;

    let copying = !opts.forwarding_only;
    let measured = if copying {
        Some(measure(&mut c, user, &st, filter).await?)
    } else {
        None
    };
    if let Some(m) = &measured {
        report.planned_messages = m.messages;
        report.planned_bytes = m.bytes;
        report.quota_free = m.quota.map(|q| q.free());
        progress.println(&format!(
            "{}: {} message(s), {} in {} folder(s) to copy; {}",
            user.address,
            m.messages,
            human_bytes(m.bytes),
            m.folders.len(),
            quota_words(m)
        ));
        if !m.fits() {
            let q = m.quota.unwrap_or(Quota { usage: 0, limit: 0 });
            return Err(format!(
                "the mailbox needs {} but the target has {} free ({} of {} used); nothing was written — raise the target quota, or limit the copy with --since/--content",
                human_bytes(m.bytes),
                human_bytes(q.free()),
                human_bytes(q.usage),
                human_bytes(q.limit)
            ));
        }
    }
    if opts.dry_run {
        report.result = "dry-run".into();
        if !opts.sync_only {
            progress.println(&format!(
                "{}: would write the contact {} -> {target}",
                user.address, user.address
            ));
        }
        if let Some(m) = &measured {
            for f in &m.folders {
                progress.println(&format!(
                    "{}: would copy {} -> {}",
                    user.address, f.source, f.target
                ));
            }
        }
        return Ok(());
    }

    // Flip the mail flow: from here new mail goes to the cloud mailbox.
    let mut flipped_at = None;
    if !opts.sync_only {
        contacts::flip(&config.routing, user, target).map_err(|e| e.to_string())?;
        st.target = Some(target.to_string());
        st.error = None;
        if st.phase != Phase::Migrated {
            st.phase = Phase::Forwarding;
        }
        states.save(&mut st).map_err(|e| e.to_string())?;
        gauge.set(Gauge::ForwardingSet);
        progress.println(&format!(
            "{}: contact written; mail now flows to {target}",
            user.address
        ));
        flipped_at = Some(tokio::time::Instant::now());
    }
    if opts.forwarding_only {
        report.result = "forwarding-only".into();
        c.src.logout().await;
        c.dst.logout().await;
        return Ok(());
    }
    let m = measured.unwrap_or(Measure {
        folders: Vec::new(),
        messages: 0,
        bytes: 0,
        quota: None,
    });
    let was_migrated = st.phase == Phase::Migrated;
    st.phase = Phase::Copying;
    st.progress = (0, m.messages);
    st.error = None;
    states.save(&mut st).map_err(|e| e.to_string())?;
    gauge.set(Gauge::Copying);

    let bar = progress.user(&user.address, m.messages);
    // Pass 1 copies; pass 2 (the delta pass) picks up what arrived meanwhile.
    for pass in 0..2 {
        if pass == 1 {
            if let Some(flipped) = flipped_at {
                // The relay switches tables within 2 s of the rename (DESIGN.md), and
                // mail it routed on-premises just before may still be on its way: the
                // delta pass starts only once the source has stopped receiving.
                tokio::time::sleep_until(flipped + DELTA_SETTLE).await;
                wait_for_quiet_inbox(&mut c.src).await;
            }
        }
        for plan in &m.folders {
            copy_folder(
                config, user, target, insecure, &mut c, plan, &mut st, filter, states, &bar,
                report, progress,
            )
            .await
            .map_err(|e| format!("{}: {e}", plan.source))?;
            if pass == 0 {
                report.counters.folders += 1;
            }
        }
    }
    bar.finish();
    c.src.logout().await;
    c.dst.logout().await;

    st.totals.add(&report.counters);
    st.phase = if opts.sync_only && !was_migrated && st.target.is_none() {
        Phase::Copying
    } else {
        Phase::Migrated
    };
    st.progress.0 = bar.done();
    states.save(&mut st).map_err(|e| e.to_string())?;
    if st.phase == Phase::Migrated {
        gauge.set(Gauge::Migrated);
    }
    Ok(())
}

/// Time between writing the contact and the delta pass.
const DELTA_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (at most a minute) until the source INBOX stops growing: deliveries the relay
/// routed on-premises before the flip may still be arriving, and the delta pass must
/// come after the last of them.
async fn wait_for_quiet_inbox(src: &mut crate::imap::session::Session) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        let Ok(now) = src.open("INBOX", false).await.map(|s| s.exists) else {
            return;
        };
        if last == Some(now) {
            return;
        }
        last = Some(now);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn copy_folder(
    config: &Config,
    user: &User,
    target: &str,
    insecure: bool,
    c: &mut Connections,
    plan: &FolderPlan,
    st: &mut UserState,
    filter: &Filter,
    states: &StateDir,
    bar: &UserProgress,
    report: &mut UserReport,
    progress: &Progress,
) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        let mut folder_state = st.folders.get(&plan.source).cloned().unwrap_or_default();
        let mut sink = StateSink {
            states,
            state: st,
            progress: bar,
        };
        let copied = copy::sync_folder(
            &mut c.src,
            &mut c.dst,
            plan,
            &mut folder_state,
            filter,
            &mut sink,
            &mut report.warnings,
            &mut report.counters,
        )
        .await;
        match copied {
            Ok(()) => return Ok(()),
            Err(CopyError::Imap { side, source })
                if source.is_temporary() && attempt < RECONNECTS =>
            {
                attempt += 1;
                let kind = ErrorKind::of(&source);
                metrics().error(kind);
                if kind == ErrorKind::Throttled {
                    report.counters.throttled += 1;
                }
                let delay = Duration::from_secs(2u64.pow(attempt));
                progress.println(&format!(
                    "{}: {}: {side}: {source}; {}, reconnecting in {delay:?}",
                    user.address,
                    plan.source,
                    match kind {
                        ErrorKind::Throttled => "throttled",
                        _ => "connection lost",
                    }
                ));
                metrics().backoff_seconds.inc_by(delay.as_secs_f64());
                tokio::time::sleep(delay).await;
                *c = connect(config, user, target, insecure).await?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// One row of `ready`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyRow {
    /// The user.
    pub address: String,
    /// Display name.
    pub display_name: String,
    /// Messages at the source (all content).
    pub messages: u64,
    /// Bytes at the source.
    pub bytes: u64,
    /// Destination quota limit, bytes.
    pub quota_limit: Option<u64>,
    /// Destination quota free, bytes.
    pub quota_free: Option<u64>,
    /// Whether the mailbox fits.
    pub fits: Option<bool>,
    /// Why it could not be measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `ready`: enabled users without a contact, measured.
pub async fn ready(config: &Config, allow_insecure: bool) -> Result<Vec<ReadyRow>, RunError> {
    let opts = MigrateOptions {
        all_ready: true,
        ..MigrateOptions::default()
    };
    let users = resolve_users(config, &opts)?;
    let filter = Filter {
        content: config.migration.content,
        calendar_folders: config.migration.calendar_folders.clone(),
        ..Filter::default()
    };
    let insecure = allow_insecure || config.migration.allow_insecure;
    let mut rows = Vec::new();
    for user in users {
        let target = contacts::target_for(&user, &config.routing);
        let mut row = ReadyRow {
            address: user.address.clone(),
            display_name: user.display_name.clone(),
            messages: 0,
            bytes: 0,
            quota_limit: None,
            quota_free: None,
            fits: None,
            error: None,
        };
        let measured = async {
            let mut c = connect(config, &user, &target, insecure).await?;
            let m = measure(&mut c, &user, &UserState::default(), &filter).await?;
            c.src.logout().await;
            c.dst.logout().await;
            Ok::<_, String>(m)
        }
        .await;
        match measured {
            Ok(m) => {
                row.messages = m.messages;
                row.bytes = m.bytes;
                row.quota_limit = m.quota.map(|q| q.limit);
                row.quota_free = m.quota.map(|q| q.free());
                row.fits = Some(m.fits());
            }
            Err(e) => row.error = Some(e),
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Prints `ready` rows as a table.
pub fn print_ready(rows: &[ReadyRow]) {
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

/// One row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// The user.
    pub address: String,
    /// Phase in words.
    pub state: String,
    /// Whether the contact is in the table now.
    pub contact: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// (done, total) of the current copy.
    pub progress: (u64, u64),
    /// Totals over all runs.
    pub totals: Counters,
    /// Folders with a checkpoint.
    pub folders: usize,
    /// When the state was written.
    pub updated: String,
}

/// `status [USER]`.
pub fn status(config: &Config, only: Option<&str>) -> Result<Vec<StatusRow>, RunError> {
    let users = directory::load(&config.users).map_err(setup)?;
    let flipped = contacts::current(&config.routing).map_err(setup)?;
    let states = StateDir::new(&config.migration.state_dir)
        .all()
        .map_err(setup)?;
    let mut addresses: Vec<String> = users.iter().map(|u| u.address.clone()).collect();
    for st in states.values() {
        if directory::find(&users, &st.address).is_none() {
            addresses.push(st.address.clone());
        }
    }
    if let Some(one) = only {
        addresses.retain(|a| a.eq_ignore_ascii_case(one));
        if addresses.is_empty() {
            return Err(RunError::Usage(format!(
                "{one}: not in the directory nor in the state"
            )));
        }
    }
    Ok(addresses
        .into_iter()
        .map(|address| {
            let key = address.to_ascii_lowercase();
            let contact = flipped.contains(&key);
            let st = states.get(&key).cloned().unwrap_or_default();
            let phase = match st.phase {
                Phase::NotStarted if contact => Phase::Forwarding,
                p => p,
            };
            let state = match phase {
                Phase::Copying => format!("copying ({} of {})", st.progress.0, st.progress.1),
                Phase::Failed => format!("failed ({})", st.error.clone().unwrap_or_default()),
                p => p.describe().to_string(),
            };
            StatusRow {
                address,
                state,
                contact,
                error: st.error.clone(),
                progress: st.progress,
                totals: st.totals,
                folders: st.folders.len(),
                updated: st.updated.clone(),
            }
        })
        .collect())
}

/// Prints `status` rows.
pub fn print_status(rows: &[StatusRow]) {
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
    }
}

/// `rollback USER...`: removes each contact (the copied content stays).
/// Returns, per user, whether a contact was removed.
pub fn rollback(config: &Config, users: &[String]) -> Result<Vec<(String, bool)>, RunError> {
    let directory = directory::load(&config.users).map_err(setup)?;
    let states = StateDir::new(&config.migration.state_dir);
    let mut out = Vec::new();
    for name in users {
        let address = directory::find(&directory, name)
            .map(|u| u.address.clone())
            .unwrap_or_else(|| name.clone());
        let removed = contacts::unflip(&config.routing, &address).map_err(setup)?;
        let mut st = states.load(&address).map_err(setup)?;
        if removed || st.phase != Phase::NotStarted {
            st.phase = Phase::RolledBack;
            st.error = None;
            states.save(&mut st).map_err(setup)?;
        }
        out.push((address, removed));
    }
    Ok(out)
}

impl From<ImapError> for RunError {
    fn from(e: ImapError) -> Self {
        RunError::Setup(e.to_string())
    }
}
