//! Writes that must survive a crash, written once (STYLE habit 5; chasquid's
//! `safeio`): a temporary file in the same folder, fsync, rename over the
//! destination, fsync the folder. A reader sees the old file or the new one,
//! never half of one, and after a crash the name points at one of them.
//!
//! Used for the spool's delivery state, the contacts table, the migrator's
//! checkpoints and the development certificate.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of every temporary file written here: a file with it is never in
/// force, and whoever owns the folder may delete it after a crash.
pub const TMP_SUFFIX: &str = ".tmp";

/// The permission bits a replaced file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly these bits (e.g. `0o600` for mail and secrets).
    Fixed(u32),
    /// The mode of the file being replaced, or `0o644` for a new one (the
    /// contacts table may be read by the relay through group permissions).
    KeepExisting,
}

/// A step of a crash-safe write failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {path}: {source}", path = path.display())]
pub struct WriteError {
    /// What was being done: `create`, `write`, `fsync`, `rename into place`,
    /// `fsync the folder`.
    pub step: &'static str,
    /// The file or folder it was done to.
    pub path: PathBuf,
    /// The system's error.
    #[source]
    pub source: io::Error,
}

impl WriteError {
    fn at(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
        let path = path.to_path_buf();
        move |source| WriteError { step, path, source }
    }
}

/// Replaces `path` with `contents`: temp file beside it, fsync, rename, fsync
/// the folder. On error the destination is unchanged and no temporary file is
/// left behind.
pub fn replace(path: &Path, contents: &[u8], mode: Mode) -> Result<(), WriteError> {
    let dir = parent(path);
    let tmp = temp_name(path);
    let bits = match mode {
        Mode::Fixed(bits) => bits,
        Mode::KeepExisting => fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777),
    };
    let written = create_new(&tmp, contents, bits)
        .and_then(|()| fs::rename(&tmp, path).map_err(WriteError::at("rename into place", path)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir).map_err(WriteError::at("fsync the folder", dir))
}

/// Creates `path`, which must not exist, with `contents` and `mode`, and
/// fsyncs it (not its folder: see [`fsync_dir`]). Removes it again on error.
pub fn create_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(WriteError::at("create", path))?;
    // The umask may have taken bits away from `mode`; the caller asked for these.
    let result = file
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(WriteError::at("set the mode of", path))
        .and_then(|()| {
            file.write_all(contents)
                .map_err(WriteError::at("write", path))
        })
        .and_then(|()| file.sync_all().map_err(WriteError::at("fsync", path)));
    if result.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    result
}

/// fsyncs a folder, so that the names created, renamed or removed in it are
/// durable (a file's own fsync does not cover its name).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The folder `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `.<name>.<pid>.<n>.tmp` beside `path`: hidden, unique across the threads
/// and processes writing the same file, and recognisable by its suffix.
fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    parent(path).join(format!(
        ".{name}.{}.{}{TMP_SUFFIX}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replace_creates_then_replaces_keeping_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table");
        replace(&path, b"one\n", Mode::KeepExisting).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let before = fs::metadata(&path).unwrap();
        replace(&path, b"two\n", Mode::KeepExisting).unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        assert_eq!(after.permissions().mode() & 0o777, 0o640);
        use std::os::unix::fs::MetadataExt;
        assert_ne!(before.ino(), after.ino(), "a new inode, renamed in");
        assert_eq!(names(dir.path()), vec!["table"], "no temporary file left");
    }

    #[test]
    fn fixed_mode_is_applied_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        replace(&path, b"x", Mode::Fixed(0o600)).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_failed_replace_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace(&path, b"old", Mode::Fixed(0o600)).unwrap();
        // A folder in the way of the rename: the rename fails.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"").unwrap();
        let err = replace(&blocked, b"new", Mode::Fixed(0o600)).unwrap_err();
        assert_eq!(err.step, "rename into place");
        assert!(err.to_string().contains("blocked"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["blocked", "state"]);
    }

    #[test]
    fn create_new_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        create_new(&path, b"k", 0o600).unwrap();
        let err = create_new(&path, b"other", 0o600).unwrap_err();
        assert_eq!(err.step, "create");
        assert_eq!(
            fs::read(&path).unwrap(),
            b"k",
            "the existing file is untouched"
        );
    }
}
