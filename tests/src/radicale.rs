//! Real Radicale instances (Debian's `radicale`, 3.1.8) for the migrator's
//! calendar and contacts tests: each in its own temporary folder with its own
//! config, HTTPS with a certificate from the test's CA, htpasswd users, and a
//! rights file that lets `admin` (the master user) read and write every
//! user's collections — how an administrator reaches any user's calendars on
//! Radicale. Seeding and inspecting go through `tests/py/dav.py`, a client
//! independent of the migrator.

use crate::dovecot::{TestCa, MASTER};
use crate::{free_port, python};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Radicale.
pub struct Radicale {
    /// Its folder (config, users, rights, collections, log).
    pub dir: tempfile::TempDir,
    /// The HTTPS port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

/// Admin first (every collection), then each user's own (Radicale's
/// `owner_only` rules); first match wins.
const RIGHTS: &str = "[admin]\nuser: admin\ncollection: .*\npermissions: RrWw\n\n\
[root]\nuser: .+\ncollection:\npermissions: R\n\n\
[principal]\nuser: .+\ncollection: {user}\npermissions: RW\n\n\
[calendars]\nuser: .+\ncollection: {user}/[^/]+\npermissions: rw\n";

impl Radicale {
    /// Starts Radicale for `users` (`login`, `password`) plus `admin`;
    /// returns when it answers HTTPS.
    pub fn start(name: &str, users: &[(&str, &str)], ca: &TestCa) -> Radicale {
        Radicale::start_with(name, users, ca, "")
    }

    /// [`Radicale::start`] with more `[server]` settings (e.g.
    /// `max_content_length = 4000`: bigger PUTs get 413).
    pub fn start_with(name: &str, users: &[(&str, &str)], ca: &TestCa, server: &str) -> Radicale {
        let dir = tempfile::Builder::new()
            .prefix(&format!("radicale-{name}-"))
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("cert.pem"), &ca.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &ca.key_pem).unwrap();
        std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
        let mut htpasswd: String = users.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
        htpasswd.push_str(&format!("{}:{}\n", MASTER.0, MASTER.1));
        std::fs::write(d.join("users"), htpasswd).unwrap();
        std::fs::write(d.join("rights"), RIGHTS).unwrap();
        let port = free_port();
        std::fs::write(
            d.join("config"),
            format!(
                "[server]\nhosts = 127.0.0.1:{port}\nssl = True\ncertificate = {0}/cert.pem\nkey = {0}/key.pem\n{server}\n\
                 [auth]\ntype = htpasswd\nhtpasswd_filename = {0}/users\nhtpasswd_encryption = plain\ndelay = 0\n\
                 [rights]\ntype = from_file\nfile = {0}/rights\n\
                 [storage]\nfilesystem_folder = {0}/collections\n\
                 [logging]\nlevel = warning\n",
                d.display()
            ),
        )
        .unwrap();
        let child = spawn(d);
        let mut r = Radicale { dir, port, child };
        r.wait_ready();
        r
    }

    /// A Radicale that trusts the `X-Remote-User` header (`[auth] type =
    /// http_x_remote_user`), for a proxy in front that checks the credentials
    /// (nginx with `auth_request`): plain HTTP on loopback, `app` may read and
    /// write every collection. Returns once it accepts connections.
    pub fn start_remote_user(name: &str, app: &str) -> Radicale {
        let dir = tempfile::Builder::new()
            .prefix(&format!("radicale-{name}-"))
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let rights = format!(
            "[app]\nuser: {}\ncollection: .*\npermissions: RrWw\n",
            regex_escape(app)
        );
        std::fs::write(d.join("rights"), rights).unwrap();
        let port = free_port();
        std::fs::write(
            d.join("config"),
            format!(
                "[server]\nhosts = 127.0.0.1:{port}\n\
                 [auth]\ntype = http_x_remote_user\n\
                 [rights]\ntype = from_file\nfile = {0}/rights\n\
                 [storage]\nfilesystem_folder = {0}/collections\n\
                 [logging]\nlevel = warning\n",
                d.display()
            ),
        )
        .unwrap();
        let mut child = spawn(d);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("radicale exited ({status})");
            }
            assert!(Instant::now() < deadline, "radicale did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Radicale { dir, port, child }
    }

    /// What Radicale stored under `home` (e.g. `"alice@tenant.cloud.example"`),
    /// read from its folder: display name -> item file name -> data.
    pub fn stored(
        &self,
        home: &str,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
        let root = self
            .dir
            .path()
            .join("collections/collection-root")
            .join(home);
        let mut out = std::collections::BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&root) else {
            return out;
        };
        for c in entries.flatten().filter(|e| e.path().is_dir()) {
            let props: serde_json::Value = std::fs::read(c.path().join(".Radicale.props"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let name = props["D:displayname"].as_str().map_or_else(
                || c.file_name().to_string_lossy().into_owned(),
                str::to_string,
            );
            let items = std::fs::read_dir(c.path())
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap(),
                    )
                })
                .collect();
            out.insert(name, items);
        }
        out
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("radicale exited ({status}):\n{}", self.log());
            }
            // An authenticated PROPFIND that answers 207: listening and serving.
            let (ok, out, _) = self.dav(MASTER.0, MASTER.1, &["synctoken", "/"]);
            if ok || out.contains("207") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "radicale did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radicale.log")).unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Runs `tests/py/dav.py` against this server as `user`.
    pub fn dav(&self, user: &str, password: &str, args: &[&str]) -> (bool, String, String) {
        let ca = self.dir.path().join("ca.pem");
        let mut all = vec![
            self.url(),
            user.to_string(),
            password.to_string(),
            ca.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        python("dav.py", &refs)
    }

    /// Like [`Radicale::dav`], panicking on failure; returns stdout.
    pub fn must(&self, user: &str, password: &str, args: &[&str]) -> String {
        let (ok, out, err) = self.dav(user, password, args);
        assert!(
            ok,
            "dav.py {args:?} as {user}: {out}{err}\nradicale log:\n{}",
            self.log()
        );
        out
    }

    /// PUTs `data` at `path` as `user`.
    pub fn put(&self, user: &str, password: &str, path: &str, data: &str, scratch: &Path) {
        let file = scratch.join(format!("put-{}", path.replace('/', "_")));
        std::fs::write(&file, data).unwrap();
        self.must(user, password, &["put", path, file.to_str().unwrap()]);
    }

    /// Every collection under `home` with its items (as the admin).
    pub fn dump(&self, home: &str) -> serde_json::Value {
        let out = self.must(MASTER.0, MASTER.1, &["dump", home]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("dump: {e}: {out}"))
    }
}

/// `text` as a Python regular expression matching only itself.
fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = !c.is_ascii_alphanumeric() && c != '@' && c != '-' && c != '_';
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Radicale on the config in `d`, its output in `d/radicale.log`; Debian's
/// launcher (its own /usr/bin/python3, where the module is).
fn spawn(d: &std::path::Path) -> std::process::Child {
    let log = std::fs::File::create(d.join("radicale.log")).unwrap();
    Command::new("/usr/bin/radicale")
        .arg("--config")
        .arg(d.join("config"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("/usr/bin/radicale (apt-get install radicale)")
}
