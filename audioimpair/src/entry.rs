//! The program around the library: parse flags, set up logging, run, map
//! errors to an exit code. Every user mistake is one line
//! `audioimpair: <problem>` and exit code 1.

use std::process::ExitCode;

use clap::Parser;

/// The whole program: flags from the command line, logging (`RUST_LOG`,
/// info by default), [`crate::run`], and a one-line error with exit code 1.
/// `main.rs` is just this, so other binaries (the end-to-end tests') can be
/// the proxy too.
pub fn main_entry() -> ExitCode {
    let args = match crate::Args::try_parse() {
        Ok(args) => args,
        // --help and --version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "audioimpair: {} (see --help)",
                one_line(&e.render().to_string())
            );
            return ExitCode::FAILURE;
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = crate::Config::from_args(&args)
        .map_err(anyhow::Error::from)
        .and_then(crate::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("audioimpair: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// clap's message up to its first blank line, joined into one line and
/// without its "error: " prefix.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}
