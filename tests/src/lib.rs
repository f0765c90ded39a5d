//! Harness for end-to-end tests: start the built `coexist-relay` on loopback with a
//! generated config, talk to it with raw SMTP, Python's smtplib and swaks, and look at
//! what it wrote. Ports are chosen by the OS (port 0) and read back from the log.

pub mod cyrus;
pub mod dns;
pub mod dovecot;
pub mod faults;
pub mod http_proxy;
pub mod imap_proxy;
pub mod knot;
pub mod ldap_proxy;
pub mod load;
pub mod migrator_config;
pub mod mta_sts;
pub mod nginx;
pub mod oauth;
pub mod pki;
pub mod postfix;
pub mod prometheus;
pub mod radicale;
pub mod sink;
pub mod slapd;
pub mod smtp;
pub mod tcp_meter;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Path of a binary built in this workspace (`coexist-relay`, ...), next to the test
/// executable's folder (`target/<profile>/deps/..`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // A bench binary lives beside the others (target/<profile>/).
    if let Some(beside) = exe.parent().map(|d| d.join(name)).filter(|p| p.is_file()) {
        return beside;
    }
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run the suite with `cargo nextest run --workspace`",
        path.display()
    );
    path
}

/// Folder of the repository (for shipped configs and Python scripts).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A loopback port nothing listens on, for a peer (Dovecot, Postfix, …) that
/// must be told its port rather than bind port 0 itself.
///
/// Taken below the kernel's ephemeral range: a port from `bind(0)` comes from
/// that range, and between its release and the peer's own bind any outgoing
/// connection on the machine may take it as its local port (a CI run failed
/// so, with Dovecot's "Address already in use", while another test opened
/// thousands of connections). Below the range only another test's pick can
/// collide; the start varies by process and time and the port is checked free.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (low, high) = ephemeral_range();
    let (first, last) = if low > 11_000 {
        (10_000, low - 1)
    } else {
        (high.saturating_add(1).max(10_000), 65_535)
    };
    let span = u64::from(last - first) + 1;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = u64::from(std::process::id()) * 7919 + u64::from(nanos);
    for _ in 0..1_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // A multiplicative hash spreads consecutive picks over the span.
        let hash = seed.wrapping_add(n).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let port = first + (hash % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {first}-{last}");
}

/// The kernel's ephemeral port range (Linux's default when unreadable).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|n| n.parse::<u16>());
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999))
}

/// A relay configuration under construction: sections of TOML text.
#[derive(Clone)]
pub struct RelaySetup {
    sections: BTreeMap<String, String>,
    listeners: Vec<String>,
    contacts: Option<String>,
    nofile: Option<u64>,
}

impl Default for RelaySetup {
    fn default() -> Self {
        let mut sections = BTreeMap::new();
        sections.insert(
            "server".into(),
            "hostname = \"relay.test\"\nspool_dir = \"spool\"\nshutdown_grace = \"5s\"\n".into(),
        );
        sections.insert(
            "tls".into(),
            "cert = \"certs/relay.crt\"\nkey = \"certs/relay.key\"\n".into(),
        );
        sections.insert(
            "relay".into(),
            "accepted_domains = [\"corp.example\"]\ntrusted_networks = [\"127.0.0.1/32\"]\n".into(),
        );
        sections.insert("routing".into(), "contacts = \"contacts\"\n".into());
        // Part 1 does not deliver; next hops point at a closed port.
        sections.insert(
            "route.onprem".into(),
            "smarthost = [\"127.0.0.1:9\"]\n".into(),
        );
        sections.insert(
            "route.cloud".into(),
            "smarthost = [\"127.0.0.1:9\"]\n".into(),
        );
        sections.insert("route.internet".into(), "mx = true\n".into());
        sections.insert("metrics".into(), "bind = \"127.0.0.1:0\"\n".into());
        RelaySetup {
            sections,
            listeners: vec![
                "name = \"smtp\"\nbind = \"127.0.0.1:0\"\ntls = \"starttls\"\n".into(),
                "name = \"smtps\"\nbind = \"127.0.0.1:0\"\ntls = \"implicit\"\n".into(),
            ],
            contacts: Some("user3@corp.example  user3@tenant.cloud.example\n".into()),
            nofile: None,
        }
    }
}

