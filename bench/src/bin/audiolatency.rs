//! `audiolatency`: end-to-end latency of the real pipeline.
//!
//! For each profile and run: writes a click track (44.1 kHz mono 16-bit;
//! `--warmup` s of silence, then a click about every 250 ms for `--seconds`,
//! then 1 s of silence), starts the release `audiorecorder` (playing into
//! the default output device, e.g. the headless PulseAudio null sink),
//! `audionode` (`--dest` the recorder) and `audiostreamer` (to the node),
//! all on ephemeral loopback ports and each with `--latency-probe`, and
//! joins the probe files by click id (see `bench::latency`).
//!
//! Each click is one sample on the LAST sample of a datagram: all samples of
//! a datagram leave together but are played one after another, so the last
//! one waits a whole chunk behind its datagram-mates; its latency is the
//! one the budget `chunk + jitter target + node block + backoff` describes.
//!
//! Prints a Markdown table; `--json PATH` writes a `LatencyReport`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use bench::latency::{
    click_positions, click_track, markdown_table, match_clicks, summarise, write_wav,
    LatencyReport, ProfileSettings, RunResult,
};
use clap::Parser;
use proto::probe::parse_probe_file;

/// Sample rate of the click track and the whole pipeline.
const RATE: u32 = 44_100;
/// The node's mixing block: 220 frames at 44.1 kHz (audionode's config:
/// floor(rate × 5 ms)).
const BLOCK_FRAMES: f64 = 220.0;

/// Measures end-to-end latency (streamer send → recorder hands the sample
/// to the audio device) for the default and a low-latency profile.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Runs per profile.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Seconds of clicks per run.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Seconds of silence before the first click: the sound server starts
    /// the stream meanwhile (the ALSA pulse plugin took up to 6 s, with
    /// output errors and latency drops, on a loaded machine).
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    /// Profiles to run: default, low-latency (repeatable; default both).
    #[arg(long = "profile")]
    profiles: Vec<String>,
    /// Recorder --period-ms of the low-latency profile: the backoff (10 ms)
    /// must hold a device period plus the node's 5 ms block plus jitter.
    #[arg(long, default_value_t = 5)]
    low_latency_period_ms: u32,
    /// Recorder --period-ms of the default profile (the recorder's default).
    #[arg(long, default_value_t = 20)]
    default_period_ms: u32,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the click tracks, probe files and logs in this directory.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// One more argument for every recorder, e.g. `--recorder-arg=--rt-priority
    /// --recorder-arg=0` (repeatable; for side-by-side comparisons).
    #[arg(long, allow_hyphen_values = true)]
    recorder_arg: Vec<String>,
    /// Directory of the audiostreamer/audionode/audiorecorder binaries
    /// (default: this program's own directory, e.g. target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiolatency: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The three programs.
struct Bins {
    streamer: PathBuf,
    node: PathBuf,
    recorder: PathBuf,
}

fn bins(dir: Option<&Path>) -> anyhow::Result<Bins> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this program")?
            .to_owned(),
    };
    let find = |name: &str| {
        let p = dir.join(name);
        anyhow::ensure!(
            p.exists(),
            "{} not found (cargo build --release -p audiostreamer -p audionode -p audiorecorder -p bench)",
            p.display()
        );
        Ok(p)
    };
    Ok(Bins {
        streamer: find("audiostreamer")?,
        node: find("audionode")?,
        recorder: find("audiorecorder")?,
    })
}

