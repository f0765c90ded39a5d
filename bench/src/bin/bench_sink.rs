//! `bench-sink`: an SMTP server that accepts everything and remembers, per
//! transaction, when it arrived and which message it was, so `bench/compare` can
//! measure end-to-end latency and loss instead of inferring them.
//!
//! It advertises PIPELINING and 8BITMIME (and STARTTLS with `--tls`), writes
//! nothing to disk, and answers each batch of pipelined commands in one write.
//! It shares the machine with the relay it measures, so it is kept light: a
//! body is searched for its end in 256 KiB reads, not read line by line.
//! Records stay in memory; a line protocol on the control port reads them:
//! `COUNT PREFIX` → `TRANSACTIONS RCPTS` for Message-IDs starting with PREFIX,
//! `DUMP PREFIX` → a JSON array of those records (removed from memory).
//!
//! Usage: `bench-sink --listen NAME=IP:PORT [--listen ...] --control IP:PORT [--tls]`.
//! Prints `listening name=NAME addr=IP:PORT` per listener and `control addr=IP:PORT`.

use coexist_bench::{now_ns, tls};
use serde_json::json;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// One received transaction.
struct Record {
    listener: Arc<str>,
    message_id: String,
    sent_ns: u64,
    arrival_ns: u64,
    rcpts: u32,
    bytes: u64,
}

type Records = Arc<Mutex<Vec<Record>>>;

/// Per session: line-by-line reads of an 8 KiB buffer made the sink cost
/// two thirds of the relay's CPU per 10 MiB message, on the same two cores.
const READ_BUFFER: usize = 256 * 1024;

struct Listener {
    name: Arc<str>,
    records: Records,
    tls: Option<TlsAcceptor>,
}

/// How a session on one stream ended.
enum End {
    Closed,
    /// The client asked for STARTTLS; continue on the returned plain stream.
    StartTls,
}

async fn serve(conn: TcpStream, l: Arc<Listener>) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut r = BufReader::with_capacity(READ_BUFFER, conn);
    r.write_all(b"220 sink.bench.example ESMTP bench-sink\r\n")
        .await?;
    if let End::StartTls = session(&mut r, &l, l.tls.is_some()).await? {
        let Some(acceptor) = l.tls.clone() else {
            return Ok(());
        };
        let tls = acceptor.accept(r.into_inner()).await?;
        session(&mut BufReader::with_capacity(READ_BUFFER, tls), &l, false).await?;
    }
    Ok(())
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    l: &Listener,
    offer_tls: bool,
) -> io::Result<End> {
    let mut line = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(1024);
    let mut rcpts = 0u32;
    loop {
        // Answer a batch of pipelined commands with one write (RFC 2920 §3.2).
        if r.buffer().is_empty() && !out.is_empty() {
            r.write_all(&out).await?;
            // Over TLS, written bytes may wait in the TLS layer until flushed.
            r.flush().await?;
            out.clear();
        }
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(End::Closed);
        }
        let verb = line
            .get(..4)
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_default();
        match verb.as_slice() {
            b"EHLO" => {
                out.extend_from_slice(b"250-sink.bench.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n");
                if offer_tls {
                    out.extend_from_slice(b"250-STARTTLS\r\n");
                }
                out.extend_from_slice(b"250 SMTPUTF8\r\n");
            }
            b"HELO" => out.extend_from_slice(b"250 sink.bench.example\r\n"),
            b"MAIL" => {
                rcpts = 0;
                out.extend_from_slice(b"250 2.1.0 Ok\r\n");
            }
            b"RCPT" => {
                rcpts += 1;
                out.extend_from_slice(b"250 2.1.5 Ok\r\n");
            }
            b"DATA" => {
                r.write_all(&out).await?;
                out.clear();
                r.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                r.flush().await?;
                let record = read_data(r, &mut line, l, rcpts).await?;
                l.records
                    .lock()
                    .map_err(|_| io::Error::other("poisoned"))?
                    .push(record);
                out.extend_from_slice(b"250 2.0.0 Ok: queued\r\n");
            }
            b"RSET" | b"NOOP" => out.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            b"QUIT" => {
                out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                r.write_all(&out).await?;
                r.flush().await?;
                return Ok(End::Closed);
            }
            b"STAR" if offer_tls => {
                out.extend_from_slice(b"220 2.0.0 Ready to start TLS\r\n");
                r.write_all(&out).await?;
                r.flush().await?;
                return Ok(End::StartTls);
            }
            _ => out.extend_from_slice(b"502 5.5.2 Command not recognized\r\n"),
        }
    }
}

