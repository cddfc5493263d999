//! The limit on format changes from a TCP server (`--max-format-changes`
//! per minute): each change finishes the WAV file and starts the next
//! numbered one, so a server that flaps between formats would otherwise
//! create files as fast as it can send Specs.
//!
//! Sans-IO: the caller passes `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window the limit counts changes in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Default of `--max-format-changes`: changes allowed per [`WINDOW`].
pub const DEFAULT_MAX_CHANGES: u32 = 10;

/// Counts format changes over a sliding minute.
#[derive(Debug, Clone)]
pub struct FormatChangeLimit {
    max: usize,
    recent: VecDeque<Instant>,
}

impl FormatChangeLimit {
    /// A limit of `max` changes per [`WINDOW`].
    pub fn new(max: u32) -> Self {
        let max = max as usize;
        Self {
            max,
            recent: VecDeque::with_capacity(max.min(1024)),
        }
    }

    /// The changes allowed per [`WINDOW`].
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether a format change at `now` is within the limit; an allowed
    /// change is counted, a refused one is not.
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_changes_per_sliding_minute() {
        let t0 = Instant::now();
        let mut limit = FormatChangeLimit::new(3);
        let s = Duration::from_secs;
        assert!(limit.allow(t0));
        assert!(limit.allow(t0 + s(10)));
        assert!(limit.allow(t0 + s(20)));
        assert!(!limit.allow(t0 + s(30)));
        assert!(!limit.allow(t0 + s(59)));
        // The first change left the window.
        assert!(limit.allow(t0 + s(60)));
        assert!(!limit.allow(t0 + s(69)));
        assert!(limit.allow(t0 + s(70)));
    }
}