fn profile(name: &str, default_period: u32, low_period: u32) -> anyhow::Result<ProfileSettings> {
    let block_ms = (BLOCK_FRAMES / f64::from(RATE) * 1000.0 * 100.0).round() / 100.0;
    let (chunk_ms, jitter_ms, backoff_ms, period_ms) = match name {
        "default" => (10.0, 20.0, 50.0, f64::from(default_period)),
        "low-latency" => (5.0, 5.0, 10.0, f64::from(low_period)),
        other => anyhow::bail!("unknown profile '{other}' (default, low-latency)"),
    };
    Ok(ProfileSettings {
        name: name.into(),
        chunk_ms,
        jitter_ms,
        block_ms,
        backoff_ms,
        period_ms,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn run(args: Args) -> anyhow::Result<()> {
    let bins = bins(args.bin_dir.as_deref())?;
    if std::env::var_os("PULSE_SERVER").is_none() {
        eprintln!(
            "audiolatency: PULSE_SERVER is not set; the recorder plays into the system default \
             device (for the headless sink: eval \"$(scripts/headless-audio.sh)\")"
        );
    }
    let names = if args.profiles.is_empty() {
        vec!["default".to_string(), "low-latency".to_string()]
    } else {
        args.profiles.clone()
    };
    let settings: Vec<ProfileSettings> = names
        .iter()
        .map(|n| profile(n, args.default_period_ms, args.low_latency_period_ms))
        .collect::<anyhow::Result<_>>()?;
    let tmp;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("audiolatency-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            tmp.clone()
        }
    };
    let mut report = LatencyReport {
        started_utc: utc_now(),
        loadavg: vec![loadavg()],
        ..Default::default()
    };
    println!(
        "audiolatency: {} run(s) × {} s per profile, started {} UTC, load average {}",
        args.runs, args.seconds, report.started_utc, report.loadavg[0]
    );
    println!(
        "Latency = CLOCK_MONOTONIC from the streamer's send of the datagram carrying a click \
         (on its LAST sample, so it waits a whole chunk behind its datagram-mates) to the \
         recorder's callback handing it to the device, plus its frame offset in that buffer."
    );
    for s in &settings {
        let mut runs = Vec::new();
        let mut command = String::new();
        for r in 1..=args.runs {
            let (result, cmd) = one_run(&bins, s, &args, &dir.join(format!("{}-{r}", s.name)))?;
            println!(
                "  {} run {r}: sent {}, matched {}, missing {}, underruns {}, median {:.2} ms, \
                 latency drops {}, output errors {}, load average {}",
                s.name,
                result.sent,
                result.matched.len(),
                result.missing.len(),
                result.underruns,
                bench::latency::median(
                    &result
                        .matched
                        .iter()
                        .map(|c| c.total_ms)
                        .collect::<Vec<_>>()
                )
                .unwrap_or(f64::NAN),
                result.latency_drops,
                result.output_errors,
                loadavg()
            );
            command = cmd;
            runs.push(result);
        }
        report
            .profiles
            .push(summarise(s, args.seconds, &runs, command));
    }
    report.loadavg.push(loadavg());
    println!();
    print!("{}", markdown_table(&report.profiles));
    println!();
    for p in &report.profiles {
        println!(
            "{}: budget {:.2} ms = chunk {} + jitter {} + block {} + backoff {} (recorder --period-ms {})\n  {}",
            p.name,
            p.budget_ms,
            p.chunk_ms,
            p.jitter_ms,
            p.block_ms,
            p.backoff_ms,
            p.period_ms,
            p.command.replace('\n', "\n  ")
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Stops (SIGTERM) and reaps a child when dropped.
struct Reaped(Child);

impl Reaped {
    fn stop(&mut self) -> anyhow::Result<String> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            std::io::Read::read_to_string(&mut stdout, &mut out)?;
        }
        self.0.wait()?;
        Ok(out)
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Drains a child's stderr into `log`, sending lines containing `needle`'s
/// remainder to the returned channel.
fn watch_stderr(child: &mut Child, needle: &'static str, log: PathBuf) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        thread::spawn(move || {
            let mut file = std::fs::File::create(log).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = &mut file {
                    let _ = std::io::Write::write_all(f, format!("{line}\n").as_bytes());
                }
                if let Some(rest) = line.split(needle).nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
    }
    rx
}

fn quote(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_run(
    bins: &Bins,
    s: &ProfileSettings,
    args: &Args,
    dir: &Path,
) -> anyhow::Result<(RunResult, String)> {
    std::fs::create_dir_all(dir)?;
    let chunk = (s.chunk_ms * f64::from(RATE) / 1000.0).round() as usize;
    let lead_in = (args.warmup * f64::from(RATE)) as usize;
    let clicks_len = (args.seconds * f64::from(RATE)) as usize;
    let clicks = click_positions(chunk, RATE, 250.0, lead_in, clicks_len);
    let wav = dir.join("clicks.wav");
    write_wav(
        &wav,
        &click_track(lead_in + clicks_len + RATE as usize, &clicks),
        RATE,
    )?;
    let send_probe = dir.join("send.probe");
    let rec_probe = dir.join("recorder.probe");

    let mut rec_cmd = Command::new(&bins.recorder);
    rec_cmd
        .args(["--no-record", "0", "--bind", "127.0.0.1"])
        .args(["--jitter-backoff", &s.backoff_ms.to_string()])
        .args(["--period-ms", &s.period_ms.to_string()])
        .args(&args.recorder_arg)
        .arg("--latency-probe")
        .arg(&rec_probe);
    let mut recorder = Reaped(
        rec_cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start audiorecorder")?,
    );
    let rec_addr: SocketAddr = watch_stderr(
        &mut recorder.0,
        "listening on UDP",
        dir.join("recorder.log"),
    )
    .recv_timeout(Duration::from_secs(10))
    .context("the recorder did not report its port")?
    .parse()?;

    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut node_cmd = Command::new(&bins.node);
    node_cmd
        .args(["--listen", &listen.to_string()])
        .args(["--dest", &rec_addr.to_string()])
        .args(["--jitter-ms", &s.jitter_ms.to_string()])
        .args(["--http", "127.0.0.1:0"])
        .arg("--log-file")
        .arg(dir.join("node-events.log"));
    let mut node = Reaped(
        node_cmd
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start audionode")?,
    );
    watch_stderr(&mut node.0, "listening on", dir.join("node.log"))
        .recv_timeout(Duration::from_secs(10))
        .context("the node did not start")?;

    let mut streamer_cmd = Command::new(&bins.streamer);
    streamer_cmd
        .arg(&wav)
        .arg(listen.to_string())
        .args(["--chunk-ms", &s.chunk_ms.to_string()])
        .arg("--latency-probe")
        .arg(&send_probe);
    let status = streamer_cmd
        .stderr(std::fs::File::create(dir.join("streamer.log"))?)
        .status()
        .context("cannot run audiostreamer")?;
    anyhow::ensure!(status.success(), "audiostreamer failed: {status}");
    // The track ends with 1 s of silence after the last click, far more
    // than any profile's latency: every click has been played by now.
    let summary = recorder.stop()?;
    node.stop()?;
    std::fs::write(dir.join("recorder.summary"), &summary)?;

    let read = |p: &Path| -> anyhow::Result<_> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        Ok(parse_probe_file(&text)?)
    };
    let mut result = match_clicks(&read(&send_probe)?, &read(&rec_probe)?);
    result.latency_drops = bench::latency::summary_latency_drops(&summary);
    // The stderr reader may still be writing the last lines.
    thread::sleep(Duration::from_millis(100));
    result.output_errors = bench::latency::log_output_errors(
        &std::fs::read_to_string(dir.join("recorder.log")).unwrap_or_default(),
    );
    anyhow::ensure!(
        result.sent == clicks.len() as u64,
        "the streamer reported {} of {} clicks",
        result.sent,
        clicks.len()
    );
    let command = format!(
        "{}\n{}\n{}",
        quote(&rec_cmd),
        quote(&node_cmd),
        quote(&streamer_cmd)
    );
    Ok((result, command))
}
