//! End-to-end: reliability (issue #6) — the built relay killed under load, in front
//! of next hops that fail in every way a next hop fails, on a full disk, under a
//! storm of contacts-table reloads, flooded with connections and held by slowloris
//! clients. Everything runs on 127.0.0.1 and is bounded in time.
//!
//! The long versions (20 kills, 10 000 connections) are `bench/soak.sh`, which runs
//! these same tests scaled up through `COEXIST_*` environment variables.

use coexist_e2e::faults::{Fault, FaultSink, Tmpfs};
use coexist_e2e::load::{env_usize, memory_kib, message, raise_nofile, submit, Rng, Submission};
use coexist_e2e::sink::{Received, Script, ScriptSink};
use coexist_e2e::smtp::Client;
use coexist_e2e::{free_port, Relay, RelaySetup};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const SENDER: &str = "alice@sender.example";

/// Polls until `done` (the relay offers metrics, not events, for these states).
fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn queued(relay: &Relay) -> f64 {
    relay.metric("coexist_queue_messages")
}

fn deliveries(relay: &Relay, route: &str, result: &str) -> f64 {
    relay.metric(&format!(
        "coexist_deliveries_total{{result=\"{result}\",route=\"{route}\"}}"
    ))
}

/// One plain listener on a fixed port, so clients find it again after a restart.
fn plain_listener(port: u16) -> String {
    format!("name = \"smtp\"\nbind = \"127.0.0.1:{port}\"\ntls = \"none\"")
}

fn route_to(hop: &str, extra: &str) -> String {
    format!("smarthost = [\"{hop}\"]\ntls = \"none\"\n{extra}")
}

/// How many times each Message-ID arrived.
fn arrivals(received: &[Received]) -> HashMap<String, usize> {
    let mut by_id = HashMap::new();
    for r in received {
        if let Some(id) = r.message_id() {
            *by_id.entry(id).or_insert(0) += 1;
        }
    }
    by_id
}

