//! An IMAP proxy that misbehaves on purpose, between the migrator and a real
//! Dovecot: TLS on both sides (the test CA's certificate towards the migrator,
//! the CA as trust anchor towards Dovecot), everything passed through except
//! what the test asks for —
//! - [`Fault::Throttle`]: the first N APPENDs are answered `NO [THROTTLED]`
//!   without reaching Dovecot (their literals are read and dropped);
//! - [`Fault::Bye`]: the Nth APPEND is answered `* BYE [UNAVAILABLE]`, the
//!   connection to Dovecot is closed at once (the APPENDs before it may or may
//!   not be stored) and the client's once it has hung up;
//! - a [`Hold`]: the first client line containing a given needle, or every
//!   server answer once N APPENDs have been answered, is kept back until the
//!   test calls [`ImapProxy::release`], so the test can look at the migrator
//!   (or kill it) while it is blocked at a known point.
//!
//! Commands and responses are split into whole units (a line, plus each literal
//! `{n}` / `{n+}` / `~{n}` and the line after it), so an injected answer never
//! lands inside a server response.

use crate::dovecot::TestCa;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What the proxy breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a plain pass-through.
    None,
    /// The first N APPENDs get `NO [THROTTLED]`.
    Throttle(usize),
    /// The Nth APPEND (1-based) gets `* BYE [UNAVAILABLE]`, then the connection closes.
    Bye(usize),
}

/// Where the proxy stops until [`ImapProxy::release`] (once; then it passes
/// everything through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The first client line containing these bytes is kept back.
    Line(Vec<u8>),
    /// Once this many APPENDs have been answered by the server, every later
    /// server answer is kept back: the APPENDs the client pipelined meanwhile
    /// are stored on the server, and the client is never told.
    AnswersAfterAppends(usize),
}

#[derive(Default)]
struct HoldState {
    /// What to hold; `None` once it has been hit.
    what: Option<Hold>,
    held: bool,
}

impl HoldState {
    /// Marks the hold as hit, if `hit`, and says whether to hold here.
    fn hit(&mut self, hit: bool, changed: &Condvar) -> bool {
        if hit {
            self.what = None;
            self.held = true;
            changed.notify_all();
        }
        hit
    }
}

struct Shared {
    fault: Fault,
    appends: AtomicUsize,
    throttled: AtomicUsize,
    byes: AtomicUsize,
    /// Tags of the APPENDs passed on to the server, to recognise their answers.
    append_tags: Mutex<HashSet<Vec<u8>>>,
    /// APPEND answers passed back from the server.
    appends_answered: AtomicUsize,
    hold: Mutex<HoldState>,
    held_changed: Condvar,
    release: watch::Sender<bool>,
}

/// A running proxy; stops when dropped.
pub struct ImapProxy {
    /// Port on 127.0.0.1 (implicit TLS: `imaps://127.0.0.1:PORT`).
    pub port: u16,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl ImapProxy {
    /// Starts a proxy in front of the implicit-TLS port `backend` of a Dovecot
    /// that uses `ca`'s certificate, holding at `hold` until [`ImapProxy::release`].
    pub fn start(ca: &TestCa, backend: u16, fault: Fault, hold: Option<Hold>) -> ImapProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let (release, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            fault,
            appends: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
            byes: AtomicUsize::new(0),
            append_tags: Mutex::new(HashSet::new()),
            appends_answered: AtomicUsize::new(0),
            hold: Mutex::new(HoldState {
                what: hold,
                held: false,
            }),
            held_changed: Condvar::new(),
            release,
        });
        let (acceptor, connector) = tls(ca);
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let s = Arc::clone(&shared);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (s, acceptor, connector) =
                    (Arc::clone(&s), acceptor.clone(), connector.clone());
                tokio::spawn(async move {
                    let _ = session(tcp, backend, acceptor, connector, s).await;
                });
            }
        });
        ImapProxy {
            port,
            shared,
            _runtime: runtime,
        }
    }

    /// `imaps://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("imaps://127.0.0.1:{}", self.port)
    }

    /// APPENDs seen from clients so far.
    pub fn appends(&self) -> usize {
        self.shared.appends.load(Ordering::SeqCst)
    }

    /// APPENDs answered `NO [THROTTLED]` so far.
    pub fn throttled(&self) -> usize {
        self.shared.throttled.load(Ordering::SeqCst)
    }

    /// `BYE`s sent so far.
    pub fn byes(&self) -> usize {
        self.shared.byes.load(Ordering::SeqCst)
    }

    /// Waits until the hold was hit and the proxy is holding.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut hold = self.shared.hold.lock().unwrap();
        while !hold.held {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            hold = self.shared.held_changed.wait_timeout(hold, left).unwrap().0;
        }
        true
    }

    /// Lets what was held (and everything after it) through.
    pub fn release(&self) {
        self.shared.release.send_replace(true);
    }
}

