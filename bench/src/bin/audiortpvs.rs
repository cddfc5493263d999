//! `audiortpvs`: the node against the GStreamer pipeline a user would build
//! instead, receiving and mixing N RTP L16 sources. For each N, one after
//! the other in the same run, it measures
//!
//! - **node**: the release `audionode --rtp-listen 127.0.0.1:P --dest
//!   127.0.0.1:Q --http off` (stereo mix in the node's original UDP format),
//!   all N sources to port P;
//! - **gst**: `gst-launch-1.0` with one branch per source, `udpsrc port=P+i
//!   ! rtpjitterbuffer latency=20 ! rtpL16depay ! audioconvert ! m.`, mixed
//!   by `audiomixer name=m ! audioconvert ! S16BE stereo ! rtpL16pay !
//!   udpsink` to Q (GStreamer's `udpsrc` needs one port per stream).
//!
//! The load is [`bench::rtpload`] (a thread of this tool): N sources of
//! 10 ms PT 11 packets, each its own SSRC, every source a constant level so
//! that the mix has one known value while every source is in it. Over a
//! steady window after a warm-up it reads the receiver's CPU (the
//! scheduler's run time of all its threads, `/proc/PID/task/*/schedstat`)
//! and, at Q, the frames of mix received per second and how many of them
//! carried the whole mix. A side holds real time at N when its output ran
//! at 44 100 frames/s (±1 %), at least 99.9 % of the window's frames
//! carried every source, and no output RTP packet went missing (measured
//! the same way for both sides, at the receiver). The node's deadline
//! misses (from its final log line, over the whole run) and the longest
//! gap between output datagrams are reported beside. A failure while the
//! generator fell 20 ms or more behind its schedule is marked "load late"
//! (not the receiver's fault); a side that fails with the load on time at
//! two consecutive N is not measured at larger N in that run. Prints Markdown tables: every run, then medians.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use bench::machine;
use bench::procfs;
use bench::rtpload::{self, RtpLoadConfig, RtpLoadCounters};
use bench::stats;

/// Measures audionode against a GStreamer pipeline on N RTP L16 sources.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Source counts to measure, comma-separated, in increasing order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "16,32,64,128,256,512,1000,1500,2000"
    )]
    sources: Vec<usize>,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load before the window starts.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Repetitions of the whole sweep (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Which receivers to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "node,gst")]
    only: Vec<Side>,
    /// Keep measuring a side at larger N after it failed real time.
    #[arg(long)]
    keep_going: bool,
    /// The audionode binary [default: next to this one].
    #[arg(long)]
    node: Option<PathBuf>,
    /// An extra argument for every node (e.g. `--node-arg=--rt-priority
    /// --node-arg=0`); repeatable.
    #[arg(long, allow_hyphen_values = true)]
    node_arg: Vec<String>,
    /// The gst-launch-1.0 binary.
    #[arg(long, default_value = "gst-launch-1.0")]
    gst: PathBuf,
    /// The sum of all sources' levels (each source sends this ÷ N).
    #[arg(long, default_value_t = 16_000)]
    total_level: i32,
}

/// A receiver under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Side {
    /// audionode --rtp-listen.
    Node,
    /// The gst-launch-1.0 pipeline.
    Gst,
}

/// One measurement of one side at one N.
#[derive(Debug, Clone, Default)]
struct Row {
    run: usize,
    sources: usize,
    /// CPU of the receiver over the window, % of one core.
    cpu_pct: f64,
    /// Output frames per second at Q.
    out_rate: f64,
    /// % of the window's output frames that carried every source.
    full_pct: f64,
    /// The mix's most common (left) sample value in the window.
    level: i32,
    /// Output RTP sequence gaps (gst) in the window.
    out_gaps: u64,
    /// Longest time between two output datagrams in the window, in ms.
    max_gap_ms: f64,
    /// Deadline misses over the whole run (node; `None` for gst, or when
    /// the node's last log line did not make it out before it exited).
    misses: Option<u64>,
    /// Packets the generator sent in the window.
    sent: u64,
    /// Packets sent ≥ 20 ms behind schedule after the warm-up.
    sent_late: u64,
    /// Generator thread CPU, % of one core.
    load_cpu_pct: f64,
    /// Machine idle % over the window.
    idle_pct: f64,
    loadavg: String,
}

