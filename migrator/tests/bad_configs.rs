//! Broken `migrator.toml` files, one per mistake, each refused with the right
//! message at the right line (as the relay's `tests/bad_configs.rs`).
//!
//! Each file under `tests/bad_configs/` starts with `# expect: LINE: FRAGMENT`:
//! loading it must fail with exactly one error that reads `FILE:LINE: ...FRAGMENT...`
//! (line 0 = the file as a whole), as `coexist-migrator` prints it. Exactly one,
//! so a mistake does not cascade into noise. The shipped `config/migrator.toml`
//! must load cleanly.

use migrator::config::{Auth, Config, Security};
use std::path::{Path, PathBuf};

fn bad_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

/// The `(line, fragment)` of a file's `# expect: LINE: FRAGMENT` first line.
fn expectation(path: &Path) -> (usize, String) {
    let text = std::fs::read_to_string(path).expect("readable test file");
    let first = text.lines().next().unwrap_or_default();
    let rest = first.strip_prefix("# expect: ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be '# expect: LINE: FRAGMENT'",
            path.display()
        )
    });
    let (line, fragment) = rest
        .split_once(": ")
        .unwrap_or_else(|| panic!("{}: expected '# expect: LINE: FRAGMENT'", path.display()));
    let line = line
        .parse()
        .unwrap_or_else(|_| panic!("{}: '{line}' is not a line number", path.display()));
    (line, fragment.to_string())
}

#[test]
fn every_bad_config_is_refused_with_its_error() {
    let files = bad_configs();
    assert!(files.len() >= 15, "only {} bad configs", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let (line, fragment) = expectation(path);
        let prefix = format!("{}:{line}: ", path.display());
        match Config::load(path) {
            Ok(_) => failures.push(format!("{}: loaded, expected an error", path.display())),
            Err(errors) => {
                let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let matches = rendered.len() == 1
                    && rendered[0].starts_with(&prefix)
                    && rendered[0].contains(&fragment);
                if !matches {
                    failures.push(format!(
                        "{}: wanted one error {prefix}...{fragment}...\n  got: {rendered:#?}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_missing_file_is_one_error_at_line_0() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs/no-such-file");
    let errors = Config::load(&path).expect_err("no file");
    assert_eq!(errors.len(), 1);
    let e = errors[0].to_string();
    assert!(
        e.starts_with(&format!("{}:0: cannot read:", path.display())),
        "{e}"
    );
}

#[test]
fn shipped_directory_example_loads_cleanly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/ldap/migrator.toml");
    let config = Config::load(&path).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!(
            "config/ldap/migrator.toml has errors:\n{}",
            lines.join("\n")
        )
    });
    let migrator::config::DirectorySource::Ldap(ldap) = &config.directory else {
        panic!("config/ldap/migrator.toml must use the directory");
    };
    assert_eq!(
        ldap.contacts_base.as_deref(),
        Some("ou=Cloud Contacts,dc=corp,dc=example")
    );
    assert_eq!(config.default_quota, None);
}

#[test]
fn shipped_config_loads_cleanly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/migrator.toml");
    let config = Config::load(&path).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("shipped config has errors:\n{}", lines.join("\n"))
    });
    let folder = path.parent().expect("config folder");
    assert_eq!(config.users, folder.join("users.csv"));
    assert_eq!(config.routing.contacts, folder.join("contacts"));
    assert_eq!(config.source.security, Security::Implicit);
    assert_eq!(config.source.auth, Auth::Master);
    assert_eq!(config.target.auth, Auth::Authzid);
    assert_eq!(config.target.port, 10993);
    assert_eq!(config.migration.state_dir, folder.join("state"));
    assert_eq!(config.migration.parallel, 4);
}
