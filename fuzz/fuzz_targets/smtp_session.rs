//! A whole inbound SMTP session (`relay::smtp::Session`) over an in-memory stream:
//! framing, parsing, the envelope state machine, DATA/BDAT, spooling, and routing.
//!
//! The client is outside `trusted_networks`, so the open-relay rule is an oracle:
//! every message that reaches the spool must have only recipients routed to the
//! accepted domain's routes (never `internet`, never rewritten to a foreign domain).
//! Every reply must be well formed (`ddd` + space or dash, CRLF-terminated, printable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::config::Config;
use relay::policy::Policy;
use relay::queue::spool::Spool;
use relay::route::reload::Contacts;
use relay::route::router::Router;
use relay::route::table::ContactsTable;
use relay::smtp::{ConnectionInfo, Session, SessionContext};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const CONFIG: &str = r#"
[server]
hostname = "relay.test"
spool_dir = "spool"
[[listener]]
name = "smtp"
bind = "127.0.0.1:0"
tls = "none"
[limits]
max_recipients = 3
max_message_size = 2000
max_received_headers = 5
[relay]
accepted_domains = ["corp.example"]
trusted_networks = ["10.0.0.0/8"]
[routing]
contacts = "contacts"
[route.onprem]
smarthost = ["127.0.0.1:9"]
[route.cloud]
smarthost = ["127.0.0.1:9"]
[route.internet]
mx = true
"#;

const CONTACTS: &str =
    "ann@corp.example ann@tenant.cloud.example\n\"x@y\"@corp.example xy@tenant.cloud.example\n";

struct World {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<SessionContext>,
    envelopes: std::sync::Mutex<mpsc::UnboundedReceiver<relay::envelope::Envelope>>,
    _dir: tempfile::TempDir,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    // tmpfs when there is one: every accepted message is fsynced.
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    };
    let dir = base.expect("scratch dir");
    let config = Config::from_str(CONFIG, &dir.path().join("relay.toml")).expect("config");
    let routes: BTreeSet<String> = config.routes.keys().cloned().collect();
    let table = ContactsTable::parse(CONTACTS, Path::new("contacts"), &|r| routes.contains(r))
        .expect("contacts");
    let contacts = Contacts::with_table(&dir.path().join("contacts"), routes, table);
    let router = Arc::new(Router::new(&config.relay, &config.routing, contacts));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (spool, _) = runtime
        .block_on(async { Spool::open(&config.server.spool_dir) })
        .expect("spool");
    let (tx, rx) = mpsc::unbounded_channel();
    let policy = Arc::new(Policy::new(&config.limits));
    let ctx = Arc::new(SessionContext {
        config: Arc::new(config),
        router,
        spool,
        queued: Some(tx),
        shutdown: tokio_util::sync::CancellationToken::new(),
        policy,
    });
    World {
        runtime,
        ctx,
        envelopes: std::sync::Mutex::new(rx),
        _dir: dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let world = &*WORLD;
    let conn = ConnectionInfo {
        listener: Arc::new(world.ctx.config.listeners[0].clone()),
        peer: "192.0.2.1:1025".parse().expect("peer"),
        tls: None,
    };
    let output = world.runtime.block_on(async {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let mut session = Session::new(Arc::clone(&world.ctx), conn);
        session.greet();
        let serve = async move {
            let _ = session.run(&mut server).await;
            // Dropping our end unblocks a client still writing.
            drop(server);
        };
        let talk = async move {
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let write = async {
                let _ = wr.write_all(data).await;
                let _ = wr.shutdown().await;
            };
            let mut out = Vec::new();
            let read = rd.read_to_end(&mut out);
            let (_, _) = tokio::join!(write, read);
            out
        };
        let ((), out) = tokio::join!(serve, talk);
        out
    });
    check_replies(&output);
    let mut envelopes = world.envelopes.lock().expect("envelopes");
    while let Ok(envelope) = envelopes.try_recv() {
        for r in &envelope.recipients {
            assert_ne!(
                r.route, "internet",
                "relayed for an untrusted client: {r:?}"
            );
            let domain = r.rewritten.rsplit('@').next().unwrap_or("").to_lowercase();
            assert!(
                matches!(
                    domain.trim_end_matches('.'),
                    "corp.example" | "tenant.cloud.example"
                ),
                "rewritten to a foreign domain: {r:?}"
            );
            assert!(
                !r.rewritten.bytes().any(|b| b < 0x20 || b == 0x7f),
                "control character in a recipient: {r:?}"
            );
        }
        world
            .ctx
            .spool
            .remove(&envelope.id)
            .expect("remove spooled");
    }
});

fn check_replies(out: &[u8]) {
    let mut rest = out;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("reply without CRLF: {rest:?}"));
        let line = &rest[..end];
        assert!(line.len() >= 4, "short reply line {line:?}");
        assert!(line[..3].iter().all(u8::is_ascii_digit), "{line:?}");
        assert!(matches!(line[3], b' ' | b'-'), "{line:?}");
        assert!(
            line.iter().all(|&b| b >= 0x20 && b != 0x7f),
            "control character in reply {line:?}"
        );
        rest = &rest[end + 2..];
    }
}
