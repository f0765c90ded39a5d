//! The admin socket: `<spool_dir>/admin.sock`, a Unix socket only the relay's user
//! can reach (the spool folder is 0700), through which `coexist-relay queue …`
//! acts on the running relay's queue. One JSON line in ([`Command`]), one JSON
//! line out ([`Answer`]); both ends are the same binary, so the protocol is
//! internal.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What `coexist-relay queue` asks of the running relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Command {
    /// Make these messages (every message: `None`) due now; the route is
    /// decided again at the attempt. Held messages stay held.
    Requeue {
        /// Queue ids, or every queued message.
        ids: Option<Vec<String>>,
    },
    /// Remove these messages; their senders get a DSN unless `silent`.
    Delete {
        /// Queue ids.
        ids: Vec<String>,
        /// No DSN.
        silent: bool,
    },
    /// Attempt these messages no more until released (kept across restarts).
    Hold {
        /// Queue ids.
        ids: Vec<String>,
    },
    /// Release held messages: due now.
    Release {
        /// Queue ids.
        ids: Vec<String>,
    },
}

/// What the relay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The messages acted on.
    pub acted: Vec<String>,
    /// Ids not in the queue (finished, deleted, or never there).
    pub missing: Vec<String>,
    /// Ids left alone because they are held (requeue does not release).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// Why nothing was done, when the command failed as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    fn failed(why: impl Into<String>) -> Answer {
        Answer {
            error: Some(why.into()),
            ..Answer::default()
        }
    }
}

/// A command from `coexist-relay queue ...` through the admin socket, and
/// where its answer goes.
#[derive(Debug)]
pub struct AdminRequest {
    /// What to do.
    pub command: Command,
    /// What was done.
    pub reply: oneshot::Sender<Answer>,
}

/// Path of the socket for a spool folder.
pub fn socket_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("admin.sock")
}

/// Listens on the admin socket until shutdown, forwarding commands to the manager.
pub fn serve(
    spool_dir: &Path,
    manager: mpsc::Sender<AdminRequest>,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(spool_dir);
    // A socket left by a killed relay; the spool lock guarantees we are the only one.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = shutdown.cancelled() => break,
            };
            let manager = manager.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read);
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = match serde_json::from_str::<Command>(&line) {
                    Ok(command) => handle(command, &manager).await,
                    Err(e) => Answer::failed(format!("not a queue command: {e}")),
                };
                let mut out = serde_json::to_vec(&answer).unwrap_or_default();
                out.push(b'\n');
                let _ = write.write_all(&out).await;
            });
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn handle(command: Command, manager: &mpsc::Sender<AdminRequest>) -> Answer {
    let (reply, answer) = oneshot::channel();
    if manager.send(AdminRequest { command, reply }).await.is_err() {
        return Answer::failed("the relay is shutting down");
    }
    answer
        .await
        .unwrap_or_else(|_| Answer::failed("the relay is shutting down"))
}

/// Client side (blocking): sends one command to a running relay. `None` when no
/// relay listens on the socket (the caller then acts on the spool itself).
pub fn request(spool_dir: &Path, command: &Command) -> Option<Answer> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket_path(spool_dir)).ok()?;
    let mut line = serde_json::to_vec(command).ok()?;
    line.push(b'\n');
    stream.write_all(&line).ok()?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    Some(
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| Answer::failed(format!("unreadable answer from the relay: {e}"))),
    )
}
