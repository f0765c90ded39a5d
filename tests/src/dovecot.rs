//! Real Dovecot instances for the migrator's end-to-end tests: each one in its own
//! temporary folder with its own `-c` config (base_dir, state, logs, mail inside),
//! TLS with a certificate from a CA made at test time, a passwd-file with the
//! users and a master user (`user*admin`), and optionally a quota. Seeding and
//! inspecting go through Python's imaplib: a client independent of the migrator.

use crate::free_port;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The master user's login and password in every instance.
pub const MASTER: (&str, &str) = ("admin", "masterpw");

/// A CA and a server certificate for 127.0.0.1, made once per test.
pub struct TestCa {
    /// CA certificate (PEM).
    pub ca_pem: String,
    /// Server certificate (PEM).
    pub cert_pem: String,
    /// Server key (PEM).
    pub key_pem: String,
}

impl TestCa {
    /// A fresh CA and a leaf for `localhost` / `127.0.0.1`.
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "coexist test CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let key = KeyPair::generate().expect("leaf key");
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("leaf cert");
        TestCa {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// How to set up one instance.
pub struct DovecotSetup<'a> {
    /// Name for logs (`source`, `target`).
    pub name: &'a str,
    /// Users (`address`, `password`).
    pub users: Vec<(&'a str, &'a str)>,
    /// `quota_rule = *:storage=...` when set (e.g. `"100M"`).
    pub quota: Option<&'a str>,
    /// `quota_max_mail_size` (with `quota`): a bigger APPEND gets
    /// `NO [LIMIT] Mail size is larger than the maximum size allowed by server
    /// configuration`.
    pub max_mail_size: Option<&'a str>,
    /// `ssl = required` (true) or `ssl = no` with plaintext auth allowed.
    pub tls: bool,
}

/// A running Dovecot.
pub struct Dovecot {
    /// Its folder (config, mail, logs).
    pub dir: tempfile::TempDir,
    /// Port of the implicit-TLS listener (0 without TLS).
    pub imaps_port: u16,
    /// Port of the plain / STARTTLS listener.
    pub imap_port: u16,
    child: Child,
}

fn chown_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {}", path.display());
}

impl Dovecot {
    /// Writes the config and starts `dovecot -F`; returns when it accepts connections.
    pub fn start(setup: DovecotSetup, ca: &TestCa) -> Dovecot {
        Dovecot::start_with(setup, ca, "")
    }

