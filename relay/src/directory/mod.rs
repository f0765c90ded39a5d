//! The directory (LDAP / Active Directory) as a routing source, shared by the
//! relay (which mirrors it) and the migrator (which reads users and writes the
//! forwarding contacts).
//!
//! - [`client`]: one connection: `url` failover, verified TLS (ldaps://,
//!   StartTLS), simple bind with the password file, paged search, errors in
//!   the server's words.
//! - [`model`]: Exchange's object model read from entries (users, contacts,
//!   `altRecipient`, `targetAddress`, proxy addresses), the routing decision
//!   over them, and the snapshot in the contacts-table format.
//! - [`index`]: the same decision kept up to date one changed entry at a
//!   time (the relay's mirror).
//! - [`survey`]: one full look (bind, search, counts, sync mode) for
//!   `check --online` and `doctor`.
//!
//! The relay's live mirror (initial load, RFC 4533 changes, cache, outage
//! rules) is [`crate::route::mirror`].

pub mod client;
pub mod index;
pub mod model;
pub mod survey;

pub use survey::{survey, Survey};
