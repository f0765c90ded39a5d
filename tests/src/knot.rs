//! Knot DNS as an authoritative server on loopback for DANE tests: zones
//! written by the test, the signed ones signed by knotd itself at load with
//! keys it makes then (ECDSA P-256, NSEC), and their DNSKEY as a trust anchor
//! file for the relay's `[dns] trust_anchor`.

use crate::free_port;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One zone: its apex, its records (zone-file text after $TTL and SOA), signed or not.
pub struct ZoneFile<'a> {
    /// Apex, e.g. `dane.test`.
    pub apex: &'a str,
    /// Records in zone-file syntax, names relative to the apex.
    pub records: String,
    /// Whether knotd signs it.
    pub signed: bool,
}

/// A running knotd.
pub struct Knot {
    dir: tempfile::TempDir,
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
}

impl Knot {
    /// Writes the config and zones and starts knotd; returns once every
    /// signed zone has its key.
    pub fn start(zones: &[ZoneFile]) -> Knot {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("db")).expect("knot db folder");
        let d = dir.path().display();
        let mut conf = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n    pidfile: {d}/knot.pid\n\
             database:\n    storage: {d}/db\n\
             log:\n  - target: {d}/knot.log\n    any: info\n\
             policy:\n  - id: test\n    algorithm: ecdsap256sha256\n    single-type-signing: on\n    nsec3: off\n\
             template:\n  - id: default\n    storage: {d}\n\
             zone:\n"
        );
        for z in zones {
            let text = format!(
                "$TTL 60\n@ SOA ns.{a}. hostmaster.{a}. 1 3600 600 86400 60\n@ NS ns.{a}.\nns A 127.0.0.1\n{}\n",
                z.records,
                a = z.apex
            );
            std::fs::write(dir.path().join(format!("{}.zone", z.apex)), text).expect("zone file");
            conf.push_str(&format!(
                "  - domain: {}\n    file: {}.zone\n",
                z.apex, z.apex
            ));
            if z.signed {
                conf.push_str("    dnssec-signing: on\n    dnssec-policy: test\n");
            }
        }
        std::fs::write(dir.path().join("knot.conf"), conf).expect("knot.conf");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd (Debian package knot)");
        let knot = Knot {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = TcpStream::connect(knot.addr).is_ok();
            let signed = zones.iter().filter(|z| z.signed).all(|z| {
                knot.log()
                    .contains(&format!("[{}.] DNSSEC, next signing", z.apex))
            });
            if up && signed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "knotd did not start:\n{}",
                knot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        knot
    }

    /// knotd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knot.log")).unwrap_or_default()
    }

    /// Writes the DNSKEY of signed zone `apex` as a trust anchor file
    /// (`NAME TTL IN DNSKEY …`, what hickory's trust-anchor parser reads).
    pub fn write_trust_anchor(&self, apex: &str, path: &Path) -> PathBuf {
        let out = Command::new("keymgr")
            .arg("-c")
            .arg(self.dir.path().join("knot.conf"))
            .args([apex, "dnskey"])
            .output()
            .expect("keymgr");
        assert!(
            out.status.success(),
            "keymgr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text: String = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.split_once(' ')?;
                Some(format!("{name} 3600 IN {rest}\n"))
            })
            .collect();
        assert!(text.contains("DNSKEY"), "no DNSKEY for {apex}");
        std::fs::write(path, text).expect("trust anchor");
        path.to_path_buf()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
