//! Demo tracks without downloads: `audiostreamer --generate DIR` writes four
//! stems that play together — `bass.wav`, `chords.wav`, `lead.wav`,
//! `drums.wav` — as mono 16-bit WAVs, deterministically (same arguments,
//! byte-identical files on every machine).
//!
//! Layout: [`music`] composes (key, tempo, progression, note events),
//! [`instruments`] and [`drums`] make the sound from [`synth`] building
//! blocks, [`dsp`] holds the bit-reproducible maths and [`rng`] the seeded
//! generator. This file renders the parts, ducks the bass and pad under the
//! kick, fades the ends, sets the levels and writes the files.

pub mod drums;
pub mod dsp;
pub mod instruments;
pub mod music;
pub mod rng;
pub mod synth;

use std::path::{Path, PathBuf};

use self::dsp::db_to_gain;
use self::music::Grid;
use self::synth::{fade_edges, Env};

/// The stems, in the order they are written.
pub const STEM_NAMES: [&str; 4] = ["bass", "chords", "lead", "drums"];
/// Default length of the stems in seconds.
pub const DEFAULT_DURATION_SECS: u32 = 24;
/// Shortest allowed length, seconds.
pub const MIN_DURATION_SECS: u32 = 4;
/// Longest allowed length, seconds.
pub const MAX_DURATION_SECS: u32 = 120;
/// Lowest sample rate the generator accepts, Hz.
pub const MIN_RATE: u32 = 8_000;
/// Highest sample rate the generator accepts, Hz.
pub const MAX_RATE: u32 = 192_000;
/// The fixed seed of the melody and drum generators.
pub const SEED: u64 = 0xA11D_2026;
/// Peak level of each stem in dBFS (bass, chords, lead, drums), before the
/// mix safety scaling (which only ever lowers all four together).
pub const TARGET_PEAK_DB: [f64; 4] = [-6.5, -7.0, -7.0, -6.5];
/// The sum of the four stems peaks at most at this fraction of full scale.
pub const MIX_CEILING: f64 = 0.95;

/// Why the stems could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// `--duration` is outside the allowed range.
    #[error("--duration {0} s is out of range; use {MIN_DURATION_SECS} to {MAX_DURATION_SECS} s")]
    Duration(u32),
    /// `--sample-rate` is outside the range the synthesizer supports.
    #[error(
        "--sample-rate {0} Hz is out of range for --generate; use {MIN_RATE} to {MAX_RATE} Hz"
    )]
    Rate(u32),
    /// The output directory cannot be created.
    #[error("cannot create directory {}: {source}", .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A WAV file cannot be written or moved into place.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The four rendered stems, each `duration × rate` mono 16-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stems {
    /// Sample rate in Hz.
    pub rate: u32,
    /// The stems in [`STEM_NAMES`] order.
    pub tracks: [Vec<i16>; 4],
}

impl Stems {
    /// `(name, samples)` of each stem in [`STEM_NAMES`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[i16])> {
        STEM_NAMES
            .into_iter()
            .zip(self.tracks.iter().map(Vec::as_slice))
    }

    /// The samples of the stem called `name` (`"bass"`, …), if any.
    pub fn get(&self, name: &str) -> Option<&[i16]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
}

/// One written file.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Where it is.
    pub path: PathBuf,
    /// Its peak level in dBFS.
    pub peak_dbfs: f64,
}

/// Renders the stems (no files): `duration_secs × rate` samples each.
pub fn render(duration_secs: u32, rate: u32) -> Result<Stems, GenerateError> {
    if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&duration_secs) {
        return Err(GenerateError::Duration(duration_secs));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(GenerateError::Rate(rate));
    }
    let frames = duration_secs as usize * rate as usize;
    let mut raw = render_raw(frames, rate);
    for buf in &mut raw {
        fade_edges(buf, rate, 0.005, 0.5);
    }
    Ok(Stems {
        rate,
        tracks: set_levels(raw),
    })
}

