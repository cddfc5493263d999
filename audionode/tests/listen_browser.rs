//! The Listen page in a real browser (Debian's Chromium on a virtual
//! display, through chromedriver) playing into PulseAudio's null sink: two
//! streams mixed by a node at 48 kHz are heard, and a 2 s excerpt of what
//! the sink's monitor captured (`parec`) matches the node's own mix with a
//! cross-correlation of at least 0.99; the page shows its latency and
//! underruns. The player drops or repeats at most 0.05 % of the frames;
//! the excerpts tried (one every half second) are those without a
//! correction of the player's (it logs them with their times) and without
//! a gap the browser left (on a loaded machine Chromium misses deadlines
//! and the sound server plays silence; measured up to 85 ms at once), and
//! the best of them counts (the capture itself can lose frames on a loaded
//! machine); it listens 8 s, and on up to 20 s until one matches. The worklet's resampling path (a 48 kHz
//! stream in a 44.1 kHz context) is checked offline against the ideal
//! signal. `LISTEN_DUMP=PATH` writes the capture and the mix (s16le
//! stereo) to `PATH.cap` and `PATH.mix`.
//!
//! Needs `eval "$(scripts/headless-audio.sh)"` (PULSE_SERVER) and
//! chromium; without them the test is skipped with a loud reason, except
//! under `CI=true`, where it fails.

mod chrome;
mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use audionode::{Args, Config, NodeHandle};
use chrome::*;
use common::signal::*;
use common::*;
use fantoccini::Locator;
use proto::udp_mono::{encode_mono, mono_datagram_len};

const NODE_RATE: u32 = 48_000;
/// Samples per datagram of the 48 kHz sources: 10 ms.
const PACKET: usize = 480;
/// Seconds the test listens while the capture runs, at least: then on,
/// up to `PLAY_MAX_S`, until the capture holds an excerpt to check.
const PLAY_S: u64 = 8;
const PLAY_MAX_S: u64 = 20;

fn skip_or_fail(why: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED listen browser test: {why}");
    true
}

fn start(dir: &Path, dest: SocketAddr) -> NodeHandle {
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![dest.to_string()],
        log_file: Some(dir.join("audionode.log")),
        jitter_ms: Some("40".into()),
        sample_rate: NODE_RATE,
        max_sources: 16,
        timeout_ms: 1000,
        http: "127.0.0.1:0".into(),
        ..Default::default()
    };
    audionode::start(Config::from_args(&args, |_| None).unwrap()).unwrap()
}

/// A 48 kHz mono stream of `samples`, paced at 10 ms a packet, until
/// `stop` is set.
fn stream(to: SocketAddr, samples: Vec<i16>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    thread::spawn(move || {
        let start = Instant::now();
        let mut buf = vec![0u8; mono_datagram_len(PACKET)];
        for (k, chunk) in samples.chunks_exact(PACKET).enumerate() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let due = start + Duration::from_millis(10 * k as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            let n = encode_mono(k as u32, chunk, &mut buf).unwrap();
            socket.send_to(&buf[..n], to).unwrap();
        }
    })
}

/// A smooth but never-repeating signal (a sum of incommensurate tones with
/// slowly wandering amplitudes), so that the alignment is unique and a
/// dropped or repeated frame costs little correlation.
fn music(len: usize, salt: f64) -> Vec<i16> {
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(NODE_RATE);
            let tones = [220.0 * salt, 331.7 * salt, 523.3, 97.1 * salt];
            let value: f64 = tones
                .iter()
                .enumerate()
                .map(|(k, f)| {
                    let wander = 0.6 + 0.4 * (t * (0.37 + k as f64 * 0.21) + salt).sin();
                    wander * (std::f64::consts::TAU * f * t).sin()
                })
                .sum();
            (value * 1800.0) as i16
        })
        .collect()
}

/// `parec` on the null sink's monitor, read on its own thread.
struct Capture {
    child: Child,
    samples: Arc<Mutex<Vec<i16>>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(sink: &str) -> Self {
        let mut child = Command::new("parec")
            .args([
                "-d",
                &format!("{sink}.monitor"),
                "--format=s16le",
                "--rate=48000",
                "--channels=2",
                "--latency-msec=50",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start parec");
        let mut out = child.stdout.take().unwrap();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&samples);
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut odd: Option<u8> = None;
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut bytes: Vec<u8> = odd.take().into_iter().collect();
                bytes.extend_from_slice(&buf[..n]);
                if bytes.len() % 2 == 1 {
                    odd = bytes.pop();
                }
                let mut s = s.lock().unwrap();
                s.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
            }
        });
        Self {
            child,
            samples,
            thread: Some(thread),
        }
    }

    fn frames(&self) -> usize {
        self.samples.lock().unwrap().len() / 2
    }

    fn snapshot(&self) -> Vec<i16> {
        self.samples.lock().unwrap().clone()
    }

    fn finish(mut self) -> Vec<i16> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A correction of the player's (a dropped or repeated frame, a jump, an
