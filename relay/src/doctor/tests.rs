//! The doctor against loopback peers: a DNS responder with a fixed zone,
//! Postfix's smtp-sink, and a tiny SMTP listener with or without STARTTLS.
//! One passing set-up, then one test per class of failure.

use super::*;
use crate::envelope::{BodyType, Envelope, Notify, Recipient, RecipientStatus, RouteReason};
use crate::queue::spool::Spool;
use crate::testutil::dns::{DnsServer, Zone};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

// ---------------------------------------------------------------- peers

/// An SMTP listener that greets, answers EHLO (offering STARTTLS when it has
/// a certificate), does the handshake, and says goodbye to QUIT. It counts
/// MAIL commands, which the doctor must never send.
struct Hop {
    addr: SocketAddr,
    mails: Arc<std::sync::atomic::AtomicUsize>,
}

impl Hop {
    async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Hop {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&mails);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tls, counter) = (tls.clone(), Arc::clone(&counter));
                tokio::spawn(async move {
                    let mut plain = BufReader::new(tcp);
                    if plain
                        .get_mut()
                        .write_all(b"220 hop.test ESMTP\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let upgrade = converse(&mut plain, tls.is_some(), &counter).await;
                    if let (true, Some(tls)) = (upgrade, tls) {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                        if let Ok(stream) = acceptor.accept(plain.into_inner()).await {
                            converse(&mut BufReader::new(stream), false, &counter).await;
                        }
                    }
                });
            }
        });
        Hop { addr, mails }
    }
}

/// Answers commands until QUIT (false) or STARTTLS (true).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    offer_tls: bool,
    mails: &std::sync::atomic::AtomicUsize,
) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if offer_tls => b"250-hop.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "EHLO" => b"250-hop.test\r\n250 PIPELINING\r\n",
            "STAR" => b"220 2.0.0 Ready to start TLS\r\n",
            "QUIT" => b"221 2.0.0 Bye\r\n",
            "MAIL" => {
                mails.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                b"250 2.1.0 Ok\r\n"
            }
            _ => b"250 2.0.0 Ok\r\n",
        };
        if s.get_mut().write_all(reply).await.is_err() {
            return false;
        }
        match verb.as_str() {
            "QUIT" => return false,
            "STAR" => return true,
            _ => {}
        }
    }
}

fn hop_tls() -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["hop.test".to_string()]).unwrap();
    let cert = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    Arc::new(cfg)
}

