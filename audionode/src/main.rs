//! audionode's entry point: parse flags, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    audionode::logging::init();
    let args = audionode::Args::parse();
    // Before any socket: the control surface's caps, not the kernel's
    // descriptor limit, should decide when a client is refused.
    audionode::control::raise_open_file_limit();
    match audionode::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audionode: {e:#}");
            ExitCode::FAILURE
        }
    }
}
