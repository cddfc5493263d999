//! The pitched instruments: a plucked bass, a soft pad with an arpeggio, and
//! a lead voice with vibrato and an echo. Each renders a list of
//! [`Note`]s into a mono `f64` buffer of a given length (unscaled; the
//! orchestration in `mod.rs` sets the levels).

use super::dsp::{exp, pow2, sin_turns};
use super::music::{note_freq, Grid, Note};
use super::synth::{harmonic_limit, harmonics, Env};

/// Start sample, gate length in seconds and frequency of a note.
fn place(note: &Note, grid: Grid, rate: u32) -> (usize, f64, f64) {
    let start = grid.sample_of(note.step);
    let end = grid.sample_of(note.step + note.len);
    let gate = (end - start) as f64 / f64::from(rate);
    (start as usize, gate, note_freq(f64::from(note.midi)))
}

/// Where and how loud one note sounds.
struct Placement {
    /// First sample.
    start: usize,
    /// Seconds from note-on to note-off.
    gate: f64,
    /// Amplitude factor.
    gain: f64,
    /// Oscillator phase at note-on, in turns.
    phase0: f64,
}

/// Adds one note to `out`: `voice(t, phase, freq)` gives the waveform value
/// at time `t` after note-on; `freq_at(t)` the instantaneous frequency.
fn add_note(
    out: &mut [f64],
    rate: u32,
    env: Env,
    at: Placement,
    mut freq_at: impl FnMut(f64) -> f64,
    mut voice: impl FnMut(f64, f64, f64) -> f64,
) {
    let dt = 1.0 / f64::from(rate);
    let len = (env.length(at.gate) * f64::from(rate)).ceil() as usize;
    let mut phase = at.phase0;
    for i in 0..len {
        let Some(slot) = out.get_mut(at.start + i) else {
            break;
        };
        let t = i as f64 * dt;
        let f = freq_at(t);
        *slot += at.gain * env.level(t, at.gate) * voice(t, phase, f);
        phase += f * dt;
        phase -= phase.floor();
    }
}

/// The bass: a saw-like additive tone whose upper harmonics die away faster
/// than the fundamental (the brightness of a plucked string), with a strong
/// fundamental for weight.
pub fn bass(notes: &[Note], rate: u32, frames: usize) -> Vec<f64> {
    const AMPS: [f64; 8] = [1.6, 0.5, 0.33, 0.25, 0.2, 0.16, 0.14, 0.12];
    let env = Env {
        attack: 0.003,
        decay: 0.45,
        sustain: 0.0,
        release: 0.04,
    };
    let grid = Grid::new(rate);
    let limit = harmonic_limit(rate).min(3_000.0);
    let mut out = vec![0.0; frames];
    for n in notes {
        let (start, gate, freq) = place(n, grid, rate);
        let at = Placement {
            start,
            gate,
            gain: n.vel,
            phase0: 0.0,
        };
        add_note(
            &mut out,
            rate,
            env,
            at,
            |_| freq,
            |t, phase, f| {
                // Harmonic k fades as brightness^(k-1).
                let brightness = exp(-t * 9.0);
                let mut amps = AMPS;
                let mut b = 1.0;
                for a in &mut amps {
                    *a *= b;
                    b *= brightness;
                }
                harmonics(phase, f, &amps, limit)
            },
        );
    }
    out
}

