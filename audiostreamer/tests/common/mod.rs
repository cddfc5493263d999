//! Shared helpers of the scenario tests: temporary WAV files written with
//! hound, a UDP capture thread on 127.0.0.1 (ephemeral port), and argument
//! parsing. Nothing here sleeps for a fixed time: waits are for a condition
//! with a generous deadline.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "audiostreamer-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes interleaved 16-bit integer samples.
pub fn write_i16(path: &Path, channels: u16, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// Writes interleaved integer samples of `bits` bits (8, 24 or 32).
pub fn write_int(path: &Path, channels: u16, rate: u32, bits: u16, samples: &[i32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        if bits == 8 {
            w.write_sample(s as i8).unwrap();
        } else {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// Writes interleaved 32-bit float samples.
pub fn write_f32(path: &Path, channels: u16, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// A deterministic, non-trivial 16-bit signal covering the whole range.
pub fn test_signal(n: usize) -> Vec<i16> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|i| match i % 97 {
            0 => i16::MIN,
            1 => i16::MAX,
            _ => {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 16) as i16
            }
        })
        .collect()
}

/// A sine of `freq` Hz and amplitude `amp` (i16 scale), `n` samples at `rate`.
pub fn sine(rate: u32, freq: f64, amp: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| amp * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

/// Parses a command line (without the program name).
pub fn args(line: &[&str]) -> audiostreamer::Args {
    audiostreamer::Args::try_parse_from(
        std::iter::once("audiostreamer").chain(line.iter().copied()),
    )
    .unwrap()
}

/// One received datagram and when it arrived.
pub struct Received {
    pub at: Instant,
    pub bytes: Vec<u8>,
}

/// A UDP socket on 127.0.0.1 (ephemeral port) drained by its own thread.
pub struct Capture {
    pub addr: SocketAddr,
    done: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    handle: JoinHandle<Vec<Received>>,
}

impl Capture {
    /// Starts capturing. With `stop_after = Some((n, flag))`, sets `flag`
    /// once `n` datagrams have arrived (to end a `--loop` stream).
    pub fn start(stop_after: Option<(usize, Arc<AtomicBool>)>) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let thread_done = Arc::clone(&done);
        let count = Arc::new(AtomicUsize::new(0));
        let thread_count = Arc::clone(&count);
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 70_000];
            while Instant::now() < deadline {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        got.push(Received {
                            at: Instant::now(),
                            bytes: buf[..n].to_vec(),
                        });
                        thread_count.store(got.len(), Ordering::SeqCst);
                        if let Some((limit, flag)) = &stop_after {
                            if got.len() >= *limit {
                                flag.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    // Idle: finished once the sender is done and the queue is empty.
                    Err(_) if thread_done.load(Ordering::SeqCst) => break,
                    Err(_) => {}
                }
            }
            got
        });
        Self {
            addr,
            done,
            count,
            handle,
        }
    }

    /// Datagrams received so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits (up to 20 s) until at least `n` datagrams have arrived.
    pub fn wait_for(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count() < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// The destination argument for the streamer.
    pub fn dest(&self) -> String {
        self.addr.to_string()
    }

    /// Waits until the socket has been idle after the sender finished.
    pub fn finish(self) -> Vec<Received> {
        self.done.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// Splits mono datagrams into (seq, samples).
pub fn decode_mono(got: &[Received]) -> Vec<(u32, Vec<i16>)> {
    got.iter()
        .map(|r| {
            let d = proto::MonoDatagram::decode(&r.bytes).expect("valid mono datagram");
            (d.seq, d.samples().collect())
        })
        .collect()
}

/// The bytes a mono datagram with `seq` and `samples` must have.
pub fn mono_bytes(seq: u32, samples: &[i16]) -> Vec<u8> {
    let mut b = seq.to_be_bytes().to_vec();
    for s in samples {
        b.extend_from_slice(&s.to_be_bytes());
    }
    b
}

/// Runs a streamer for `line` to completion (or until `stop`).
pub fn stream(line: &[&str], stop: &AtomicBool) -> audiostreamer::Summary {
    audiostreamer::Streamer::new(&args(line))
        .unwrap()
        .run(stop)
        .unwrap()
}

/// Frequency and RMS of a signal: rising zero crossings per second, and RMS.
pub fn freq_and_rms(x: &[i16], rate: u32) -> (f64, f64) {
    let crossings = x.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    let freq = crossings as f64 * f64::from(rate) / x.len() as f64;
    let rms = (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    (freq, rms)
}
