//! audionode's entry point: parse flags, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    audionode::logging::init();
    let args = audionode::Args::parse();
    match audionode::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audionode: {e:#}");
            ExitCode::FAILURE
        }
    }
}