/// underrun) at a frame of the browser's audio context.
struct Correction {
    frame: f64,
    kind: String,
}

impl std::fmt::Debug for Correction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at frame {}", self.kind, self.frame)
    }
}

fn corrections(stats: &serde_json::Value) -> Vec<Correction> {
    stats["corrections"]
        .as_array()
        .expect("the player's stats list its corrections")
        .iter()
        .map(|c| Correction {
            frame: c[0].as_f64().unwrap(),
            kind: c[1].as_str().unwrap().to_string(),
        })
        .collect()
}

/// Where the mix, the capture and the browser's audio context stood at
/// one moment (frames of each).
#[derive(Clone, Copy, Debug)]
struct Mark {
    mix: usize,
    capture: usize,
    context: f64,
}

/// The capture frame that `marks` (in time order) put context frame
/// `frame` at, when the context frame lies between two of them: the
/// context falls behind the capture wherever the browser missed a
/// deadline, so one mark alone would not do.
fn capture_frame_of(marks: &[Mark], frame: f64) -> Option<f64> {
    marks.windows(2).find_map(|w| {
        let (a, b) = (w[0], w[1]);
        (a.context <= frame && frame <= b.context && b.context > a.context).then(|| {
            let t = (frame - a.context) / (b.context - a.context);
            a.capture as f64 + t * (b.capture as f64 - a.capture as f64)
        })
    })
}

/// Runs of at least `min` frames of digital silence in interleaved stereo
/// `samples` (the browser had nothing ready for the sound server: no
/// mix of two streams is exactly zero that long), as frame ranges.
fn silences(samples: &[i16], min: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut run = 0;
    for (i, f) in samples.chunks_exact(2).enumerate() {
        if f == [0, 0] {
            run += 1;
        } else {
            if run >= min {
                out.push(((i - run) as f64, i as f64));
            }
            run = 0;
        }
    }
    out
}

/// Where 2 s excerpts of what the sink played may begin in the capture
/// (interleaved stereo, from its start), every half second: away from
/// any correction (one dropped frame shifts what follows; an alignment
/// follows one piece) and from any gap the browser left (silence where it
/// missed a deadline: a loaded machine's doing, not the player's), within
/// what `marks` span. A correction is heard after the output's latency
/// (under 300 ms).
fn excerpt_starts(
    marks: &[Mark],
    corrections: &[Correction],
    captured: &[i16],
) -> Result<Vec<f64>, String> {
    let (first, last) = (marks[0], marks[marks.len() - 1]);
    let second = f64::from(NODE_RATE);
    let end = last.capture.min(captured.len() / 2);
    let gaps = silences(&captured[2 * first.capture..2 * end], 8);
    let mut avoid: Vec<(f64, f64)> = gaps
        .iter()
        .map(|&(a, b)| {
            let at = first.capture as f64;
            (at + a - 0.05 * second, at + b + 0.05 * second)
        })
        .collect();
    avoid.extend(corrections.iter().map(|c| {
        let at = capture_frame_of(marks, c.frame)
            .unwrap_or(c.frame - first.context + first.capture as f64);
        (at - 0.1 * second, at + 0.3 * second)
    }));
    let mut starts = Vec::new();
    let mut from = first.capture as f64 + 0.5 * second;
    while let Some(start) = clean_window(&avoid, from, end as f64, 2.0 * second) {
        starts.push(start);
        from = start + 0.5 * second;
    }
    if starts.is_empty() {
        return Err(format!("no 2 s without a correction or gap: corrections {corrections:?}, gaps in the capture (frames from the first mark) {gaps:?}"));
    }
    Ok(starts)
}

/// How one 2 s excerpt of the capture lines up with the mix.
#[derive(Clone, Copy, Debug)]
struct Match {
    /// The excerpt's first frame in the capture.
    from: usize,
    /// The mix frame it lines up with best.
    offset: usize,
    /// Their correlation there.
    correlation: f64,
    /// The mix frame the marks put it at, before the search.
    expected: usize,
}