impl Row {
    fn per_source(&self) -> f64 {
        self.cpu_pct / self.sources.max(1) as f64
    }
    fn us_per_packet(&self, seconds: f64) -> f64 {
        1e4 * self.cpu_pct * seconds / self.sent.max(1) as f64
    }
    /// Whether the generator kept its schedule in the window (else a
    /// failure is not the receiver's).
    fn load_on_time(&self) -> bool {
        self.sent_late == 0
    }
    fn verdict(&self) -> &'static str {
        match (self.real_time(), self.load_on_time()) {
            (true, _) => "yes",
            (false, true) => "no",
            (false, false) => "no (load late)",
        }
    }
    fn real_time(&self) -> bool {
        (self.out_rate - 44_100.0).abs() <= 441.0 && self.full_pct >= 99.9 && self.out_gaps == 0
    }
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiortpvs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let node = match &args.node {
        Some(p) => p.clone(),
        None => machine::sibling_binary("audionode")?,
    };
    eprintln!("audiortpvs: start {}", machine::utc_now());
    let mut rows: Vec<(Side, Row)> = Vec::new();
    for run in 1..=args.runs {
        // Consecutive failures with the load on time, per side.
        let mut failures = [0usize; 2];
        for &n in &args.sources {
            for &side in &args.only {
                if failures[side as usize] >= 2 {
                    continue;
                }
                let row = match side {
                    Side::Node => measure(&args, side, n, run, &node)?,
                    Side::Gst => measure(&args, side, n, run, &args.gst)?,
                };
                eprintln!("{}", format_row(side, &row, args.seconds));
                if row.real_time() {
                    failures[side as usize] = 0;
                } else if row.load_on_time() && !args.keep_going {
                    failures[side as usize] += 1;
                }
                rows.push((side, row));
            }
        }
    }
    eprintln!("audiortpvs: end {}", machine::utc_now());
    println!("{}", header());
    for (side, row) in &rows {
        println!("{}", format_row(*side, row, args.seconds));
    }
    println!();
    println!("| N | node CPU % of a core (per source) | node µs/packet | GStreamer CPU % of a core (per source) | GStreamer µs/packet | GStreamer ÷ node per source | node real time (runs) | GStreamer real time (runs) |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &args.sources {
        let of = |side: Side| -> Vec<&Row> {
            rows.iter()
                .filter(|(s, r)| *s == side && r.sources == n)
                .map(|(_, r)| r)
                .collect()
        };
        let (nodes, gsts) = (of(Side::Node), of(Side::Gst));
        if nodes.is_empty() && gsts.is_empty() {
            continue;
        }
        let med = |rs: &[&Row], f: &dyn Fn(&Row) -> f64| {
            stats::median(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
        };
        let cell = |rs: &[&Row]| match med(rs, &|r| r.cpu_pct) {
            Some(c) => format!(
                "{c:.2} ({:.4})",
                med(rs, &|r| r.per_source()).unwrap_or(0.0)
            ),
            None => "-".into(),
        };
        let us = |rs: &[&Row]| {
            med(rs, &|r| r.us_per_packet(args.seconds)).map_or("-".into(), |u| format!("{u:.2}"))
        };
        let held = |rs: &[&Row]| {
            if rs.is_empty() {
                "not run (failed at smaller N)".to_string()
            } else {
                let held = rs.iter().filter(|r| r.real_time()).count();
                let late = rs.iter().filter(|r| !r.load_on_time()).count();
                format!(
                    "{} ({held} of {}{})",
                    if held * 2 > rs.len() { "yes" } else { "no" },
                    rs.len(),
                    if late > 0 {
                        format!("; load late in {late}")
                    } else {
                        String::new()
                    }
                )
            }
        };
        let ratio = match (
            med(&gsts, &|r| r.per_source()),
            med(&nodes, &|r| r.per_source()),
        ) {
            (Some(g), Some(nd)) if nd > 0.0 => format!("{:.1}×", g / nd),
            _ => "-".into(),
        };
        println!(
            "| {n} | {} | {} | {} | {} | {ratio} | {} | {} |",
            cell(&nodes),
            us(&nodes),
            cell(&gsts),
            us(&gsts),
            held(&nodes),
            held(&gsts)
        );
    }
    Ok(())
}

