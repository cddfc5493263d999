//! Keeps a source's buffered delay where it started when the source's clock
//! runs fast or slow against the node's: a sans-IO controller that watches
//! the wait of every in-order packet and asks for one-sample drops or
//! repeats while the smoothed wait is off by more than a band: one per
//! block just outside the band, one more per quarter band beyond it (up to
//! [`MAX_PER_BLOCK`]), so a sender whose clock is percents off (the
//! original streamer sleeps 25 ms after each send and runs 0.6-3 % slow)
//! is held too, not only a crystal's few hundred ppm.
//!
//! The reference is the average wait over the first packets (a warm-up), not
//! the nominal target, so a stream whose first packet happened to be early
//! or late is not "corrected" into glitches: with equal clocks it never
//! adjusts, however jittery the network. Only a sustained trend (drift) or a
//! deliberate target change (`--jitter-ms auto`) moves it.
//!
//! The reference has a floor (the caller's: half the target plus one
//! block, i.e. half the target of margin): a source that fell behind
//! during the warm-up (a starved sender catching up, a route change) would
//! otherwise teach the controller that packets arriving late is normal, and
//! it would then shrink the delay until they are (measured: 40 % late
//! packets from 2000 sources whose generator lagged 70 ms while starting).

use crate::jitter_buffer::Adjust;

/// Packets whose largest wait is the controller's measure: network jitter
/// and reordering only ever delay a packet (shorten its wait), so the
/// least-delayed packet of the last few follows the clocks, not the jitter.
const WINDOW: usize = 16;

/// Most one-sample corrections in one block (13 % of time in a 220-frame
/// block would be audible as pitch; 16 is 7 %).
pub const MAX_PER_BLOCK: u32 = 16;

/// Drift controller of one source; all quantities in sample periods.
#[derive(Debug, Clone)]
pub struct DriftControl {
    warmup: u32,
    warmup_seen: u32,
    warmup_sum: f64,
    /// Smoothed wait; `None` during warm-up.
    smoothed: Option<f64>,
    /// The same average during the warm-up (where `smoothed` starts).
    tracked: Option<f64>,
    /// The next wait restarts the averages (after a re-anchor).
    resync: bool,
    /// The last [`WINDOW`] waits (`recent_len` of them filled).
    recent: [f64; WINDOW],
    recent_len: usize,
    recent_next: usize,
    reference: f64,
    /// Lowest reference the warm-up may set.
    floor: f64,
    /// Sum of target shifts, kept apart so shifts made during warm-up
    /// survive the reference being set from the warm-up mean.
    shifts: f64,
    band: f64,
    alpha: f64,
    /// True while correcting, until back within half the band (hysteresis).
    correcting: bool,
    max_per_block: u32,
    drops: u64,
    repeats: u64,
}

impl DriftControl {
    /// A controller that averages `warmup` packets for its reference (at
    /// least `floor`), then corrects when the smoothed wait leaves
    /// `reference ± band`.
    pub fn new(warmup: u32, band: f64, floor: f64) -> Self {
        Self {
            warmup: warmup.max(1),
            warmup_seen: 0,
            warmup_sum: 0.0,
            smoothed: None,
            tracked: None,
            resync: false,
            recent: [0.0; WINDOW],
            recent_len: 0,
            recent_next: 0,
            reference: 0.0,
            floor,
            shifts: 0.0,
            band,
            // About 8 packets over the window's maximum: short enough that
            // a steep trend (a clock percents off) is not lagged into
            // lateness; the window already took the jitter out.
            alpha: 1.0 / 8.0,
            correcting: false,
            max_per_block: MAX_PER_BLOCK,
            drops: 0,
            repeats: 0,
        }
    }

