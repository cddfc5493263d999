//! audiostreamer: reads an audio file (WAV, FLAC, MP3, Ogg/Vorbis, AIFF;
//! a WAV also from standard input) or a microphone and sends it, paced in
//! real time, as sequence-numbered mono UDP datagrams (or serves it over the
//! TCP Spec/Samples fallback).
//!
//! Layout: a sans-IO core ([`sample`], [`wav`], [`stream_wav`], [`resample`], [`chunk`],
//! [`pacer`], [`burst`], [`refused`]) that is unit-tested with hand-computed inputs and a
//! simulated clock, and thin IO edges ([`decoder`] with [`media`], [`source`], [`mic`], [`udp_out`],
//! [`tcp_out`], [`rtp_out`] for `--rtp` with [`red_out`] for `--redundancy` and [`opus_out`] for `--codec opus`, [`progress`], [`probe_out`] for `--latency-probe`) wired together by [`streamer`]. [`generate`]
//! writes the demo stems (`--generate DIR`) and sends nothing.

pub mod burst;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod decoder;
pub mod generate;
pub mod media;
pub mod mic;
pub mod opus_out;
pub mod pacer;
pub mod probe_out;
pub mod progress;
pub mod red_out;
pub mod refused;
pub mod resample;
pub mod rtp_out;
pub mod sample;
pub mod source;
pub mod stream_wav;
pub mod streamer;
pub mod tcp_out;
pub mod udp_out;
pub mod wav;

use std::sync::atomic::{AtomicBool, Ordering};

pub use cli::Args;
pub use config::Config;
pub use progress::Summary;
pub use streamer::Streamer;

/// Set by Ctrl-C (SIGINT/SIGTERM); the run loop stops at the next chunk.
static STOP: AtomicBool = AtomicBool::new(false);

/// Runs the program with parsed command-line arguments: lists devices,
/// writes the demo stems, or streams until the input ends or Ctrl-C, then
/// logs the one-line summary.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.generate {
        let secs = args.duration.unwrap_or(generate::DEFAULT_DURATION_SECS);
        for w in generate::write_stems(dir, secs, args.sample_rate)? {
            println!(
                "wrote {} ({} s, {} Hz mono 16-bit, peak {:.1} dBFS)",
                w.path.display(),
                secs,
                args.sample_rate,
                w.peak_dbfs
            );
        }
        return Ok(());
    }
    if args.list_devices {
        let direction = audiodev::Direction::Input;
        let devices = audiodev::list_devices(direction).map_err(anyhow::Error::msg)?;
        for line in audiodev::list::format_lines(direction, &devices) {
            println!("{line}");
        }
        return Ok(());
    }
    let streamer = Streamer::new(&args)?;
    install_ctrlc();
    let summary = streamer.run(&STOP)?;
    log::info!("{summary}");
    Ok(())
}

/// First Ctrl-C: stop cleanly after the current chunk. Second: exit now.
fn install_ctrlc() {
    let result = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    match result {
        Ok(()) => {}
        // Already installed by an earlier run in this process; it sets the same flag.
        Err(ctrlc::Error::MultipleHandlers) => {}
        Err(e) => log::warn!("cannot catch Ctrl-C ({e}); it will end the program abruptly"),
    }
}
