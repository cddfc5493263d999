//! audionode: receives many mono UDP sources, tracks loss/reorder/duplicates
//! per source, jitter-buffers and mixes them into one stereo stream for
//! recorders, writes an event log, and serves a web mixing desk with a
//! control API and metrics ([`control`]).
//!
//! The sans-IO core ([`nodecore`], with [`nodecore::NodeCore`] as the
//! whole node in one state machine) takes time as a parameter; [`node`] is
//! the thin run loop that owns sockets, threads and the clock and pumps the
//! core, and [`outbox`] carries what the core produces off the mixing
//! thread without locks; [`tap`] hands the mix on to TCP clients and
//! WebSocket listeners; [`opus_source`] decodes Opus sources off the
//! mixing thread.

pub mod batch_recv;
pub mod cli;
pub mod config;
pub mod control;
pub mod event_log;
pub mod logging;
pub mod node;
pub mod nodecore;
pub mod opus_out;
pub mod opus_source;
pub mod outbox;
pub mod outputs;
pub mod resample;
pub mod rtp_io;
pub mod tap;
/// Real-time scheduling of the mixing thread (shared with the recorder).
pub use proto::realtime;
pub mod tcp_source;
pub mod web_source;

pub use nodecore::{
    drift, engine, event, jitter_buffer, mixer, source, stats, throttle, tracker, wakeup,
};

pub use cli::Args;
pub use config::Config;
pub use node::{start, NodeHandle};

/// Runs the node until SIGINT or SIGTERM, then logs final counters.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::from_args(&args, |key| std::env::var(key).ok())?;
    let node = start(config)?;
    let stop = node.stop_flag();
    ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst))
        .map_err(|e| anyhow::anyhow!("cannot install the signal handler: {e}"))?;
    node.wait()
}
