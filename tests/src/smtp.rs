//! A raw SMTP client for scripted conversations: send exact bytes, read exact replies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// One reply: code and the full text of all lines.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Three-digit code.
    pub code: u16,
    /// All lines joined by `\n`, without CRLF.
    pub text: String,
}

impl Reply {
    /// True when the first line carries this enhanced code (e.g. "5.7.1").
    pub fn has(&self, code: u16, enhanced: &str) -> bool {
        self.code == code && self.text.starts_with(&format!("{code} {enhanced}"))
    }
}

/// A plain TCP SMTP client.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects and returns the client with the greeting.
    pub fn connect(addr: SocketAddr) -> (Client, Reply) {
        let stream = TcpStream::connect(addr).expect("connect");
        Self::wrap(stream)
    }

    /// Connects from a chosen loopback source address (e.g. 127.0.0.2).
    pub fn connect_from(source: IpAddr, addr: SocketAddr) -> (Client, Reply) {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .expect("bind source");
        socket.connect(&addr.into()).expect("connect");
        Self::wrap(socket.into())
    }

    fn wrap(stream: TcpStream) -> (Client, Reply) {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = Client {
            reader: BufReader::new(stream),
        };
        let greeting = c.read_reply();
        (c, greeting)
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Sends a command line (CRLF added) and reads one reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// Reads one (possibly multi-line) reply; panics on EOF.
    pub fn read_reply(&mut self) -> Reply {
        self.try_read_reply().expect("reply before EOF")
    }

    /// Reads one reply, or `None` at EOF.
    pub fn try_read_reply(&mut self) -> Option<Reply> {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).ok()?;
            if n == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let done = line.as_bytes().get(3) != Some(&b'-');
            text.push(line);
            if done {
                break;
            }
        }
        let code = text[0][..3].parse().expect("reply code");
        Some(Reply {
            code,
            text: text.join("\n"),
        })
    }

    /// True when the server closed the connection (EOF on read).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }

    /// The TCP stream, for byte-level tricks (read-ahead already buffered is dropped).
    pub fn into_stream(self) -> TcpStream {
        self.reader.into_inner()
    }

    /// EHLO, returning the reply.
    pub fn ehlo(&mut self) -> Reply {
        self.cmd("EHLO client.test")
    }
}