fn accepted(addr: SocketAddr, rcpts: &[&str], message_id: &str, filler: usize) -> String {
    match submit(addr, SENDER, rcpts, &message(message_id, filler), WAIT) {
        Ok(Submission::Accepted(id)) => id,
        other => panic!("{message_id}: expected 250, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Crash loop

/// 20 senders keep sending while the relay is SIGKILLed at random moments and
/// restarted; every message that got a 250 must reach the next hop.
#[test]
fn crash_loop_loses_no_acknowledged_message() {
    let kills = env_usize("COEXIST_CRASH_KILLS", 5);
    let senders = env_usize("COEXIST_CRASH_SENDERS", 20);
    let seed = Rng::seed_from_env();
    let mut rng = Rng::new(seed);
    println!(
        "crash loop: seed={seed} kills={kills} senders={senders} (replay: COEXIST_SEED={seed})"
    );

    let sink = ScriptSink::start(Script::default());
    let port = free_port();
    let mut relay = RelaySetup::default()
        .listeners(&[&plain_listener(port)])
        .section("route.onprem", &route_to(&sink.hostport(), ""))
        .section("route.cloud", &route_to(&sink.hostport(), ""))
        .section("queue", "retry_schedule = [\"1s\"]")
        .start();
    let addr = relay.addr("smtp");

    let stop = AtomicBool::new(false);
    let acked: Mutex<Vec<String>> = Mutex::default();
    let (io_errors, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..senders {
            let (stop, acked, io_errors, refused) = (&stop, &acked, &io_errors, &refused);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    // A new Message-ID per attempt: an unacknowledged attempt that
                    // still arrives is then told apart from a duplicate delivery.
                    // One in ten is large: streamed to its own spool file
                    // (past the 256 KiB a session keeps in memory).
                    let large = n % 10 == 0;
                    let id = format!("c{t}-{n}{}@crash.test", if large { "-large" } else { "" });
                    n += 1;
                    let m = message(&id, if large { 600 * 1024 } else { 300 });
                    match submit(addr, SENDER, &["bob@corp.example"], &m, WAIT) {
                        Ok(Submission::Accepted(_)) => acked.lock().unwrap().push(id),
                        Ok(Submission::Refused(_)) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            // Relay down: back off as a client would, briefly.
                            io_errors.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            });
        }
        for k in 0..kills {
            let after = Duration::from_millis(rng.range(300, 2000));
            std::thread::sleep(after);
            let before = acked.lock().unwrap().len();
            relay.kill();
            println!(
                "crash loop: kill {}/{kills} after {after:?} ({before} acknowledged so far)",
                k + 1
            );
            relay.restart();
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
    });
    let load_time = started.elapsed();
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.len() >= 50,
        "the load must really flow: {} acknowledged",
        acked.len()
    );
    let large = acked.iter().filter(|id| id.contains("-large")).count();
    assert!(large >= 5, "large messages must be in the mix: {large}");

    // Drain: the queue empties and every acknowledged message is at the sink.
    // The drain gets time in proportion to the load (the debug build delivers
    // a few hundred messages a second on two shared cores).
    let drain = Duration::from_secs(90) + Duration::from_millis(10 * acked.len() as u64);
    let drain_started = Instant::now();
    wait_until("the queue to drain", drain, || queued(&relay) == 0.0);
    println!(
        "crash loop: queue drained in {:.1?}",
        drain_started.elapsed()
    );
    let deadline = Instant::now() + WAIT;
    let by_id = loop {
        let by_id = arrivals(&sink.received());
        let missing = acked
            .iter()
            .filter(|id| !by_id.contains_key(&format!("<{id}>")))
            .count();
        if missing == 0 || Instant::now() > deadline {
            break by_id;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let acked_set: BTreeSet<String> = acked.iter().map(|id| format!("<{id}>")).collect();
    let lost: Vec<&String> = acked_set
        .iter()
        .filter(|id| !by_id.contains_key(*id))
        .collect();
    let duplicates = by_id.values().filter(|&&n| n > 1).count();
    let extra_copies: usize = by_id.values().map(|n| n - 1).sum();
    let unacked_arrived = by_id.keys().filter(|id| !acked_set.contains(*id)).count();
    println!(
        "crash loop result: seed={seed} kills={kills} senders={senders} load={:.1}s \
         acknowledged={} (large {large}) arrived_distinct={} lost={} duplicates={} ({:.2}%, {} extra copies) \
         arrived_unacknowledged={} client_io_errors={} refused={}",
        load_time.as_secs_f64(),
        acked.len(),
        by_id.len(),
        lost.len(),
        duplicates,
        100.0 * duplicates as f64 / acked.len() as f64,
        extra_copies,
        unacked_arrived,
        io_errors.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    );
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered (seed {seed}): {lost:?}"
    );
    // A kill can repeat at most the transactions the next hop had answered and the
    // relay had not yet removed from the spool: no more than the deliveries in
    // flight to that hop (queue.per_host_concurrency, 20 by default) per kill.
    assert!(
        extra_copies <= kills * 20,
        "{extra_copies} extra copies for {kills} kills: more than were in flight (seed {seed})"
    );
}

// ---------------------------------------------------------------------------
// Next hop failures

/// Where a test reads what a next hop accepted.
trait Recorder {
    fn received(&self) -> Vec<Received>;
}

impl Recorder for ScriptSink {
    fn received(&self) -> Vec<Received> {
        ScriptSink::received(self)
    }
}

impl Recorder for FaultSink {
    fn received(&self) -> Vec<Received> {
        self.backend.received()
    }
}

/// The on-premises next hop `hop` is failing. A message to it is deferred and the
/// queue says so; a message to the healthy cloud hop still goes out with one
/// delivery worker (none is stuck on the bad hop); once `recover` has fixed the
/// hop and the queue is flushed, the first message arrives, once.
/// The RFC 3463 status the queue recorded for the first pending recipient's
/// last failure (`queue list --json`), once there is one.
fn recorded_status(relay: &Relay, case: &str) -> String {
    let mut status = None;
    wait_until(&format!("{case}: a recorded failure"), WAIT, || {
        let out = relay.cli(&["queue", "list", "--json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        status = list[0]["recipients"][0]["last_error"]["status"]
            .as_str()
            .map(str::to_string);
        status.is_some()
    });
    status.unwrap_or_default()
}

fn deferred_then_delivered<'a>(
    case: &str,
    hop: &str,
    tls: &str,
    status: &str,
    recover: impl FnOnce() -> Box<dyn Recorder + 'a>,
) -> Relay {
    let healthy = ScriptSink::start(Script::default());
    let timeouts = "connect_timeout = \"2s\"\ncommand_timeout = \"2s\"\ndata_timeout = \"2s\"";
    let relay = RelaySetup::default()
        .section(
            "route.onprem",
            &format!("smarthost = [\"{hop}\"]\ntls = \"{tls}\"\n{timeouts}"),
        )
        .section("route.cloud", &route_to(&healthy.hostport(), timeouts))
        .section(
            "queue",
            "retry_schedule = [\"1s\"]\ndelivery_concurrency = 1",
        )
        .start();
    let addr = relay.addr("smtp");
    let stuck = format!("stuck-{case}@test");
    accepted(addr, &["bob@corp.example"], &stuck, 500);
    wait_until(&format!("{case}: a deferral"), WAIT, || {
        deliveries(&relay, "onprem", "deferred") >= 1.0
    });
    assert_eq!(
        queued(&relay),
        1.0,
        "{case}: the deferred message is queued"
    );
    assert_eq!(deliveries(&relay, "onprem", "delivered"), 0.0, "{case}");
    assert_eq!(
        recorded_status(&relay, case),
        status,
        "{case}: the failure recorded in the queue"
    );

    // The only delivery worker is not held by the bad hop.
    let started = Instant::now();
    accepted(
        addr,
        &["user3@corp.example"],
        &format!("other-{case}@test"),
        500,
    );
    let got = healthy.wait_for(1, WAIT);
    println!(
        "{case}: healthy route delivered in {:?} while the bad hop fails",
        started.elapsed()
    );
    assert_eq!(got[0].recipients, vec!["user3@tenant.cloud.example"]);
    wait_until(
        &format!("{case}: only the stuck message queued"),
        WAIT,
        || queued(&relay) == 1.0,
    );
    let deferred = deliveries(&relay, "onprem", "deferred");

    let recorder = recover();
    let out = relay.cli(&["queue", "flush"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(&format!("{case}: delivery after recovery"), WAIT, || {
        queued(&relay) == 0.0
    });
    let by_id = arrivals(&recorder.received());
    assert_eq!(
        by_id.get(&format!("<{stuck}>")),
        Some(&1),
        "{case}: delivered once after recovery: {by_id:?}"
    );
    assert_eq!(deliveries(&relay, "onprem", "delivered"), 1.0, "{case}");
    println!("{case}: {deferred} deferral(s) before recovery, then delivered once");
    relay
}

#[test]
fn next_hop_refusing_connections() {
    let port = free_port();
    let relay = deferred_then_delivered(
        "refused",
        &format!("127.0.0.1:{port}"),
        "none",
        "4.4.1",
        || Box::new(ScriptSink::start_on(port, Script::default())),
    );
    assert!(relay.log.text().contains("status=deferred"));
}

#[test]
fn next_hop_dropping_mid_data() {
    let dropping = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&dropping);
    let sink = ScriptSink::start(Script {
        drop_in_data: Box::new(move |_| flag.load(Ordering::SeqCst)),
        ..Script::default()
    });
    deferred_then_delivered("drop-mid-data", &sink.hostport(), "none", "4.4.2", || {
        dropping.store(false, Ordering::SeqCst);
        Box::new(&sink)
    });
    assert!(sink.connections() >= 2);
}

impl Recorder for &ScriptSink {
    fn received(&self) -> Vec<Received> {
        ScriptSink::received(self)
    }
}

impl Recorder for &FaultSink {
    fn received(&self) -> Vec<Received> {
        self.backend.received()
    }
}

#[test]
fn next_hop_greeting_with_421() {
    let hop = FaultSink::start(Fault::Greet421);
    // The hop's own 421 4.3.2 is what the queue keeps (RFC 3463: the hop's code).
    deferred_then_delivered("greeting-421", &hop.hostport(), "none", "4.3.2", || {
        hop.set(Fault::Healthy);
        Box::new(&hop)
    });
}

#[test]
fn next_hop_stalling_until_the_command_timeout() {
    let hop = FaultSink::start(Fault::Stall);
    let relay = deferred_then_delivered("stall", &hop.hostport(), "none", "4.4.2", || {
        hop.set(Fault::Healthy);
        Box::new(&hop)
    });
    drop(relay);
}

#[test]
fn next_hop_tls_handshake_failing() {
    let hop = FaultSink::start(Fault::TlsGarbage);
    let relay =
        deferred_then_delivered("tls-garbage", &hop.hostport(), "required", "4.7.5", || {
            hop.set(Fault::StartTls);
            Box::new(&hop)
        });
    let series = |result: &str| {
        relay.metric(&format!(
            "coexist_tls_handshakes_total{{direction=\"outbound\",result=\"{result}\"}}"
        ))
    };
    assert!(series("error") >= 1.0, "failed handshakes are counted");
    assert!(
        series("ok") >= 1.0,
        "the recovered hop was reached over TLS"
    );
}

// ---------------------------------------------------------------------------
// Disk full

#[test]
fn disk_full_refuses_new_mail_and_keeps_what_was_acknowledged() {
    let fs = Tmpfs::mount("2m");
    let port = free_port(); // the next hop is down until the end
    let hop = format!("127.0.0.1:{port}");
    let relay = RelaySetup::default()
        .section(
            "server",
            &format!(
                "hostname = \"relay.test\"\nspool_dir = \"{}\"\nshutdown_grace = \"5s\"",
                fs.path().join("spool").display()
            ),
        )
        .section("route.onprem", &route_to(&hop, ""))
        .section("route.cloud", &route_to(&hop, ""))
        .section("queue", "retry_schedule = [\"1s\"]")
        .start();
    let addr = relay.addr("smtp");
    let queued_ids: Vec<String> = (0..10).map(|i| format!("q{i}@full.test")).collect();
    for id in &queued_ids {
        accepted(addr, &["bob@corp.example"], id, 20_000);
    }

    let filler = fs.fill();
    let deferred_before = deliveries(&relay, "onprem", "deferred");
    for i in 0..3 {
        let reply = submit(
            addr,
            SENDER,
            &["bob@corp.example"],
            &message(&format!("refused{i}@full.test"), 20_000),
            WAIT,
        )
        .expect("the relay answers while the disk is full");
        match reply {
            Submission::Refused(text) => assert!(
                text.starts_with("452 4.3.1"),
                "disk full is 452 4.3.1: {text}"
            ),
            Submission::Accepted(id) => panic!("accepted {id} on a full disk"),
        }
    }
    assert!(relay.metric("coexist_recipients_rejected_total{reason=\"spool\"}") >= 3.0);
    // Delivery attempts go on (and fail to record their state on the full disk)
    // without taking the relay down.
    wait_until("attempts while the disk is full", WAIT, || {
        deliveries(&relay, "onprem", "deferred") >= deferred_before + 10.0
    });
    let (mut c, greeting) = Client::connect(addr);
    assert_eq!(greeting.code, 220, "still serving: {}", greeting.text);
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd("NOOP").has(250, "2.0.0"));
    drop(c);
    assert_eq!(
        queued(&relay),
        10.0,
        "the queue still holds what it acknowledged"
    );

    // Space comes back, the next hop too.
    std::fs::remove_file(filler).unwrap();
    accepted(addr, &["bob@corp.example"], "after@full.test", 20_000);
    let sink = ScriptSink::start_on(port, Script::default());
    assert!(relay.cli(&["queue", "flush"]).status.success());
    let got = sink.wait_for(11, WAIT);
    wait_until("the queue to drain", WAIT, || queued(&relay) == 0.0);
    let by_id = arrivals(&got);
    for id in queued_ids.iter().chain([&"after@full.test".to_string()]) {
        assert_eq!(by_id.get(&format!("<{id}>")), Some(&1), "{id}: {by_id:?}");
        let r = got
            .iter()
            .find(|r| r.message_id().as_deref() == Some(&format!("<{id}>")))
            .unwrap();
        assert!(
            r.data.ends_with(&message(id, 20_000)),
            "{id} arrived byte for byte"
        );
    }
    assert_eq!(by_id.len(), 11, "nothing refused was delivered: {by_id:?}");
}

// ---------------------------------------------------------------------------
// Reload storm

const STORM_USERS: usize = 5;

/// Version `v` of the table: every user's contact on `v<N>.tenant.example`, so a
/// message routed with a mix of two versions shows two different N.
fn storm_table(v: usize) -> String {
    (0..STORM_USERS)
        .map(|u| format!("u{u}@corp.example u{u}@v{v}.tenant.example\n"))
        .collect()
}

#[test]
fn reload_storm_routes_each_message_with_one_table() {
    let secs = env_usize("COEXIST_STORM_SECONDS", 5) as u64;
    let sink = ScriptSink::start(Script::default());
    let relay = RelaySetup::default()
        .section("route.onprem", &route_to(&sink.hostport(), ""))
        .section("route.cloud", &route_to(&sink.hostport(), ""))
        .section("queue", "retry_schedule = [\"1s\"]")
        .contacts(&storm_table(0))
        .start();
    let addr = relay.addr("smtp");
    let contacts = relay.dir.path().join("contacts");
    let pid = relay.pid() as libc::pid_t;
    let users: Vec<String> = (0..STORM_USERS)
        .map(|u| format!("u{u}@corp.example"))
        .collect();
    let rcpts: Vec<&str> = users.iter().map(String::as_str).collect();

    let stop = AtomicBool::new(false);
    let acked = AtomicUsize::new(0);
    let mut rewrites = 0;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (stop, acked, rcpts) = (&stop, &acked, &rcpts);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    accepted(addr, rcpts, &format!("s{t}-{n}@storm.test"), 100);
                    acked.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            });
        }
        // 100 atomic rewrites per second (temp file + rename, as the migrator
        // does), each followed by SIGHUP so the relay really reloads every one.
        let begin = Instant::now();
        let end = begin + Duration::from_secs(secs);
        let tmp = contacts.with_extension("tmp");
        while Instant::now() < end {
            rewrites += 1;
            // Paced by the clock, not by a sleep after each write, to hold 100/s.
            let next = begin + Duration::from_millis(10 * rewrites as u64);
            std::fs::write(&tmp, storm_table(rewrites)).unwrap();
            std::fs::rename(&tmp, &contacts).unwrap();
            // SAFETY: kill(2) on our own child's pid.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let acked = acked.into_inner();
    let got = sink.wait_for(acked, WAIT);
    wait_until("the queue to drain", WAIT, || queued(&relay) == 0.0);

    let mut versions = BTreeSet::new();
    for r in &got {
        let mut seen = BTreeSet::new();
        for rcpt in &r.recipients {
            let (local, domain) = rcpt.split_once('@').unwrap();
            let v: usize = domain
                .strip_prefix('v')
                .and_then(|d| d.strip_suffix(".tenant.example"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a contact target: {rcpt}"));
            assert!(users.contains(&format!("{local}@corp.example")), "{rcpt}");
            seen.insert(v);
        }
        assert_eq!(
            r.recipients.len(),
            STORM_USERS,
            "one transaction with every user: {:?}",
            r.recipients
        );
        assert_eq!(
            seen.len(),
            1,
            "{:?} routed with a mix of table versions: {:?}",
            r.message_id(),
            r.recipients
        );
        versions.extend(seen);
    }
    let reloads = relay.metric("coexist_routing_reloads_total{result=\"ok\"}");
    let errors = relay.metric("coexist_routing_reloads_total{result=\"error\"}");
    println!(
        "reload storm: {rewrites} rewrites in {secs}s, {reloads} reloads, {errors} errors, \
         {acked} messages, {} distinct table versions used",
        versions.len()
    );
    assert_eq!(
        errors, 0.0,
        "an atomically replaced table never fails to load"
    );
    assert!(
        reloads >= (rewrites / 2) as f64,
        "the relay reloaded under the storm"
    );
    assert!(
        versions.len() >= 3,
        "messages flowed across table changes: {versions:?}"
    );
}

// ---------------------------------------------------------------------------
// Connection flood

/// Source address number `i` in 127.1.0.0/16 (each with its own per-IP count).
fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn connect_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.connect(&to.into())?;
    Ok(socket.into())
}

#[test]
fn connection_flood_stays_responsive_and_caps_with_421() {
    let n = env_usize("COEXIST_FLOOD_CONNECTIONS", 2000);
    let per_ip = 50;
    let limit = raise_nofile((n + 1024) as u64);
    assert!(
        limit as usize > n + 100,
        "open-file limit {limit} too low for {n} connections"
    );
    let relay = RelaySetup::default()
        .listeners(&["name = \"smtp\"\nbind = \"127.0.0.1:0\"\ntls = \"none\""])
        .section(
            "limits",
            &format!("max_connections = {n}\nmax_connections_per_ip = {per_ip}"),
        )
        .nofile((n + 1024).max(4096) as u64)
        .start();
    let addr = relay.addr("smtp");
    let pid = relay.pid();
    let (rss_idle, _) = memory_kib(pid);

    // n - 1 idle connections, `per_ip` from each source address.
    let started = Instant::now();
    let mut idle = Vec::with_capacity(n);
    for i in 0..n - 1 {
        idle.push(connect_from(source(i / per_ip), addr).expect("connect"));
    }
    // Generous: 10 000 connections to a debug build on two shared cores take ~60 s.
    let open_time = Duration::from_secs(60 + n as u64 / 100);
    wait_until("every connection has a session", open_time, || {
        relay.metric("coexist_smtp_sessions_active") == (n - 1) as f64
    });
    let opened_in = started.elapsed();

    // The per-IP cap: the first source address is full.
    let (_c, reply) = Client::connect_from(source(0), addr);
    assert!(reply.has(421, "4.7.0"), "per-IP cap: {}", reply.text);

    // A new client still gets its greeting at once and can send a message.
    let fresh = IpAddr::V4(Ipv4Addr::new(127, 2, 0, 1));
    let t = Instant::now();
    let (mut c, greeting) = Client::connect_from(fresh, addr);
    let greeting_latency = t.elapsed();
    assert_eq!(greeting.code, 220, "{}", greeting.text);
    assert_eq!(c.ehlo().code, 250);
    assert!(c.cmd(&format!("MAIL FROM:<{SENDER}>")).has(250, "2.1.0"));
    assert!(c.cmd("RCPT TO:<bob@corp.example>").has(250, "2.1.5"));
    assert_eq!(c.cmd("DATA").code, 354);
    c.send(&message("flood@test", 100));
    c.send(b".\r\n");
    assert!(c.read_reply().has(250, "2.0.0"));
    let transaction = t.elapsed();

    // That was the last slot: the next client is told why.
    let (_d, reply) = Client::connect_from(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 2)), addr);
    assert!(reply.has(421, "4.7.0"), "max_connections: {}", reply.text);
    assert!(relay.metric("coexist_recipients_rejected_total{reason=\"connections\"}") >= 2.0);

    let (rss, hwm) = memory_kib(pid);
    let per_conn = (rss.saturating_sub(rss_idle)) as f64 / n as f64;
    println!(
        "connection flood: connections={n} opened_in={:.2}s greeting_latency={:.1}ms \
         transaction={:.1}ms rss_idle={}KiB rss={}KiB peak={}KiB per_connection={per_conn:.1}KiB",
        opened_in.as_secs_f64(),
        greeting_latency.as_secs_f64() * 1000.0,
        transaction.as_secs_f64() * 1000.0,
        rss_idle,
        rss,
        hwm
    );
    assert!(
        greeting_latency < Duration::from_secs(2),
        "greeting took {greeting_latency:?}"
    );
    assert!(per_conn < 64.0, "{per_conn:.1} KiB per idle connection");

    drop(c);
    drop(idle);
    wait_until("every slot to be released", WAIT, || {
        relay.metric("coexist_smtp_sessions_active") == 0.0
    });
    let (_e, reply) = Client::connect_from(source(0), addr);
    assert_eq!(reply.code, 220, "slots freed: {}", reply.text);
}

