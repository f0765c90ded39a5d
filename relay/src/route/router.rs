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
