//! One `migrator.toml` builder for the migrator's end-to-end tests: the set-up
//! most of them share (users in `users.csv`, the relay's contacts table, the
//! source read as the master user, the target written with `authzid`, both
//! trusting the test CA, checkpoints in `state`), changed key by key where a
//! test needs something else, then written into the test's folder with the
//! files it names.

use crate::dovecot::MASTER;
use std::path::Path;

/// The users every default set-up has: two enabled, one disabled.
pub const USERS_CSV: &str = "address,display_name,target,quota,enabled\n\
     alice@corp.example,Alice,,,true\n\
     bob@corp.example,Bob,,,true\n\
     carol@corp.example,Carol,,,false\n";

/// A `migrator.toml` under construction: each section an ordered list of
/// `key = value` lines (values as TOML text).
#[derive(Debug, Clone)]
pub struct MigratorConfig {
    sections: Vec<(String, Vec<(String, String)>)>,
    files: Vec<(String, String)>,
}

/// `text` as a TOML basic string.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl MigratorConfig {
    /// The shared set-up between the IMAP servers at `source` and `target`.
    pub fn new(source: &str, target: &str) -> MigratorConfig {
        let s = |v: &str| quoted(v);
        let side = |url: &str, auth: &str| {
            vec![
                ("url".to_string(), s(url)),
                ("auth".to_string(), s(auth)),
                ("master_user".to_string(), s(MASTER.0)),
                ("password_file".to_string(), String::new()),
                ("ca".to_string(), s("ca.pem")),
            ]
        };
        let mut source = side(source, "master");
        source[3].1 = s("source.password");
        let mut target = side(target, "authzid");
        target[3].1 = s("target.password");
        let master = format!("{}\n", MASTER.1);
        MigratorConfig {
            sections: vec![
                ("directory".into(), vec![("users".into(), s("users.csv"))]),
                (
                    "routing".into(),
                    vec![
                        ("contacts".into(), s("contacts")),
                        ("target_template".into(), s("{local}@tenant.cloud.example")),
                    ],
                ),
                ("source".into(), source),
                ("target".into(), target),
                ("migration".into(), vec![("state_dir".into(), s("state"))]),
            ],
            files: vec![
                ("users.csv".into(), USERS_CSV.into()),
                ("source.password".into(), master.clone()),
                ("target.password".into(), master),
            ],
        }
    }

    /// Sets `key` in `[section]` to the TOML `value` (added at the end of the
    /// section, which is added when missing).
    pub fn raw(mut self, section: &str, key: &str, value: &str) -> MigratorConfig {
        let lines = match self.sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, lines)) => lines,
            None => {
                self.sections.push((section.into(), Vec::new()));
                &mut self.sections.last_mut().expect("just pushed").1
            }
        };
        match lines.iter_mut().find(|(k, _)| k == key) {
            Some(line) => line.1 = value.into(),
            None => lines.push((key.into(), value.into())),
        }
        self
    }

    /// Sets `key` in `[section]` to the string `value`.
    pub fn set(self, section: &str, key: &str, value: &str) -> MigratorConfig {
        self.raw(section, key, &quoted(value))
    }

    /// Removes `key` from `[section]`.
    pub fn unset(mut self, section: &str, key: &str) -> MigratorConfig {
        if let Some((_, lines)) = self.sections.iter_mut().find(|(s, _)| s == section) {
            lines.retain(|(k, _)| k != key);
        }
        self
    }

    /// Calendars and contacts over DAV: `dav_url` and `dav_home` on both
    /// sides (the admin reaches the user by path, as on Radicale with a
    /// rights file) and every content type.
    pub fn dav(self, source_dav: &str, target_dav: &str) -> MigratorConfig {
        self.set("source", "dav_url", source_dav)
            .set("source", "dav_home", "/{address}/")
            .set("target", "dav_url", target_dav)
            .set("target", "dav_home", "/{target}/")
            .raw(
                "migration",
                "content",
                r#"["mail", "calendar", "contacts"]"#,
            )
    }

    /// Writes `contents` to `name` in the folder too (replacing a default).
    pub fn file(mut self, name: &str, contents: &str) -> MigratorConfig {
        self.files.retain(|(n, _)| n != name);
        self.files.push((name.into(), contents.into()));
        self
    }

    /// The `users.csv` rows after the header.
    pub fn users(self, rows: &str) -> MigratorConfig {
        self.file(
            "users.csv",
            &format!("address,display_name,target,quota,enabled\n{rows}"),
        )
    }

    /// The `migrator.toml` text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (section, lines) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            for (k, v) in lines {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
        }
        out
    }

    /// Writes `migrator.toml`, the files it names, `ca.pem` (`ca_pem`) and an
    /// empty contacts table (unless one is there: a test may rewrite the
    /// config between runs) into `dir`; returns the config's path.
    pub fn write(&self, dir: &Path, ca_pem: &str) -> std::path::PathBuf {
        std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
        if !dir.join("contacts").exists() {
            std::fs::write(dir.join("contacts"), "# address target [route]\n").unwrap();
        }
        for (name, contents) in &self.files {
            std::fs::write(dir.join(name), contents).unwrap();
        }
        let path = dir.join("migrator.toml");
        std::fs::write(&path, self.render()).unwrap();
        path
    }
}
