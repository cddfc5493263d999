//! `--generate DIR`: the demo stems through the real binary and the library.
//! Four mono 16-bit files of exactly `duration × rate` frames, levels in the
//! window, a mix that never clips, byte-identical reruns, a coarse spectral
//! check of who plays where, no silent gaps in the bass and chords, and
//! one-line errors for misuse. Tracks are 5 s to keep the run fast.

mod common;

use std::process::{Command, Output};

use audiostreamer::generate::{self, Stems, STEM_NAMES};
use common::TempDir;

const SECS: u32 = 5;
const RATE: u32 = 44_100;

fn run_bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn read_wav(path: &std::path::Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let s = r.samples::<i16>().map(Result::unwrap).collect();
    (spec, s)
}

/// Power of `x` at `freq` Hz (Goertzel), normalised by the length.
fn goertzel(x: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len() as f64).powi(2)
}

/// Summed Goertzel power over a set of frequencies.
fn band(x: &[i16], freqs: &[f64]) -> f64 {
    freqs.iter().map(|&f| goertzel(x, RATE, f)).sum()
}

#[test]
fn binary_writes_four_stems_that_mix_without_clipping_and_repeat_exactly() {
    let dir = TempDir::new("gen");
    let out_dir = dir.path("stems/nested"); // created on demand
    let secs = SECS.to_string();
    let out = run_bin(&["--generate", out_dir.to_str().unwrap(), "--duration", &secs]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");

    let mut tracks = Vec::new();
    for name in STEM_NAMES {
        let path = out_dir.join(format!("{name}.wav"));
        assert!(stdout.contains(path.to_str().unwrap()), "{stdout}");
        let (spec, samples) = read_wav(&path);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, RATE, 16)
        );
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(samples.len(), (SECS * RATE) as usize, "{name}");
        let peak = generate::peak_dbfs(&samples);
        assert!(
            (-9.0..=-6.0).contains(&peak),
            "{name} peaks at {peak:.2} dBFS"
        );
        tracks.push(samples);
    }
    // The node mixes at unity gain: the sum must never clip.
    let worst = (0..tracks[0].len())
        .map(|i| tracks.iter().map(|t| i32::from(t[i])).sum::<i32>().abs())
        .max()
        .unwrap();
    assert!(worst <= i32::from(i16::MAX), "sum peaks at {worst}");
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 4);

    // Same arguments, byte-identical files.
    let again = dir.path("again");
    let out = run_bin(&["--generate", again.to_str().unwrap(), "--duration", &secs]);
    assert!(out.status.success());
    for name in STEM_NAMES {
        let f = format!("{name}.wav");
        assert!(
            std::fs::read(out_dir.join(&f)).unwrap() == std::fs::read(again.join(&f)).unwrap(),
            "{f} differs between runs"
        );
    }
}

#[test]
fn stems_play_in_their_registers() {
    let stems: Stems = generate::render(SECS, RATE).unwrap();
    let get = |n| stems.get(n).unwrap();
    // Bass: energy at the chord roots (A2, F2) far above its energy up high.
    let roots = [110.0, 87.307];
    let high = [2_500.0, 3_500.0, 5_000.0, 8_000.0];
    assert!(band(get("bass"), &roots) > 100.0 * band(get("bass"), &high));
    // Lead: A4..C6 melody, far more energy there than down at the bass roots.
    let lead_notes = [440.0, 493.88, 523.25, 587.33, 659.26, 698.46, 783.99, 880.0];
    assert!(band(get("lead"), &lead_notes) > 30.0 * band(get("lead"), &roots));
    // Drums: the hi-hat puts energy up high that the pitched parts lack.
    let air = [9_000.0, 10_000.0, 11_000.0, 12_000.0];
    let drums_air = band(get("drums"), &air);
    for n in ["bass", "chords", "lead"] {
        assert!(drums_air > 100.0 * band(get(n), &air), "{n}");
    }
    // Chords: the A minor triad (A3 C4 E4) is what sounds in the first bars.
    let am = [220.0, 261.63, 329.63];
    let off = [233.08, 277.18, 311.13]; // Bb3 C#4 Eb4: not in the chord
    assert!(
        band(&get("chords")[..RATE as usize * 4], &am)
            > 10.0 * band(&get("chords")[..RATE as usize * 4], &off)
    );
}