impl RelaySetup {
    /// Replaces (or adds) a section, e.g. `("limits", "max_recipients = 2")`.
    pub fn section(mut self, name: &str, body: &str) -> Self {
        self.sections.insert(name.into(), format!("{body}\n"));
        self
    }

    /// Replaces the listeners (each a `[[listener]]` body).
    pub fn listeners(mut self, listeners: &[&str]) -> Self {
        self.listeners = listeners.iter().map(|l| format!("{l}\n")).collect();
        self
    }

    /// Sets the contacts table text.
    pub fn contacts(mut self, text: &str) -> Self {
        self.contacts = Some(text.into());
        self
    }

    /// Writes no contacts file (with the directory as the source: no cache yet).
    pub fn no_contacts(mut self) -> Self {
        self.contacts = None;
        self
    }

    /// Starts the relay with this open-file limit (RLIMIT_NOFILE, soft and hard),
    /// through `prlimit`, as a service manager's `LimitNOFILE=` would.
    pub fn nofile(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }

    /// The relay.toml text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, body) in &self.sections {
            if name == "metrics" {
                continue;
            }
            out.push_str(&format!("[{name}]\n{body}\n"));
        }
        for l in &self.listeners {
            out.push_str(&format!("[[listener]]\n{l}\n"));
        }
        if let Some(m) = self.sections.get("metrics") {
            out.push_str(&format!("[metrics]\n{m}\n"));
        }
        out
    }

    /// Writes the config into a new folder and starts the relay.
    pub fn start(self) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("relay.toml"), self.render()).expect("write config");
        if let Some(contacts) = &self.contacts {
            std::fs::write(dir.path().join("contacts"), contacts).expect("write contacts");
        }
        let mut relay = Relay::new_in(dir);
        relay.nofile = self.nofile;
        relay.restart();
        relay
    }
}

