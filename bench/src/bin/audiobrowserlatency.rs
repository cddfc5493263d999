//! `audiobrowserlatency`: latency of the browser paths, with Chromium (on
//! a virtual X display, through chromedriver) and the headless PulseAudio
//! null sink (`eval "$(scripts/headless-audio.sh)"` first).
//!
//! **Listen** (source → node → `/listen` → sound card): this program sends
//! a 48 kHz mono stream to an in-process node (its defaults: 20 ms jitter
//! target, 5 ms blocks), a click on the last sample of every 25th 10 ms
//! datagram, while Chromium plays `/listen` into the null sink and `parec`
//! captures the sink's monitor. A click's latency is from when its
//! datagram left to when the sink played it: captured frames are placed on
//! the clock by the read that came soonest after its frames (see
//! `bench::browser`). The same measure of `pacat` writing clicks straight
//! into the sink (a 10 ms buffer) is the sound server's share, reported
//! beside. The listener's underruns after its first second come from
//! `window.listenPlayer.stats`.
//!
//! **Send** (fake microphone → `/send` → node → UDP): Chromium's fake
//! capture device plays a WAV of clicks every 250 ms (looped) into the Send
//! page; a TCP relay between the page and the node times each WebSocket
//! packet holding a click as it passes, and a UDP collector times the
//! node's output datagram holding it. Reported: node latency (packet in →
//! mixed datagram out, absolute), and how much later than its earliest a
//! click arrived at the relay and at the collector relative to the 250 ms
//! grid (the fake device's start is unknown, so the capture → WebSocket
//! part is only measured as its spread).
//!
//! Prints a Markdown table.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bench::browser::{capture_origin, lateness, onsets, pair};
use bench::latency::write_wav;
use bench::stats::{median, percentile};
use clap::Parser;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use proto::udp_mono::{encode_mono, mono_datagram_len};
use proto::StereoDatagram;
use serde_json::{json, Value};

const RATE: u32 = 48_000;
/// Samples per datagram: 10 ms.
const PACKET: usize = 480;
/// Datagrams between clicks: 250 ms.
const CLICK_EVERY: usize = 25;
const CLICK: i16 = 20_000;
/// Magnitude a captured click reaches (a centred mono source is mixed
/// 3 dB down).
const THRESHOLD: i16 = 4_000;
/// The longest latency a click is paired over (clicks are 250 ms apart).
const MAX_LATENCY_S: f64 = 0.2;
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const XVFB: &str = "/usr/bin/Xvfb";

