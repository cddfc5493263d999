//! `audioload`: sends N synthetic mono-with-seq sources to a node, each on
//! its own UDP socket, paced on a deadline schedule (see `bench::load`);
//! with `--rtp`, N RTP L16 sources (PT 11, one SSRC each, batched with
//! `sendmmsg`; see `bench::rtpload`); with `--rtp --opus`, N Opus sources
//! (PT 111, 10 ms packets at 64 kbit/s, encoded once before the run).

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// Sends N synthetic sources (one UDP socket each) to an audionode.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Number of sources.
    #[arg(long, default_value_t = 100)]
    sources: usize,
    /// Node address the sources send to.
    #[arg(long, default_value = "127.0.0.1:4030")]
    dest: String,
    /// Milliseconds of audio per packet.
    #[arg(long, default_value_t = 10.0)]
    chunk_ms: f64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
    /// Count sends 20 ms or more behind schedule only after this many
    /// seconds (a warm-up).
    #[arg(long, default_value_t = 0.0)]
    count_late_after: f64,
    /// Send RTP L16 (PT 11 = L16/44100/1, one SSRC per source, 10 ms
    /// packets) from one socket instead of the original mono format.
    #[arg(long)]
    rtp: bool,
    /// With --rtp: send Opus (PT 111, 10 ms of a tone at 64 kbit/s, one
    /// second of packets encoded once and cycled) instead of L16.
    #[arg(long, requires = "rtp")]
    opus: bool,
    /// With --rtp: send source i to the --dest port + i (a receiver that
    /// needs one port per stream, such as GStreamer's udpsrc).
    #[arg(long, requires = "rtp")]
    port_per_source: bool,
    /// With --rtp: the constant sample value of every source [default:
    /// 16000 ÷ sources].
    #[arg(long, requires = "rtp")]
    level: Option<i16>,
}

/// One second of 10 ms Opus packets of a 440 Hz tone at 64 kbit/s.
fn opus_packets() -> anyhow::Result<Vec<Vec<u8>>> {
    let mut encoder = proto::opus::Encoder::new(1, 64_000, proto::opus::DEFAULT_LOSS_PERCENT)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut buf = [0u8; proto::opus::MAX_PACKET];
    (0..100)
        .map(|k| {
            let pcm: Vec<i16> = (k * 480..(k + 1) * 480)
                .map(|n| {
                    ((n as f64 * 440.0 / 48_000.0 * std::f64::consts::TAU).sin() * 3000.0) as i16
                })
                .collect();
            let len = encoder
                .encode(&pcm, &mut buf)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(buf[..len].to_vec())
        })
        .collect()
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audioload: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let dest: SocketAddr = args
        .dest
        .to_socket_addrs()
        .with_context(|| format!("bad --dest {}", args.dest))?
        .next()
        .with_context(|| format!("--dest {} resolves to nothing", args.dest))?;
    anyhow::ensure!(
        args.chunk_ms > 0.0 && args.chunk_ms <= 185.0,
        "--chunk-ms must be in (0, 185]"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the signal handler")?;
    let duration = args.seconds.map(Duration::from_secs_f64);
    let count_late_after = Duration::from_secs_f64(args.count_late_after.max(0.0));
    let stats = if args.rtp {
        let level = args
            .level
            .unwrap_or_else(|| bench::rtpload::level_for(args.sources, 16_000));
        let mut config = bench::rtpload::RtpLoadConfig::new(args.sources, dest, level);
        config.chunk_frames =
            ((args.chunk_ms * f64::from(config.rate) / 1000.0).round() as usize).max(1);
        if args.opus {
            config = config.with_opus(opus_packets()?);
        }
        config.port_per_source = args.port_per_source;
        config.duration = duration;
        config.count_late_after = count_late_after;
        let counters = bench::rtpload::RtpLoadCounters::default();
        bench::rtpload::run(&config, &stop, &counters).context("cannot send RTP")?
    } else {
        let mut config = bench::load::LoadConfig::new(args.sources, dest, args.chunk_ms);
        config.duration = duration;
        config.count_late_after = count_late_after;
        bench::load::run(&config, &stop)
            .with_context(|| format!("cannot open {} sockets", args.sources))?
    };
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let cpu = usage.ru_utime.tv_sec as f64
        + usage.ru_utime.tv_usec as f64 / 1e6
        + usage.ru_stime.tv_sec as f64
        + usage.ru_stime.tv_usec as f64 / 1e6;
    let secs = stats.elapsed.as_secs_f64();
    println!(
        "audioload sources={} sent={} send_errors={} syscalls={} catch_ups={} max_lag_ms={:.2} sent_late={} seconds={:.2} rate_pps={:.0} cpu_pct={:.1}",
        args.sources,
        stats.sent,
        stats.send_errors,
        stats.syscalls,
        stats.catch_ups,
        stats.max_lag.as_secs_f64() * 1e3,
        stats.sent_late,
        secs,
        stats.sent as f64 / secs.max(1e-9),
        100.0 * cpu / secs.max(1e-9),
    );
    Ok(())
}
