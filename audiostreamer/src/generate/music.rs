//! The composition: key, tempo, chord progression, the beat grid, and the
//! note events of the bass, chord and lead parts (the drums' pattern lives in
//! `drums.rs`). Everything here is integers and note numbers; the sound is
//! made by `instruments.rs` and `drums.rs`.
//!
//! A natural minor at 100 BPM in 4/4: Am – F – C – G, two bars each, looping.
//! At 100 BPM a sixteenth note is 0.15 s, so at 44.1 kHz every grid step is an
//! exact 6615 samples and the default 24 s is exactly ten bars.

use super::dsp::pow2;
use super::rng::Rng;

/// Tempo in beats (quarter notes) per minute.
pub const BPM: u64 = 100;
/// Sixteenth-note steps per bar (4/4).
pub const STEPS_PER_BAR: u64 = 16;
/// Bars each chord of the progression lasts.
pub const BARS_PER_CHORD: u64 = 2;

/// A triad of the progression, as MIDI note numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chord {
    /// Bass root (octave 2/3).
    pub root: u8,
    /// Close-voiced triad for the pad, around middle C, voice-led.
    pub voicing: [u8; 3],
    /// Pitch classes (0 = C) of the triad's root, third and fifth.
    pub tones: [u8; 3],
}

/// Am – F – C – G in A natural minor, voiced to move as little as possible.
pub const PROGRESSION: [Chord; 4] = [
    Chord {
        root: 45,
        voicing: [57, 60, 64],
        tones: [9, 0, 4],
    }, // Am: A2 | A3 C4 E4
    Chord {
        root: 41,
        voicing: [57, 60, 65],
        tones: [5, 9, 0],
    }, // F:  F2 | A3 C4 F4
    Chord {
        root: 48,
        voicing: [55, 60, 64],
        tones: [0, 4, 7],
    }, // C:  C3 | G3 C4 E4
    Chord {
        root: 43,
        voicing: [55, 59, 62],
        tones: [7, 11, 2],
    }, // G:  G2 | G3 B3 D4
];

/// The A natural minor scale from A4 to C6: the lead's notes.
pub const LEAD_SCALE: [u8; 10] = [69, 71, 72, 74, 76, 77, 79, 81, 83, 84];

/// Frequency in Hz of a MIDI note (A4 = 69 = 440 Hz, equal temperament).
pub fn note_freq(midi: f64) -> f64 {
    440.0 * pow2((midi - 69.0) / 12.0)
}

/// The chord sounding during `bar` (0-based).
pub fn chord_at_bar(bar: u64) -> Chord {
    PROGRESSION[((bar / BARS_PER_CHORD) % PROGRESSION.len() as u64) as usize]
}

/// Maps grid steps (sixteenth notes) to sample positions at a sample rate.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    rate: u64,
}

impl Grid {
    /// The grid at `rate` Hz and [`BPM`].
    pub fn new(rate: u32) -> Self {
        Self {
            rate: u64::from(rate),
        }
    }

    /// First sample of sixteenth step `step` (step 0 = beat 1 of bar 1 = sample 0).
    /// Computed from the step count, so rounding never accumulates.
    pub fn sample_of(&self, step: u64) -> u64 {
        // One step = 60 / BPM / 4 s = 15 / BPM s.
        step * self.rate * 15 / BPM
    }

    /// Number of whole or partial bars needed to cover `frames` samples.
    pub fn bars_covering(&self, frames: u64) -> u64 {
        let mut bars = 0;
        while self.sample_of(bars * STEPS_PER_BAR) < frames {
            bars += 1;
        }
        bars
    }
}

/// One note: when (grid steps), how long (steps), which pitch, how loud.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Note {
    /// Start, in sixteenth steps from the beginning.
    pub step: u64,
    /// Length in sixteenth steps (the release follows).
    pub len: u64,
    /// MIDI note number.
    pub midi: u8,
    /// Velocity 0..=1.
    pub vel: f64,
}

/// The bass line: the chord root in a syncopated sixteenth pattern, with the
/// octave and fifth as passing notes.
pub fn bass_line(bars: u64) -> Vec<Note> {
    // (step, length, interval above root, velocity)
    const FIRST: [(u64, u64, u8, f64); 6] = [
        (0, 3, 0, 1.0),
        (3, 3, 0, 0.7),
        (6, 2, 12, 0.8),
        (8, 3, 0, 0.95),
        (11, 3, 0, 0.7),
        (14, 2, 7, 0.8),
    ];
    const SECOND: [(u64, u64, u8, f64); 6] = [
        (0, 3, 0, 1.0),
        (3, 3, 0, 0.7),
        (6, 2, 12, 0.8),
        (8, 2, 0, 0.95),
        (10, 4, 7, 0.8),
        (14, 2, 12, 0.75),
    ];
    let mut notes = Vec::new();
    for bar in 0..bars {
        let root = chord_at_bar(bar).root;
        let pattern = if bar % BARS_PER_CHORD == 0 {
            &FIRST
        } else {
            &SECOND
        };
        for &(step, len, interval, vel) in pattern {
            notes.push(Note {
                step: bar * STEPS_PER_BAR + step,
                len,
                midi: root + interval,
                vel,
            });
        }
    }
    notes
}

