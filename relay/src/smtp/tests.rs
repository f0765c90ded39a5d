//! Scripted sessions over an in-memory stream: the state machine without sockets.

use super::*;
use crate::config::Config;
use crate::queue::spool::Spool;
use crate::route::reload::Contacts;
use crate::route::router::Router;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
[server]
hostname = "relay.test"
spool_dir = "spool"
[[listener]]
name = "smtp"
bind = "127.0.0.1:0"
tls = "none"
[limits]
max_recipients = 2
max_message_size = 200
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

struct Script {
    client: DuplexStream,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<std::io::Result<SessionEnd>>,
    envelopes: tokio::sync::mpsc::UnboundedReceiver<crate::envelope::Envelope>,
    shutdown: CancellationToken,
}

async fn start(peer: &str) -> Script {
    start_with(peer, CONFIG).await
}

async fn start_with(peer: &str, config: &str) -> Script {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("contacts"),
        "ann@corp.example ann@tenant.cloud.example\n",
    )
    .unwrap();
    let config = Config::from_str(config, &dir.path().join("relay.toml")).unwrap();
    let routes: BTreeSet<String> = config.routes.keys().cloned().collect();
    let contacts = Contacts::load(&config.routing.contacts, routes).unwrap();
    let router = Arc::new(Router::new(&config.relay, &config.routing, contacts));
    let (spool, _) = Spool::open(&config.server.spool_dir).unwrap();
    let (tx, envelopes) = tokio::sync::mpsc::unbounded_channel();
    let listener = Arc::new(config.listeners[0].clone());
    let shutdown = CancellationToken::new();
    let policy = Arc::new(crate::policy::Policy::new(&config.limits));
    let ctx = Arc::new(SessionContext {
        config: Arc::new(config),
        router,
        spool,
        queued: Some(tx),
        shutdown: shutdown.clone(),
        policy,
    });
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let conn = ConnectionInfo {
        listener,
        peer: peer.parse().unwrap(),
        tls: None,
    };
    let task = tokio::spawn(async move {
        let mut session = Session::new(ctx, conn);
        session.greet();
        session.run(&mut server).await
    });
    let mut s = Script {
        client,
        _dir: dir,
        task,
        envelopes,
        shutdown,
    };
    assert!(s.read().await.starts_with("220 relay.test"));
    s
}

impl Script {
    async fn send(&mut self, bytes: &[u8]) {
        self.client.write_all(bytes).await.unwrap();
    }

    /// Reads whole reply lines until `n` replies (last line without '-') arrived.
    async fn replies(&mut self, n: usize) -> Vec<String> {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        let mut done = Vec::new();
        while done.len() < n {
            let k = self.client.read(&mut buf).await.unwrap();
            assert!(k > 0, "EOF after {done:?}");
            text.push_str(std::str::from_utf8(&buf[..k]).unwrap());
            while let Some(pos) = text.find("\r\n") {
                let line: String = text.drain(..pos + 2).collect();
                if line.as_bytes().get(3) != Some(&b'-') {
                    done.push(line.trim_end().to_string());
                }
            }
        }
        done
    }

    async fn read(&mut self) -> String {
        self.replies(1).await.remove(0)
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.read().await
    }
}

#[tokio::test]
async fn envelope_order_is_enforced() {
    let mut s = start("192.0.2.1:1000").await;
    assert!(s
        .cmd("MAIL FROM:<a@x.example>")
        .await
        .starts_with("503 5.5.1"));
    assert!(s.cmd("EHLO c").await.starts_with("250 DSN"));
    assert!(s
        .cmd("RCPT TO:<b@corp.example>")
        .await
        .starts_with("503 5.5.1"));
    assert!(s.cmd("DATA").await.starts_with("503 5.5.1"));
    assert!(s
        .cmd("MAIL FROM:<a@x.example>")
        .await
        .starts_with("250 2.1.0"));
    assert!(
        s.cmd("DATA").await.starts_with("503 5.5.1"),
        "DATA before RCPT"
    );
    assert!(
        s.cmd("STARTTLS").await.starts_with("502 5.5.1"),
        "not offered here"
    );
    assert!(s.cmd("QUIT").await.starts_with("221 2.0.0"));
    assert_eq!(s.task.await.unwrap().unwrap(), SessionEnd::Closed);
}

