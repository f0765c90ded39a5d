//! A real Cyrus IMAP 3.6 (Debian bookworm's `cyrus-imapd` + `cyrus-caldav`)
//! serving IMAPS and CalDAV/CardDAV over HTTPS from one `master` process: a
//! target that schedules (RFC 6638). Its `sendmail:` is a script that speaks
//! SMTP and records every message Cyrus asks it to send, so a test can assert
//! that no invitation or reply left.
//!
//! Cyrus is never installed (in Debian it conflicts with Dovecot): its
//! packages and the libraries this machine lacks are fetched with
//! `apt-get download` and unpacked with `dpkg -x` into `target/cyrus/root`,
//! once, and run from there with `LD_LIBRARY_PATH`. Logins use
//! `sasl_pwcheck_method: alwaystrue` (any password).

use crate::dovecot::TestCa;
use crate::{free_port, repo_root};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What `dpkg -x` unpacks: Cyrus and the libraries bookworm does not have by
/// default (the rest of its dependencies are on any machine with Dovecot).
const PACKAGES: &[&str] = &[
    "cyrus-common",
    "cyrus-imapd",
    "cyrus-caldav",
    "libical3",
    "libpcre3",
    "libshp2",
    "libxapian30",
    "libzephyr4",
];

/// The unpacked tree, fetched on first use (serialised by a lock file, as
/// tests run in parallel).
pub fn root() -> PathBuf {
    let base = repo_root().join("target/cyrus");
    let root = base.join("root");
    if root.join("usr/lib/cyrus/bin/master").exists() {
        return root;
    }
    std::fs::create_dir_all(&base).unwrap();
    let lock = std::fs::File::create(base.join(".lock")).unwrap();
    lock.lock().unwrap();
    if !root.join("usr/lib/cyrus/bin/master").exists() {
        let dl = base.join("debs");
        std::fs::create_dir_all(&dl).unwrap();
        let download = || {
            Command::new("apt-get")
                .arg("download")
                .args(PACKAGES)
                .current_dir(&dl)
                .output()
                .expect("apt-get")
        };
        let mut out = download();
        if !out.status.success() {
            // A fresh machine may have no package lists yet.
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            out = download();
        }
        assert!(
            out.status.success(),
            "apt-get download {PACKAGES:?} failed (run apt-get update?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tmp = base.join("root.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        for deb in std::fs::read_dir(&dl).unwrap() {
            let deb = deb.unwrap().path();
            let ok = Command::new("dpkg")
                .arg("-x")
                .arg(&deb)
                .arg(&tmp)
                .status()
                .unwrap();
            assert!(ok.success(), "dpkg -x {}", deb.display());
        }
        std::fs::rename(&tmp, &root).unwrap();
    }
    root
}

/// A running Cyrus.
pub struct Cyrus {
    /// Its folder (config, spool, logs, the recorded mail).
    pub dir: tempfile::TempDir,
    /// IMAPS port.
    pub imaps_port: u16,
    /// HTTPS (CalDAV/CardDAV) port.
    pub https_port: u16,
    child: Child,
}

impl Cyrus {
    /// Starts Cyrus with an IMAP account (and so calendars) for each of `users`.
    pub fn start(users: &[&str], ca: &TestCa) -> Cyrus {
        let root = root();
        let dir = tempfile::Builder::new().prefix("cyrus-").tempdir().unwrap();
        let d = dir.path();
        for sub in ["conf", "spool", "tmp", "sieve"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("cert.pem"), &ca.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &ca.key_pem).unwrap();
        std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
        // Speaks SMTP to Cyrus (`sendmail -bs`) and appends everything to sent.log.
        let sendmail = format!(
            "#!/usr/bin/python3\nimport sys\nout = open({log:?}, 'a')\nout.write('called: %s\\n' % sys.argv[1:])\nout.flush()\n\
             w = lambda s: (sys.stdout.write(s + '\\r\\n'), sys.stdout.flush())\nw('220 recorder ESMTP')\ndata = False\n\
             for line in sys.stdin:\n    out.write(line); out.flush()\n    if data:\n        if line.rstrip('\\r\\n') == '.':\n            data = False; w('250 ok')\n        continue\n\
             \x20   c = line[:4].upper()\n    if c == 'DATA':\n        data = True; w('354 go')\n    elif c == 'QUIT':\n        w('221 bye'); break\n    else:\n        w('250 ok')\n",
            log = d.join("sent.log").display().to_string()
        );
        std::fs::write(d.join("sendmail"), sendmail).unwrap();
        std::fs::set_permissions(d.join("sendmail"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let conf = d.join("imapd.conf");
        std::fs::write(
            &conf,
            format!(
                "configdirectory: {0}/conf\npartition-default: {0}/spool\ntemp_path: {0}/tmp\nsievedir: {0}/sieve\n\
                 admins: admin\nsasl_pwcheck_method: alwaystrue\nsasl_mech_list: PLAIN LOGIN\nallowplaintext: yes\n\
                 unixhierarchysep: yes\ndefaultdomain: corp.example\nhttpmodules: caldav carddav\n\
                 tls_server_cert: {0}/cert.pem\ntls_server_key: {0}/key.pem\n\
                 cyrus_user: nobody\ncyrus_group: nogroup\nsendmail: {0}/sendmail\nsyslog_prefix: cyrus-test\n",
                d.display()
            ),
        )
        .unwrap();
        let (imaps_port, https_port) = (free_port(), free_port());
        let bin = root.join("usr/lib/cyrus/bin");
        let c = conf.display();
        std::fs::write(
            d.join("cyrus.conf"),
            format!(
                "START {{\n  recover cmd=\"{b}/ctl_cyrusdb -r -C {c}\"\n}}\nSERVICES {{\n\
                 \x20 imaps cmd=\"{b}/imapd -s -C {c}\" listen=\"127.0.0.1:{imaps_port}\" prefork=0\n\
                 \x20 https cmd=\"{b}/httpd -s -C {c}\" listen=\"127.0.0.1:{https_port}\" prefork=0\n}}\nEVENTS {{\n}}\n",
                b = bin.display()
            ),
        )
        .unwrap();
        let chown = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(d)
            .status()
            .unwrap();
        assert!(chown.success());
        let libs = format!(
            "{0}/usr/lib/x86_64-linux-gnu:{0}/lib/x86_64-linux-gnu",
            root.display()
        );
        let log = std::fs::File::create(d.join("master.log")).unwrap();
        let child = Command::new(bin.join("master"))
            .arg("-C")
            .arg(&conf)
            .arg("-M")
            .arg(d.join("cyrus.conf"))
            .arg("-p")
            .arg(d.join("master.pid"))
            .arg("-D")
            .env("LD_LIBRARY_PATH", libs)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cyrus master");
        let mut cyrus = Cyrus {
            dir,
            imaps_port,
            https_port,
            child,
        };
        cyrus.wait_listening();
        for user in users {
            cyrus.imap_admin(&format!("m.create('user/{user}')"));
        }
        cyrus
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cyrus master exited ({status}): {}", self.log());
            }
            let up = [self.imaps_port, self.https_port]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cyrus did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs Python `code` with `m`, an imaplib session logged in as admin.
    pub fn imap_admin(&self, code: &str) -> String {
        let script = format!(
            "import imaplib, ssl\nctx = ssl.create_default_context(cafile={ca:?})\n\
             m = imaplib.IMAP4_SSL('127.0.0.1', {port}, ssl_context=ctx)\nm.login('admin', 'x')\n\
             r = {code}\nassert r[0] == 'OK', r\nprint(r)\n",
            ca = self.dir.path().join("ca.pem").display().to_string(),
            port = self.imaps_port,
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "imaplib: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `tests/py/dav.py ARGS...` against this Cyrus as `user` (any
    /// password logs in): (success, stdout, stderr).
    pub fn dav(&self, user: &str, args: &[&str]) -> (bool, String, String) {
        let ca = self.dir.path().join("ca.pem").display().to_string();
        let url = self.dav_url();
        let mut all = vec![url.as_str(), user, "x", ca.as_str()];
        all.extend_from_slice(args);
        crate::python("dav.py", &all)
    }

    /// Every collection under `home` with its items, as `user` (`dav.py dump`).
    pub fn dump(&self, user: &str, home: &str) -> serde_json::Value {
        let (ok, out, err) = self.dav(user, &["dump", home]);
        assert!(ok, "dump {home}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("dump: {e}: {out}"))
    }

    /// `https://127.0.0.1:PORT`.
    pub fn dav_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// `imaps://127.0.0.1:PORT`.
    pub fn imap_url(&self) -> String {
        format!("imaps://127.0.0.1:{}", self.imaps_port)
    }

    /// Everything Cyrus asked `sendmail` to send so far ("" = nothing).
    pub fn sent(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sent.log")).unwrap_or_default()
    }

    /// Forgets what was recorded.
    pub fn clear_sent(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("sent.log"));
    }

    /// The master's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("master.log")).unwrap_or_default()
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        // SIGTERM: the master stops its services too (SIGKILL would leave them).
        // SAFETY: kill(2) on the pid of a child this struct owns.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
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
