//! audiorecorder: receives the stereo UDP stream (or the TCP fallback), plays
//! it through the sound card with a jitter backoff and appends it to a WAV.

pub mod cli;

pub use cli::Args;

/// Runs the recorder with parsed command-line arguments.
pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("recording is not implemented in this build yet; see `audiorecorder --help` for the planned interface")
}
