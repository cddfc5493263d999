//! `--keep-time`: the recording keeps wall-clock time. From the first
//! received frame on, a gap in the stream (nothing for [`GAP`]) is filled
//! with silence in the file, up to the time that has passed, so that a
//! minute of recording is a minute of file even when the sender paused.
//! Audio is never delayed or dropped for it: a stream that arrives faster
//! than real time only makes the file run ahead of the clock, and nothing
//! is filled until the clock has caught up.
//!
//! Sans-IO: the caller reports frames and asks at `now` how much silence
//! is due.

use std::time::{Duration, Instant};

/// Silence shorter than this is normal network jitter, not a gap.
pub const GAP: Duration = Duration::from_millis(250);

/// The clock of one recording format.
#[derive(Debug, Clone)]
pub struct WallClock {
    rate: u32,
    /// The first frame's arrival, and the latest arrival.
    start: Option<Instant>,
    last: Option<Instant>,
    /// Frames in the file since `start`, audio and silence.
    written: u64,
}

impl WallClock {
    /// A clock for a stream of `rate` frames per second.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1),
            start: None,
            last: None,
            written: 0,
        }
    }

    /// `frames` of audio arrived at `now` and were recorded.
    pub fn on_frames(&mut self, now: Instant, frames: u64) {
        self.start.get_or_insert(now);
        self.last = Some(now);
        self.written += frames;
    }

    /// Frames of silence to record at `now` (counted as written): none
    /// before the first frame or within [`GAP`] of the latest arrival,
    /// else what brings the file up to the time since the first frame.
    pub fn silence_due(&mut self, now: Instant) -> u64 {
        let (Some(start), Some(last)) = (self.start, self.last) else {
            return 0;
        };
        if now.saturating_duration_since(last) < GAP {
            return 0;
        }
        let elapsed = now.saturating_duration_since(start);
        let target = (elapsed.as_secs_f64() * f64::from(self.rate)) as u64;
        let due = target.saturating_sub(self.written);
        self.written += due;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_filled_up_to_the_clock() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut c = WallClock::new(1000);
        assert_eq!(c.silence_due(ms(500)), 0, "nothing before the first frame");
        // 100 ms of audio in 10 ms blocks.
        for i in 0..10 {
            c.on_frames(ms(10 * i), 10);
        }
        assert_eq!(c.silence_due(ms(300)), 0, "within GAP of the latest block");
        assert_eq!(c.silence_due(ms(340)), 240);
        assert_eq!(c.silence_due(ms(340)), 0);
        assert_eq!(c.silence_due(ms(1000)), 660);
        // Audio again: appended after the silence, nothing filled meanwhile.
        c.on_frames(ms(1000), 10);
        assert_eq!(c.silence_due(ms(1100)), 0);
    }

    #[test]
    fn a_fast_stream_is_never_padded() {
        let t0 = Instant::now();
        let mut c = WallClock::new(1000);
        c.on_frames(t0, 5000); // 5 s of audio in one burst
        assert_eq!(c.silence_due(t0 + Duration::from_secs(3)), 0);
        assert_eq!(c.silence_due(t0 + Duration::from_secs(6)), 1000);
    }
}