/// Reads the message up to the `.` line, picking Message-ID and X-Bench-Sent from
/// the header section (line by line); the body is searched for its end a
/// buffer at a time. The arrival time is taken at the end of data.
async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    line: &mut Vec<u8>,
    l: &Listener,
    rcpts: u32,
) -> io::Result<Record> {
    let mut message_id = String::new();
    let mut sent_ns = 0u64;
    let mut bytes = 0u64;
    // A message with no body ends at a dot line among its header fields.
    let mut body = false;
    loop {
        line.clear();
        if r.read_until(b'\n', line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_slice() == b".\r\n" || line.as_slice() == b".\n" {
            break;
        }
        bytes += line.len() as u64;
        let text = String::from_utf8_lossy(line);
        let t = text.trim_end();
        if t.is_empty() {
            body = true;
            break;
        } else if let Some((name, value)) = t.split_once(':') {
            if name.eq_ignore_ascii_case("message-id") {
                message_id = value.trim().trim_matches(['<', '>']).to_string();
            } else if name.eq_ignore_ascii_case("x-bench-sent") {
                sent_ns = value.trim().parse().unwrap_or(0);
            }
        }
    }
    if body {
        bytes += body_to_end(r).await?;
    }
    Ok(Record {
        listener: Arc::clone(&l.name),
        message_id,
        sent_ns,
        arrival_ns: now_ns(),
        rcpts,
        bytes,
    })
}

/// Consumes the body after the header section's empty line, through the
/// `<CRLF>.<CRLF>` that ends it; returns its length (the final CRLF counted,
/// the dot line not). The marker may straddle two reads: the last bytes of
/// one are kept and searched with the start of the next.
async fn body_to_end<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> io::Result<u64> {
    const END: &[u8] = b"\r\n.\r\n";
    // The empty line just read ended with CRLF: a body may be the dot alone.
    let mut carry = b"\r\n".to_vec();
    let mut consumed = 0u64;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut joined = carry.clone();
        joined.extend_from_slice(&buf[..buf.len().min(END.len() - 1)]);
        let found = match memchr::memmem::find(&joined, END) {
            Some(at) => Some(at + END.len() - carry.len()),
            None => memchr::memmem::find(buf, END).map(|at| at + END.len()),
        };
        if let Some(end) = found {
            r.consume(end);
            // The dot line is not the message's.
            return Ok((consumed + end as u64).saturating_sub(3));
        }
        let n = buf.len();
        joined.truncate(carry.len());
        joined.extend_from_slice(&buf[n.saturating_sub(END.len() - 1)..]);
        carry = joined[joined.len().saturating_sub(END.len() - 1)..].to_vec();
        consumed += n as u64;
        r.consume(n);
    }
}

async fn control(conn: TcpStream, records: Records) -> io::Result<()> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let prefix = words.next().unwrap_or("");
    let reply = {
        let mut recs = records.lock().map_err(|_| io::Error::other("poisoned"))?;
        match cmd {
            "COUNT" => {
                let (n, rc) = recs
                    .iter()
                    .filter(|x| x.message_id.starts_with(prefix))
                    .fold((0u64, 0u64), |(n, rc), x| (n + 1, rc + u64::from(x.rcpts)));
                format!("{n} {rc}\n")
            }
            "DUMP" => {
                let (mine, rest): (Vec<Record>, Vec<Record>) = recs
                    .drain(..)
                    .partition(|x| x.message_id.starts_with(prefix));
                *recs = rest;
                let list: Vec<_> = mine
                    .iter()
                    .map(|x| {
                        json!({"listener": &*x.listener, "message_id": x.message_id,
                               "sent_ns": x.sent_ns, "arrival_ns": x.arrival_ns,
                               "rcpts": x.rcpts, "bytes": x.bytes})
                    })
                    .collect();
                format!("{}\n", serde_json::Value::Array(list))
            }
            _ => "ERR unknown command\n".to_string(),
        }
    };
    r.write_all(reply.as_bytes()).await?;
    r.shutdown().await
}

