//! Rate limiting of bursty events: at most a few lines per class per second
//! for one source; the rest are counted and summarised in one line.

use std::time::Duration;

use crate::event::Burstable;

/// Per-source limiter over the [`Burstable`] event classes.
#[derive(Debug, Clone)]
pub struct Throttle {
    window: Duration,
    max_per_window: u32,
    classes: [Window; Burstable::ALL.len()],
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: Duration,
    emitted: u32,
    suppressed: u64,
}

/// A summary of events that were not logged individually.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Which class.
    pub class: Burstable,
    /// How many were suppressed.
    pub count: u64,
}

impl Throttle {
    /// Allows `max_per_window` events per class per `window`.
    pub fn new(window: Duration, max_per_window: u32) -> Self {
        Self {
            window,
            max_per_window,
            classes: [Window::default(); Burstable::ALL.len()],
        }
    }

    /// Length of the window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether an event of `class` at `now` should be logged. If the class's
    /// previous window ended with suppressed events, their summary is
    /// returned too (log it before this event).
    pub fn admit(&mut self, class: Burstable, now: Duration) -> (bool, Option<Summary>) {
        let w = &mut self.classes[class.index()];
        let mut summary = None;
        if now >= w.start + self.window {
            if w.suppressed > 0 {
                summary = Some(Summary {
                    class,
                    count: w.suppressed,
                });
            }
            *w = Window {
                start: now,
                emitted: 0,
                suppressed: 0,
            };
        }
        if w.emitted < self.max_per_window {
            w.emitted += 1;
            (true, summary)
        } else {
            w.suppressed += 1;
            (false, summary)
        }
    }

    /// Summaries of windows that have ended (or all, with `force`), clearing them.
    pub fn flush(&mut self, now: Duration, force: bool, mut emit: impl FnMut(Summary)) {
        for class in Burstable::ALL {
            let w = &mut self.classes[class.index()];
            if w.suppressed > 0 && (force || now >= w.start + self.window) {
                emit(Summary {
                    class,
                    count: w.suppressed,
                });
                w.suppressed = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn bursts_are_counted_then_summarised() {
        let mut t = Throttle::new(1000 * MS, 3);
        let admitted: Vec<bool> = (0..10)
            .map(|i| t.admit(Burstable::Late, i * MS).0)
            .collect();
        assert_eq!(
            admitted,
            [true, true, true, false, false, false, false, false, false, false]
        );
        // Another class is independent.
        assert!(t.admit(Burstable::Repeated, 10 * MS).0);
        // The next window reports the 7 suppressed ones.
        let (ok, summary) = t.admit(Burstable::Late, 1500 * MS);
        assert!(ok);
        assert_eq!(
            summary,
            Some(Summary {
                class: Burstable::Late,
                count: 7
            })
        );
    }

    #[test]
    fn flush_reports_ended_windows_once() {
        let mut t = Throttle::new(1000 * MS, 1);
        t.admit(Burstable::Missing, Duration::ZERO);
        t.admit(Burstable::Missing, MS);
        t.admit(Burstable::Missing, 2 * MS);
        let mut got = Vec::new();
        t.flush(500 * MS, false, |s| got.push(s));
        assert!(got.is_empty(), "window still open");
        t.flush(1000 * MS, false, |s| got.push(s));
        assert_eq!(
            got,
            vec![Summary {
                class: Burstable::Missing,
                count: 2
            }]
        );
        t.flush(3000 * MS, true, |s| got.push(s));
        assert_eq!(got.len(), 1, "reported once");
    }
}
