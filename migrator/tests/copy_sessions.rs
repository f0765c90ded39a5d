//! The middle test level: the mail copy against scripted IMAP servers over
//! in-memory streams (`tests/scripted`). Each test sets up the source and the
//! target as the copy will find them, runs it, and asserts what it did: which
//! messages were appended (and how often), what the checkpoint said and when,
//! and how long it backed off. The clock is tokio's paused clock, so the
//! back-offs cost no wall time and are measured exactly.

mod scripted;

use migrator::config::{Compress, Config, Side};
use migrator::context::{RunContext, UserContext, UserGauge};
use migrator::copy::mail::{sync_folder, CopyError, Sink};
use migrator::directory::{Directory, User};
use migrator::imap::connect::{Connector, Opening};
use migrator::imap::{Compression, Connections, ImapError, Session, SideError};
use migrator::plan::{Filter, FolderPlan};
use migrator::progress::Progress;
use migrator::report::UserReport;
use migrator::state::{FolderState, StateDir, StateError, UidSet};
use scripted::{mail, Answer, Entry, Faults, Journal, Server};
use std::time::Duration;

const DATE: &str = "15-Jun-2021 08:30:00 +0200";

/// The UIDs of a set, as the checkpoint file lists them.
fn uids(set: &UidSet) -> Vec<u32> {
    let ranges: Vec<(u32, u32)> =
        serde_json::from_value(serde_json::to_value(set).unwrap()).unwrap();
    ranges.into_iter().flat_map(|(a, b)| a..=b).collect()
}

/// A checkpoint sink that writes each save into the journal.
struct Recorder(Journal);

impl Sink for Recorder {
    fn save(&mut self, _folder: &str, state: &FolderState) -> Result<(), StateError> {
        self.0.push(Entry::Saved {
            copied: uids(&state.copied),
            pending: state.pending.clone(),
        });
        Ok(())
    }

    fn progress(&mut self, _messages: u64, _bytes: u64) {}
}

/// A source and a target server sharing one journal.
struct Pair {
    journal: Journal,
    source: Server,
    target: Server,
}

impl Pair {
    fn new() -> Pair {
        let journal = Journal::default();
        Pair {
            source: Server::new("source", &journal),
            target: Server::new("target", &journal),
            journal,
        }
    }

    /// `n` messages `m1`..`mn` with Message-IDs in the source INBOX.
    fn seed(&self, n: usize) {
        for i in 1..=n {
            let flags: &[&str] = if i % 2 == 0 { &["\\Seen"] } else { &[] };
            self.source.add(
                "INBOX",
                flags,
                DATE,
                mail(&format!("m{i}"), Some(&format!("m{i}@x"))),
            );
        }
    }

    async fn connect(&self) -> Connections {
        Connections {
            src: Session::over(self.source.connect(), "source scripted")
                .await
                .unwrap(),
            dst: Session::over(self.target.connect(), "target scripted")
                .await
                .unwrap(),
        }
    }

    /// Both sessions after `COMPRESS DEFLATE` where the server offers it.
    async fn connect_compressed(&self) -> Connections {
        let Connections { src, dst } = self.connect().await;
        Connections {
            src: src.compress(Compress::Always).await.unwrap(),
            dst: dst.compress(Compress::Always).await.unwrap(),
        }
    }

    /// One `sync_folder` of INBOX on new sessions.
    async fn copy_inbox(
        &self,
        state: &mut FolderState,
        report: &mut UserReport,
    ) -> Result<(), CopyError> {
        let conns = self.connect().await;
        self.copy_inbox_over(conns, state, report).await
    }

    /// One `sync_folder` of INBOX over `conns`.
    async fn copy_inbox_over(
        &self,
        mut conns: Connections,
        state: &mut FolderState,
        report: &mut UserReport,
    ) -> Result<(), CopyError> {
        let plan = inbox();
        let mut sink = Recorder(self.journal.clone());
        sync_folder(
            &mut conns,
            &plan,
            &Filter::default(),
            state,
            &mut sink,
            report,
        )
        .await
    }

