//! Keeps a source's buffered delay where it started when the source's clock
//! runs fast or slow against the node's: a sans-IO controller that watches
//! the wait of every in-order packet and asks for a one-sample drop or
//! repeat per block while the smoothed wait is off by more than a band.
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

/// Drift controller of one source; all quantities in sample periods.
#[derive(Debug, Clone)]
pub struct DriftControl {
    warmup: u32,
    warmup_seen: u32,
    warmup_sum: f64,
    /// Smoothed wait; `None` during warm-up.
    smoothed: Option<f64>,
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
            reference: 0.0,
            floor,
            shifts: 0.0,
            band,
            alpha: 1.0 / 256.0,
            correcting: false,
            drops: 0,
            repeats: 0,
        }
    }

    /// Records the wait (playout time − arrival time, negative when late) of
    /// a packet; every packet but duplicates counts, so that the sample is
    /// not biased towards the early ones.
    pub fn on_wait(&mut self, wait: f64) {
        match &mut self.smoothed {
            Some(s) => *s += (wait - *s) * self.alpha,
            None => {
                self.warmup_seen += 1;
                self.warmup_sum += wait;
                if self.warmup_seen >= self.warmup {
                    let mean = self.warmup_sum / f64::from(self.warmup_seen);
                    self.reference = mean.max(self.floor) + self.shifts;
                    self.smoothed = Some(mean);
                }
            }
        }
    }

    /// Moves the reference by `delta` samples (a new jitter target).
    pub fn shift_reference(&mut self, delta: f64) {
        self.shifts += delta;
        if self.smoothed.is_some() {
            self.reference += delta;
        }
    }

    /// The adjustment for the next block; call once per block.
    pub fn next_adjust(&mut self) -> Adjust {
        let Some(smoothed) = self.smoothed.as_mut() else {
            return Adjust::None;
        };
        let error = *smoothed - self.reference;
        let limit = if self.correcting {
            self.band / 2.0
        } else {
            self.band
        };
        if error.abs() <= limit {
            self.correcting = false;
            return Adjust::None;
        }
        self.correcting = true;
        // Our own correction changes every later wait by one sample; fold it
        // into the smoothed value now instead of waiting for packets to show it.
        if error > 0.0 {
            *smoothed -= 1.0;
            self.drops += 1;
            Adjust::Drop
        } else {
            *smoothed += 1.0;
            self.repeats += 1;
            Adjust::Repeat
        }
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
        for _ in 0..4 {
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
