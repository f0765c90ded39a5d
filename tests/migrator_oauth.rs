//! End-to-end: `coexist-migrator` logging in to the target with OAuth2 (issue
//! #14), as it must for Microsoft 365 and Google. The target is a real Dovecot
//! whose `passdb oauth2` validates every token itself against a real
//! authorization server's RFC 7662 introspection endpoint
//! (`tests/py/oauth_server.py`, over HTTPS with the test CA); the migrator gets
//! its token from the same server with the client-credentials grant.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::imap_proxy::{base64, Fault, Hold, ImapProxy};
use coexist_e2e::oauth::{AuthServer, AuthSetup};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "coexist-migrator-test";
const SECRET: &str = "cs-7f3a9d1e-the-client-secret-4b2c";
const SCOPE: &str = "https://imap.tenant.cloud.example/.default";
const USERS: [&str; 3] = ["alice", "bob", "dave"];

struct Setup {
    ca: TestCa,
    auth: AuthServer,
    source: Dovecot,
    target: Dovecot,
    dir: tempfile::TempDir,
}

struct Options<'a> {
    /// The application's identity the introspection reports; its domain must be
    /// the tenant's for Dovecot to accept the token.
    app: &'a str,
    lifetime: u64,
    expires_in: Option<u64>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            app: "app@tenant.cloud.example",
            lifetime: 3600,
            expires_in: None,
        }
    }
}

