//! Things that break on purpose: a next hop whose failure mode the test switches at
//! run time ([`FaultSink`]), and a small filesystem to fill up ([`Tmpfs`]).

use crate::sink::{Script, ScriptSink};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How the [`FaultSink`] treats the next connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Plain SMTP, passed through to the healthy backend.
    Healthy = 0,
    /// `421` as the greeting, then close (RFC 5321 §3.1).
    Greet421 = 1,
    /// Greets, then never answers anything (the client must time out).
    Stall = 2,
    /// Offers STARTTLS, says `220` to it, then sends bytes that are not TLS.
    TlsGarbage = 3,
    /// Offers STARTTLS and does a real handshake, then passes through to the backend.
    StartTls = 4,
}

impl Fault {
    fn from_u8(v: u8) -> Fault {
        match v {
            1 => Fault::Greet421,
            2 => Fault::Stall,
            3 => Fault::TlsGarbage,
            4 => Fault::StartTls,
            _ => Fault::Healthy,
        }
    }
}

/// A next hop in front of a healthy [`ScriptSink`] (the `backend`, which records
/// what was delivered), failing in the way the test sets.
pub struct FaultSink {
    /// Where the relay connects.
    pub addr: SocketAddr,
    /// Where mail that got through is recorded.
    pub backend: ScriptSink,
    mode: Arc<AtomicU8>,
    connections: Arc<AtomicUsize>,
}

impl FaultSink {
    /// Starts on a free port in mode `fault`.
    pub fn start(fault: Fault) -> FaultSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault sink");
        let addr = listener.local_addr().unwrap();
        let backend = ScriptSink::start(Script::default());
        let mode = Arc::new(AtomicU8::new(fault as u8));
        let connections = Arc::new(AtomicUsize::new(0));
        let tls = Arc::new(tls_config());
        let (m, c, to) = (Arc::clone(&mode), Arc::clone(&connections), backend.addr);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let fault = Fault::from_u8(m.load(Ordering::SeqCst));
                let tls = Arc::clone(&tls);
                std::thread::spawn(move || {
                    let _ = serve(stream, fault, to, &tls);
                });
            }
        });
        FaultSink {
            addr,
            backend,
            mode,
            connections,
        }
    }

    /// Changes how new connections are treated.
    pub fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
    }

    /// `host:port` for a smarthost list.
    pub fn hostport(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far, in any mode.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(
    stream: TcpStream,
    fault: Fault,
    backend: SocketAddr,
    tls: &Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = stream.try_clone()?;
    match fault {
        Fault::Healthy => pipe(stream, TcpStream::connect(backend)?),
        Fault::Greet421 => {
            w.write_all(b"421 4.3.2 fault.test service not available\r\n")?;
            stream.shutdown(Shutdown::Both)
        }
        Fault::Stall => {
            w.write_all(b"220 fault.test ESMTP\r\n")?;
            // Read and never answer, until the client gives up.
            let mut r = stream;
            let mut buf = [0u8; 1024];
            while r.read(&mut buf)? > 0 {}
            Ok(())
        }
        Fault::TlsGarbage | Fault::StartTls => {
            let mut r = BufReader::new(stream);
            w.write_all(b"220 fault.test ESMTP\r\n")?;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let cmd = line.trim_end().to_ascii_uppercase();
                if cmd.starts_with("EHLO") {
                    w.write_all(b"250-fault.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")?;
                } else if cmd == "STARTTLS" {
                    w.write_all(b"220 2.0.0 ready to start TLS\r\n")?;
                    break;
                } else if cmd == "QUIT" {
                    return w.write_all(b"221 2.0.0 bye\r\n");
                } else {
                    w.write_all(b"530 5.7.0 must issue STARTTLS first\r\n")?;
                }
            }
            if fault == Fault::TlsGarbage {
                w.write_all(b"\x15\x03\x01\x00\x02garbage, not a TLS record\r\n")?;
                return w.shutdown(Shutdown::Both);
            }
            let tcp = r.into_inner();
            tls_pipe(tcp, TcpStream::connect(backend)?, tls)
        }
    }
}

/// Copies both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) -> io::Result<()> {
    let (mut a_r, mut b_w) = (a.try_clone()?, b.try_clone()?);
    let forward = std::thread::spawn(move || {
        let _ = io::copy(&mut a_r, &mut b_w);
        let _ = b_w.shutdown(Shutdown::Write);
    });
    let (mut b_r, mut a_w) = (b, a);
    let _ = io::copy(&mut b_r, &mut a_w);
    let _ = a_w.shutdown(Shutdown::Both);
    let _ = forward.join();
    Ok(())
}

/// Server side of the TLS handshake, then the plaintext to and from the backend.
/// The backend's own greeting is dropped: the client expects none after STARTTLS
/// (RFC 3207 §4.2), it sends EHLO again.
fn tls_pipe(
    tcp: TcpStream,
    backend: TcpStream,
    config: &Arc<rustls::ServerConfig>,
) -> io::Result<()> {
    let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let mut back = BufReader::new(backend);
    let mut greeting = String::new();
    back.read_line(&mut greeting)?;
    let mut back = back.into_inner();
    // rustls' stream cannot be split between threads: poll both sides in turn.
    let tick = Some(Duration::from_millis(10));
    tls.sock.set_read_timeout(tick)?;
    back.set_read_timeout(tick)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => back.write_all(&buf[..n])?,
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
        match back.read(&mut buf) {
            Ok(0) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return Ok(());
            }
            Ok(n) => {
                tls.write_all(&buf[..n])?;
                tls.flush()?;
            }
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A self-signed certificate for `fault.test` (the relay's `required` policy
/// encrypts without checking it).
fn tls_config() -> rustls::ServerConfig {
    let certified = rcgen::generate_simple_self_signed(vec!["fault.test".to_string()])
        .expect("generate certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.key_pair.serialize_der(),
    ));
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server certificate")
}

/// A tmpfs of a given size mounted on a temporary folder (needs root); unmounted
/// when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "2m").
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs (this test needs root)");
        Tmpfs { dir }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full; returns its path (remove it
    /// to give the space back).
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        let block = vec![0x5au8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Byte by byte for the last partial page.
        while let Ok(1) = f.write(&[0x5a]) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still has a file open there does not block it.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
