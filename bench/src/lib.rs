//! Measurement tools for audionode (issue 8): the `audioload` load
//! generator ([`load`]), the bare receive-and-mix baseline ([`bare`]),
//! `/proc` readers ([`procfs`]) and the `/metrics` scraper ([`metrics`])
//! used by the `audiocapacity` driver. See docs/performance.md.

pub mod bare;
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
