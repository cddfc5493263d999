//! `audiocapacity`: node capacity, measured. For each source count N it
//! starts the real `audionode` binary (default configuration except
//! `--max-sources` raised to fit N, a free listen port, `--http` on a free
//! loopback port so `/metrics` can be scraped, `--dest` a discard socket),
//! drives it with `audioload` for a warm-up plus a measured window, and
//! reads the node's CPU (utime + stime from /proc/PID/stat), RSS (VmRSS,
//! VmHWM) and counters (`/metrics` at both ends of the window). Then, in
//! the same run and right after, the same load goes to each bare
//! receive-and-mix loop chosen with `--bare` (threads of this process):
//! `batched` (`bench::batched`: non-blocking recvmmsg of 256 and a 1 ms
//! sleep when the socket is empty, as the node receives under load) and
//! `blocking` (`bench::bare`: blocks before every batch). The headline is
//! node µs/packet ÷ batched µs/packet; measuring them minutes apart under
//! the same machine load keeps that ratio meaningful on a busy machine.
//! Prints a Markdown table (one row per run and N, then medians).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use bench::bare::{self, BareCounters};
use bench::batched;
use bench::capacity::{self, CapacityReport, CapacityRow};
use bench::machine::{self, MachineInfo};
use bench::metrics::{self, Scrape};
use bench::procfs;

/// Measures audionode's capacity against a bare receive-and-mix loop.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Source counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000")]
    sources: Vec<usize>,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds of load before the window starts.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Repetitions of the whole sweep (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The audionode binary [default: next to this one].
    #[arg(long)]
    node: Option<PathBuf>,
    /// The audioload binary [default: next to this one].
    #[arg(long)]
    load: Option<PathBuf>,
    /// Milliseconds of audio per packet.
    #[arg(long, default_value_t = 10.0)]
    chunk_ms: f64,
    /// Bare receive-and-mix loops to measure after the node under the same
    /// load, comma-separated (the ratio's denominator is `batched`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "batched,blocking"
    )]
    bare: Vec<BareLoop>,
    /// Skip the bare-loop baselines (the same as an empty `--bare`).
    #[arg(long)]
    no_bare: bool,
    /// Also write the results (every row and the medians) as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// A bare receive-and-mix loop to compare the node with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BareLoop {
    /// Non-blocking recvmmsg of 256, 1 ms sleep when empty (`bench::batched`).
    Batched,
    /// Blocks (ppoll) before every batch of 64 (`bench::bare`).
    Blocking,
}

