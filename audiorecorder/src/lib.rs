//! audiorecorder: receives the stereo UDP stream (or the TCP fallback), plays
//! it through the sound card with a jitter backoff and appends every
//! received frame to a WAV file that survives crashes.
//!
//! Modules, one concept each:
//! - [`cli`]: flags and the checked [`Config`].
//! - [`backoff`]: the sans-IO backoff/latency state machine.
//! - [`level_control`]: drift compensation holding the ring at the backoff;
//!   [`arrival`]: the latest push into the ring, which it measures against.
//! - [`output`]: the real-time callback body pulling from the ring.
//! - [`device`], [`player`], [`resample`]: the cpal device, the ring's
//!   producer side, rate conversion.
//! - [`wav`], [`wav_repair`], [`writer`]: WAV open/append rules, the header
//!   repair before appending, and the writer thread.
//! - [`source`], [`udp`], [`tcp`]: the transports; [`format_watch`]: the
//!   warning when UDP brings only malformed or mono datagrams; [`flap`]: the limit on a
//!   TCP server's format changes; [`rtp`] (`--rtp`, `--sdp`) with
//!   [`rtp_stats`] (RFC 3550 receiver statistics) and [`rtp_place`]
//!   (audio placed by RTP timestamp).
//! - [`pipeline`]: fan-out of received frames to writer and player;
//!   [`keep_time`]: `--keep-time`'s silence for gaps.
//! - [`recorder`]: start/stop; [`stats`]: counters and the summary;
//!   [`report`]: rate-limited log lines about playback trouble;
//!   [`progress`]: the live status line on a terminal.
//! - [`probe`]: `--latency-probe`, click onsets arriving and handed to the device.

#![warn(missing_docs)]

pub mod arrival;
pub mod backoff;
pub mod cli;
pub mod device;
pub mod flap;
pub mod format_watch;
pub mod keep_time;
pub mod level_control;
pub mod output;
pub mod pipeline;
pub mod player;
pub mod plc;
pub mod probe;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod resample;
pub mod rtp;
pub mod rtp_place;
pub mod rtp_stats;
pub mod source;
pub mod stats;
pub mod tcp;
pub mod udp;
pub mod wav;
pub mod wav_repair;
pub mod writer;

use std::sync::atomic::Ordering;
use std::time::Duration;

pub use cli::{Args, Config};
pub use recorder::{start, Recorder};

/// The whole program: logging (`RUST_LOG`, info by default), flags from the
/// command line, [`run`], and a one-line error with exit code 1. `main.rs`
/// is just this, so other binaries (the end-to-end tests') can be the
/// recorder too.
pub fn main_entry() -> std::process::ExitCode {
    use clap::Parser;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Before any cpal call: alsa-lib's own stderr lines go to the log.
    audiodev::install_quiet_alsa();
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiorecorder: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the recorder with parsed command-line arguments until SIGINT or
/// SIGTERM (or an error), then prints the summary line.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list_devices {
        let direction = audiodev::Direction::Output;
        let devices = audiodev::list_devices(direction).map_err(anyhow::Error::msg)?;
        for line in audiodev::list::format_lines(direction, &devices) {
            println!("{line}");
        }
        return Ok(());
    }
    let config = Config::from_args(&args)?;
    let config_rate = config.sample_rate;
    let recorder = start(config)?;
    if let Some(addr) = recorder.local_addr() {
        // Tests and scripts that bind port 0 read the port from this line.
        eprintln!("audiorecorder: listening on UDP {addr}");
    }
    let stop = recorder.stop_flag();
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
        .map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
    let flag = recorder.stop_flag();
    let stats = recorder.stats();
    let mut status = progress::StatusLine::on_terminal(config_rate);
    while !flag.load(Ordering::Relaxed) && !recorder.has_ended() {
        if let Some(line) = &mut status {
            line.tick(std::time::Instant::now(), &stats);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(line) = &mut status {
        line.clear();
    }
    let summary = recorder.stop()?;
    println!("audiorecorder: {summary}");
    Ok(())
}
