//! Helpers shared by the scenario tests: configs from command lines, test
//! signals, paced UDP sending, polling with a deadline, temp dirs, WAV reads.
#![allow(dead_code)]

pub mod audio;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audiorecorder::{Args, Config};
use clap::Parser;

/// A checked config from command-line words (without the program name).
pub fn config(words: &[&str]) -> Config {
    let args = Args::try_parse_from(std::iter::once("audiorecorder").chain(words.iter().copied()))
        .expect("valid flags");
    Config::from_args(&args).expect("valid config")
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("audiorecorder-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A deterministic pseudo-random interleaved stereo signal (full range:
/// any byte-order or channel mix-up shows).
pub fn stereo_signal(frames: usize, seed: u32) -> Vec<i16> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..frames * 2)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 16) as i16
        })
        .collect()
}

/// Sends interleaved stereo `samples` to `to` in datagrams of `frames_per`
/// frames, pacing at `rate` frames per second (`None`: as fast as the
/// kernel buffer comfortably takes). Send errors are ignored: a recorder
/// that exited makes the kernel refuse datagrams, which some tests expect.
pub fn send_stereo(
    socket: &UdpSocket,
    to: SocketAddr,
    samples: &[i16],
    frames_per: usize,
    rate: Option<u32>,
) {
    let start = Instant::now();
    let mut buf = vec![0u8; frames_per * 4];
    let mut sent_frames = 0usize;
    for (i, chunk) in samples.chunks(frames_per * 2).enumerate() {
        let n = proto::encode_stereo(chunk, &mut buf).unwrap();
        let _ = socket.send_to(&buf[..n], to);
        sent_frames += chunk.len() / 2;
        match rate {
            Some(rate) => {
                let due = start + Duration::from_secs_f64(sent_frames as f64 / f64::from(rate));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            // Unpaced: a breather every 32 datagrams keeps the receive
            // buffer of a loaded machine from overflowing.
            None if i % 32 == 31 => std::thread::sleep(Duration::from_millis(2)),
            None => {}
        }
    }
}

/// A UDP socket to send from.
pub fn sender() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// All samples of a WAV file and its spec.
pub fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} does not open as WAV: {e}", path.display()));
    let samples = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    (reader.spec(), samples)
}
