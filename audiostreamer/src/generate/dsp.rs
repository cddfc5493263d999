//! Deterministic maths for the generator: sine, exponential and powers of two
//! built only from IEEE 754 `+ − × ÷`, `floor` and `round` (all exactly
//! specified), so the stems are byte-identical on every machine, plus the
//! small one-pole filters the instruments share.
//!
//! The platform's `sin`/`exp` (libm) may differ in the last bit between
//! systems; these polynomial versions are accurate to ~1e-13, far below the
//! 16-bit quantisation step, and give the same bits everywhere.

use std::f64::consts::{LN_2, PI};

/// `sin(2π·t)` for `t` in turns (cycles); any finite `t`.
pub fn sin_turns(t: f64) -> f64 {
    // Reduce to y in [-0.25, 0.25] turns using sin's symmetries.
    let mut y = t - t.floor(); // [0, 1)
    if y >= 0.5 {
        y -= 1.0; // [-0.5, 0.5)
    }
    if y > 0.25 {
        y = 0.5 - y;
    } else if y < -0.25 {
        y = -0.5 - y;
    }
    let x = 2.0 * PI * y; // [-π/2, π/2]
    let x2 = x * x;
    // Taylor series to x^21: truncation error below (π/2)^23/23! ≈ 1e-18.
    let mut term = x;
    let mut sum = x;
    let mut n = 1.0;
    for _ in 0..10 {
        term *= -x2 / ((n + 1.0) * (n + 2.0));
        sum += term;
        n += 2.0;
    }
    sum
}

/// `cos(2π·t)` for `t` in turns.
pub fn cos_turns(t: f64) -> f64 {
    sin_turns(t + 0.25)
}

/// `e^x`; returns 0 below −700 and saturates at `e^700`.
pub fn exp(x: f64) -> f64 {
    if x < -700.0 {
        return 0.0;
    }
    let x = x.min(700.0);
    // x = k·ln2 + r with |r| ≤ ln2/2; e^x = 2^k · e^r.
    let k = (x / LN_2).round();
    let r = x - k * LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=14 {
        term *= r / f64::from(i);
        sum += term;
    }
    sum * pow2_int(k as i32)
}

/// `2^x` for real `x`.
pub fn pow2(x: f64) -> f64 {
    exp(x * LN_2)
}

/// `2^k` exactly, built from the exponent bits (k within the normal range).
fn pow2_int(k: i32) -> f64 {
    let k = k.clamp(-1022, 1023);
    f64::from_bits(((1023 + k) as u64) << 52)
}

/// Converts decibels to a linear amplitude factor.
pub fn db_to_gain(db: f64) -> f64 {
    pow2(db / 20.0 * std::f64::consts::LOG2_10)
}

/// One-pole low-pass filter `y += a·(x − y)`.
#[derive(Debug, Clone, Copy)]
pub struct OnePole {
    a: f64,
    y: f64,
}

impl OnePole {
    /// A low-pass with its −3 dB point near `cutoff_hz` (clamped below Nyquist).
    pub fn lowpass(cutoff_hz: f64, rate: u32) -> Self {
        let fc = cutoff_hz.min(0.45 * f64::from(rate));
        Self {
            a: 1.0 - exp(-2.0 * PI * fc / f64::from(rate)),
            y: 0.0,
        }
    }

    /// Filters one sample; returns the low-passed value.
    pub fn process(&mut self, x: f64) -> f64 {
        self.y += self.a * (x - self.y);
        self.y
    }

    /// Filters one sample; returns the high-passed value (`x − low-pass`).
    pub fn highpass(&mut self, x: f64) -> f64 {
        x - self.process(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_matches_libm_closely() {
        for i in -2000..=2000 {
            let t = f64::from(i) * 0.001_37;
            let want = (2.0 * PI * t).sin();
            assert!((sin_turns(t) - want).abs() < 1e-12, "t={t}");
            assert!((cos_turns(t) - (2.0 * PI * t).cos()).abs() < 1e-12, "t={t}");
        }
        assert_eq!(sin_turns(0.0), 0.0);
        assert!((sin_turns(0.25) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn exp_and_pow2_match_libm_closely() {
        for i in -400..=100 {
            let x = f64::from(i) * 0.173;
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-14, "x={x} rel={rel}");
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(pow2(3.0), 8.0);
        assert!((pow2(1.0 / 12.0) - 2f64.powf(1.0 / 12.0)).abs() < 1e-15);
        assert!((db_to_gain(-6.0) - 0.501_187_233_627).abs() < 1e-12);
    }

    #[test]
    fn one_pole_passes_dc_and_blocks_it_as_highpass() {
        let mut lp = OnePole::lowpass(100.0, 44_100);
        let mut hp = OnePole::lowpass(100.0, 44_100);
        let (mut l, mut h) = (0.0, 1.0);
        for _ in 0..44_100 {
            l = lp.process(1.0);
            h = hp.highpass(1.0);
        }
        assert!((l - 1.0).abs() < 1e-9 && h.abs() < 1e-9);
    }
}