pub(crate) fn tls(ca: &TestCa) -> (tokio_rustls::TlsAcceptor, tokio_rustls::TlsConnector) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(ca.key_pem.as_bytes()).expect("key PEM");
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        tokio_rustls::TlsConnector::from(Arc::new(client)),
    )
}

/// The literal a line announces at its end: `{n}`, `{n+}`, `~{n}`; returns
/// (n, synchronising).
fn literal(line: &[u8]) -> Option<(usize, bool)> {
    let body = line.strip_suffix(b"\r\n").unwrap_or(line);
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let inside = &body[open + 1..];
    let (digits, sync) = match inside.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inside, true),
    };
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, sync))
}

/// Reads one line (with its CRLF); `None` at the end of the stream.
async fn line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    if r.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    Ok(Some(buf))
}

/// One whole response: a line and, for every literal it announces, the literal
/// and the line that follows.
async fn unit<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let Some(mut out) = line(r).await? else {
        return Ok(None);
    };
    let mut last = out.clone();
    while let Some((n, _)) = literal(&last) {
        let start = out.len();
        out.resize(start + n, 0);
        r.read_exact(&mut out[start..]).await?;
        let Some(next) = line(r).await? else {
            return Ok(Some(out));
        };
        out.extend_from_slice(&next);
        last = next;
    }
    Ok(Some(out))
}

enum Decision {
    Forward,
    Throttle,
    Bye,
}

