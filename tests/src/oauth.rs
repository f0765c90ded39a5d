//! A real OAuth2 authorization server for the migrator's tests
//! (`tests/py/oauth_server.py`): the client-credentials grant for the
//! migrator, RFC 7662 introspection for Dovecot's `passdb oauth2`, tokens with
//! a lifetime, revocation by SIGUSR1, counters in a JSON file. Over HTTPS with a
//! certificate from the test's CA.

use crate::dovecot::TestCa;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to set the server up.
pub struct AuthSetup<'a> {
    /// The one client it knows.
    pub client_id: &'a str,
    /// Its secret.
    pub secret: &'a str,
    /// The only scope it grants.
    pub scope: &'a str,
    /// The application's identity in the tenant; its domain is what Dovecot
    /// matches the mailbox against (`username_format = %Ld`: an app-only token
    /// opens every mailbox of its tenant).
    pub username: &'a str,
    /// Seconds a token is valid.
    pub lifetime: u64,
    /// What the answers say in `expires_in` (default: the lifetime).
    pub expires_in: Option<u64>,
}

impl AuthServer {
    /// [`AuthServer::start`] with every token revoked after the `n`th
    /// successful `GET /auth` (nginx's `auth_request`).
    pub fn start_revoking_after(setup: AuthSetup, ca: &TestCa, n: u64) -> AuthServer {
        AuthServer::start_args(setup, ca, &["--revoke-after-auths".into(), n.to_string()])
    }

    /// `https://127.0.0.1:PORT/auth`: the `auth_request` endpoint.
    pub fn auth_url(&self) -> String {
        format!("https://127.0.0.1:{}/auth", self.port)
    }

    /// The test CA's certificate, beside the server's files.
    pub fn ca_file(&self) -> PathBuf {
        self.ca_path()
    }
}

/// The running server.
pub struct AuthServer {
    dir: tempfile::TempDir,
    child: Child,
    /// Its HTTPS port on 127.0.0.1.
    pub port: u16,
}

impl AuthServer {
    /// Starts it; returns once it listens.
    pub fn start(setup: AuthSetup, ca: &TestCa) -> AuthServer {
        AuthServer::start_args(setup, ca, &[])
    }

    fn start_args(setup: AuthSetup, ca: &TestCa, more: &[String]) -> AuthServer {
        let dir = tempfile::Builder::new()
            .prefix("oauth-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("cert.pem"), &ca.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &ca.key_pem).unwrap();
        std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(crate::repo_root().join("tests/py/oauth_server.py"))
            .arg(d)
            .args(["--client-id", setup.client_id])
            .args(["--secret", setup.secret])
            .args(["--scope", setup.scope])
            .args(["--username", setup.username])
            .args(["--lifetime", &setup.lifetime.to_string()])
            .arg("--cert")
            .arg(d.join("cert.pem"))
            .arg("--key")
            .arg(d.join("key.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(e) = setup.expires_in {
            cmd.args(["--expires-in", &e.to_string()]);
        }
        cmd.args(more);
        let mut child = cmd.spawn().expect("python3 oauth_server.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(d.join("port")) {
                break text.trim().parse().expect("port");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("oauth_server.py exited with {status}");
            }
            assert!(Instant::now() < deadline, "oauth_server.py did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        AuthServer { dir, child, port }
    }

    /// `https://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("https://127.0.0.1:{}/token", self.port)
    }

    /// The counters: `fetches`, `granted`, `basic`, `post`, `refused`,
    /// `introspections`, `inactive`, `revocations`, `tokens` (every token
    /// issued).
    pub fn stats(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("stats.json")).expect("stats");
        serde_json::from_str(&text).expect("stats json")
    }

    /// One counter.
    pub fn count(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }

    /// Every token issued so far.
    pub fn tokens(&self) -> Vec<String> {
        self.stats()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    }

    /// Revokes every token issued so far; returns once the server has.
    pub fn revoke_all(&self) {
        let before = self.count("revocations");
        let status = Command::new("kill")
            .args(["-USR1", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count("revocations") == before {
            assert!(Instant::now() < deadline, "revocation not done");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The Dovecot settings that make `passdb oauth2` validate tokens here:
    /// written beside the server's files, returned as the config text to add.
    pub fn dovecot_passdb(&self) -> String {
        let ext = self.dir.path().join("dovecot-oauth2.conf.ext");
        std::fs::write(
            &ext,
            format!(
                "introspection_url = https://127.0.0.1:{port}/introspect\n\
                 introspection_mode = post\n\
                 tls_ca_cert_file = {ca}\n\
                 username_attribute = username\n\
                 username_format = %Ld\n\
                 active_attribute = active\n\
                 active_value = true\n",
                port = self.port,
                ca = self.ca_path().display(),
            ),
        )
        .unwrap();
        format!(
            "auth_mechanisms = plain xoauth2 oauthbearer\n\
             passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
            ext.display()
        )
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
