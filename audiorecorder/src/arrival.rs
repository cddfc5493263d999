//! When the network side last pushed frames into the playback ring, and how
//! many: lets the audio callback see where it stands between two network
//! blocks (see `level_control`), without a lock.
//!
//! One `AtomicU64` holds both numbers, so a reader never sees the time of
//! one push with the size of another: microseconds since the stamp's epoch
//! in the high [`TIME_BITS`] bits (203 days, then it wraps, which the
//! subtraction in [`LastArrival::since`] tolerates), frames in the low
//! [`FRAME_BITS`] bits (saturating at about a million).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Bits of the frame count.
const FRAME_BITS: u32 = 20;
/// Bits of the time in microseconds.
const TIME_BITS: u32 = 64 - FRAME_BITS;
const FRAME_MASK: u64 = (1 << FRAME_BITS) - 1;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// "Nothing pushed yet" (a real stamp of frame count 0 is never stored).
const EMPTY: u64 = 0;

/// The latest push into the ring: written by the network thread, read by
/// the audio callback. Share it in an `Arc`.
#[derive(Debug)]
pub struct LastArrival {
    epoch: Instant,
    packed: AtomicU64,
}

/// A push as the callback sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Microseconds from the push to the reading.
    pub age_us: u64,
    /// Frames that push wrote into the ring.
    pub frames: usize,
}

impl Default for LastArrival {
    fn default() -> Self {
        Self::new()
    }
}

impl LastArrival {
    /// No push yet.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            packed: AtomicU64::new(EMPTY),
        }
    }

    /// Microseconds from the epoch to `now`, in the stamp's time space.
    fn micros(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_micros() as u64) & TIME_MASK
    }

    /// The network side wrote `frames` into the ring at `now`.
    pub fn record(&self, frames: usize, now: Instant) {
        if frames == 0 {
            return;
        }
        let frames = (frames as u64).min(FRAME_MASK);
        // Release: a callback that sees this stamp also sees the frames.
        self.packed
            .store((self.micros(now) << FRAME_BITS) | frames, Ordering::Release);
    }

    /// The latest push as seen at `now`; `None` before the first.
    /// Real-time safe: one atomic load.
    pub fn since(&self, now: Instant) -> Option<Arrival> {
        let packed = self.packed.load(Ordering::Acquire);
        if packed == EMPTY {
            return None;
        }
        let at = packed >> FRAME_BITS;
        let age = self.micros(now).wrapping_sub(at) & TIME_MASK;
        Some(Arrival {
            // More than half the time space "ago" is a push stamped after
            // `now` was read (a race with the network thread): age 0.
            age_us: if age > TIME_MASK / 2 { 0 } else { age },
            frames: (packed & FRAME_MASK) as usize,
        })
    }
}

impl Arrival {
    /// Frames of this push that a continuous stream at `rate` would not
    /// yet have delivered: the push's size less what `rate` brings in its
    /// age, never below zero. The callback's level minus this is the level
    /// without the block saw-tooth.
    pub fn pending_frames(&self, rate: u32) -> usize {
        let delivered = self.age_us.saturating_mul(u64::from(rate)) / 1_000_000;
        (self.frames as u64).saturating_sub(delivered) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nothing_before_the_first_push() {
        let a = LastArrival::new();
        assert_eq!(a.since(Instant::now()), None);
        a.record(0, Instant::now());
        assert_eq!(a.since(Instant::now()), None);
    }

    #[test]
    fn age_and_size_of_the_latest_push() {
        let a = LastArrival::new();
        let t = a.epoch + Duration::from_millis(7);
        a.record(100, t);
        a.record(220, t + Duration::from_micros(500));
        let seen = a.since(t + Duration::from_micros(2_500)).unwrap();
        assert_eq!(
            seen,
            Arrival {
                age_us: 2_000,
                frames: 220
            }
        );
        // 2 ms at 44.1 kHz deliver 88 of the 220 frames.
        assert_eq!(seen.pending_frames(44_100), 132);
        // Older than the block itself: nothing pending.
        let old = a.since(t + Duration::from_millis(20)).unwrap();
        assert_eq!(old.pending_frames(44_100), 0);
        // A reading whose clock was read before the push: age 0.
        assert_eq!(a.since(t).unwrap().age_us, 0);
    }

    #[test]
    fn huge_pushes_saturate_the_count() {
        let a = LastArrival::new();
        a.record(usize::MAX, Instant::now());
        assert_eq!(a.since(Instant::now()).unwrap().frames as u64, FRAME_MASK);
    }
}
