//! The contacts table on disk: loading it, and the atomic writer the migrator (or an
//! operator's tool) uses to add and remove contacts.
//!
//! # Write protocol (DESIGN.md)
//! Every change is one read-modify-write under an exclusive `flock(2)` on
//! `<file>.lock`, so two writers never lose each other's lines. The new contents
//! go to a temporary file in the same folder, which is fsynced, renamed over the
//! table, and then the folder is fsynced so the rename itself survives a crash.
//! Readers (the relay) never lock: they see either the old file or the new one.
//!
//! The writer keeps every line it does not change byte for byte: comments, blank
//! lines, column alignment, even lines that are currently invalid.

use super::table::{ContactsTable, TableError};
use crate::address::{check_address, same_address, AddressError};
use crate::safeio::{self, Mode};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A contact to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    /// The on-premises address (`local@domain`).
    pub address: String,
    /// The address mail is rewritten to.
    pub target: String,
    /// The route column; `None` = `routing.contact_route`.
    pub route: Option<String>,
}

/// Why a change to the table file failed. The file is unchanged in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The table does not exist; writers never create it, so that a mistyped path
    /// does not silently start a table the relay never reads.
    #[error("{}: the contacts table does not exist; create an empty file there first", path.display())]
    Missing {
        /// The table path.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{}: cannot {op}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The table is not UTF-8, so it cannot be edited line by line safely.
    #[error("{}:{line}: not valid UTF-8; fix the file before changing it", path.display())]
    NotUtf8 {
        /// The table path.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
    },
    /// An address or target to write is not `local@domain`.
    #[error("{field} {value:?}: {reason}")]
    InvalidAddress {
        /// `address` or `target`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: AddressError,
    },
    /// A route name that cannot be written as one field.
    #[error("route {0:?}: must be one word that does not start with #")]
    InvalidRoute(String),
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and parses the table at `path`; every problem comes back as a
/// [`TableError`] (a missing file is one, telling to create an empty file).
pub fn load(path: &Path, routes: &dyn Fn(&str) -> bool) -> Result<ContactsTable, Vec<TableError>> {
    let whole_file = |message: String| {
        vec![TableError {
            file: path.to_path_buf(),
            line: 0,
            message,
        }]
    };
    match fs::read(path) {
        Ok(bytes) => ContactsTable::parse_bytes(&bytes, path, routes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(whole_file(
            "the contacts table does not exist; create an empty file to start with no contacts"
                .into(),
        )),
        Err(e) => Err(whole_file(format!("cannot read the contacts table: {e}"))),
    }
}

/// Adds contacts; a contact whose address is already listed (case-insensitively)
/// replaces that line in place (and any further lines for the same address are
/// dropped). New addresses are appended at the end.
///
/// Only syntax is checked here: the caller must make sure each route names a
/// `[route.NAME]` of the relay, or the relay will refuse the new table.
pub fn add_contacts(path: &Path, contacts: &[NewContact]) -> Result<(), StoreError> {
    let mut formatted = Vec::with_capacity(contacts.len());
    for c in contacts {
        check_address(&c.address).map_err(|reason| StoreError::InvalidAddress {
            field: "address",
            value: c.address.clone(),
            reason,
        })?;
        check_address(&c.target).map_err(|reason| StoreError::InvalidAddress {
            field: "target",
            value: c.target.clone(),
            reason,
        })?;
        if let Some(route) = &c.route {
            let one_word = !route.is_empty() && !route.chars().any(|c| c.is_whitespace());
            if !one_word || route.starts_with('#') {
                return Err(StoreError::InvalidRoute(route.clone()));
            }
        }
        formatted.push((c.address.as_str(), format_line(c)));
    }
    update(path, |lines| {
        for (address, line) in formatted {
            let mut found = false;
            lines.retain_mut(|l| {
                if !line_is_for(l, address) {
                    true
                } else if found {
                    false
                } else {
                    found = true;
                    l.clone_from(&line);
                    true
                }
            });
            if !found {
                lines.push(line);
            }
        }
    })
}

/// Removes the lines for these addresses (case-insensitive); returns how many
/// lines were removed. Unknown addresses are not an error.
pub fn remove_contacts(path: &Path, addresses: &[&str]) -> Result<usize, StoreError> {
    update(path, |lines| {
        let before = lines.len();
        lines.retain(|l| !addresses.iter().any(|a| line_is_for(l, a)));
        before - lines.len()
    })
}

/// One locked read-modify-write of the table: `change` gets the lines (without
/// their `\n`) and edits them; the file is replaced only if they changed.
pub fn update<T>(path: &Path, change: impl FnOnce(&mut Vec<String>) -> T) -> Result<T, StoreError> {
    let lock_path = lock_path(path);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error("open the lock file", &lock_path))?;
    lock.lock().map_err(io_error("lock", &lock_path))?;

    // Write where the data is: a symlinked table stays a symlink.
    let real = fs::canonicalize(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::Missing {
            path: path.to_path_buf(),
        },
        _ => StoreError::Io {
            op: "resolve",
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let bytes = fs::read(&real).map_err(io_error("read", &real))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        StoreError::NotUtf8 {
            path: path.to_path_buf(),
            line,
        }
    })?;
    let original: Vec<String> = match text.strip_suffix('\n') {
        Some(body) => body.split('\n').map(str::to_owned).collect(),
        None if text.is_empty() => Vec::new(),
        None => text.split('\n').map(str::to_owned).collect(),
    };
    let mut lines = original.clone();
    let result = change(&mut lines);
    if lines != original {
        let mut out = String::with_capacity(text.len() + 128);
        for l in &lines {
            out.push_str(l);
            out.push('\n');
        }
        replace_file(&real, out.as_bytes())?;
    }
    drop(lock); // closing the descriptor releases the flock
    Ok(result)
}

/// `<file>.lock`, beside the table.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Replaces the table crash-safely, keeping its mode (the relay may run as
/// another user that reads it through group permissions).
fn replace_file(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    safeio::replace(path, contents, Mode::KeepExisting).map_err(|e| StoreError::Io {
        op: e.step,
        path: e.path,
        source: e.source,
    })
}

/// True when `line` is a contact line whose address is `address`.
fn line_is_for(line: &str, address: &str) -> bool {
    match line.split_ascii_whitespace().next() {
        Some(first) if !first.starts_with('#') => same_address(first, address),
        _ => false,
    }
}

/// A line aligned like the shipped example (target at column 28, route at 60).
fn format_line(c: &NewContact) -> String {
    match &c.route {
        None => format!("{:<26} {}", c.address, c.target),
        Some(route) => format!("{:<26} {:<31} {}", c.address, c.target, route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(address: &str, target: &str, route: Option<&str>) -> NewContact {
        NewContact {
            address: address.into(),
            target: target.into(),
            route: route.map(Into::into),
        }
    }

    fn any_route(_: &str) -> bool {
        true
    }

    fn table_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn missing_file_is_an_error_that_says_to_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let errors = load(&path, &any_route).unwrap_err();
        assert_eq!(errors.len(), 1);
        let shown = errors[0].to_string();
        assert!(shown.starts_with(&path.display().to_string()), "{shown}");
        assert!(shown.contains("create an empty file"), "{shown}");

        let err = add_contacts(&path, &[contact("a@b.example", "a@c.example", None)]);
        assert!(matches!(err, Err(StoreError::Missing { .. })), "{err:?}");
        assert!(!path.exists(), "the writer must not create the table");
    }

    #[test]
    fn shipped_example_table_is_valid() {
        // config/contacts must work with the example relay.toml's routes.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/contacts");
        let table = load(&path, &|r| matches!(r, "onprem" | "cloud" | "internet")).unwrap();
        assert_eq!(table.len(), 3);
        let m = table.lookup("bob.smith+x@CORP.example", "+").unwrap();
        assert_eq!(m.rewritten, "Bob.Smith+x@tenant.cloud.example");
    }

    #[test]
    fn load_reports_non_utf8_line() {
        let (_dir, path) = table_file("");
        fs::write(
            &path,
            b"a@b.example a@c.example\nb@b.example b\xff@c.example\n",
        )
        .unwrap();
        let errors = load(&path, &any_route).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].message.contains("UTF-8"));
    }

    #[test]
    fn add_appends_replaces_and_keeps_other_lines() {
        let original = "# header comment\n\
                        \n\
                        Old@Corp.example   old@tenant.example   # note\n\
                        keep@corp.example  keep@tenant.example\n\
                        broken line with too many fields\n";
        let (_dir, path) = table_file(original);
        add_contacts(
            &path,
            &[
                contact("old@corp.example", "new@tenant.example", Some("cloud-eu")),
                contact("fresh@corp.example", "fresh@tenant.example", None),
            ],
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "# header comment",
                "",
                "old@corp.example           new@tenant.example              cloud-eu",
                "keep@corp.example  keep@tenant.example",
                "broken line with too many fields",
                "fresh@corp.example         fresh@tenant.example",
            ]
        );
    }

    #[test]
    fn add_collapses_duplicate_lines_for_the_address() {
        let (_dir, path) = table_file("a@x.example t1@y.example\nA@X.example t2@y.example\n");
        add_contacts(&path, &[contact("a@x.example", "t3@y.example", None)]).unwrap();
        let table = load(&path, &any_route).unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(table.get("a@x.example").unwrap().target, "t3@y.example");
    }

    #[test]
    fn add_rejects_bad_input_without_touching_the_file() {
        let (_dir, path) = table_file("a@x.example t@y.example\n");
        let before = fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        for bad in [
            contact("no-at", "t@y.example", None),
            contact("a@x.example", "t@@y.example", None),
            contact("a@x.example", "t@y.example", Some("two words")),
            contact("a@x.example", "t@y.example", Some("#x")),
        ] {
            assert!(
                add_contacts(&path, std::slice::from_ref(&bad)).is_err(),
                "{bad:?}"
            );
        }
        let after = fs::metadata(&path).unwrap();
        assert_eq!(before.ino(), after.ino(), "file must not be replaced");
    }

    #[test]
    fn remove_counts_and_keeps_the_rest() {
        let (_dir, path) =
            table_file("# c\na@x.example t@y.example\nb@x.example u@y.example # b\n");
        let n = remove_contacts(&path, &["B@X.EXAMPLE", "nobody@x.example"]).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# c\na@x.example t@y.example\n"
        );
        assert_eq!(remove_contacts(&path, &["nobody@x.example"]).unwrap(), 0);
    }

    #[test]
    fn unchanged_table_is_not_rewritten() {
        use std::os::unix::fs::MetadataExt;
        let (_dir, path) = table_file("a@x.example t@y.example");
        let ino = fs::metadata(&path).unwrap().ino();
        assert_eq!(remove_contacts(&path, &["z@x.example"]).unwrap(), 0);
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino);
        // A changed one is a new inode (renamed in), with the mode kept.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        add_contacts(&path, &[contact("b@x.example", "u@y.example", None)]).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_ne!(meta.ino(), ino);
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        // The file without a final newline got one; no temp files left behind.
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "a@x.example t@y.example\nb@x.example                u@y.example\n"
        );
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    }

    #[test]
    fn symlinked_table_stays_a_symlink() {
        let (dir, real) = table_file("");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        add_contacts(&link, &[contact("a@x.example", "t@y.example", None)]).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(load(&real, &any_route).unwrap().len(), 1);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let (_dir, path) = table_file("# two writers\n");
        let writer = |prefix: &'static str| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let c = contact(
                        &format!("{prefix}{i}@corp.example"),
                        &format!("{prefix}{i}@tenant.example"),
                        None,
                    );
                    add_contacts(&path, &[c]).unwrap();
                }
            })
        };
        let (a, b) = (writer("a"), writer("b"));
        a.join().unwrap();
        b.join().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 401, "header + 400 contacts");
        let table = load(&path, &any_route).unwrap();
        assert_eq!(table.len(), 400);
        for i in 0..200 {
            assert!(table.get(&format!("a{i}@corp.example")).is_some());
            assert!(table.get(&format!("b{i}@corp.example")).is_some());
        }
    }
}
