//! Command-line flags of audiostreamer (clap derive); `--help` is the reference.

use std::path::PathBuf;

use clap::Parser;

/// Streams an audio file or a microphone as paced, sequence-numbered mono UDP
/// datagrams to an audionode (or as stereo to an audiorecorder).
#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  \
        audiostreamer track.wav 127.0.0.1:4030\n  \
        audiostreamer track.flac\n  \
        ffmpeg -i in.m4a -f wav - | audiostreamer - 127.0.0.1:4030\n  \
        audiostreamer track.wav 127.0.0.1:4040 --stream-to-recorder\n  \
        audiostreamer --rtp --channels 2 --name bass track.wav 127.0.0.1:5004\n  \
        audiostreamer track.wav --tcp-listen 0.0.0.0:4031 --loop\n  \
        audiostreamer --mic --device default 127.0.0.1:4030\n  \
        audiostreamer --list-devices\n  \
        audiostreamer --generate demo-stems --duration 24"
)]
pub struct Args {
    /// Audio file to stream: WAV (8/16/24/32-bit integer or 32-bit float),
    /// FLAC, MP3, Ogg/Vorbis or AIFF, or `-` for a WAV on standard input
    /// (also one piped from sox or ffmpeg); any channel count (averaged to
    /// mono, or see --channels) and rate (resampled to --sample-rate). With
    /// --mic, the first positional argument is DEST instead.
    pub input: Option<PathBuf>,

    /// Destination HOST:PORT of the audionode (or audiorecorder). Default:
    /// 127.0.0.1:4030 (a local audionode), 127.0.0.1:4040 with
    /// --stream-to-recorder, none with --tcp-listen; --rtp needs one.
    pub dest: Option<String>,

    /// Sample rate on the wire; the input is resampled to it.
    #[arg(long, default_value_t = 44_100)]
    pub sample_rate: u32,

    /// Milliseconds of audio per datagram: round(ms × rate / 1000) samples,
    /// 1 to 32767; the last datagram carries the remainder.
    #[arg(long, default_value_t = 10.0)]
    pub chunk_ms: f64,

    /// Send this many times faster than real time (for tests and bulk
    /// transfer), 0.001 to 1000.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,

    /// Repeat the track until interrupted; sequence numbers continue.
    #[arg(long = "loop")]
    pub looping: bool,

    /// First sequence number.
    #[arg(long, default_value_t = 0)]
    pub start_seq: u32,

    /// Local ADDR:PORT to send UDP from, so a restarted streamer keeps its
    /// identity at the node (default: an ephemeral port on all interfaces
    /// of the destination's IP family).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,

    /// Send UDP stereo without sequence numbers, straight to an audiorecorder.
    #[arg(long)]
    pub stream_to_recorder: bool,

    /// Send RTP (RFC 3550) with L16 payloads instead of the original
    /// datagrams, and RTCP (sender reports, SDES, BYE) to DEST's port + 1;
    /// receiver reports coming back are logged. Payload type 11 (mono) or
    /// 10 (stereo) at 44.1 kHz, else 97 (mono) or 96 (stereo).
    #[arg(long, conflicts_with_all = ["stream_to_recorder", "tcp_listen"])]
    pub rtp: bool,

