//! End-to-end (issue 13): DAV with `auth = "oauth2"` on the target. Radicale
//! cannot check bearer tokens, so a real nginx sits in front of the target
//! Radicale and checks each request's `Authorization: Bearer` with
//! `auth_request` against the test authorization server (the one that
//! serves RFC 7662 introspection to Dovecot in the OAuth2 tests), passing the
//! token's user on as `X-Remote-User` (`[auth] type = http_x_remote_user`).
//! The target Dovecot checks the same token for the mail.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::nginx::Nginx;
use coexist_e2e::oauth::{AuthServer, AuthSetup};
use coexist_e2e::radicale::Radicale;
use std::collections::BTreeSet;
use std::process::Command;

const CLIENT_ID: &str = "coexist-migrator-dav";
const SECRET: &str = "cs-91d0c2aa-the-dav-client-secret-77e1";
const SCOPE: &str = "https://dav.tenant.cloud.example/.default";
const APP: &str = "app@tenant.cloud.example";
const ALICE: &str = "alice@corp.example";
const ALICE_CLOUD: &str = "alice@tenant.cloud.example";
const EVENTS: usize = 40;

fn event(i: usize) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coexist//test//EN\r\nBEGIN:VEVENT\r\nUID:ev-{i}\r\n\
         DTSTAMP:20250101T080000Z\r\nDTSTART:20250310T{:02}0000Z\r\nDURATION:PT1H\r\nSUMMARY:meeting {i}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
        i % 24
    )
}

fn vcard(i: usize) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{i}\r\nFN:Person {i}\r\nN:{i};Person;;;\r\nEND:VCARD\r\n")
}

fn uids(items: &std::collections::BTreeMap<String, String>) -> BTreeSet<String> {
    items
        .values()
        .filter_map(|d| {
            d.lines()
                .find_map(|l| l.trim_end().strip_prefix("UID:").map(str::to_string))
        })
        .collect()
}

/// Every token is revoked after `revoke_after` successful checks at nginx:
/// the migrator's cached token stops working in the middle of the DAV copy.
#[test]
fn dav_with_a_bearer_token_copies_and_a_token_revoked_mid_run_is_fetched_again() {
    let ca = TestCa::new();
    let auth = AuthServer::start_revoking_after(
        AuthSetup {
            client_id: CLIENT_ID,
            secret: SECRET,
            scope: SCOPE,
            username: APP,
            lifetime: 3600,
            expires_in: None,
        },
        &ca,
        // Discovery, the collections, the listings, then the PUTs: the 15th
        // check is well inside the 40 events' PUTs.
        15,
    );
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
    let target_imap = Dovecot::start_with(
        DovecotSetup {
            name: "target",
            users: vec![(ALICE_CLOUD, "no-password-login-here")],
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
        &auth.dovecot_passdb(),
    );
    let source = Radicale::start("source", &[(ALICE, "pw")], &ca);
    let target = Radicale::start_remote_user("target", APP);
    let proxy = Nginx::start_auth_proxy(target.port, &auth.auth_url(), &ca);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    source.must(
        ALICE,
        "pw",
        &["mkcalendar", "/alice@corp.example/work/", "Work"],
    );
    source.must(
        ALICE,
        "pw",
        &["mkaddressbook", "/alice@corp.example/contacts/", "Contacts"],
    );
    for i in 0..EVENTS {
        source.put(
            ALICE,
            "pw",
            &format!("/alice@corp.example/work/ev-{i}.ics"),
            &event(i),
            d,
        );
    }
    for i in 0..3 {
        source.put(
            ALICE,
            "pw",
            &format!("/alice@corp.example/contacts/card-{i}.vcf"),
            &vcard(i),
            d,
        );
    }
    // Without a token nginx lets nothing through to Radicale.
    let (ok, out, err) = coexist_e2e::python(
        "dav.py",
        &[
            &proxy.url(),
            ALICE_CLOUD,
            "pw",
            ca_path(d, &ca).to_str().unwrap(),
            "synctoken",
            "/",
        ],
    );
    assert!(!ok && format!("{out}{err}").contains("401"), "{out}{err}");

    std::fs::write(d.join("source.password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("target.client-secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(d.join("contacts"), "# address target [route]\n").unwrap();
    std::fs::write(
        d.join("users.csv"),
        format!("address,display_name,target,quota,enabled\n{ALICE},Alice,,,true\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("migrator.toml"),
        format!(
            r#"[directory]
users = "users.csv"
[routing]
contacts = "contacts"
target_template = "{{local}}@tenant.cloud.example"
[source]
url = "{}"
auth = "master"
master_user = "{}"
password_file = "source.password"
ca = "ca.pem"
dav_url = "{}"
dav_home = "/{{address}}/"
[target]
url = "{}"
auth = "oauth2"
token_url = "{}"
client_id = "{CLIENT_ID}"
client_secret_file = "target.client-secret"
scope = "{SCOPE}"
ca = "ca.pem"
dav_url = "{}"
dav_home = "/{{target}}/"
[migration]
content = ["mail", "calendar", "contacts"]
state_dir = "state"
"#,
            source_imap.url(),
            MASTER.0,
            source.url(),
            target_imap.url(),
            auth.token_url(),
            proxy.url(),
        ),
    )
    .unwrap();

    let out = Command::new(coexist_e2e::binary("coexist-migrator"))
        .arg("--config")
        .arg(d.join("migrator.toml"))
        .args(["migrate", ALICE])
        .output()
        .expect("run coexist-migrator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\nnginx:\n{}\nradicale:\n{}",
        proxy.log(),
        target.log()
    );

    // Everything arrived, through nginx, as the application.
    let stored = target.stored(ALICE_CLOUD);
    let want: BTreeSet<String> = (0..EVENTS).map(|i| format!("ev-{i}")).collect();
    assert_eq!(uids(&stored["Work"]), want, "{stored:#?}");
    let cards: BTreeSet<String> = (0..3).map(|i| format!("card-{i}")).collect();
    assert_eq!(uids(&stored["Contacts"]), cards);
    // The revoked token was refused at least once, and one new token (not one
    // per request or per PUT in flight) carried the copy on.
    assert_eq!(auth.count("revocations"), 1, "{}", auth.stats());
    assert!(auth.count("auth_refused") >= 1, "{}", auth.stats());
    assert_eq!(auth.count("granted"), 2, "{}", auth.stats());
    assert!(auth.count("auths") > 15, "{}", auth.stats());
    // Neither the client secret nor any token is in the output.
    assert!(!text.contains(SECRET), "{text}");
    for token in auth.tokens() {
        assert!(!text.contains(&token), "a token in the output: {text}");
    }
}

fn ca_path(d: &std::path::Path, ca: &TestCa) -> std::path::PathBuf {
    let path = d.join("ca.pem");
    std::fs::write(&path, &ca.ca_pem).unwrap();
    path
}
