//! A TCP forwarder that counts the bytes it passes each way, between the
//! migrator and a real server: what crossed the wire, TLS records and all
//! (for COMPRESS=DEFLATE, RFC 4978: the compressed size under the
//! encryption). It reads nothing and changes nothing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A running meter; connections are forwarded until the test ends.
pub struct TcpMeter {
    port: u16,
    to_server: Arc<AtomicU64>,
    to_client: Arc<AtomicU64>,
}

impl TcpMeter {
    /// Listens on 127.0.0.1 (a port of the system's choosing) and forwards
    /// each connection to 127.0.0.1:`backend`.
    pub fn start(backend: u16) -> TcpMeter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind meter");
        let port = listener.local_addr().unwrap().port();
        let to_server = Arc::new(AtomicU64::new(0));
        let to_client = Arc::new(AtomicU64::new(0));
        let (up, down) = (to_server.clone(), to_client.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    up.clone(),
                );
                pump(server, client, down.clone());
            }
        });
        TcpMeter {
            port,
            to_server,
            to_client,
        }
    }

    /// The port to connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bytes the clients sent to the server so far.
    pub fn to_server(&self) -> u64 {
        self.to_server.load(Ordering::SeqCst)
    }

    /// Bytes the server sent to the clients so far.
    pub fn to_client(&self) -> u64 {
        self.to_client.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` on a thread, counting; passes the end of stream on.
fn pump(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    count.fetch_add(n as u64, Ordering::SeqCst);
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
