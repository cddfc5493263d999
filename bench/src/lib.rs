//! Measurement tools for audionode: the `audioload` load
//! generator ([`load`]; its RTP mode is [`rtpload`]), the bare receive-and-mix baselines ([`batched`],
//! which batches its receives as the node does, and the blocking [`bare`]),
//! `/proc` readers ([`procfs`]) and the `/metrics` scraper ([`metrics`])
//! used by the `audiocapacity` driver, and `audiortpvs`, the node against a
//! GStreamer pipeline on RTP, and the click matching of the browser
//! latency bench ([`browser`]). See docs/performance.md.

pub mod bare;
pub mod batched;
pub mod browser;
pub mod capacity;
pub mod latency;
pub mod load;
pub mod machine;
pub mod memory;
pub mod metrics;
pub mod pacing;
pub mod procfs;
pub mod report;
pub mod rtpload;
pub mod stats;