// ---------------------------------------------------------------------------
// Slowloris

/// Sends one byte every 500 ms until the server answers or closes; returns the
/// reply (or "closed") and how long the drip lasted.
fn drip(mut stream: TcpStream, bytes: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    for b in bytes.iter().cycle() {
        if started.elapsed() > Duration::from_secs(30) {
            return ("still open after 30 s".into(), started.elapsed());
        }
        if stream.write_all(&[*b]).is_err() {
            return ("closed".into(), started.elapsed());
        }
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => {
                let text = String::from_utf8_lossy(&got).trim_end().to_string();
                return (
                    if text.is_empty() {
                        "closed".into()
                    } else {
                        text
                    },
                    started.elapsed(),
                );
            }
            Ok(k) => {
                got.extend_from_slice(&buf[..k]);
                if got.ends_with(b"\r\n") {
                    let text = String::from_utf8_lossy(&got).trim_end().to_string();
                    return (text, started.elapsed());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return ("closed".into(), started.elapsed()),
        }
    }
    unreachable!("cycle never ends")
}

#[test]
fn slowloris_clients_are_cut_off_and_their_slots_freed() {
    let slots = 6;
    let relay = RelaySetup::default()
        .section(
            "limits",
            &format!(
                "command_timeout = \"2s\"\ndata_timeout = \"2s\"\n\
                 max_connections = {slots}\nmax_connections_per_ip = {slots}"
            ),
        )
        .start();
    let addr = relay.addr("smtp");
    let results: Mutex<Vec<(&str, String, Duration)>> = Mutex::default();
    let dripping = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..slots {
            let (results, dripping) = (&results, &dripping);
            scope.spawn(move || {
                let (mut c, greeting) = Client::connect(addr);
                assert_eq!(greeting.code, 220);
                let phase = if i % 2 == 0 {
                    "command"
                } else {
                    c.ehlo();
                    assert!(c.cmd(&format!("MAIL FROM:<{SENDER}>")).has(250, "2.1.0"));
                    assert!(c.cmd("RCPT TO:<bob@corp.example>").has(250, "2.1.5"));
                    assert_eq!(c.cmd("DATA").code, 354);
                    "data"
                };
                let stream = c.into_stream();
                dripping.fetch_add(1, Ordering::SeqCst);
                let bytes: &[u8] = if phase == "command" {
                    b"EHLO slow.client.example\r\n"
                } else {
                    b"Subject: slow\r\n\r\nslow body line\r\n"
                };
                let (reply, lasted) = drip(stream, bytes);
                results.lock().unwrap().push((phase, reply, lasted));
            });
        }
        // While they drip, they hold every slot.
        wait_until("all slowloris clients dripping", WAIT, || {
            dripping.load(Ordering::SeqCst) == slots
        });
        assert_eq!(relay.metric("coexist_smtp_sessions_active"), slots as f64);
        let (_c, reply) = Client::connect(addr);
        assert!(reply.has(421, "4.7.0"), "slots all held: {}", reply.text);
    });
    for (phase, reply, lasted) in results.into_inner().unwrap() {
        println!("slowloris ({phase} phase): cut off after {lasted:?} with {reply:?}");
        assert!(
            reply.starts_with("421 4.4.2"),
            "{phase}: expected 421 4.4.2, got {reply:?} after {lasted:?}"
        );
        assert!(
            lasted < Duration::from_secs(5),
            "{phase}: a 2 s timeout took {lasted:?}: one byte per 500 ms must not extend it"
        );
    }
    wait_until("slots released", WAIT, || {
        relay.metric("coexist_smtp_sessions_active") == 0.0
    });
    let (_c, reply) = Client::connect(addr);
    assert_eq!(reply.code, 220, "a new client gets a slot: {}", reply.text);
}