async fn run(
    listen: Vec<(String, String)>,
    control_addr: String,
    offer_tls: bool,
) -> io::Result<()> {
    let records: Records = Arc::new(Mutex::new(Vec::new()));
    let acceptor = if offer_tls {
        let config = tls::self_signed_server("sink.bench.example").map_err(io::Error::other)?;
        Some(TlsAcceptor::from(config))
    } else {
        None
    };
    let mut out = io::stdout().lock();
    for (name, addr) in listen {
        let sock = TcpListener::bind(&addr).await?;
        writeln!(out, "listening name={name} addr={}", sock.local_addr()?)?;
        let l = Arc::new(Listener {
            name: name.into(),
            records: Arc::clone(&records),
            tls: acceptor.clone(),
        });
        tokio::spawn(async move {
            loop {
                match sock.accept().await {
                    Ok((conn, _)) => {
                        let l = Arc::clone(&l);
                        tokio::spawn(async move {
                            let _ = serve(conn, l).await;
                        });
                    }
                    Err(e) => eprintln!("bench-sink: accept: {e}"),
                }
            }
        });
    }
    let ctl = TcpListener::bind(&control_addr).await?;
    writeln!(out, "control addr={}", ctl.local_addr()?)?;
    out.flush()?;
    drop(out);
    loop {
        let (conn, _) = ctl.accept().await?;
        let records = Arc::clone(&records);
        tokio::spawn(async move {
            let _ = control(conn, records).await;
        });
    }
}

fn main() -> ExitCode {
    let mut listen = Vec::new();
    let mut control_addr = "127.0.0.1:0".to_string();
    let mut offer_tls = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--tls", v) => {
                offer_tls = true;
                if let Some(v) = v {
                    eprintln!("bench-sink: --tls takes no value ({v})");
                    return ExitCode::from(2);
                }
            }
            ("--listen", Some(v)) => match v.split_once('=') {
                Some((n, a)) => listen.push((n.to_string(), a.to_string())),
                None => {
                    eprintln!("bench-sink: --listen NAME=IP:PORT");
                    return ExitCode::from(2);
                }
            },
            ("--control", Some(v)) => control_addr = v,
            _ => {
                eprintln!("usage: bench-sink --listen NAME=IP:PORT... [--control IP:PORT] [--tls]");
                return ExitCode::from(2);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-sink: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(listen, control_addr, offer_tls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-sink: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end marker is found wherever the reads cut it, and nothing after
    /// it is consumed.
    #[tokio::test]
    async fn a_body_ends_at_its_dot_line_across_any_read_boundary() {
        let bodies: [&[u8]; 4] = [b"", b"a\r\n", b"..x\r\n.\r\r\nb\r\n", b"line\r\n\r\n"];
        for body in bodies {
            let mut input = body.to_vec();
            input.extend_from_slice(b".\r\nQUIT\r\n");
            for capacity in 1..=16 {
                let mut r = BufReader::with_capacity(capacity, input.as_slice());
                let len = body_to_end(&mut r).await.unwrap();
                assert_eq!(len, body.len() as u64, "{body:?} in reads of {capacity}");
                let mut rest = Vec::new();
                r.read_until(b'\n', &mut rest).await.unwrap();
                assert_eq!(rest, b"QUIT\r\n", "{body:?} in reads of {capacity}");
            }
        }
    }
}
