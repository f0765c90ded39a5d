mod decoder;
mod encoder;
pub mod params;

pub use self::{decoder::BrotliDecoder, encoder::BrotliEncoder};
