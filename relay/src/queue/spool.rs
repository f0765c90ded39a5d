//! STUB: the durable spool. Implemented separately.
