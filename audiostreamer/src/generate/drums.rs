//! The drum part: the groove (which drum on which sixteenth step) and the
//! three synthesized drums: a kick (a sine whose pitch drops fast, with a
//! fast decay), a snare (a band-passed noise burst over a short body tone)
//! and a closed hi-hat (high-passed noise, very short). Noise comes from the
//! seeded [`Rng`], so every hit is reproducible.

use super::dsp::{exp, sin_turns, OnePole};
use super::music::{Grid, BARS_PER_CHORD, PROGRESSION, STEPS_PER_BAR};
use super::rng::Rng;

/// One of the three drums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drum {
    /// Bass drum.
    Kick,
    /// Snare drum.
    Snare,
    /// Closed hi-hat.
    Hat,
}

/// A drum hit on the sixteenth grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Sixteenth step from the beginning.
    pub step: u64,
    /// Which drum.
    pub drum: Drum,
    /// Velocity 0..=1.
    pub vel: f64,
}

/// The groove: kick on beats 1 and 3 (plus the "and" of 3 in every second
/// bar), snare on 2 and 4, hi-hats on the eighths with the off-beats
/// accented and a few seeded sixteenth ghost notes, and a short snare pickup
/// at the end of every pass of the progression.
pub fn pattern(bars: u64, seed: u64) -> Vec<Hit> {
    let mut rng = Rng::new(seed);
    let pass = PROGRESSION.len() as u64 * BARS_PER_CHORD;
    let mut hits = Vec::new();
    for bar in 0..bars {
        let at = |s: u64| bar * STEPS_PER_BAR + s;
        let hit = |step, drum, vel| Hit { step, drum, vel };
        hits.push(hit(at(0), Drum::Kick, 1.0));
        hits.push(hit(at(8), Drum::Kick, 0.9));
        if bar % 2 == 1 {
            hits.push(hit(at(10), Drum::Kick, 0.7));
        }
        hits.push(hit(at(4), Drum::Snare, 1.0));
        hits.push(hit(at(12), Drum::Snare, 1.0));
        if bar % pass == pass - 1 {
            hits.push(hit(at(14), Drum::Snare, 0.45));
            hits.push(hit(at(15), Drum::Snare, 0.6));
        }
        for s in 0..STEPS_PER_BAR {
            if s % 2 == 0 {
                let vel = if s % 4 == 2 { 1.0 } else { 0.7 };
                hits.push(hit(at(s), Drum::Hat, vel));
            } else if rng.chance(0.25) {
                hits.push(hit(at(s), Drum::Hat, 0.35));
            }
        }
    }
    hits.sort_by_key(|h| h.step);
    hits
}

/// The sample positions of the kicks (for ducking the bass and the pad).
pub fn kick_samples(hits: &[Hit], rate: u32) -> Vec<usize> {
    let grid = Grid::new(rate);
    hits.iter()
        .filter(|h| h.drum == Drum::Kick)
        .map(|h| grid.sample_of(h.step) as usize)
        .collect()
}

/// Renders the hits into a mono buffer of `frames` samples (unscaled).
pub fn render(hits: &[Hit], rate: u32, frames: usize, seed: u64) -> Vec<f64> {
    let grid = Grid::new(rate);
    let mut rng = Rng::new(seed);
    let mut out = vec![0.0; frames];
    for h in hits {
        let start = grid.sample_of(h.step) as usize;
        let sound = match h.drum {
            Drum::Kick => kick(rate, &mut rng),
            Drum::Snare => snare(rate, &mut rng),
            Drum::Hat => hat(rate, &mut rng),
        };
        for (o, s) in out.iter_mut().skip(start).zip(sound) {
            *o += h.vel * s;
        }
    }
    out
}

fn samples(seconds: f64, rate: u32) -> usize {
    (seconds * f64::from(rate)) as usize
}

