//! Which sender the UDP receiver listens to: the one pinned with `--source`,
//! or else the first one heard whose datagram decodes. Datagrams from anyone
//! else are counted, and warned about at most once per [`WARN_EVERY`] with
//! the count since.
//!
//! The lock is taken only by a datagram that decodes, so a stray or hostile
//! empty datagram that arrives before the stream cannot capture the
//! recorder; and it is released after `--source-timeout-ms` of silence from
//! the locked sender, so a sender that restarts on another port (or a new
//! one) is heard again without restarting the recorder.
//!
//! Sans-IO: the caller passes the sender's address and `now`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Least time between two warnings about other senders.
pub const WARN_EVERY: Duration = Duration::from_secs(5);

/// Default of `--source-timeout-ms`: silence after which the lock is released.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_millis(2000);

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
    /// Whether a datagram from `from` is from the pinned sender.
    pub(crate) fn matches(&self, from: SocketAddr) -> bool {
        match self {
            Pin::Addr(a) => *a == from,
            Pin::Ip(ip) => *ip == from.ip(),
        }
    }
}

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the locked sender, or (before any lock) from a sender that may
    /// take it: decode the datagram, and report it with
    /// [`SourceFilter::decoded`] if it decodes.
    Listen,
    /// From another sender: drop it. `warn` carries the number of such
    /// datagrams since the last warning when one is due now.
    Foreign {
        /// Datagrams from other senders to report now, if a warning is due.
        warn: Option<u64>,
    },
}

/// A lock released for silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The sender that was listened to.
    pub sender: SocketAddr,
    /// How long it had been silent.
    pub silent_for: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Lock {
    sender: SocketAddr,
    last_heard: Instant,
}

/// The sender filter; see the module documentation.
#[derive(Debug, Clone)]
pub struct SourceFilter {
    pin: Option<Pin>,
    timeout: Duration,
    locked: Option<Lock>,
    last_warn: Option<Instant>,
    unreported: u64,
}

impl SourceFilter {
    /// A filter pinned to `pin`, or locking onto the first sender whose
    /// datagram decodes; the lock is released after `timeout` of silence.
    pub fn new(pin: Option<Pin>, timeout: Duration) -> Self {
        Self {
            pin,
            timeout,
            locked: None,
            last_warn: None,
            unreported: 0,
        }
    }

    /// The sender being listened to, once locked.
    pub fn sender(&self) -> Option<SocketAddr> {
        self.locked.map(|l| l.sender)
    }

    /// Releases the lock when the locked sender has been silent for the
    /// timeout at `now`; call before [`Self::check`] and on idle polls.
    pub fn expire(&mut self, now: Instant) -> Option<Released> {
        let lock = self.locked?;
        let silent_for = now.saturating_duration_since(lock.last_heard);
        if silent_for < self.timeout {
            return None;
        }
        self.locked = None;
        Some(Released {
            sender: lock.sender,
            silent_for,
        })
    }

