//! `dav-copy [--events N] [--contacts M] [--target radicale|cyrus] [--warm-source]`:
//! coexist-migrator copying one user's calendar and address book from Radicale
//! (issue 13's target: 5,000 events + 2,000 contacts, first copy < 60 s, a
//! `sync` with nothing changed < 2 s). Run it with `bench/dav-copy`, which
//! builds the release binaries.
//!
//! The source Radicale (HTTPS, htpasswd, the admin rights file of
//! `tests/src/radicale.rs`) gets N events (a tenth of them weekly series with
//! an override and a VTIMEZONE) in one calendar and M vCards in one address
//! book, written straight into its storage folder (seeding over HTTP would
//! take longer than the copy). The target starts empty: a second Radicale (the
//! user's home does not exist there yet: the migrator makes it), or with
//! `--target cyrus` a Cyrus IMAP 3.6 (`tests/src/cyrus.rs`, a server that
//! indexes UIDs and schedules), reached as the user with discovered homes.
//! `--warm-source` first reads every item of the source once, untimed: a
//! Radicale seeded through its folder builds its item cache on the first
//! read (115 s at 5,000 events), which a source in service has long done.
//! Dovecots carry the (empty) mailboxes.
//!
//! Timed: `coexist-migrator sync USER` (the first copy), then the same again
//! with nothing changed (a sync-collection with the stored token per
//! collection). Printed: wall seconds of each, items/s of the first, and the
//! counts the report gives, checked against what is on the target.

use coexist_e2e::cyrus::Cyrus;
use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa};
use coexist_e2e::migrator_config::MigratorConfig;
use coexist_e2e::radicale::Radicale;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

const USER: &str = "alice@corp.example";
const CLOUD: &str = "alice@tenant.cloud.example";
const USAGE: &str =
    "usage: dav-copy [--events N] [--contacts M] [--target radicale|cyrus] [--warm-source]";

/// Where the copy goes.
enum Target {
    Radicale(Dovecot, Radicale),
    Cyrus(Cyrus),
}

