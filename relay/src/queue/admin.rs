//! The admin socket: `<spool_dir>/admin.sock`, a Unix socket only the relay's user can
//! reach (the spool folder is 0700). One line in, one line out:
//! `FLUSH` → `OK <n>`; `DELETE <id> [SILENT]` → `OK` or `ERR <why>`.

use super::manager::AdminRequest;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Path of the socket for a spool folder.
pub fn socket_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("admin.sock")
}

/// Listens on the admin socket until shutdown, forwarding requests to the manager.
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
                let answer = handle(line.trim(), &manager).await;
                let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn handle(line: &str, manager: &mpsc::Sender<AdminRequest>) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["FLUSH"] => {
            let (tx, rx) = oneshot::channel();
            if manager.send(AdminRequest::Flush(tx)).await.is_err() {
                return "ERR shutting down".into();
            }
            match rx.await {
                Ok(n) => format!("OK {n}"),
                Err(_) => "ERR shutting down".into(),
            }
        }
        ["DELETE", id, rest @ ..] => {
            let silent = rest
                .first()
                .is_some_and(|w| w.eq_ignore_ascii_case("SILENT"));
            let (tx, rx) = oneshot::channel();
            let request = AdminRequest::Delete {
                id: id.to_string(),
                silent,
                reply: tx,
            };
            if manager.send(request).await.is_err() {
                return "ERR shutting down".into();
            }
            match rx.await {
                Ok(Ok(())) => "OK".into(),
                Ok(Err(why)) => format!("ERR {why}"),
                Err(_) => "ERR shutting down".into(),
            }
        }
        _ => "ERR unknown command; expected FLUSH or DELETE <id> [SILENT]".into(),
    }
}

/// Client side (blocking): sends one command to a running relay. `None` when no relay
/// listens on the socket.
pub fn request(spool_dir: &Path, command: &str) -> Option<String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket_path(spool_dir)).ok()?;
    stream.write_all(format!("{command}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}