/// The chords: a pad of each triad (two voices per note detuned by ±6
/// cents, a soft spectrum, slow attack and release) plus a quiet plucked
/// eighth-note arpeggio an octave up.
pub fn chords(pad_notes: &[Note], arp_notes: &[Note], rate: u32, frames: usize) -> Vec<f64> {
    const PAD_AMPS: [f64; 6] = [1.0, 0.45, 0.25, 0.15, 0.1, 0.06];
    const ARP_AMPS: [f64; 3] = [1.0, 0.3, 0.1];
    let pad_env = Env {
        attack: 0.35,
        decay: 1.5,
        sustain: 0.8,
        release: 0.6,
    };
    let arp_env = Env {
        attack: 0.004,
        decay: 0.16,
        sustain: 0.0,
        release: 0.05,
    };
    let grid = Grid::new(rate);
    let limit = harmonic_limit(rate).min(5_000.0);
    let mut out = vec![0.0; frames];
    for (i, n) in pad_notes.iter().enumerate() {
        let (start, gate, freq) = place(n, grid, rate);
        for (v, cents) in [-6.0, 6.0].into_iter().enumerate() {
            let f = freq * pow2(cents / 1200.0);
            // Spread the starting phases so the voices do not peak together.
            let phase0 = ((i * 2 + v) as f64 * 0.381_966).fract();
            let at = Placement {
                start,
                gate,
                gain: 0.5 * n.vel,
                phase0,
            };
            add_note(
                &mut out,
                rate,
                pad_env,
                at,
                |_| f,
                |_, p, f| harmonics(p, f, &PAD_AMPS, limit),
            );
        }
    }
    for n in arp_notes {
        let (start, gate, freq) = place(n, grid, rate);
        let at = Placement {
            start,
            gate,
            gain: 0.4 * n.vel,
            phase0: 0.0,
        };
        add_note(
            &mut out,
            rate,
            arp_env,
            at,
            |_| freq,
            |_, p, f| harmonics(p, f, &ARP_AMPS, limit),
        );
    }
    out
}

/// The lead: a mellow tone (mostly the fundamental, a few soft overtones)
/// with a delayed 5.5 Hz vibrato of ±12 cents, and a dotted-eighth echo.
pub fn lead(notes: &[Note], rate: u32, frames: usize) -> Vec<f64> {
    const AMPS: [f64; 5] = [1.0, 0.4, 0.22, 0.1, 0.06];
    let env = Env {
        attack: 0.012,
        decay: 0.3,
        sustain: 0.7,
        release: 0.12,
    };
    let grid = Grid::new(rate);
    let limit = harmonic_limit(rate).min(8_000.0);
    let mut dry = vec![0.0; frames];
    for n in notes {
        let (start, gate, freq) = place(n, grid, rate);
        let vibrato = |t: f64| {
            let depth = 0.12 * ((t - 0.12) / 0.25).clamp(0.0, 1.0); // semitones
            freq * pow2(depth * sin_turns(5.5 * t) / 12.0)
        };
        let at = Placement {
            start,
            gate,
            gain: n.vel,
            phase0: 0.0,
        };
        add_note(&mut dry, rate, env, at, vibrato, |_, p, f| {
            harmonics(p, f, &AMPS, limit)
        });
    }
    echo(&dry, grid.sample_of(3) as usize, 0.3, 0.28)
}

/// A feedback delay: `out = dry + wet · y`, `y[n] = dry[n−d] + feedback · y[n−d]`.
pub fn echo(dry: &[f64], delay: usize, feedback: f64, wet: f64) -> Vec<f64> {
    let mut y = vec![0.0; dry.len()];
    for n in delay..dry.len() {
        y[n] = dry[n - delay] + feedback * y[n - delay];
    }
    dry.iter().zip(&y).map(|(d, e)| d + wet * e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_repeats_an_impulse_with_feedback() {
        let mut dry = vec![0.0; 10];
        dry[0] = 1.0;
        let out = echo(&dry, 3, 0.5, 0.2);
        assert_eq!(out[0], 1.0);
        assert_eq!(out[3], 0.2);
        assert_eq!(out[6], 0.1);
        assert_eq!(out[9], 0.05);
        assert_eq!(out[1], 0.0);
    }

    #[test]
    fn a_bass_note_starts_at_its_step_and_dies_away() {
        let rate = 8_000;
        let note = Note {
            step: 1,
            len: 2,
            midi: 45,
            vel: 1.0,
        };
        let out = bass(&[note], rate, 8_000);
        let start = Grid::new(rate).sample_of(1) as usize;
        assert!(out[..start].iter().all(|&s| s == 0.0));
        assert!(out[start..start + 100].iter().any(|&s| s.abs() > 0.1));
        let end = Grid::new(rate).sample_of(3) as usize + (0.04 * 8000.0) as usize + 1;
        assert!(out[end..].iter().all(|&s| s == 0.0));
    }
}