    /// Classifies a datagram from `from` received at `now`.
    pub fn check(&mut self, from: SocketAddr, now: Instant) -> Verdict {
        let listen = match (self.locked, self.pin) {
            (Some(lock), _) => lock.sender == from,
            (None, Some(pin)) => pin.matches(from),
            (None, None) => true,
        };
        if listen {
            return Verdict::Listen;
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

    /// Records that a datagram from `from` (which [`Self::check`] let
    /// through) decoded at `now`. Returns true when this took the lock.
    pub fn decoded(&mut self, from: SocketAddr, now: Instant) -> bool {
        let first = self.locked.is_none();
        self.locked = Some(Lock {
            sender: from,
            last_heard: now,
        });
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const T: Duration = DEFAULT_SOURCE_TIMEOUT;

    #[test]
    fn locks_onto_first_decoding_sender_and_rate_limits_warnings() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(None, T);
        let a = addr("10.0.0.1:5000");
        assert_eq!(f.check(a, t0), Verdict::Listen);
        assert!(f.decoded(a, t0));
        assert_eq!(f.check(a, t0), Verdict::Listen);
        assert!(!f.decoded(a, t0));
        assert_eq!(
            f.check(addr("10.0.0.2:5000"), t0),
            Verdict::Foreign { warn: Some(1) }
        );
        assert_eq!(
            f.check(addr("10.0.0.1:5001"), t0),
            Verdict::Foreign { warn: None }
        );
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            f.check(addr("10.0.0.2:5000"), later),
            Verdict::Foreign { warn: None }
        );
        let later = t0 + WARN_EVERY;
        assert!(!f.decoded(a, later - Duration::from_secs(1)));
        assert_eq!(
            f.check(addr("10.0.0.2:5000"), later),
            Verdict::Foreign { warn: Some(3) }
        );
        assert_eq!(f.sender(), Some(a));
    }

    #[test]
    fn a_datagram_that_does_not_decode_takes_no_lock() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(None, T);
        // The hijacker's empty datagram is let through to decoding, fails
        // there, and so is never reported as decoded: no lock.
        assert_eq!(f.check(addr("10.0.0.66:9"), t0), Verdict::Listen);
        assert_eq!(f.sender(), None);
        let a = addr("10.0.0.1:5000");
        assert_eq!(f.check(a, t0), Verdict::Listen);
        assert!(f.decoded(a, t0));
        assert_eq!(f.sender(), Some(a));
    }

    #[test]
    fn silence_releases_the_lock_for_the_next_sender() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(None, T);
        let a = addr("10.0.0.1:5000");
        let b = addr("10.0.0.1:5002");
        assert!(f.decoded(a, t0));
        assert_eq!(f.expire(t0 + T - Duration::from_millis(1)), None);
        assert!(matches!(f.check(b, t0 + T / 2), Verdict::Foreign { .. }));
        // Hearing a again restarts its silence.
        assert!(!f.decoded(a, t0 + T / 2));
        assert_eq!(f.expire(t0 + T), None);
        let at = t0 + T / 2 + T + Duration::from_millis(40);
        assert_eq!(
            f.expire(at),
            Some(Released {
                sender: a,
                silent_for: T + Duration::from_millis(40)
            })
        );
        assert_eq!(f.sender(), None);
        assert_eq!(f.expire(at), None);
        assert_eq!(f.check(b, at), Verdict::Listen);
        assert!(f.decoded(b, at));
        assert_eq!(f.sender(), Some(b));
    }

    #[test]
    fn pinned_source_ignores_earlier_senders() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(Some("10.0.0.9:7000".parse().unwrap()), T);
        assert!(matches!(
            f.check(addr("10.0.0.1:5000"), t0),
            Verdict::Foreign { .. }
        ));
        assert_eq!(f.check(addr("10.0.0.9:7000"), t0), Verdict::Listen);

        let mut f = SourceFilter::new(Some("10.0.0.9".parse().unwrap()), T);
        assert_eq!(f.check(addr("10.0.0.9:1234"), t0), Verdict::Listen);
        assert!(f.decoded(addr("10.0.0.9:1234"), t0));
        // Locked to that port now, until it falls silent.
        assert!(matches!(
            f.check(addr("10.0.0.9:1235"), t0),
            Verdict::Foreign { .. }
        ));
        assert!(f.expire(t0 + T).is_some());
        assert_eq!(f.check(addr("10.0.0.9:1235"), t0 + T), Verdict::Listen);
        // Still pinned to the IP.
        assert!(matches!(
            f.check(addr("10.0.0.8:1235"), t0 + T),
            Verdict::Foreign { .. }
        ));
    }

    #[test]
    fn pin_parse_errors() {
        assert!("nonsense".parse::<Pin>().is_err());
        assert_eq!("::1".parse::<Pin>(), Ok(Pin::Ip("::1".parse().unwrap())));
    }
}
