//! An MTA-STS policy host for tests: Python's http.server wrapped in TLS
//! (tests/py/mta_sts_server.py) on `IP:443` of a loopback address of the
//! test's choosing (127.0.0.0/8 is all loopback, so tests do not collide),
//! serving one policy file per `mta-sts.<domain>` name; and a policy host
//! that accepts connections and never answers.

use crate::repo_root;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running policy host.
pub struct PolicyServer {
    root: tempfile::TempDir,
    child: Child,
    requests: Arc<Mutex<Vec<String>>>,
}

impl PolicyServer {
    /// Serves HTTPS on `ip:443` with the PEM `cert` and `key`.
    pub fn start(ip: IpAddr, cert: &Path, key: &Path) -> PolicyServer {
        let root = tempfile::tempdir().expect("tempdir");
        let script = repo_root().join("tests/py/mta_sts_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(ip.to_string())
            .arg(cert)
            .arg(key)
            .arg(root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "ready" {
                    let _ = ready_tx.send(());
                } else {
                    seen.lock().unwrap().push(line);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the policy host started (root may bind port 443)");
        PolicyServer {
            root,
            child,
            requests,
        }
    }

    /// Serves `policy` as the policy of `domain` (at mta-sts.<domain>).
    pub fn set_policy(&self, domain: &str, policy: &str) {
        let dir = self
            .root
            .path()
            .join(format!("mta-sts.{domain}/.well-known"));
        std::fs::create_dir_all(&dir).expect("policy folder");
        let tmp = dir.join("mta-sts.txt.new");
        std::fs::write(&tmp, policy).expect("write policy");
        std::fs::rename(&tmp, dir.join("mta-sts.txt")).expect("rename policy");
    }

    /// How many times the policy of `domain` was fetched.
    pub fn fetches(&self, domain: &str) -> usize {
        let host = format!("GET mta-sts.{domain} ");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&host))
            .count()
    }

    /// Stops serving (connections are refused from now on).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the policy of `domain` was fetched `n` times.
    pub fn wait_fetches(&self, domain: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.fetches(domain) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts TCP connections on `ip:443` and never answers: a policy host
/// that times out. Alive until the test process ends.
pub fn silent_host(ip: IpAddr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 443)).expect("bind 443 (root)");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}
