//! Command-line flags of audiorecorder (clap derive); `--help` is the reference.

use std::path::PathBuf;

use clap::Parser;

/// Plays a UDP stereo stream through the sound card with a jitter backoff and
/// appends every received frame to a WAV file.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// WAV file to append to (created if missing; omit with --no-record).
    pub wav: Option<PathBuf>,

    /// UDP port to receive the stereo stream on.
    pub port: Option<u16>,

    /// Local address to bind the UDP port on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: String,

    /// Accept datagrams only from this sender (default: lock onto the first).
    #[arg(long, value_name = "ADDR")]
    pub source: Option<String>,

    /// Milliseconds of audio to buffer before playback starts or resumes.
    #[arg(long, default_value_t = 50)]
    pub jitter_backoff: u32,

    /// Drop the oldest audio when buffered playback exceeds this
    /// (default: 4 × backoff, at least 200).
    #[arg(long, value_name = "MS")]
    pub max_latency_ms: Option<u32>,

    /// Sample rate of the incoming stream.
    #[arg(long, default_value_t = 44_100)]
    pub sample_rate: u32,

    /// Output device name (default: the system default output).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,

    /// List audio output devices and exit.
    #[arg(long)]
    pub list_devices: bool,

    /// Record only; do not open an audio device.
    #[arg(long)]
    pub no_playback: bool,

    /// Play only; do not write a WAV file.
    #[arg(long)]
    pub no_record: bool,

    /// Start a fresh WAV instead of appending to an existing one.
    #[arg(long)]
    pub overwrite: bool,

    /// Receive from a TCP Spec/Samples server at HOST:PORT instead of UDP.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
}