#[tokio::test]
async fn routing_decisions_are_stored_with_the_envelope() {
    let mut s = start("192.0.2.1:1000").await;
    s.send(b"EHLO c\r\nMAIL FROM:<a@x.example> RET=HDRS ENVID=e1\r\nRCPT TO:<Ann+tag@corp.example> NOTIFY=FAILURE ORCPT=rfc822;ann@corp.example\r\nRCPT TO:<eve@elsewhere.example>\r\nRCPT TO:<bob@corp.example>\r\nRCPT TO:<x@corp.example>\r\nDATA\r\n").await;
    let r = s.replies(7).await;
    assert!(r[2].starts_with("250 2.1.5"));
    assert!(r[4].starts_with("250 2.1.5"));
    assert!(
        r[3].starts_with("554 5.7.1"),
        "untrusted client, foreign domain: {r:?}"
    );
    assert!(r[5].starts_with("452 4.5.3"), "max_recipients = 2");
    assert!(r[6].starts_with("354"));
    s.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(s.read().await.starts_with("250 2.0.0"));
    let env = s.envelopes.recv().await.unwrap();
    assert_eq!(env.sender, "a@x.example");
    assert_eq!(env.envid.as_deref(), Some("e1"));
    assert_eq!(env.recipients.len(), 2);
    assert_eq!(env.recipients[0].rewritten, "ann+tag@tenant.cloud.example");
    assert_eq!(env.recipients[0].route, "cloud");
    assert!(env.recipients[0].notify.failure);
    assert_eq!(env.recipients[0].orcpt.as_deref(), Some("ann@corp.example"));
    assert_eq!(env.recipients[1].rewritten, "bob@corp.example");
    assert_eq!(env.recipients[1].route, "onprem");
}

#[tokio::test]
async fn oversize_data_is_refused_and_the_session_goes_on() {
    let mut s = start("192.0.2.1:1000").await;
    s.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@corp.example>\r\nDATA\r\n")
        .await;
    s.replies(4).await;
    s.send(&[b'x'; 300]).await;
    s.send(b"\r\n.\r\nNOOP\r\n").await;
    let r = s.replies(2).await;
    assert!(r[0].starts_with("552 5.3.4"), "{r:?}");
    assert!(r[1].starts_with("250 2.0.0"));
}

#[tokio::test]
async fn bdat_and_data_do_not_mix() {
    let mut s = start("192.0.2.1:1000").await;
    s.send(
        b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@corp.example>\r\nBDAT 3\r\nabcDATA\r\n",
    )
    .await;
    let r = s.replies(5).await;
    assert!(r[3].starts_with("250 2.0.0 3 octets"));
    assert!(r[4].starts_with("503 5.5.1"), "{r:?}");
    s.send(b"BDAT 2 LAST\r\nde").await;
    assert!(s.read().await.starts_with("250 2.0.0"));
    assert!(s.envelopes.recv().await.is_some());
}

#[tokio::test]
async fn shutdown_says_421_4_3_2_between_commands() {
    let mut s = start("192.0.2.1:1000").await;
    s.cmd("EHLO c").await;
    s.shutdown.cancel();
    assert!(s.read().await.starts_with("421 4.3.2"));
    assert_eq!(s.task.await.unwrap().unwrap(), SessionEnd::Closed);
}

