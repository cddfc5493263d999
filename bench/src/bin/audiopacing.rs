//! `audiopacing`: streamer pacing over a long track. Writes a
//! test WAV (44.1 kHz mono 16-bit sine) to a temp dir, runs the real
//! release `audiostreamer` on it once per run, each sending to its own UDP
//! socket on 127.0.0.1 read by its own thread, and compares every
//! datagram's arrival with the ideal schedule (`bench::pacing`). CPU and
//! peak RSS of the streamer come from `wait4(2)` (all threads, exact).
//!
//! Arrival times are the kernel's receive timestamps (`SO_TIMESTAMPNS`,
//! through audionode's own batch receiver): on loopback the packet is
//! timestamped inside the streamer's `send` call, so the receiving thread's
//! wake-up latency (a few ms on a busy machine) does not count as the
//! streamer's jitter. Each datagram's arrival is its read time on the
//! monotonic clock minus its age (the wall clock at the read minus the
//! kernel's stamp), so NTP slewing over a long run cancels out; a step of
//! the wall clock during the run shows up as `clock_step_ms`.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;

use audionode::batch_recv::{enable_arrival_timestamps, BatchReceiver};
use bench::machine::{self, MachineInfo};
use bench::pacing::{self, Arrival, PacingMedians, PacingReport, PacingRun};
use bench::stats;
use proto::MonoDatagram;

const RATE: u32 = 44_100;

