//! Drift compensation of the playback path: holds the ring's fill level at
//! the jitter backoff when the sound card consumes frames at a slightly
//! different rate than the network delivers them (its clock differs from
//! the sender's; the PulseAudio null sink runs 100–455 ppm fast).
//!
//! Sans-IO: once per callback in which it plays a whole buffer from the
//! ring, the audio callback passes the level it finds (frames in the ring
//! before it takes any), how much of the latest network block is still
//! "pending" (see below) and the frames the device wants; it gets back
//! whether to drop one frame (take one extra frame from the ring) or repeat
//! one (take one frame less and hold the previous frame one extra output
//! frame). Either changes the level by exactly one frame and nothing else.
//!
//! The measure. The level a callback finds saw-tooths: each network block
//! adds a block at once, each callback takes a period. Where in that
//! saw-tooth a callback falls depends on the phase between two clocks (the
//! sender's blocks, the device's periods), and that phase slides slowly and
//! in steps: with 220-frame blocks and 588-frame periods the level found
//! falls 4 frames every 3 callbacks for 2.2 s and then jumps up a block,
//! though nothing is gained or lost. A minimum or a mean of such samples
//! follows the phase, not the latency. So each sample is first corrected
//! by the part of the latest block a continuous stream would not yet have
//! delivered (`pending`: the block's frames less the device rate times the
//! block's age, never below zero). That level, `available − pending`, is
//! the same at every phase: in a steady stream it is the level a callback
//! finds just before a block arrives, the low point of the saw-tooth. A
//! late block lowers it by its lateness, not by a whole block.
//!
//! Rules (frames at the device rate, the rate of the ring):
//! - The controller holds the **mean** of that level over a sliding window
//!   of [`BUCKETS`] buckets of [`BUCKET_MS`] of output each (plus the bucket
//!   being filled; fixed arrays, no allocation) at the **backoff**: the ring
//!   then runs down to the backoff just before each block arrives, the
//!   margin against an underrun is backoff − period, and a frame waits the
//!   backoff from its (continuous-stream) arrival to the device. A single
//!   late block or a phase step barely moves a mean of hundreds of samples;
//!   drift moves it steadily, so corrections come evenly, one at a time.
//! - A start above or below the backoff is corrected like drift: there is
//!   no warm-up reference that would keep such an offset.
//! - When the mean leaves `backoff ± band` ([`BAND_MS`]), one frame is
//!   corrected per callback, and at most one per [`MIN_GAP_MS`] of output,
//!   until it is back within `band / 4` (hysteresis). On loopback the mean
//!   then only moves with drift, and corrections go one way; heavy jitter
//!   (3 ms on every block, simulated) carries it across the band's edge
//!   now and then (up to 149 corrections in 570 s, both ways). The window
//!   is 2 s because with 1 s that jitter and 20 ms periods made 1337. Each correction moves
//!   every later level by exactly one frame, so it is folded into the
//!   window at once (every remembered level moves by one frame): no
//!   overshoot, no waiting for the window to see it.
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

/// Half-width of the dead band around the backoff, in milliseconds.
pub const BAND_MS: f64 = 0.25;
/// Length of one bucket of the window, in milliseconds of output.
pub const BUCKET_MS: f64 = 125.0;
/// Completed buckets in the window (plus the one being filled).
pub const BUCKETS: usize = 16;
/// Least distance between two corrections, in milliseconds of output.
pub const MIN_GAP_MS: f64 = 4.0;

/// Sum, count and minimum of the levels of one bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    sum: i64,
    count: i64,
    min: i64,
}

impl Bucket {
    const EMPTY: Self = Self {
        sum: 0,
        count: 0,
        min: i64::MAX,
    };

    fn add(&mut self, level: i64) {
        self.sum += level;
        self.count += 1;
        self.min = self.min.min(level);
    }

    /// Every level in it moves by `shift` frames.
    fn shift(&mut self, shift: i64) {
        if self.count > 0 {
            self.sum += shift * self.count;
            self.min += shift;
        }
    }
}

/// The level controller; see the module documentation.
#[derive(Debug, Clone)]
pub struct LevelControl {
    target: i64,
    band: i64,
    bucket_frames: u64,
    min_gap: u64,
    buckets: [Bucket; BUCKETS],
    next: usize,
    /// The bucket being filled, and its output frames.
    current: Bucket,
    current_frames: u64,
    /// Output frames since the last reset (saturating).
    since_reset: u64,
    correcting: bool,
    /// Output frames since the last correction (saturating).
    since_correction: u64,
    counters: LevelCounters,
}