fn main() -> ExitCode {
    let (mut events, mut contacts) = (5_000usize, 2_000usize);
    let (mut cyrus, mut warm) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let ok = match a.as_str() {
            "--warm-source" => {
                warm = true;
                true
            }
            "--target" => match args.next().as_deref() {
                Some("cyrus") => {
                    cyrus = true;
                    true
                }
                Some("radicale") => true,
                _ => false,
            },
            "--events" | "--contacts" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) if a == "--events" => {
                    events = v;
                    true
                }
                Some(v) => {
                    contacts = v;
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !ok {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let migrator = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("coexist-migrator")))
        .filter(|p| p.exists());
    let Some(migrator) = migrator else {
        eprintln!("coexist-migrator is not built next to this binary; run bench/dav-copy");
        return ExitCode::from(2);
    };
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
    let src_imap = dovecot("bench-source", USER);
    let source = Radicale::start("bench-source", &[(USER, "pw")], &ca);
    let target = if cyrus {
        Target::Cyrus(Cyrus::start(&["alice"], &ca))
    } else {
        Target::Radicale(
            dovecot("bench-target", CLOUD),
            Radicale::start("bench-target", &[(CLOUD, "pw")], &ca),
        )
    };
    let t = Instant::now();
    let bytes = seed(
        &source.dir.path().join("collections/collection-root"),
        events,
        contacts,
    );
    eprintln!(
        "seeded {events} events and {contacts} contacts ({:.1} MiB) in {:.1} s",
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    if warm {
        let t = Instant::now();
        let items = count_items(&source.dump(&format!("/{USER}/")));
        eprintln!(
            "source read once ({items} items, untimed warm-up) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let work = tempfile::tempdir().expect("tempdir");
    let config = match &target {
        Target::Radicale(imap, dav) => MigratorConfig::new(&src_imap.url(), &imap.url())
            .dav(&source.url(), &format!("{}/", dav.url())),
        // As the user on Cyrus: no dav_home, its homes are discovered.
        Target::Cyrus(c) => MigratorConfig::new(&src_imap.url(), &c.imap_url())
            .dav(&source.url(), &c.dav_url())
            .unset("target", "dav_home")
            .unset("target", "master_user")
            .set("target", "auth", "password")
            .set("target", "login", "{local}")
            .file("target.password", "alice anything\n"),
    };
    config
        .users(&format!("{USER},Alice,,,true\n"))
        .raw("migration", "content", r#"["calendar", "contacts"]"#)
        .write(work.path(), &ca.ca_pem);

    let (first, report) = timed(&migrator, work.path());
    let copied = |r: &serde_json::Value, c: &str| {
        r["users"][0]["content"][c]["copied"].as_u64().unwrap_or(0)
    };
    let (cal, con) = (copied(&report, "calendar"), copied(&report, "contacts"));
    let (second, again) = timed(&migrator, work.path());
    let on_target = match &target {
        Target::Radicale(_, dav) => count_items(&dav.dump(&format!("/{CLOUD}/"))),
        Target::Cyrus(c) => [
            "/dav/calendars/user/alice/",
            "/dav/addressbooks/user/alice/",
        ]
        .iter()
        .map(|home| count_items(&c.dump("alice", home)))
        .sum(),
    };
    println!(
        "first copy: {first:.2} s ({:.0} items/s): calendar copied {cal}, contacts copied {con}",
        (cal + con) as f64 / first
    );
    println!(
        "sync, nothing changed: {second:.2} s: copied {} + {}",
        copied(&again, "calendar"),
        copied(&again, "contacts")
    );
    println!("items on the target: {on_target}");
    let ok = cal as usize == events && con as usize == contacts && on_target == events + contacts;
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("dav-copy: expected {events} + {contacts}");
        ExitCode::from(1)
    }
}

/// The items of every collection in a `dav.py dump`.
fn count_items(dump: &serde_json::Value) -> usize {
    dump.as_object()
        .map(|cols| {
            cols.values()
                .filter_map(|c| c["items"].as_object())
                .map(|items| items.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Runs `sync USER`; (wall seconds, report).
fn timed(migrator: &Path, dir: &Path) -> (f64, serde_json::Value) {
    let report = dir.join("report.json");
    let t = Instant::now();
    let out = Command::new(migrator)
        .arg("--config")
        .arg(dir.join("migrator.toml"))
        .args(["sync", USER, "--report"])
        .arg(&report)
        .output()
        .expect("coexist-migrator");
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (secs, json)
}

/// Writes Radicale's filesystem layout: `ROOT/USER/{cal,contacts}/` with
/// `.Radicale.props` and one file per object. Returns the bytes written.
fn seed(root: &Path, events: usize, contacts: usize) -> usize {
    let cal = root.join(USER).join("cal");
    let book = root.join(USER).join("contacts");
    std::fs::create_dir_all(&cal).unwrap();
    std::fs::create_dir_all(&book).unwrap();
    std::fs::write(
        cal.join(".Radicale.props"),
        r#"{"tag": "VCALENDAR", "D:displayname": "Bench"}"#,
    )
    .unwrap();
    std::fs::write(
        book.join(".Radicale.props"),
        r#"{"tag": "VADDRESSBOOK", "D:displayname": "Contacts"}"#,
    )
    .unwrap();
    let mut bytes = 0;
    for i in 0..events {
        let day = 1 + i % 28;
        let month = 1 + (i / 28) % 12;
        let body = if i % 10 == 0 {
            format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//bench//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n\
                 BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\n\
                 RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
                 BEGIN:VEVENT\r\nUID:bench-{i}\r\nDTSTAMP:20250101T000000Z\r\nDTSTART;TZID=Europe/Berlin:2025{month:02}{day:02}T090000\r\n\
                 DURATION:PT30M\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:series {i}\r\nEND:VEVENT\r\n\
                 BEGIN:VEVENT\r\nUID:bench-{i}\r\nDTSTAMP:20250101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:2025{month:02}{day:02}T090000\r\n\
                 DTSTART;TZID=Europe/Berlin:2025{month:02}{day:02}T100000\r\nDURATION:PT30M\r\nSUMMARY:moved {i}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            )
        } else {
            format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}\r\n\
                 DTSTAMP:20250101T000000Z\r\nDTSTART:2025{month:02}{day:02}T{:02}0000Z\r\nDURATION:PT1H\r\n\
                 SUMMARY:event {i}\r\nLOCATION:room {}\r\nDESCRIPTION:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                8 + i % 9,
                i % 40,
                "agenda ".repeat(20)
            )
        };
        bytes += body.len();
        std::fs::write(cal.join(format!("bench-{i}.ics")), body).unwrap();
    }
    for i in 0..contacts {
        let body = format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{i}\r\nFN:Person {i}\r\nN:{i};Person;;;\r\n\
             EMAIL;TYPE=INTERNET:person{i}@example.net\r\nTEL;TYPE=WORK:+49 30 {i:07}\r\nORG:Example {}\r\nEND:VCARD\r\n",
            i % 50
        );
        bytes += body.len();
        std::fs::write(book.join(format!("card-{i}.vcf")), body).unwrap();
    }
    bytes
}
