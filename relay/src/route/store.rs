//! STUB: contacts file reading and atomic writing. Implemented separately.
