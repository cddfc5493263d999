//! Input formats: FLAC, AIFF, Ogg/Vorbis and MP3 fixtures made at test time
//! with ffmpeg from a WAV (decoded samples compared exactly for the
//! lossless ones, by level and length for the lossy ones), stereo kept
//! stereo for `--rtp --channels 2`, and a streamed-header WAV (sizes
//! 0xFFFFFFFF, as ffmpeg writes to a pipe) on standard input sent exactly.
//! Without ffmpeg the fixture tests print SKIPPED; under CI=true they fail.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use audiostreamer::source::{FileSource, SampleSource};
use common::*;

/// Whether ffmpeg runs; under CI a missing ffmpeg is a failure.
fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ffmpeg is needed for the format tests (apt-get install ffmpeg)"
        );
        println!("SKIPPED: ffmpeg is not installed");
    }
    ok
}

fn ffmpeg(input: &Path, output: &Path, codec: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(codec)
        .arg(output)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg made no {}", output.display());
}

/// Every sample of a file as the streamer reads it (frames of `channels`).
fn decode(path: &Path, rate: u32, channels: u16) -> Vec<i16> {
    let mut src = FileSource::open_with_channels(path, rate, false, channels).unwrap();
    let stop = AtomicBool::new(false);
    let mut all = Vec::new();
    let mut buf = vec![0i16; 882];
    loop {
        let n = src.read(&mut buf, &stop).unwrap();
        all.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return all;
        }
    }
}

/// A stereo 44.1 kHz signal whose channels differ: a 440 Hz sine left,
/// the full-range test signal right (so a swap or a downmix shows).
fn stereo_fixture(frames: usize) -> Vec<i16> {
    let left = sine(44_100, 440.0, 12_000.0, frames);
    let right = test_signal(frames);
    left.iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l.round() as i16, r])
        .collect()
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[test]
fn lossless_formats_decode_exactly_and_stay_stereo() {
    if !have_ffmpeg() {
        return;
    }
    let dir = TempDir::new("lossless");
    let wav = dir.path("src.wav");
    let samples = stereo_fixture(22_050);
    write_i16(&wav, 2, 44_100, &samples);
    let flac = dir.path("a.flac");
    ffmpeg(&wav, &flac, &["-c:a", "flac"]);
    let aiff = dir.path("a.aiff");
    ffmpeg(&wav, &aiff, &["-c:a", "pcm_s16be"]);
    for path in [&wav, &flac, &aiff] {
        assert!(
            decode(path, 44_100, 2) == samples,
            "{} is not sample-exact in stereo",
            path.display()
        );
        // Mono: the exact average of the two channels, rounded as for WAV.
        let mono: Vec<i16> = samples
            .chunks(2)
            .map(|f| ((f64::from(f[0]) + f64::from(f[1])) / 2.0).round() as i16)
            .collect();
        assert!(
            decode(path, 44_100, 1) == mono,
            "{} mono downmix",
            path.display()
        );
    }
    // Another rate is resampled, to exactly ceil(n × out / in) frames.
    assert_eq!(decode(&flac, 48_000, 2).len(), 2 * 24_000);
}

#[test]
fn lossy_formats_keep_length_and_level() {
    if !have_ffmpeg() {
        return;
    }
    let dir = TempDir::new("lossy");
    let wav = dir.path("src.wav");
    let frames = 44_100;
    let samples = stereo_fixture(frames);
    write_i16(&wav, 2, 44_100, &samples);
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    for (name, codec) in [
        ("a.ogg", &["-c:a", "libvorbis", "-q:a", "6"][..]),
        ("a.mp3", &["-c:a", "libmp3lame", "-b:a", "192k"][..]),
    ] {
        let path = dir.path(name);
        ffmpeg(&wav, &path, codec);
        let got = decode(&path, 44_100, 2);
        // Gapless decoding gives the source's length, give or take a frame
        // of the codec.
        let got_frames = got.len() / 2;
        assert!(
            got_frames.abs_diff(frames) <= 1152,
            "{name}: {got_frames} frames, sent {frames}"
        );
        let got_left: Vec<i16> = got.iter().step_by(2).copied().collect();
        let n = got_left.len().min(left.len());
        // The sine's level survives within 1 dB, and the channels are not mixed.
        let ratio = rms(&got_left[2000..n - 2000]) / rms(&left[2000..n - 2000]);
        assert!(
            (0.89..1.12).contains(&ratio),
            "{name}: left level ratio {ratio}"
        );
    }
}

/// A streamed WAV header: RIFF and data sizes 0xFFFFFFFF, as ffmpeg
/// writes to a pipe, then mono 16-bit little-endian samples.
fn streamed_wav(samples: &[i16]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&44_100u32.to_le_bytes());
    b.extend_from_slice(&88_200u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Runs the binary on `-` with `stdin` piped in; returns the samples sent.
fn stream_stdin(stdin: &[u8]) -> Vec<i16> {
    let cap = Capture::start(None);
    let mut child = Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args(["-", &cap.dest(), "--stream-to-recorder", "--speed", "50"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --stream-to-recorder: stereo with the mono sample twice; take the left.
    cap.finish()
        .iter()
        .flat_map(|r| {
            r.bytes
                .chunks_exact(4)
                .map(|f| i16::from_be_bytes([f[0], f[1]]))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn streamed_header_wav_on_stdin_is_sent_exactly() {
    let samples = test_signal(4_000);
    assert_eq!(stream_stdin(&streamed_wav(&samples)), samples);
}

#[test]
fn ffmpeg_pipe_output_on_stdin_is_sent_exactly() {
    if !have_ffmpeg() {
        return;
    }
    let dir = TempDir::new("pipe");
    let wav = dir.path("src.wav");
    let samples = test_signal(4_410);
    write_i16(&wav, 1, 44_100, &samples);
    // ffmpeg writing to a pipe cannot seek back: its header has no sizes.
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(&wav)
        .args(["-f", "wav", "-"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stream_stdin(&out.stdout), samples);
}

#[test]
fn a_file_that_is_not_audio_is_one_line() {
    let dir = TempDir::new("notaudio");
    let path = dir.path("notes.flac");
    std::fs::write(&path, "these are words, not audio").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args([path.to_str().unwrap(), "127.0.0.1:9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "notes.flac: not an audio file this program reads (WAV, FLAC, MP3, Ogg/Vorbis or AIFF)"
        ),
        "{stderr}"
    );
}
