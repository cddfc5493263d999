//! audiostreamer: reads a WAV file (or a microphone) and sends it, paced in
//! real time, as sequence-numbered mono UDP datagrams (or serves it over the
//! TCP Spec/Samples fallback).

pub mod cli;

pub use cli::Args;

/// Runs the streamer with parsed command-line arguments.
pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("streaming is not implemented in this build yet; see `audiostreamer --help` for the planned interface")
}
