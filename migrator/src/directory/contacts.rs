//! The forwarding contacts of the file source: the relay's contacts table, the
//! migrator's side of the contract with the relay.
//!
//! Writing goes through `relay::route::store` (flock'd read-modify-write, temp
//! file + fsync + rename + folder fsync), so the relay never sees a half-written
//! table and an operator's script running at the same time loses nothing. When a
//! `relay.toml` sits beside the table, route names are checked against its
//! `[route.NAME]` tables before anything is written: a contact naming an unknown
//! route would make the relay refuse the whole new table.

use crate::config::Routing;
use relay::route::store::{self, NewContact, StoreError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Why the contacts table could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContactsError {
    /// The writer failed; the table is unchanged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The table has errors (the relay would not load it either).
    #[error("{}", .0.join("\n"))]
    Table(Vec<String>),
    /// The route named in `[routing] route` is not a route of the relay.
    #[error("{config}: routing.route {route:?} is not a [route.NAME] of the relay; routes there: {known}")]
    UnknownRoute {
        /// The relay configuration consulted.
        config: PathBuf,
        /// The route asked for.
        route: String,
        /// The routes that exist.
        known: String,
    },
}

/// The relay's route names, when a `relay.toml` is beside the table and loads.
fn relay_routes(table: &Path) -> Option<(PathBuf, BTreeSet<String>)> {
    let config = table.parent()?.join("relay.toml");
    let relay = relay::config::Config::load(&config).ok()?;
    Some((config, relay.routes.keys().cloned().collect()))
}

/// The addresses that have a contact now (lower-cased).
pub fn current(routing: &Routing) -> Result<BTreeSet<String>, ContactsError> {
    let table = store::load(&routing.contacts, &|_| true)
        .map_err(|errors| ContactsError::Table(errors.iter().map(ToString::to_string).collect()))?;
    Ok(table
        .iter()
        .map(|c| c.address.to_ascii_lowercase())
        .collect())
}

/// The contact target for `address`, if it has one.
pub fn lookup(routing: &Routing, address: &str) -> Result<Option<String>, ContactsError> {
    let table = store::load(&routing.contacts, &|_| true)
        .map_err(|errors| ContactsError::Table(errors.iter().map(ToString::to_string).collect()))?;
    Ok(table.get(address).map(|c| c.target.to_string()))
}

/// Checks that the configured route exists in the relay (when the relay's config
/// can be found); call before any user is flipped.
pub fn check_route(routing: &Routing) -> Result<(), ContactsError> {
    let Some(route) = &routing.route else {
        return Ok(());
    };
    if let Some((config, routes)) = relay_routes(&routing.contacts) {
        if !routes.contains(route) {
            return Err(ContactsError::UnknownRoute {
                config,
                route: route.clone(),
                known: routes.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(())
}

/// Writes (or replaces) the contact for `address`: from now on the relay sends
/// their mail to `target`.
pub fn add(routing: &Routing, address: &str, target: &str) -> Result<(), ContactsError> {
    check_route(routing)?;
    store::add_contacts(
        &routing.contacts,
        &[NewContact {
            address: address.to_string(),
            target: target.to_string(),
            route: routing.route.clone(),
        }],
    )?;
    Ok(())
}

/// Removes the contact for `address`; returns whether there was one.
pub fn remove(routing: &Routing, address: &str) -> Result<bool, ContactsError> {
    Ok(store::remove_contacts(&routing.contacts, &[address])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(dir: &Path) -> Routing {
        Routing {
            contacts: dir.join("contacts"),
            target_template: "{local}@tenant.example".into(),
            route: None,
        }
    }

    #[test]
    fn add_and_remove_keep_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let r = routing(dir.path());
        std::fs::write(&r.contacts, "# keep me\nx@corp.example x@tenant.example\n").unwrap();
        add(&r, "alice@corp.example", "alice@tenant.example").unwrap();
        assert_eq!(
            lookup(&r, "ALICE@corp.example").unwrap().as_deref(),
            Some("alice@tenant.example")
        );
        assert_eq!(current(&r).unwrap().len(), 2);
        assert!(remove(&r, "alice@corp.example").unwrap());
        assert!(!remove(&r, "alice@corp.example").unwrap());
        assert_eq!(
            std::fs::read_to_string(&r.contacts).unwrap(),
            "# keep me\nx@corp.example x@tenant.example\n"
        );
    }

    #[test]
    fn unknown_route_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = routing(dir.path());
        std::fs::write(&r.contacts, "").unwrap();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/relay.toml");
        let relay_toml = std::fs::read_to_string(shipped).unwrap();
        std::fs::write(dir.path().join("relay.toml"), relay_toml).unwrap();
        r.route = Some("nowhere".into());
        let err = add(&r, "a@corp.example", "a@t.example").unwrap_err();
        assert!(
            err.to_string()
                .contains("routing.route \"nowhere\" is not a [route.NAME]"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&r.contacts).unwrap(), "");
    }
}