    /// Records the wait (playout time − arrival time, negative when late) of
    /// a packet; every packet but duplicates counts, so that the sample is
    /// not biased towards the early ones.
    pub fn on_wait(&mut self, wait: f64) {
        if self.resync {
            self.recent_len = 0;
            self.recent_next = 0;
        }
        self.recent[self.recent_next] = wait;
        self.recent_next = (self.recent_next + 1) % WINDOW;
        self.recent_len = (self.recent_len + 1).min(WINDOW);
        let wait = self.recent[..self.recent_len]
            .iter()
            .fold(f64::NEG_INFINITY, |a, &w| a.max(w));
        // The average runs from the first packet, so at the end of the
        // warm-up it already follows a trend instead of starting from the
        // warm-up's mean (a sender percents slow would drift into lateness
        // while the average caught up).
        let tracked = match self.tracked {
            Some(t) => t + (wait - t) * self.alpha,
            None => wait,
        };
        self.tracked = Some(tracked);
        if std::mem::take(&mut self.resync) {
            // The stream was placed afresh, this packet exactly at the
            // delay a new stream starts with: that is the reference now,
            // without a warm-up (whatever the old timing taught is void).
            self.tracked = Some(wait);
            self.smoothed = Some(wait);
            self.reference = wait.max(self.floor) + self.shifts;
            self.correcting = false;
            return;
        }
        match &mut self.smoothed {
            Some(s) => *s += (wait - *s) * self.alpha,
            // The warm-up counts only full windows: a window of the first
            // few packets sees less of a bursty sender's jitter than the
            // steady state's, and a reference taken from it sat below the
            // steady wait (measured: ffmpeg's `-re`, which sends its
            // packets in bursts, had 90 samples "corrected" in 1.5 s).
            None if self.recent_len < WINDOW => {}
            None => {
                self.warmup_seen += 1;
                self.warmup_sum += wait;
                if self.warmup_seen >= self.warmup {
                    let mean = self.warmup_sum / f64::from(self.warmup_seen);
                    self.reference = mean.max(self.floor) + self.shifts;
                    self.smoothed = Some(tracked);
                }
            }
        }
    }

    /// The stream was placed afresh (re-anchored): the next wait, the one
    /// its placement gives, becomes the reference at once, with no
    /// warm-up, so a sender whose clock is far off keeps being corrected
    /// instead of drifting through a new warm-up into lateness again.
    pub fn resync(&mut self) {
        self.resync = true;
    }

    /// Limits the corrections per block to `n` (at least 1; a block of
    /// `frames` frames takes at most `frames / 2`).
    pub fn with_max_per_block(mut self, n: u32) -> Self {
        self.max_per_block = n.clamp(1, MAX_PER_BLOCK);
        self
    }

    /// Moves the reference by `delta` samples (a new jitter target).
    pub fn shift_reference(&mut self, delta: f64) {
        self.shifts += delta;
        if self.smoothed.is_some() {
            self.reference += delta;
        }
    }

    /// The adjustment for the next block and how many one-sample
    /// corrections it makes (0 with `Adjust::None`); call once per block.
    pub fn next_correction(&mut self) -> (Adjust, u32) {
        let Some(smoothed) = self.smoothed.as_mut() else {
            return (Adjust::None, 0);
        };
        let error = *smoothed - self.reference;
        let limit = if self.correcting {
            self.band / 2.0
        } else {
            self.band
        };
        if error.abs() <= limit {
            self.correcting = false;
            return (Adjust::None, 0);
        }
        self.correcting = true;
        let beyond = (error.abs() - limit) / (self.band / 4.0).max(1.0);
        let n = (1 + beyond as u32).min(self.max_per_block);
        // Our own corrections change every later wait; fold them into the
        // smoothed value and the remembered waits now instead of waiting
        // for packets to show them.
        let shift = if error > 0.0 {
            -f64::from(n)
        } else {
            f64::from(n)
        };
        for w in &mut self.recent[..self.recent_len] {
            *w += shift;
        }
        if error > 0.0 {
            *smoothed -= f64::from(n);
            self.drops += u64::from(n);
            (Adjust::Drop, n)
        } else {
            *smoothed += f64::from(n);
            self.repeats += u64::from(n);
            (Adjust::Repeat, n)
        }
    }

