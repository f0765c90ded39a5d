//! `smtp-load`: the SMTP load generator used against every target (raw sink,
//! Postfix, coexist-relay), so differences are the targets', not the clients'.
//!
//! C sessions share N messages. Each session connects once, optionally upgrades
//! with STARTTLS, then sends transactions back to back on the same connection
//! (MAIL directly after the previous 250, as smtp-source does), with MAIL, RCPT and
//! DATA pipelined (RFC 2920). Every message carries a unique Message-ID and an
//! `X-Bench-Sent` header (ns since the epoch) so a sink can compute end-to-end
//! latency. The accept latency is measured from the last byte of the data to the
//! final reply. Prints one JSON object on stdout.
//!
//! `--idle N` instead opens N connections, says EHLO on each, prints
//! `idle ready OPEN FAILED` and holds them until stdin closes.
//!
//! Usage: `smtp-load --target IP:PORT [--messages N] [--concurrency C] [--size 4KiB]
//! [--size-mix 4KiB:90,100KiB:9,10MiB:1] [--rcpts R] [--migrated 0.5] [--users 10000] [--starttls] [--tag TAG]`

use coexist_bench::wire::{read_reply, Reply};
use coexist_bench::workload::Workload;
use coexist_bench::{now_ns, parse_size, tls};
use rustls::pki_types::ServerName;
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Args {
    target: SocketAddr,
    messages: u64,
    concurrency: usize,
    starttls: bool,
    idle: usize,
    workload: Workload,
}

fn parse_args() -> Result<Args, String> {
    let mut target = None;
    let mut a = Args {
        target: "127.0.0.1:25".parse().map_err(|_| "addr")?,
        messages: 1000,
        concurrency: 10,
        starttls: false,
        idle: 0,
        workload: Workload {
            users: 10_000,
            migrated_share: 0.5,
            rcpts: 1,
            size: 4096,
            mix: Vec::new(),
            tag: format!("b{}", now_ns() / 1000),
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--starttls" {
            a.starttls = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--target" => {
                target = Some(value.parse().map_err(|_| format!("bad --target {value}"))?)
            }
            "--messages" => a.messages = value.parse().map_err(bad)?,
            "--concurrency" => a.concurrency = value.parse().map_err(bad)?,
            "--idle" => a.idle = value.parse().map_err(bad)?,
            "--size" => {
                a.workload.size = parse_size(&value).ok_or(format!("bad --size {value}"))?
            }
            "--size-mix" => a.workload.mix = parse_mix(&value)?,
            "--rcpts" => a.workload.rcpts = value.parse().map_err(bad)?,
            "--migrated" => {
                a.workload.migrated_share = value
                    .parse()
                    .map_err(|_| format!("bad --migrated {value}"))?
            }
            "--users" => a.workload.users = value.parse().map_err(bad)?,
            "--tag" => a.workload.tag = value,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    a.target = target.ok_or("--target is required")?;
    if a.concurrency == 0 || a.workload.rcpts == 0 {
        return Err("--concurrency and --rcpts must be at least 1".into());
    }
    Ok(a)
}

/// `4KiB:90,100KiB:9,10MiB:1`: sizes with their weights.
fn parse_mix(text: &str) -> Result<Vec<(usize, u64)>, String> {
    text.split(',')
        .map(|part| {
            let (size, weight) = part
                .split_once(':')
                .ok_or(format!("--size-mix: '{part}' is not SIZE:WEIGHT"))?;
            let size = parse_size(size).ok_or(format!("--size-mix: bad size '{size}'"))?;
            let weight = weight
                .parse()
                .map_err(|_| format!("--size-mix: bad weight '{weight}'"))?;
            Ok((size, weight))
        })
        .collect()
}

/// What one session measured.
#[derive(Default)]
struct SessionStats {
    accepted: u64,
    rejected: u64,
    /// Accept latencies in seconds.
    latencies: Vec<f64>,
    error: Option<String>,
}

struct Shared {
    args: Args,
    /// One prepared body per size the workload sends.
    bodies: Vec<(usize, Arc<[u8]>)>,
    next: AtomicU64,
    tls: TlsConnector,
}

fn protocol(reply: &Reply, want: u16, what: &str) -> io::Result<()> {
    if reply.code == want {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: {} {}",
            reply.code, reply.text
        )))
    }
}

async fn session(shared: Arc<Shared>, stats: &mut SessionStats) -> io::Result<()> {
    let tcp = TcpStream::connect(shared.args.target).await?;
    tcp.set_nodelay(true)?;
    let mut r = BufReader::new(tcp);
    protocol(&read_reply(&mut r).await?, 220, "greeting")?;
    if shared.args.starttls {
        r.write_all(b"EHLO load.bench.example\r\n").await?;
        let ehlo = read_reply(&mut r).await?;
        protocol(&ehlo, 250, "EHLO")?;
        r.write_all(b"STARTTLS\r\n").await?;
        protocol(&read_reply(&mut r).await?, 220, "STARTTLS")?;
        let name = ServerName::try_from("relay.bench.example").map_err(io::Error::other)?;
        // RFC 3207 §4.2: nothing the server sent before the handshake may be used.
        let stream = shared.tls.connect(name, r.into_inner()).await?;
        transactions(&shared, BufReader::new(stream), stats).await
    } else {
        transactions(&shared, r, stats).await
    }
}

