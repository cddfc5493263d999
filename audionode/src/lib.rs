//! audionode: receives many mono UDP sources, tracks loss/reorder/duplicates
//! per source, jitter-buffers and mixes them into one stereo stream for
//! recorders, writes an event log and serves a web mixing desk.

pub mod cli;

pub use cli::Args;

/// Runs the node with parsed command-line arguments.
pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("mixing is not implemented in this build yet; see `audionode --help` for the planned interface")
}