fn start(opts: Options) -> Setup {
    let ca = TestCa::new();
    let auth = AuthServer::start(
        AuthSetup {
            client_id: CLIENT_ID,
            secret: SECRET,
            scope: SCOPE,
            username: opts.app,
            lifetime: opts.lifetime,
            expires_in: opts.expires_in,
        },
        &ca,
    );
    let source_users: Vec<String> = USERS.iter().map(|u| format!("{u}@corp.example")).collect();
    let target_users: Vec<String> = USERS
        .iter()
        .map(|u| format!("{u}@tenant.cloud.example"))
        .collect();
    let source = Dovecot::start(
        DovecotSetup {
            name: "source",
            users: source_users.iter().map(|u| (u.as_str(), "pw")).collect(),
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    // The target's users have passwords nobody knows: only a token opens them.
    let target = Dovecot::start_with(
        DovecotSetup {
            name: "target",
            users: target_users
                .iter()
                .map(|u| (u.as_str(), "no-password-login-here"))
                .collect(),
            quota: Some("100M"),
            max_mail_size: None,
            tls: true,
        },
        &ca,
        &auth.dovecot_passdb(),
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, user) in source_users.iter().enumerate() {
        seed(&source, dir.path(), user, 3 + i);
    }
    let s = Setup {
        ca,
        auth,
        source,
        target,
        dir,
    };
    s.write_config(&s.target.url(), "xoauth2", "basic");
    s
}

fn seed(source: &Dovecot, dir: &Path, user: &str, n: usize) {
    let files = dir.join(format!("seed-{user}"));
    std::fs::create_dir_all(&files).unwrap();
    let spec: Vec<Value> = (0..n)
        .map(|i| {
            let file = files.join(format!("{i}.eml"));
            let folder = if i % 2 == 0 { "INBOX" } else { "Archive" };
            std::fs::write(
                &file,
                format!(
                    "From: carol@example.net\r\nTo: {user}\r\nSubject: m{i}\r\nMessage-ID: <{i}.{user}>\r\n\r\nbody {i}\r\n"
                ),
            )
            .unwrap();
            serde_json::json!({"folder": folder, "flags": ["\\Seen"], "date": "01-Jan-2024 10:00:00 +0000", "file": file})
        })
        .collect();
    let spec_file = files.join("spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    source.seed(user, &spec_file);
}

impl Setup {
    fn write_config(&self, target_url: &str, sasl: &str, client_auth: &str) {
        let d = self.dir.path();
        std::fs::write(d.join("ca.pem"), &self.ca.ca_pem).unwrap();
        std::fs::write(d.join("source.password"), format!("{}\n", MASTER.1)).unwrap();
        std::fs::write(d.join("target.client-secret"), format!("{SECRET}\n")).unwrap();
        if !d.join("contacts").exists() {
            std::fs::write(d.join("contacts"), "# address target [route]\n").unwrap();
        }
        let mut users = "address,display_name,target,quota,enabled\n".to_string();
        for u in USERS {
            users.push_str(&format!("{u}@corp.example,{u},,,true\n"));
        }
        std::fs::write(d.join("users.csv"), users).unwrap();
        std::fs::write(
            d.join("migrator.toml"),
            format!(
                r#"[directory]
users = "users.csv"

[routing]
contacts = "contacts"
target_template = "{{local}}@tenant.cloud.example"

[source]
url = "{source}"
auth = "master"
master_user = "{master}"
password_file = "source.password"
ca = "ca.pem"

[target]
url = "{target_url}"
auth = "oauth2"
sasl = "{sasl}"
token_url = "{token_url}"
client_id = "{CLIENT_ID}"
client_secret_file = "target.client-secret"
scope = "{SCOPE}"
client_auth = "{client_auth}"
ca = "ca.pem"

[migration]
parallel = 2
state_dir = "state"
"#,
                source = self.source.url(),
                master = MASTER.0,
                token_url = self.auth.token_url(),
            ),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(coexist_e2e::binary("coexist-migrator"));
        c.arg("--config")
            .arg(self.dir.path().join("migrator.toml"))
            .args(args);
        c
    }

    /// Runs the migrator; (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().expect("run coexist-migrator");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn report_path(&self) -> String {
        self.dir.path().join("report.json").display().to_string()
    }

    fn report(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.report_path()).unwrap()).unwrap()
    }

    /// Messages per folder of `user` (local part) on one side, non-empty only.
    fn counts(side: &Dovecot, address: &str) -> Vec<(String, usize)> {
        side.dump(address)
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_array().unwrap().len()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn assert_copied(&self, user: &str) {
        let src = Setup::counts(&self.source, &format!("{user}@corp.example"));
        let dst = Setup::counts(&self.target, &format!("{user}@tenant.cloud.example"));
        assert!(!src.is_empty());
        assert_eq!(src, dst, "{user}");
    }

    /// Target logins by SASL mechanism, from Dovecot's own log.
    fn target_logins(&self, method: &str) -> usize {
        self.target
            .log()
            .lines()
            .filter(|l| {
                l.contains("imap-login: Info: Login: user=")
                    && l.contains(&format!("method={method}"))
            })
            .count()
    }
}

/// Everything the migrator wrote: stdout, stderr, the report, the state
/// folder, the contacts table, `status --json`.
fn written_bytes(s: &Setup, outputs: &[&str]) -> Vec<u8> {
    let mut all: Vec<u8> = outputs.iter().flat_map(|o| o.bytes()).collect();
    let (_, status, err) = s.run(&["status", "--json"]);
    all.extend(status.bytes().chain(err.bytes()));
    let mut stack = vec![s.dir.path().join("state")];
    stack.push(s.dir.path().join("report.json"));
    stack.push(s.dir.path().join("contacts"));
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&p) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Neither the client secret nor any token, raw or inside a SASL response or a
/// Basic header, appears in what the migrator wrote.
fn assert_no_secret(s: &Setup, written: &[u8]) {
    let mut needles = vec![
        SECRET.to_string(),
        base64(format!("{CLIENT_ID}:{SECRET}").as_bytes()),
    ];
    for token in s.auth.tokens() {
        needles.push(token.clone());
        for u in USERS {
            let login = format!("{u}@tenant.cloud.example");
            needles.push(base64(
                format!("user={login}\x01auth=Bearer {token}\x01\x01").as_bytes(),
            ));
        }
    }
    assert!(needles.len() > 2, "no token was issued");
    for n in &needles {
        assert!(!contains(written, n), "a secret was written: {n}");
    }
}

#[test]
fn xoauth2_one_token_for_every_mailbox_and_no_secret_in_anything_written() {
    let s = start(Options::default());
    let report = s.report_path();
    let mut args = vec!["migrate", "--all-ready", "--report", &report];
    args.extend(["--parallel", "2"]);
    // At the most verbose level: nothing there may carry a secret either.
    let out = s.command(&args).env("RUST_LOG", "trace").output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("TRACE"), "trace logging was on: {stderr}");
    for u in USERS {
        s.assert_copied(u);
    }
    // Three mailboxes, two at a time: one token, by HTTP Basic; each login
    // checked by Dovecot against the introspection endpoint.
    assert_eq!(s.auth.count("fetches"), 1, "{}", s.auth.stats());
    assert_eq!(s.auth.count("basic"), 1);
    assert_eq!(
        s.target_logins("XOAUTH2"),
        USERS.len(),
        "{}",
        s.target.log()
    );
    assert!(s.auth.count("introspections") >= USERS.len() as u64);
    assert_eq!(s.auth.count("inactive"), 0);
    let report = s.report();
    assert_eq!(report["users"].as_array().unwrap().len(), USERS.len());

    let written = written_bytes(&s, &[&stdout, &stderr]);
    assert_no_secret(&s, &written);
}

#[test]
fn oauthbearer_with_client_secret_post() {
    let s = start(Options::default());
    s.write_config(&s.target.url(), "oauthbearer", "post");
    let (code, out, err) = s.run(&["migrate", "alice@corp.example"]);
    assert_eq!(code, 0, "{out}\n{err}");
    s.assert_copied("alice");
    assert_eq!(s.auth.count("post"), 1, "{}", s.auth.stats());
    assert_eq!(s.auth.count("basic"), 0);
    assert_eq!(s.target_logins("OAUTHBEARER"), 1, "{}", s.target.log());
}

/// Holds alice's run at her quota lookup on the target (she is logged in with
/// the first token), lets `between` happen, and lets the run go on; bob then
/// logs in.
fn with_a_pause_after_the_first_login(s: &Setup, between: impl FnOnce()) -> (i32, String) {
    let proxy = ImapProxy::start(
        &s.ca,
        s.target.imaps_port,
        Fault::None,
        Some(Hold::Line(b"GETQUOTAROOT".to_vec())),
    );
    s.write_config(&proxy.url(), "xoauth2", "basic");
    let report = s.report_path();
    let child = s
        .command(&[
            "migrate",
            "alice@corp.example",
            "bob@corp.example",
            "--parallel",
            "1",
            "--report",
            &report,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(proxy.wait_held(Duration::from_secs(60)), "never held");
    assert_eq!(s.auth.count("fetches"), 1);
    between();
    proxy.release();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_token_revoked_mid_run_is_fetched_again_and_the_copy_goes_on() {
    let s = start(Options::default());
    let (code, out) = with_a_pause_after_the_first_login(&s, || s.auth.revoke_all());
    assert_eq!(code, 0, "{out}");
    s.assert_copied("alice");
    s.assert_copied("bob");
    // Bob's login presented the revoked token, Dovecot refused it, and the one
    // new token let him in.
    assert_eq!(s.auth.count("fetches"), 2, "{}", s.auth.stats());
    assert!(s.auth.count("inactive") >= 1, "{}", s.auth.stats());
    assert_eq!(s.report()["users"][1]["result"], "ok");
}

#[test]
fn a_token_about_to_expire_is_not_presented() {
    // Valid 61 s: handed out for 1 s only (60 s before its expiry).
    let s = start(Options {
        lifetime: 61,
        ..Options::default()
    });
    let (code, out) = with_a_pause_after_the_first_login(&s, || {
        // Until the first token is within a minute of its expiry (a moment
        // of wall-clock time is what is being tested here).
        let issued = s.auth.stats()["issued_at"][0].as_f64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while now_epoch() < issued + 1.2 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert_eq!(code, 0, "{out}");
    s.assert_copied("bob");
    // A new token for bob, and no login was refused on the way.
    assert_eq!(s.auth.count("fetches"), 2, "{}", s.auth.stats());
    assert_eq!(s.auth.count("inactive"), 0, "{}", s.auth.stats());
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_token_refused_twice_fails_the_user_with_the_servers_words() {
    // The token is for another tenant: Dovecot refuses every one.
    let s = start(Options {
        app: "app@other-tenant.example",
        ..Options::default()
    });
    let report = s.report_path();
    let (code, out, err) = s.run(&["migrate", "alice@corp.example", "--report", &report]);
    assert_eq!(code, 1, "{out}\n{err}");
    let error = s.report()["users"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("AUTHENTICATIONFAILED"), "{error}");
    // XOAUTH2's base64 error JSON, decoded.
    assert!(error.contains("status=401"), "{error}");
    assert!(error.contains("newly fetched token"), "{error}");
    assert_eq!(s.auth.count("fetches"), 2, "{}", s.auth.stats());
}

#[test]
fn invalid_client_is_a_configuration_error_naming_client_id_and_token_url() {
    let s = start(Options::default());
    std::fs::write(
        s.dir.path().join("target.client-secret"),
        "not-the-secret\n",
    )
    .unwrap();
    let contacts = std::fs::read_to_string(s.dir.path().join("contacts")).unwrap();
    let (code, out, err) = s.run(&["migrate", "alice@corp.example"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("invalid_client"), "{err}");
    assert!(err.contains(CLIENT_ID), "{err}");
    assert!(err.contains(&s.auth.token_url()), "{err}");
    assert!(!err.contains("not-the-secret") && !out.contains("not-the-secret"));
    // Nothing was written: no contact, no mail.
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("contacts")).unwrap(),
        contacts
    );
    assert!(Setup::counts(&s.target, "alice@tenant.cloud.example").is_empty());
    assert_eq!(s.auth.count("refused"), 1);
}

#[test]
fn check_gets_a_token_and_opens_the_mailbox_with_it() {
    let s = start(Options::default());
    let (code, out, err) = s.run(&["check", "alice@corp.example"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let token = out
        .lines()
        .find(|l| l.starts_with("ok    target token endpoint: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(token.contains(CLIENT_ID), "{token}");
    assert!(
        out.contains("ok    user alice@corp.example: both mailboxes open"),
        "{out}"
    );
    assert_eq!(s.target_logins("XOAUTH2"), 1, "{}", s.target.log());

    std::fs::write(s.dir.path().join("target.client-secret"), "wrong\n").unwrap();
    let (code, out, _) = s.run(&["check", "alice@corp.example"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("fail  target token endpoint: target: the token endpoint"),
        "{out}"
    );
    assert!(
        out.contains("fix: check client_id, client_secret_file and scope"),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !out.contains("wrong\n"));
}

#[test]
fn an_unreachable_token_endpoint_fails_the_users_that_need_it_not_the_run() {
    let s = start(Options::default());
    // Nothing listens there (the port was free a moment ago).
    let closed = coexist_e2e::free_port();
    let path = s.dir.path().join("migrator.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            &s.auth.token_url(),
            &format!("https://127.0.0.1:{closed}/token"),
        ),
    )
    .unwrap();
    let report = s.report_path();
    let (code, out, err) = s.run(&["migrate", "alice@corp.example", "--report", &report]);
    // Tried again after 1 s, 2 s, 4 s, then the user fails: exit 1, not 2.
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("again in 1 s") && err.contains("again in 4 s"),
        "{err}"
    );
    let error = s.report()["users"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("is unavailable"), "{error}");
    assert!(
        error.contains(&format!("127.0.0.1:{closed}/token")),
        "{error}"
    );
    assert!(Setup::counts(&s.target, "alice@tenant.cloud.example").is_empty());
}