async fn transactions<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    mut r: BufReader<S>,
    stats: &mut SessionStats,
) -> io::Result<()> {
    r.write_all(b"EHLO load.bench.example\r\n").await?;
    let ehlo = read_reply(&mut r).await?;
    protocol(&ehlo, 250, "EHLO")?;
    let pipelining = ehlo
        .text
        .lines()
        .any(|l| l.eq_ignore_ascii_case("PIPELINING"));
    let wl = &shared.args.workload;
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.args.messages {
            break;
        }
        let rcpts = wl.recipients(i);
        let sent = now_ns();
        let mut cmds = vec!["MAIL FROM:<load@bench.example>\r\n".to_string()];
        cmds.extend(rcpts.iter().map(|a| format!("RCPT TO:<{a}>\r\n")));
        cmds.push("DATA\r\n".into());
        let mut replies = Vec::with_capacity(cmds.len());
        if pipelining {
            r.write_all(cmds.concat().as_bytes()).await?;
            r.flush().await?;
            for _ in &cmds {
                replies.push(read_reply(&mut r).await?);
            }
        } else {
            for c in &cmds {
                r.write_all(c.as_bytes()).await?;
                r.flush().await?;
                replies.push(read_reply(&mut r).await?);
            }
        }
        let rcpt_ok = replies[1..replies.len() - 1].iter().any(|x| x.code == 250);
        let data = replies.last().map(|x| x.code);
        if replies[0].code != 250 || !rcpt_ok || data != Some(354) {
            stats.rejected += 1;
            if data == Some(354) {
                // RFC 2920 §3.1: DATA went through without valid recipients; end it.
                r.write_all(b".\r\n").await?;
                r.flush().await?;
                read_reply(&mut r).await?;
            }
            r.write_all(b"RSET\r\n").await?;
            r.flush().await?;
            read_reply(&mut r).await?;
            continue;
        }
        r.write_all(&wl.headers(i, sent, &rcpts)).await?;
        let size = wl.size_of(i);
        let body = shared
            .bodies
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, b)| b)
            .ok_or_else(|| io::Error::other("no body prepared for a size"))?;
        r.write_all(body).await?;
        r.flush().await?;
        let end_of_data = Instant::now();
        let reply = read_reply(&mut r).await?;
        if reply.code == 250 {
            stats.accepted += 1;
            stats.latencies.push(end_of_data.elapsed().as_secs_f64());
        } else {
            stats.rejected += 1;
        }
    }
    r.write_all(b"QUIT\r\n").await?;
    let _ = read_reply(&mut r).await;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run_load(args: Args) -> serde_json::Value {
    let shared = Arc::new(Shared {
        bodies: args
            .workload
            .sizes()
            .into_iter()
            .map(|size| (size, args.workload.body(size)))
            .collect(),
        args,
        next: AtomicU64::new(0),
        tls: TlsConnector::from(tls::insecure_client()),
    });
    let start_ns = now_ns();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..shared.args.concurrency {
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            let mut stats = SessionStats::default();
            if let Err(e) = session(shared, &mut stats).await {
                stats.error = Some(e.to_string());
            }
            stats
        }));
    }
    let mut all = SessionStats::default();
    let mut errors = Vec::new();
    for t in tasks {
        let s = t.await.unwrap_or_else(|e| SessionStats {
            error: Some(e.to_string()),
            ..SessionStats::default()
        });
        all.accepted += s.accepted;
        all.rejected += s.rejected;
        all.latencies.extend(s.latencies);
        errors.extend(s.error);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.latencies.sort_by(f64::total_cmp);
    let ms = |p| percentile(&all.latencies, p) * 1000.0;
    let a = &shared.args;
    json!({
        "target": a.target.to_string(),
        "tag": a.workload.tag,
        "messages": a.messages,
        "concurrency": a.concurrency,
        "size": a.workload.size,
        "size_mix": a.workload.mix,
        "rcpts": a.workload.rcpts,
        "migrated_share": a.workload.migrated_share,
        "starttls": a.starttls,
        "accepted": all.accepted,
        "rejected": all.rejected,
        "session_errors": errors.len(),
        "first_error": errors.first(),
        "start_ns": start_ns,
        "elapsed_s": elapsed,
        "accepted_per_s": all.accepted as f64 / elapsed.max(1e-9),
        "accept_p50_ms": ms(50.0),
        "accept_p99_ms": ms(99.0),
        "accept_max_ms": all.latencies.last().copied().unwrap_or(0.0) * 1000.0,
    })
}

/// Opens `n` connections (200 handshakes at a time), says EHLO, holds them.
async fn run_idle(args: Args) -> io::Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::with_capacity(args.idle);
    for _ in 0..args.idle {
        let sem = Arc::clone(&sem);
        let target = args.target;
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.ok()?;
            let tcp = TcpStream::connect(target).await.ok()?;
            let mut r = BufReader::new(tcp);
            read_reply(&mut r).await.ok().filter(|x| x.code == 220)?;
            r.write_all(b"EHLO idle.bench.example\r\n").await.ok()?;
            read_reply(&mut r).await.ok().filter(|x| x.code == 250)?;
            Some(r)
        }));
    }
    let mut open = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.ok().flatten() {
            Some(c) => open.push(c),
            None => failed += 1,
        }
    }
    println!("idle ready {} {failed}", open.len());
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    drop(open);
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("smtp-load: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smtp-load: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.idle > 0 {
        return match rt.block_on(run_idle(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("smtp-load: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let summary = rt.block_on(run_load(args));
    println!("{summary}");
    if summary["session_errors"].as_u64() == Some(0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
