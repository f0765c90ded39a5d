//! A private Postfix instance (its own config, queue and log folders) as a
//! next hop with TLS settings of the test's choosing, relaying what it accepts
//! to another next hop. Needs root (Postfix's master drops to `postfix`).

use crate::free_port;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running Postfix.
pub struct Postfix {
    /// Its folder (etc/, queue/, data/, postfix.log).
    pub dir: tempfile::TempDir,
    /// The smtpd listener.
    pub addr: SocketAddr,
}

impl Postfix {
    /// Starts Postfix on a free loopback port, accepting mail for
    /// `relay_domains` and passing it to `next_hop`; `main_cf` is appended to
    /// the base main.cf (TLS settings: certificate files are the caller's).
    pub fn start(relay_domains: &[&str], next_hop: SocketAddr, main_cf: &str) -> Postfix {
        let dir = tempfile::tempdir().expect("tempdir");
        let etc = dir.path().join("etc");
        let queue = dir.path().join("queue");
        let data = dir.path().join("data");
        for d in [&etc, &queue, &data] {
            std::fs::create_dir_all(d).expect("postfix folders");
        }
        let status = Command::new("chown")
            .args(["postfix:postfix"])
            .arg(&data)
            .status()
            .expect("chown");
        assert!(status.success(), "chown postfix data folder");
        let port = free_port();
        let transport: String = relay_domains
            .iter()
            .map(|d| format!("{d} smtp:[{}]:{}\n", next_hop.ip(), next_hop.port()))
            .collect();
        std::fs::write(etc.join("transport"), transport).expect("transport");
        let relay_domain = relay_domains.join(", ");
        let base = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = postfix.test\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mydestination =\n\
             mynetworks = 127.0.0.0/8\n\
             relay_domains = {relay_domain}\n\
             relayhost =\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             transport_maps = texthash:{etc}/transport\n\
             smtp_tls_security_level = none\n\
             maillog_file = {log}\n\
             maillog_file_prefixes = {root}\n\
             biff = no\n",
            queue = queue.display(),
            data = data.display(),
            etc = etc.display(),
            log = dir.path().join("postfix.log").display(),
            root = dir.path().display(),
        );
        std::fs::write(etc.join("main.cf"), format!("{base}{main_cf}\n")).expect("main.cf");
        let services = [
            format!("127.0.0.1:{port} inet n - n - - smtpd"),
            "pickup unix n - n 60 1 pickup".into(),
            "cleanup unix n - n - 0 cleanup".into(),
            "qmgr unix n - n 300 1 qmgr".into(),
            "tlsmgr unix - - n 1000? 1 tlsmgr".into(),
            "rewrite unix - - n - - trivial-rewrite".into(),
            "bounce unix - - n - 0 bounce".into(),
            "defer unix - - n - 0 bounce".into(),
            "trace unix - - n - 0 bounce".into(),
            "verify unix - - n - 1 verify".into(),
            "flush unix n - n 1000? 0 flush".into(),
            "proxymap unix - - n - - proxymap".into(),
            "smtp unix - - n - - smtp".into(),
            "relay unix - - n - - smtp".into(),
            "error unix - - n - - error".into(),
            "retry unix - - n - - error".into(),
            "discard unix - - n - - discard".into(),
            "anvil unix - - n - 1 anvil".into(),
            "scache unix - - n - 1 scache".into(),
            "postlog unix-dgram n - n - 1 postlogd".into(),
        ];
        std::fs::write(etc.join("master.cf"), services.join("\n") + "\n").expect("master.cf");
        let out = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .expect("postfix (Debian package postfix)");
        let postfix = Postfix {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        assert!(
            out.status.success(),
            "postfix start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(postfix.addr) {
                let mut buf = [0u8; 3];
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                if s.read_exact(&mut buf).is_ok() && &buf == b"220" {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "postfix did not greet: {}",
                postfix.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        postfix
    }

    /// Its config folder (for certificate files the caller writes there).
    pub fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// The mail log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// Waits until the log holds `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.etc())
            .arg("stop")
            .output();
        // `postfix stop` returns once master is told; wait for it to go.
        let pid = self.dir.path().join("queue/pid/master.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_alive(&pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn pid_alive(pidfile: &Path) -> bool {
    std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}
