//! audionode: receives many mono UDP sources, tracks loss/reorder/duplicates
//! per source, jitter-buffers and mixes them into one stereo stream for
//! recorders, and writes an event log.
//!
//! The sans-IO core ([`engine`], [`source`], [`tracker`], [`jitter_buffer`],
//! [`drift`], [`mixer`]) takes time as a parameter; [`node`] is the thin run
//! loop that owns sockets, threads and the clock.

pub mod cli;
pub mod drift;
pub mod engine;
pub mod event;
pub mod jitter_buffer;
pub mod mixer;
pub mod source;
pub mod stats;
pub mod throttle;
pub mod tracker;

#[cfg(test)]
mod sim_tests;

pub use cli::Args;

/// Runs the node with parsed command-line arguments.
pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("mixing is not implemented in this build yet; see `audionode --help` for the planned interface")
}
