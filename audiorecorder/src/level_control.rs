//! Drift compensation of the playback path: holds the ring's fill level at
//! the jitter backoff when the sound card consumes frames at a slightly
//! different rate than the network delivers them (its clock differs from
//! the sender's; the PulseAudio null sink runs 100–455 ppm fast).
//!
//! Sans-IO: the audio callback passes the level it finds (frames buffered in
//! the ring when it starts, before it takes anything) and the frames the
//! device wants, once per callback in which it plays a whole buffer from
//! the ring; it gets back whether to drop one frame (take one extra frame
//! from the ring) or repeat one (take one frame less and hold the previous
//! frame one extra output frame). Either changes the level by exactly one
//! frame and nothing else.
//!
//! The measure: the level each callback finds before it takes its frames
//! (`available`). It saw-tooths by one network block (220 frames) and one
//! device period per callback, and jitter makes single callbacks find one
//! block less; an average hides exactly those low points, which are what
//! underruns are made of (a callback underruns when it finds fewer frames
//! than the period). So the controller holds the *minimum* level over a
//! sliding window of about two seconds, the safety margin that matters,
//! rather than its mean.
//!
//! Rules (frames at the device rate, the rate of the ring):
//! - The window is [`BUCKETS`] buckets of [`BUCKET_MS`] of output each plus
//!   the bucket being filled: a fixed array, no allocation. A new low
//!   counts at once; a low ages out after the window.
//! - The target is the backoff: playback starts when the backoff is full,
//!   so without jitter the callbacks find exactly the backoff afterwards,
//!   and the margin against underruns is backoff − period. A start above it
//!   (the device opened late, a burst) is corrected down to it like drift;
//!   there is no warm-up reference that would keep such an offset forever.
//! - When the window minimum leaves `target ± band` ([`BAND_MS`]), one frame
//!   is corrected per callback, and at most one per [`MIN_GAP_MS`] of
//!   output, until it is back within `band / 4` (hysteresis). Each
//!   correction moves every later level by exactly one frame, so it is
//!   folded into the window at once (as audionode's drift controller folds
//!   it into its average): no overshoot, no waiting for the window to see it.
//! - Nothing is corrected until a whole bucket has been seen since the last
//!   [`LevelControl::reset`], which the callback calls whenever the backoff
//!   state machine moves the level itself (start, underrun re-buffer,
//!   latency drop).

use crate::backoff::Plan;

/// One correction for the current callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// Play the buffer as it is.
    None,
    /// Skip one frame: take `requested + 1` frames from the ring.
    Drop,
    /// Hold one frame an extra output frame: take `requested − 1` frames.
    Repeat,
}

/// Frames dropped and repeated so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LevelCounters {
    /// Frames skipped because the ring was too full.
    pub drops: u64,
    /// Frames repeated because the ring was too empty.
    pub repeats: u64,
}

/// Half-width of the dead band around the target, in milliseconds.
pub const BAND_MS: f64 = 1.0;
/// Length of one bucket of the minimum's window, in milliseconds of output.
pub const BUCKET_MS: f64 = 250.0;
/// Completed buckets in the window (plus the one being filled).
pub const BUCKETS: usize = 8;
/// Least distance between two corrections, in milliseconds of output.
pub const MIN_GAP_MS: f64 = 4.0;

/// The level controller; see the module documentation.
#[derive(Debug, Clone)]
pub struct LevelControl {
    target: i64,
    band: i64,
    bucket_frames: u64,
    min_gap: u64,
    /// Minimum level of each completed bucket; `i64::MAX` when empty.
    mins: [i64; BUCKETS],
    next: usize,
    /// Minimum level of the bucket being filled, and its output frames.
    current: i64,
    current_frames: u64,
    /// Output frames since the last reset (saturating).
    since_reset: u64,
    correcting: bool,
    /// Output frames since the last correction (saturating).
    since_correction: u64,
    counters: LevelCounters,
}

impl LevelControl {
    /// A controller holding `target_frames` at `rate` frames per second with
    /// the default band ([`BAND_MS`]), window ([`BUCKETS`] × [`BUCKET_MS`])
    /// and spacing ([`MIN_GAP_MS`]).
    pub fn new(target_frames: usize, rate: u32) -> Self {
        let ms = |ms: f64| (ms * f64::from(rate) / 1000.0) as u64;
        Self::with_params(target_frames, ms(BAND_MS), ms(BUCKET_MS), ms(MIN_GAP_MS))
    }

