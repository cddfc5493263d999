//! Measurement tools for audionode: the `audioload` load
//! generator ([`load`]), the bare receive-and-mix baselines ([`batched`],
//! which batches its receives as the node does, and the blocking [`bare`]),
//! `/proc` readers ([`procfs`]) and the `/metrics` scraper ([`metrics`])
//! used by the `audiocapacity` driver. See docs/performance.md.

pub mod bare;
pub mod batched;
pub mod capacity;
pub mod latency;
pub mod load;
pub mod machine;
pub mod memory;
pub mod metrics;
pub mod pacing;
pub mod procfs;
pub mod report;
pub mod stats;