    /// As [`Dovecot::start`], with `extra` appended to the config (later
    /// settings override earlier ones; passdbs are tried in order).
    pub fn start_with(setup: DovecotSetup, ca: &TestCa, extra: &str) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix(&format!("dovecot-{}-", setup.name))
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        // Dovecot's unprivileged processes (auth, imap as nobody) must reach it.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("cert.pem"), &ca.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &ca.key_pem).unwrap();
        let passwd: String = setup
            .users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}::::::\n"))
            .collect();
        std::fs::write(d.join("passwd"), passwd).unwrap();
        std::fs::write(
            d.join("master"),
            format!("{}:{{PLAIN}}{}::::::\n", MASTER.0, MASTER.1),
        )
        .unwrap();
        for f in ["passwd", "master"] {
            std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::create_dir_all(d.join("mail")).unwrap();
        std::fs::create_dir_all(d.join("home")).unwrap();
        chown_nobody(&d.join("mail"));
        chown_nobody(&d.join("home"));

        let imap_port = free_port();
        let imaps_port = if setup.tls { free_port() } else { 0 };
        let ssl = if setup.tls {
            format!(
                "ssl = required\nssl_cert = <{0}/cert.pem\nssl_key = <{0}/key.pem\n",
                d.display()
            )
        } else {
            "ssl = no\ndisable_plaintext_auth = no\n".to_string()
        };
        let imaps = if setup.tls {
            format!("  inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n")
        } else {
            String::new()
        };
        let max_mail_size = setup
            .max_mail_size
            .map(|m| format!("  quota_max_mail_size = {m}\n"))
            .unwrap_or_default();
        let quota = match setup.quota {
            Some(q) => format!(
                "mail_plugins = $mail_plugins quota\nprotocol imap {{\n  mail_plugins = $mail_plugins imap_quota\n}}\nplugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage={q}\n{max_mail_size}}}\n"
            ),
            None => String::new(),
        };
        let conf = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
instance_name = coexist-{name}-{imap_port}
protocols = imap
listen = 127.0.0.1
{ssl}
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 0
mail_location = maildir:{d}/mail/%u
auth_master_user_separator = *
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = {d}/master
  master = yes
}}
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
{imaps}}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \Sent
  }}
  mailbox Drafts {{
    special_use = \Drafts
  }}
  mailbox Trash {{
    special_use = \Trash
  }}
  mailbox Junk {{
    special_use = \Junk
  }}
}}
{quota}{extra}"#,
            d = d.display(),
            name = setup.name,
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dovecot");
        let mut dovecot = Dovecot {
            dir,
            imaps_port,
            imap_port,
            child,
        };
        dovecot.wait_listening();
        dovecot
    }

    /// Waits until the listeners accept (Dovecot binds after reading its config).
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ports: Vec<u16> = [self.imap_port, self.imaps_port]
            .into_iter()
            .filter(|&p| p != 0)
            .collect();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dovecot exited with {status}; log:\n{}", self.log());
            }
            if ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The instance's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// `imaps://127.0.0.1:PORT` (or `imap://` without TLS).
    pub fn url(&self) -> String {
        if self.imaps_port != 0 {
            format!("imaps://127.0.0.1:{}", self.imaps_port)
        } else {
            format!("imap://127.0.0.1:{}", self.imap_port)
        }
    }

    /// `imap://127.0.0.1:PORT` (STARTTLS when TLS is on).
    pub fn starttls_url(&self) -> String {
        format!("imap://127.0.0.1:{}", self.imap_port)
    }

    /// Runs doveadm against this instance.
    pub fn doveadm(&self, args: &[&str]) -> std::process::Output {
        Command::new("doveadm")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .args(args)
            .output()
            .expect("doveadm")
    }

    /// Runs an imaplib script against this instance as `user` (logged in via the
    /// master user); `args` follow.
    pub fn imaplib(&self, script: &str, user: &str, args: &[&str]) -> String {
        let (port, tls) = if self.imaps_port != 0 {
            (self.imaps_port, "1")
        } else {
            (self.imap_port, "0")
        };
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!("{PY_COMMON}\n{script}"))
            .arg(port.to_string())
            .arg(tls)
            .arg(format!("{user}*{}", MASTER.0))
            .arg(MASTER.1)
            .args(args)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "imaplib script failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// APPENDs the messages described in `spec` (a JSON file: list of
    /// `{"folder", "flags", "date", "file"}`), creating folders.
    pub fn seed(&self, user: &str, spec: &Path) {
        self.imaplib(PY_SEED, user, &[spec.to_str().unwrap()]);
    }

    /// Every folder with, per message, `[flags, internaldate, sha256, size]`
    /// sorted; as JSON `{"folder": [[...], ...]}`.
    pub fn dump(&self, user: &str) -> serde_json::Value {
        let text = self.imaplib(PY_DUMP, user, &[]);
        serde_json::from_str(&text).expect("dump json")
    }

    /// A function that APPENDs a message to `user`'s INBOX over IMAP (as the master
    /// user), usable from another thread (e.g. a test SMTP sink that delivers here).
    pub fn deliverer(&self) -> impl Fn(&str, &[u8]) -> bool + Send + Sync + 'static {
        let (port, tls) = if self.imaps_port != 0 {
            (self.imaps_port, "1")
        } else {
            (self.imap_port, "0")
        };
        move |user: &str, message: &[u8]| {
            let Ok(file) = tempfile::NamedTempFile::new() else {
                return false;
            };
            if std::fs::write(file.path(), message).is_err() {
                return false;
            }
            Command::new("python3")
                .arg("-c")
                .arg(format!("{PY_COMMON}\n{PY_APPEND}"))
                .arg(port.to_string())
                .arg(tls)
                .arg(format!("{user}*{}", MASTER.0))
                .arg(MASTER.1)
                .arg(file.path())
                .status()
                .is_ok_and(|s| s.success())
        }
    }

    /// Message-ID header values in `user`'s INBOX, one per message.
    pub fn inbox_message_ids(&self, user: &str) -> Vec<String> {
        self.imaplib(PY_MESSAGE_IDS, user, &[])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Sends SIGKILL and waits.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The maildir of `user`.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; then reap.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PY_APPEND: &str = r#"
M.append("INBOX", None, None, open(args[0], "rb").read())
"#;

const PY_MESSAGE_IDS: &str = r#"
typ, count = M.select("INBOX", readonly=True)
data = []
if int(count[0]) > 0:
    typ, data = M.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
for item in data:
    if isinstance(item, tuple):
        v = item[1].decode().split(":", 1)[1].strip() if b":" in item[1] else ""
        print(v)
"#;

const PY_COMMON: &str = r#"
import imaplib, ssl, sys, json, re, hashlib
port, tls, login, password = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
args = sys.argv[5:]
if tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    M = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
else:
    M = imaplib.IMAP4("127.0.0.1", port)
M.login(login, password)
def q(name):
    return '"' + name.replace('\\', '\\\\').replace('"', '\\"') + '"'
"#;

const PY_SEED: &str = r#"
spec = json.load(open(args[0]))
made = set()
for m in spec:
    f = m["folder"]
    if f != "INBOX" and f not in made:
        M.create(q(f))
        made.add(f)
    data = open(m["file"], "rb").read()
    typ, resp = M.append(q(f), "(" + " ".join(m["flags"]) + ")", '"' + m["date"] + '"', data)
    assert typ == "OK", (typ, resp)
M.logout()
"#;

const PY_DUMP: &str = r#"
typ, lines = M.list('""', '"*"')
out = {}
for line in lines:
    mm = re.match(rb'\((.*?)\) "(.)" (.*)$', line)
    attrs, name = mm.group(1), mm.group(3)
    if b"\\Noselect" in attrs or b"\\NonExistent" in attrs:
        continue
    name = name.decode()
    if name.startswith('"'):
        name = name[1:-1]
    M.select(q(name), readonly=True)
    typ, data = M.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    msgs = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta, body = item
        flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split()
        flags = sorted(f for f in flags if f != "\\Recent")
        date = re.search(rb'INTERNALDATE "([^"]*)"', meta).group(1).decode()
        msgs.append([flags, date, hashlib.sha256(body).hexdigest(), len(body)])
    msgs.sort(key=lambda m: (m[1], m[2]))
    out[name] = msgs
print(json.dumps(out, sort_keys=True))
M.logout()
"#;