impl LevelControl {
    /// A controller holding the level at `target_frames` (the backoff) at
    /// `rate` frames per second with the default band ([`BAND_MS`]), window
    /// ([`BUCKETS`] × [`BUCKET_MS`]) and spacing ([`MIN_GAP_MS`]).
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
            buckets: [Bucket::EMPTY; BUCKETS],
            next: 0,
            current: Bucket::EMPTY,
            current_frames: 0,
            since_reset: 0,
            correcting: false,
            since_correction: u64::MAX,
            counters: LevelCounters::default(),
        };
        c.reset();
        c
    }

    /// The level it holds the window mean at.
    pub fn target(&self) -> i64 {
        self.target
    }

    /// Half-width of the dead band, in frames.
    pub fn band(&self) -> i64 {
        self.band
    }

    /// Sum and count of the levels in the window.
    fn totals(&self) -> (i64, i64) {
        self.buckets
            .iter()
            .chain([&self.current])
            .fold((0, 0), |(s, n), b| (s + b.sum, n + b.count))
    }

    /// The mean level over the window; `None` right after a reset.
    pub fn window_mean(&self) -> Option<f64> {
        let (sum, count) = self.totals();
        (count > 0).then(|| sum as f64 / count as f64)
    }

    /// The least level over the window; `None` right after a reset.
    pub fn window_min(&self) -> Option<i64> {
        let m = self
            .buckets
            .iter()
            .chain([&self.current])
            .map(|b| b.min)
            .min()
            .unwrap_or(i64::MAX);
        (m != i64::MAX).then_some(m)
    }

    /// Corrections so far.
    pub fn counters(&self) -> LevelCounters {
        self.counters
    }

    /// Forgets the window (the level jumped for another reason).
    pub fn reset(&mut self) {
        self.buckets = [Bucket::EMPTY; BUCKETS];
        self.next = 0;
        self.current = Bucket::EMPTY;
        self.current_frames = 0;
        self.since_reset = 0;
        self.correcting = false;
    }

    /// One callback that found `available` frames in the ring, `pending` of
    /// them the part of the latest block a continuous stream would not yet
    /// have delivered, and plays `requested` frames from it: the correction
    /// to apply. A drop is only asked for when the ring holds
    /// `requested + 1` frames, a repeat only when `requested >= 2`.
    pub fn on_callback(
        &mut self,
        available: usize,
        pending: usize,
        requested: usize,
    ) -> Correction {
        let frames = requested as u64;
        self.current
            .add(available as i64 - pending.min(available) as i64);
        self.current_frames += frames;
        if self.current_frames >= self.bucket_frames {
            self.buckets[self.next] = self.current;
            self.next = (self.next + 1) % BUCKETS;
            self.current = Bucket::EMPTY;
            self.current_frames = 0;
        }
        self.since_reset = self.since_reset.saturating_add(frames);
        self.since_correction = self.since_correction.saturating_add(frames);
        if self.since_reset < self.bucket_frames {
            return Correction::None;
        }
        let (sum, count) = self.totals();
        if count == 0 {
            return Correction::None;
        }
        let error = sum as f64 / count as f64 - self.target as f64;
        let band = self.band as f64;
        let limit = if self.correcting { band / 4.0 } else { band };
        if error.abs() <= limit {
            self.correcting = false;
            return Correction::None;
        }
        self.correcting = true;
        if self.since_correction < self.min_gap {
            return Correction::None;
        }
        let (correction, shift) = if error > 0.0 {
            if available <= requested {
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
        for b in self.buckets.iter_mut().chain([&mut self.current]) {
            b.shift(shift);
        }
        self.since_correction = 0;
        correction
    }

    /// Whether a callback with this plan plays a whole buffer from the ring
    /// in steady playback (the only kind the controller measures and
    /// corrects).
    pub fn is_steady(&self, plan: &Plan, requested: usize, restarted: bool) -> bool {
        plan.drop == 0 && plan.lead == 0 && plan.play == requested && !restarted
    }

    /// The callback's entry point: `available` frames were in the ring
    /// (`pending` as in [`Self::on_callback`]), the backoff state machine
    /// planned `plan` for `requested` frames and `restarted` says whether
    /// playback (re)started in this callback. Corrects only a callback that
    /// plays a whole buffer from the ring in steady playback; any other
    /// (start, underrun, latency drop, buffering) resets the window, since
    /// the backoff logic moved the level itself.
    pub fn on_plan(
        &mut self,
        available: usize,
        pending: usize,
        requested: usize,
        plan: &Plan,
        restarted: bool,
    ) -> Correction {
        if self.is_steady(plan, requested, restarted) {
            self.on_callback(available, pending, requested)
        } else {
            self.reset();
            Correction::None
        }
    }
}

#[cfg(test)]
mod tests;
