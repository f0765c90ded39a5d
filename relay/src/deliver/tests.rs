//! Delivery tests against real peers.
