//! [`Secret`]: a client secret or an access token, which no log line, report,
//! state file, `status` output, panic message or `Debug` print may show.
//!
//! The only way to the bytes is [`Secret::expose`], called where they go on
//! the wire (the token request, the SASL initial response) and nowhere else.
//! The memory is wiped when the value is dropped.

use std::fmt;
use zeroize::Zeroizing;

/// What is printed instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// A secret string: redacted in `Debug` and `Display`, not serialisable,
/// zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: String) -> Secret {
        Secret(Zeroizing::new(value))
    }

    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_display_shows_the_secret() {
        let s = Secret::new("hunter2-very-secret".into());
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret([redacted]))");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
