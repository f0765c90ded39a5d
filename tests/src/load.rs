//! Load and measurement helpers for the fault-injection and flood tests: an SMTP
//! sender that reports failures instead of panicking (a relay being killed is the
//! point of the exercise), a seeded random generator (so a failing run can be
//! replayed), the process's open-file limit, and a process's memory use.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// SplitMix64: tiny, seedable, good enough to pick kill moments and sizes.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (log it: the same seed replays the same run).
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The seed from `COEXIST_SEED`, else one from the clock.
    pub fn seed_from_env() -> u64 {
        std::env::var("COEXIST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..hi` (hi exclusive, hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A number from the environment (how the soak script scales the tests up).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// How one attempt to hand a message to the relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// `250` after the data: the relay took responsibility (queue id).
    Accepted(String),
    /// The relay answered something else at some step (that reply's text).
    Refused(String),
}

/// One SMTP transaction on a fresh connection. I/O errors (refused, reset, EOF:
/// the relay was killed) come back as `Err`; the message is then not acknowledged.
pub fn submit(
    addr: SocketAddr,
    sender: &str,
    recipients: &[&str],
    message: &[u8],
    timeout: Duration,
) -> io::Result<Submission> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let expect = |r: &mut BufReader<TcpStream>, code: &str| -> io::Result<Option<String>> {
        let reply = read_reply(r)?;
        Ok((!reply.starts_with(code)).then_some(reply))
    };
    if let Some(bad) = expect(&mut r, "220")? {
        return Ok(Submission::Refused(bad));
    }
    w.write_all(b"EHLO load.test\r\n")?;
    if let Some(bad) = expect(&mut r, "250")? {
        return Ok(Submission::Refused(bad));
    }
    w.write_all(format!("MAIL FROM:<{sender}>\r\n").as_bytes())?;
    if let Some(bad) = expect(&mut r, "250")? {
        return Ok(Submission::Refused(bad));
    }
    for rcpt in recipients {
        w.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())?;
        if let Some(bad) = expect(&mut r, "250")? {
            return Ok(Submission::Refused(bad));
        }
    }
    w.write_all(b"DATA\r\n")?;
    if let Some(bad) = expect(&mut r, "354")? {
        return Ok(Submission::Refused(bad));
    }
    w.write_all(message)?;
    w.write_all(b".\r\n")?;
    let reply = read_reply(&mut r)?;
    let _ = w.write_all(b"QUIT\r\n");
    if reply.starts_with("250") {
        let id = reply.split_whitespace().nth(2).unwrap_or("").to_string();
        Ok(Submission::Accepted(id))
    } else {
        Ok(Submission::Refused(reply))
    }
}

/// A small test message with this Message-ID (CRLF, dot-safe, `filler` bytes of body).
pub fn message(message_id: &str, filler: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <load@sender.example>\r\nSubject: load\r\nMessage-ID: <{message_id}>\r\n\r\n"
    )
    .into_bytes();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    let mut left = filler;
    while left > 0 {
        let n = left.min(line.len());
        m.extend_from_slice(&line[line.len() - n..]);
        left -= n;
    }
    if !m.ends_with(b"\r\n") {
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Reads one (possibly multi-line) reply; the lines joined by `\n`.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<String> {
    let mut text = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        let line = line.trim_end().to_string();
        let done = line.as_bytes().get(3) != Some(&b'-');
        text.push(line);
        if done {
            return Ok(text.join("\n"));
        }
    }
}

/// Raises this process's soft RLIMIT_NOFILE to `want` (and the hard limit if
/// needed, which root may do); returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur >= want {
            return lim.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        // Not allowed above the hard limit: take what there is.
        let soft = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return lim.rlim_max;
        }
        lim.rlim_cur
    }
}

/// Memory of a process from `/proc/PID/status`: (VmRSS, VmHWM) in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
