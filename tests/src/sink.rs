//! Next hops for delivery tests: Postfix's `smtp-sink` (the real thing), and a scripted
//! sink that injects failures (4xx/5xx replies, dropped connections) and records every
//! transaction so tests count messages by Message-ID.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One transaction the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// MAIL FROM address.
    pub sender: String,
    /// Accepted RCPT TO addresses.
    pub recipients: Vec<String>,
    /// The message as received (dot-unstuffed, CRLF).
    pub data: Vec<u8>,
}

impl Received {
    /// The Message-ID header's value, if any.
    pub fn message_id(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data);
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                l.strip_prefix("Message-ID:")
                    .or_else(|| l.strip_prefix("Message-Id:"))
            })
            .map(|v| v.trim().to_string())
    }
}

/// Reply to RCPT TO: (address, connection number) → reply line.
pub type RcptReply = Box<dyn Fn(&str, usize) -> String + Send + Sync>;

/// How the scripted sink answers. Each function gets the 1-based connection number.
pub struct Script {
    /// Greeting line (default `220 sink.test ESMTP`).
    pub greeting: Box<dyn Fn(usize) -> String + Send + Sync>,
    /// Reply to RCPT TO (address, connection number).
    pub rcpt: RcptReply,
    /// Reply after the data (connection number).
    pub data: Box<dyn Fn(usize) -> String + Send + Sync>,
    /// Close the connection in the middle of DATA on this connection number.
    pub drop_in_data: Box<dyn Fn(usize) -> bool + Send + Sync>,
    /// Called with each accepted message before the final `250`: a sink that
    /// delivers somewhere (e.g. into an IMAP mailbox) acknowledges only after it.
    pub on_message: Option<OnMessage>,
}

/// Hands an accepted message on; false answers `451` instead of `250`.
pub type OnMessage = Box<dyn Fn(&Received) -> bool + Send + Sync>;

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: Box::new(|_| "220 sink.test ESMTP".into()),
            rcpt: Box::new(|_, _| "250 2.1.5 Ok".into()),
            data: Box::new(|_| "250 2.0.0 Ok: queued".into()),
            drop_in_data: Box::new(|_| false),
            on_message: None,
        }
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    changed: Condvar,
    connections: AtomicUsize,
    mail_commands: AtomicUsize,
    stop: AtomicBool,
}

/// A scripted SMTP server on 127.0.0.1 (no STARTTLS offered).
pub struct ScriptSink {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ScriptSink {
    /// Starts the sink on a free port.
    pub fn start(script: Script) -> ScriptSink {
        Self::start_on(0, script)
    }

    /// Starts the sink on a given port (to bring a "down" next hop back up).
    pub fn start_on(port: u16, script: Script) -> ScriptSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind sink");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let script = Arc::new(script);
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let n = s.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let (s, script) = (Arc::clone(&s), Arc::clone(&script));
                std::thread::spawn(move || {
                    let _ = serve(stream, n, &script, &s);
                });
            }
        });
        ScriptSink { addr, shared }
    }

    /// `host:port` for a smarthost list.
    pub fn hostport(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// MAIL commands seen so far (accepted or not).
    pub fn mail_commands(&self) -> usize {
        self.shared.mail_commands.load(Ordering::SeqCst)
    }

    /// Transactions completed so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` transactions completed; returns them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut got = self.shared.received.lock().unwrap();
        while got.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!("sink got {} of {n} messages in {timeout:?}", got.len());
            };
            got = self.shared.changed.wait_timeout(got, left).unwrap().0;
        }
        got.clone()
    }
}

impl Drop for ScriptSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, n: usize, script: &Script, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    // Each reply goes out in one write with Nagle off: a reply split over two
    // segments waits for the relay's delayed ACK and made the sink, not the relay,
    // the bottleneck (~150 msg/s).
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(format!("{}\r\n", (script.greeting)(n)).as_bytes())?;
    if (script.greeting)(n).starts_with('4') || (script.greeting)(n).starts_with('5') {
        return Ok(());
    }
    let mut txn: Option<Received> = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000".to_string()
        } else if upper.starts_with("HELO") {
            "250 sink.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            shared.mail_commands.fetch_add(1, Ordering::SeqCst);
            let sender = between(&cmd, '<', '>');
            txn = Some(Received {
                sender,
                recipients: Vec::new(),
                data: Vec::new(),
            });
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = between(&cmd, '<', '>');
            let reply = (script.rcpt)(&rcpt, n);
            if reply.starts_with('2') {
                if let Some(t) = txn.as_mut() {
                    t.recipients.push(rcpt);
                }
            }
            reply
        } else if upper == "DATA" && txn.as_ref().is_none_or(|t| t.recipients.is_empty()) {
            // As Postfix: a pipelining client sends DATA with the envelope
            // (RFC 2920) and learns here that there is nobody to send to.
            "554 5.5.1 Error: no valid recipients".into()
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n")?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l)? == 0 {
                    return Ok(());
                }
                if (script.drop_in_data)(n) && data.len() > 10 {
                    return Ok(()); // connection dropped mid-DATA
                }
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            let mut reply = (script.data)(n);
            if reply.starts_with('2') {
                if let Some(mut t) = txn.take() {
                    t.data = data;
                    if script.on_message.as_ref().is_none_or(|f| f(&t)) {
                        shared.received.lock().unwrap().push(t);
                        shared.changed.notify_all();
                    } else {
                        reply = "451 4.3.0 could not hand the message on".into();
                    }
                }
            }
            reply
        } else if upper == "RSET" || upper == "NOOP" {
            txn = None;
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 unknown".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

fn between(s: &str, a: char, b: char) -> String {
    let start = s.find(a).map_or(0, |i| i + 1);
    let end = s[start..].find(b).map_or(s.len(), |i| start + i);
    s[start..end].to_string()
}

/// Postfix's `smtp-sink`, dumping every message into a folder.
pub struct PostfixSink {
    /// Where it listens.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl PostfixSink {
    /// Starts `smtp-sink -c -d DIR/msg. 127.0.0.1:PORT 100` on a free port.
    pub fn start() -> PostfixSink {
        let port = crate::free_port();
        let dir = tempfile::tempdir().unwrap();
        let template = format!("{}/msg.", dir.path().display());
        let child = Command::new("/usr/sbin/smtp-sink")
            .args(["-c", "-u", "root", "-d", &template])
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink (Debian package postfix)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PostfixSink { addr, dir, child }
    }

    /// The dumped messages so far (smtp-sink writes LF line ends and `X-*` trace lines).
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter(|t| t.ends_with("\n\n") || t.ends_with('\n'))
            .collect()
    }

    /// Waits until `n` messages were dumped (polls: smtp-sink offers no event).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "smtp-sink got {} of {n} messages",
                m.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
