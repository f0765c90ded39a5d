//! An HTTP/1.1 proxy between the migrator and a real DAV server (Radicale),
//! TLS on both sides (the test CA's certificate towards the migrator, the CA
//! as trust anchor towards the server), for the faults a DAV copy must
//! survive:
//! - [`HttpFault::Rewrite`]: each response body goes through a function
//!   (a source that serves data the migrator cannot parse);
//! - [`HttpFault::DropAfter`]: once the client has sent that many bytes of
//!   requests, the request that crosses the mark reaches the server but its
//!   answer does not come back: the client's connection is closed instead
//!   (once; everything after passes through).
//!
//! Messages are framed by `Content-Length` (and chunked responses are read
//! whole), one exchange at a time per connection, as HTTP/1.1 keep-alive
//! clients use it.

use crate::dovecot::TestCa;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A response body rewriter: `Some(new body)` to change it.
pub type Rewrite = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// What the proxy breaks.
#[derive(Clone)]
pub enum HttpFault {
    /// Response bodies rewritten.
    Rewrite(Rewrite),
    /// The answer to the request that crosses this many request bytes is
    /// dropped with the connection.
    DropAfter(usize),
}

struct Shared {
    fault: HttpFault,
    sent: AtomicUsize,
    dropped: AtomicBool,
    rewritten: AtomicUsize,
}

/// A running proxy.
pub struct HttpProxy {
    /// Where it listens (127.0.0.1, HTTPS).
    pub port: u16,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl HttpProxy {
    /// Proxies `https://127.0.0.1:PORT` to the HTTPS server on `upstream`.
    pub fn start(upstream: u16, ca: &TestCa, fault: HttpFault) -> HttpProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let (acceptor, connector) = crate::imap_proxy::tls(ca);
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            fault,
            sent: AtomicUsize::new(0),
            dropped: AtomicBool::new(false),
            rewritten: AtomicUsize::new(0),
        });
        let s = Arc::clone(&shared);
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, connector, s) = (acceptor.clone(), connector.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                    let Ok(server) = connector.connect(name, server).await else {
                        return;
                    };
                    let _ = serve(client, server, &s).await;
                });
            }
        });
        HttpProxy {
            port,
            shared,
            _runtime: runtime,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Whether the drop has happened.
    pub fn dropped(&self) -> bool {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// How many response bodies were rewritten.
    pub fn rewritten(&self) -> usize {
        self.shared.rewritten.load(Ordering::SeqCst)
    }
}

/// One connection's exchanges, in order.
async fn serve<C, S>(client: C, server: S, s: &Shared) -> std::io::Result<()>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (cr, mut cw) = tokio::io::split(client);
    let (sr, mut sw) = tokio::io::split(server);
    let (mut cr, mut sr) = (BufReader::new(cr), BufReader::new(sr));
    loop {
        let Some((head, body)) = message(&mut cr, false).await? else {
            return Ok(());
        };
        sw.write_all(&head).await?;
        sw.write_all(&body).await?;
        sw.flush().await?;
        let total =
            s.sent.fetch_add(head.len() + body.len(), Ordering::SeqCst) + head.len() + body.len();
        let Some((head, mut body)) = message(&mut sr, true).await? else {
            return Ok(());
        };
        let drop_here = matches!(s.fault, HttpFault::DropAfter(n) if total >= n)
            && !s.dropped.swap(true, Ordering::SeqCst);
        if drop_here {
            // The server has done it; the client never hears.
            let _ = cw.shutdown().await;
            return Ok(());
        }
        let mut head = head;
        if let HttpFault::Rewrite(f) = &s.fault {
            if let Some(new) = f(&body) {
                s.rewritten.fetch_add(1, Ordering::SeqCst);
                body = new;
            }
        }
        head = with_length(&head, body.len());
        cw.write_all(&head).await?;
        cw.write_all(&body).await?;
        cw.flush().await?;
    }
}

/// One message: its head (up to the blank line) and its body (by
/// `Content-Length`; a chunked response read whole). `None` at a clean end.
async fn message<R: AsyncBufRead + Unpin>(
    r: &mut R,
    response: bool,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        if r.read_until(b'\n', &mut head).await? == 0 {
            return Ok(None);
        }
        if &head[before..] == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let header = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let no_body = response
        && text
            .split_whitespace()
            .nth(1)
            .is_some_and(|c| c == "204" || c == "304" || c.starts_with('1'));
    let mut body = Vec::new();
    if no_body {
    } else if let Some(n) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).await?;
    } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await?;
            let size = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(Some((head, body)))
}

/// `head` with `Content-Length: len` (and no chunked encoding).
fn with_length(head: &[u8], len: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    let mut lines = text.split("\r\n");
    if let Some(status) = lines.next() {
        out.push_str(status);
        out.push_str("\r\n");
    }
    for l in lines.filter(|l| !l.is_empty()) {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("content-length:") || lower.starts_with("transfer-encoding:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    out.into_bytes()
}
