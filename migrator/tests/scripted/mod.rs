//! A scripted IMAP server over `tokio::io::duplex`: in-memory folders, the
//! commands the copy sends (CAPABILITY, LIST, EXAMINE/SELECT, UID SEARCH, UID
//! FETCH of sizes, headers and whole messages, CREATE, APPEND with LITERAL+,
//! LOGOUT), and the faults a cloud service throws at a migration:
//! `NO [THROTTLED]` for the first APPENDs, `NO [LIMIT]` for one message, and a
//! `* BYE` in place of one APPEND's answer after the message was stored.
//! Where asked, it offers COMPRESS=DEFLATE (RFC 4978): after its OK (sent in
//! one write with its first compressed bytes) it inflates what it reads with
//! the migrator's [`inflate`] and compresses what it writes with flate2 itself,
//! so each direction meets a deflate the other side did not write.
//!
//! Everything the client does lands in a [`Journal`] shared with the test's
//! checkpoint sink, in the order it happened, with the (paused) clock's time.

use flate2::{Compress, Compression, FlushCompress};
use migrator::imap::deflate::inflate;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, WriteHalf,
};
use tokio::time::Instant;

/// One thing that happened, as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A client connected to `server`.
    Connected { server: &'static str, at: Instant },
    /// An APPEND of the message with this subject reached `server`, and how it
    /// was answered.
    Append {
        server: &'static str,
        subject: String,
        at: Instant,
        answer: Answer,
    },
    /// `server` was asked for the header blocks of these UIDs (dedupe lookups).
    Headers {
        server: &'static str,
        uids: Vec<u32>,
    },
    /// The copy saved a checkpoint (pushed by the test's sink).
    Saved { copied: Vec<u32>, pending: Vec<u32> },
}

/// How the scripted server answered one APPEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Stored, `OK`.
    Stored,
    /// `NO [THROTTLED]`, not stored.
    Throttled,
    /// `NO [LIMIT]`, not stored.
    Limit,
    /// Stored, then `* BYE` instead of the `OK`.
    StoredThenBye,
}

/// The log every server and sink of one test writes to.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Entry>>>);

impl Journal {
    /// Adds one entry.
    pub fn push(&self, entry: Entry) {
        self.0.lock().unwrap().push(entry);
    }

    /// Everything so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.0.lock().unwrap().clone()
    }

    /// The subjects `server` got APPENDs for, with their answers, in order.
    pub fn appends(&self, server: &str) -> Vec<(String, Answer)> {
        self.entries()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Append {
                    server: s,
                    subject,
                    answer,
                    ..
                } if s == server => Some((subject, answer)),
                _ => None,
            })
            .collect()
    }
}

/// A message in a scripted folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its UID.
    pub uid: u32,
    /// Flags as written (`\Seen`, `$Label1`).
    pub flags: Vec<String>,
    /// INTERNALDATE as written (`01-Jan-2019 10:00:00 +0000`).
    pub date: String,
    /// The bytes.
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
struct Folder {
    uid_validity: u32,
    next_uid: u32,
    messages: Vec<Stored>,
}

/// What the server does wrong, on purpose.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The first N APPENDs are answered `NO [THROTTLED]` (and not stored).
    pub throttle_first: usize,
    /// The Nth APPEND (1-based) is stored, then answered with `* BYE`; the
    /// connection is closed once the client hangs up.
    pub bye_at_append: Option<usize>,
    /// A message whose subject is this is answered `NO [LIMIT]`.
    pub limit_subject: Option<String>,
    /// In a compressed session, the first FETCH of whole messages gets half
    /// its compressed answer, then the connection closes.
    pub hang_up_mid_fetch: bool,
    /// COMPRESS is offered but answered `NO`.
    pub refuse_compress: bool,
}

struct Inner {
    name: &'static str,
    folders: BTreeMap<String, Folder>,
    faults: Faults,
    appends: usize,
    journal: Journal,
    /// COMPRESS=DEFLATE is offered.
    compress: bool,
    /// Sessions that turned compression on.
    compressed_sessions: usize,
}

/// One scripted IMAP server; each [`Server::connect`] is a new session on it.
#[derive(Clone)]
pub struct Server(Arc<Mutex<Inner>>);