/// Every clean excerpt of `captured` lined up with `mix` (both
/// interleaved stereo), the best first: the capture may also lose frames
/// of its own (a recording stream the sound server overran on a loaded
/// machine), which no correction of the player's and no silent gap shows.
fn matches(
    marks: &[Mark],
    corrections: &[Correction],
    captured: &[i16],
    mix: &[i16],
) -> Result<Vec<Match>, String> {
    let second = NODE_RATE as usize;
    let first = marks[0];
    let mut found: Vec<Match> = excerpt_starts(marks, corrections, captured)?
        .into_iter()
        .filter_map(|start| {
            let from = start as usize;
            // The mark just before the excerpt says where the mix stood.
            let mark = marks
                .iter()
                .rev()
                .find(|m| m.capture <= from)
                .copied()
                .unwrap_or(first);
            let excerpt = captured.get(2 * from..2 * (from + 2 * second))?;
            let expected = mark.mix + (from - mark.capture);
            let range = expected.saturating_sub(3 * second / 2)..expected + second / 5;
            (2 * (range.end + 2 * second) <= mix.len()).then(|| {
                let (offset, correlation) = align(excerpt, mix, range);
                Match {
                    from,
                    offset,
                    correlation,
                    expected,
                }
            })
        })
        .collect();
    found.sort_by(|a, b| b.correlation.total_cmp(&a.correlation));
    if found.is_empty() {
        return Err("no clean excerpt with the mix around it yet".into());
    }
    Ok(found)
}

/// The first `len` frames from `from` on, ending by `to`, that meet none
/// of the ranges `avoid`.
fn clean_window(avoid: &[(f64, f64)], from: f64, to: f64, len: f64) -> Option<f64> {
    let mut start = from;
    loop {
        if start + len > to {
            return None;
        }
        match avoid
            .iter()
            .filter(|&&(a, b)| a < start + len && b > start)
            .map(|&(_, b)| b)
            .max_by(f64::total_cmp)
        {
            None => return Some(start),
            Some(end) => start = end,
        }
    }
}

