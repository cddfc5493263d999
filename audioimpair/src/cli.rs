//! Command-line flags (raw, as typed); `config.rs` checks them.

use std::path::PathBuf;

use clap::Parser;

/// A UDP impairment proxy: forwards datagrams from each client through its
/// own upstream socket, losing, reordering, duplicating, delaying and
/// rate-limiting them reproducibly, and writes the ground truth of what it
/// did as JSON on exit.
#[derive(Debug, Clone, Parser)]
#[command(name = "audioimpair", version, about, long_about = None)]
pub struct Args {
    /// Address to receive client datagrams on (HOST:PORT; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    /// Address to forward datagrams to (HOST:PORT), e.g. the node.
    #[arg(long, value_name = "ADDR")]
    pub forward: String,

    /// Loss probability per datagram, 0 to 1 (mean loss rate with --burst-loss).
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub loss: f64,

    /// Lose datagrams in bursts (Gilbert-Elliott two-state model) instead of independently.
    #[arg(long)]
    pub burst_loss: bool,

    /// Mean loss burst length in datagrams, at least 1 (with --burst-loss).
    #[arg(long, value_name = "N", default_value_t = crate::loss::DEFAULT_BURST_LEN,
          requires = "burst_loss", allow_negative_numbers = true)]
    pub burst_len: f64,

    /// Probability that a datagram is held back so later ones overtake it, 0 to 1.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub reorder: f64,

    /// Longest reorder hold in ms; a held datagram waits uniformly MS/2 to MS extra.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 30,
        allow_negative_numbers = true
    )]
    pub reorder_ms: u64,

    /// Probability that a forwarded datagram is sent twice (copy 0-2 ms later), 0 to 1.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub duplicate: f64,

    /// Fixed latency added to every datagram, in ms.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub delay: u64,

    /// Extra latency per datagram, uniform from 0 to MS, in ms.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub jitter: u64,

    /// Rate limit per client in kilobits per second (token bucket; more than 1 s of queue drops).
    #[arg(long, value_name = "KBPS", allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// Seed of the random decisions: the same seed gives the same decisions.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub seed: u64,

    /// Where to write the ground-truth JSON on exit ("-" or absent: standard output).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
}