/// A test message: `Subject: {subject}`, with a Message-ID when `id` is given.
pub fn mail(subject: &str, id: Option<&str>) -> Vec<u8> {
    let mut m = format!("From: carol@example.net\r\nSubject: {subject}\r\n");
    if let Some(id) = id {
        m.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    m.push_str(&format!("\r\nbody of {subject}\r\n"));
    m.into_bytes()
}

/// The `Subject:` of a test message.
pub fn subject_of(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        .unwrap_or_default()
}

impl Server {
    /// A server called `name` in the journal, with an empty INBOX.
    pub fn new(name: &'static str, journal: &Journal) -> Server {
        let server = Server(Arc::new(Mutex::new(Inner {
            name,
            folders: BTreeMap::new(),
            faults: Faults::default(),
            appends: 0,
            journal: journal.clone(),
            compress: false,
            compressed_sessions: 0,
        })));
        server.folder("INBOX", 1);
        server
    }

    /// Creates (or empties and renumbers) `name` with this UIDVALIDITY.
    pub fn folder(&self, name: &str, uid_validity: u32) {
        self.0.lock().unwrap().folders.insert(
            name.to_string(),
            Folder {
                uid_validity,
                next_uid: 1,
                messages: Vec::new(),
            },
        );
    }

    /// Adds a message to `folder`; returns its UID.
    pub fn add(&self, folder: &str, flags: &[&str], date: &str, body: Vec<u8>) -> u32 {
        let mut inner = self.0.lock().unwrap();
        let f = inner.folders.get_mut(folder).expect("folder exists");
        let uid = f.next_uid;
        f.next_uid += 1;
        f.messages.push(Stored {
            uid,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            date: date.to_string(),
            body,
        });
        uid
    }

    /// Offers COMPRESS=DEFLATE from now on.
    pub fn offer_compress(&self) {
        self.0.lock().unwrap().compress = true;
    }

    /// How many sessions turned compression on.
    pub fn compressed_sessions(&self) -> usize {
        self.0.lock().unwrap().compressed_sessions
    }

    /// Sets the faults from now on.
    pub fn faults(&self, faults: Faults) {
        self.0.lock().unwrap().faults = faults;
    }

    /// The messages in `folder`.
    pub fn messages(&self, folder: &str) -> Vec<Stored> {
        self.0
            .lock()
            .unwrap()
            .folders
            .get(folder)
            .map(|f| f.messages.clone())
            .unwrap_or_default()
    }

    /// The subjects in `folder`, in UID order.
    pub fn subjects(&self, folder: &str) -> Vec<String> {
        self.messages(folder)
            .iter()
            .map(|m| subject_of(&m.body))
            .collect()
    }

    /// A new session: the client's end of an in-memory stream, the server's
    /// end answered by a task.
    pub fn connect(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let inner = self.0.clone();
        {
            let inner = inner.lock().unwrap();
            inner.journal.push(Entry::Connected {
                server: inner.name,
                at: Instant::now(),
            });
        }
        tokio::spawn(serve(inner, server));
        client
    }
}

/// A client command: its first line (without CRLF) and its literals.
struct Command {
    line: String,
    literals: Vec<Vec<u8>>,
}

/// The server's end of one session: plain, or DEFLATE both ways once
/// COMPRESS has been answered.
struct Wire {
    r: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    w: WriteHalf<DuplexStream>,
    deflate: Option<Compress>,
}

impl Wire {
    /// Writes `bytes`, compressed with a sync flush when compression is on.
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let bytes = self.seal(bytes);
        self.w.write_all(&bytes).await?;
        self.w.flush().await
    }

    /// `bytes` as they go on the wire.
    fn seal(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Some(deflate) = &mut self.deflate else {
            return bytes.to_vec();
        };
        let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
        let start = deflate.total_in();
        while deflate.total_in() - start < bytes.len() as u64 || out.len() == out.capacity() {
            let taken = (deflate.total_in() - start) as usize;
            out.reserve(64 * 1024);
            deflate
                .compress_vec(&bytes[taken..], &mut out, FlushCompress::Sync)
                .expect("deflate");
        }
        out
    }

    /// From here on both ways are compressed: what the reader buffered
    /// already is the start of the client's deflate stream.
    fn start_deflate(&mut self) {
        let already = self.r.buffer().to_vec();
        let plain = std::mem::replace(&mut self.r, BufReader::new(Box::new(tokio::io::empty())));
        self.r = BufReader::new(Box::new(inflate(plain.into_inner(), &already)));
        self.deflate = Some(Compress::new(Compression::new(6), false));
    }
}