async fn session(
    tcp: TcpStream,
    backend: u16,
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    let client = acceptor.accept(tcp).await?;
    let upstream = TcpStream::connect(("127.0.0.1", backend)).await?;
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let server = connector.connect(name, upstream).await?;
    let (client_r, mut client_w) = tokio::io::split(client);
    let (server_r, mut server_w) = tokio::io::split(server);

    // One writer towards the client: whole server responses and injected answers.
    // An empty chunk means: close (after the BYE).
    let (to_client, mut outbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(chunk) = outbox.recv().await {
            if chunk.is_empty() {
                let _ = client_w.shutdown().await;
                return;
            }
            if client_w.write_all(&chunk).await.is_err() || client_w.flush().await.is_err() {
                return;
            }
        }
    });
    let from_server = {
        let to_client = to_client.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut r = BufReader::new(server_r);
            let mut release = shared.release.subscribe();
            while let Ok(Some(u)) = unit(&mut r).await {
                let hold_after = answers_an_append(&shared, &u) && {
                    let answered = shared.appends_answered.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut hold = shared.hold.lock().unwrap();
                    let hit = hold.what == Some(Hold::AnswersAfterAppends(answered));
                    hold.hit(hit, &shared.held_changed)
                };
                if to_client.send(u).is_err() {
                    return;
                }
                if hold_after {
                    let _ = release.wait_for(|released| *released).await;
                }
            }
        })
    };

    let mut r = BufReader::with_capacity(64 * 1024, client_r);
    let mut release = shared.release.subscribe();
    while let Some(first) = line(&mut r).await? {
        let hold_here = {
            let mut hold = shared.hold.lock().unwrap();
            let hit = matches!(&hold.what, Some(Hold::Line(needle))
                if first.windows(needle.len()).any(|w| w == needle.as_slice()));
            hold.hit(hit, &shared.held_changed)
        };
        if hold_here {
            let _ = release.wait_for(|released| *released).await;
        }
        let mut words = first.split(|&b| b == b' ');
        let tag = words.next().unwrap_or_default().to_vec();
        let is_append = words
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"APPEND"));
        let decision = if is_append {
            let n = shared.appends.fetch_add(1, Ordering::SeqCst) + 1;
            match shared.fault {
                Fault::Throttle(k) if n <= k => Decision::Throttle,
                Fault::Bye(k) if n == k => Decision::Bye,
                _ => Decision::Forward,
            }
        } else {
            Decision::Forward
        };
        let forward = matches!(decision, Decision::Forward);
        if forward && is_append {
            shared.append_tags.lock().unwrap().insert(tag.clone());
        }
        let mut current = first;
        loop {
            if forward {
                server_w.write_all(&current).await?;
            }
            let Some((n, sync)) = literal(&current) else {
                break;
            };
            if sync && !forward {
                // The server never saw the command: the continuation is ours to send.
                let _ = to_client.send(b"+ go ahead\r\n".to_vec());
            }
            let mut data = vec![0u8; n];
            r.read_exact(&mut data).await?;
            if forward {
                server_w.write_all(&data).await?;
            }
            current = match line(&mut r).await? {
                Some(l) => l,
                None => break,
            };
        }
        if forward {
            server_w.flush().await?;
        }
        let tag = String::from_utf8_lossy(&tag).into_owned();
        match decision {
            Decision::Forward => {}
            Decision::Throttle => {
                shared.throttled.fetch_add(1, Ordering::SeqCst);
                let _ = to_client.send(
                    format!("{tag} NO [THROTTLED] Request is throttled; try again later\r\n")
                        .into_bytes(),
                );
            }
            Decision::Bye => {
                shared.byes.fetch_add(1, Ordering::SeqCst);
                from_server.abort();
                let _ = server_w.shutdown().await;
                let _ = to_client.send(
                    b"* BYE [UNAVAILABLE] Too many requests; closing the connection\r\n".to_vec(),
                );
                // The client hangs up after the BYE; we close only then. Closing at
                // once would lose the BYE: imap-next 0.3 drops plaintext that
                // arrives in the same read as the TLS close_notify and reports
                // "connection closed". Reading on also keeps what the client had
                // pipelined from turning into a reset that could overtake the BYE.
                let mut sink = [0u8; 64 * 1024];
                while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
                let _ = to_client.send(Vec::new());
                let _ = writer.await;
                return Ok(());
            }
        }
    }
    let _ = server_w.shutdown().await;
    let _ = from_server.await;
    drop(to_client);
    let _ = writer.await;
    Ok(())
}

/// Whether a server unit is the tagged answer to an APPEND passed on.
fn answers_an_append(shared: &Shared, unit: &[u8]) -> bool {
    let tag = unit.split(|&b| b == b' ').next().unwrap_or_default();
    tag != b"*" && tag != b"+" && shared.append_tags.lock().unwrap().remove(tag)
}

/// Standard base64 with padding (for a SASL PLAIN line to hold on).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_recognised() {
        assert_eq!(literal(b"A1 APPEND INBOX {310}\r\n"), Some((310, true)));
        assert_eq!(
            literal(b"A1 APPEND INBOX (\\Seen) {12+}\r\n"),
            Some((12, false))
        );
        assert_eq!(literal(b"* 1 FETCH (BODY[] ~{5}\r\n"), Some((5, true)));
        assert_eq!(literal(b"A1 OK done\r\n"), None);
        assert_eq!(base64(b"a\0b\0c"), "YQBiAGM=");
    }
}
