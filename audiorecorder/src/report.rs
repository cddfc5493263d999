//! Periodic log lines about playback trouble: underruns, backoffs, latency
//! drops and overruns are counted by the audio callback (which must not
//! log) and reported from the network thread, at most once per
//! [`REPORT_EVERY`] and only when something happened.
//!
//! Sans-IO: the caller passes a counter snapshot and `now`.

use std::time::{Duration, Instant};

use crate::stats::Snapshot;

/// Least time between two reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Remembers what was reported last.
#[derive(Debug, Clone)]
pub struct Reporter {
    last: Snapshot,
    last_at: Option<Instant>,
}

impl Default for Reporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter {
    /// A reporter that has reported nothing yet.
    pub fn new() -> Self {
        Self {
            last: Snapshot::default(),
            last_at: None,
        }
    }

    /// A warning line when playback trouble happened since the last report
    /// and a report is due at `now`.
    pub fn check(&mut self, now: Snapshot, at: Instant) -> Option<String> {
        if self
            .last_at
            .is_some_and(|t| at.saturating_duration_since(t) < REPORT_EVERY)
        {
            return None;
        }
        let d = |f: fn(&Snapshot) -> u64| f(&now).saturating_sub(f(&self.last));
        let underruns = d(|s| s.underruns);
        let resumes = d(|s| s.resumes);
        let drops = d(|s| s.latency_drops);
        let dropped = d(|s| s.latency_dropped_frames);
        let overrun = d(|s| s.overrun_frames);
        let record_dropped = d(|s| s.record_dropped_frames);
        let errors = d(|s| s.output_errors);
        if underruns + drops + overrun + record_dropped + errors == 0 {
            return None;
        }
        self.last = now;
        self.last_at = Some(at);
        let mut parts = Vec::new();
        if underruns > 0 {
            parts.push(format!(
                "{underruns} underrun(s), {resumes} backoff(s) completed"
            ));
        }
        if drops > 0 {
            parts.push(format!(
                "{drops} latency drop(s) ({dropped} oldest frames dropped)"
            ));
        }
        if overrun > 0 {
            parts.push(format!("{overrun} frames lost to a full ring (overrun)"));
        }
        if errors > 0 {
            parts.push(format!("{errors} audio output error(s)"));
        }
        if record_dropped > 0 {
            parts.push(format!(
                "{record_dropped} frames not recorded (disk too slow)"
            ));
        }
        Some(format!("playback: {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_changes_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut r = Reporter::new();
        let mut s = Snapshot::default();
        assert_eq!(r.check(s, t0), None);
        s.resumes = 1; // the first start is not trouble
        assert_eq!(r.check(s, t0), None);
        s.underruns = 1;
        s.resumes = 2;
        assert_eq!(
            r.check(s, t0).as_deref(),
            Some("playback: 1 underrun(s), 2 backoff(s) completed")
        );
        s.latency_drops = 1;
        s.latency_dropped_frames = 300;
        assert_eq!(r.check(s, t0 + Duration::from_millis(500)), None);
        assert_eq!(
            r.check(s, t0 + REPORT_EVERY).as_deref(),
            Some("playback: 1 latency drop(s) (300 oldest frames dropped)")
        );
        assert_eq!(r.check(s, t0 + 3 * REPORT_EVERY), None);
    }
}
