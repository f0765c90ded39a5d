//! What an address is, and when two are the same: the relay's rules, used
//! as they are, so the migrator never writes a contact (or looks up a
//! password) by different rules than the relay routes by.

pub use relay::route::table::{check_address, same_address, AddressError};
