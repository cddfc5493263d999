//! Command-line flags of audiostreamer (clap derive); `--help` is the reference.

use std::path::PathBuf;

use clap::Parser;

/// Streams a WAV file or a microphone as paced, sequence-numbered mono UDP
/// datagrams to an audionode (or as stereo to an audiorecorder).
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// WAV file to stream (any bit depth, channel count and rate hound reads).
    pub input: Option<PathBuf>,

    /// Destination HOST:PORT of the audionode (or audiorecorder).
    pub dest: Option<String>,

    /// Sample rate on the wire; the input is resampled to it.
    #[arg(long, default_value_t = 44_100)]
    pub sample_rate: u32,

    /// Milliseconds of audio per datagram.
    #[arg(long, default_value_t = 10.0)]
    pub chunk_ms: f64,

    /// Send this many times faster than real time (for tests and bulk transfer).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,

    /// Repeat the track until interrupted; sequence numbers continue.
    #[arg(long = "loop")]
    pub looping: bool,

    /// First sequence number.
    #[arg(long, default_value_t = 0)]
    pub start_seq: u32,

    /// Local address to send from (default: an ephemeral port on all interfaces).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,

    /// Send UDP stereo without sequence numbers, straight to an audiorecorder.
    #[arg(long)]
    pub stream_to_recorder: bool,

    /// Capture from a microphone instead of reading a WAV file.
    #[arg(long)]
    pub mic: bool,

    /// Input device name for --mic (default: the system default input).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,

    /// List audio input devices and exit.
    #[arg(long)]
    pub list_devices: bool,

    /// Also serve the stream over TCP (original Spec/Samples protocol) on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub tcp_listen: Option<String>,
}
