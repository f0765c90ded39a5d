//! The directory: which users exist and may move, and where a user's
//! forwarding contact is written (the flip) and removed (the rollback).
//!
//! [`Directory`] is what the rest of the migrator talks to, whatever the source.
//! The source is a file pair (DESIGN.md `directory.source = "file"`):
//! `users.csv` ([`csv`]) and the relay's contacts table ([`contacts`]); or
//! LDAP / Active Directory (`"ldap"`, [`ldap`]): users and their forwarding
//! contacts in the directory itself. [`user`] is what every source returns.

pub mod contacts;
pub mod csv;
pub mod ldap;
pub mod user;

pub use user::User;

use crate::config::{expand, Config, DirectorySource, Routing};
use contacts::ContactsError;
use csv::CsvError;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Why the directory could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// `users.csv` is unreadable or has bad rows.
    #[error(transparent)]
    Users(#[from] CsvError),
    /// The contacts table is unreadable, broken, or could not be written.
    #[error(transparent)]
    Contacts(#[from] ContactsError),
    /// A user named on the command line is not in the directory.
    #[error("{name}: not in the directory {}", users.display())]
    UnknownUser {
        /// The name as given.
        name: String,
        /// The directory that was searched.
        users: PathBuf,
    },
    /// The LDAP directory could not be reached, or refused a read or a write
    /// (in the server's words).
    #[error(transparent)]
    Ldap(#[from] relay::directory::client::DirectoryError),
    /// A user named on the command line has no entry with that `mail`.
    #[error("{name}: no user with that mail under {base}")]
    NotInLdap {
        /// The name as given.
        name: String,
        /// `[ldap] base`.
        base: String,
    },
    /// `[routing] route` with the directory needs an attribute to write it to.
    #[error("routing.route {0:?} needs [ldap] route_attribute (the contact attribute the relay reads the route from)")]
    RouteWithoutAttribute(String),
}

/// Where the users and their contacts live.
#[derive(Debug, Clone)]
enum Source {
    /// `users.csv` and the relay's contacts table.
    File {
        /// The directory export.
        users: PathBuf,
    },
    /// LDAP / Active Directory.
    Ldap(ldap::LdapDirectory),
}

/// The users and their forwarding contacts.
#[derive(Debug, Clone)]
pub struct Directory {
    source: Source,
    /// The contacts table, the target template and the route for new contacts.
    routing: Routing,
}

impl Directory {
    /// The directory `config` names.
    pub fn new(config: &Config) -> Directory {
        let source = match &config.directory {
            DirectorySource::File => Source::File {
                users: config.users.clone(),
            },
            DirectorySource::Ldap(ldap) => Source::Ldap(ldap::LdapDirectory::new(
                ldap,
                config.default_quota,
                config.routing.route.clone(),
            )),
        };
        Directory {
            source,
            routing: config.routing.clone(),
        }
    }

    /// Every user, enabled or not.
    pub fn users(&self) -> Result<Vec<User>, DirectoryError> {
        match &self.source {
            Source::File { users } => Ok(csv::load(users)?),
            Source::Ldap(d) => Ok(d.users()?.into_iter().map(|u| u.user).collect()),
        }
    }

    /// The users named on the command line (case-insensitively), in that order.
    pub fn named(&self, names: &[String]) -> Result<Vec<User>, DirectoryError> {
        let users = self.users()?;
        names
            .iter()
            .map(|name| {
                user::find(&users, name)
                    .cloned()
                    .ok_or_else(|| self.unknown(name))
            })
            .collect()
    }

    /// The ready users: enabled, with no contact yet (a rolled-back user is
    /// ready again).
    pub fn ready(&self) -> Result<Vec<User>, DirectoryError> {
        if let Source::Ldap(d) = &self.source {
            return Ok(d
                .users()?
                .into_iter()
                .filter(ldap::DirUser::ready)
                .map(|u| u.user)
                .collect());
        }
        let users = self.users()?;
        let flipped = self.flipped()?;
        Ok(users
            .into_iter()
            .filter(|u| u.enabled && !flipped.contains(&u.address.to_ascii_lowercase()))
            .collect())
    }

    /// The addresses that have a contact now, lower-cased.
    pub fn flipped(&self) -> Result<BTreeSet<String>, DirectoryError> {
        match &self.source {
            Source::File { .. } => Ok(contacts::current(&self.routing)?),
            Source::Ldap(d) => Ok(d
                .users()?
                .into_iter()
                .filter(ldap::DirUser::flipped)
                .map(|u| u.user.address.to_ascii_lowercase())
                .collect()),
        }
    }

    /// The contact address for `user`: the directory's `target`, or the template.
    pub fn target_for(&self, user: &User) -> String {
        match &user.target {
            Some(t) => t.clone(),
            None => expand(&self.routing.target_template, &user.address, ""),
        }
    }

    /// Checks, before any user is flipped, that new contacts would route.
    pub fn check_route(&self) -> Result<(), DirectoryError> {
        match &self.source {
            Source::File { .. } => Ok(contacts::check_route(&self.routing)?),
            Source::Ldap(_) => match (&self.routing.route, self.route_attribute()) {
                (Some(route), false) => Err(DirectoryError::RouteWithoutAttribute(route.clone())),
                _ => Ok(()),
            },
        }
    }

    fn route_attribute(&self) -> bool {
        match &self.source {
            Source::Ldap(d) => d.has_route_attribute(),
            Source::File { .. } => false,
        }
    }

    /// Writes (or replaces) `user`'s contact: from now on the relay sends their
    /// mail to `target`.
    pub fn write_contact(&self, user: &User, target: &str) -> Result<(), DirectoryError> {
        match &self.source {
            Source::File { .. } => Ok(contacts::add(&self.routing, &user.address, target)?),
            Source::Ldap(d) => Ok(d.flip(user, target)?),
        }
    }

    /// Removes the contact of `address`; whether there was one.
    pub fn remove_contact(&self, address: &str) -> Result<bool, DirectoryError> {
        match &self.source {
            Source::File { .. } => Ok(contacts::remove(&self.routing, address)?),
            Source::Ldap(d) => Ok(d.unflip(address)?),
        }
    }

    fn unknown(&self, name: &str) -> DirectoryError {
        match &self.source {
            Source::File { users } => DirectoryError::UnknownUser {
                name: name.to_string(),
                users: users.clone(),
            },
            Source::Ldap(d) => DirectoryError::NotInLdap {
                name: name.to_string(),
                base: d.base().to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn directory(dir: &Path) -> Directory {
        std::fs::write(
            dir.join("users.csv"),
            "address,display_name,target,quota,enabled\n\
             alice@corp.example,Alice,,,true\n\
             bob@corp.example,Bob,bob@elsewhere.example,,true\n\
             carol@corp.example,Carol,,,false\n",
        )
        .unwrap();
        std::fs::write(dir.join("contacts"), "").unwrap();
        Directory {
            source: Source::File {
                users: dir.join("users.csv"),
            },
            routing: Routing {
                contacts: dir.join("contacts"),
                target_template: "{local}@tenant.example".into(),
                route: None,
            },
        }
    }

    #[test]
    fn ready_users_are_enabled_and_not_flipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = directory(dir.path());
        let ready: Vec<String> = d.ready().unwrap().into_iter().map(|u| u.address).collect();
        assert_eq!(ready, ["alice@corp.example", "bob@corp.example"]);
        let alice = &d.named(&["ALICE@corp.example".into()]).unwrap()[0];
        assert_eq!(d.target_for(alice), "alice@tenant.example");
        d.write_contact(alice, &d.target_for(alice)).unwrap();
        let ready: Vec<String> = d.ready().unwrap().into_iter().map(|u| u.address).collect();
        assert_eq!(ready, ["bob@corp.example"]);
        assert!(d.remove_contact("alice@corp.example").unwrap());
        assert_eq!(d.ready().unwrap().len(), 2, "rolled back: ready again");
    }

    #[test]
    fn the_directory_target_wins_over_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let d = directory(dir.path());
        let bob = &d.named(&["bob@corp.example".into()]).unwrap()[0];
        assert_eq!(d.target_for(bob), "bob@elsewhere.example");
    }

    #[test]
    fn an_unknown_name_says_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = directory(dir.path())
            .named(&["dave@corp.example".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("dave@corp.example: not in the directory ")
                && err.ends_with("users.csv"),
            "{err}"
        );
    }
}
