//! End-to-end (issue 13): calendars and contacts over CalDAV/CardDAV between
//! two real Radicale instances on loopback (HTTPS with a CA made per test,
//! htpasswd users, a rights file giving `admin` access to every user's
//! collections), beside the two Dovecots that carry the mail. Both sides are
//! seeded and read back with `tests/py/dav.py`, a client independent of the
//! migrator, and compared by UID and content.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa};
use coexist_e2e::migrator_config::MigratorConfig;
use coexist_e2e::radicale::Radicale;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ALICE: &str = "alice@corp.example";
const ALICE_CLOUD: &str = "alice@tenant.cloud.example";
const SRC_HOME: &str = "/alice@corp.example/";
const DST_HOME: &str = "/alice@tenant.cloud.example/";

/// A calendar object with one VEVENT.
fn event(uid: &str, start: &str, summary: &str, extra: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20250101T080000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\n{extra}\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\n\
TZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n\
END:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n\
DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

/// A weekly series in Europe/Berlin with one moved instance, as one object.
fn weekly(summary: &str, sequence: u32) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//test//EN\r\n{BERLIN}\
         BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20250101T080000Z\r\nSEQUENCE:{sequence}\r\n\
         DTSTART;TZID=Europe/Berlin:20250106T090000\r\nDTEND;TZID=Europe/Berlin:20250106T093000\r\n\
         RRULE:FREQ=WEEKLY;COUNT=20\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20250101T080000Z\r\n\
         RECURRENCE-ID;TZID=Europe/Berlin:20250113T090000\r\n\
         DTSTART;TZID=Europe/Berlin:20250113T110000\r\nDTEND;TZID=Europe/Berlin:20250113T113000\r\n\
         SUMMARY:{summary} (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn todo(uid: &str, due: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//test//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n\
         DTSTAMP:20250101T080000Z\r\nDUE;VALUE=DATE:{due}\r\nSUMMARY:file the report\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

/// A vCard 3.0 with an inline JPEG-ish photo (base64, folded).
fn vcard(uid: &str, name: &str) -> String {
    let photo: String = (0..600u32)
        .map(|i| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(i * 7 % 64) as usize],
            )
        })
        .collect();
    let mut folded = String::new();
    for (i, c) in format!("PHOTO;ENCODING=b;TYPE=JPEG:/9j/{photo}")
        .chars()
        .enumerate()
    {
        if i > 0 && i % 74 == 0 {
            folded.push_str("\r\n ");
        }
        folded.push(c);
    }
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n\
         EMAIL;TYPE=INTERNET:{uid}@example.net\r\n{folded}\r\nEND:VCARD\r\n"
    )
}

struct Setup {
    _ca: TestCa,
    _source_imap: Dovecot,
    _target_imap: Dovecot,
    source: Radicale,
    target: Radicale,
    dir: tempfile::TempDir,
}

fn start() -> Setup {
    start_with("", true)
}

/// [`start`] with more `[server]` settings for the target Radicale;
/// `seed_target`: the target user already has a "Work" calendar (else the
/// target has never seen the user: no home).
fn start_with(target_server: &str, seed_target: bool) -> Setup {
    let ca = TestCa::new();
    let dovecot = |name, user| {
        Dovecot::start(
            DovecotSetup {
                name,
                users: vec![(user, "pw")],
                quota: None,
                max_mail_size: None,
                tls: true,
            },
            &ca,
        )
    };
    let source_imap = dovecot("source", ALICE);
    let target_imap = dovecot("target", ALICE_CLOUD);
    let source = Radicale::start("source", &[(ALICE, "pw")], &ca);
    let target = Radicale::start_with("target", &[(ALICE_CLOUD, "pw")], &ca, target_server);
    let dir = tempfile::tempdir().unwrap();
    let s = Setup {
        _ca: ca,
        _source_imap: source_imap,
        _target_imap: target_imap,
        source,
        target,
        dir,
    };
    s.seed(seed_target);
    s.write_config();
    s
}