fn header() -> String {
    "| side | run | N | CPU % of a core | CPU % per source | µs/packet | output frames/s | frames with every source % | mix level | output gaps | longest output gap ms | node deadline misses (whole run) | sent in window | sent ≥ 20 ms late | load CPU % | machine idle % | loadavg | real time |\n\
     |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        .into()
}

fn format_row(side: Side, r: &Row, seconds: f64) -> String {
    format!(
        "| {} | {} | {} | {:.2} | {:.4} | {:.2} | {:.0} | {:.3} | {} | {} | {:.1} | {} | {} | {} | {:.1} | {:.1} | {} | {} |",
        match side {
            Side::Node => "node",
            Side::Gst => "gst",
        },
        r.run,
        r.sources,
        r.cpu_pct,
        r.per_source(),
        r.us_per_packet(seconds),
        r.out_rate,
        r.full_pct,
        r.level,
        r.out_gaps,
        r.max_gap_ms,
        r.misses.map_or("-".into(), |m| m.to_string()),
        r.sent,
        r.sent_late,
        r.load_cpu_pct,
        r.idle_pct,
        r.loadavg,
        r.verdict(),
    )
}

/// Kills (SIGTERM) and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        machine::signal(&self.0, libc::SIGTERM);
        let _ = self.0.wait();
    }
}

/// `count` consecutive free UDP ports on 127.0.0.1 (the sockets probing
/// them are closed on return).
fn free_ports(count: usize) -> anyhow::Result<u16> {
    // Each call starts where the last one left off, so two calls do not
    // hand out the same ports.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    for _ in 0..200u32 {
        let attempt = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = 20_000
            + (std::process::id()
                .wrapping_mul(7919)
                .wrapping_add(attempt.wrapping_mul(4099))
                % 30_000) as u16;
        let held: Vec<_> = (0..count as u16)
            .map_while(|i| UdpSocket::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == count {
            return Ok(base);
        }
    }
    bail!("no {count} consecutive free UDP ports")
}

/// What the receiver at Q saw during the window.
#[derive(Debug, Default)]
struct Seen {
    frames: u64,
    gaps: u64,
    max_gap: Duration,
    /// Count of each left-channel sample value (index value + 32768).
    histogram: Vec<u64>,
}

/// Receives the mix at a socket; counts frames and sample values while
/// `window` is set.
fn receiver(
    socket: UdpSocket,
    rtp: bool,
    window: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut local = Seen {
        histogram: vec![0; 65_536],
        ..Seen::default()
    };
    let mut buf = vec![0u8; 65_536];
    let mut last_seq: Option<u16> = None;
    let mut last_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        if window.load(Ordering::Relaxed) {
            if let Some(last) = last_at {
                local.max_gap = local.max_gap.max(at - last);
            }
        }
        last_at = Some(at);
        let payload = if rtp {
            let Ok(p) = proto::rtp::RtpPacket::decode(&buf[..len]) else {
                continue;
            };
            let gap = last_seq.is_some_and(|s| p.seq != s.wrapping_add(1));
            last_seq = Some(p.seq);
            if gap && window.load(Ordering::Relaxed) {
                local.gaps += 1;
            }
            let start = len - p.payload.len();
            start..len
        } else {
            0..len
        };
        if !window.load(Ordering::Relaxed) {
            continue;
        }
        for frame in buf[payload].chunks_exact(4) {
            local.frames += 1;
            let left = i16::from_be_bytes([frame[0], frame[1]]);
            local.histogram[(i32::from(left) + 32_768) as usize] += 1;
        }
    }
    *seen.lock().unwrap() = local;
}

