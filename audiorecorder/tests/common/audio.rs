//! The headless audio stack for playback tests: runs
//! `scripts/headless-audio.sh`, points this process at it, and captures the
//! null sink's monitor with `parec`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Rate of the null sink and of the capture.
pub const RATE: usize = 48_000;
/// Frames per datagram: 10 ms.
pub const PERIOD: usize = 480;

/// The headless stack's variables, with this process's environment pointed
/// at it; `None` (after printing why) when it is unavailable outside CI.
/// Under `CI=true` an unavailable stack fails the test.
///
/// Each playback test binary holds a single test, so setting the
/// environment cannot race with another thread reading it.
pub fn audio_or_skip() -> Option<HashMap<String, String>> {
    match headless_audio() {
        Ok(env) if env.contains_key("PULSE_SERVER") => {
            std::env::set_var("PULSE_SERVER", &env["PULSE_SERVER"]);
            std::env::set_var("ALSA_CONFIG_PATH", &env["ALSA_CONFIG_PATH"]);
            Some(env)
        }
        other => {
            let why = other
                .err()
                .unwrap_or_else(|| "no PULSE_SERVER exported".into());
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but the headless audio stack is unavailable: {why}");
            }
            // Straight to stderr, past the test harness's output capture, so
            // the skip shows in a normal `cargo test` run.
            let _ = writeln!(std::io::stderr(), "SKIPPED playback test: {why}");
            None
        }
    }
}

/// Runs the headless-audio script and returns the variables it exports,
/// or why audio is unavailable.
pub fn headless_audio() -> Result<HashMap<String, String>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/headless-audio.sh");
    let out = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// `parec` capturing the sink monitor into a shared byte buffer.
pub struct Capture {
    child: Child,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Capture {
    pub fn start(env: &HashMap<String, String>) -> Capture {
        let mut child = Command::new("parec")
            .args([
                "-d",
                &format!("{}.monitor", env["AUDIOMIX_NULL_SINK"]),
                "--format=s16le",
                &format!("--rate={RATE}"),
                "--channels=2",
                "--latency-msec=10",
            ])
            .env("PULSE_SERVER", &env["PULSE_SERVER"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("parec runs");
        let mut stdout = child.stdout.take().unwrap();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Capture { child, bytes }
    }

    pub fn frames(&self) -> usize {
        self.bytes.lock().unwrap().len() / 4
    }

    /// Stops capturing; returns the left channel.
    pub fn finish(self) -> Vec<f64> {
        self.finish_stereo().0
    }

    /// Stops capturing; returns the left and right channels.
    pub fn finish_stereo(mut self) -> (Vec<f64>, Vec<f64>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bytes = self.bytes.lock().unwrap();
        let channel = |at: usize| {
            bytes
                .chunks_exact(4)
                .map(|f| f64::from(i16::from_le_bytes([f[at], f[at + 1]])))
                .collect()
        };
        (channel(0), channel(2))
    }
}

/// Normalised cross-correlation of `a` and `b` (same length).
pub fn ncc(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Where `signal` best matches in `capture` (searching from `from`), by the
/// cross-correlation of its first 10 ms; then the correlation over its
/// whole length at that offset.
pub fn locate(capture: &[f64], signal: &[f64], from: usize) -> (usize, f64) {
    let probe = &signal[..PERIOD];
    let last = capture.len().saturating_sub(signal.len());
    let best = (from..=last)
        .map(|off| (off, ncc(&capture[off..off + PERIOD], probe)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("capture long enough");
    (best.0, ncc(&capture[best.0..best.0 + signal.len()], signal))
}

pub fn left(interleaved: &[i16]) -> Vec<f64> {
    interleaved
        .iter()
        .step_by(2)
        .map(|&s| f64::from(s))
        .collect()
}

/// Frequency of a tone by counting upward zero crossings.
pub fn frequency(samples: &[f64], rate: usize) -> f64 {
    let first = samples
        .windows(2)
        .position(|w| w[0] < 0.0 && w[1] >= 0.0)
        .unwrap();
    let last = samples.len()
        - 1
        - samples
            .windows(2)
            .rev()
            .position(|w| w[0] < 0.0 && w[1] >= 0.0)
            .unwrap();
    let crossings = samples[first..=last]
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    crossings as f64 * rate as f64 / (last - first) as f64
}