#[test]
fn bass_and_chords_have_no_silent_gaps() {
    let stems = generate::render(SECS, RATE).unwrap();
    let win = (RATE / 5) as usize; // 200 ms
    let end = (SECS * RATE - RATE / 2) as usize; // before the fade-out
    for name in ["bass", "chords"] {
        let s = stems.get(name).unwrap();
        for (i, w) in s[..end].chunks(win).enumerate() {
            let rms =
                (w.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
            let db = 20.0 * (rms / 32767.0).log10();
            assert!(db > -40.0, "{name}: window {i} at {db:.1} dBFS");
        }
    }
}

#[test]
fn other_rates_and_lengths_are_exact() {
    let stems = generate::render(4, 48_000).unwrap();
    assert!(stems.iter().all(|(_, s)| s.len() == 4 * 48_000));
    assert!(generate::render(3, RATE).is_err());
    assert!(generate::render(121, RATE).is_err());
    assert!(generate::render(5, 4_000).is_err());
}

#[test]
fn misuse_is_one_clear_error() {
    let dir = TempDir::new("genbad");
    let target = dir.path("x").to_str().unwrap().to_string();
    // Clap-level conflicts: exit code 2 with clap's message.
    for args in [
        vec!["--generate", &target, "a.wav"],
        vec!["--generate", &target, "--mic"],
        vec!["--generate", &target, "--tcp-listen", "127.0.0.1:0"],
        vec!["--generate", &target, "--duration", "3"],
        vec!["--generate", &target, "--duration", "121"],
        vec!["--duration", "10"],
    ] {
        let out = run_bin(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
    // --duration with a WAV file (clap drops `requires` next to a conflict).
    let out = run_bin(&["a.wav", "127.0.0.1:4030", "--duration", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "audiostreamer: --duration only applies with --generate DIR"
    );
    // An unwritable directory (below a regular file): one line, exit code 1.
    let file = dir.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("stems");
    let out = run_bin(&["--generate", bad.to_str().unwrap(), "--duration", "4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("audiostreamer: cannot create directory"),
        "{err}"
    );
    // A rate the synthesizer does not support.
    let out = run_bin(&["--generate", &target, "--sample-rate", "4000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sample-rate 4000"));
}

/// Every allowed `--duration` keeps each stem in the level window and the
/// mix below full scale. Slow (about 7000 s of audio, minutes of CPU even in release):
/// `cargo test --release -p audiostreamer --test generate -- --ignored`.
#[test]
#[ignore]
fn every_duration_stays_in_the_level_window() {
    let durations: Vec<u32> = (generate::MIN_DURATION_SECS..=generate::MAX_DURATION_SECS).collect();
    let check = |secs: u32| {
        let stems = generate::render(secs, RATE).unwrap();
        for (name, s) in stems.iter() {
            let peak = generate::peak_dbfs(s);
            assert!(
                (-9.0..=-6.0).contains(&peak),
                "{secs} s: {name} at {peak:.2} dBFS"
            );
        }
        let worst = (0..stems.tracks[0].len())
            .map(|i| {
                stems
                    .tracks
                    .iter()
                    .map(|t| i32::from(t[i]))
                    .sum::<i32>()
                    .abs()
            })
            .max()
            .unwrap();
        assert!(
            worst <= i32::from(i16::MAX),
            "{secs} s: sum peaks at {worst}"
        );
    };
    std::thread::scope(|s| {
        for half in durations.chunks(durations.len().div_ceil(2)) {
            s.spawn(move || half.iter().for_each(|&d| check(d)));
        }
    });
}
