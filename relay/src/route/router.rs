//! STUB: the routing decision. Implemented separately.

use crate::queue::envelope::RouteReason;

/// Where one recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Route name.
    pub route: String,
    /// Envelope recipient toward the next hop.
    pub rewritten: String,
    /// Why.
    pub reason: RouteReason,
}

use super::reload::Contacts;
use super::table::ContactsTable;
use crate::config::{RelayConfig, RoutingConfig};
use std::net::IpAddr;
use std::sync::Arc;

/// Why a recipient cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Not ours and the client may not relay.
    #[error("relay access denied")]
    RelayDenied,
    /// Not a usable address.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
}

/// STUB router.
pub struct Router {
    contacts: Arc<Contacts>,
}

impl Router {
    /// STUB.
    pub fn new(_relay: &RelayConfig, _routing: &RoutingConfig, contacts: Arc<Contacts>) -> Router {
        Router { contacts }
    }
    /// STUB.
    pub fn table(&self) -> Arc<ContactsTable> {
        self.contacts.current()
    }
    /// STUB.
    pub fn decide(
        &self,
        _table: &ContactsTable,
        address: &str,
        _client: IpAddr,
    ) -> Result<Decision, RouteError> {
        Ok(Decision {
            route: "onprem".into(),
            rewritten: address.into(),
            reason: RouteReason::AcceptedDomain,
        })
    }
}
