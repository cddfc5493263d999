//! Helpers shared by the end-to-end tests: starting each program on
//! ephemeral ports, WAV files in and out, event-log parsing, offline mixes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clap::Parser;

pub const RATE: u32 = 44_100;
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Held by each test for its whole run: the scenarios are real-time and
/// timing-sensitive, so they run one at a time rather than competing for
/// the machine's two cores.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Jitter-buffer target for the scenarios: generous, so a loaded machine
/// delaying a streamer never makes a packet late (exact comparisons).
pub const JITTER_MS: &str = "250";

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `cond` until it holds, failing after a generous deadline.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A distinctive mono test signal: a chirp-like tone plus a salted pattern.
pub fn signal(len: usize, salt: u32, amplitude: f64) -> Vec<i16> {
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let f = 110.0 * f64::from(salt + 1) + 40.0 * t;
            let pattern =
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(salt) >> 24) as f64 - 128.0;
            (amplitude * (2.0 * std::f64::consts::PI * f * t).sin() + pattern) as i16
        })
        .collect()
}

/// Writes a 44.1 kHz mono 16-bit WAV.
pub fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// Reads a stereo 16-bit WAV as frames.
pub fn read_stereo_wav(path: &Path) -> Vec<(i16, i16)> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(r.spec().channels, 2, "{}", path.display());
    let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    samples.chunks_exact(2).map(|f| (f[0], f[1])).collect()
}

/// Starts a node (in-process) with `extra` flags on ephemeral ports.
pub fn start_node(log: &Path, extra: &[&str]) -> audionode::NodeHandle {
    let mut argv = vec![
        "audionode",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--log-file",
    ];
    argv.push(log.to_str().unwrap());
    if !extra.contains(&"--plc") {
        // The scenarios rebuild the recording offline, silent where
        // nothing was sent (a stream's end included); a test that wants
        // concealment says so.
        argv.extend_from_slice(&["--plc", "off"]);
    }
    argv.extend_from_slice(extra);
    let args = audionode::Args::parse_from(argv);
    audionode::start(audionode::Config::from_args(&args, |_| None).unwrap()).unwrap()
}

