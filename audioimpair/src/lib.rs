//! audioimpair: a UDP impairment proxy that records the ground truth.
//!
//! Clients send datagrams to `--listen`; each client gets its own upstream
//! socket towards `--forward`, so the receiver (the node) still sees one
//! source per client. On the way, datagrams are lost (independently or in
//! Gilbert-Elliott bursts), held back so later ones overtake them,
//! duplicated, delayed, jittered and rate-limited — reproducibly from
//! `--seed` — and every decision is recorded. On exit the proxy writes that
//! record, per source, as JSON: the ground truth an end-to-end test compares
//! the node's counters with.
//!
//! Layout: [`loss`], [`rate`] and [`impairment`] decide the fate of one
//! datagram; [`scheduler`] orders releases; `numbering` reads a datagram's
//! sequence number (mono, or RTP's extended to 32 bits); [`truth`] (with
//! [`window`]) classifies what was released the way the node does;
//! [`engine`] ties them together for all clients, with the clock passed in;
//! [`proxy`] is the socket loop; `run` is the binary's body and `entry`
//! ([`main_entry`]) the binary itself.

pub mod cli;
pub mod config;
pub mod engine;
mod entry;
pub mod impairment;
pub mod loss;
mod numbering;
pub mod proxy;
pub mod rate;
mod run;
pub mod scheduler;
pub mod truth;
pub mod window;

pub use cli::Args;
pub use config::{Config, ConfigError};
pub use engine::Engine;
pub use entry::main_entry;
pub use impairment::{Fate, Impairment, ImpairmentConfig};
pub use loss::LossModel;
pub use proxy::{Proxy, ProxyHandle};
pub use run::run;
pub use truth::{GroundTruth, SourceTruth};
