//! STUB: the durable spool. Implemented separately.
use super::envelope::Envelope;
use std::path::Path;
use std::sync::Arc;

/// STUB
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// STUB
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
impl SpoolError {
    /// STUB
    pub fn is_disk_full(&self) -> bool {
        false
    }
}
/// STUB
pub struct Spool {}
impl Spool {
    /// STUB
    pub fn open(_dir: &Path) -> Result<(Arc<Spool>, Vec<Envelope>), SpoolError> {
        Ok((Arc::new(Spool {}), vec![]))
    }
    /// STUB
    pub fn new_id(&self) -> String {
        "STUB".into()
    }
    /// STUB
    pub async fn store(
        &self,
        envelope: Envelope,
        _header: Vec<u8>,
        _body: Vec<u8>,
    ) -> Result<Envelope, SpoolError> {
        Ok(envelope)
    }
}
