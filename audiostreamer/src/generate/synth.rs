//! Sound-making building blocks: envelopes, a band-limited additive
//! oscillator, and the fades at the ends of a stem. Time is in seconds as
//! `f64`; everything is deterministic (see `dsp.rs`).

use super::dsp::{exp, sin_turns};

/// An attack–decay–sustain–release envelope. The attack and the release are
/// raised-cosine ramps (no corner, so no click); after the attack the level
/// falls exponentially towards the sustain level with time constant `decay`. With `sustain = 0`
/// it is a pluck.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Env {
    /// Rise time from 0 to 1, seconds.
    pub attack: f64,
    /// Time constant of the fall from 1 to `sustain`, seconds.
    pub decay: f64,
    /// Level held while the note is on, 0..=1.
    pub sustain: f64,
    /// Fall time from the level at note-off to 0, seconds.
    pub release: f64,
}

impl Env {
    /// The level `t` seconds after note-on for a note held `gate` seconds;
    /// exactly 0 from `gate + release` on.
    pub fn level(&self, t: f64, gate: f64) -> f64 {
        if t < 0.0 {
            return 0.0;
        }
        if t < gate {
            return self.held(t);
        }
        let r = t - gate;
        if r >= self.release {
            return 0.0;
        }
        self.held(gate) * ramp_down(r / self.release)
    }

    /// How long the note sounds in total: `gate + release`.
    pub fn length(&self, gate: f64) -> f64 {
        gate + self.release
    }

    fn held(&self, t: f64) -> f64 {
        let rise = if t < self.attack {
            1.0 - ramp_down(t / self.attack)
        } else {
            1.0
        };
        let fall =
            self.sustain + (1.0 - self.sustain) * exp(-(t - self.attack).max(0.0) / self.decay);
        rise * fall
    }
}

/// Raised-cosine ramp from 1 (x = 0) to 0 (x ≥ 1).
pub fn ramp_down(x: f64) -> f64 {
    if x <= 0.0 {
        1.0
    } else if x >= 1.0 {
        0.0
    } else {
        (0.5 + 0.5 * sin_turns(0.25 + 0.5 * x)).max(0.0)
    }
}

/// `Σ amps[k-1] · sin(2π·k·phase)` for the harmonics `k` whose frequency
/// `k × freq` stays below `limit_hz`: a band-limited oscillator (no
/// aliasing). Uses the Chebyshev recurrence, so one sine and one cosine per
/// sample whatever the number of harmonics.
pub fn harmonics(phase: f64, freq: f64, amps: &[f64], limit_hz: f64) -> f64 {
    let s1 = sin_turns(phase);
    let c2 = 2.0 * sin_turns(phase + 0.25);
    let (mut prev, mut cur) = (0.0, s1); // sin(0·x), sin(1·x)
    let mut sum = 0.0;
    for (k, &a) in amps.iter().enumerate() {
        if (k + 1) as f64 * freq >= limit_hz {
            break;
        }
        sum += a * cur;
        let next = c2 * cur - prev;
        prev = cur;
        cur = next;
    }
    sum
}

/// The harmonic limit for a sample rate: 18 kHz or 0.45 × rate, whichever is lower.
pub fn harmonic_limit(rate: u32) -> f64 {
    (0.45 * f64::from(rate)).min(18_000.0)
}

/// Fades the first `fade_in` and last `fade_out` seconds of `buf` with
/// raised-cosine ramps, so the file starts and ends at silence.
pub fn fade_edges(buf: &mut [f64], rate: u32, fade_in: f64, fade_out: f64) {
    let n = buf.len();
    let fi = ((fade_in * f64::from(rate)) as usize).min(n);
    let fo = ((fade_out * f64::from(rate)) as usize).min(n);
    for (i, s) in buf.iter_mut().take(fi).enumerate() {
        *s *= 1.0 - ramp_down(i as f64 / fi as f64);
    }
    for i in 0..fo {
        // The very last sample gets gain 0.
        buf[n - 1 - i] *= 1.0 - ramp_down(i as f64 / fo as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAD: Env = Env {
        attack: 0.2,
        decay: 0.5,
        sustain: 0.6,
        release: 0.4,
    };

    #[test]
    fn adsr_shape() {
        assert_eq!(PAD.level(-0.1, 1.0), 0.0);
        assert_eq!(PAD.level(0.0, 1.0), 0.0);
        // Half-way up the attack the raised cosine is at half level.
        assert!((PAD.level(0.1, 1.0) - 0.5).abs() < 1e-12);
        assert_eq!(PAD.level(0.2, 1.0), 1.0);
        // One decay time constant after the attack: 1/e of the way to sustain.
        let want = 0.6 + 0.4 * (-1.0f64).exp();
        assert!((PAD.level(0.7, 1.0) - want).abs() < 1e-12);
        // Rising through the attack, then falling towards the sustain level.
        let l: Vec<f64> = (0..=40)
            .map(|i| PAD.level(f64::from(i) * 0.005, 1.0))
            .collect();
        assert!(l.windows(2).all(|w| w[1] >= w[0]));
        assert!(PAD.level(0.3, 1.0) > PAD.level(0.9, 1.0));
        assert!((PAD.level(0.999, 100.0) - PAD.level(0.999, 1.0)).abs() < 1e-12);
        assert!((PAD.level(30.0, 100.0) - 0.6).abs() < 1e-9);
        // Release: half the note-off level half-way, zero at the end.
        let off = PAD.level(1.0, 1.0);
        assert!((PAD.level(1.2, 1.0) - off / 2.0).abs() < 1e-12);
        assert_eq!(PAD.level(1.4, 1.0), 0.0);
        assert_eq!(PAD.length(1.0), 1.4);
    }

    #[test]
    fn pluck_decays_exponentially() {
        let pluck = Env {
            attack: 0.0,
            decay: 0.1,
            sustain: 0.0,
            release: 0.05,
        };
        assert_eq!(pluck.level(0.0, 1.0), 1.0);
        assert!((pluck.level(0.1, 1.0) - (-1.0f64).exp()).abs() < 1e-12);
        assert!((pluck.level(0.2, 1.0) - (-2.0f64).exp()).abs() < 1e-12);
    }

    #[test]
    fn harmonics_are_sines_and_band_limited() {
        let amps = [1.0, 0.5, 0.25];
        for i in 0..100 {
            let p = f64::from(i) * 0.013;
            let want: f64 = amps
                .iter()
                .enumerate()
                .map(|(k, a)| a * (2.0 * std::f64::consts::PI * (k + 1) as f64 * p).sin())
                .sum();
            assert!((harmonics(p, 100.0, &amps, 20_000.0) - want).abs() < 1e-12);
            // At 300 Hz with a 700 Hz limit only the fundamental and the 2nd remain.
            let two = (2.0 * std::f64::consts::PI * p).sin()
                + 0.5 * (4.0 * std::f64::consts::PI * p).sin();
            assert!((harmonics(p, 300.0, &amps, 700.0) - two).abs() < 1e-12);
        }
        assert_eq!(harmonic_limit(44_100), 18_000.0);
        assert_eq!(harmonic_limit(8_000), 3_600.0);
    }

    #[test]
    fn fades_reach_silence_at_both_ends() {
        let mut b = vec![1.0; 1000];
        fade_edges(&mut b, 1000, 0.1, 0.2);
        assert_eq!(b[0], 0.0);
        assert_eq!(b[999], 0.0);
        assert!((b[50] - 0.5).abs() < 1e-12);
        assert_eq!(b[500], 1.0);
        assert!(b[..100].windows(2).all(|w| w[1] >= w[0]));
    }
}