/// The gst-launch-1.0 arguments: N branches from ports base..base+N into
/// one audiomixer, the mix as RTP L16 stereo to `out`.
fn gst_pipeline(n: usize, base: u16, out: SocketAddr) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &str| a.extend(s.split(' ').map(String::from));
    push(&format!(
        "audiomixer name=m ! audioconvert ! audio/x-raw,format=S16BE,channels=2,rate=44100 ! rtpL16pay ! udpsink host={} port={}",
        out.ip(),
        out.port()
    ));
    for i in 0..n {
        push(&format!(
            "udpsrc port={} caps=application/x-rtp,media=audio,clock-rate=44100,encoding-name=L16,channels=1,payload=11 ! rtpjitterbuffer latency=20 ! rtpL16depay ! audioconvert ! m.",
            base as usize + i
        ));
    }
    a
}

/// Measures one side at N.
fn measure(args: &Args, side: Side, n: usize, run: usize, binary: &Path) -> anyhow::Result<Row> {
    // The mix's receiver.
    let out_socket = UdpSocket::bind("127.0.0.1:0")?;
    let _ = socket2::SockRef::from(&out_socket).set_recv_buffer_size(4 << 20);
    out_socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let out = out_socket.local_addr()?;
    let window = Arc::new(AtomicBool::new(false));
    let stop_rx = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rx_thread = {
        let (w, s, seen) = (Arc::clone(&window), Arc::clone(&stop_rx), Arc::clone(&seen));
        let rtp = side == Side::Gst;
        thread::spawn(move || receiver(out_socket, rtp, w, s, seen))
    };
    // The receiver under test, and where the sources go.
    let (listen, port_per_source, mut child) = match side {
        Side::Node => {
            let p = free_ports(2)?;
            let orig = free_ports(1)?;
            let listen = SocketAddr::from(([127, 0, 0, 1], p));
            let child = Command::new(binary)
                .args(["--rtp-listen", &listen.to_string()])
                .args(["--listen", &format!("127.0.0.1:{orig}")])
                .args(["--dest", &out.to_string()])
                .args(["--http", "off"])
                .args(["--max-sources", &(n + 16).max(256).to_string()])
                .arg("--log-file")
                .arg(std::env::temp_dir().join(format!("audiortpvs-{}.log", std::process::id())))
                .args(&args.node_arg)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            (listen, false, Reaped(child))
        }
        Side::Gst => {
            let base = free_ports(n)?;
            let child = Command::new(binary)
                .arg("-q")
                .args(gst_pipeline(n, base, out))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            (
                SocketAddr::from(([127, 0, 0, 1], base)),
                true,
                Reaped(child),
            )
        }
    };
    let pid = child.0.id();
    // Collect the child's log lines (the node's last one has its counters).
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let log_thread = {
        let stderr = child.0.stderr.take().context("child stderr")?;
        let lines = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = ready_tx.send(());
                if line.contains("ERROR") {
                    eprintln!("  {}: {line}", pid);
                }
                lines.lock().unwrap().push(line);
            }
        })
    };
    // Ready when the listen port is taken (node), or after the pipeline
    // has had time to reach PLAYING (gst: every udpsrc port taken).
    let t = Instant::now();
    let last_port = SocketAddr::new(
        listen.ip(),
        listen.port() + if port_per_source { n as u16 - 1 } else { 0 },
    );
    while UdpSocket::bind(last_port).is_ok() {
        if let Some(status) = child.0.try_wait()? {
            bail!("{} exited at start ({status})", binary.display());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("{} did not bind {last_port}", binary.display());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = ready_rx.try_recv();
    thread::sleep(Duration::from_millis(300));
    // The load.
    let mut config = RtpLoadConfig::new(n, listen, rtpload::level_for(n, args.total_level));
    config.port_per_source = port_per_source;
    config.duration = Some(Duration::from_secs_f64(args.warmup + args.seconds + 0.5));
    config.count_late_after = Duration::from_secs_f64(args.warmup);
    let counters = Arc::new(RtpLoadCounters::default());
    let load_thread = {
        let (config, counters) = (config.clone(), Arc::clone(&counters));
        thread::spawn(move || rtpload::run(&config, &AtomicBool::new(false), &counters))
    };
    thread::sleep(Duration::from_secs_f64(args.warmup));
    let tid = counters.tid.load(Ordering::SeqCst) as i32;
    let cpu0 = procfs::process_run_seconds(pid)?;
    let load0 = procfs::thread_cpu_seconds(tid)?;
    let sent0 = counters.sent.load(Ordering::Relaxed);
    let machine0 = procfs::MachineCpu::now()?;
    let t0 = Instant::now();
    window.store(true, Ordering::SeqCst);
    thread::sleep(Duration::from_secs_f64(args.seconds));
    window.store(false, Ordering::SeqCst);
    let cpu1 = procfs::process_run_seconds(pid)?;
    let load1 = procfs::thread_cpu_seconds(tid)?;
    let sent1 = counters.sent.load(Ordering::Relaxed);
    let wall = t0.elapsed().as_secs_f64();
    let (idle_pct, _) = procfs::MachineCpu::now()?.since(&machine0);
    let loadavg = machine::loadavg();
    let load = load_thread
        .join()
        .map_err(|_| anyhow::anyhow!("load generator panicked"))??;
    if let Ok(Some(status)) = child.0.try_wait() {
        bail!("{} exited early ({status})", binary.display());
    }
    drop(child);
    let _ = log_thread.join();
    stop_rx.store(true, Ordering::SeqCst);
    let _ = rx_thread.join();
    let misses = lines
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|l| l.contains("stopped:"))
        .and_then(|l| stopped_misses(l));
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let (level, full) = full_mix(&seen.histogram, n);
    Ok(Row {
        run,
        sources: n,
        cpu_pct: 100.0 * (cpu1 - cpu0) / wall,
        out_rate: seen.frames as f64 / wall,
        full_pct: 100.0 * full as f64 / seen.frames.max(1) as f64,
        level,
        out_gaps: seen.gaps,
        max_gap_ms: seen.max_gap.as_secs_f64() * 1e3,
        misses,
        sent: sent1 - sent0,
        sent_late: load.sent_late,
        load_cpu_pct: 100.0 * (load1 - load0) / wall,
        idle_pct,
        loadavg,
    })
}