/// Reads one command with its literals; `+` continuations for synchronising
/// literals (RFC 3501 §7.5), none for LITERAL+ (RFC 7888).
async fn read_command(wire: &mut Wire) -> Option<Command> {
    let mut first = None;
    let mut literals = Vec::new();
    loop {
        let mut line = Vec::new();
        if wire.r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        let announced = literal_size(&text);
        first.get_or_insert(text);
        let Some((n, sync)) = announced else {
            break;
        };
        if sync {
            wire.send(b"+ go ahead\r\n").await.ok()?;
        }
        let mut data = vec![0; n];
        wire.r.read_exact(&mut data).await.ok()?;
        literals.push(data);
    }
    Some(Command {
        line: first?,
        literals,
    })
}

/// `{n}` / `{n+}` at the end of a line: (n, synchronising).
fn literal_size(line: &str) -> Option<(usize, bool)> {
    let body = line.strip_suffix('}')?;
    let open = body.rfind('{')?;
    let inside = &body[open + 1..];
    match inside.strip_suffix('+') {
        Some(n) => Some((n.parse().ok()?, false)),
        None => Some((inside.parse().ok()?, true)),
    }
}

/// Splits a command line into atoms, quoted strings (unquoted) and
/// parenthesised groups (kept whole).
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => s.extend(chars.next()),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
            '(' => {
                let mut depth = 0;
                let mut s = String::new();
                for c in chars.by_ref() {
                    s.push(c);
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                }
                out.push(s);
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    out
}

/// The UIDs of `folder` in a UID sequence set (`1:3,7,9:*`).
fn uid_set(set: &str, folder: &Folder) -> Vec<u32> {
    let max = folder.messages.iter().map(|m| m.uid).max().unwrap_or(0);
    let num = |s: &str| {
        if s == "*" {
            max
        } else {
            s.parse().unwrap_or(0)
        }
    };
    let mut wanted = Vec::new();
    for part in set.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (num(a), num(b)),
            None => (num(part), num(part)),
        };
        let (lo, hi) = (a.min(b), a.max(b));
        wanted.extend(
            folder
                .messages
                .iter()
                .map(|m| m.uid)
                .filter(|u| (lo..=hi).contains(u)),
        );
    }
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// What to write back, and whether the session ends after it.
struct Reply {
    bytes: Vec<u8>,
    bye: bool,
}

