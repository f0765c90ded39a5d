//! `migrate` and `sync`: the pipeline, per user, up to `parallel` users at once.
//!
//! Connect both sides (insecure connections refused before any credential is
//! sent), measure what is to copy and check it against the destination's free
//! quota ([`crate::plan`]: a user who does not fit fails here, before anything
//! is written), write the forwarding contact ([`crate::flip`]), copy every
//! folder and run the delta pass ([`crate::copy`]), record the user as
//! migrated. Each step works on the user's [`UserContext`].

use crate::config::{Config, Content};
use crate::context::{RunContext, UserContext, UserGauge};
use crate::copy::{self, FolderError};
use crate::directory::{Directory, DirectoryError, User};
use crate::flip::{self, FlipError};
use crate::imap::connect::Servers;
use crate::imap::SideError;
use crate::metrics::{metrics, ErrorKind, UserState as Gauge};
use crate::plan::{self, DoesNotFit, Filter, Measure};
use crate::print;
use crate::progress::Progress;
use crate::report::{human_bytes, Outcome, UserReport};
use crate::state::{Phase, StateDir, StateError};
use std::path::PathBuf;
use std::sync::Arc;

/// Errors that stop `migrate` / `sync` as a whole (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The directory or the contacts table could not be read, a named user is
    /// not in it, or the configured route is unknown to the relay.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// `--since` is not before `--before`.
    #[error("--since {since} is not before --before {before}: nothing would be copied")]
    EmptyDateRange {
        /// The first day.
        since: chrono::NaiveDate,
        /// The day after the last.
        before: chrono::NaiveDate,
    },
    /// `[metrics] bind` could not be listened on.
    #[error("[metrics] bind {addr}: cannot listen: {source}")]
    Metrics {
        /// The address configured.
        addr: std::net::SocketAddr,
        /// The system's error.
        source: std::io::Error,
    },
    /// `--report FILE.json` could not be written.
    #[error("{}: cannot write the report: {source}", path.display())]
    Report {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// An OAuth2 side's token endpoint refuses the client (`invalid_client`,
    /// `unauthorized_client`, `invalid_scope`), the secret file is unusable,
    /// or the endpoint is `http://` without `allow_insecure`.
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
    /// A user's task panicked.
    #[error("a user task crashed: {0}")]
    TaskCrashed(#[from] tokio::task::JoinError),
    /// `--content calendar`/`contacts` with a `dav_url` on one side only.
    #[error("--content {0}: [source] and [target] both need a dav_url for calendars and contacts over CalDAV/CardDAV; add the missing one, or leave {0} out")]
    DavOneSide(&'static str),
    /// The DAV servers cannot be used as configured (plain HTTP, the CA file).
    #[error(transparent)]
    Dav(#[from] crate::dav::DavError),
}

/// Why one user failed (the run goes on with the others).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The account is disabled in the directory.
    #[error("disabled in the directory (synchronised accounts stay disabled until activated); enable it first")]
    Disabled,
    /// The checkpoint could not be read or saved.
    #[error(transparent)]
    State(#[from] StateError),
    /// Connecting, logging in or measuring failed on one side.
    #[error(transparent)]
    Imap(#[from] SideError),
    /// The quota gate: nothing was written.
    #[error(transparent)]
    DoesNotFit(#[from] DoesNotFit),
    /// The contact could not be written.
    #[error(transparent)]
    Flip(#[from] FlipError),
    /// A folder could not be copied.
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// Calendars or address books could not be copied.
    #[error("calendars/contacts: {0}")]
    Dav(#[from] crate::dav::DavError),
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

/// `migrate` / `sync`: returns one report per user, in the order asked.
pub async fn migrate(config: &Config, opts: MigrateOptions) -> Result<Vec<UserReport>, RunError> {
    if let (Some(since), Some(before)) = (opts.since, opts.before) {
        if since >= before {
            return Err(RunError::EmptyDateRange { since, before });
        }
    }
    let directory = Directory::new(config);
    let users = if opts.all_ready {
        directory.ready()?
    } else {
        directory.named(&opts.users)?
    };
    directory.check_route()?;
    let content = opts.content.unwrap_or(config.migration.content);
    let insecure = opts.allow_insecure || config.migration.allow_insecure;
    // The IMAP servers first: DAV shares their OAuth2 token cache.
    let servers = Servers::new(config, insecure)?;
    let dav = crate::dav::Servers::new(config, insecure, &servers)?;
    if dav.is_none() && (config.source.dav.is_some() || config.target.dav.is_some()) {
        // The configuration refuses this for its own `content`; `--content`
        // can still ask for it.
        if content.calendar {
            return Err(RunError::DavOneSide("calendar"));
        }
        if content.contacts {
            return Err(RunError::DavOneSide("contacts"));
        }
    }
    let filter = Filter {
        content,
        calendar_folders: config.migration.calendar_folders.clone(),
        since: opts.since,
        before: opts.before,
        dav: dav.is_some(),
    };
    let parallel = opts.parallel.unwrap_or(config.migration.parallel).max(1);
    print::review(&print::Review {
        sync: opts.sync_only,
        forwarding_only: opts.forwarding_only,
        filter: &filter,
        parallel,
        dry_run: opts.dry_run,
        users: users.iter().map(|u| (u, directory.target_for(u))).collect(),
    });

    // Served until this function returns: the whole run, final report included.
    let _endpoint = match config.metrics {
        Some(addr) => {
            let endpoint = crate::metrics::Endpoint::start(addr)
                .await
                .map_err(|source| RunError::Metrics { addr, source })?;
            eprintln!("metrics: serving http://{}/metrics", endpoint.addr);
            Some(endpoint)
        }
        None => None,
    };
    metrics().users_queued(users.len());

    // One token per OAuth2 side for the whole run, fetched before any user
    // starts: a refused client stops the run here (exit 2), and an endpoint
    // that is down fails only the users that need it.
    if !users.is_empty() {
        if let Err(e) = servers.prefetch_tokens().await {
            if e.is_config() {
                return Err(e.into());
            }
            eprintln!("warning: {e}");
        }
    }
    let run = Arc::new(RunContext {
        directory,
        states: StateDir::new(&config.migration.state_dir),
        filter,
        progress: Progress::new(),
        connector: Box::new(servers),
        dav,
    });
    let reports = migrate_all(run, Arc::new(opts.clone()), users, parallel).await?;
    print::final_report(&reports);
    if let Some(path) = &opts.report {
        crate::report::write_json(path, &reports).map_err(|source| RunError::Report {
            path: path.clone(),
            source,
        })?;
    }
    Ok(reports)
}

/// Runs every user, `parallel` at once; the reports in the users' order.
async fn migrate_all(
    run: Arc<RunContext>,
    opts: Arc<MigrateOptions>,
    users: Vec<User>,
    parallel: usize,
) -> Result<Vec<UserReport>, RunError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, user) in users.into_iter().enumerate() {
        // The permit is taken here, not in the task: users start in the order
        // given, whichever worker thread a task lands on first.
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (run, opts) = (run.clone(), opts.clone());
        tasks.spawn(async move {
            let _permit = permit;
            (i, migrate_user(&run, &opts, &user).await)
        });
    }
    let mut reports = Vec::new();
    while let Some(done) = tasks.join_next().await {
        reports.push(done?);
    }
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

/// One user, start to end; a failure is in the report, not an error.
async fn migrate_user(run: &RunContext, opts: &MigrateOptions, user: &User) -> UserReport {
    let target = run.directory.target_for(user);
    let mut report = UserReport::new(&user.address, &target);
    // Another process on this user: say so, and leave its checkpoint alone.
    let _lock = if opts.dry_run {
        None
    } else {
        match run.states.lock(&user.address) {
            Ok(lock) => Some(lock),
            Err(e) => {
                run.progress
                    .println(&format!("{}: failed: {e}", user.address));
                report.result = Outcome::Failed;
                report.error = Some(e.to_string());
                metrics().error(ErrorKind::UserFailed);
                metrics().user_moves(Gauge::NotStarted, Gauge::Failed);
                return report;
            }
        }
    };
    let mut gauge = UserGauge::default();
    let outcome = async {
        if !user.enabled {
            return Err(UserError::Disabled);
        }
        let mut state = run.states.load(&user.address)?;
        state.address = user.address.clone();
        let mut ctx = UserContext {
            run,
            user,
            target,
            state,
            report: &mut report,
            gauge: &mut gauge,
        };
        migrate_one(&mut ctx, opts).await
    }
    .await;
    if let Err(why) = outcome {
        metrics().error(ErrorKind::UserFailed);
        gauge.set(Gauge::Failed);
        run.progress
            .println(&format!("{}: failed: {why}", user.address));
        report.result = Outcome::Failed;
        report.error = Some(why.to_string());
        if !opts.dry_run {
            // The checkpoint on disk, not the one in memory: what the copy
            // confirmed is saved there, and a half-done step is not.
            if let Ok(mut st) = run.states.load(&user.address) {
                st.phase = Phase::Failed;
                st.error = Some(why.to_string());
                let _ = run.states.save(&mut st);
            }
        }
    }
    report
}

/// The pipeline for one enabled user: plan, gate, flip, copy, done.
async fn migrate_one(ctx: &mut UserContext<'_>, opts: &MigrateOptions) -> Result<(), UserError> {
    let mut conns = ctx.connect().await?;
    let measured = if opts.forwarding_only {
        None
    } else {
        Some(plan_and_gate(ctx, &mut conns).await?)
    };
    if opts.dry_run {
        ctx.report.result = Outcome::DryRun;
        if !opts.sync_only {
            ctx.say(format_args!(
                "would write the contact {} -> {}",
                ctx.user.address, ctx.target
            ));
        }
        for f in measured.iter().flat_map(|m| &m.folders) {
            ctx.say(format_args!("would copy {} -> {}", f.source, f.target));
        }
        if ctx.run.dav.is_some() && ctx.run.filter.content.wants_dav() {
            ctx.say("would copy calendars and contacts over CalDAV/CardDAV");
        }
        return Ok(());
    }

    // Flip the mail flow: from here new mail goes to the cloud mailbox.
    let mut flipped_at = None;
    if !opts.sync_only {
        flip::write_contact(ctx)?;
        flipped_at = Some(tokio::time::Instant::now());
    }
    if opts.forwarding_only {
        ctx.report.result = Outcome::ForwardingOnly;
        conns.logout().await;
        return Ok(());
    }
    copy_and_finish(ctx, conns, measured.unwrap_or_default(), opts, flipped_at).await
}

/// Measures what is left to copy, says so, and applies the quota gate.
async fn plan_and_gate(
    ctx: &mut UserContext<'_>,
    conns: &mut crate::imap::Connections,
) -> Result<Measure, UserError> {
    let mut m = plan::measure(conns, &ctx.state, &ctx.run.filter, ctx.user.quota).await?;
    if let (Some(servers), true) = (&ctx.run.dav, ctx.run.filter.content.wants_dav()) {
        // Calendars and contacts count with the mail (`DavMeasure::add_to`).
        let dav = crate::dav::measure::measure(
            servers,
            &ctx.user.address,
            &ctx.target,
            ctx.run.filter.content,
            &ctx.state.dav,
        )
        .await?;
        dav.add_to(&mut m);
    }
    ctx.report.planned_messages = m.messages;
    ctx.report.planned_bytes = m.bytes;
    ctx.report.quota_free = m.quota.map(|q| q.free());
    ctx.say(format_args!(
        "{} message(s), {} in {} folder(s) to copy; {}",
        m.messages,
        human_bytes(m.bytes),
        m.folders.len(),
        m.quota_words()
    ));
    plan::gate(&m)?;
    Ok(m)
}

/// The copy with its delta pass, then the user's final phase.
async fn copy_and_finish(
    ctx: &mut UserContext<'_>,
    mut conns: crate::imap::Connections,
    m: Measure,
    opts: &MigrateOptions,
    flipped_at: Option<tokio::time::Instant>,
) -> Result<(), UserError> {
    let was_migrated = ctx.state.phase == Phase::Migrated;
    ctx.state.phase = Phase::Copying;
    ctx.state.progress = (0, m.messages);
    ctx.state.error = None;
    ctx.save()?;
    ctx.gauge.set(Gauge::Copying);

    let bar = ctx
        .run
        .progress
        .user(&ctx.user.address, m.messages, m.bytes);
    copy::copy_user(ctx, &mut conns, &m.folders, &bar, flipped_at).await?;
    bar.finish();
    conns.logout().await;
    let run = ctx.run;
    if let Some(servers) = &run.dav {
        if run.filter.content.wants_dav() {
            crate::dav::copy_user(ctx, servers).await?;
        }
    }

    let counters = ctx.report.counters;
    ctx.state.totals.add(&counters);
    for (kind, c) in &ctx.report.content {
        let c = &c.counters;
        let done = crate::state::ContentCounters {
            copied: c.copied + c.updated,
            skipped: c.skipped,
            refused: c.refused,
            throttled: c.throttled,
            bytes: c.bytes,
            duration_ms: c.duration_ms,
        };
        ctx.state
            .content
            .entry(kind.to_string())
            .or_default()
            .add(&done);
    }
    // A `sync` of a user never flipped stays "copying": migrated means the
    // mail flows to the target too.
    ctx.state.phase = if opts.sync_only && !was_migrated && ctx.state.target.is_none() {
        Phase::Copying
    } else {
        Phase::Migrated
    };
    ctx.state.progress.0 = bar.done();
    ctx.save()?;
    if ctx.state.phase == Phase::Migrated {
        ctx.gauge.set(Gauge::Migrated);
    }
    Ok(())
}