    /// With --rtp: channels on the wire. 1 averages the file's channels to
    /// mono; 2 keeps a stereo file stereo (a mono file goes to both
    /// channels, a file of more channels gives its first two).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "rtp",
          value_parser = clap::value_parser!(u16).range(1..=2))]
    pub channels: u16,

    /// With --rtp: copy the previous N packets' audio (1 or 2) into each
    /// packet as RFC 2198 redundancy, so a receiver restores a lost packet
    /// exactly from a later one; 0 sends plain L16. Costs N times the
    /// audio bandwidth again; packets are cut smaller so that each fits one
    /// datagram with its copies.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "rtp",
          value_parser = clap::value_parser!(u8).range(0..=2))]
    pub redundancy: u8,

    /// With --redundancy: the dynamic payload type of the RED packets
    /// (red/RATE/CHANNELS; the blocks inside keep the L16 type).
    #[arg(long, value_name = "PT", default_value_t = proto::rtp_map::PT_RED_DEFAULT,
          requires = "rtp", value_parser = clap::value_parser!(u8).range(96..=127))]
    pub red_pt: u8,

    /// With --rtp: the payload encoding. `l16` sends the samples as they are
    /// (RFC 3551); `opus` compresses them (RFC 7587: about 64 kbit/s instead
    /// of 706 per mono channel, with in-band FEC against loss, 6.5 ms more
    /// delay). Opus always runs at 48 kHz (the input is resampled to it;
    /// --sample-rate is not used) and --chunk-ms must be 2.5, 5, 10, 20, 40
    /// or 60.
    #[arg(long, value_name = "CODEC", default_value = "l16", requires = "rtp",
          value_parser = ["l16", "opus"])]
    pub codec: String,

    /// With --codec opus: the bitrate in bit/s, `k` for thousands (e.g.
    /// 64k, 32000), 6k to 510k.
    #[arg(long, value_name = "BITS", default_value = "64k", requires = "rtp")]
    pub bitrate: String,

    /// With --codec opus: the dynamic payload type (opus/48000/2).
    #[arg(long, value_name = "PT", default_value_t = proto::opus::PT_OPUS_DEFAULT,
          requires = "rtp", value_parser = clap::value_parser!(u8).range(96..=127))]
    pub opus_pt: u8,

    /// With --rtp: the name receivers show for this stream (RTCP SDES NAME).
    #[arg(long, value_name = "NAME", requires = "rtp")]
    pub name: Option<String>,

    /// With --rtp: derive the SSRC, the first sequence number and timestamp
    /// and the RTCP timer from SEED instead of at random (for tests).
    #[arg(long, value_name = "SEED", requires = "rtp")]
    pub rtp_seed: Option<u64>,

    /// With --rtp: the nominal RTCP report interval in seconds (RFC 3550:
    /// 5); each interval is randomised around it.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, requires = "rtp")]
    pub rtcp_interval: f64,

    /// Capture from a microphone instead of reading a WAV file.
    #[arg(long)]
    pub mic: bool,

    /// Input device for --mic: its id (e.g. alsa:default or just default),
    /// its name, or a unique part of either (default: the system default input).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,

    /// List audio input devices and exit.
    #[arg(long)]
    pub list_devices: bool,

    /// Also serve the stream over TCP (original Spec/Samples protocol) on
    /// ADDR:PORT to any number of clients; DEST is then optional.
    #[arg(long, value_name = "ADDR")]
    pub tcp_listen: Option<String>,

    /// With --tcp-listen: start the track when the first TCP client
    /// connects, so it receives the track from its first sample (UDP, if
    /// also sending, starts then too).
    #[arg(long)]
    pub wait_for_client: bool,

    /// Write one line per click onset sent to FILE: the CLOCK_MONOTONIC time
    /// after the datagram's send returned, the click id and its offset in the
    /// datagram. For measuring end-to-end latency together with
    /// `audiorecorder --latency-probe` (the bench `audiolatency` does both).
    #[arg(long, value_name = "FILE")]
    pub latency_probe: Option<PathBuf>,

    /// Write four demo stems that play together (bass.wav, chords.wav,
    /// lead.wav, drums.wav; mono 16-bit at --sample-rate) into DIR, creating
    /// it, and exit. Deterministic: the same arguments give identical files.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = [
            "input", "dest", "mic", "device", "list_devices", "tcp_listen", "bind",
            "stream_to_recorder", "looping", "speed", "chunk_ms", "start_seq",
            "latency_probe", "wait_for_client", "rtp",
        ]
    )]
    pub generate: Option<PathBuf>,

    /// Length of the --generate stems in whole seconds, 4 to 120 [default: 24].
    #[arg(
        long,
        value_name = "SECONDS",
        requires = "generate",
        value_parser = clap::value_parser!(u32).range(
            i64::from(crate::generate::MIN_DURATION_SECS)
                ..=i64::from(crate::generate::MAX_DURATION_SECS)
        )
    )]
    pub duration: Option<u32>,
}