/// Measures the latency of the Listen and Send pages' paths.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Seconds of clicks per path.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Seconds before the first click: the browser starts and settles.
    #[arg(long, default_value_t = 8.0)]
    warmup: f64,
    /// Seconds of the sound server's own reference (pacat into the sink).
    #[arg(long, default_value_t = 10.0)]
    reference_seconds: f64,
    /// Paths to run: listen, send (repeatable; default both).
    #[arg(long = "path")]
    paths: Vec<String>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiobrowserlatency: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    for tool in [CHROMIUM, CHROMEDRIVER, XVFB] {
        anyhow::ensure!(
            Path::new(tool).exists(),
            "{tool} is missing (scripts/setup.sh)"
        );
    }
    let sink = std::env::var("AUDIOMIX_NULL_SINK")
        .context("no null sink: run eval \"$(scripts/headless-audio.sh)\" first")?;
    let dir = std::env::temp_dir().join(format!("audiobrowserlatency-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let paths = if args.paths.is_empty() {
        vec!["listen".to_string(), "send".to_string()]
    } else {
        args.paths.clone()
    };
    let clock = Instant::now();
    let mut rows = Vec::new();
    for path in &paths {
        match path.as_str() {
            "listen" => {
                let reference = reference(&sink, args.reference_seconds, clock)?;
                rows.push(row(
                    "sound server alone (pacat → sink, 10 ms buffer)",
                    &reference,
                    None,
                ));
                let (latencies, underruns, stats) = listen(&sink, &args, &dir, clock)?;
                eprintln!("listener's final stats: {stats}");
                rows.push(row(
                    "source → node → /listen → sink (budget p99 ≤ 60 ms, 0 underruns)",
                    &latencies,
                    Some(underruns),
                ));
            }
            "send" => {
                let send = send(&args, &dir, clock)?;
                rows.push(row(
                    "/send packet in → node output (budget jitter 20 + block 5 = 25 ms)",
                    &send.node,
                    None,
                ));
                rows.push(spread_row(
                    &format!(
                        "fake microphone → /send packet in, above its earliest (its clicks every {:.2} ms)",
                        send.period_ms
                    ),
                    &send.at_relay,
                ));
                rows.push(spread_row(
                    "fake microphone → node output, above its earliest",
                    &send.at_output,
                ));
            }
            other => bail!("unknown --path {other} (listen, send)"),
        }
    }
    println!("| path | clicks | heard | median ms | p99 ms | max ms | underruns |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A table row of latencies (`None` for a click never heard), in ms.
fn row(what: &str, latencies: &[Option<f64>], underruns: Option<u64>) -> String {
    let heard: Vec<f64> = latencies.iter().flatten().map(|s| s * 1000.0).collect();
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    format!(
        "| {what} | {} | {} | {} | {} | {} | {} |",
        latencies.len(),
        heard.len(),
        ms(median(&heard)),
        ms(percentile(&heard, 99.0)),
        ms(heard.iter().copied().reduce(f64::max)),
        underruns.map_or("–".to_string(), |u| u.to_string())
    )
}

fn spread_row(what: &str, spread: &[f64]) -> String {
    let values: Vec<Option<f64>> = spread.iter().map(|&s| Some(s)).collect();
    row(what, &values, None)
}

/// What a capture holds: the left channel, and after each read when it
/// returned (seconds on the clock) and how many frames were read so far.
type Captured = (Vec<i16>, Vec<(f64, usize)>);

/// `parec` on the sink's monitor, read on its own thread.
struct Capture {
    child: Child,
    data: Arc<Mutex<Captured>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(sink: &str, clock: Instant) -> anyhow::Result<Self> {
        let mut child = Command::new("parec")
            .args([
                "-d",
                &format!("{sink}.monitor"),
                "--format=s16le",
                "--rate=48000",
                "--channels=2",
                "--latency-msec=5",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start parec")?;
        let mut out = child.stdout.take().unwrap();
        let data = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let d = Arc::clone(&data);
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut partial = Vec::new();
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let now = clock.elapsed().as_secs_f64();
                partial.extend_from_slice(&buf[..n]);
                let whole = partial.len() / 4 * 4;
                let mut d = d.lock().unwrap();
                d.0.extend(
                    partial[..whole]
                        .chunks_exact(4)
                        .map(|f| i16::from_le_bytes([f[0], f[1]])),
                );
                let frames = d.0.len();
                d.1.push((now, frames));
                partial.drain(..whole);
            }
        });
        Ok(Self {
            child,
            data,
            thread: Some(thread),
        })
    }

    /// The times (seconds on the clock) clicks were played at.
    fn finish(mut self) -> Vec<f64> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let (samples, reads) = std::mem::take(&mut *self.data.lock().unwrap());
        let Some(origin) = capture_origin(&reads, f64::from(RATE)) else {
            return Vec::new();
        };
        onsets(&samples, THRESHOLD, PACKET)
            .into_iter()
            .map(|i| origin + i as f64 / f64::from(RATE))
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether datagram `k` carries a click, given `warmup` datagrams of silence.
fn has_click(k: usize, warmup: usize) -> bool {
    k >= warmup && (k - warmup) % CLICK_EVERY == CLICK_EVERY / 2
}

/// The sound server alone: pacat writing clicks into the sink, 10 ms at a
/// time in real time; latency from each write to the click's capture.
fn reference(sink: &str, seconds: f64, clock: Instant) -> anyhow::Result<Vec<Option<f64>>> {
    let capture = Capture::start(sink, clock)?;
    let mut pacat = Command::new("pacat")
        .args([
            "--playback",
            "-d",
            sink,
            "--raw",
            "--format=s16le",
            "--rate=48000",
            "--channels=2",
            "--latency-msec=10",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start pacat")?;
    let mut input = pacat.stdin.take().unwrap();
    // Nothing written before pacat has connected: what waited in the pipe
    // meanwhile would delay every later write.
    thread::sleep(Duration::from_secs(1));
    let warmup = 100; // 1 s
    let total = warmup + (seconds * 100.0) as usize;
    let start = Instant::now();
    let mut sent = Vec::new();
    for k in 0..total {
        pace(start, k);
        let mut chunk = vec![0u8; PACKET * 4];
        if has_click(k, warmup) {
            let click = CLICK.to_le_bytes();
            chunk[(PACKET - 1) * 4..(PACKET - 1) * 4 + 2].copy_from_slice(&click);
            sent.push(clock.elapsed().as_secs_f64());
        }
        input.write_all(&chunk)?;
    }
    thread::sleep(Duration::from_millis(500));
    drop(input);
    let _ = pacat.wait();
    let heard = capture.finish();
    Ok(pair(&sent, &heard, MAX_LATENCY_S))
}

/// Sleeps until datagram `k`'s time.
fn pace(start: Instant, k: usize) {
    let due = start + Duration::from_millis(10 * k as u64);
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
}

/// A node on loopback ports with its defaults at 48 kHz, sending to `dest`.
fn node(dir: &Path, dest: SocketAddr) -> anyhow::Result<audionode::NodeHandle> {
    use clap::Parser as _;
    let log = dir.join("audionode.log");
    let args = audionode::Args::try_parse_from([
        "audionode".to_string(),
        "--listen=127.0.0.1:0".into(),
        format!("--dest={dest}"),
        format!("--log-file={}", log.display()),
        format!("--sample-rate={RATE}"),
        "--http=127.0.0.1:0".into(),
    ])?;
    audionode::start(audionode::Config::from_args(&args, |_| None)?)
}

/// The Listen path: per click the latency (None: never heard), the
/// listener's underruns after its first second, and its last stats.
fn listen(
    sink: &str,
    args: &Args,
    dir: &Path,
    clock: Instant,
) -> anyhow::Result<(Vec<Option<f64>>, u64, Value)> {
    let discard = UdpSocket::bind("127.0.0.1:0")?;
    let node = node(dir, discard.local_addr()?)?;
    let api = node.http_addr().context("the node's control surface")?;
    let warmup = (args.warmup * 100.0) as usize;
    let total = warmup + (args.seconds * 100.0) as usize;
    let to = node.local_addr();
    let began = Instant::now();
    let streamer = thread::spawn(move || -> Vec<f64> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = vec![0u8; mono_datagram_len(PACKET)];
        let mut samples = [0i16; PACKET];
        let mut sent = Vec::new();
        let start = Instant::now();
        for k in 0..total {
            pace(start, k);
            let click = has_click(k, warmup);
            samples[PACKET - 1] = if click { CLICK } else { 0 };
            let n = encode_mono(k as u32, &samples, &mut buf).unwrap();
            if click {
                sent.push(clock.elapsed().as_secs_f64());
            }
            socket.send_to(&buf[..n], to).unwrap();
        }
        sent
    });
    let capture = Capture::start(sink, clock)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (underruns, stats) = runtime.block_on(async {
        let browser =
            Browser::start(dir, &["--autoplay-policy=no-user-gesture-required".into()]).await?;
        let page = &browser.client;
        page.goto(&format!("http://{api}/listen")).await?;
        page.find(Locator::Id("play")).await?.click().await?;
        let playing = "const s = window.listenPlayer.stats; return !!s && s.playing";
        wait_js(page, playing).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = "return window.listenPlayer.stats";
        let first = page.execute(stats, vec![]).await?;
        // The stats just before the stream ends (its end is an underrun),
        // then on until the last click has played.
        let left = args.warmup + args.seconds - began.elapsed().as_secs_f64() - 0.1;
        tokio::time::sleep(Duration::from_secs_f64(left.max(0.0))).await;
        let last = page.execute(stats, vec![]).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let underruns =
            last["underruns"].as_u64().unwrap_or(0) - first["underruns"].as_u64().unwrap_or(0);
        browser.close().await;
        anyhow::Ok((underruns, last))
    })?;
    let sent = streamer.join().expect("the streamer");
    let heard = capture.finish();
    node.stop()?;
    eprintln!("listen: {} clicks sent, {} heard", sent.len(), heard.len());
    Ok((pair(&sent, &heard, MAX_LATENCY_S), underruns, stats))
}

/// What the Send path measured: node latency per click (s), and each
/// click's lateness above the earliest at the relay and at the output.
struct SendResult {
    node: Vec<Option<f64>>,
    at_relay: Vec<f64>,
    at_output: Vec<f64>,
    /// The fake microphone's click period, as the relay saw it.
    period_ms: f64,
}

fn send(args: &Args, dir: &Path, clock: Instant) -> anyhow::Result<SendResult> {
    // 10 s of clicks, 250 ms apart, looped by the fake device.
    let spacing = PACKET * CLICK_EVERY;
    let mut file = vec![0i16; 40 * spacing];
    for k in 0..40 {
        file[spacing / 2 + k * spacing] = CLICK;
    }
    let wav = dir.join("clicks.wav");
    write_wav(&wav, &file, RATE)?;

    let collector = Collector::start(clock)?;
    let node = node(dir, collector.addr)?;
    let api = node.http_addr().context("the node's control surface")?;
    let relay = Relay::start(api, clock)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let extra = [
            "--use-fake-ui-for-media-stream".to_string(),
            "--use-fake-device-for-media-stream".to_string(),
            format!("--use-file-for-fake-audio-capture={}", wav.display()),
            "--autoplay-policy=no-user-gesture-required".to_string(),
        ];
        let browser = Browser::start(dir, &extra).await?;
        let page = &browser.client;
        page.goto(&format!("http://{}/send", relay.addr)).await?;
        page.find(Locator::Id("name"))
            .await?
            .send_keys("clicks")
            .await?;
        page.find(Locator::Id("send")).await?.click().await?;
        wait_js(page, "return document.body.dataset.state === 'sending'").await?;
        tokio::time::sleep(Duration::from_secs_f64(args.warmup + args.seconds)).await;
        browser.close().await;
        anyhow::Ok(())
    })?;
    thread::sleep(Duration::from_millis(500));
    node.stop()?;
    let warm = |times: Vec<f64>| -> Vec<f64> {
        let from = times.first().copied().unwrap_or(0.0) + args.warmup;
        times.into_iter().filter(|&t| t >= from).collect()
    };
    let at_relay = warm(relay.clicks());
    let at_output = warm(collector.clicks());
    let (period, relay_lateness) = lateness(&at_relay, 0.25);
    Ok(SendResult {
        node: pair(&at_relay, &at_output, MAX_LATENCY_S),
        at_relay: relay_lateness,
        at_output: lateness(&at_output, 0.25).1,
        period_ms: period * 1000.0,
    })
}

/// The node's output: the time (on the clock) each datagram holding a
/// click arrived.
struct Collector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<f64>>,
}