// ---------------------------------------------------------------------------
// Signals and clients that do not read

/// A reload requested the moment the relay is up (a migrator flipping a user
/// right after a restart) reloads; it must not kill the process.
#[test]
fn sighup_right_after_start_reloads() {
    for _ in 0..3 {
        let relay = RelaySetup::default().start();
        relay.signal("HUP");
        assert!(
            relay
                .log
                .wait_for("contacts table reloaded (SIGHUP)", 0, WAIT)
                .is_some(),
            "{}",
            relay.log.text()
        );
        let (_c, greeting) = Client::connect(relay.addr("smtp"));
        assert_eq!(greeting.code, 220);
    }
}

/// A client that pipelines commands and never reads the replies fills its socket
/// buffer; the relay gives up on it after command_timeout and frees the slot.
#[test]
fn client_that_never_reads_its_replies_is_dropped() {
    let relay = RelaySetup::default()
        .section("limits", "command_timeout = \"2s\"\nmax_errors = 1000000")
        .start();
    let stream = TcpStream::connect(relay.addr("smtp")).unwrap();
    let mut w = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = b"NOOP\r\n".repeat(10_000);
        let started = Instant::now();
        // Until the relay closes (write error) or 30 s pass.
        while started.elapsed() < Duration::from_secs(30) {
            if w.write_all(&chunk).is_err() {
                return started.elapsed();
            }
        }
        started.elapsed()
    });
    wait_until("the non-reading client to fill its buffers", WAIT, || {
        relay.metric("coexist_smtp_sessions_active") == 1.0
    });
    wait_until("the relay to drop it", WAIT, || {
        relay.metric("coexist_smtp_sessions_active") == 0.0
    });
    drop(stream);
    let lasted = writer.join().unwrap();
    println!("non-reading client: dropped after {lasted:?}");
    assert!(
        lasted < Duration::from_secs(30),
        "still connected after {lasted:?}"
    );
}