async fn serve(inner: Arc<Mutex<Inner>>, stream: DuplexStream) {
    let (r, w) = tokio::io::split(stream);
    let mut wire = Wire {
        r: BufReader::new(Box::new(r)),
        w,
        deflate: None,
    };
    if wire.send(b"* OK scripted IMAP ready\r\n").await.is_err() {
        return;
    }
    let mut selected: Option<String> = None;
    while let Some(command) = read_command(&mut wire).await {
        if is_compress(&command) {
            if compress(&inner, &mut wire, &command).await.is_err() {
                return;
            }
            continue;
        }
        let whole_fetch = command.line.to_ascii_uppercase().contains("BODY.PEEK[]");
        let reply = answer(&inner, &mut selected, command);
        let hang_up = wire.deflate.is_some() && whole_fetch && {
            let mut inner = inner.lock().unwrap();
            std::mem::take(&mut inner.faults.hang_up_mid_fetch)
        };
        if hang_up {
            let sealed = wire.seal(&reply.bytes);
            let _ = wire.w.write_all(&sealed[..sealed.len() / 2]).await;
            return;
        }
        if wire.send(&reply.bytes).await.is_err() {
            return;
        }
        if reply.bye {
            // As a server that closes after BYE: read on until the client
            // hangs up, so what it pipelined meanwhile is not refused.
            let mut sink = [0u8; 4096];
            while matches!(wire.r.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
    }
}

fn is_compress(command: &Command) -> bool {
    let words = tokens(&command.line);
    words
        .get(1)
        .is_some_and(|w| w.eq_ignore_ascii_case("COMPRESS"))
}

/// RFC 4978: the tagged OK in plain, and in the same write the first
/// compressed bytes (an untagged OK the client files with its next command).
async fn compress(inner: &Mutex<Inner>, wire: &mut Wire, command: &Command) -> std::io::Result<()> {
    let tag = tokens(&command.line).remove(0);
    let (offered, refuse) = {
        let inner = inner.lock().unwrap();
        (inner.compress, inner.faults.refuse_compress)
    };
    if wire.deflate.is_some() || !offered {
        let bad = format!("{tag} BAD COMPRESS not available\r\n");
        return wire.send(bad.as_bytes()).await;
    }
    if refuse {
        let no = format!("{tag} NO [COMPRESSIONACTIVE] already compressed by TLS\r\n");
        return wire.send(no.as_bytes()).await;
    }
    inner.lock().unwrap().compressed_sessions += 1;
    let mut out = format!("{tag} OK DEFLATE active\r\n").into_bytes();
    wire.start_deflate();
    out.extend(wire.seal(b"* OK compressed from here\r\n"));
    wire.w.write_all(&out).await?;
    wire.w.flush().await
}

fn answer(inner: &Mutex<Inner>, selected: &mut Option<String>, command: Command) -> Reply {
    let mut inner = inner.lock().unwrap();
    let words = tokens(&command.line);
    let tag = words.first().cloned().unwrap_or_default();
    let verb: Vec<String> = words
        .iter()
        .skip(1)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let ok = |text: &str| format!("{tag} OK {text}\r\n").into_bytes();
    let bytes = match verb.first().map(String::as_str) {
        Some("CAPABILITY") => {
            let mut b = b"* CAPABILITY IMAP4rev1 LITERAL+".to_vec();
            if inner.compress {
                b.extend(b" COMPRESS=DEFLATE");
            }
            b.extend(b"\r\n");
            b.extend(ok("CAPABILITY done"));
            b
        }
        Some("LIST") => {
            let mut b = Vec::new();
            for name in inner.folders.keys() {
                b.extend(format!("* LIST () \"/\" \"{name}\"\r\n").into_bytes());
            }
            b.extend(ok("LIST done"));
            b
        }
        Some("EXAMINE") | Some("SELECT") => {
            let name = words[2].clone();
            match inner.folders.get(&name) {
                Some(f) => {
                    *selected = Some(name);
                    let mut b = format!("* {} EXISTS\r\n", f.messages.len()).into_bytes();
                    b.extend(
                        format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", f.uid_validity)
                            .into_bytes(),
                    );
                    b.extend(ok("opened"));
                    b
                }
                None => format!("{tag} NO no such folder\r\n").into_bytes(),
            }
        }
        Some("CREATE") => {
            let name = words[2].clone();
            if inner.folders.contains_key(&name) {
                format!("{tag} NO [ALREADYEXISTS] exists\r\n").into_bytes()
            } else {
                let next = inner.folders.len() as u32 + 100;
                inner.folders.insert(
                    name,
                    Folder {
                        uid_validity: next,
                        next_uid: 1,
                        messages: Vec::new(),
                    },
                );
                ok("CREATE done")
            }
        }
        Some("UID") => uid_command(&mut inner, selected.as_deref(), &tag, &words),
        Some("APPEND") => return append(&mut inner, &tag, &words, command.literals),
        Some("LOGOUT") => {
            let mut b = b"* BYE logging out\r\n".to_vec();
            b.extend(ok("LOGOUT done"));
            return Reply {
                bytes: b,
                bye: true,
            };
        }
        _ => format!("{tag} BAD not scripted: {}\r\n", command.line).into_bytes(),
    };
    Reply { bytes, bye: false }
}

fn uid_command(inner: &mut Inner, selected: Option<&str>, tag: &str, words: &[String]) -> Vec<u8> {
    let Some(folder) = selected.and_then(|s| inner.folders.get(s)) else {
        return format!("{tag} BAD nothing selected\r\n").into_bytes();
    };
    let mut b = Vec::new();
    match words[2].to_ascii_uppercase().as_str() {
        "SEARCH" => {
            // Every message: the tests' messages all fall in any date range asked.
            b.extend(b"* SEARCH");
            for m in &folder.messages {
                b.extend(format!(" {}", m.uid).into_bytes());
            }
            b.extend(b"\r\n");
        }
        "FETCH" => {
            let uids = uid_set(&words[3], folder);
            let items = words[4].to_ascii_uppercase();
            if items.contains("BODY.PEEK[HEADER]") {
                inner.journal.push(Entry::Headers {
                    server: inner.name,
                    uids: uids.clone(),
                });
            }
            for (i, m) in folder.messages.iter().enumerate() {
                if uids.binary_search(&m.uid).is_ok() {
                    b.extend(fetch_item(i + 1, m, &items));
                }
            }
        }
        other => return format!("{tag} BAD UID {other} not scripted\r\n").into_bytes(),
    }
    b.extend(format!("{tag} OK UID done\r\n").into_bytes());
    b
}

/// One `* n FETCH (...)` with the items asked for.
fn fetch_item(seq: usize, m: &Stored, items: &str) -> Vec<u8> {
    let mut b = format!("* {seq} FETCH (UID {}", m.uid).into_bytes();
    if items.contains("RFC822.SIZE") {
        b.extend(format!(" RFC822.SIZE {}", m.body.len()).into_bytes());
    }
    if items.contains("FLAGS") {
        b.extend(format!(" FLAGS ({})", m.flags.join(" ")).into_bytes());
    }
    if items.contains("INTERNALDATE") {
        b.extend(format!(" INTERNALDATE \"{}\"", m.date).into_bytes());
    }
    let section = if items.contains("BODY.PEEK[HEADER]") {
        let end = m
            .body
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(m.body.len(), |i| i + 4);
        Some(("BODY[HEADER]", &m.body[..end]))
    } else if items.contains("BODY.PEEK[]") {
        Some(("BODY[]", &m.body[..]))
    } else {
        None
    };
    if let Some((name, data)) = section {
        b.extend(format!(" {name} {{{}}}\r\n", data.len()).into_bytes());
        b.extend_from_slice(data);
    }
    b.extend(b")\r\n");
    b
}

fn append(inner: &mut Inner, tag: &str, words: &[String], literals: Vec<Vec<u8>>) -> Reply {
    let folder = words[2].clone();
    let mut flags = Vec::new();
    let mut date = String::new();
    for w in &words[3..] {
        if let Some(group) = w.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
            flags = group.split_whitespace().map(str::to_string).collect();
        } else if !w.starts_with('{') {
            date = w.clone();
        }
    }
    let body = literals.into_iter().next().unwrap_or_default();
    let subject = subject_of(&body);
    inner.appends += 1;
    let n = inner.appends;
    let faults = inner.faults.clone();
    let answer = if n <= faults.throttle_first {
        Answer::Throttled
    } else if faults.limit_subject.as_deref() == Some(subject.as_str()) {
        Answer::Limit
    } else if faults.bye_at_append == Some(n) {
        Answer::StoredThenBye
    } else {
        Answer::Stored
    };
    inner.journal.push(Entry::Append {
        server: inner.name,
        subject,
        at: Instant::now(),
        answer,
    });
    if matches!(answer, Answer::Stored | Answer::StoredThenBye) {
        let Some(f) = inner.folders.get_mut(&folder) else {
            return Reply {
                bytes: format!("{tag} NO [TRYCREATE] no such folder\r\n").into_bytes(),
                bye: false,
            };
        };
        let uid = f.next_uid;
        f.next_uid += 1;
        f.messages.push(Stored {
            uid,
            flags,
            date,
            body,
        });
    }
    let (bytes, bye) = match answer {
        Answer::Stored => (format!("{tag} OK APPEND done\r\n"), false),
        Answer::Throttled => (
            format!("{tag} NO [THROTTLED] Request is throttled; try again later\r\n"),
            false,
        ),
        Answer::Limit => (
            format!("{tag} NO [LIMIT] Mail size is larger than the maximum size\r\n"),
            false,
        ),
        Answer::StoredThenBye => (
            "* BYE [UNAVAILABLE] Too many requests; closing the connection\r\n".to_string(),
            true,
        ),
    };
    Reply {
        bytes: bytes.into_bytes(),
        bye,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_into_words() {
        assert_eq!(
            tokens(r#"M7 APPEND "Sent Items" (\Seen $Label1) "01-Jan-2019 10:00:00 +0000" {12+}"#),
            [
                "M7",
                "APPEND",
                "Sent Items",
                r"(\Seen $Label1)",
                "01-Jan-2019 10:00:00 +0000",
                "{12+}"
            ]
        );
        assert_eq!(literal_size("M1 APPEND INBOX {5}"), Some((5, true)));
        assert_eq!(literal_size("M1 APPEND INBOX {5+}"), Some((5, false)));
    }
}