/// Log lines of a running process, with a way to wait for one.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Log {
    /// Waits until a line containing `needle` appears after line `from`; returns its index.
    pub fn wait_for(&self, needle: &str, from: usize, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(i) = lines.iter().skip(from).position(|l| l.contains(needle)) {
                return Some(from + i);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.changed.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Number of lines so far.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// True when nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// A running `coexist-relay run`.
pub struct Relay {
    /// Folder holding relay.toml, contacts, spool/, certs/.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Listener name → bound address.
    pub listeners: HashMap<String, SocketAddr>,
    /// stderr of the process.
    pub log: Arc<Log>,
    /// Address of `/metrics`.
    pub metrics: Option<SocketAddr>,
    /// RLIMIT_NOFILE for the process (None: inherited).
    nofile: Option<u64>,
}

impl Relay {
    /// Starts the relay on the config already in `dir`.
    pub fn start_in(dir: tempfile::TempDir) -> Relay {
        let mut relay = Relay::new_in(dir);
        relay.restart();
        relay
    }

    fn new_in(dir: tempfile::TempDir) -> Relay {
        Relay {
            dir,
            child: None,
            listeners: HashMap::new(),
            log: Arc::new(Log::default()),
            metrics: None,
            nofile: None,
        }
    }

    /// Process id of the running relay.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    /// Starts (again) the process, waiting until every listener is bound.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = match self.nofile {
            // prlimit sets the limit on itself, then execs the relay (same pid).
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg(binary("coexist-relay"));
                c
            }
            None => Command::new(binary("coexist-relay")),
        };
        let mut child = command
            .arg("--config")
            .arg(self.config_path())
            .arg("run")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coexist-relay");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::clone(&self.log);
        let start = log.len();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("COEXIST_TEST_LOG").is_some() {
                    eprintln!("relay: {line}");
                }
                log.lines.lock().unwrap().push(line);
                log.changed.notify_all();
            }
            log.lines.lock().unwrap().push("<<stderr closed>>".into());
            log.changed.notify_all();
        });
        self.child = Some(child);
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        let expected = text.matches("[[listener]]").count();
        self.listeners.clear();
        let Some(i) = self
            .log
            .wait_for("metrics endpoint ready", start, Duration::from_secs(30))
        else {
            panic!("relay did not start:\n{}", self.log.text());
        };
        let line = self.log.lines.lock().unwrap()[i].clone();
        self.metrics = field(&line, "addr").and_then(|a| a.parse().ok());
        let mut from = start;
        while self.listeners.len() < expected {
            let Some(i) = self
                .log
                .wait_for(" listening", from, Duration::from_secs(30))
            else {
                panic!("relay did not start:\n{}", self.log.text());
            };
            let line = self.log.lines.lock().unwrap()[i].clone();
            let name = field(&line, "listener").expect("listener field");
            let addr = field(&line, "addr").expect("addr field").parse().unwrap();
            self.listeners.insert(name, addr);
            from = i + 1;
        }
    }

    /// Address of a listener by name.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    /// Sends a signal (by name, e.g. "HUP", "KILL", "TERM").
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit (after a signal); returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            // Polling a child's exit status has no event to await in std.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The spool folder.
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Runs another `coexist-relay` command on this relay's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary("coexist-relay"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .expect("run coexist-relay")
    }

    /// Every queued (not finished) message record in the spool whose bytes
    /// contain `needle`: first line, envelope and message, as in the segment
    /// files (`queue/<n>.seg`, finished ids in `queue/<n>.done`).
    pub fn spooled_containing(&self, needle: &[u8]) -> Vec<Vec<u8>> {
        let queue = self.spool().join("queue");
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&queue)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        segments.retain(|p| p.extension().is_some_and(|e| e == "seg"));
        segments.sort();
        let mut found = Vec::new();
        for path in segments {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let done = std::fs::read_to_string(path.with_extension("done")).unwrap_or_default();
            for record in spool_records(&bytes) {
                let first_line = record.split(|&b| b == b'\n').next().unwrap_or_default();
                let first_line = String::from_utf8_lossy(first_line);
                let id = first_line.split(' ').nth(2).unwrap_or_default();
                let finished = done.lines().any(|l| l == id);
                if !finished && record.windows(needle.len()).any(|w| w == needle) {
                    found.push(record.to_vec());
                }
            }
        }
        found
    }
}

/// Splits a segment file into its records by the lengths in each first line
/// (`COEXIST-SPOOL 2 <id> <envelope length> <message length> <crc>`); stops at
/// anything else (an unfinished write).
fn spool_records(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut records = Vec::new();
    while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&bytes[..nl]);
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(env), Some(msg)) = (
            fields.get(3).and_then(|f| f.parse::<usize>().ok()),
            fields.get(4).and_then(|f| f.parse::<usize>().ok()),
        ) else {
            break;
        };
        let len = nl + 1 + env + msg;
        if fields[0] != "COEXIST-SPOOL" || len > bytes.len() {
            break;
        }
        records.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    records
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `key=value` (value possibly quoted) from a tracing log line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = if let Some(stripped) = rest.strip_prefix('"') {
        stripped.split('"').next()?
    } else {
        rest.split_whitespace().next()?
    };
    Some(value.to_string())
}

/// Runs a Python script from `tests/py/` with arguments; returns (success, stdout, stderr).
pub fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/py").join(script))
        .args(args)
        .output()
        .expect("python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A minimal HTTP/1.1 GET (Connection: close); returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

/// Runs `promtool check metrics` (Prometheus's own linter) on a scraped page and
/// fails the test with its findings.
pub fn promtool_check_metrics(page: &str) {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (tests/run installs prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Like [`http_get`], `None` when the server cannot be reached or answers garbage.
pub fn try_http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Some((status, body))
}

impl Relay {
    /// Scrapes `/metrics` and returns the value of one series, e.g.
    /// `coexist_messages_received_total{listener="smtp"}` (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        let (status, body) = http_get(self.metrics.expect("metrics endpoint"), "/metrics");
        assert_eq!(status, 200);
        metric_value(&body, series)
    }
}

/// Reads one series' value from a Prometheus text page.
pub fn metric_value(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}
