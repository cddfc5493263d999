//! The node's sans-IO core: everything between a decoded packet and a mixed
//! block, with time passed in. [`NodeCore`] is the whole node as one state
//! machine (inputs in, outputs out, every timer inside); the modules below
//! are its parts.
//!
//! This tree runs on the mixing thread, so it obeys the real-time rules,
//! and the compiler holds it to them: `clippy.toml` disallows the `log`
//! macros, `std::sync::Mutex`/`RwLock` and channel senders, and the lints
//! below turn that into an error here (and only here). Side effects leave
//! as [`Output`]s: events for the event-log thread, blocks to send, stats
//! frames to publish.
#![deny(
    clippy::disallowed_macros,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]
#![warn(unreachable_pub, missing_docs)]

pub mod budget;
mod coverage;
pub mod drift;
pub mod engine;
pub mod event;
pub mod ingress;
pub mod jitter_buffer;
mod kernels;
pub mod mixer;
pub mod name;
mod node_core;
pub mod pool;
pub mod positions;
mod prefetch;
pub mod source;
pub mod source_id;
pub mod stats;
pub mod throttle;
pub mod tracker;
pub mod wakeup;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod sim_tests_plc;
#[cfg(test)]
mod sim_tests_red;
#[cfg(test)]
mod sim_tests_rtp;

pub use node_core::{
    ControlCommand, CoreConfig, Input, NodeCore, Output, RtcpInput, WaitMode, Wake, HOUSEKEEPING,
    REPORT_INTERVAL, STATS_INTERVAL,
};
