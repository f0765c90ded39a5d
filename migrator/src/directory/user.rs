//! A user of the directory: the vocabulary every directory source returns.

use relay::address::same_address;

/// One user of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The on-premises address, as written in the directory.
    pub address: String,
    /// Display name (for the review only).
    pub display_name: String,
    /// The contact address; `None` = `routing.target_template`.
    pub target: Option<String>,
    /// Destination quota in bytes, when the directory knows it; used when the
    /// destination does not answer GETQUOTAROOT.
    pub quota: Option<u64>,
    /// Whether the account may be migrated.
    pub enabled: bool,
}

/// Finds `address` (case-insensitively).
pub fn find<'u>(users: &'u [User], address: &str) -> Option<&'u User> {
    users.iter().find(|u| same_address(&u.address, address))
}