/// DESIGN.md "Shutdown" (issue #16: the session was cut off mid-transaction):
/// a transaction open when the relay stops may finish and gets its 250; the
/// session then hears 421 4.3.2, and nothing pipelined after opens another.
#[tokio::test]
async fn shutdown_lets_an_open_transaction_finish_then_says_421() {
    let mut s = start("192.0.2.1:1000").await;
    s.cmd("EHLO c").await;
    assert!(s.cmd("MAIL FROM:<a@x.example>").await.starts_with("250"));
    s.shutdown.cancel();
    assert!(s
        .cmd("RCPT TO:<bob@corp.example>")
        .await
        .starts_with("250 2.1.5"));
    assert!(s.cmd("DATA").await.starts_with("354"));
    s.send(b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<a@x.example>\r\n")
        .await;
    let r = s.replies(2).await;
    assert!(r[0].starts_with("250 2.0.0"), "{r:?}");
    assert!(r[1].starts_with("421 4.3.2"), "not a second MAIL: {r:?}");
    assert!(s.envelopes.recv().await.is_some(), "the message was queued");
    assert_eq!(s.task.await.unwrap().unwrap(), SessionEnd::Closed);
}

/// Sends `bytes` one per minute (on the paused clock) and returns the first reply
/// line and when it came, counted from the first byte.
async fn drip(s: Script, bytes: &[u8]) -> (String, Duration) {
    let Script { client, _dir, .. } = s;
    let (mut r, mut w) = tokio::io::split(client);
    let started = tokio::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"\r\n") {
            let k = r.read(&mut buf).await.unwrap_or(0);
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        let text = String::from_utf8_lossy(&got).trim_end().to_string();
        (text, started.elapsed())
    });
    for b in bytes {
        if reader.is_finished() {
            break;
        }
        let _ = w.write_all(&[*b]).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    reader.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_command_dripped_byte_by_byte_gets_command_timeout_in_all() {
    // command_timeout is 5m by default; one byte a minute must not extend it.
    let s = start("192.0.2.1:1000").await;
    let (reply, after) = drip(s, b"EHLO a.very.slow.client.example\r\n").await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(
        after <= Duration::from_secs(5 * 60 + 1),
        "cut off after {after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_dripped_byte_by_byte_is_cut_off_at_data_timeout() {
    let mut s = start("192.0.2.1:1000").await;
    assert!(s.cmd("EHLO c.example").await.starts_with("250"));
    assert!(s.cmd("MAIL FROM:<a@x.example>").await.starts_with("250"));
    assert!(s.cmd("RCPT TO:<bob@corp.example>").await.starts_with("250"));
    assert!(s.cmd("DATA").await.starts_with("354"));
    // data_timeout is 10m; 500 B/s of credit per byte received is nothing here.
    let (reply, after) = drip(s, b"Subject: slow\r\n\r\na body that never ends\r\n").await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(
        after <= Duration::from_secs(10 * 60 + 1),
        "cut off after {after:?}"
    );
}

/// Found by the hostile-input campaign (issue #6): smtp-proto lets NUL and other
/// control characters through inside a quoted local part, and drops the quotes.
#[tokio::test]
async fn control_characters_in_addresses_are_refused_and_quotes_kept() {
    let mut s = start("192.0.2.1:1000").await;
    s.send(b"EHLO c\r\nMAIL FROM:<\"a\x00b\"@x.example>\r\nMAIL FROM:<\"s t\"@x.example>\r\nRCPT TO:<\"a\x00b\"@corp.example>\r\nRCPT TO:<\"a\x1b[31m\"@corp.example>\r\nRCPT TO:<\"x y\"@corp.example>\r\nDATA\r\n").await;
    let r = s.replies(7).await;
    assert!(r[1].starts_with("501 5.1.7"), "{r:?}");
    assert!(r[2].starts_with("250 2.1.0"), "{r:?}");
    assert!(r[3].starts_with("501 5.1.3"), "{r:?}");
    assert!(r[4].starts_with("501 5.1.3"), "{r:?}");
    assert!(r[5].starts_with("250 2.1.5"), "{r:?}");
    s.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(s.read().await.starts_with("250 2.0.0"));
    let env = s.envelopes.recv().await.unwrap();
    assert_eq!(env.sender, "\"s t\"@x.example");
    assert_eq!(env.recipients.len(), 1);
    assert_eq!(env.recipients[0].rewritten, "\"x y\"@corp.example");
}

/// Found by the hostile-input campaign (issue #6): `RET=FULL RET=HDRS` was accepted
/// with both meanings set.
#[tokio::test]
async fn repeated_parameters_are_refused() {
    let mut s = start("192.0.2.1:1000").await;
    s.send(b"EHLO c\r\nMAIL FROM:<a@x.example> RET=FULL RET=HDRS\r\nMAIL FROM:<a@x.example> SIZE=1 SIZE=2\r\nMAIL FROM:<a@x.example> SIZE=1\r\nRCPT TO:<b@corp.example> NOTIFY=NEVER notify=SUCCESS\r\nRCPT TO:<b@corp.example> NOTIFY=NEVER\r\n").await;
    let r = s.replies(6).await;
    assert!(
        r[1].starts_with("501 5.5.4 Parameter RET given more than once"),
        "{r:?}"
    );
    assert!(r[2].starts_with("501 5.5.4 Parameter SIZE"), "{r:?}");
    assert!(r[3].starts_with("250 2.1.0"), "{r:?}");
    assert!(r[4].starts_with("501 5.5.4 Parameter NOTIFY"), "{r:?}");
    assert!(r[5].starts_with("250 2.1.5"), "{r:?}");
}

/// Found by the hostile-input campaign (issue #6): invalid UTF-8 in an address became
/// U+FFFD and was accepted under SMTPUTF8.
#[tokio::test]
async fn invalid_utf8_in_addresses_is_refused() {
    let mut s = start("192.0.2.1:1000").await;
    s.send(b"EHLO c\r\nMAIL FROM:<\xff@x.example> SMTPUTF8\r\nMAIL FROM:<a@x.example> SMTPUTF8\r\nRCPT TO:<us\xc3er@corp.example>\r\nRCPT TO:<j\xc3\xbcrgen@corp.example>\r\n").await;
    let r = s.replies(5).await;
    assert!(r[1].starts_with("501 5.1.7"), "{r:?}");
    assert!(r[2].starts_with("250 2.1.0"), "{r:?}");
    assert!(r[3].starts_with("501 5.1.3"), "{r:?}");
    assert!(r[4].starts_with("250 2.1.5"), "valid UTF-8 passes: {r:?}");
}

/// Issue #15: a message far larger than the session's buffer reaches the
/// spool whole (in its own file, the Received field first); one over the
/// limit is refused and leaves no file behind.
#[tokio::test]
async fn large_messages_stream_to_the_spool_and_refused_ones_leave_nothing() {
    let config = CONFIG.replace("max_message_size = 200", "max_message_size = \"2MiB\"");
    let mut s = start_with("192.0.2.1:1000", &config).await;
    let queue = s._dir.path().join("spool/queue");
    let line = format!("{}\r\n", "x".repeat(998));
    let body: String = std::iter::repeat_n(line.as_str(), 1000).collect();
    for (verb, chunked) in [("DATA", false), ("BDAT", true)] {
        s.cmd("EHLO c").await;
        assert!(s.cmd("MAIL FROM:<a@x.example>").await.starts_with("250"));
        assert!(s.cmd("RCPT TO:<bob@corp.example>").await.starts_with("250"));
        let message = format!("Subject: big {verb}\r\n\r\n{body}");
        if chunked {
            let (first, rest) = message.split_at(600 * 1024);
            s.send(format!("BDAT {}\r\n{first}", first.len()).as_bytes())
                .await;
            assert!(s.read().await.starts_with("250 2.0.0"));
            s.send(format!("BDAT {} LAST\r\n{rest}", rest.len()).as_bytes())
                .await;
        } else {
            assert!(s.cmd("DATA").await.starts_with("354"));
            s.send(format!("{message}.\r\n").as_bytes()).await;
        }
        assert!(s.read().await.starts_with("250 2.0.0"), "{verb}");
        let envelope = s.envelopes.recv().await.unwrap();
        let external = envelope.external.expect("kept in its own file");
        let stored = std::fs::read(queue.join(format!("{}.msg", envelope.id))).unwrap();
        assert_eq!(stored.len() as u64, external.len);
        assert!(stored.starts_with(b"Received: from c ("), "ours first");
        assert!(
            stored.ends_with(message.as_bytes()),
            "{verb}: byte for byte"
        );
    }
    // Over the limit: refused, nothing left in the queue folder.
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(&queue)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    s.cmd("EHLO c").await;
    assert!(s.cmd("MAIL FROM:<a@x.example>").await.starts_with("250"));
    assert!(s.cmd("RCPT TO:<bob@corp.example>").await.starts_with("250"));
    assert!(s.cmd("DATA").await.starts_with("354"));
    for _ in 0..3 {
        s.send(body.as_bytes()).await;
    }
    s.send(b".\r\n").await;
    assert!(s.read().await.starts_with("552 5.3.4"));
    assert_eq!(before, listing(), "the refused message's file is gone");
}
