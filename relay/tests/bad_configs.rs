//! Broken `relay.toml` files, one per mistake, each refused with the right message
//! at the right line (chasquid's `t-20-bad_configs`, in Rust).
//!
//! Each file under `tests/bad_configs/` starts with `# expect: LINE: FRAGMENT`:
//! loading it must fail with exactly one error that reads `FILE:LINE: ...FRAGMENT...`
//! (line 0 = the file as a whole). Exactly one, so a mistake does not cascade into
//! noise. The shipped `config/relay.toml` must load cleanly.

use relay::config::Config;
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
fn shipped_directory_example_loads_cleanly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/ldap/relay.toml");
    let config = Config::load(&path).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("config/ldap/relay.toml has errors:\n{}", lines.join("\n"))
    });
    let relay::config::RoutingSource::Ldap(ldap) = &config.routing.source else {
        panic!("config/ldap/relay.toml must use the directory");
    };
    assert_eq!(ldap.urls[0].connect_url(), "ldap://127.0.0.1:3389");
    assert!(ldap.starttls && !ldap.insecure);
    assert_eq!(ldap.base, "dc=corp,dc=example");
    assert_eq!(ldap.refresh, std::time::Duration::from_secs(300));
}

#[test]
fn shipped_config_loads_cleanly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/relay.toml");
    let config = Config::load(&path).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("shipped config has errors:\n{}", lines.join("\n"))
    });
    let folder = path.parent().expect("config folder");
    assert_eq!(config.server.hostname, "relay.corp.example");
    assert_eq!(config.server.spool_dir, folder.join("spool"));
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["smtp", "smtps"]);
    assert_eq!(config.listeners[0].bind, "127.0.0.1:2525".parse().unwrap());
    assert_eq!(config.listeners[1].bind, "127.0.0.1:4465".parse().unwrap());
    let tls = config.tls.as_ref().expect("[tls] in the shipped config");
    assert_eq!(tls.cert, folder.join("../certs/relay.crt"));
    assert_eq!(config.relay.accepted_domains, ["corp.example"]);
    assert_eq!(config.routing.contacts, folder.join("contacts"));
    assert_eq!(config.routes["onprem"].smarthost, ["127.0.0.1:2526"]);
    assert_eq!(config.routes["cloud"].smarthost, ["127.0.0.1:2527"]);
    assert!(config.routes["internet"].mx);
    assert_eq!(config.metrics.bind, "127.0.0.1:9125".parse().unwrap());
}