    fn saves(&self) -> Vec<(Vec<u32>, Vec<u32>)> {
        self.journal
            .entries()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Saved { copied, pending } => Some((copied, pending)),
                _ => None,
            })
            .collect()
    }

    fn header_lookups(&self, server: &str) -> Vec<Vec<u32>> {
        self.journal
            .entries()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Headers { server: s, uids } if s == server => Some(uids),
                _ => None,
            })
            .collect()
    }
}

fn inbox() -> FolderPlan {
    FolderPlan {
        source: "INBOX".into(),
        target: "INBOX".into(),
        calendar: false,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn stored(subjects: &[&str]) -> Vec<(String, Answer)> {
    subjects
        .iter()
        .map(|s| (s.to_string(), Answer::Stored))
        .collect()
}

fn report() -> UserReport {
    UserReport::new("alice@corp.example", "alice@tenant.example")
}

#[tokio::test(start_paused = true)]
async fn a_folder_is_copied_with_its_flags_and_dates_and_the_window_is_pending_first() {
    let p = Pair::new();
    p.seed(5);
    let mut state = FolderState::default();
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();

    assert_eq!(
        p.target.subjects("INBOX"),
        names(&["m1", "m2", "m3", "m4", "m5"])
    );
    for (src, dst) in p
        .source
        .messages("INBOX")
        .iter()
        .zip(p.target.messages("INBOX"))
    {
        assert_eq!((&src.flags, &src.body), (&dst.flags, &dst.body));
        assert_eq!(dst.date, DATE);
    }
    assert_eq!(uids(&state.copied), [1, 2, 3, 4, 5]);
    assert!(state.pending.is_empty());
    assert_eq!(state.uid_validity, 1);
    assert_eq!((r.counters.copied, r.counters.skipped), (5, 0));

    // The window is written down as pending before its first APPEND is sent,
    // and the end of the folder is saved with every UID copied.
    let entries = p.journal.entries();
    let window = entries
        .iter()
        .position(|e| matches!(e, Entry::Saved { pending, .. } if pending.len() == 5))
        .expect("the window was saved as pending");
    let first_append = entries
        .iter()
        .position(|e| matches!(e, Entry::Append { .. }))
        .unwrap();
    assert!(window < first_append, "{entries:#?}");
    assert_eq!(p.saves().last().unwrap(), &(vec![1, 2, 3, 4, 5], vec![]));
}

#[tokio::test(start_paused = true)]
async fn a_resumed_folder_sends_only_what_the_checkpoint_does_not_vouch_for() {
    let p = Pair::new();
    p.seed(5);
    let mut state = FolderState::default();
    p.copy_inbox(&mut state, &mut report()).await.unwrap();
    p.source.add("INBOX", &[], DATE, mail("m6", Some("m6@x")));

    // A second run (the delta pass, or a `sync`): m6 only, and nothing looked up.
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();
    assert_eq!(
        p.journal.appends("target"),
        stored(&["m1", "m2", "m3", "m4", "m5", "m6"])
    );
    assert!(p.header_lookups("target").is_empty());
    assert_eq!((r.counters.copied, r.counters.skipped), (1, 0));
    assert_eq!(uids(&state.copied), [1, 2, 3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn pending_messages_are_looked_up_on_the_target_not_sent_again() {
    // The state a kill leaves: m1 confirmed; m2..m4 sent as one window, of
    // which the target stored m2 and m3 before the process died.
    let p = Pair::new();
    p.seed(5);
    for i in 1..=3 {
        p.target.add(
            "INBOX",
            &[],
            DATE,
            mail(&format!("m{i}"), Some(&format!("m{i}@x"))),
        );
    }
    let mut state = FolderState {
        target: "INBOX".into(),
        uid_validity: 1,
        pending: vec![2, 3, 4],
        ..FolderState::default()
    };
    state.copied.insert(1);
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();

    assert_eq!(p.journal.appends("target"), stored(&["m4", "m5"]));
    assert_eq!(
        p.header_lookups("source"),
        [vec![2, 3, 4]],
        "only the pending ones"
    );
    assert_eq!((r.counters.copied, r.counters.skipped), (2, 2));
    assert_eq!(uids(&state.copied), [1, 2, 3, 4, 5]);
    assert_eq!(
        p.target.subjects("INBOX"),
        names(&["m1", "m2", "m3", "m4", "m5"])
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_checkpoint_messages_are_matched_by_message_id_or_header_hash() {
    let p = Pair::new();
    // Two copies of a at the source, one at the target: one more is copied.
    // b has no Message-ID: matched by the hash of its header block.
    for (subject, id) in [
        ("a", Some("a@x")),
        ("a", Some("a@x")),
        ("b", None),
        ("c", Some("c@x")),
    ] {
        p.source.add("INBOX", &[], DATE, mail(subject, id));
    }
    p.target.add("INBOX", &[], DATE, mail("a", Some("a@x")));
    p.target.add("INBOX", &[], DATE, mail("b", None));
    let mut state = FolderState::default();
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();

    assert_eq!(p.journal.appends("target"), stored(&["a", "c"]));
    assert_eq!((r.counters.copied, r.counters.skipped), (2, 2));
    assert_eq!(p.target.subjects("INBOX"), names(&["a", "b", "a", "c"]));
    assert_eq!(uids(&state.copied), [1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_new_uidvalidity_makes_the_checkpoint_worthless_and_matching_takes_over() {
    let p = Pair::new();
    p.source.folder("INBOX", 9); // renumbered since the checkpoint was written
    p.seed(3);
    p.target.add("INBOX", &[], DATE, mail("m1", Some("m1@x")));
    // The old checkpoint says UIDs 1..3 of UIDVALIDITY 1 are on the target.
    let mut state = FolderState {
        target: "INBOX".into(),
        uid_validity: 1,
        ..FolderState::default()
    };
    for uid in 1..=3 {
        state.copied.insert(uid);
    }
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();

    assert_eq!(p.journal.appends("target"), stored(&["m2", "m3"]));
    assert_eq!(state.uid_validity, 9);
    assert_eq!((r.counters.copied, r.counters.skipped), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn throttled_appends_are_backed_off_1s_then_2s_and_not_failed() {
    let p = Pair::new();
    p.seed(3);
    // Round 1: all three throttled; round 2: the first throttled again.
    p.target.faults(Faults {
        throttle_first: 4,
        ..Faults::default()
    });
    let mut state = FolderState::default();
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();

    let appends: Vec<(String, Answer, tokio::time::Instant)> = p
        .journal
        .entries()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Append {
                subject,
                answer,
                at,
                ..
            } => Some((subject, answer, at)),
            _ => None,
        })
        .collect();
    let answers: Vec<(&str, Answer)> = appends.iter().map(|(s, a, _)| (s.as_str(), *a)).collect();
    use Answer::*;
    assert_eq!(
        answers,
        [
            ("m1", Throttled),
            ("m2", Throttled),
            ("m3", Throttled),
            ("m1", Throttled),
            ("m2", Stored),
            ("m3", Stored),
            ("m1", Stored),
        ]
    );
    let gap = |a: usize, b: usize| appends[b].2 - appends[a].2;
    assert!(gap(0, 3) >= Duration::from_secs(1), "{:?}", gap(0, 3));
    assert!(gap(0, 3) < Duration::from_secs(2), "{:?}", gap(0, 3));
    assert!(gap(3, 6) >= Duration::from_secs(2), "{:?}", gap(3, 6));
    assert_eq!(
        (r.counters.copied, r.counters.throttled, r.counters.failed),
        (3, 4, 0)
    );
    assert!(r.warnings.is_empty());
    assert_eq!(p.target.subjects("INBOX"), names(&["m2", "m3", "m1"]));
}

#[tokio::test(start_paused = true)]
async fn a_limit_when_a_later_append_got_through_is_the_message_and_refused_at_once() {
    let p = Pair::new();
    p.seed(3);
    p.target.faults(Faults {
        limit_subject: Some("m2".into()),
        ..Faults::default()
    });
    let mut state = FolderState::default();
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();

    use Answer::*;
    assert_eq!(
        p.journal.appends("target"),
        [
            ("m1".to_string(), Stored),
            ("m2".to_string(), Limit),
            ("m3".to_string(), Stored)
        ],
        "m2 is not sent again"
    );
    assert_eq!(
        (r.counters.copied, r.counters.failed, r.counters.throttled),
        (2, 1, 0)
    );
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(
        (r.warnings[0].folder.as_str(), r.warnings[0].uid),
        ("INBOX", 2)
    );
    assert!(r.warnings[0].reason.contains("[LIMIT]"), "{:?}", r.warnings);
    // Refused in this run: a second pass does not send it either.
    p.copy_inbox(&mut state, &mut r).await.unwrap();
    assert_eq!(p.journal.appends("target").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_bye_mid_batch_leaves_the_window_pending_and_the_resume_copies_each_message_once() {
    let p = Pair::new();
    p.seed(5);
    // m1 and m2 are answered OK, m3 is stored but answered with BYE.
    p.target.faults(Faults {
        bye_at_append: Some(3),
        ..Faults::default()
    });
    let mut state = FolderState::default();
    let err = p.copy_inbox(&mut state, &mut report()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            CopyError::Imap(SideError {
                side: Side::Target,
                source: ImapError::Bye(_)
            })
        ),
        "{err}"
    );
    assert!(err.is_temporary());
    // The OKs of the batch were not all read: nothing is recorded as copied,
    // and the whole window is still pending.
    assert_eq!(p.saves().last().unwrap(), &(vec![], vec![1, 2, 3, 4, 5]));

    p.target.faults(Faults::default());
    let mut r = report();
    p.copy_inbox(&mut state, &mut r).await.unwrap();
    assert_eq!(
        p.target.subjects("INBOX"),
        names(&["m1", "m2", "m3", "m4", "m5"]),
        "each message once"
    );
    assert_eq!((r.counters.copied, r.counters.skipped), (2, 3));
    assert_eq!(uids(&state.copied), [1, 2, 3, 4, 5]);
    assert!(state.pending.is_empty());
}

/// Mail big enough that a FETCH answer, inflated, is many times the
/// transport's 64 KiB read.
fn long_mail(i: usize) -> Vec<u8> {
    let mut m = mail(&format!("m{i}"), Some(&format!("m{i}@x")));
    for line in 0..400 {
        m.extend(
            format!("line {line} of message {i}: the quarterly figures, again\r\n").as_bytes(),
        );
    }
    m
}

#[tokio::test(start_paused = true)]
async fn a_folder_is_copied_over_compressed_sessions_byte_for_byte() {
    let p = Pair::new();
    p.source.offer_compress();
    p.target.offer_compress();
    for i in 1..=150 {
        p.source.add("INBOX", &["\\Seen"], DATE, long_mail(i));
    }
    let conns = p.connect_compressed().await;
    assert_eq!(conns.src.compression(), &Compression::On);
    assert_eq!(conns.dst.compression(), &Compression::On);
    let mut state = FolderState::default();
    let mut r = report();
    p.copy_inbox_over(conns, &mut state, &mut r).await.unwrap();
    assert_eq!(
        (
            p.source.compressed_sessions(),
            p.target.compressed_sessions()
        ),
        (1, 1)
    );
    // The target could only store what it inflated from our APPENDs, and we
    // could only append what we inflated from the source's FETCH answers.
    let (src, dst) = (p.source.messages("INBOX"), p.target.messages("INBOX"));
    assert_eq!(dst.len(), 150);
    for (s, d) in src.iter().zip(&dst) {
        assert!(s.body == d.body && s.flags == d.flags, "uid {}", s.uid);
    }
    assert_eq!(r.counters.copied, 150);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_hangs_up_mid_compressed_answer_is_a_closed_connection() {
    let p = Pair::new();
    p.source.offer_compress();
    for i in 1..=20 {
        p.source.add("INBOX", &[], DATE, long_mail(i));
    }
    p.source.faults(Faults {
        hang_up_mid_fetch: true,
        ..Faults::default()
    });
    let mut src = p.connect_compressed().await.src;
    src.open("INBOX", false).await.unwrap();
    let uids: Vec<u32> = (1..=20).collect();
    // Paused clock: a hang would run into the response timeout instead.
    match src.messages(&uids).await {
        Err(ImapError::Io(text)) => assert_eq!(text, "connection closed by the server"),
        other => panic!("{:?}", other.map(|m| m.len())),
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_or_absent_compress_leaves_the_session_plain_and_working() {
    let p = Pair::new();
    p.seed(3);
    // The target does not offer it; the source offers it, then says NO.
    p.source.offer_compress();
    p.source.faults(Faults {
        refuse_compress: true,
        ..Faults::default()
    });
    let conns = p.connect_compressed().await;
    assert!(
        matches!(conns.src.compression(), Compression::Refused(t) if t.contains("COMPRESSIONACTIVE")),
        "{:?}",
        conns.src.compression()
    );
    assert_eq!(conns.dst.compression(), &Compression::NotOffered);
    assert!(conns.dst.compression().disappoints(Compress::Always));
    let mut state = FolderState::default();
    p.copy_inbox_over(conns, &mut state, &mut report())
        .await
        .unwrap();
    assert_eq!(p.target.subjects("INBOX"), names(&["m1", "m2", "m3"]));
    assert_eq!(
        (
            p.source.compressed_sessions(),
            p.target.compressed_sessions()
        ),
        (0, 0)
    );
}

/// New sessions on the scripted servers, for the copy's reconnects.
struct Scripted {
    source: Server,
    target: Server,
}

impl Connector for Scripted {
    fn open<'a>(&'a self, _address: &'a str, _target: &'a str) -> Opening<'a> {
        Box::pin(async move {
            let src = Session::over(self.source.connect(), "source scripted")
                .await
                .map_err(SideError::on(Side::Source))?;
            let dst = Session::over(self.target.connect(), "target scripted")
                .await
                .map_err(SideError::on(Side::Target))?;
            Ok(Connections { src, dst })
        })
    }
}

const CONFIG: &str = r#"
[routing]
contacts = "contacts"
target_template = "{local}@tenant.example"
[source]
url = "imaps://127.0.0.1:1"
auth = "master"
master_user = "admin"
password_file = "secret"
[target]
url = "imaps://127.0.0.1:2"
auth = "master"
master_user = "admin"
password_file = "secret"
"#;

#[tokio::test(start_paused = true)]
async fn after_a_bye_the_copy_reconnects_after_2s_and_resumes_the_folder() {
    let p = Pair::new();
    p.seed(5);
    p.target.faults(Faults {
        bye_at_append: Some(3),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_str(CONFIG, &dir.path().join("migrator.toml")).unwrap();
    let pair = &p;
    let run = RunContext {
        directory: Directory::new(&config),
        states: StateDir::new(dir.path()),
        filter: Filter::default(),
        progress: Progress::new(),
        connector: Box::new(Scripted {
            source: p.source.clone(),
            target: p.target.clone(),
        }),
        dav: None,
    };
    let user = User {
        address: "alice@corp.example".into(),
        display_name: "Alice".into(),
        target: None,
        quota: None,
        enabled: true,
    };
    let mut r = report();
    let mut gauge = UserGauge::default();
    let mut ctx = UserContext {
        run: &run,
        user: &user,
        target: "alice@tenant.example".into(),
        state: StateDir::new(dir.path()).load(&user.address).unwrap(),
        report: &mut r,
        gauge: &mut gauge,
    };
    let mut conns = ctx.connect().await.unwrap();
    let bar = run.progress.user(&user.address, 5, 0);
    migrator::copy::copy_user(&mut ctx, &mut conns, &[inbox()], &bar, None)
        .await
        .unwrap();

    assert_eq!(
        pair.target.subjects("INBOX"),
        names(&["m1", "m2", "m3", "m4", "m5"]),
        "each message once"
    );
    let entries = pair.journal.entries();
    let bye_at = entries
        .iter()
        .find_map(|e| match e {
            Entry::Append {
                answer: Answer::StoredThenBye,
                at,
                ..
            } => Some(*at),
            _ => None,
        })
        .unwrap();
    let reconnects: Vec<tokio::time::Instant> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Connected {
                server: "target",
                at,
            } if *at > bye_at => Some(*at),
            _ => None,
        })
        .collect();
    assert_eq!(reconnects.len(), 1, "{entries:#?}");
    let waited = reconnects[0] - bye_at;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(ctx.report.counters.throttled, 1);
    assert_eq!(ctx.report.counters.copied + ctx.report.counters.skipped, 5);
    assert_eq!(ctx.report.counters.folders, 1);
    // The checkpoint on disk agrees.
    let saved = StateDir::new(dir.path()).load(&user.address).unwrap();
    assert_eq!(uids(&saved.folders["INBOX"].copied), [1, 2, 3, 4, 5]);
}