/// The pad: each chord's voicing held for its two bars.
pub fn pad_chords(bars: u64) -> Vec<Note> {
    let mut notes = Vec::new();
    for bar in (0..bars).step_by(BARS_PER_CHORD as usize) {
        for &midi in &chord_at_bar(bar).voicing {
            notes.push(Note {
                step: bar * STEPS_PER_BAR,
                len: BARS_PER_CHORD * STEPS_PER_BAR,
                midi,
                vel: 1.0,
            });
        }
    }
    notes
}

/// A soft eighth-note arpeggio of the triad an octave above the pad.
pub fn arpeggio(bars: u64) -> Vec<Note> {
    const ORDER: [usize; 8] = [0, 1, 2, 1, 0, 2, 1, 2];
    let mut notes = Vec::new();
    for bar in 0..bars {
        let v = chord_at_bar(bar).voicing;
        for (i, &k) in ORDER.iter().enumerate() {
            notes.push(Note {
                step: bar * STEPS_PER_BAR + 2 * i as u64,
                len: 2,
                midi: v[k] + 12,
                vel: if i % 2 == 0 { 0.9 } else { 0.6 },
            });
        }
    }
    notes
}

/// Rhythms of one bar of melody on the eighth-note grid: (start, length) in eighths.
const RHYTHMS: [&[(u64, u64)]; 6] = [
    &[(0, 2), (2, 1), (3, 1), (4, 3)],
    &[(0, 1), (1, 1), (2, 2), (5, 1), (6, 2)],
    &[(0, 3), (3, 1), (4, 4)],
    &[(1, 1), (2, 1), (3, 1), (4, 2), (6, 2)],
    &[(0, 2), (2, 2), (4, 2), (6, 1), (7, 1)],
    &[(0, 1), (1, 1), (2, 1), (3, 1), (4, 4)],
];
/// Rhythms that end a two-bar phrase on a held note.
const CADENCES: [&[(u64, u64)]; 3] = [
    &[(0, 2), (2, 2), (4, 4)],
    &[(0, 6)],
    &[(0, 1), (1, 1), (2, 6)],
];

/// The lead melody: one two-bar phrase per chord, generated once per pass of
/// the progression by a seeded random walk on [`LEAD_SCALE`] (steps of one or
/// two scale degrees, chord tones on the strong beats, a chord tone to end
/// each phrase); later passes repeat the phrases with a few notes varied.
pub fn lead_melody(bars: u64, seed: u64) -> Vec<Note> {
    let mut rng = Rng::new(seed);
    let phrase_bars = BARS_PER_CHORD;
    let phrases_per_pass = PROGRESSION.len() as u64;
    let mut first_pass: Vec<Vec<Note>> = Vec::new();
    let mut degree = 4usize; // E5, the fifth of A minor
    let mut notes = Vec::new();
    for phrase in 0..bars.div_ceil(phrase_bars) {
        let start_bar = phrase * phrase_bars;
        let chord = chord_at_bar(start_bar);
        let slot = (phrase % phrases_per_pass) as usize;
        let mut ph = if phrase < phrases_per_pass {
            let ph = make_phrase(&mut rng, chord, &mut degree);
            first_pass.push(ph.clone());
            ph
        } else {
            vary_phrase(&mut rng, &first_pass[slot], chord)
        };
        for n in &mut ph {
            n.step += start_bar * STEPS_PER_BAR;
        }
        notes.extend(ph);
    }
    notes
}