/// The four parts as unscaled `f64` signals of `frames` samples, the bass
/// and the pad already ducked under the kick.
pub fn render_raw(frames: usize, rate: u32) -> [Vec<f64>; 4] {
    let bars = Grid::new(rate).bars_covering(frames as u64);
    let hits = drums::pattern(bars, SEED ^ 0xD7);
    let kicks = drums::kick_samples(&hits, rate);
    let mut bass = instruments::bass(&music::bass_line(bars), rate, frames);
    let mut chords = instruments::chords(
        &music::pad_chords(bars),
        &music::arpeggio(bars),
        rate,
        frames,
    );
    duck(&mut bass, &kicks, rate, 0.45);
    duck(&mut chords, &kicks, rate, 0.3);
    let lead = instruments::lead(&music::lead_melody(bars, SEED), rate, frames);
    let drums = drums::render(&hits, rate, frames, SEED ^ 0x5A);
    [bass, chords, lead, drums]
}

/// Side-chain ducking: lowers `buf` by up to `depth` right after each kick
/// (10 ms smooth dip, recovering with a 120 ms time constant), so the kick
/// and the bass do not pile up and the groove pumps a little.
pub fn duck(buf: &mut [f64], kicks: &[usize], rate: u32, depth: f64) {
    let dip = Env {
        attack: 0.01,
        decay: 0.12,
        sustain: 0.0,
        release: 0.0,
    };
    let dt = 1.0 / f64::from(rate);
    let span = (0.8 * f64::from(rate)) as usize;
    for &k in kicks {
        for (i, s) in buf.iter_mut().skip(k).take(span).enumerate() {
            *s *= 1.0 - depth * dip.level(i as f64 * dt, f64::INFINITY);
        }
    }
}

/// Scales each stem to its [`TARGET_PEAK_DB`], then all four together if
/// their sum would exceed [`MIX_CEILING`], and rounds to 16-bit.
fn set_levels(raw: [Vec<f64>; 4]) -> [Vec<i16>; 4] {
    let full = f64::from(i16::MAX);
    let peak = |b: &[f64]| b.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    let gains: Vec<f64> = raw
        .iter()
        .zip(TARGET_PEAK_DB)
        .map(|(b, db)| db_to_gain(db) / peak(b).max(1e-9))
        .collect();
    let n = raw[0].len();
    let sum_peak = (0..n)
        .map(|i| (0..4).map(|k| raw[k][i] * gains[k]).sum::<f64>().abs())
        .fold(0.0f64, f64::max);
    let safety = if sum_peak > MIX_CEILING {
        MIX_CEILING / sum_peak
    } else {
        1.0
    };
    let mut out: [Vec<i16>; 4] = Default::default();
    for (k, buf) in raw.iter().enumerate() {
        let g = gains[k] * safety * full;
        out[k] = buf.iter().map(|s| (s * g).round() as i16).collect();
    }
    out
}

/// Peak level of 16-bit samples in dBFS (−∞ for silence).
pub fn peak_dbfs(samples: &[i16]) -> f64 {
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    20.0 * (f64::from(peak) / f64::from(i16::MAX)).log10()
}

/// Renders the stems and writes `DIR/{bass,chords,lead,drums}.wav` (creating
/// DIR); each file is written under a temporary name and renamed into place,
/// so an interrupted run never leaves a truncated stem behind.
pub fn write_stems(
    dir: &Path,
    duration_secs: u32,
    rate: u32,
) -> Result<Vec<Written>, GenerateError> {
    let stems = render(duration_secs, rate)?;
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, samples) in stems.iter() {
        let path = dir.join(format!("{name}.wav"));
        write_wav(&path, rate, samples)?;
        written.push(Written {
            path,
            peak_dbfs: peak_dbfs(samples),
        });
    }
    Ok(written)
}

fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> Result<(), GenerateError> {
    let tmp = path.with_extension("wav.part");
    let err = |e: hound::Error| GenerateError::Write {
        path: path.to_path_buf(),
        source: match e {
            hound::Error::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        },
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&tmp, spec).map_err(err)?;
    let mut i16w = w.get_i16_writer(samples.len() as u32);
    for &s in samples {
        i16w.write_sample(s);
    }
    i16w.flush().map_err(err)?;
    w.finalize().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|source| GenerateError::Write {
        path: path.to_path_buf(),
        source,
    })
}
