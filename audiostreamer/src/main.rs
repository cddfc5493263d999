//! audiostreamer's entry point: parse flags, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