impl Setup {
    fn seed(&self, seed_target: bool) {
        let (src, d) = (&self.source, self.dir.path());
        src.must(
            ALICE,
            "pw",
            &["mkcalendar", "/alice@corp.example/work/", "Work"],
        );
        src.must(
            ALICE,
            "pw",
            &[
                "mkcalendar",
                "/alice@corp.example/tasks/",
                "Tasks",
                "#00ff00ff",
                "Things to do",
            ],
        );
        src.must(
            ALICE,
            "pw",
            &["mkaddressbook", "/alice@corp.example/contacts/", "Contacts"],
        );
        let work = "/alice@corp.example/work/";
        src.put(
            ALICE,
            "pw",
            &format!("{work}single.ics"),
            &event("single-1", "20250310T090000Z", "dentist", ""),
            d,
        );
        src.put(
            ALICE,
            "pw",
            &format!("{work}weekly.ics"),
            &weekly("standup", 0),
            d,
        );
        src.put(
            ALICE,
            "pw",
            &format!("{work}old.ics"),
            &event("old-2015", "20150601T120000Z", "ancient lunch", ""),
            d,
        );
        src.put(
            ALICE,
            "pw",
            &format!("{work}organizer.ics"),
            &event(
                "org-1",
                "20250402T150000Z",
                "review with a partner",
                "ORGANIZER;CN=Alice:mailto:alice@corp.example\r\nATTENDEE;CN=Pat;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:pat@partner.example\r\n",
            ),
            d,
        );
        src.put(
            ALICE,
            "pw",
            &format!("{work}attendee.ics"),
            &event(
                "att-1",
                "20250405T100000Z",
                "partner's workshop",
                "ORGANIZER;CN=Pat:mailto:pat@partner.example\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@corp.example\r\n",
            ),
            d,
        );
        src.put(
            ALICE,
            "pw",
            "/alice@corp.example/tasks/todo.ics",
            &todo("todo-1", "20250601"),
            d,
        );
        for (uid, name) in [("c1", "Carol"), ("c2", "Dan"), ("c3", "Erin")] {
            src.put(
                ALICE,
                "pw",
                &format!("/alice@corp.example/contacts/{uid}.vcf"),
                &vcard(uid, name),
                d,
            );
        }
        if !seed_target {
            return;
        }
        // The target user already has a "Work" calendar, at another path,
        // holding an older version of one event under another name.
        let tgt = &self.target;
        tgt.must(
            ALICE_CLOUD,
            "pw",
            &[
                "mkcalendar",
                "/alice@tenant.cloud.example/calendar-1/",
                "Work",
            ],
        );
        tgt.put(
            ALICE_CLOUD,
            "pw",
            "/alice@tenant.cloud.example/calendar-1/mine.ics",
            &event("single-1", "20250310T090000Z", "dentist (my own copy)", ""),
            d,
        );
    }

    /// The set-up's config: both DAV sides by `dav_home` as the admin.
    fn config(&self) -> MigratorConfig {
        MigratorConfig::new(&self._source_imap.url(), &self._target_imap.url())
            .users("alice@corp.example,Alice,,,true\n")
            .dav(&self.source.url(), &format!("{}/", self.target.url()))
    }

    fn write_config(&self) {
        self.config().write(self.dir.path(), &self._ca.ca_pem);
    }