/// The deadline misses in the node's `stopped: …` line.
fn stopped_misses(line: &str) -> Option<u64> {
    let before = line.split(" deadline misses").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

/// The mix's level (the most common left sample value) and how many
/// frames are within half a source's share of it, i.e. carried every
/// source (a frame missing one source is a whole share lower).
fn full_mix(histogram: &[u64], n: usize) -> (i32, u64) {
    let Some((mode, _)) = histogram.iter().enumerate().max_by_key(|&(_, c)| *c) else {
        return (0, 0);
    };
    let level = mode as i32 - 32_768;
    let half_share = (level.abs() / (2 * n.max(1) as i32)).max(1);
    let lo = (mode as i32 - half_share + 1).max(0) as usize;
    let hi = (mode as i32 + half_share - 1).min(65_535) as usize;
    (level, histogram[lo..=hi].iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_nodes_final_counters() {
        let line = "[2026-12-01T10:00:00Z INFO  audionode::node] stopped: 1200 packets, 400 blocks mixed, 3 deadline misses, 0 skipped blocks, 0 clipped samples, 16 streams";
        assert_eq!(stopped_misses(line), Some(3));
    }

    #[test]
    fn full_mix_counts_frames_near_the_mode() {
        let mut h = vec![0u64; 65_536];
        h[32_768 + 1600] = 990; // 16 sources of 100
        h[32_768 + 1599] = 5; // rounding
        h[32_768 + 1500] = 5; // one source missing
        assert_eq!(full_mix(&h, 16), (1600, 995));
    }

    #[test]
    fn pipeline_has_one_branch_per_source() {
        let a = gst_pipeline(3, 5000, "127.0.0.1:6000".parse().unwrap()).join(" ");
        assert_eq!(a.matches("udpsrc port=").count(), 3);
        assert!(a.contains("udpsrc port=5002 "));
        assert!(a.contains("udpsink host=127.0.0.1 port=6000"));
    }
}