impl Collector {
    fn start(clock: Instant) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let halt = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 65_536];
            let mut clicks = Vec::new();
            let mut calm = PACKET;
            while !halt.load(Ordering::SeqCst) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                let now = clock.elapsed().as_secs_f64();
                let Ok(d) = StereoDatagram::decode(&buf[..n]) else {
                    continue;
                };
                let left: Vec<i16> = d.frames().map(|(l, _)| l).collect();
                // A click that began in an earlier datagram is not a new one.
                if left
                    .iter()
                    .any(|s| s.unsigned_abs() >= THRESHOLD.unsigned_abs())
                {
                    if calm >= PACKET {
                        clicks.push(now);
                    }
                    calm = 0;
                } else {
                    calm += left.len();
                }
            }
            clicks
        });
        Ok(Self { addr, stop, thread })
    }

    fn clicks(self) -> Vec<f64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// A TCP relay in front of the node's control surface that times the
/// WebSocket packets of `/ws/send` holding a click as they pass.
struct Relay {
    addr: SocketAddr,
    clicks: Arc<Mutex<Vec<f64>>>,
}

impl Relay {
    fn start(to: SocketAddr, clock: Instant) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let clicks = Arc::new(Mutex::new(Vec::new()));
        let found = Arc::clone(&clicks);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || copy(s2, c2));
                let found = Arc::clone(&found);
                thread::spawn(move || sniff(client, server, &found, clock));
            }
        });
        Ok(Self { addr, clicks })
    }

    fn clicks(&self) -> Vec<f64> {
        self.clicks.lock().unwrap().clone()
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Forwards the browser's bytes to the node; on a `/ws/send` connection,
/// notes when each binary frame holding a click has passed.
fn sniff(mut from: TcpStream, mut to: TcpStream, clicks: &Mutex<Vec<f64>>, clock: Instant) {
    let mut buf = [0u8; 16_384];
    let mut pending: Vec<u8> = Vec::new();
    // None until the request line is read; Some(true) on /ws/send.
    let mut websocket: Option<bool> = None;
    let mut head_done = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let now = clock.elapsed().as_secs_f64();
        if websocket == Some(false) {
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        if websocket.is_none() {
            let Some(line) = pending
                .split(|&b| b == b'\n')
                .next()
                .filter(|_| pending.contains(&b'\n'))
            else {
                continue;
            };
            websocket = Some(line.starts_with(b"GET /ws/send"));
            if websocket == Some(false) {
                continue;
            }
        }
        if !head_done {
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            pending.drain(..end + 4);
            head_done = true;
        }
        while let Some((opcode, payload, used)) = ws_frame(&pending) {
            if opcode == 2 && payload.len() > 4 {
                let loud = payload[4..].chunks_exact(2).any(|b| {
                    i16::from_le_bytes([b[0], b[1]]).unsigned_abs() >= THRESHOLD.unsigned_abs()
                });
                if loud {
                    clicks.lock().unwrap().push(now);
                }
            }
            pending.drain(..used);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// One client-to-server WebSocket frame at the start of `data`: its
/// opcode, its unmasked payload and its length in bytes, if it is whole.
fn ws_frame(data: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&b0, &b1) = (data.first()?, data.get(1)?);
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes([*data.get(2)?, *data.get(3)?]) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(data.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = if b1 & 0x80 != 0 {
        let m = data.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        m
    } else {
        [0; 4]
    };
    let body = data.get(at..at + len)?;
    let payload = body
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Some((b0 & 0x0f, payload, at + len))
}

/// Chromium on its own virtual display, driven through chromedriver.
struct Browser {
    client: Client,
    driver: Child,
    xvfb: Child,
}

impl Browser {
    async fn start(dir: &Path, extra: &[String]) -> anyhow::Result<Self> {
        // Headless Chromium renders audio into a fake output whose clock
        // runs slow; with a display it plays through PulseAudio.
        let mut xvfb = Command::new(XVFB)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start Xvfb")?;
        let mut line = String::new();
        std::io::BufReader::new(xvfb.stdout.take().unwrap()).read_line(&mut line)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("DISPLAY", format!(":{}", line.trim()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let profile: PathBuf = dir.join(format!("profile-{port}"));
        let mut chrome_args: Vec<String> = [
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .map(String::from)
        .to_vec();
        chrome_args.push(format!("--user-data-dir={}", profile.display()));
        chrome_args.extend(extra.iter().cloned());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": chrome_args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("a chromium session")?;
        Ok(Self {
            client,
            driver,
            xvfb,
        })
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

/// Polls `script` until it returns `true` (30 s at most).
async fn wait_js(page: &Client, script: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(Value::Bool(true)) = page.execute(script, vec![]).await {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {script}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