    /// The direction of the next block's corrections (see
    /// [`DriftControl::next_correction`]).
    pub fn next_adjust(&mut self) -> Adjust {
        self.next_correction().0
    }

    /// Samples dropped and repeated so far.
    pub fn corrections(&self) -> (u64, u64) {
        (self.drops, self.repeats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resync_makes_the_next_wait_the_reference() {
        let mut d = DriftControl::new(100, 132.0, 661.0);
        for _ in 0..30 {
            d.on_wait(5000.0);
            d.next_adjust();
        }
        d.resync();
        for _ in 0..200 {
            d.on_wait(1102.0);
            assert_eq!(d.next_adjust(), Adjust::None);
        }
    }

    #[test]
    fn delayed_packets_do_not_move_the_measure() {
        let mut d = DriftControl::new(16, 132.0, 0.0);
        // Every third packet 30 ms (1323 samples) late: jitter only delays.
        for i in 0..10_000u32 {
            d.on_wait(if i % 3 == 0 { 1000.0 - 1323.0 } else { 1000.0 });
            assert_eq!(d.next_adjust(), Adjust::None);
        }
    }

    #[test]
    fn steady_jittery_waits_never_adjust() {
        let mut d = DriftControl::new(64, 132.0, 0.0);
        // Waits alternating ±400 samples around 1000: noisy but stationary.
        for i in 0..100_000u32 {
            d.on_wait(if i % 2 == 0 { 600.0 } else { 1400.0 });
            assert_eq!(d.next_adjust(), Adjust::None);
        }
    }

    #[test]
    fn growing_wait_is_corrected_with_drops_then_stops() {
        let mut d = DriftControl::new(4, 10.0, 0.0);
        // A full window, then the warm-up's four.
        for _ in 0..WINDOW + 4 {
            d.on_wait(100.0);
        }
        // The wait jumps by 30 samples and stays: expect ~25 drops (down to
        // within half the band), then nothing.
        let mut drops = 0;
        for _ in 0..10_000 {
            // Each drop plays everything later one sample sooner.
            d.on_wait(130.0 - f64::from(drops));
            match d.next_adjust() {
                Adjust::Drop => drops += 1,
                Adjust::None => {}
                Adjust::Repeat => panic!("wrong direction"),
            }
        }
        assert!((20..=30).contains(&drops), "drops = {drops}");
    }

    #[test]
    fn a_bursty_sender_is_not_corrected() {
        // Packets in bursts of three (ffmpeg's `-re`): waits 0, 1000 and
        // 2000 samples, repeating, with equal clocks. A warm-up over
        // windows not yet full would average 1880 and then "correct" the
        // steady 2000.
        let mut d = DriftControl::new(25, 100.0, 0.0);
        for i in 0..100_000u32 {
            d.on_wait([0.0, 1000.0, 2000.0][(i % 3) as usize]);
            assert_eq!(d.next_adjust(), Adjust::None, "packet {i}");
        }
    }

    #[test]
    fn a_warm_up_of_late_packets_does_not_become_the_reference() {
        // Target 100 (floor 50); the warm-up saw packets arriving late
        // (waits of -20), so the delay grows to the floor instead of
        // staying where every packet is late.
        let mut d = DriftControl::new(4, 10.0, 50.0);
        for _ in 0..4 {
            d.on_wait(-20.0);
        }
        let mut repeats = 0;
        for _ in 0..10_000 {
            d.on_wait(-20.0 + f64::from(repeats));
            match d.next_adjust() {
                Adjust::Repeat => repeats += 1,
                Adjust::None => {}
                Adjust::Drop => panic!("wrong direction"),
            }
        }
        assert!((60..=70).contains(&repeats), "repeats = {repeats}");
    }
}
