//! audionode's entry point: parse flags, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