    /// Runs the migrator; (exit code, stdout+stderr, report).
    fn run(&self, args: &[&str]) -> (i32, String, Value) {
        let report = self.dir.path().join("report.json");
        let _ = std::fs::remove_file(&report);
        let out = Command::new(coexist_e2e::binary("coexist-migrator"))
            .arg("--config")
            .arg(self.dir.path().join("migrator.toml"))
            .args(args)
            .arg("--report")
            .arg(&report)
            .output()
            .expect("run coexist-migrator");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let json = std::fs::read(&report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), text, json)
    }

    fn state(&self) -> Value {
        let path = self.dir.path().join("state").join(format!("{ALICE}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

fn count(report: &Value, content: &str, name: &str) -> u64 {
    report["users"][0]["content"][content][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {content}.{name} in {report:#}"))
}

/// UID → data, per collection display name.
fn by_uid(dump: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    dump.as_object()
        .unwrap()
        .iter()
        .map(|(name, c)| {
            let items = c["items"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| {
                    let data = v.as_str().unwrap().to_string();
                    (uid_of(&data), data)
                })
                .collect();
            (name.clone(), items)
        })
        .collect()
}

fn uid_of(data: &str) -> String {
    data.lines()
        .find_map(|l| l.trim_end().strip_prefix("UID:"))
        .unwrap_or_else(|| panic!("no UID in {data}"))
        .to_string()
}

/// Every source object is on the target, by UID, with the same content —
/// except `left_alone`, which must be the target's own version.
fn assert_copied(s: &Setup, left_alone: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
    let src = by_uid(&s.source.dump(SRC_HOME));
    let dst = by_uid(&s.target.dump(DST_HOME));
    for (name, items) in &src {
        let there = dst
            .get(name)
            .unwrap_or_else(|| panic!("no {name:?} on the target: {dst:#?}"));
        for (uid, data) in items {
            let copy = there
                .get(uid)
                .unwrap_or_else(|| panic!("{name}/{uid} missing on the target"));
            if left_alone.contains(&uid.as_str()) {
                assert_ne!(copy, data, "{uid} should have been left alone");
            } else {
                assert_eq!(copy, data, "{name}/{uid} differs");
            }
        }
    }
    dst
}

#[test]
fn calendars_and_contacts_copy_by_uid_and_a_second_migrate_copies_nothing() {
    let s = start();
    let (code, out, report) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 0, "{out}");
    // Work: 5 objects, one of them (single-1) already on the target under
    // another name (Radicale: 409 no-uid-conflict) and left alone; Tasks: 1.
    assert_eq!(count(&report, "calendar", "copied"), 5, "{report:#}");
    assert_eq!(count(&report, "calendar", "skipped"), 1, "{report:#}");
    assert_eq!(count(&report, "calendar", "collections"), 2);
    assert_eq!(count(&report, "contacts", "copied"), 3);
    assert_eq!(count(&report, "calendar", "refused"), 0);
    // Radicale does not schedule: nothing is marked.
    assert_eq!(count(&report, "calendar", "schedule_agent_marked"), 0);

    let dst = assert_copied(&s, &["single-1"]);
    // Paired by display name: Work went into the existing calendar-1.
    let dump = s.target.dump(DST_HOME);
    assert_eq!(
        dump["Work"]["href"],
        "/alice@tenant.cloud.example/calendar-1/"
    );
    assert_eq!(dst["Work"].len(), 5, "{:#?}", dst["Work"]);
    // Tasks was created with its colour and description.
    assert_eq!(dump["Tasks"]["colour"], "#00ff00ff", "{dump:#}");
    assert_eq!(dump["Tasks"]["description"], "Things to do");
    assert_eq!(dump["Contacts"]["kind"], "contacts");
    assert!(dst["Contacts"]["c2"].contains("PHOTO;ENCODING=b;TYPE=JPEG:/9j/"));
    assert!(!dump.to_string().contains("SCHEDULE-AGENT"));
    // The weekly series travelled as one object: master, override, VTIMEZONE.
    let series = &dst["Work"]["weekly-1"];
    assert!(
        series.contains("RECURRENCE-ID;TZID=Europe/Berlin:20250113T090000")
            && series.contains("TZID:Europe/Berlin")
    );

    // The checkpoint keeps a sync token per collection.
    let state = s.state();
    let work = &state["dav"]["/alice@corp.example/work/"];
    assert!(
        work["sync_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{state:#}"
    );
    assert_eq!(work["target"], "/alice@tenant.cloud.example/calendar-1/");

    // `status --json` counts what the checkpoint has on the target.
    let status = Command::new(coexist_e2e::binary("coexist-migrator"))
        .arg("--config")
        .arg(s.dir.path().join("migrator.toml"))
        .args(["status", "--json", ALICE])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["content"]["contacts"], 3, "{status:#}");
    assert_eq!(status[0]["content"]["calendar"], 5, "{status:#}");

    let (code, out, again) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 0, "{out}");
    for content in ["calendar", "contacts"] {
        assert_eq!(count(&again, content, "copied"), 0, "{again:#}");
        assert_eq!(count(&again, content, "updated"), 0, "{again:#}");
    }
    assert_eq!(
        by_uid(&s.target.dump(DST_HOME)),
        dst,
        "the second migrate changed the target"
    );
}

#[test]
fn sync_reads_only_changes_reports_deletions_and_survives_an_expired_token() {
    let s = start();
    let (code, out, _) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 0, "{out}");
    let d = s.dir.path();
    let work = "/alice@corp.example/work/";
    s.source.put(
        ALICE,
        "pw",
        &format!("{work}weekly.ics"),
        &weekly("daily sync", 1),
        d,
    );
    s.source.put(
        ALICE,
        "pw",
        &format!("{work}new.ics"),
        &event("new-1", "20250701T090000Z", "new one", ""),
        d,
    );
    s.source
        .must(ALICE, "pw", &["delete", &format!("{work}old.ics")]);
    // Changed on both sides: the target's copy wins.
    let org = |summary: &str| {
        event(
            "org-1",
            "20250402T150000Z",
            summary,
            "SEQUENCE:1\r\nORGANIZER;CN=Alice:mailto:alice@corp.example\r\nATTENDEE;CN=Pat;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:pat@partner.example\r\n",
        )
    };
    let org_source = format!("{work}organizer.ics");
    s.source
        .put(ALICE, "pw", &org_source, &org("moved on the source"), d);
    let org_target = "/alice@tenant.cloud.example/calendar-1/organizer.ics";
    s.target.put(
        ALICE_CLOUD,
        "pw",
        org_target,
        &org("edited in the cloud"),
        d,
    );

    let (code, out, report) = s.run(&["sync", ALICE]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&report, "calendar", "copied"), 1, "{report:#}");
    assert_eq!(count(&report, "calendar", "updated"), 1, "{report:#}");
    assert_eq!(count(&report, "calendar", "conflicts"), 1, "{report:#}");
    assert_eq!(
        count(&report, "calendar", "deleted_on_source"),
        1,
        "{report:#}"
    );
    assert_eq!(count(&report, "contacts", "copied"), 0);
    let dst = assert_copied(&s, &["single-1", "org-1"]);
    assert!(dst["Work"]["weekly-1"].contains("SUMMARY:daily sync"));
    assert!(dst["Work"]["org-1"].contains("SUMMARY:edited in the cloud"));
    assert!(
        dst["Work"].contains_key("old-2015"),
        "a deletion is not carried over"
    );
    let warnings = report["users"][0]["content"]["calendar"]["warnings"].to_string();
    assert!(
        warnings.contains("old.ics") && warnings.contains("deleted on the source"),
        "{warnings}"
    );

    // An expired token: the next pass compares ETags, copies the one new
    // object and nothing twice.
    let state_file = d.join("state").join(format!("{ALICE}.json"));
    let mut state = s.state();
    for c in state["dav"].as_object_mut().unwrap().values_mut() {
        c["sync_token"] = Value::String(
            "http://radicale.org/ns/sync/0000000000000000000000000000000000000000".into(),
        );
    }
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    s.source.put(
        ALICE,
        "pw",
        &format!("{work}newer.ics"),
        &event("new-2", "20250702T090000Z", "newer", ""),
        d,
    );
    let (code, out, report) = s.run(&["sync", ALICE]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sync token was refused"), "{out}");
    assert_eq!(count(&report, "calendar", "copied"), 1, "{report:#}");
    assert_eq!(count(&report, "calendar", "updated"), 0, "{report:#}");
    let dump = s.target.dump(DST_HOME);
    let work_items = dump["Work"]["items"].as_object().unwrap();
    let mut uids: Vec<String> = work_items
        .values()
        .map(|v| uid_of(v.as_str().unwrap()))
        .collect();
    let n = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), n, "a UID twice on the target: {uids:?}");
    assert!(uids.contains(&"new-2".to_string()));
}