/// Kick: a sine gliding from ~155 Hz down to 45 Hz (time constant 35 ms),
/// decaying with 160 ms, with a 1 ms attack and a faint noise click.
pub fn kick(rate: u32, rng: &mut Rng) -> Vec<f64> {
    let dt = 1.0 / f64::from(rate);
    let mut click = OnePole::lowpass(3_000.0, rate);
    let mut phase = 0.0;
    (0..samples(0.5, rate))
        .map(|i| {
            let t = i as f64 * dt;
            let f = 45.0 + 110.0 * exp(-t / 0.035);
            let attack = (t / 0.001).min(1.0);
            let body = sin_turns(phase) * exp(-t / 0.16);
            phase += f * dt;
            phase -= phase.floor();
            let tail = 1.0 - (t / 0.5) * (t / 0.5); // reach zero at the end
            attack * tail * (body + 0.3 * click.process(rng.noise()) * exp(-t / 0.004))
        })
        .collect()
}

/// Snare: noise band-passed to ~1.5–8 kHz decaying with 90 ms, over a body
/// of 185 Hz and 330 Hz sines decaying with 50 ms.
pub fn snare(rate: u32, rng: &mut Rng) -> Vec<f64> {
    let dt = 1.0 / f64::from(rate);
    let mut hp = OnePole::lowpass(1_500.0, rate);
    let mut lp = OnePole::lowpass(8_000.0, rate);
    let len = samples(0.35, rate);
    (0..len)
        .map(|i| {
            let t = i as f64 * dt;
            let noise = lp.process(hp.highpass(rng.noise()));
            let body = 0.6 * sin_turns(185.0 * t) + 0.3 * sin_turns(330.0 * t);
            let tail = 1.0 - (t / 0.35) * (t / 0.35);
            let attack = (t / 0.001).min(1.0);
            attack * tail * (0.9 * noise * exp(-t / 0.09) + body * exp(-t / 0.05))
        })
        .collect()
}

/// Closed hi-hat: white noise through two 7 kHz high-passes, decaying with 18 ms.
pub fn hat(rate: u32, rng: &mut Rng) -> Vec<f64> {
    let dt = 1.0 / f64::from(rate);
    let mut hp1 = OnePole::lowpass(7_000.0, rate);
    let mut hp2 = OnePole::lowpass(7_000.0, rate);
    let len = samples(0.09, rate);
    (0..len)
        .map(|i| {
            let t = i as f64 * dt;
            let tail = 1.0 - (t / 0.09) * (t / 0.09);
            0.5 * tail * hp2.highpass(hp1.highpass(rng.noise())) * exp(-t / 0.018)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groove_has_backbeat_and_is_seeded() {
        let hits = pattern(8, 3);
        assert_eq!(hits, pattern(8, 3));
        let on = |drum, step| hits.iter().any(|h| h.drum == drum && h.step == step);
        assert!(on(Drum::Kick, 0) && on(Drum::Kick, 8) && on(Drum::Kick, 16 + 10));
        assert!(on(Drum::Snare, 4) && on(Drum::Snare, 12) && !on(Drum::Snare, 0));
        assert!(on(Drum::Snare, 7 * 16 + 15)); // pickup before the progression repeats
        assert!((0..128).step_by(2).all(|s| on(Drum::Hat, s)));
        assert_eq!(kick_samples(&hits, 44_100)[1], 8 * 6615);
    }

    #[test]
    fn kick_pitch_drops_and_hits_decay_to_silence() {
        let mut rng = Rng::new(1);
        let k = kick(44_100, &mut rng);
        // Zero crossings in the first 40 ms outnumber those in a later 40 ms window.
        let crossings = |s: &[f64]| s.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!(crossings(&k[..1764]) > crossings(&k[8820..10584]));
        for sound in [k, snare(44_100, &mut rng), hat(44_100, &mut rng)] {
            assert!(sound.iter().any(|s| s.abs() > 0.05));
            assert!(sound[sound.len() - 10..].iter().all(|s| s.abs() < 1e-3));
        }
    }
}
