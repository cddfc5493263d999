//! audiostreamer's entry point: parse flags, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // symphonia's prober logs an ERROR of its own for a file it cannot
    // identify; the one-line error below already says so.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,symphonia_core::probe=off"),
    )
    .init();
    // Before any cpal call: alsa-lib's own stderr lines go to the log.
    audiodev::install_quiet_alsa();
    let args = audiostreamer::Args::parse();
    match audiostreamer::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiostreamer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
