//! `deflate-levels [--messages N]`: what each DEFLATE level of flate2's
//! miniz_oxide backend gives on mail, as the migrator's COMPRESS=DEFLATE
//! (RFC 4978) writes it: one raw stream, each message written and then sync
//! flushed (one write burst each, `migrator/src/imap/deflate.rs`).
//!
//! The mailbox (default 300 messages) is made here, the same every run, from
//! what a Debian system carries: headers as a real MTA writes them (Received,
//! a DKIM signature), bodies cut from the prose under
//! `/usr/share/common-licenses` and `/usr/share/doc/*/README*`, 40 % of them
//! multipart with an HTML copy, and a quarter of those with a base64
//! attachment of 20–200 KB cut from the gzip files under `/usr/share/doc`
//! (already compressed, as PDFs, images and Office files are). Printed per
//! level, for the whole mailbox and for its text-only messages: the
//! compressed size as a share of the input, and MB/s (best of 5, one core).

use flate2::{Compress, Compression, FlushCompress};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut messages = 300;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--messages", Some(n)) => messages = n,
            _ => {
                eprintln!("usage: deflate-levels [--messages N]");
                return ExitCode::from(2);
            }
        }
    }
    let mailbox = mailbox(messages);
    let text: Vec<Vec<u8>> = mailbox
        .iter()
        .filter(|m| !contains(m, b"Content-Transfer-Encoding: base64"))
        .cloned()
        .collect();
    for (name, mails) in [("mailbox", &mailbox), ("text only", &text)] {
        let total: usize = mails.iter().map(Vec::len).sum();
        println!("{name}: {} messages, {total} bytes", mails.len());
        for level in [1, 2, 3, 6] {
            let (size, secs) = (0..5)
                .map(|_| deflate(mails, level))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            println!(
                "  level {level}: {:5.1} % of the bytes, {:4.0} MB/s",
                100.0 * size as f64 / total as f64,
                total as f64 / 1e6 / secs
            );
        }
    }
    ExitCode::SUCCESS
}

/// One raw DEFLATE stream of `mails`, a sync flush after each: its size and
/// the seconds it took.
fn deflate(mails: &[Vec<u8>], level: u32) -> (usize, f64) {
    let mut c = Compress::new(Compression::new(level), false);
    let total: usize = mails.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total + (1 << 20));
    let t = Instant::now();
    for m in mails {
        let start = c.total_in();
        while ((c.total_in() - start) as usize) < m.len() {
            let taken = (c.total_in() - start) as usize;
            out.reserve(64 * 1024);
            c.compress_vec(&m[taken..], &mut out, FlushCompress::None)
                .unwrap();
        }
        loop {
            out.reserve(64 * 1024);
            c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
            if out.len() < out.capacity() {
                break;
            }
        }
    }
    (out.len(), t.elapsed().as_secs_f64())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn base64(&mut self, n: usize) -> String {
        let bytes: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
        base64(&bytes)
    }
}

fn files(pattern_dirs: &[&str], keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in pattern_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Ok(inner) = std::fs::read_dir(&p) {
                    out.extend(inner.flatten().map(|e| e.path()));
                }
            } else {
                out.push(p);
            }
        }
    }
    out.retain(|p| p.is_file() && keep(&p.to_string_lossy()));
    out.sort();
    out
}

fn mailbox(n: usize) -> Vec<Vec<u8>> {
    let prose: Vec<String> = files(&["/usr/share/common-licenses", "/usr/share/doc"], |p| {
        p.starts_with("/usr/share/common-licenses/") || p.contains("/README")
    })
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .filter(|t| t.len() > 2000)
    .collect();
    let gz: Vec<Vec<u8>> = files(&["/usr/share/doc"], |p| p.ends_with(".gz"))
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| b.len() > 20_000)
        .collect();
    assert!(
        !prose.is_empty() && !gz.is_empty(),
        "no prose or gzip files under /usr/share"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|i| {
            let src = &prose[rng.below(prose.len())];
            let len = 1500 + rng.below(18_500);
            let start = rng.below(src.len().saturating_sub(len).max(1));
            let body: String = src
                .chars()
                .skip(start)
                .take(len)
                .collect::<String>()
                .replace('\n', "\r\n");
            let mut m = format!(
                "Return-Path: <carol@example.net>\r\n\
                 Received: from mx{0}.example.net (mx{0}.example.net [192.0.2.{1}])\r\n\
                 \tby mail.corp.example (Postfix) with ESMTPS id 4F{2:05X}\r\n\
                 \tfor <alice@corp.example>; Mon, 6 Mar 2023 12:{3:02}:00 +0100 (CET)\r\n\
                 DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=sel;\r\n\
                 \th=from:to:subject:date; bh={4};\r\n\tb={5}\r\n\
                 From: Carol <carol@example.net>\r\nTo: Alice <alice@corp.example>\r\n\
                 Subject: re: item {2}\r\nDate: Mon, 6 Mar 2023 12:00:00 +0100\r\n\
                 Message-ID: <{6:016x}@example.net>\r\nMIME-Version: 1.0\r\n",
                i % 7,
                i % 250,
                i,
                i % 60,
                rng.base64(32),
                rng.base64(256),
                rng.next()
            );
            let kind = rng.below(100);
            if kind < 60 {
                m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
                m.push_str(&body);
            } else {
                m.push_str("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n");
                m.push_str("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
                m.push_str(&body);
                m.push_str(
                    "\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>",
                );
                for p in body.split("\r\n\r\n") {
                    m.push_str("<p>");
                    m.push_str(&p.replace('&', "&amp;").replace('<', "&lt;"));
                    m.push_str("</p>\r\n");
                }
                m.push_str("</body></html>\r\n");
                if kind >= 90 {
                    let file = &gz[rng.below(gz.len())];
                    let cut = (20_000 + rng.below(180_000)).min(file.len());
                    let b64 = base64(&file[..cut]);
                    m.push_str("--b1\r\nContent-Type: application/octet-stream\r\n");
                    m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
                    for line in b64.as_bytes().chunks(76) {
                        m.push_str(std::str::from_utf8(line).unwrap());
                        m.push_str("\r\n");
                    }
                }
                m.push_str("--b1--\r\n");
            }
            m.into_bytes()
        })
        .collect()
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