    /// A controller with explicit parameters, all in frames: half-width of
    /// the band, length of a bucket, least distance between corrections.
    pub fn with_params(target: usize, band: u64, bucket_frames: u64, min_gap: u64) -> Self {
        let mut c = Self {
            target: target as i64,
            band: band.max(1) as i64,
            bucket_frames: bucket_frames.max(1),
            min_gap,
            mins: [i64::MAX; BUCKETS],
            next: 0,
            current: i64::MAX,
            current_frames: 0,
            since_reset: 0,
            correcting: false,
            since_correction: u64::MAX,
            counters: LevelCounters::default(),
        };
        c.reset();
        c
    }

    /// The level it holds the window minimum at.
    pub fn target(&self) -> i64 {
        self.target
    }

    /// Half-width of the dead band, in frames.
    pub fn band(&self) -> i64 {
        self.band
    }

    /// The minimum level over the window; `None` right after a reset.
    pub fn window_min(&self) -> Option<i64> {
        let m = self.mins.iter().copied().fold(self.current, i64::min);
        (m != i64::MAX).then_some(m)
    }

    /// Corrections so far.
    pub fn counters(&self) -> LevelCounters {
        self.counters
    }

    /// Forgets the window (the level jumped for another reason).
    pub fn reset(&mut self) {
        self.mins = [i64::MAX; BUCKETS];
        self.next = 0;
        self.current = i64::MAX;
        self.current_frames = 0;
        self.since_reset = 0;
        self.correcting = false;
    }

    /// One callback that found `level` frames in the ring and plays
    /// `requested` frames from it: the correction to apply. A drop is only
    /// asked for when the ring holds `requested + 1` frames, a repeat only
    /// when `requested >= 2`.
    pub fn on_callback(&mut self, level: usize, requested: usize) -> Correction {
        let frames = requested as u64;
        self.current = self.current.min(level as i64);
        self.current_frames += frames;
        if self.current_frames >= self.bucket_frames {
            self.mins[self.next] = self.current;
            self.next = (self.next + 1) % BUCKETS;
            self.current = i64::MAX;
            self.current_frames = 0;
        }
        self.since_reset = self.since_reset.saturating_add(frames);
        self.since_correction = self.since_correction.saturating_add(frames);
        if self.since_reset < self.bucket_frames {
            return Correction::None;
        }
        let Some(min) = self.window_min() else {
            return Correction::None;
        };
        // The dead band is [target, target + 2·band]: the backoff is a floor.
        let error = min - (self.target + self.band);
        let limit = if self.correcting {
            self.band / 4
        } else {
            self.band
        };
        if error.abs() <= limit {
            self.correcting = false;
            return Correction::None;
        }
        self.correcting = true;
        if self.since_correction < self.min_gap {
            return Correction::None;
        }
        let (correction, shift) = if error > 0 {
            if level <= requested {
                return Correction::None;
            }
            self.counters.drops += 1;
            (Correction::Drop, -1)
        } else {
            if requested < 2 {
                return Correction::None;
            }
            self.counters.repeats += 1;
            (Correction::Repeat, 1)
        };
        // Every later level moves by one frame: so do the remembered ones.
        for m in self.mins.iter_mut().chain([&mut self.current]) {
            if *m != i64::MAX {
                *m += shift;
            }
        }
        self.since_correction = 0;
        correction
    }

    /// The callback's entry point: `available` frames were in the ring, the
    /// backoff state machine planned `plan` for `requested` frames and
    /// `restarted` says whether playback (re)started in this callback.
    /// Corrects only a callback that plays a whole buffer from the ring in
    /// steady playback; any other (start, underrun, latency drop, buffering)
    /// resets the average, since the backoff logic moved the level itself.
    pub fn on_plan(
        &mut self,
        available: usize,
        requested: usize,
        plan: &Plan,
        restarted: bool,
    ) -> Correction {
        let steady = plan.drop == 0 && plan.lead == 0 && plan.play == requested && !restarted;
        if steady {
            self.on_callback(available, requested)
        } else {
            self.reset();
            Correction::None
        }
    }
}

#[cfg(test)]
mod tests;
