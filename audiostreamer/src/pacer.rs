//! The send schedule: when each datagram is due, from the cumulative sample
//! count (sans-IO: time is a `Duration` since the stream started, passed in).
//!
//! Datagram k is due at `start + (samples sent before k) / (rate × speed)`.
//! Because every deadline is computed from the total so far, sleep overshoot
//! and the time spent reading and sending never accumulate: the schedule
//! cannot drift, unlike a loop that sleeps one chunk duration per datagram.

use std::time::Duration;

/// Computes send deadlines from the number of samples already sent.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Samples per second of wall-clock time (sample rate × speed).
    samples_per_sec: f64,
    /// Shift of the whole schedule, grown only by [`Pacer::resync`] after a stall.
    origin: Duration,
    /// Samples sent since the schedule's origin.
    samples: u64,
}

impl Pacer {
    /// A schedule for `sample_rate` samples per second, sped up by `speed`
    /// (2.0 sends twice as fast as real time). Both must be positive.
    pub fn new(sample_rate: u32, speed: f64) -> Self {
        debug_assert!(sample_rate > 0 && speed > 0.0 && speed.is_finite());
        Self {
            samples_per_sec: f64::from(sample_rate) * speed,
            origin: Duration::ZERO,
            samples: 0,
        }
    }

    /// When the next datagram is due, as an offset from the stream start.
    pub fn next_deadline(&self) -> Duration {
        // Duration::MAX ("never") when the offset does not fit: a Duration
        // from a user's number must never panic.
        let offset = Duration::try_from_secs_f64(self.samples as f64 / self.samples_per_sec)
            .unwrap_or(Duration::MAX);
        self.origin.saturating_add(offset)
    }

    /// Records that a datagram of `samples` samples was sent.
    pub fn on_sent(&mut self, samples: usize) {
        self.samples += samples as u64;
    }

    /// How long to wait at `now` before the next datagram may go
    /// (zero when it is due or overdue).
    pub fn wait_at(&self, now: Duration) -> Duration {
        self.next_deadline().saturating_sub(now)
    }

    /// After a stall (the process was suspended, the disk hung), the schedule
    /// would send everything it missed in one burst. If `now` is more than
    /// `max_late` past the next deadline, shift the schedule so the next
    /// datagram is due at `now` instead, and return how late it was.
    pub fn resync(&mut self, now: Duration, max_late: Duration) -> Option<Duration> {
        let late = now.checked_sub(self.next_deadline())?;
        if late <= max_late {
            return None;
        }
        self.origin = self.origin.saturating_add(late);
        Some(late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn deadlines_follow_the_cumulative_count() {
        let mut p = Pacer::new(44_100, 1.0);
        assert_eq!(p.next_deadline(), Duration::ZERO);
        p.on_sent(441);
        assert_eq!(p.next_deadline(), ms(10));
        p.on_sent(441);
        assert_eq!(p.next_deadline(), ms(20));
        // A short final datagram: 220.5 samples would be 5 ms.
        p.on_sent(441 * 98);
        assert_eq!(p.next_deadline(), ms(1000));
    }

    #[test]
    fn no_drift_over_an_hour_of_odd_chunks() {
        // 10 ms at 44.1 kHz is exact; 7 ms (308.7 → 309 samples) is not, and
        // the schedule must follow the samples actually sent, not 7 ms steps.
        let mut p = Pacer::new(44_100, 1.0);
        let chunks = 3600 * 1000 / 7;
        for _ in 0..chunks {
            p.on_sent(309);
        }
        let exact = chunks as f64 * 309.0 / 44_100.0;
        let got = p.next_deadline().as_secs_f64();
        assert!((got - exact).abs() < 1e-6, "{got} vs {exact}");
    }

    #[test]
    fn simulated_clock_with_late_wakeups_keeps_schedule() {
        // A sleeper that always wakes 3 ms late still sends datagram k at
        // k×10 ms + 3 ms: lateness does not accumulate.
        let mut p = Pacer::new(48_000, 1.0);
        let mut now = Duration::ZERO;
        for k in 0..1000u64 {
            now += p.wait_at(now) + ms(3);
            assert_eq!(now, ms(10 * k + 3));
            p.on_sent(480);
        }
    }

    #[test]
    fn speed_scales_deadlines() {
        let mut p = Pacer::new(8_000, 4.0);
        p.on_sent(8_000);
        assert_eq!(p.next_deadline(), ms(250));
        assert_eq!(p.wait_at(ms(100)), ms(150));
        assert_eq!(p.wait_at(ms(300)), Duration::ZERO);
    }

    #[test]
    fn extreme_speeds_saturate_instead_of_panicking() {
        let mut p = Pacer::new(44_100, 1e-300);
        p.on_sent(441);
        assert_eq!(p.next_deadline(), Duration::MAX);
        assert_eq!(p.resync(ms(10), ms(500)), None);
        let mut p = Pacer::new(44_100, f64::MAX);
        p.on_sent(441);
        assert_eq!(p.next_deadline(), Duration::ZERO);
    }

    #[test]
    fn resync_only_after_a_real_stall() {
        let mut p = Pacer::new(1_000, 1.0);
        p.on_sent(100); // due at 100 ms
        assert_eq!(p.resync(ms(50), ms(500)), None); // early
        assert_eq!(p.resync(ms(400), ms(500)), None); // late, but within bounds
        assert_eq!(p.resync(ms(2100), ms(500)), Some(ms(2000)));
        assert_eq!(p.next_deadline(), ms(2100));
        p.on_sent(10);
        assert_eq!(p.next_deadline(), ms(2110));
    }
}