/// Frames the node has sent, once its snapshot has caught up (call when
/// every stream has been dropped, so the count no longer changes).
pub fn frames_sent(node: &audionode::NodeHandle) -> u64 {
    let mut last = u64::MAX;
    loop {
        thread::sleep(Duration::from_millis(50));
        let now = node.snapshot().node.frames;
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Starts a recorder (in-process, no playback) with `extra` flags.
pub fn start_recorder(extra: &[&str]) -> audiorecorder::Recorder {
    let mut argv = vec!["audiorecorder", "--no-playback"];
    argv.extend_from_slice(extra);
    let args = audiorecorder::Args::parse_from(argv);
    audiorecorder::start(audiorecorder::Config::from_args(&args).unwrap()).unwrap()
}

/// A streamer running in its own thread.
pub struct StreamerRun {
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<audiostreamer::Summary>>,
}

impl StreamerRun {
    /// Sets up a streamer with `argv` (after the program name) and starts
    /// sending in its own thread.
    pub fn start(argv: &[&str]) -> Self {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (addrs_tx, addrs) = std::sync::mpsc::channel();
        // The streamer owns a non-Send source: build it on its own thread.
        let thread = thread::spawn(move || {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let streamer = prepare(&argv);
            addrs_tx
                .send((streamer.udp_local_addr(), streamer.tcp_local_addr()))
                .unwrap();
            streamer.run(&flag).expect("streamer runs")
        });
        let (udp_addr, tcp_addr) = addrs.recv().expect("streamer set up");
        Self {
            udp_addr,
            tcp_addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it now (Ctrl-C equivalent).
    pub fn stop(&mut self) -> audiostreamer::Summary {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Waits until the track has been sent.
    pub fn join(&mut self) -> audiostreamer::Summary {
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("streamer thread")
    }
}

/// A streamer set up (sockets bound) but not yet sending.
pub fn prepare(argv: &[&str]) -> audiostreamer::Streamer {
    let mut full = vec!["audiostreamer"];
    full.extend_from_slice(argv);
    audiostreamer::Streamer::new(&audiostreamer::Args::parse_from(full)).expect("streamer set-up")
}

/// The event-log lines of `source`, without time stamp and address.
pub fn events_of(log: &Path, source: SocketAddr) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tag = format!("[{:>21}] ", source.to_string());
    text.lines()
        .filter_map(|l| l.split_once(&tag).map(|(_, e)| e.to_string()))
        .collect()
}

/// Value of `key=` in an event line.
pub fn field(line: &str, key: &str) -> u64 {
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// `start_frame` of every `New stream` / `Stream restarted` line of `source`.
pub fn start_frames(log: &Path, source: SocketAddr) -> Vec<u64> {
    events_of(log, source)
        .iter()
        .filter(|l| l.starts_with("New stream") || l.starts_with("Stream restarted"))
        .map(|l| field(l, "start_frame"))
        .collect()
}

/// Whether `source` has a `Dropped stream` line.
pub fn dropped(log: &Path, source: SocketAddr) -> bool {
    events_of(log, source)
        .iter()
        .any(|l| l.starts_with("Dropped stream"))
}

/// The offline mix: each track placed at its start frame, summed and
/// saturated like the node (unity gains: left = right).
pub fn offline_mix(len: usize, tracks: &[(u64, &[i16])]) -> Vec<(i16, i16)> {
    let mut sum = vec![0i32; len];
    for &(start, samples) in tracks {
        for (i, &s) in samples.iter().enumerate() {
            if let Some(slot) = sum.get_mut(start as usize + i) {
                *slot += i32::from(s);
            }
        }
    }
    sum.into_iter()
        .map(|s| {
            let s = s.clamp(-32768, 32767) as i16;
            (s, s)
        })
        .collect()
}

/// A stereo frame.
pub type Frame = (i16, i16);

/// First frame where two recordings differ (index, got, wanted), for readable failures.
pub fn first_difference(got: &[(i16, i16)], want: &[(i16, i16)]) -> Option<(usize, Frame, Frame)> {
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .map(|(i, (g, w))| (i, *g, *w))
}

/// The usual rig: a recorder (in-process, no playback, ephemeral port)
/// writing `rec.wav`, and a node sending to it and logging to `node.log`.
pub struct Rig {
    pub wav: PathBuf,
    pub log: PathBuf,
    pub recorder: audiorecorder::Recorder,
    pub node: audionode::NodeHandle,
}

impl Rig {
    /// Starts the recorder, then the node with the scenarios' jitter target,
    /// `--timeout-ms timeout_ms` and `extra` flags.
    pub fn start(dir: &Path, timeout_ms: &str, extra: &[&str]) -> Self {
        let (wav, log) = (dir.join("rec.wav"), dir.join("node.log"));
        let recorder = start_recorder(&[wav.to_str().unwrap(), "0", "--bind", "127.0.0.1"]);
        let dest = recorder.local_addr().unwrap().to_string();
        let mut flags = vec![
            "--dest",
            &dest,
            "--jitter-ms",
            JITTER_MS,
            "--timeout-ms",
            timeout_ms,
        ];
        flags.extend_from_slice(extra);
        let node = start_node(&log, &flags);
        Self {
            wav,
            log,
            recorder,
            node,
        }
    }

    /// The node's address, for streamers.
    pub fn node_addr(&self) -> String {
        self.node.local_addr().to_string()
    }

    /// Once every stream was dropped: waits until the recorder has every
    /// frame the node sent, stops both, and returns the recording.
    pub fn finish(self) -> Vec<Frame> {
        let sent = frames_sent(&self.node);
        wait_for("the recorder to receive every frame sent", || {
            self.recorder.stats().snapshot().recorded_frames == sent
        });
        self.node.stop().unwrap();
        self.recorder.stop().unwrap();
        read_stereo_wav(&self.wav)
    }
}

/// Writes each track to `dir/track<i>.wav` and starts one streamer per
/// track towards `dest` (bound to 127.0.0.1), `stagger` apart.
pub fn stream_tracks(
    dir: &Path,
    tracks: &[Vec<i16>],
    dest: &str,
    stagger: Duration,
) -> Vec<StreamerRun> {
    let mut runs = Vec::new();
    for (i, track) in tracks.iter().enumerate() {
        let path = dir.join(format!("track{i}.wav"));
        write_wav(&path, track);
        runs.push(StreamerRun::start(&[
            path.to_str().unwrap(),
            dest,
            "--bind",
            "127.0.0.1:0",
        ]));
        thread::sleep(stagger);
    }
    runs
}

/// What [`stream_through_proxy`] did: the tracks sent, the streamers'
/// addresses (in track order), the proxy's ground truth and the recording.
pub struct ProxiedRun {
    pub tracks: Vec<Vec<i16>>,
    pub clients: Vec<SocketAddr>,
    pub truth: audioimpair::GroundTruth,
    pub recording: Vec<Frame>,
}

/// Streams three tracks (a little over 3 s each, the signal's salt from
/// `salt` on) through an `audioimpair` proxy started with `impairments`
/// into `rig`'s node, waits until the proxy released everything and the
/// node dropped every stream, and finishes the rig.
pub fn stream_through_proxy(rig: Rig, dir: &Path, impairments: &[&str], salt: u32) -> ProxiedRun {
    let node_addr = rig.node_addr();
    let mut argv = vec![
        "audioimpair",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &node_addr,
    ];
    argv.extend_from_slice(impairments);
    let args = audioimpair::Args::parse_from(argv);
    let proxy = audioimpair::Proxy::start(audioimpair::Config::from_args(&args).unwrap()).unwrap();
    let proxy_addr = proxy.listen_addr().to_string();
    let tracks: Vec<Vec<i16>> = (0..3)
        .map(|i| signal(RATE as usize * 3 + 500 * i, salt + i as u32, 5000.0))
        .collect();
    let mut runs = stream_tracks(dir, &tracks, &proxy_addr, Duration::from_millis(40));
    let clients: Vec<_> = runs.iter().map(|r| r.udp_addr.unwrap()).collect();
    for run in &mut runs {
        run.join();
    }
    wait_for("the proxy to release everything", || {
        let t = proxy.ground_truth();
        t.sources.len() == 3 && t.sources.iter().all(|s| s.pending == 0)
    });
    let truth = proxy.stop();
    for s in &truth.sources {
        wait_for("each stream to be dropped", || {
            dropped(&rig.log, s.upstream)
        });
    }
    let recording = rig.finish();
    ProxiedRun {
        tracks,
        clients,
        truth,
        recording,
    }
}

/// Where `want` best lines up in `got` and how well: the lag (frames of
/// `got` before `want`'s first frame: first near the onsets, where each
/// first exceeds a tenth of its peak, then the best within ±10 ms of that
/// over the whole overlap, since a tone correlates almost as well one
/// period off on a short piece) and the correlation coefficient there.
/// For lossy codecs, close but not equal.
pub fn best_alignment(got: &[i16], want: &[i16]) -> (usize, f64) {
    let onset = |v: &[i16]| {
        let peak = v.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        v.iter()
            .position(|s| s.unsigned_abs() > peak / 10)
            .unwrap_or(0)
    };
    let coarse = onset(got).saturating_sub(onset(want));
    let score = |lag: usize, len: usize| -> f64 {
        let n = len.min(got.len().saturating_sub(lag)).min(want.len());
        correlation(&got[lag..lag + n], &want[..n])
    };
    let reach = RATE as usize / 100;
    let lag = (coarse.saturating_sub(reach)..coarse + reach)
        .max_by(|&a, &b| score(a, want.len()).total_cmp(&score(b, want.len())))
        .unwrap_or(0);
    (lag, score(lag, want.len()))
}

/// How well each 50 ms piece of `want` (from `lag` on in `got`) is found
/// in `got` within ±10 ms of where it belongs: the median of the pieces'
/// best correlations. For a receiver that may drop or repeat a few frames
/// to follow a sender's clock, which shifts everything after.
pub fn piecewise_correlation(got: &[i16], want: &[i16], lag: usize) -> f64 {
    let piece = RATE as usize / 20;
    let reach = RATE as usize / 100;
    let mut best: Vec<f64> = want
        .chunks_exact(piece)
        .enumerate()
        .filter_map(|(k, w)| {
            let at = lag + k * piece;
            (at.saturating_sub(reach)..at + reach)
                .filter(|&s| s + piece <= got.len())
                .map(|s| correlation(&got[s..s + piece], w))
                .max_by(f64::total_cmp)
        })
        .collect();
    best.sort_by(f64::total_cmp);
    best.get(best.len() / 2).copied().unwrap_or(0.0)
}

/// Pearson correlation coefficient of two equally long pieces (0 when
/// either is constant).
pub fn correlation(x: &[i16], y: &[i16]) -> f64 {
    let n = x.len().min(y.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |v: &[i16]| v[..n].iter().map(|&s| f64::from(s)).sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x[..n].iter().zip(&y[..n]) {
        let (a, b) = (f64::from(a) - mx, f64::from(b) - my);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}
