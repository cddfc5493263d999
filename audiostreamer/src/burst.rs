//! Rate-limiting of repeated send errors (sans-IO): a burst of failures is
//! reported when it starts, every so often while it lasts, and when it ends,
//! never once per datagram.

use std::time::Duration;

/// What to log after a send attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstReport {
    /// The first failure after a success (or ever): log the error.
    Started,
    /// Still failing; `failures` so far in this burst.
    Ongoing {
        /// Failures in this burst so far.
        failures: u64,
    },
    /// A send succeeded after `failures` failed ones.
    Ended {
        /// Failures the burst lasted.
        failures: u64,
    },
}

/// Tracks bursts of consecutive send failures.
#[derive(Debug, Clone)]
pub struct ErrorBurst {
    repeat_every: Duration,
    failures: u64,
    last_report: Duration,
    total: u64,
}

impl ErrorBurst {
    /// A tracker that repeats an ongoing burst's report every `repeat_every`.
    pub fn new(repeat_every: Duration) -> Self {
        Self {
            repeat_every,
            failures: 0,
            last_report: Duration::ZERO,
            total: 0,
        }
    }

    /// Records a failed send at `now`; returns what to log, if anything.
    pub fn on_error(&mut self, now: Duration) -> Option<BurstReport> {
        self.failures += 1;
        self.total += 1;
        if self.failures == 1 {
            self.last_report = now;
            return Some(BurstReport::Started);
        }
        if now.saturating_sub(self.last_report) >= self.repeat_every {
            self.last_report = now;
            return Some(BurstReport::Ongoing {
                failures: self.failures,
            });
        }
        None
    }

    /// Records a successful send; reports the end of a burst.
    pub fn on_success(&mut self) -> Option<BurstReport> {
        let failures = std::mem::take(&mut self.failures);
        (failures > 0).then_some(BurstReport::Ended { failures })
    }

    /// Failed sends over the whole stream.
    pub fn total_failures(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_burst_plus_reminders() {
        let mut b = ErrorBurst::new(Duration::from_secs(10));
        let ms = Duration::from_millis;
        assert_eq!(b.on_success(), None);
        assert_eq!(b.on_error(ms(0)), Some(BurstReport::Started));
        for t in 1..1000 {
            assert_eq!(b.on_error(ms(t * 10)), None, "t={t}");
        }
        assert_eq!(
            b.on_error(ms(10_000)),
            Some(BurstReport::Ongoing { failures: 1001 })
        );
        assert_eq!(b.on_error(ms(10_010)), None);
        assert_eq!(b.on_success(), Some(BurstReport::Ended { failures: 1002 }));
        assert_eq!(b.on_success(), None);
        assert_eq!(b.on_error(ms(20_000)), Some(BurstReport::Started));
        assert_eq!(b.total_failures(), 1003);
    }
}
