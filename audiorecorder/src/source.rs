//! Which sender the UDP receiver listens to: the one pinned with `--source`,
//! or else the first one heard. Datagrams from anyone else are counted, and
//! warned about at most once per [`WARN_EVERY`] with the count since.
//!
//! Sans-IO: the caller passes the sender's address and `now`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Least time between two warnings about other senders.
pub const WARN_EVERY: Duration = Duration::from_secs(5);

/// A `--source` value: a full address, or an IP with any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Exactly this address and port.
    Addr(SocketAddr),
    /// Any port of this IP.
    Ip(IpAddr),
}

impl std::str::FromStr for Pin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Pin::Addr(addr));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Pin::Ip(ip));
        }
        Err(format!("--source {s:?} is not an IP address or IP:PORT"))
    }
}

impl Pin {
    fn matches(&self, from: SocketAddr) -> bool {
        match self {
            Pin::Addr(a) => *a == from,
            Pin::Ip(ip) => *ip == from.ip(),
        }
    }
}

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the accepted sender; `first` when this locked onto it.
    Accept {
        /// This datagram locked the filter onto its sender.
        first: bool,
    },
    /// From another sender: drop it. `warn` carries the number of such
    /// datagrams since the last warning when one is due now.
    Foreign {
        /// Datagrams from other senders to report now, if a warning is due.
        warn: Option<u64>,
    },
}

/// The sender filter; see the module documentation.
#[derive(Debug, Clone)]
pub struct SourceFilter {
    pin: Option<Pin>,
    locked: Option<SocketAddr>,
    last_warn: Option<Instant>,
    unreported: u64,
}

impl SourceFilter {
    /// A filter pinned to `pin`, or locking onto the first sender.
    pub fn new(pin: Option<Pin>) -> Self {
        Self {
            pin,
            locked: None,
            last_warn: None,
            unreported: 0,
        }
    }

    /// The sender being listened to, once known.
    pub fn sender(&self) -> Option<SocketAddr> {
        self.locked
    }

    /// Classifies a datagram from `from` received at `now`.
    pub fn check(&mut self, from: SocketAddr, now: Instant) -> Verdict {
        let accepted = match (self.locked, self.pin) {
            (Some(locked), _) => locked == from,
            (None, Some(pin)) => pin.matches(from),
            (None, None) => true,
        };
        if accepted {
            let first = self.locked.is_none();
            self.locked = Some(from);
            return Verdict::Accept { first };
        }
        self.unreported += 1;
        let due = self
            .last_warn
            .is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY);
        if !due {
            return Verdict::Foreign { warn: None };
        }
        self.last_warn = Some(now);
        let n = std::mem::take(&mut self.unreported);
        Verdict::Foreign { warn: Some(n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_onto_first_sender_and_rate_limits_warnings() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(None);
        assert_eq!(
            f.check(addr("10.0.0.1:5000"), t0),
            Verdict::Accept { first: true }
        );
        assert_eq!(
            f.check(addr("10.0.0.1:5000"), t0),
            Verdict::Accept { first: false }
        );
        assert_eq!(
            f.check(addr("10.0.0.2:5000"), t0),
            Verdict::Foreign { warn: Some(1) }
        );
        assert_eq!(
            f.check(addr("10.0.0.1:5001"), t0),
            Verdict::Foreign { warn: None }
        );
        let later = t0 + Duration::from_secs(4);
        assert_eq!(
            f.check(addr("10.0.0.2:5000"), later),
            Verdict::Foreign { warn: None }
        );
        let later = t0 + WARN_EVERY;
        assert_eq!(
            f.check(addr("10.0.0.2:5000"), later),
            Verdict::Foreign { warn: Some(3) }
        );
        assert_eq!(f.sender(), Some(addr("10.0.0.1:5000")));
    }

    #[test]
    fn pinned_source_ignores_earlier_senders() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(Some("10.0.0.9:7000".parse().unwrap()));
        assert!(matches!(
            f.check(addr("10.0.0.1:5000"), t0),
            Verdict::Foreign { .. }
        ));
        assert_eq!(
            f.check(addr("10.0.0.9:7000"), t0),
            Verdict::Accept { first: true }
        );

        let mut f = SourceFilter::new(Some("10.0.0.9".parse().unwrap()));
        assert_eq!(
            f.check(addr("10.0.0.9:1234"), t0),
            Verdict::Accept { first: true }
        );
        // Locked to that port now.
        assert!(matches!(
            f.check(addr("10.0.0.9:1235"), t0),
            Verdict::Foreign { .. }
        ));
    }

    #[test]
    fn pin_parse_errors() {
        assert!("nonsense".parse::<Pin>().is_err());
        assert_eq!("::1".parse::<Pin>(), Ok(Pin::Ip("::1".parse().unwrap())));
    }
}
