//! audiorecorder's entry point: parse flags, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = audiorecorder::Args::parse();
    match audiorecorder::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audiorecorder: {e:#}");
            ExitCode::FAILURE
        }
    }
}
