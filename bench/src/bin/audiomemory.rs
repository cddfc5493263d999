//! `audiomemory`: the recorder's memory over a long recording.
//! Writes a test track (44.1 kHz mono 16-bit sine, `--minutes` long) to a
//! temp dir, starts the real release `audiorecorder` (`--no-playback`, a
//! free port on 127.0.0.1) and feeds it the track with
//! `audiostreamer --stream-to-recorder --speed S`, sampling the recorder's
//! `VmRSS`/`VmHWM` and the audio in its WAV every `--interval` seconds.
//! At the end the WAV's frame count is checked against the track's. The
//! temp dir (the track is 318 MB per hour, the recording twice that) is
//! removed afterwards.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

use bench::machine::{self, MachineInfo};
use bench::memory::{self, MemoryMedians, MemoryReport, MemoryRun, MemorySample};
use bench::procfs;

const RATE: u32 = 44_100;

/// Measures audiorecorder's RSS while it records a long stream.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Minutes of audio to record per run.
    #[arg(long, default_value_t = 60.0)]
    minutes: f64,
    /// The streamer's --speed (times real time).
    #[arg(long, default_value_t = 20.0)]
    speed: f64,
    /// Number of recordings, one after another (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of wall time between memory samples.
    #[arg(long, default_value_t = 0.25)]
    interval: f64,
    /// The audiostreamer binary [default: next to this one].
    #[arg(long)]
    streamer: Option<PathBuf>,
    /// The audiorecorder binary [default: next to this one].
    #[arg(long)]
    recorder: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiomemory: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if !(args.minutes > 0.0 && args.minutes <= 360.0) {
        bail!("--minutes must be between 0 and 360, not {}", args.minutes);
    }
    if !(args.speed > 0.0 && args.speed <= 1000.0) {
        bail!("--speed must be between 0 and 1000, not {}", args.speed);
    }
    if args.runs == 0 || args.interval.is_nan() || args.interval <= 0.0 {
        bail!("--runs and --interval must be positive");
    }
    let streamer = match &args.streamer {
        Some(p) => p.clone(),
        None => machine::sibling_binary("audiostreamer")?,
    };
    let recorder = match &args.recorder {
        Some(p) => p.clone(),
        None => machine::sibling_binary("audiorecorder")?,
    };
    let machine = MachineInfo::now();
    let dir = std::env::temp_dir().join(format!("audiomemory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = (|| -> anyhow::Result<Vec<MemoryRun>> {
        let track = dir.join("track.wav");
        let frames = write_track(&track, args.minutes)?;
        (1..=args.runs)
            .map(|i| {
                eprintln!(
                    "audiomemory: run {i}/{}: {} min of audio at {}× real time",
                    args.runs, args.minutes, args.speed
                );
                let rec = dir.join(format!("rec-{i}.wav"));
                let r = measure(i, &args, &streamer, &recorder, &track, frames, &rec);
                let _ = std::fs::remove_file(&rec);
                r
            })
            .collect()
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let runs = result?;
    let report = MemoryReport {
        minutes: args.minutes,
        speed: args.speed,
        median: MemoryMedians::of(&runs),
        runs,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        loadavg_end: machine::loadavg(),
    };
    print!("{}", memory::table(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A 440 Hz sine at −12 dBFS; returns its length in frames.
fn write_track(path: &Path, minutes: f64) -> anyhow::Result<u64> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let frames = (minutes * 60.0 * f64::from(RATE)).round() as u64;
    // One second of the signal, repeated: 440 Hz fits 44 100 samples exactly.
    let step = 2.0 * std::f64::consts::PI * 440.0 / f64::from(RATE);
    let second: Vec<i16> = (0..RATE)
        .map(|i| (8192.0 * (step * f64::from(i)).sin()) as i16)
        .collect();
    let mut left = frames;
    while left > 0 {
        let n = left.min(u64::from(RATE)) as usize;
        let mut block = w.get_i16_writer(n as u32);
        for &s in &second[..n] {
            block.write_sample(s);
        }
        block.flush()?;
        left -= n as u64;
    }
    w.finalize()?;
    Ok(frames)
}

/// Kills (SIGKILL) and reaps a child when dropped, unless already reaped.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn audio_seconds(wav: &Path) -> f64 {
    // 44-byte header (hound writes a plain PCM header), 4 bytes per frame.
    let len = std::fs::metadata(wav).map_or(0, |m| m.len());
    len.saturating_sub(44) as f64 / 4.0 / f64::from(RATE)
}

fn sample(pid: u32, wav: &Path, started: Instant) -> anyhow::Result<MemorySample> {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    Ok(MemorySample {
        audio_s: audio_seconds(wav),
        wall_s: started.elapsed().as_secs_f64(),
        rss_mb: mib(procfs::status_bytes(pid, "VmRSS")?),
        hwm_mb: mib(procfs::status_bytes(pid, "VmHWM")?),
    })
}

fn measure(
    run: usize,
    args: &Args,
    streamer: &Path,
    recorder: &Path,
    track: &Path,
    frames: u64,
    rec: &Path,
) -> anyhow::Result<MemoryRun> {
    let started = Instant::now();
    let child = Command::new(recorder)
        .arg(rec)
        .args(["0", "--no-playback", "--overwrite", "--bind", "127.0.0.1"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", recorder.display()))?;
    let mut rec_child = Guard(Some(child));
    let rc = rec_child.0.as_mut().context("recorder")?;
    let pid = rc.id();
    let stderr = rc.stderr.take().context("recorder stderr")?;
    let mut stdout = rc.stdout.take().context("recorder stdout")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on UDP ").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("  recorder: {line}");
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(10))
        .context("the recorder did not report its port")?
        .parse()
        .context("the recorder's address")?;
    let mut feeder = Guard(Some(
        Command::new(streamer)
            .arg(track)
            .arg(addr.to_string())
            .args(["--stream-to-recorder", "--speed", &args.speed.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", streamer.display()))?,
    ));
    let interval = Duration::from_secs_f64(args.interval);
    let mut samples = Vec::new();
    let mut last_report = 0.0;
    let streamed = loop {
        samples.push(sample(pid, rec, started)?);
        let audio = samples.last().map_or(0.0, |s| s.audio_s);
        if audio - last_report >= 600.0 {
            last_report = audio;
            eprintln!("  {:.0} min of audio recorded", audio / 60.0);
        }
        if let Some(status) = feeder.0.as_mut().context("streamer")?.try_wait()? {
            feeder.0 = None;
            break status;
        }
        thread::sleep(interval);
    };
    if !streamed.success() {
        bail!("run {run}: audiostreamer failed ({streamed})");
    }
    // The recorder may still be draining its socket and writer queue: wait
    // until the file has every frame or stops growing for 2 s.
    let expected_s = frames as f64 / f64::from(RATE);
    let mut quiet_since = Instant::now();
    let mut last_len = audio_seconds(rec);
    while audio_seconds(rec) < expected_s && quiet_since.elapsed() < Duration::from_secs(2) {
        thread::sleep(Duration::from_millis(100));
        let len = audio_seconds(rec);
        if len != last_len {
            last_len = len;
            quiet_since = Instant::now();
        }
    }
    samples.push(sample(pid, rec, started)?);
    let rc = rec_child.0.take().context("recorder")?;
    machine::signal(&rc, libc::SIGINT);
    let usage = machine::wait_with_usage(rc)?;
    let wall = started.elapsed().as_secs_f64();
    let mut summary = String::new();
    stdout.read_to_string(&mut summary)?;
    let summary = summary.trim().to_string();
    if !usage.success() {
        bail!(
            "run {run}: audiorecorder failed ({}): {summary}",
            usage.describe()
        );
    }
    let counts = memory::parse_recorder_summary(&summary)
        .with_context(|| format!("run {run}: unexpected recorder summary: {summary:?}"))?;
    let reader =
        hound::WavReader::open(rec).with_context(|| format!("cannot read {}", rec.display()))?;
    anyhow::ensure!(
        reader.spec().channels == 2,
        "run {run}: the recording has {} channels, not 2",
        reader.spec().channels
    );
    let in_wav = u64::from(reader.duration());
    let last = samples.last().copied().unwrap_or_default();
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    Ok(MemoryRun {
        run,
        frames_expected: frames,
        frames_in_wav: in_wav,
        frames_missing: frames as i64 - in_wav as i64,
        recorder: counts,
        checkpoints: memory::checkpoints(&samples, &memory::CHECKPOINT_MINUTES),
        peak_rss_mb: last.hwm_mb.max(mib(usage.max_rss_bytes)),
        final_rss_mb: last.rss_mb,
        slope_mb_per_hour: memory::slope_second_half(&samples).unwrap_or(0.0),
        recorder_cpu_pct: 100.0 * usage.cpu.as_secs_f64() / wall.max(1e-9),
        wall_seconds: wall,
        samples,
        recorder_summary: summary,
    })
}
