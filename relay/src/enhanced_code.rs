//! RFC 3463 enhanced status codes (`class.subject.detail`), one type for the
//! replies the relay sends and the ones next hops send it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An enhanced status code, e.g. `5.1.1` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// The subject (RFC 3463 §3: 1 addressing, 4 network, 7 security, …).
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// `class.subject.detail`.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// `X.0.0` for a basic reply code's class, for replies that carry none
    /// (RFC 3463 §3.1).
    pub fn for_reply_code(code: u16) -> Self {
        match code {
            200..=299 => EnhancedCode::new(2, 0, 0),
            500..=599 => EnhancedCode::new(5, 0, 0),
            _ => EnhancedCode::new(4, 0, 0),
        }
    }

    /// 5.x.x.
    pub fn is_permanent(self) -> bool {
        self.class == 5
    }

    /// The same code as a temporary one (`5.7.1` → `4.7.1`), for a failure the
    /// relay retries although the next hop said 5xx (RFC 3463 §3.1: the class
    /// must agree with what happens to the message).
    pub fn as_temporary(self) -> Self {
        EnhancedCode {
            class: if self.class == 5 { 4 } else { self.class },
            ..self
        }
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Compares with the text form (`status == "5.1.1"`).
impl PartialEq<&str> for EnhancedCode {
    fn eq(&self, other: &&str) -> bool {
        other.parse::<EnhancedCode>().is_ok_and(|o| o == *self)
    }
}

/// Why a text is not an enhanced status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an enhanced status code (class.subject.detail, RFC 3463)")]
pub struct NotACode(pub String);

impl FromStr for EnhancedCode {
    type Err = NotACode;

    /// `2|4|5 . 1-3 digits . 1-3 digits` (RFC 3463 §2).
    fn from_str(s: &str) -> Result<Self, NotACode> {
        let bad = || NotACode(s.to_string());
        let mut parts = s.split('.');
        let (Some(c), Some(sub), Some(det), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let number = |p: &str| {
            (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u16>().ok())
                .flatten()
        };
        let class = match c {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return Err(bad()),
        };
        Ok(EnhancedCode::new(
            class,
            number(sub).ok_or_else(bad)?,
            number(det).ok_or_else(bad)?,
        ))
    }
}

/// Stored as its text, `"5.1.1"`, so spool files stay readable.
impl Serialize for EnhancedCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EnhancedCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_refuses() {
        let c: EnhancedCode = "5.1.10".parse().unwrap();
        assert_eq!(c, EnhancedCode::new(5, 1, 10));
        assert_eq!(c.to_string(), "5.1.10");
        assert_eq!(c.as_temporary().to_string(), "4.1.10");
        for bad in ["", "5.1", "3.0.0", "5.1.1.1", "5.a.1", "5.1234.1", "5..1"] {
            assert!(bad.parse::<EnhancedCode>().is_err(), "{bad}");
        }
        assert_eq!(EnhancedCode::for_reply_code(554).to_string(), "5.0.0");
        assert_eq!(EnhancedCode::for_reply_code(421).to_string(), "4.0.0");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"5.1.10\"");
        assert_eq!(serde_json::from_str::<EnhancedCode>(&json).unwrap(), c);
    }
}