#[test]
fn content_mail_leaves_calendars_and_since_selects_by_occurrence() {
    let s = start();
    let before = s.target.dump(DST_HOME);
    let (code, out, report) = s.run(&["migrate", ALICE, "--content", "mail"]);
    assert_eq!(code, 0, "{out}");
    // Only the IMAP copy's `mail` entry: no DAV content was copied.
    let content = &report["users"][0]["content"];
    assert!(
        content["calendar"].is_null() && content["contacts"].is_null(),
        "{report:#}"
    );
    assert_eq!(
        s.target.dump(DST_HOME),
        before,
        "--content mail wrote calendars"
    );

    let (code, out, report) = s.run(&[
        "sync",
        ALICE,
        "--content",
        "calendar",
        "--since",
        "2025-01-01",
    ]);
    assert_eq!(code, 0, "{out}");
    let dst = by_uid(&s.target.dump(DST_HOME));
    assert!(
        !dst["Work"].contains_key("old-2015"),
        "a 2015 event came with --since 2025-01-01"
    );
    for uid in ["weekly-1", "org-1", "att-1"] {
        assert!(dst["Work"].contains_key(uid), "{uid} missing: {dst:#?}");
    }
    assert!(dst["Tasks"].contains_key("todo-1"));
    assert!(
        !dst.contains_key("Contacts"),
        "contacts came with --content calendar"
    );
    assert_eq!(count(&report, "calendar", "copied"), 4, "{report:#}");
    let _ = Path::new("");
}

/// Radicale (with its Dovecot) as the source, Cyrus as the target: a server
/// that schedules (RFC 6638).
struct CyrusSetup {
    ca: TestCa,
    source_imap: Dovecot,
    source: Radicale,
    cyrus: coexist_e2e::cyrus::Cyrus,
    dir: tempfile::TempDir,
}

