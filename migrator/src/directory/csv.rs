//! The directory export: `users.csv` with the header
//! `address,display_name,target,quota,enabled` (`target` and `quota` may be empty or
//! absent). Only enabled users can be migrated: a directory synchronised to the
//! cloud keeps accounts disabled until they are activated.

use super::user::User;
use relay::address::{check_address, same_address, AddressError};
use relay::config::units::{parse_size, UnitError};
use std::path::{Path, PathBuf};

/// Why `users.csv` could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The file cannot be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// A row is wrong; every bad row is listed.
    #[error("{}", .0.join("\n"))]
    Rows(Vec<String>),
}

#[derive(serde::Deserialize)]
struct Row {
    address: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    quota: String,
    #[serde(default)]
    enabled: String,
}

/// Reads the directory at `path`.
pub fn load(path: &Path) -> Result<Vec<User>, CsvError> {
    let reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(|source| CsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    parse(reader, path)
}

/// Parses CSV from any reader; `path` is for messages.
pub fn parse<R: std::io::Read>(
    mut reader: csv::Reader<R>,
    path: &Path,
) -> Result<Vec<User>, CsvError> {
    let mut users = Vec::new();
    let mut errors = Vec::new();
    let file = path.display();
    let headers = reader
        .headers()
        .map_err(|source| CsvError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .clone();
    for record in reader.records() {
        let parsed = record.and_then(|r| {
            let line = r.position().map_or(0, |p| p.line());
            r.deserialize::<Row>(Some(&headers)).map(|row| (line, row))
        });
        let (line, row) = match parsed {
            Ok(v) => v,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(format!("{file}:{line}: {e}"));
                continue;
            }
        };
        match user_of(row, &users) {
            Ok(user) => users.push(user),
            Err(what) => errors.push(format!("{file}:{line}: {what}")),
        }
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        Err(CsvError::Rows(errors))
    }
}

/// What is wrong with one row.
#[derive(Debug, thiserror::Error)]
enum BadRow {
    /// `address` is not `local@domain`.
    #[error("address {0:?}: {1}")]
    Address(String, AddressError),
    /// `target` is given but not `local@domain`.
    #[error("target {0:?}: {1}")]
    Target(String, AddressError),
    /// `quota` is not a size.
    #[error("quota: {0}")]
    Quota(UnitError),
    /// `enabled` is neither true nor false.
    #[error("enabled {0:?}: write true or false")]
    Enabled(String),
    /// An earlier row has the same address (case-insensitively).
    #[error("address {0:?} is listed twice")]
    Twice(String),
}

/// Checks one row against the users before it.
fn user_of(row: Row, before: &[User]) -> Result<User, BadRow> {
    check_address(&row.address).map_err(|e| BadRow::Address(row.address.clone(), e))?;
    let target = if row.target.is_empty() {
        None
    } else {
        check_address(&row.target).map_err(|e| BadRow::Target(row.target.clone(), e))?;
        Some(row.target)
    };
    let quota = if row.quota.is_empty() {
        None
    } else {
        Some(parse_size(&row.quota).map_err(BadRow::Quota)?)
    };
    let enabled = match row.enabled.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => true,
        "false" | "no" | "0" | "" => false,
        other => return Err(BadRow::Enabled(other.to_string())),
    };
    if before
        .iter()
        .any(|u| same_address(&u.address, &row.address))
    {
        return Err(BadRow::Twice(row.address));
    }
    Ok(User {
        address: row.address,
        display_name: row.display_name,
        target,
        quota,
        enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<User>, CsvError> {
        let r = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        parse(r, Path::new("users.csv"))
    }

    #[test]
    fn reads_users_with_optional_columns() {
        let users = read(
            "address,display_name,target,quota,enabled\n\
             alice@corp.example,Alice,,1GiB,true\n\
             bob@corp.example,\"Bob, Jr\",bob@t.example,,false\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].quota, Some(1 << 30));
        assert!(users[0].enabled && users[0].target.is_none());
        assert_eq!(users[1].display_name, "Bob, Jr");
        assert_eq!(users[1].target.as_deref(), Some("bob@t.example"));
        assert!(!users[1].enabled);
        assert!(crate::directory::user::find(&users, "ALICE@corp.example").is_some());
    }

    #[test]
    fn bad_rows_are_reported_with_lines() {
        let err = read(
            "address,display_name,target,quota,enabled\n\
             alice,Alice,,,true\n\
             bob@corp.example,Bob,,lots,true\n\
             carol@corp.example,Carol,,,maybe\n\
             BOB@corp.example,Bob,,,true\n",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(
            lines[0].starts_with("users.csv:2: address \"alice\""),
            "{err}"
        );
        assert!(lines[1].starts_with("users.csv:3: quota:"), "{err}");
        assert!(
            lines[2].starts_with("users.csv:4: enabled \"maybe\""),
            "{err}"
        );
    }
}