/// The frame offset of `excerpt` (interleaved stereo) in `mix` with the
/// best correlation, searched over frame offsets `range`, and that
/// correlation: the best match of the channels' sum, then
/// the whole excerpt correlated there and a frame either side.
fn align(excerpt: &[i16], mix: &[i16], range: std::ops::Range<usize>) -> (usize, f64) {
    let frames = excerpt.len() / 2;
    let end = (range.end + frames).min(mix.len() / 2);
    let mono = |s: &[i16]| -> Vec<f64> {
        s.chunks_exact(2)
            .map(|f| f64::from(f[0]) + f64::from(f[1]))
            .collect()
    };
    let lag = best_match(&mono(&mix[2 * range.start..2 * end]), &mono(excerpt));
    let at = range.start + lag;
    let stereo = |s: &[i16]| -> Vec<f64> { s.iter().map(|&x| f64::from(x)).collect() };
    let want = stereo(excerpt);
    (at.saturating_sub(1)..=at + 1)
        .filter(|&o| 2 * (o + frames) <= mix.len())
        .map(|o| {
            (
                o,
                correlation(&want, &stereo(&mix[2 * o..2 * (o + frames)])),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

#[test]
fn the_listen_page_plays_the_mix_into_the_sound_card() {
    if !browser_available() {
        return;
    }
    let Ok(sink) = std::env::var("AUDIOMIX_NULL_SINK") else {
        skip_or_fail("no PulseAudio null sink: run eval \"$(scripts/headless-audio.sh)\" first");
        return;
    };
    let dir = temp_dir("listen-browser");
    let collector = Collector::start();
    let node = start(&dir, collector.addr);
    let api = node.http_addr().unwrap();
    let seconds = PLAY_MAX_S as usize + 9;
    let stop = Arc::new(AtomicBool::new(false));
    let a = stream(
        node.local_addr(),
        music(seconds * NODE_RATE as usize, 1.0),
        Arc::clone(&stop),
    );
    let b = stream(
        node.local_addr(),
        music(seconds * NODE_RATE as usize, 1.37),
        Arc::clone(&stop),
    );
    let capture = Capture::start(&sink);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (marks, corrections, corrected) = runtime.block_on(async {
        let driver = Driver::start_audible();
        let extra = ["--autoplay-policy=no-user-gesture-required".to_string()];
        let page = open_browser_with(&driver, &dir.join("profile"), &extra).await;
        page.goto(&format!("http://{api}/listen")).await.unwrap();
        page.find(Locator::Id("play")).await.unwrap().click().await.unwrap();
        let describe = "return JSON.stringify([document.getElementById('state').textContent, window.listenPlayer.stats])";
        wait_js_or(
            &page,
            "the player to play",
            "const s = window.listenPlayer.stats; return !!s && s.playing && s.buffered_ms > 0",
            describe,
        )
        .await;
        let stats = js(&page, "return window.listenPlayer.stats").await;
        assert_eq!(stats["context_rate"], NODE_RATE, "{stats}");
        assert_eq!(stats["node_rate"], NODE_RATE, "{stats}");
        wait_js_or(
            &page,
            "the page to show the latency",
            "return /^\\d+ ms$/.test(document.getElementById('latency').textContent)",
            describe,
        )
        .await;
        assert_eq!(
            js(&page, "return document.getElementById('play').textContent").await,
            "■ Stop"
        );

        // Playing: note where the mix and the capture are, then let 5 s play.
        // Chromium must play into PulseAudio, not into a fake output.
        let inputs = Command::new("pactl")
            .args(["list", "short", "sink-inputs"])
            .output()
            .expect("run pactl");
        assert!(
            !String::from_utf8_lossy(&inputs.stdout).trim().is_empty(),
            "Chromium opened no PulseAudio stream (headless Chromium may render audio into a fake output)"
        );
        // Where the mix, the capture and the context stand, every 250 ms
        // while it plays.
        let context_frame = "const c = window.listenPlayer.context; return c.currentTime * c.sampleRate";
        let before = js(&page, "return window.listenPlayer.stats").await;
        let t0 = Instant::now();
        let mut marks = Vec::new();
        while t0.elapsed() < Duration::from_secs(PLAY_MAX_S) {
            let context = js(&page, context_frame).await.as_f64().unwrap();
            marks.push(Mark {
                mix: collector.len(),
                capture: capture.frames(),
                context,
            });
            if t0.elapsed() >= Duration::from_secs(PLAY_S) && marks.len() % 4 == 0 {
                let stats = js(&page, "return window.listenPlayer.stats").await;
                let mix = collector.snapshot_frames(0, collector.len());
                let mix: Vec<i16> = mix.into_iter().flat_map(|(l, r)| [l, r]).collect();
                let heard = matches(&marks, &corrections(&stats), &capture.snapshot(), &mix);
                if heard.is_ok_and(|m| m[0].correlation >= 0.99) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let after = js(&page, "return window.listenPlayer.stats").await;
        let wall = t0.elapsed().as_secs_f64();
        let rate_of = |key: &str| {
            (after[key].as_f64().unwrap() - before[key].as_f64().unwrap()) / wall
        };
        eprintln!(
            "listen player after {wall:.1} s: {after}; received {:.0} frames/s, rendered {:.0} frames/s, captured {:.0} frames/s",
            rate_of("received_frames"),
            rate_of("rendered_frames"),
            (capture.frames() - marks[0].capture) as f64 / wall
        );
        let counted = |key: &str| after[key].as_u64().unwrap() - before[key].as_u64().unwrap();
        let corrected = counted("drops") + counted("repeats");

        // The worklet's resampling path, offline: 48 kHz in, 44.1 kHz out.
        let resampled = page
            .execute_async(RESAMPLE_CHECK, vec![])
            .await
            .expect("the offline resampling check runs");
        eprintln!("offline resampling: {resampled}");
        assert_eq!(resampled["error"], serde_json::Value::Null, "{resampled}");
        assert!(
            resampled["compared"].as_u64().unwrap() == 1700,
            "{resampled}"
        );
        assert!(
            resampled["max_error"].as_f64().unwrap() < 0.005,
            "linear interpolation of 440 Hz and 1 kHz: {resampled}"
        );

        page.find(Locator::Id("play")).await.unwrap().click().await.unwrap();
        wait_js(
            &page,
            "the player to stop",
            "return document.getElementById('state').textContent === 'stopped'",
        )
        .await;
        page.close().await.unwrap();
        (marks, corrections(&after), corrected)
    });
    stop.store(true, Ordering::SeqCst);
    a.join().unwrap();
    b.join().unwrap();
    node.stop().unwrap();
    let captured = capture.finish();
    let mix: Vec<i16> = collector
        .finish()
        .into_iter()
        .flat_map(|(l, r)| [l, r])
        .collect();
    eprintln!(
        "captured {} frames, mix {} frames",
        captured.len() / 2,
        mix.len() / 2
    );

    // The player corrects rarely: it follows the clocks' real difference
    // (none between two clocks of one machine; the browser's audio clock
    // falls behind where it misses deadlines), not the messages' bursty
    // arrival: at most 0.05 % of the frames.
    let (first, last) = (marks[0], marks[marks.len() - 1]);
    let played = last.capture - first.capture;
    let during: Vec<&Correction> = corrections
        .iter()
        .filter(|c| c.frame >= first.context && c.frame < last.context)
        .collect();
    eprintln!("{corrected} frames dropped or repeated in {played} frames played; the latest corrections: {during:?}");
    assert!(
        corrected as usize * 2000 <= played,
        "{corrected} frames dropped or repeated in {played}: {during:?}"
    );
    if let Ok(path) = std::env::var("LISTEN_DUMP") {
        let b: Vec<u8> = captured.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(format!("{path}.cap"), b).unwrap();
        let b: Vec<u8> = mix.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(format!("{path}.mix"), b).unwrap();
    }
    let found =
        matches(&marks, &corrections, &captured, &mix).unwrap_or_else(|why| panic!("{why}"));
    let best = found[0];
    eprintln!(
        "{} clean 2 s excerpts, correlations {:?}; the best from capture frame {}: mix frame {} (latency {:.1} ms), correlation {:.5}",
        found.len(),
        found.iter().map(|m| (m.correlation * 1e4).round() / 1e4).collect::<Vec<_>>(),
        best.from,
        best.offset,
        (best.expected as f64 - best.offset as f64) * 1000.0 / f64::from(NODE_RATE),
        best.correlation
    );
    let excerpt = &captured[2 * best.from..2 * (best.from + 2 * NODE_RATE as usize)];
    assert!(
        excerpt.iter().any(|&s| s.unsigned_abs() > 1000),
        "the sink played the stream"
    );
    assert!(
        best.correlation >= 0.99,
        "correlation {} of the played audio with the mix: {found:?}",
        best.correlation
    );
}

/// Renders 1 s of a 48 kHz two-tone stream through the worklet in a
/// 44.1 kHz OfflineAudioContext and compares it with the ideal tones.
const RESAMPLE_CHECK: &str = r#"
const done = arguments[arguments.length - 1];
(async () => {
  const out = 44100, rate = 48000, len = out;
  const ctx = new OfflineAudioContext({ numberOfChannels: 2, length: len, sampleRate: out });
  await ctx.audioWorklet.addModule("listen-worklet.js");
  const node = new AudioWorkletNode(ctx, "audiomix-listener", {
    numberOfInputs: 0, outputChannelCount: [2], processorOptions: { rate } });
  node.connect(ctx.destination);
  const n = rate, amp = 16000;
  const pcm = new Int16Array(2 * n);
  for (let i = 0; i < n; i++) {
    pcm[2 * i] = Math.round(amp * Math.sin(2 * Math.PI * 440 * i / rate));
    pcm[2 * i + 1] = Math.round(amp * Math.sin(2 * Math.PI * 1000 * i / rate));
  }
  // Hand the stream over while rendering is suspended at its start.
  ctx.suspend(128 / out).then(async () => {
    node.port.postMessage(pcm.buffer, [pcm.buffer]);
    await new Promise((r) => setTimeout(r, 300));
    ctx.resume();
  });
  const buffer = await ctx.startRendering();
  const l = buffer.getChannelData(0), r = buffer.getChannelData(1);
  const moved = l.findIndex((v, i) => v !== 0 || r[i] !== 0);
  if (moved < 0) return { error: "silence" };
  // Playback starts on a render quantum.
  const start = Math.floor(moved / 128) * 128;
  let maxError = 0, compared = 0;
  const step = rate / out;
  // The player starts with its first target (40 ms) buffered: the end of
  // the second handed over.
  const first = n - 40 * rate / 1000;
  for (let k = start; k < start + 1700 && k < len; k++) {
    const pos = first + (k - start) * step;
    const el = amp / 32768 * Math.sin(2 * Math.PI * 440 * pos / rate);
    const er = amp / 32768 * Math.sin(2 * Math.PI * 1000 * pos / rate);
    maxError = Math.max(maxError, Math.abs(l[k] - el), Math.abs(r[k] - er));
    compared++;
  }
  return { error: null, start, compared, max_error: maxError };
})().then(done, (e) => done({ error: String(e) }));
"#;
