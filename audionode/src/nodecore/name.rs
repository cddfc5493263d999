//! A source's display name, held inline (no allocation: it travels in
//! events and stats rows on the mixing thread) and length-limited.
//!
//! Names come from the sender (RTCP SDES NAME, or CNAME when no NAME is
//! sent) or from the operator. Control characters are removed and the
//! name is cut at [`MAX_NAME_BYTES`] on a character boundary; wherever a
//! name is shown it is escaped for that place (JSON, HTML, Prometheus
//! labels, the event log's quoted `name="…"`).

use std::fmt;

/// Longest name kept, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// A source name (possibly empty: no name).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceName {
    bytes: [u8; MAX_NAME_BYTES],
    len: u8,
}

impl SourceName {
    /// No name.
    pub const EMPTY: SourceName = SourceName {
        bytes: [0; MAX_NAME_BYTES],
        len: 0,
    };

    /// The name `text` becomes: control characters dropped, surrounding
    /// white space trimmed, cut to [`MAX_NAME_BYTES`] on a character
    /// boundary.
    pub fn new(text: &str) -> Self {
        let mut name = Self::EMPTY;
        let mut len = 0;
        for c in text.trim().chars().filter(|c| !c.is_control()) {
            let n = c.len_utf8();
            if len + n > MAX_NAME_BYTES {
                break;
            }
            c.encode_utf8(&mut name.bytes[len..len + n]);
            len += n;
        }
        // Trailing white space left by a cut.
        while len > 0 && name.bytes[len - 1] == b' ' {
            len -= 1;
        }
        name.len = len as u8;
        name
    }

    /// From bytes that should be UTF-8 (RTCP SDES items); invalid
    /// sequences become U+FFFD, without allocating.
    pub fn from_utf8_lossy(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::new(text),
            Err(e) => Self::new(std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("")),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether there is no name.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The name with `"` and `\` escaped, for a quoted field of a log line.
    pub fn escaped(&self) -> Escaped<'_> {
        Escaped(self.as_str())
    }
}

impl fmt::Debug for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for SourceName {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// A name escaped for a double-quoted log field.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cleans() {
        assert_eq!(SourceName::new("  bass \n").as_str(), "bass");
        assert_eq!(SourceName::new("a\u{7}b\u{1b}[31m").as_str(), "ab[31m");
        let long = "é".repeat(40); // 80 bytes
        let cut = SourceName::new(&long);
        assert_eq!(cut.as_str(), "é".repeat(32));
        assert!(SourceName::new("   ").is_empty());
        assert_eq!(SourceName::from_utf8_lossy(b"ok\xff\xfe").as_str(), "ok");
        assert_eq!(
            SourceName::new(r#"say "hi" \o/"#).escaped().to_string(),
            r#"say \"hi\" \\o/"#
        );
    }
}