/// Measures audiostreamer's pacing: drift, send-time jitter, CPU and RSS.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Length of the test track, in seconds.
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// Number of streamer runs (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Run the streamers one after another instead of all at once (each
    /// streamer takes well under 2 % of a core, so by default the runs
    /// share the wall time, each with its own socket and thread).
    #[arg(long)]
    sequential: bool,
    /// The streamer's --chunk-ms.
    #[arg(long, default_value_t = 10.0)]
    chunk_ms: f64,
    /// The audiostreamer binary [default: next to this one].
    #[arg(long)]
    streamer: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiopacing: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if !(args.seconds > 0.0 && args.seconds <= 24.0 * 3600.0) {
        bail!(
            "--seconds must be between 0 and 86400, not {}",
            args.seconds
        );
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let streamer = match &args.streamer {
        Some(p) => p.clone(),
        None => machine::sibling_binary("audiostreamer")?,
    };
    let machine = MachineInfo::now();
    let dir = std::env::temp_dir().join(format!("audiopacing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let wav = dir.join("pacing.wav");
    let result = (|| -> anyhow::Result<Vec<PacingRun>> {
        write_test_wav(&wav, args.seconds)?;
        eprintln!(
            "audiopacing: {} run(s) of a {} s track, {}",
            args.runs,
            args.seconds,
            if args.sequential {
                "one after another"
            } else {
                "all at once (each streamer with its own socket and receiving thread)"
            }
        );
        let runs: Vec<PacingRun> = if args.sequential {
            (1..=args.runs)
                .map(|i| measure(i, &streamer, &wav, args.chunk_ms))
                .collect::<anyhow::Result<_>>()?
        } else {
            let handles: Vec<_> = (1..=args.runs)
                .map(|i| {
                    let (streamer, wav, chunk) = (streamer.clone(), wav.clone(), args.chunk_ms);
                    thread::spawn(move || measure(i, &streamer, &wav, chunk))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("a run panicked"))?)
                .collect::<anyhow::Result<_>>()?
        };
        Ok(runs)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let runs = result?;
    let report = PacingReport {
        seconds: args.seconds,
        chunk_ms: args.chunk_ms,
        concurrent: !args.sequential && args.runs > 1,
        clock: "kernel receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME) moved onto \
                CLOCK_MONOTONIC by the offset at the start"
            .into(),
        median: PacingMedians::of(&runs),
        runs,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        loadavg_end: machine::loadavg(),
    };
    for r in &report.runs {
        eprintln!("  run {}: streamer: {}", r.run, r.streamer_summary);
    }
    print!("{}", pacing::table(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A 440 Hz sine at −12 dBFS, 44.1 kHz mono 16-bit.
fn write_test_wav(path: &Path, seconds: f64) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let frames = (seconds * f64::from(RATE)).round() as u64;
    let step = 2.0 * std::f64::consts::PI * 440.0 / f64::from(RATE);
    for i in 0..frames {
        w.write_sample((8192.0 * (step * (i % 44_100) as f64).sin()) as i16)?;
    }
    w.finalize()?;
    Ok(())
}

/// CLOCK_REALTIME − `t0`'s clock, in ns: constant unless the wall clock
/// is stepped.
fn realtime_offset_ns(t0: Instant) -> i64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64;
    wall - t0.elapsed().as_nanos() as i64
}

/// One datagram as received: header fields, how long it had waited in the
/// socket (from the kernel's timestamp) and when it was read (since `t0`).
struct Received {
    seq: u32,
    samples: u32,
    age: Option<Duration>,
    read_at: Duration,
}

/// Receives on `socket` until `stop` is set and the socket has been quiet
/// for one read timeout.
fn receive(
    socket: UdpSocket,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<Received>> {
    let mut out = Vec::with_capacity(1 << 16);
    let mut rx = BatchReceiver::new(16, 65_536);
    loop {
        let n = rx.recv(&socket, Some(Duration::from_millis(200)))?;
        let read_at = t0.elapsed();
        if n == 0 && stop.load(Ordering::SeqCst) {
            return Ok(out);
        }
        for i in 0..n {
            if let Ok(d) = MonoDatagram::decode(rx.get(i).1) {
                out.push(Received {
                    seq: d.seq,
                    samples: d.sample_count() as u32,
                    age: rx.age(i),
                    read_at,
                });
            }
        }
    }
}

/// One streamer run against its own socket.
fn measure(run: usize, streamer: &Path, wav: &Path, chunk_ms: f64) -> anyhow::Result<PacingRun> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    enable_arrival_timestamps(&socket).context("SO_TIMESTAMPNS")?;
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
    let dest = socket.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let receiver = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || receive(socket, t0, stop))
    };
    let offset0 = realtime_offset_ns(t0);
    let started = Instant::now();
    let mut child = Command::new(streamer)
        .arg(wav)
        .arg(dest.to_string())
        .args(["--chunk-ms", &chunk_ms.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", streamer.display()))?;
    // Keep the streamer's log drained; remember its summary line.
    let summary = Arc::new(Mutex::new(String::new()));
    let log_thread = {
        let summary = Arc::clone(&summary);
        let stderr = child.stderr.take().context("streamer stderr")?;
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("done: ").or_else(|| line.find("stopped: ")) {
                    *summary.lock().unwrap_or_else(|e| e.into_inner()) = line[i..].to_string();
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("  streamer {run}: {line}");
                }
            }
        })
    };
    let usage = machine::wait_with_usage(child)?;
    let wall = started.elapsed().as_secs_f64();
    let offset1 = realtime_offset_ns(t0);
    stop.store(true, Ordering::SeqCst);
    let _ = log_thread.join();
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    if !usage.success() {
        bail!("run {run}: audiostreamer failed ({})", usage.describe());
    }
    let kernel_stamped = received.iter().filter(|r| r.age.is_some()).count();
    if kernel_stamped != received.len() {
        bail!(
            "run {run}: {} of {} datagrams came without a kernel timestamp",
            received.len() - kernel_stamped,
            received.len()
        );
    }
    let arrivals: Vec<Arrival> = received
        .iter()
        .map(|r| Arrival {
            seq: r.seq,
            samples: r.samples,
            t_ns: r
                .read_at
                .saturating_sub(r.age.unwrap_or_default())
                .as_nanos() as i64,
        })
        .collect();
    let wakeups: Vec<f64> = received
        .iter()
        .zip(&arrivals)
        .map(|(r, a)| (r.read_at.as_nanos() as i64 - a.t_ns) as f64 / 1e6)
        .collect();
    let wakeups = stats::sorted_finite(&wakeups);
    let stats = pacing::analyse(&arrivals, RATE)
        .with_context(|| format!("run {run}: no datagram arrived"))?;
    let cpu = usage.cpu.as_secs_f64();
    let summary = summary.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(PacingRun {
        run,
        stats,
        cpu_seconds: cpu,
        wall_seconds: wall,
        cpu_pct: 100.0 * cpu / wall.max(1e-9),
        max_rss_mb: usage.max_rss_bytes as f64 / f64::from(1 << 20),
        wakeup_p50_ms: stats::percentile_of_sorted(&wakeups, 50.0).unwrap_or(0.0),
        wakeup_p99_ms: stats::percentile_of_sorted(&wakeups, 99.0).unwrap_or(0.0),
        clock_step_ms: (offset1 - offset0) as f64 / 1e6,
        streamer_summary: summary,
    })
}
