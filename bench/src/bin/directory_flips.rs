//! `directory-flips`: the migrator's directory target of issue #12: FLIPS
//! users flipped with `coexist-migrator migrate --all-ready --forwarding-only`
//! against a real OpenLDAP slapd (the flip: contact added, altRecipient set)
//! and two real Dovecots (each user's mailbox is opened on both sides, as
//! forwarding-only does). Prints the wall time of the run and checks that
//! every user has exactly one contact afterwards.
//!
//! `cargo build --release --workspace --bins && ./target/release/directory-flips`
//! (default 1000 users, `--parallel` 4). Small: `directory-flips --users 50`.
//! It times things: run it on a quiet machine.

use coexist_e2e::dovecot::{Dovecot, DovecotSetup, TestCa, MASTER};
use coexist_e2e::slapd::{self, Slapd, SlapdSetup};
use std::io::Write;
use std::time::Instant;

fn main() {
    let mut users = 1000usize;
    let mut parallel = 4usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--users" => users = value,
            "--parallel" => parallel = value,
            other => panic!("unknown flag {other}; use --users N --parallel N"),
        }
    }
    let ca = TestCa::new();
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let bulk = d.join("bulk.ldif");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&bulk).unwrap());
    f.write_all(slapd::base_ldif().as_bytes()).unwrap();
    for i in 0..users {
        f.write_all(
            slapd::user_ldif(&format!("user{i}"), &format!("user{i}@corp.example"), &[]).as_bytes(),
        )
        .unwrap();
    }
    drop(f);
    let ldap = Slapd::start(
        SlapdSetup {
            name: "flips".into(),
            bulk: Some(bulk),
            service_writes: true,
            ..Default::default()
        },
        &ca,
    );
    let on_prem: Vec<String> = (0..users)
        .map(|i| format!("user{i}@corp.example"))
        .collect();
    let cloud: Vec<String> = (0..users)
        .map(|i| format!("user{i}@tenant.cloud.example"))
        .collect();
    let pairs = |list: &[String]| -> Vec<(String, String)> {
        list.iter().map(|a| (a.clone(), "pw".to_string())).collect()
    };
    let (src_users, dst_users) = (pairs(&on_prem), pairs(&cloud));
    let source = Dovecot::start(
        DovecotSetup {
            name: "source",
            users: src_users
                .iter()
                .map(|(a, p)| (a.as_str(), p.as_str()))
                .collect(),
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    let target = Dovecot::start(
        DovecotSetup {
            name: "target",
            users: dst_users
                .iter()
                .map(|(a, p)| (a.as_str(), p.as_str()))
                .collect(),
            quota: None,
            max_mail_size: None,
            tls: true,
        },
        &ca,
    );
    std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(d.join("imap.password"), format!("{}\n", MASTER.1)).unwrap();
    std::fs::write(d.join("ldap.password"), format!("{}\n", slapd::SERVICE.1)).unwrap();
    let config = format!(
        "[directory]\nsource = \"ldap\"\n\n[ldap]\nurl = [\"{}\"]\nca = \"ca.pem\"\nbind_dn = \"{}\"\npassword_file = \"ldap.password\"\nbase = \"{}\"\ncontacts_base = \"{}\"\n\n\
         [routing]\ntarget_template = \"{{local}}@tenant.cloud.example\"\n\n\
         [source]\nurl = \"{}\"\nauth = \"master\"\nmaster_user = \"{}\"\npassword_file = \"imap.password\"\nca = \"ca.pem\"\n\n\
         [target]\nurl = \"{}\"\nauth = \"authzid\"\nmaster_user = \"{}\"\npassword_file = \"imap.password\"\nca = \"ca.pem\"\n\n\
         [migration]\nstate_dir = \"state\"\nparallel = {parallel}\n",
        ldap.url(),
        slapd::SERVICE.0,
        slapd::SUFFIX,
        slapd::CONTACTS,
        source.url(),
        MASTER.0,
        target.url(),
        MASTER.0
    );
    std::fs::write(d.join("migrator.toml"), config).unwrap();
    let migrator = coexist_e2e::binary("coexist-migrator");
    let started = Instant::now();
    let out = std::process::Command::new(&migrator)
        .arg("--config")
        .arg(d.join("migrator.toml"))
        .args(["migrate", "--all-ready", "--forwarding-only"])
        .output()
        .expect("run coexist-migrator");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "migrate failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let contacts = ldap
        .search("(objectClass=contact)", &["dn"])
        .lines()
        .filter(|l| l.starts_with("dn: "))
        .count();
    let forwarded = ldap
        .search("(altRecipient=*)", &["dn"])
        .lines()
        .filter(|l| l.starts_with("dn: "))
        .count();
    assert_eq!(
        (contacts, forwarded),
        (users, users),
        "every user flipped once"
    );
    println!(
        "flips: users={users} parallel={parallel} time={:.2}s ({:.1} ms per user) contacts={contacts} forwarded={forwarded}",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / users as f64
    );
}
