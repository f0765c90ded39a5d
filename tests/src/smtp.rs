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

/// An SMTP client over plain TCP, or over TLS after [`Client::starttls`].
pub struct Client<S = TcpStream> {
    reader: BufReader<S>,
}

/// A client whose session went through STARTTLS, and the certificate the
/// server presented.
pub type TlsClient = Client<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

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

    /// The TCP stream, for byte-level tricks (read-ahead already buffered is dropped).
    pub fn into_stream(self) -> TcpStream {
        self.reader.into_inner()
    }

    /// EHLO, STARTTLS, the handshake (any certificate is accepted: the test
    /// looks at it instead), EHLO again. Returns the TLS client and the DER of
    /// the server's certificate.
    pub fn starttls(mut self) -> (TlsClient, Vec<u8>) {
        assert_eq!(self.ehlo().code, 250);
        assert_eq!(self.cmd("STARTTLS").code, 220);
        let config = crate::tls::accept_any_client_config();
        let name = rustls::pki_types::ServerName::try_from("relay.test").expect("name");
        let conn = rustls::ClientConnection::new(config, name).expect("client");
        let mut tls = rustls::StreamOwned::new(conn, self.into_stream());
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        let cert = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .expect("a server certificate");
        let mut client = Client {
            reader: BufReader::new(tls),
        };
        assert_eq!(client.ehlo().code, 250);
        (client, cert)
    }
}

impl<S: Read + Write> Client<S> {
    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).expect("write");
        stream.flush().expect("flush");
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

    /// EHLO, returning the reply.
    pub fn ehlo(&mut self) -> Reply {
        self.cmd("EHLO client.test")
    }
}
