//! The node-wide event-log budget: at most so many lines per second for
//! the whole node (on top of each source's own burst throttle), the rest
//! counted per class and summarised in one line once per second. Without
//! it 256 misbehaving sources wrote 1.6 MiB of log a second.

use std::time::Duration;

use super::event::{EventClass, EventKind};

/// Default lines per second for the whole node.
pub const DEFAULT_LINES_PER_SECOND: u32 = 200;

const WINDOW: Duration = Duration::from_secs(1);

/// Budget state.
#[derive(Debug, Clone)]
pub struct EventBudget {
    per_window: u32,
    start: Duration,
    used: u32,
    cut: [u32; EventClass::COUNT],
    cut_total: u64,
}

impl EventBudget {
    /// `lines_per_second` lines for the whole node (0: unlimited).
    pub fn new(lines_per_second: u32) -> Self {
        Self {
            per_window: lines_per_second,
            start: Duration::ZERO,
            used: 0,
            cut: [0; EventClass::COUNT],
            cut_total: 0,
        }
    }

    /// Whether an event of `kind` may be written at `now`. A summary of
    /// the previous window, if it cut lines, comes back too (write it
    /// first; summaries are never cut).
    pub fn admit(&mut self, now: Duration, kind: &EventKind) -> (bool, Option<EventKind>) {
        let summary = self.roll(now);
        if self.per_window == 0 || matches!(kind, EventKind::OverBudget { .. }) {
            return (true, summary);
        }
        if self.used < self.per_window {
            self.used += 1;
            (true, summary)
        } else {
            self.cut[kind.class() as usize] += 1;
            self.cut_total += 1;
            (false, summary)
        }
    }

    /// The summary of a window that ended before `now`, if it cut lines.
    pub fn flush(&mut self, now: Duration) -> Option<EventKind> {
        self.roll(now)
    }

    /// Lines cut since the start.
    pub fn cut_total(&self) -> u64 {
        self.cut_total
    }

    fn roll(&mut self, now: Duration) -> Option<EventKind> {
        if now < self.start + WINDOW {
            return None;
        }
        self.start = now;
        self.used = 0;
        let counts = std::mem::take(&mut self.cut);
        counts
            .iter()
            .any(|&c| c > 0)
            .then_some(EventKind::OverBudget {
                counts,
                window_ms: WINDOW.as_millis() as u64,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn cuts_beyond_the_budget_and_summarises_once_per_second() {
        let mut b = EventBudget::new(3);
        let late = EventKind::Late {
            seq: 1,
            late_by_ms: 1.0,
        };
        let new = EventKind::NewStream {
            seq: 0,
            start_frame: 0,
            samples: 441,
            rtp: None,
        };
        let admitted: Vec<bool> = (0..5).map(|i| b.admit(i * MS, &late).0).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert!(!b.admit(10 * MS, &new).0);
        assert_eq!(b.flush(999 * MS), None, "the window is still open");
        let Some(EventKind::OverBudget { counts, window_ms }) = b.flush(1000 * MS) else {
            panic!("no summary");
        };
        assert_eq!(window_ms, 1000);
        assert_eq!(counts[EventClass::Late as usize], 2);
        assert_eq!(counts[EventClass::New as usize], 1);
        assert_eq!(b.cut_total(), 3);
        // A fresh window admits again, and a quiet one summarises nothing.
        assert!(b.admit(1001 * MS, &late).0);
        assert_eq!(b.flush(2500 * MS), None);
    }

    #[test]
    fn zero_means_unlimited() {
        let mut b = EventBudget::new(0);
        let e = EventKind::Repeated { seq: 1 };
        assert!((0..10_000).all(|_| b.admit(Duration::ZERO, &e).0));
    }
}