impl BareLoop {
    fn name(self) -> &'static str {
        match self {
            BareLoop::Batched => "batched",
            BareLoop::Blocking => "blocking",
        }
    }
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiocapacity: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let node = match &args.node {
        Some(p) => p.clone(),
        None => machine::sibling_binary("audionode")?,
    };
    let load = match &args.load {
        Some(p) => p.clone(),
        None => machine::sibling_binary("audioload")?,
    };
    let machine = MachineInfo::now();
    let dir = std::env::temp_dir().join(format!("audiocapacity-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    for run in 0..args.runs {
        for &n in &args.sources {
            let mut row = measure_node(&args, &node, &load, &dir, n, run)?;
            let loops: &[BareLoop] = if args.no_bare { &[] } else { &args.bare };
            for &which in loops {
                let (cpu, us) = measure_bare(&args, &load, n, which)?;
                eprintln!(
                    "  bare {}: {cpu:.1} % of a core, {us:.3} µs/packet",
                    which.name()
                );
                match which {
                    BareLoop::Batched => {
                        row.batched_cpu_pct = cpu;
                        row.batched_us_per_packet = us;
                    }
                    BareLoop::Blocking => {
                        row.bare_cpu_pct = cpu;
                        row.bare_us_per_packet = us;
                    }
                }
            }
            eprintln!(
                "{}",
                capacity::format_row(&format!("run {}", run + 1), &row)
            );
            rows.push(row);
        }
    }
    println!("{}", capacity::header());
    for row in &rows {
        println!("{}", capacity::format_row(&format!("run {}", row.run), row));
    }
    let mut medians = Vec::new();
    for &n in &args.sources {
        let of_n: Vec<&CapacityRow> = rows.iter().filter(|r| r.sources == n).collect();
        let median = CapacityRow::median_of(&of_n);
        println!("{}", capacity::format_row("median", &median));
        medians.push(median);
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(path) = &args.json {
        let report = CapacityReport {
            sources: args.sources.clone(),
            seconds: args.seconds,
            warmup: args.warmup,
            runs: args.runs,
            chunk_ms: args.chunk_ms,
            rows,
            medians,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine,
        };
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A socket on a free loopback port whose datagrams are read and dropped.
struct Discard {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Discard {
    fn start() -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                let _ = socket.recv(&mut buf);
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Kills (SIGTERM) and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn spawn_load(load: &Path, n: usize, dest: SocketAddr, args: &Args) -> anyhow::Result<Reaped> {
    let child = Command::new(load)
        .args(["--sources", &n.to_string(), "--dest", &dest.to_string()])
        .args(["--chunk-ms", &args.chunk_ms.to_string()])
        .args(["--seconds", &(args.warmup + args.seconds + 1.0).to_string()])
        .args(["--count-late-after", &args.warmup.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", load.display()))?;
    Ok(Reaped(child))
}

fn sleep_secs(s: f64) {
    thread::sleep(Duration::from_secs_f64(s));
}

fn measure_node(
    args: &Args,
    node: &Path,
    load: &Path,
    dir: &Path,
    n: usize,
    run: usize,
) -> anyhow::Result<CapacityRow> {
    let discard = Discard::start()?;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let log_file = dir.join(format!("node-{n}-{run}.log"));
    let child = Command::new(node)
        .args(["--listen", &listen.to_string()])
        .args(["--dest", &discard.addr.to_string()])
        .args(["--max-sources", &n.max(256).to_string()])
        .args(["--http", "127.0.0.1:0"])
        .arg("--log-file")
        .arg(&log_file)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", node.display()))?;
    let mut node_child = Reaped(child);
    let pid = node_child.0.id();
    // Read the node's log: find the control surface's address; keep
    // draining so the node never blocks on a full pipe.
    let stderr = node_child.0.stderr.take().context("node stderr")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("mixing desk on http://").nth(1) {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("  node: {line}");
            }
        }
    });
    let http: SocketAddr = rx
        .recv_timeout(Duration::from_secs(10))
        .context("the node did not report its control surface")?
        .parse()
        .context("the node's control address")?;
    let mut load_child = spawn_load(load, n, listen, args)?;
    sleep_secs(args.warmup);
    let cpu0 = procfs::process_cpu_seconds(pid)?;
    let load_cpu0 = procfs::process_cpu_seconds(load_child.0.id())?;
    let scrape0 = Scrape::parse(&metrics::fetch(http)?);
    let machine0 = procfs::MachineCpu::now()?;
    let t0 = Instant::now();
    sleep_secs(args.seconds);
    let cpu1 = procfs::process_cpu_seconds(pid)?;
    let load_cpu1 = procfs::process_cpu_seconds(load_child.0.id())?;
    let wall = t0.elapsed().as_secs_f64();
    let (machine_idle_pct, softirq_pct) = procfs::MachineCpu::now()?.since(&machine0);
    let scrape1 = Scrape::parse(&metrics::fetch(http)?);
    let rss = procfs::status_bytes(pid, "VmRSS")? as f64 / (1 << 20) as f64;
    let hwm = procfs::status_bytes(pid, "VmHWM")? as f64 / (1 << 20) as f64;
    let loadavg = machine::loadavg();
    let status = load_child.0.wait()?;
    let mut summary = String::new();
    if let Some(mut out) = load_child.0.stdout.take() {
        out.read_to_string(&mut summary)?;
    }
    if !status.success() {
        bail!("audioload failed ({status})");
    }
    eprintln!("  {}", summary.trim());
    let load_max_lag_ms = summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("max_lag_ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let load_sent_late = summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("sent_late="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    drop(node_child);
    let d = scrape1.since(&scrape0);
    let node_cpu = cpu1 - cpu0;
    Ok(CapacityRow {
        run: run + 1,
        sources: n,
        node_cpu_pct: 100.0 * node_cpu / wall,
        node_us_per_packet: 1e6 * node_cpu / d.packets.max(1.0),
        deadline_misses: d.deadline_misses,
        received: d.received,
        late: d.late,
        late_pct: 100.0 * d.late / d.received.max(1.0),
        lost: d.lost,
        overflow: d.overflow,
        refused: d.refused,
        rss_mb: rss,
        hwm_mb: hwm,
        load_cpu_pct: 100.0 * (load_cpu1 - load_cpu0) / wall,
        load_max_lag_ms,
        load_sent_late,
        machine_idle_pct,
        softirq_pct,
        loadavg,
        ..CapacityRow::default()
    })
}

/// CPU % and µs per packet of bare loop `which` under the same load.
fn measure_bare(args: &Args, load: &Path, n: usize, which: BareLoop) -> anyhow::Result<(f64, f64)> {
    let discard = Discard::start()?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    // The same receive buffer the node asks for.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(8 << 20);
    let listen = socket.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(BareCounters::default());
    let thread = {
        let (stop, counters, dest) = (Arc::clone(&stop), Arc::clone(&counters), discard.addr);
        thread::spawn(move || match which {
            BareLoop::Batched => batched::run(socket, dest, stop, counters),
            BareLoop::Blocking => bare::run(socket, dest, stop, counters),
        })
    };
    let mut load_child = spawn_load(load, n, listen, args)?;
    sleep_secs(args.warmup);
    let tid = counters.tid.load(Ordering::SeqCst) as i32;
    let cpu0 = procfs::thread_cpu_seconds(tid)?;
    let p0 = counters.packets.load(Ordering::Relaxed);
    let t0 = Instant::now();
    sleep_secs(args.seconds);
    let cpu1 = procfs::thread_cpu_seconds(tid)?;
    let p1 = counters.packets.load(Ordering::Relaxed);
    let wall = t0.elapsed().as_secs_f64();
    let _ = load_child.0.wait();
    drop(load_child);
    stop.store(true, Ordering::SeqCst);
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("bare loop panicked"))??;
    let cpu = cpu1 - cpu0;
    Ok((100.0 * cpu / wall, 1e6 * cpu / (p1 - p0).max(1) as f64))
}
