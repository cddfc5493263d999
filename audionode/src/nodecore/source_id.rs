//! Who a source is: the address it sends from (the original format and TCP
//! sources, which carry no identity of their own) or its RTP SSRC (so an
//! RTP sender that changes port keeps its counters and settings).
//!
//! The text form is the source's id everywhere it is shown or addressed:
//! `ip:port` for an address, `ssrc:1a2b3c4d` (eight hex digits) for an
//! SSRC, in the event log, the control API and `/metrics`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A source's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceId {
    /// Identified by the address its packets come from.
    Addr(SocketAddr),
    /// Identified by its RTP synchronisation source.
    Ssrc(u32),
}

impl From<SocketAddr> for SourceId {
    fn from(addr: SocketAddr) -> Self {
        SourceId::Addr(addr)
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceId::Addr(a) => write!(f, "{a}"),
            SourceId::Ssrc(s) => write!(f, "ssrc:{s:08x}"),
        }
    }
}

/// Why a text is not a source id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSourceIdError;

impl fmt::Display for ParseSourceIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected ip:port or ssrc:XXXXXXXX")
    }
}

impl FromStr for SourceId {
    type Err = ParseSourceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(hex) = s.strip_prefix("ssrc:") {
            if hex.is_empty() || hex.len() > 8 {
                return Err(ParseSourceIdError);
            }
            return u32::from_str_radix(hex, 16)
                .map(SourceId::Ssrc)
                .map_err(|_| ParseSourceIdError);
        }
        s.parse()
            .map(SourceId::Addr)
            .map_err(|_| ParseSourceIdError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        for text in [
            "127.0.0.1:5000",
            "[::1]:4030",
            "ssrc:00c0ffee",
            "ssrc:ffffffff",
        ] {
            let id: SourceId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
        }
        assert_eq!("ssrc:C0FFEE".parse(), Ok(SourceId::Ssrc(0xc0ffee)));
        for bad in ["ssrc:", "ssrc:123456789", "ssrc:xyz", "127.0.0.1", ""] {
            assert!(bad.parse::<SourceId>().is_err(), "{bad}");
        }
    }
}