/// Postfix's smtp-sink on a free port; `None` when it is not installed.
async fn smtp_sink() -> Option<(tokio::process::Child, SocketAddr)> {
    let bin = Path::new("/usr/sbin/smtp-sink");
    if !bin.exists() {
        eprintln!("smtp-sink not installed; using the in-test listener");
        return None;
    }
    let addr = free_port().await;
    let child = tokio::process::Command::new(bin)
        .args(["-u", "root", &addr.to_string(), "10"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Ready when a connection succeeds (the event we can observe).
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Some((child, addr));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("smtp-sink did not start");
}

/// A port nothing listens on (bound, then released).
async fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---------------------------------------------------------------- certificates

/// A CA and a leaf for relay.test signed by it, valid `days` from now
/// (negative: expired). Returns (cert PEM, key PEM).
fn ca_signed(days: i64) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Doctor Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["relay.test".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "relay.test");
    let ymd = |offset: i64| {
        let d = (chrono::Utc::now() + chrono::Duration::days(offset)).date_naive();
        use chrono::Datelike;
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = ymd(days.min(0) - 30);
    params.not_after = ymd(days);
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

// ---------------------------------------------------------------- set-up

/// Everything a doctor run looks at, in a scratch folder.
struct Setup {
    dir: tempfile::TempDir,
    zone: Zone,
    routes: std::collections::BTreeMap<String, String>,
    /// Keeps the default next hop running.
    _hop: Hop,
    rules: String,
    doctor: String,
    contacts: String,
    max_lifetime: &'static str,
}

/// The passing zone: MX, SPF with the cloud include and the relay's network,
/// autodiscover as a CNAME.
fn good_zone() -> Zone {
    Zone::new()
        .mx("corp.test", 10, "mx.corp.test")
        .addr("mx.corp.test", LOCAL)
        .txt(
            "corp.test",
            "v=spf1 ip4:192.0.2.0/24 include:spf.cloud.test -all",
        )
        .txt("corp.test", "google-site-verification=abc")
        .txt("spf.cloud.test", "v=spf1 ip4:198.51.100.0/24 -all")
        .cname("autodiscover.corp.test", "autodiscover.cloud.test")
        .addr("autodiscover.cloud.test", LOCAL)
        .mx("partner.test", 10, "mx.partner.test")
        .addr("mx.partner.test", LOCAL)
}

impl Setup {
    /// Routes onprem and cloud to a STARTTLS hop with `required`, internet by MX.
    async fn new() -> Setup {
        let hop = Hop::start(Some(hop_tls())).await;
        let smarthost = format!("smarthost = [\"{}\"]\ntls = \"required\"", hop.addr);
        let routes = [
            ("onprem", smarthost.clone()),
            ("cloud", smarthost),
            ("internet", "mx = true".to_string()),
        ]
        .into_iter()
        .map(|(n, b)| (n.to_string(), b))
        .collect();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca_signed(365);
        std::fs::write(dir.path().join("relay.crt"), cert).unwrap();
        std::fs::write(dir.path().join("relay.key"), key).unwrap();
        Setup {
            dir,
            zone: good_zone(),
            routes,
            _hop: hop,
            rules: String::new(),
            doctor: "spf_include = \"spf.cloud.test\"\npublic_ip = \"192.0.2.7\"\n".into(),
            contacts: "alice@corp.test  alice@tenant.cloud.test\n".into(),
            max_lifetime: "5d",
        }
    }

    fn route(mut self, name: &str, body: &str) -> Setup {
        self.routes.insert(name.to_string(), body.to_string());
        self
    }

    /// onprem → smtp-sink in clear, cloud → STARTTLS hop with `required`,
    /// internet → MX, partner → MX for one known domain.
    async fn passing() -> (Setup, Vec<Box<dyn std::any::Any + Send>>) {
        let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        let onprem = match smtp_sink().await {
            Some((child, addr)) => {
                keep.push(Box::new(child));
                addr
            }
            None => {
                let hop = Hop::start(None).await;
                let addr = hop.addr;
                keep.push(Box::new(hop.mails));
                addr
            }
        };
        let cloud = Hop::start(Some(hop_tls())).await;
        let partner = Hop::start(None).await;
        let mut s = Setup::new()
            .await
            .route(
                "onprem",
                &format!("smarthost = [\"{onprem}\"]\ntls = \"none\""),
            )
            .route(
                "cloud",
                &format!("smarthost = [\"{}\"]\ntls = \"required\"", cloud.addr),
            )
            .route("internet", "mx = true")
            .route(
                "partner",
                &format!("mx = true\ntls = \"none\"\nport = {}", partner.addr.port()),
            );
        s.rules = "[[routing.rule]]\ndomain = \"partner.test\"\nroute = \"partner\"\n".into();
        keep.push(Box::new(cloud.mails));
        keep.push(Box::new(partner.mails));
        (s, keep)
    }

    fn config_text(&self, dns: SocketAddr) -> String {
        format!(
            "[server]\nhostname = \"relay.test\"\nspool_dir = \"spool\"\n\n\
             [[listener]]\nname = \"smtp\"\nbind = \"127.0.0.1:0\"\ntls = \"starttls\"\n\n\
             [tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\n\n\
             [relay]\naccepted_domains = [\"corp.test\"]\n\n\
             [routing]\ncontacts = \"contacts\"\n{}\n\
             {}\n\
             [dns]\nnameservers = [\"{dns}\"]\n\n\
             [queue]\nmax_lifetime = \"{}\"\n\n\
             [doctor]\n{}\n",
            self.rules,
            self.routes
                .iter()
                .map(|(n, b)| format!("[route.{n}]\n{b}\n"))
                .collect::<String>(),
            self.max_lifetime,
            self.doctor
        )
    }

    async fn run(&self) -> Report {
        let dns = DnsServer::start(self.zone.clone()).await;
        let path = self.dir.path().join("relay.toml");
        std::fs::write(&path, self.config_text(dns.addr)).unwrap();
        std::fs::write(self.dir.path().join("contacts"), &self.contacts).unwrap();
        let config = crate::config::Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let options = Options {
            probe_budget: Duration::from_secs(20),
            dns_budget: Duration::from_secs(20),
        };
        run(&config, &options).await
    }
}

fn only<'a>(report: &'a Report, prefix: &'a str) -> &'a Check {
    let found: Vec<&Check> = report.find(prefix).collect();
    assert_eq!(found.len(), 1, "one {prefix:?} line in\n{report}");
    found[0]
}

fn assert_status(report: &Report, prefix: &str, status: Status, needle: &str) {
    let c = only(report, prefix);
    assert_eq!(c.status, status, "{prefix}:\n{report}");
    assert!(
        c.detail.contains(needle),
        "{prefix} detail should mention {needle:?}:\n{report}"
    );
    assert_eq!(c.fix.is_some(), status != Status::Ok, "{c}");
}

fn envelope(id: &str, received_at: i64) -> Envelope {
    Envelope {
        id: id.into(),
        received_at,
        sender: "a@corp.test".into(),
        client_ip: LOCAL,
        helo: "client.test".into(),
        listener: "smtp".into(),
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        size: 0,
        recipients: vec![Recipient {
            address: "b@partner.test".into(),
            rewritten: "b@partner.test".into(),
            route: "partner".into(),
            reason: RouteReason::Default,
            notify: Notify::default(),
            orcpt: None,
            status: RecipientStatus::Pending,
            attempts: 3,
            next_attempt: 0,
            last_error: Some(crate::envelope::Failure::from_legacy_text(
                "4.3.0 try later",
            )),
        }],
        delay_notified: false,
        held: false,
        external: None,
    }
}

/// Spools one message acknowledged `age` ago.
async fn spool_message(dir: &Path, age: Duration) {
    let (spool, _) = Spool::open(dir).unwrap();
    let id = spool.new_id();
    let received = chrono::Utc::now().timestamp() - age.as_secs() as i64;
    spool
        .store_message(
            envelope(&id, received),
            b"Received: x\r\nSubject: t\r\n\r\nhi\r\n".to_vec(),
        )
        .await
        .unwrap();
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn passing_setup_is_all_ok() {
    let (s, _keep) = Setup::passing().await;
    let report = s.run().await;
    // Free space is the test machine's, not the set-up's: it may warn, never fail.
    let not_ok: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Ok && !c.what.starts_with("spool free space"))
        .collect();
    assert!(not_ok.is_empty(), "every line ok:\n{report}");
    assert!(report
        .find("spool free space")
        .all(|c| c.status != Status::Fail));
    assert_eq!(report.exit_code(), 0);
    // One line per subject, with what was found.
    assert_status(&report, "contacts table", Status::Ok, "1 contact(s)");
    assert_status(&report, "certificate expiry", Status::Ok, "days");
    assert_status(&report, "certificate issuer", Status::Ok, "Doctor Test CA");
    assert_status(&report, "route cloud:", Status::Ok, "STARTTLS ok");
    assert_status(&report, "route onprem:", Status::Ok, "EHLO ok");
    assert_status(
        &report,
        "route internet",
        Status::Ok,
        "per recipient domain",
    );
    assert_status(
        &report,
        "route partner, MX of partner.test",
        Status::Ok,
        "EHLO ok",
    );
    assert_status(
        &report,
        "MX corp.test",
        Status::Ok,
        "10 mx.corp.test → 127.0.0.1",
    );
    assert_status(
        &report,
        "SPF corp.test",
        Status::Ok,
        "includes spf.cloud.test",
    );
    assert_status(&report, "SPF corp.test", Status::Ok, "covers 192.0.2.7");
    assert_status(
        &report,
        "autodiscover corp.test",
        Status::Ok,
        "CNAME autodiscover.cloud.test",
    );
    assert_status(&report, "queue", Status::Ok, "empty");
    // The text form: status column, then the fix line only for warn/fail.
    let text = report.to_string();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("warn  spool free space") {
            assert!(lines
                .next()
                .is_some_and(|f| f.trim_start().starts_with("fix: ")));
            continue;
        }
        assert!(l.starts_with("ok    "), "{text}");
    }
}

#[tokio::test]
async fn probes_send_no_mail() {
    let hop = Hop::start(Some(hop_tls())).await;
    let s = Setup::new().await.route(
        "onprem",
        &format!("smarthost = [\"{}\"]\ntls = \"verify\"", hop.addr),
    );
    let report = s.run().await;
    // verify against a self-signed certificate: handshake refused, with the fix.
    let c = only(&report, "route onprem:");
    assert_eq!(c.status, Status::Fail, "{report}");
    assert!(c.detail.contains("certificate"), "{c}");
    assert!(c.fix.as_deref().unwrap().contains("route.onprem.ca"), "{c}");
    assert_eq!(hop.mails.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bad_contacts_table_fails() {
    let mut s = Setup::new().await;
    s.contacts =
        "alice@corp.test alice@tenant.cloud.test nosuchroute\nnot-an-address x@y.test\n".into();
    let report = s.run().await;
    let c = only(&report, "contacts table");
    assert_eq!(c.status, Status::Fail, "{report}");
    assert!(c.detail.starts_with("2 error(s)"), "{c}");
    assert!(c.detail.contains(":1:") && c.detail.contains(":2:"), "{c}");
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn certificate_not_matching_key_fails() {
    let s = Setup::new().await;
    let (_, other_key) = ca_signed(365);
    std::fs::write(s.dir.path().join("relay.key"), other_key).unwrap();
    let report = s.run().await;
    let c = only(&report, "certificate ");
    assert_eq!(c.status, Status::Fail, "{report}");
    assert!(c.detail.contains("does the key belong"), "{c}");
    assert!(c.fix.as_deref().unwrap().contains("openssl"), "{c}");
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn certificate_expiring_warns_and_expired_fails() {
    let s = Setup::new().await;
    let (cert, key) = ca_signed(10);
    std::fs::write(s.dir.path().join("relay.crt"), cert).unwrap();
    std::fs::write(s.dir.path().join("relay.key"), key).unwrap();
    let report = s.run().await;
    let c = only(&report, "certificate expiry");
    assert_eq!(c.status, Status::Warn, "{report}");
    // Whole days left, counted down from a not_after at midnight UTC.
    assert!(
        c.detail.contains("in 9 day(s)") || c.detail.contains("in 10 day(s)"),
        "{c}"
    );
    assert_eq!(report.exit_code(), 0, "a warning alone does not fail");

    let (cert, key) = ca_signed(-2);
    std::fs::write(s.dir.path().join("relay.crt"), cert).unwrap();
    std::fs::write(s.dir.path().join("relay.key"), key).unwrap();
    let report = s.run().await;
    assert_status(&report, "certificate expiry", Status::Fail, "expired on");
}

#[tokio::test]
async fn development_certificate_warns() {
    let s = Setup::new().await;
    let tls = crate::config::TlsConfig {
        cert: s.dir.path().join("relay.crt"),
        key: s.dir.path().join("relay.key"),
        client_ca: None,
    };
    std::fs::remove_file(&tls.cert).unwrap();
    std::fs::remove_file(&tls.key).unwrap();
    let report = s.run().await;
    assert_status(&report, "certificate ", Status::Warn, "does not exist yet");
    crate::tls::ensure_dev_certificate(&tls, "relay.test").unwrap();
    let report = s.run().await;
    let c = only(&report, "certificate issuer");
    assert_eq!(c.status, Status::Warn, "{report}");
    assert!(c.detail.contains("development certificate"), "{c}");
    assert!(
        c.fix
            .as_deref()
            .unwrap()
            .starts_with("replace with a real certificate"),
        "{c}"
    );
}

#[tokio::test]
async fn unreachable_next_hop_fails_unless_another_works() {
    let closed = free_port().await;
    let s = Setup::new().await.route(
        "onprem",
        &format!("smarthost = [\"{closed}\"]\ntls = \"none\""),
    );
    let report = s.run().await;
    assert_status(&report, "route onprem:", Status::Fail, "cannot connect");
    assert_eq!(report.exit_code(), 1);

    // With a second smarthost that answers, delivery fails over: a warning.
    let hop = Hop::start(None).await;
    let s = Setup::new().await.route(
        "onprem",
        &format!(
            "smarthost = [\"{closed}\", \"{}\"]\ntls = \"none\"",
            hop.addr
        ),
    );
    let report = s.run().await;
    assert_status(
        &report,
        &format!("route onprem: {closed}"),
        Status::Warn,
        "cannot connect",
    );
    assert_status(
        &report,
        &format!("route onprem: {}", hop.addr),
        Status::Ok,
        "EHLO ok",
    );

    // A name that does not resolve.
    let s = Setup::new()
        .await
        .route("onprem", "smarthost = [\"nowhere.test:25\"]");
    let report = s.run().await;
    assert_status(
        &report,
        "route onprem: smarthost nowhere.test:25",
        Status::Fail,
        "does not exist",
    );
}

#[tokio::test]
async fn required_tls_to_hop_without_starttls_fails() {
    let hop = Hop::start(None).await;
    let s = Setup::new()
        .await
        .route(
            "onprem",
            &format!("smarthost = [\"{}\"]\ntls = \"required\"", hop.addr),
        )
        .route(
            "cloud",
            &format!("smarthost = [\"{}\"]\ntls = \"opportunistic\"", hop.addr),
        );
    let report = s.run().await;
    let c = only(&report, "route onprem:");
    assert_eq!(c.status, Status::Fail, "{report}");
    assert!(c.detail.contains("STARTTLS not offered"), "{c}");
    assert!(c.fix.as_deref().unwrap().contains("enable STARTTLS"), "{c}");
    // The same hop under `opportunistic` works, in clear: a warning.
    assert_status(&report, "route cloud:", Status::Warn, "goes in clear");
    assert_eq!(hop.mails.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn accepted_domain_without_mx_warns_nxdomain_fails() {
    let mut s = Setup::new().await;
    s.zone = Zone::new().addr("corp.test", LOCAL).txt(
        "corp.test",
        "v=spf1 ip4:192.0.2.7 include:spf.cloud.test -all",
    );
    let report = s.run().await;
    assert_status(&report, "MX corp.test", Status::Warn, "no MX records");
    assert_eq!(report.exit_code(), 0, "{report}");

    s.zone = Zone::new();
    let report = s.run().await;
    assert_status(&report, "MX corp.test", Status::Fail, "NXDOMAIN");

    s.zone = Zone::new().mx("corp.test", 0, ".");
    let report = s.run().await;
    assert_status(&report, "MX corp.test", Status::Fail, "null MX");
}

#[tokio::test]
async fn spf_without_the_include_fails() {
    let mut s = Setup::new().await;
    s.zone = Zone::new()
        .mx("corp.test", 10, "mx.corp.test")
        .addr("mx.corp.test", LOCAL)
        .txt("corp.test", "v=spf1 ip4:192.0.2.0/24 -all");
    let report = s.run().await;
    let c = only(&report, "SPF corp.test");
    assert_eq!(c.status, Status::Fail, "{report}");
    assert!(c.detail.contains("does not include spf.cloud.test"), "{c}");
    assert!(
        c.fix
            .as_deref()
            .unwrap()
            .contains("add include:spf.cloud.test"),
        "{c}"
    );

    // The public address only reachable through a, mx: not evaluated, a warning.
    s.doctor = "public_ip = \"203.0.113.9\"\n".into();
    s.zone = Zone::new().txt("corp.test", "v=spf1 mx -all");
    let report = s.run().await;
    assert_status(&report, "SPF corp.test", Status::Warn, "not evaluated: mx");

    // Covered one include down.
    s.zone = Zone::new()
        .txt("corp.test", "v=spf1 include:spf.cloud.test -all")
        .txt("spf.cloud.test", "v=spf1 ip4:203.0.113.0/24 -all");
    let report = s.run().await;
    assert_status(
        &report,
        "SPF corp.test",
        Status::Ok,
        "via include:spf.cloud.test",
    );

    // Neither listed nor anything left to evaluate: fail.
    s.zone = Zone::new().txt("corp.test", "v=spf1 ip4:192.0.2.0/24 -ip4:203.0.113.9 -all");
    let report = s.run().await;
    assert_status(&report, "SPF corp.test", Status::Fail, "does not cover");

    // Two SPF records: a permerror for receivers.
    s.zone = Zone::new()
        .txt("corp.test", "v=spf1 -all")
        .txt("corp.test", "v=spf1 ip4:203.0.113.9 -all");
    let report = s.run().await;
    assert_status(&report, "SPF corp.test", Status::Fail, "2 SPF records");
}

#[tokio::test]
async fn missing_autodiscover_warns_srv_is_enough() {
    let mut s = Setup::new().await;
    s.zone = Zone::new()
        .mx("corp.test", 10, "mx.corp.test")
        .addr("mx.corp.test", LOCAL)
        .txt(
            "corp.test",
            "v=spf1 ip4:192.0.2.7 include:spf.cloud.test -all",
        );
    let report = s.run().await;
    let c = only(&report, "autodiscover corp.test");
    assert_eq!(c.status, Status::Warn, "{report}");
    assert!(
        c.fix
            .as_deref()
            .unwrap()
            .contains("will not find the cloud mailbox"),
        "{c}"
    );

    s.zone = s.zone.clone().srv(
        "_autodiscover._tcp.corp.test",
        0,
        443,
        "autodiscover.cloud.test",
    );
    let report = s.run().await;
    assert_status(
        &report,
        "autodiscover corp.test",
        Status::Ok,
        "SRV 0 autodiscover.cloud.test:443",
    );
}

#[tokio::test]
async fn old_message_in_spool_warns_then_fails() {
    let mut s = Setup::new().await;
    let spool = s.dir.path().join("spool");
    spool_message(&spool, Duration::from_secs(2 * 3600)).await;
    spool_message(&spool, Duration::from_secs(60)).await;
    let report = s.run().await;
    assert_status(&report, "queue", Status::Warn, "2 message(s), oldest 2h");

    // Past half of max_lifetime (here 3h): it bounces soon.
    s.max_lifetime = "3h";
    let report = s.run().await;
    assert_status(
        &report,
        "queue",
        Status::Fail,
        "past half of queue.max_lifetime",
    );
    assert_eq!(report.exit_code(), 1);

    std::fs::write(spool.join("corrupt/01BADFILE"), b"junk").unwrap();
    let report = s.run().await;
    assert_status(&report, "spool corrupt/", Status::Warn, "1 damaged file(s)");
}

// ---------------------------------------------------------------- pure parts

#[test]
fn free_space_thresholds() {
    use super::spool::free_space;
    const MIB: u64 = 1 << 20;
    assert_eq!(free_space("s", 50 * MIB, 1000 * MIB).status, Status::Fail);
    assert_eq!(free_space("s", 500 * MIB, 1000 * MIB).status, Status::Warn);
    // Plenty in bytes, but under 10 % of a big disk.
    assert_eq!(
        free_space("s", 5 * 1024 * MIB, 100 * 1024 * MIB).status,
        Status::Warn
    );
    assert_eq!(
        free_space("s", 50 * 1024 * MIB, 100 * 1024 * MIB).status,
        Status::Ok
    );
}

#[test]
fn queue_age_thresholds() {
    use super::spool::queue;
    let life = Duration::from_secs(5 * 86_400);
    assert_eq!(queue(0, None, life).status, Status::Ok);
    assert_eq!(
        queue(3, Some(Duration::from_secs(600)), life).status,
        Status::Ok
    );
    assert_eq!(
        queue(3, Some(Duration::from_secs(7200)), life).status,
        Status::Warn
    );
    assert_eq!(
        queue(3, Some(Duration::from_secs(3 * 86_400)), life).status,
        Status::Fail
    );
}

/// Review of issue #11: `doctor` sliced the 6th byte of every TXT record as
/// text and panicked when it fell inside a multibyte character.
#[test]
fn a_txt_record_with_a_multibyte_character_at_byte_six_is_not_spf() {
    use super::dns::spf_record;
    let txts = vec![
        "abcdeé verification".to_string(),
        "v=spf€".to_string(),
        "v=spf1 -all".to_string(),
    ];
    assert_eq!(spf_record(&txts), Ok(Some("v=spf1 -all")));
    assert_eq!(spf_record(&["\u{e9}\u{e9}\u{e9}".into()]), Ok(None));
}

#[test]
fn spf_parsing() {
    use super::dns::{covers, spf_record, terms};
    let txts = vec![
        "v=spf10 nope".to_string(),
        "V=SPF1 ip4:192.0.2.0/24 -all".to_string(),
        "other".to_string(),
    ];
    assert_eq!(spf_record(&txts), Ok(Some("V=SPF1 ip4:192.0.2.0/24 -all")));
    assert_eq!(spf_record(&["v=spf1".into(), "v=spf1 -all".into()]), Err(2));
    assert_eq!(spf_record(&["x".into()]), Ok(None));
    let t: Vec<_> = terms("v=spf1 -IP4:1.2.3.4 include:a.test redirect=b.test ~all").collect();
    assert_eq!(
        t,
        [
            ('-', "ip4".to_string(), "1.2.3.4"),
            ('+', "include".to_string(), "a.test"),
            ('+', "redirect".to_string(), "b.test"),
            ('~', "all".to_string(), ""),
        ]
    );
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(covers("ip4", "192.0.2.0/24", ip("192.0.2.7")));
    assert!(!covers("ip4", "192.0.2.0/25", ip("192.0.2.200")));
    assert!(covers("ip4", "192.0.2.7", ip("192.0.2.7")));
    assert!(
        !covers("ip6", "192.0.2.7", ip("192.0.2.7")),
        "family must match"
    );
    assert!(covers("ip6", "2001:db8::/32", ip("2001:db8:1::25")));
    assert!(!covers("ip4", "garbage", ip("192.0.2.7")));
}

#[test]
fn report_format_and_exit_code() {
    let report = Report {
        checks: vec![Check::ok("a", "fine"), Check::warn("b", "meh", "do x")],
    };
    assert_eq!(
        report.to_string(),
        "ok    a: fine\nwarn  b: meh\n      fix: do x\n"
    );
    assert_eq!(report.exit_code(), 0);
    let mut failing = report.clone();
    failing.checks.push(Check::fail("c", "broken", "do y"));
    assert_eq!(failing.worst(), Status::Fail);
    assert_eq!(failing.exit_code(), 1);
    let json = serde_json::to_value(&failing).unwrap();
    assert_eq!(json["checks"][2]["status"], "fail");
    assert!(json["checks"][0].get("fix").is_none());
}