impl CyrusSetup {
    fn start() -> CyrusSetup {
        let ca = TestCa::new();
        let source_imap = Dovecot::start(
            DovecotSetup {
                name: "source",
                users: vec![(ALICE, "pw")],
                quota: None,
                max_mail_size: None,
                tls: true,
            },
            &ca,
        );
        let source = Radicale::start("source", &[(ALICE, "pw")], &ca);
        let cyrus = coexist_e2e::cyrus::Cyrus::start(&["alice"], &ca);
        CyrusSetup {
            ca,
            source_imap,
            source,
            cyrus,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The migrator's config, reading the source's DAV at `source_dav`: as the
    /// admin on the source; as the user on Cyrus (no dav_home: its principal
    /// and home sets are discovered).
    fn write_config(&self, source_dav: &str) {
        MigratorConfig::new(&self.source_imap.url(), &self.cyrus.imap_url())
            .users("alice@corp.example,Alice,,,true\n")
            .dav(source_dav, &self.cyrus.dav_url())
            .unset("target", "dav_home")
            .unset("target", "master_user")
            .set("target", "auth", "password")
            .set("target", "login", "{local}")
            .file("target.password", "alice anything\n")
            .write(self.dir.path(), &self.ca.ca_pem);
    }

    /// Alice's calendars on Cyrus, by display name and UID.
    fn calendars(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        by_uid(&self.cyrus.dump("alice", "/dav/calendars/user/alice/"))
    }

    /// Runs the migrator; (exit code, stdout+stderr, report).
    fn run(&self, args: &[&str]) -> (Option<i32>, String, Value) {
        let d = self.dir.path();
        let report_file = d.join("report.json");
        let _ = std::fs::remove_file(&report_file);
        let out = Command::new(coexist_e2e::binary("coexist-migrator"))
            .arg("--config")
            .arg(d.join("migrator.toml"))
            .args(args)
            .arg("--report")
            .arg(&report_file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = std::fs::read(&report_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        (out.status.code(), text, report)
    }
}

/// Radicale → Cyrus, which schedules (RFC 6638): the organizer's event with an
/// external attendee and the attendee's copy of an external organizer's event
/// go with `SCHEDULE-AGENT=CLIENT`, and Cyrus sends nothing. Without the
/// marking (the control, a direct PUT) Cyrus does send an invitation.
#[test]
fn a_target_that_schedules_gets_schedule_agent_client_and_sends_no_mail() {
    let s = CyrusSetup::start();
    let (source, cyrus, d) = (&s.source, &s.cyrus, s.dir.path());
    // Cyrus schedules only events that are still to come.
    let work = "/alice@corp.example/work/";
    source.must(
        ALICE,
        "pw",
        &["mkcalendar", work, "Work", "#3366ffff", "Team"],
    );
    source.must(
        ALICE,
        "pw",
        &["mkaddressbook", "/alice@corp.example/contacts/", "Contacts"],
    );
    source.put(
        ALICE,
        "pw",
        &format!("{work}plain.ics"),
        &event("plain-1", "20270310T090000Z", "dentist", ""),
        d,
    );
    source.put(
        ALICE,
        "pw",
        &format!("{work}organizer.ics"),
        &event(
            "org-1",
            "20270402T150000Z",
            "review with a partner",
            "ORGANIZER;CN=Alice:mailto:alice@corp.example\r\nATTENDEE;CN=Pat;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:pat@partner.example\r\n",
        ),
        d,
    );
    source.put(
        ALICE,
        "pw",
        &format!("{work}attendee.ics"),
        &event(
            "att-1",
            "20270405T100000Z",
            "partner's workshop",
            "ORGANIZER;CN=Pat:mailto:pat@partner.example\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@corp.example\r\n",
        ),
        d,
    );
    source.put(
        ALICE,
        "pw",
        &format!("{work}weekly.ics"),
        &weekly("standup", 0),
        d,
    );
    for (uid, name) in [("c1", "Carol"), ("c2", "Dan")] {
        source.put(
            ALICE,
            "pw",
            &format!("/alice@corp.example/contacts/{uid}.vcf"),
            &vcard(uid, name),
            d,
        );
    }

    // The control: Cyrus mails an invitation for an unmarked organizer's event.
    let control = d.join("control.ics");
    std::fs::write(
        &control,
        event(
            "control-1",
            "20270501T090000Z",
            "control",
            "ORGANIZER:mailto:alice@corp.example\r\nATTENDEE;RSVP=TRUE:mailto:quinn@partner.example\r\n",
        ),
    )
    .unwrap();
    let (ok, out, err) = cyrus.dav(
        "alice",
        &[
            "put",
            "/dav/calendars/user/alice/Default/control.ics",
            control.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cyrus.sent().contains("RCPT TO:<quinn@partner.example>") {
        assert!(
            std::time::Instant::now() < deadline,
            "the control sent no invitation: {:?}",
            cyrus.sent()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cyrus.clear_sent();

    s.write_config(&source.url());
    // The pre-flight sees that Cyrus schedules, through the user's own
    // discovery (no dav_home on the target).
    let check = |expect: i32| {
        let out = Command::new(coexist_e2e::binary("coexist-migrator"))
            .arg("--config")
            .arg(d.join("migrator.toml"))
            .args(["check", ALICE])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(expect), "{text}");
        text
    };
    let pre = check(0);
    let scheduling = pre
        .lines()
        .find(|l| l.starts_with("ok    target DAV scheduling: "))
        .unwrap_or_else(|| panic!("{pre}"));
    assert!(
        scheduling.contains("calendar-auto-schedule advertised")
            && scheduling.contains("SCHEDULE-AGENT=CLIENT"),
        "{scheduling}"
    );
    assert!(
        pre.contains("ok    user alice@corp.example target DAV: homes from principal /dav/principals/user/alice"),
        "{pre}"
    );
    assert_eq!(cyrus.sent(), "", "check sent mail");
    let (code, text, report) = s.run(&["migrate", ALICE]);
    assert_eq!(code, Some(0), "{text}\n{}", cyrus.log());
    assert_eq!(count(&report, "calendar", "copied"), 4, "{report:#}");
    assert_eq!(
        count(&report, "calendar", "schedule_agent_marked"),
        2,
        "{report:#}"
    );
    assert_eq!(count(&report, "contacts", "copied"), 2, "{report:#}");
    assert_eq!(count(&report, "calendar", "refused"), 0, "{report:#}");

    // Read back from Cyrus (discovered homes: /dav/calendars/user/alice/).
    let cal = s.calendars();
    let work = cal
        .get("Work")
        .unwrap_or_else(|| panic!("no Work calendar on Cyrus: {cal:#?}"));
    for uid in ["plain-1", "org-1", "att-1", "weekly-1"] {
        assert!(work.contains_key(uid), "{uid} not on Cyrus: {work:#?}");
    }
    let unfolded = |s: &str| s.replace("\r\n ", "");
    assert!(
        unfolded(&work["org-1"]).contains("ORGANIZER;SCHEDULE-AGENT=CLIENT"),
        "{}",
        work["org-1"]
    );
    assert!(
        unfolded(&work["org-1"]).contains("SCHEDULE-AGENT=CLIENT")
            && unfolded(&work["att-1"]).contains("SCHEDULE-AGENT=CLIENT")
    );
    assert!(
        !work["plain-1"].contains("SCHEDULE-AGENT"),
        "an event without attendees is not marked"
    );
    // No invitation, no reply: sendmail was never called (Cyrus runs it
    // within the PUT, as the control showed, so there is nothing to wait for).
    assert_eq!(cyrus.sent(), "", "Cyrus sent mail during the migration");

    // The quota gate counts calendar bytes: with 1 KiB on the target, a new
    // 2 KB event does not fit, and nothing is written.
    cyrus.imap_admin("m.setquota('user/alice', '(STORAGE 1)')");
    let big = event("big-1", "20270601T090000Z", &"x".repeat(2000), "");
    source.put(ALICE, "pw", "/alice@corp.example/work/big.ics", &big, d);
    // The pre-flight says so first: the event's bytes against Cyrus's quota.
    let pre = check(1);
    assert!(
        pre.lines().any(
            |l| l.starts_with("ok    user alice@corp.example target DAV quota: ")
                && l.contains("2.2 KiB of calendars and contacts")
        ),
        "{pre}"
    );
    assert!(
        pre.lines().any(|l| l.starts_with("fail  user alice@corp.example: ")
            && l.contains("DOES NOT FIT")),
        "{pre}"
    );
    let (code, text, _) = s.run(&["sync", ALICE]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert!(
        !s.calendars()["Work"].contains_key("big-1"),
        "written past the quota gate"
    );
}

/// A resource the target refuses (here: too large, 413) is a warning with the
/// server's answer; everything else is copied, and the run exits 1. The next
/// pass tries it again (the token did not move past it).
#[test]
fn a_refused_resource_is_a_warning_with_the_reason_and_exit_1() {
    let s = start_with("max_content_length = 6000", true);
    let d = s.dir.path();
    let mut big = vcard("big", "Bigphoto");
    let filler: String = (0..100)
        .map(|i| format!("X-FILLER-{i}:{}\r\n", "f".repeat(60)))
        .collect();
    big = big.replace("END:VCARD", &format!("{filler}END:VCARD"));
    assert!(big.len() > 6000);
    s.source
        .put(ALICE, "pw", "/alice@corp.example/contacts/big.vcf", &big, d);
    let (code, out, report) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(count(&report, "contacts", "refused"), 1, "{report:#}");
    assert_eq!(count(&report, "contacts", "copied"), 3, "{report:#}");
    assert_eq!(count(&report, "calendar", "copied"), 5, "{report:#}");
    let warning = &report["users"][0]["content"]["contacts"]["warnings"][0];
    assert_eq!(
        warning["resource"], "/alice@corp.example/contacts/big.vcf",
        "{warning}"
    );
    assert!(
        warning["reason"].as_str().unwrap().starts_with("413"),
        "{warning}"
    );
    assert!(out.contains("big.vcf") && out.contains("413"), "{out}");
    // Tried again by the next pass, not forgotten behind the token.
    let (code, _, again) = s.run(&["sync", ALICE]);
    assert_eq!(code, 1);
    assert_eq!(count(&again, "contacts", "refused"), 1, "{again:#}");
    assert_eq!(count(&again, "contacts", "copied"), 0, "{again:#}");
}

/// The target has never seen the user: Radicale has no home for her (a
/// principal appears on the user's own first login, not the admin's). The
/// migrator makes it (MKCOL) and copies everything into it.
#[test]
fn a_missing_home_on_the_target_is_created_and_filled() {
    let s = start_with("", false);
    assert!(s.target.stored(ALICE_CLOUD).is_empty());
    let (code, out, report) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("created the home /alice@tenant.cloud.example/ on the target"),
        "{out}"
    );
    // No conflicting copy this time: all six calendar objects and the cards.
    assert_eq!(count(&report, "calendar", "copied"), 6, "{report:#}");
    assert_eq!(count(&report, "contacts", "copied"), 3, "{report:#}");
    let dst = assert_copied(&s, &[]);
    assert_eq!(dst["Work"].len(), 5);
    assert_eq!(dst["Tasks"].len(), 1);
}

/// Another object already holds a source resource's name in the paired
/// target calendar: the source's goes beside it as `coexist-<hash>.ics`,
/// the target's own is left alone, and a second pass writes nothing.
#[test]
fn a_name_taken_on_the_target_by_another_object_goes_beside_it() {
    let s = start();
    let theirs = event("someone-else", "20250311T090000Z", "the cloud's own", "");
    s.target.put(
        ALICE_CLOUD,
        "pw",
        "/alice@tenant.cloud.example/calendar-1/weekly.ics",
        &theirs,
        s.dir.path(),
    );
    let (code, out, report) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&report, "calendar", "copied"), 5, "{report:#}");
    assert_eq!(count(&report, "calendar", "skipped"), 1, "{report:#}");
    let stored = s.target.stored(ALICE_CLOUD);
    let work = &stored["Work"];
    assert_eq!(uid_of(&work["weekly.ics"]), "someone-else", "{work:#?}");
    let beside: Vec<&String> = work
        .keys()
        .filter(|name| name.starts_with("coexist-"))
        .collect();
    assert_eq!(beside.len(), 1, "{work:#?}");
    let name = beside[0];
    let hex = name
        .strip_prefix("coexist-")
        .and_then(|n| n.strip_suffix(".ics"))
        .unwrap();
    assert!(
        hex.len() == 20 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    assert_eq!(uid_of(&work[name]), "weekly-1");
    // The checkpoint knows where it went: the next pass writes nothing.
    let state = s.state();
    let item =
        &state["dav"]["/alice@corp.example/work/"]["items"]["/alice@corp.example/work/weekly.ics"];
    assert_eq!(
        item["target"],
        format!("/alice@tenant.cloud.example/calendar-1/{name}"),
        "{state:#}"
    );
    let (code, out, again) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&again, "calendar", "copied"), 0, "{again:#}");
    assert_eq!(s.target.stored(ALICE_CLOUD), stored);
}

/// A source resource the migrator cannot parse (here: a proxy in front of
/// the source Radicale puts a line before one object's BEGIN:VCALENDAR) is
/// still offered to the target as it is; Radicale refuses it, so it is a
/// warning with the server's reason and the note that it does not parse,
/// the rest is copied, and the run exits 1.
#[test]
fn a_source_resource_that_does_not_parse_is_offered_as_is_and_reported() {
    use coexist_e2e::http_proxy::{HttpFault, HttpProxy};
    let s = start();
    let bad = event("bad-1", "20250320T090000Z", "broken", "")
        .replace("PRODID:-//coexist//test//EN", "PRODID:-//coexist//bad//EN");
    s.source.put(
        ALICE,
        "pw",
        "/alice@corp.example/work/bad.ics",
        &bad,
        s.dir.path(),
    );
    let rewrite = std::sync::Arc::new(|body: &[u8]| {
        let marker = b"PRODID:-//coexist//bad//EN";
        let at = body.windows(marker.len()).position(|w| w == marker)?;
        let begin = b"BEGIN:VCALENDAR";
        let start = body[..at].windows(begin.len()).rposition(|w| w == begin)?;
        let mut out = body[..start].to_vec();
        out.extend_from_slice(b"THIS IS NOT ICALENDAR\r\n");
        out.extend_from_slice(&body[start..]);
        Some(out)
    });
    let proxy = HttpProxy::start(s.source.port, &s._ca, HttpFault::Rewrite(rewrite));
    s.config()
        .set("source", "dav_url", &proxy.url())
        .write(s.dir.path(), &s._ca.ca_pem);
    let (code, out, report) = s.run(&["migrate", ALICE]);
    assert_eq!(code, 1, "{out}");
    assert!(proxy.rewritten() >= 1);
    assert_eq!(count(&report, "calendar", "refused"), 1, "{report:#}");
    assert_eq!(count(&report, "calendar", "copied"), 5, "{report:#}");
    assert_eq!(count(&report, "contacts", "copied"), 3, "{report:#}");
    let warning = &report["users"][0]["content"]["calendar"]["warnings"][0];
    assert_eq!(warning["resource"], "/alice@corp.example/work/bad.ics");
    let reason = warning["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("400") && reason.ends_with("does not parse as iCalendar"),
        "{reason}"
    );
    let dst = by_uid(&s.target.dump(DST_HOME));
    assert!(!dst["Work"].contains_key("bad-1"));
    assert!(dst["Work"].contains_key("weekly-1"));
}

/// The other half of the rule: a source resource the parser cannot read is
/// offered to the target byte for byte, and a target that takes it (Cyrus,
/// whose libical skips what comes before BEGIN:VCALENDAR) stores it. It is
/// counted as copied, and marked SCHEDULE-AGENT=CLIENT like any other (the
/// marking works on the text): Cyrus, which schedules, sends no mail.
#[test]
fn a_source_resource_that_does_not_parse_is_copied_as_is_when_the_target_takes_it() {
    use coexist_e2e::http_proxy::{HttpFault, HttpProxy};
    let s = CyrusSetup::start();
    let (source, d) = (&s.source, s.dir.path());
    let work = "/alice@corp.example/work/";
    source.must(ALICE, "pw", &["mkcalendar", work, "Work"]);
    source.put(
        ALICE,
        "pw",
        &format!("{work}plain.ics"),
        &event("plain-1", "20270310T090000Z", "dentist", ""),
        d,
    );
    // An organizer's event: Cyrus would invite the attendee were it not marked
    // (the marking is made in the text, parsed or not).
    let odd = event(
        "odd-1",
        "20270320T090000Z",
        "odd one",
        "ORGANIZER:mailto:alice@corp.example\r\nATTENDEE;RSVP=TRUE:mailto:quinn@partner.example\r\n",
    )
    .replace("PRODID:-//coexist//test//EN", "PRODID:-//coexist//odd//EN");
    source.put(ALICE, "pw", &format!("{work}odd.ics"), &odd, d);
    // The source serves a line before BEGIN:VCALENDAR (Radicale itself would
    // refuse to store it, hence the proxy).
    let rewrite = std::sync::Arc::new(|body: &[u8]| {
        let marker = b"PRODID:-//coexist//odd//EN";
        let at = body.windows(marker.len()).position(|w| w == marker)?;
        let begin = b"BEGIN:VCALENDAR";
        let start = body[..at].windows(begin.len()).rposition(|w| w == begin)?;
        let mut out = body[..start].to_vec();
        out.extend_from_slice(b"X-LEGACY-EXPORT:1\r\n");
        out.extend_from_slice(&body[start..]);
        Some(out)
    });
    let proxy = HttpProxy::start(source.port, &s.ca, HttpFault::Rewrite(rewrite));
    s.write_config(&proxy.url());
    let (code, text, report) = s.run(&["migrate", ALICE]);
    assert!(proxy.rewritten() >= 1);
    assert_eq!(code, Some(0), "{text}\n{}", s.cyrus.log());
    assert_eq!(count(&report, "calendar", "copied"), 2, "{report:#}");
    assert_eq!(count(&report, "calendar", "refused"), 0, "{report:#}");
    assert_eq!(
        count(&report, "calendar", "schedule_agent_marked"),
        1,
        "{report:#}"
    );
    assert_eq!(s.cyrus.sent(), "", "Cyrus sent mail during the migration");
    let cal = s.calendars();
    let work_cal = cal
        .get("Work")
        .unwrap_or_else(|| panic!("no Work calendar on Cyrus: {cal:#?}"));
    assert!(work_cal.contains_key("plain-1"), "{work_cal:#?}");
    let stored = work_cal["odd-1"].replace("\r\n ", "");
    assert!(stored.contains("SUMMARY:odd one"), "{stored}");
    assert!(
        stored.contains("ATTENDEE;SCHEDULE-AGENT=CLIENT"),
        "{stored}"
    );
    // A second migrate writes nothing twice.
    let (code, text, report) = s.run(&["migrate", ALICE]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(count(&report, "calendar", "copied"), 0, "{report:#}");
    assert_eq!(s.calendars()["Work"].len(), 2);
}

/// The source's connection drops after a listing request reached it but
/// before its answer came back. A read is asked again (the source only ever
/// reads), and the copy completes: exit 0, every object once.
#[test]
fn a_source_read_whose_answer_is_lost_is_asked_again() {
    use coexist_e2e::http_proxy::{HttpFault, HttpProxy};
    let s = start();
    // Discovery and the home's PROPFIND are the first ~1 KB: the mark falls
    // among the collections' listings and multigets.
    let proxy = HttpProxy::start(s.source.port, &s._ca, HttpFault::DropAfter(2_000));
    s.config()
        .set("source", "dav_url", &proxy.url())
        .write(s.dir.path(), &s._ca.ca_pem);
    let (code, out, report) = s.run(&["migrate", ALICE]);
    assert!(proxy.dropped(), "the proxy never dropped: {out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("trying again"), "{out}");
    assert_eq!(count(&report, "calendar", "refused"), 0, "{report:#}");
    assert_copied(&s, &["single-1"]);
}

/// The connection to the target drops in the middle of the copy, after the
/// target stored a PUT whose answer never came back (a real TCP/TLS proxy
/// that closes the connection). The PUT is tried again, finds its own copy
/// there (412, same UID and version: adopted), and the copy goes on: every
/// object once on the target, exit 0.
#[test]
fn a_connection_dropped_mid_copy_is_retried_and_nothing_is_doubled() {
    use coexist_e2e::http_proxy::{HttpFault, HttpProxy};
    let s = start_with("", false);
    for i in 0..30 {
        s.source.put(
            ALICE,
            "pw",
            &format!("/alice@corp.example/work/more-{i}.ics"),
            &event(&format!("more-{i}"), "20250401T090000Z", "more", ""),
            s.dir.path(),
        );
    }
    // Discovery, the home, two MKCALENDARs and an MKCOL are a few KB; then
    // about 600 bytes per PUT: 12 KB falls among the PUTs.
    let proxy = HttpProxy::start(s.target.port, &s._ca, HttpFault::DropAfter(12_000));
    s.config()
        .set("target", "dav_url", &format!("{}/", proxy.url()))
        .write(s.dir.path(), &s._ca.ca_pem);
    let (code, out, report) = s.run(&["migrate", ALICE]);
    assert!(proxy.dropped(), "the proxy never dropped: {out}");
    assert_eq!(code, 0, "{out}\n{}", s.target.log());
    assert!(out.contains("trying again"), "{out}");
    let copied = count(&report, "calendar", "copied") + count(&report, "calendar", "skipped");
    assert_eq!(copied, 36, "{report:#}");
    let dump = s.target.dump(DST_HOME);
    let mut uids: Vec<String> = dump["Work"]["items"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| uid_of(v.as_str().unwrap()))
        .collect();
    let n = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), n, "a UID twice on the target");
    assert_eq!(n, 35, "{uids:?}");
    assert_copied(&s, &[]);
}