fn make_phrase(rng: &mut Rng, chord: Chord, degree: &mut usize) -> Vec<Note> {
    let mut out = Vec::new();
    for bar in 0..BARS_PER_CHORD {
        let last = bar + 1 == BARS_PER_CHORD;
        let rhythm = if last {
            CADENCES[rng.below(CADENCES.len() as u32) as usize]
        } else {
            RHYTHMS[rng.below(RHYTHMS.len() as u32) as usize]
        };
        for (i, &(start, len)) in rhythm.iter().enumerate() {
            const MOVES: [i32; 7] = [-2, -1, -1, 0, 1, 1, 2];
            let mv = MOVES[rng.below(MOVES.len() as u32) as usize];
            *degree = (*degree as i32 + mv).clamp(0, LEAD_SCALE.len() as i32 - 1) as usize;
            let strong = start % 4 == 0;
            if strong || (last && i + 1 == rhythm.len()) {
                *degree = nearest_chord_tone(*degree, chord);
            }
            out.push(Note {
                step: bar * STEPS_PER_BAR + start * 2,
                len: len * 2,
                midi: LEAD_SCALE[*degree],
                vel: if strong {
                    1.0
                } else {
                    0.75 + 0.15 * rng.unit()
                },
            });
        }
    }
    out
}

fn vary_phrase(rng: &mut Rng, phrase: &[Note], chord: Chord) -> Vec<Note> {
    let last = phrase.len().saturating_sub(1);
    phrase
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut n = n;
            if i != 0 && i != last && rng.chance(0.25) {
                let d = LEAD_SCALE.iter().position(|&m| m == n.midi).unwrap_or(4) as i32;
                let nd = (d + if rng.chance(0.5) { 1 } else { -1 })
                    .clamp(0, LEAD_SCALE.len() as i32 - 1) as usize;
                n.midi = LEAD_SCALE[if n.step % 8 == 0 {
                    nearest_chord_tone(nd, chord)
                } else {
                    nd
                }];
            }
            n
        })
        .collect()
}

/// The scale degree nearest to `degree` whose pitch is a tone of `chord`.
fn nearest_chord_tone(degree: usize, chord: Chord) -> usize {
    (0..LEAD_SCALE.len())
        .filter(|&d| chord.tones.contains(&(LEAD_SCALE[d] % 12)))
        .min_by_key(|&d| (d.abs_diff(degree), d))
        .unwrap_or(degree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_frequencies_follow_equal_temperament() {
        let table = [
            (69.0, 440.0),
            (57.0, 220.0),
            (45.0, 110.0),
            (60.0, 261.625_565_300_6),
            (41.0, 87.307_057_858_25),
            (43.0, 97.998_858_995_44),
            (48.0, 130.812_782_650_3),
            (81.0, 880.0),
        ];
        for (midi, hz) in table {
            assert!(
                (note_freq(midi) - hz).abs() < 1e-9,
                "{midi}: {}",
                note_freq(midi)
            );
        }
    }

    #[test]
    fn grid_is_exact_at_44100_and_100_bpm() {
        let g = Grid::new(44_100);
        assert_eq!(g.sample_of(1), 6615);
        assert_eq!(g.sample_of(16), 105_840); // one bar = 2.4 s
        assert_eq!(g.bars_covering(24 * 44_100), 10);
        assert_eq!(g.bars_covering(24 * 44_100 + 1), 11);
        assert_eq!(Grid::new(48_000).sample_of(3), 21_600);
    }

    #[test]
    fn parts_follow_the_progression() {
        let bass = bass_line(8);
        assert_eq!(
            bass[0],
            Note {
                step: 0,
                len: 3,
                midi: 45,
                vel: 1.0
            }
        );
        // Every downbeat of the bass is the chord root.
        for n in bass.iter().filter(|n| n.step % STEPS_PER_BAR == 0) {
            assert_eq!(n.midi, chord_at_bar(n.step / STEPS_PER_BAR).root);
        }
        assert_eq!(chord_at_bar(2).root, 41);
        assert_eq!(chord_at_bar(9).root, 45); // the progression loops after 8 bars
        let pads = pad_chords(10);
        assert_eq!(pads.len(), 15);
        assert!(arpeggio(1)
            .iter()
            .all(|n| PROGRESSION[0].voicing.contains(&(n.midi - 12))));
    }

    #[test]
    fn melody_is_seeded_in_scale_and_on_chord_tones_on_the_bar() {
        let a = lead_melody(20, 7);
        assert_eq!(a, lead_melody(20, 7));
        assert_ne!(a, lead_melody(20, 8));
        for n in &a {
            assert!(LEAD_SCALE.contains(&n.midi));
            assert!(n.step % 2 == 0 && n.len >= 2);
            if n.step % STEPS_PER_BAR == 0 {
                let chord = chord_at_bar(n.step / STEPS_PER_BAR);
                assert!(chord.tones.contains(&(n.midi % 12)), "{n:?}");
            }
        }
        // Notes never overlap.
        for w in a.windows(2) {
            assert!(w[0].step + w[0].len <= w[1].step, "{w:?}");
        }
    }
}
