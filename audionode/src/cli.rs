//! Command-line flags of audionode (clap derive); `--help` is the reference.
//! The original implementation's environment variables are fallbacks.

use std::path::PathBuf;

use clap::Parser;

/// Mixes any number of mono UDP sources into one stereo stream for recorders.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Address to receive source datagrams on (env LISTEN_PORT sets the port).
    #[arg(long, default_value = "0.0.0.0:4030")]
    pub listen: String,

    /// Recorder to send the stereo mix to; repeat for several (env DEST).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:4040")]
    pub dest: Vec<String>,

    /// Event log file, appended to (env LOGFILE).
    #[arg(long, value_name = "PATH", default_value = "audionode.log")]
    pub log_file: PathBuf,

    /// Jitter-buffer target in milliseconds, or "auto" (env BUFFER_SIZE).
    #[arg(long, value_name = "MS|auto", default_value = "20")]
    pub jitter_ms: String,

    /// Sample rate of sources and of the mix.
    #[arg(long, default_value_t = 44_100)]
    pub sample_rate: u32,

    /// Most sources mixed at once; more are refused.
    #[arg(long, default_value_t = 256)]
    pub max_sources: usize,

    /// Drop a stream that sent nothing for this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,

    /// Address of the web mixing desk and control API, or "off".
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,

    /// Token every control request must carry (required off loopback).
    #[arg(long, value_name = "TOKEN")]
    pub http_token: Option<String>,

    /// Allow a non-loopback control surface without a token.
    #[arg(long)]
    pub http_insecure: bool,

    /// Pull a source from an `audiostreamer --tcp-listen` server; repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp_source: Vec<String>,

    /// Serve the stereo mix over TCP (Spec/Samples) on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub tcp_listen: Option<String>,
}
