//! A plaintext LDAP pass-through that can stop at a chosen operation: the
//! first client request with a given protocolOp tag (e.g. ModifyRequest,
//! RFC 4511 §4.6, `[APPLICATION 6]` = 0x66) is kept back, so a test can kill
//! the client at that exact point (after its earlier writes, before this one).
//! It splits the client's stream into whole LDAPMessages by their BER length.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ModifyRequest.
pub const MODIFY: u8 = 0x66;
/// AddRequest.
pub const ADD: u8 = 0x68;

/// A running proxy.
pub struct LdapProxy {
    /// Where it listens (127.0.0.1).
    pub port: u16,
    held: Arc<AtomicBool>,
}

impl LdapProxy {
    /// Forwards to `backend`; holds the first request whose op tag is `hold`.
    pub fn start(backend: u16, hold: u8) -> LdapProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&held);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
                    continue;
                };
                let flag = Arc::clone(&flag);
                let (mut s_read, mut c_write) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                });
                std::thread::spawn(move || forward_requests(client, server, hold, &flag));
            }
        });
        LdapProxy { port, held }
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Waits until the request is being held.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.held.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// Copies whole messages client → server until the held one, which is never sent.
fn forward_requests(mut client: TcpStream, mut server: TcpStream, hold: u8, held: &AtomicBool) {
    loop {
        let Some(message) = read_message(&mut client) else {
            return;
        };
        if op_tag(&message) == Some(hold) && !held.swap(true, Ordering::AcqRel) {
            // Kept back for good: the client is killed while it waits.
            let _ = client.read(&mut [0u8; 1]);
            return;
        }
        if server.write_all(&message).is_err() {
            return;
        }
    }
}

/// One BER TLV from the stream (SEQUENCE header, definite length).
fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    let mut message = head.to_vec();
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        let mut bytes = vec![0u8; n];
        stream.read_exact(&mut bytes).ok()?;
        message.extend_from_slice(&bytes);
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    message.extend_from_slice(&body);
    Some(message)
}

/// The protocolOp tag: after the SEQUENCE header and the messageID INTEGER.
fn op_tag(message: &[u8]) -> Option<u8> {
    let mut i = 1;
    let first = *message.get(i)?;
    i += 1 + if first & 0x80 != 0 {
        usize::from(first & 0x7f)
    } else {
        0
    };
    if *message.get(i)? != 0x02 {
        return None;
    }
    let id_len = usize::from(*message.get(i + 1)?);
    message.get(i + 2 + id_len).copied()
}
