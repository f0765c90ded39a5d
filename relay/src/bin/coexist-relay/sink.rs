//! `coexist-relay sink`: a demonstration next hop. It listens wherever the
//! configuration's smarthost routes point on loopback (the shipped config's
//! on-prem and cloud routes), accepts every message, keeps nothing, and prints
//! one line per message: which route it came by, from whom, to whom. For
//! seeing the relay route mail without an Exchange and a cloud tenant at hand;
//! not a mail server.

use crate::commands::load_config;
use crate::EXIT_CONFIG;
use smtp_proto::Request;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Runs until interrupted.
pub(crate) fn run(config_path: &Path) -> ExitCode {
    let Some(config) = load_config(config_path) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let mut hops: Vec<(String, SocketAddr)> = Vec::new();
    for (route, r) in &config.routes {
        for h in &r.smarthost {
            let loopback = matches!(h.host.as_str(), "localhost" | "127.0.0.1" | "::1");
            let ip = if h.host == "localhost" {
                "127.0.0.1"
            } else {
                &h.host
            };
            if let (true, Ok(ip)) = (loopback, ip.parse()) {
                hops.push((route.clone(), SocketAddr::new(ip, h.port)));
            }
        }
    }
    if hops.is_empty() {
        eprintln!(
            "{}: no route has a loopback smarthost for the sink to stand in for",
            config_path.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coexist-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(hops))
}

async fn serve(hops: Vec<(String, SocketAddr)>) -> ExitCode {
    let mut tasks = Vec::new();
    for (route, addr) in hops {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("coexist-relay sink: cannot listen on {addr} (route {route}): {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("sink for route {route} listening on {addr}");
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(route.clone(), stream));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    ExitCode::SUCCESS
}

/// One SMTP session: every command accepted, the message read and summed up.
async fn session(route: String, stream: TcpStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 sink.coexist.test ESMTP coexist demo sink\r\n")
        .await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let reply: &[u8] = match Request::parse(&mut line.iter()) {
            Ok(Request::Ehlo { .. }) => {
                b"250-sink.coexist.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            }
            Ok(Request::Helo { .. } | Request::Rset | Request::Noop { .. }) => b"250 2.0.0 OK\r\n",
            Ok(Request::Mail { from: f }) => {
                from = f.address.to_string();
                to.clear();
                b"250 2.1.0 OK\r\n"
            }
            Ok(Request::Rcpt { to: t }) => {
                to.push(t.address.to_string());
                b"250 2.1.5 OK\r\n"
            }
            Ok(Request::Data) => {
                write.write_all(b"354 go ahead\r\n").await?;
                let message = read_data(&mut lines).await?;
                println!("{}", summary(&route, &from, &to, &message));
                b"250 2.0.0 OK: kept nothing\r\n"
            }
            Ok(Request::Quit) => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.1 not here\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The DATA lines up to the lone dot, dots unstuffed (RFC 5321 §4.5.2).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R) -> std::io::Result<Vec<u8>> {
    let mut message = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 || line == b".\r\n" {
            return Ok(message);
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        message.extend_from_slice(unstuffed);
    }
}

/// `route: from=<a> to=<b>,<c> size=N subject="…"`.
fn summary(route: &str, from: &str, to: &[String], message: &[u8]) -> String {
    let subject = mail_parser::MessageParser::new()
        .parse_headers(message)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default();
    let to: Vec<String> = to.iter().map(|t| format!("<{t}>")).collect();
    format!(
        "{route}: from=<{from}> to={} size={} subject={subject:?}",
        to.join(","),
        message.len()
    )
}
