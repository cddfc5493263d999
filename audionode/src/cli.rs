//! Command-line flags of audionode (clap derive); `--help` is the reference.
//! The original implementation's environment variables (`LOGFILE`,
//! `BUFFER_SIZE`, `LISTEN_PORT`, `DEST`) are fallbacks for unset flags, and
//! `AUDIONODE_HTTP_TOKEN` holds the control surface's token when no token
//! flag is given (read there rather than by clap, so that a token from the
//! environment is told apart from one on the public command line);
//! [`crate::config::Config`] resolves them.

use std::path::PathBuf;

use clap::Parser;

/// Mixes any number of mono UDP sources into one stereo stream for recorders.
#[derive(Debug, Clone, Default, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Address (or a bare port) to receive source datagrams on, in the
    /// original format [default: 0.0.0.0:4030; env LISTEN_PORT sets the port].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Recorder to send the stereo mix to (original format); repeat for
    /// several [default: 127.0.0.1:4040 unless --rtp-dest is given; env
    /// DEST, comma-separated].
    #[arg(long, value_name = "HOST:PORT")]
    pub dest: Vec<String>,

    /// Event log file, appended to [default: audionode.log; env LOGFILE].
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Jitter-buffer target in milliseconds, or "auto" to adapt it to the
    /// measured jitter [default: 20; env BUFFER_SIZE].
    #[arg(long, value_name = "MS|auto")]
    pub jitter_ms: Option<String>,

    /// Packet-loss concealment: how audio nobody sent in time is filled.
    /// "predict" repeats the last pitch period, "repeat" the last packet,
    /// both fading to silence over 50 ms; "off" plays silence. Received
    /// audio is never changed.
    #[arg(
        long,
        value_name = "off|repeat|predict",
        default_value = "predict",
        env = "AUDIONODE_PLC"
    )]
    pub plc: proto::plc::PlcMode,

    /// Sample rate of sources and of the mix.
    #[arg(long, default_value_t = 44_100)]
    pub sample_rate: u32,

    /// Most sources mixed at once; more are refused.
    #[arg(long, default_value_t = 256)]
    pub max_sources: usize,

    /// Drop a stream that sent nothing for this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,

    /// Event-log lines per second for the whole node (0: unlimited); the
    /// excess is counted per class and summarised once per second.
    #[arg(long, value_name = "LINES", default_value_t = 200)]
    pub log_lines_per_second: u32,

    /// Web mixing desk, control API and /metrics address, or "off".
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,

    /// File holding the token every API, WebSocket and metrics request must
    /// carry (required off loopback), as `Authorization: Bearer TOKEN` or
    /// `?token=TOKEN`; surrounding whitespace is ignored. The environment
    /// variable AUDIONODE_HTTP_TOKEN is the other way to give it.
    #[arg(long, value_name = "PATH")]
    pub http_token_file: Option<PathBuf>,

    /// The token itself. Deprecated: every user of the machine can read a
    /// command line (ps); use --http-token-file or AUDIONODE_HTTP_TOKEN.
    #[arg(long, value_name = "TOKEN")]
    pub http_token: Option<String>,

    /// Allow a non-loopback control surface without a token.
    #[arg(long)]
    pub http_insecure: bool,

    /// A host name the control surface answers to besides loopback names
    /// and addresses and the address it is bound to (requests naming any
    /// other host get 421); repeatable.
    #[arg(long, value_name = "NAME")]
    pub http_allow_host: Vec<String>,

    /// Most HTTP connections at once, WebSockets included; more are
    /// answered 503 and closed [default: 256].
    #[arg(long, value_name = "N")]
    pub http_max_connections: Option<usize>,

    /// Most WebSocket clients at once; more get 503 [default: 64].
    #[arg(long, value_name = "N")]
    pub http_max_ws_clients: Option<usize>,

    /// Most listeners of the mix (GET /ws/listen, the Listen page) at once;
    /// more get 503. Each is also an HTTP connection (--http-max-connections)
    /// [default: 100].
    #[arg(long, value_name = "N", env = "AUDIONODE_MAX_LISTENERS")]
    pub max_listeners: Option<usize>,

    /// Pull a source from a TCP Spec/Samples server such as
    /// `audiostreamer --tcp-listen` (for networks that block UDP); repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp_source: Vec<String>,

    /// Also serve the stereo mix over TCP (Spec/Samples) on ADDR, e.g. to
    /// `audiorecorder --tcp`.
    #[arg(long, value_name = "ADDR")]
    pub tcp_listen: Option<String>,

    /// Also receive RTP (RFC 3550) with L16 payloads on ADDR (or a bare
    /// port), e.g. from ffmpeg, GStreamer or another node; RTCP on the port
    /// + 1 and multiplexed on the port itself; repeatable.
    #[arg(long, value_name = "ADDR")]
    pub rtp_listen: Vec<String>,

    /// Declare a dynamic RTP payload type, PT=L16/RATE/CHANNELS (e.g.
    /// 98=L16/44100/2) or PT=red/RATE/CHANNELS for RFC 2198 redundancy
    /// whose blocks are of the L16 types; repeatable. Known without it: 10
    /// (L16/44100/2), 11 (L16/44100/1), 96 (L16/<rate>/2), 97
    /// (L16/<rate>/1) and 100 (red/<rate>).
    #[arg(long, value_name = "PT=L16/RATE/CH")]
    pub rtp_map: Vec<String>,

    /// Send the stereo mix as RTP L16 to HOST:PORT (RTCP sender reports to
    /// the port + 1), described by GET /mix.sdp; repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub rtp_dest: Vec<String>,

    /// The encoding of every --rtp-dest stream: `l16` (the samples as they
    /// are) or `opus` (RFC 7587, payload type 111, 48 kHz stereo, 10 ms
    /// packets with in-band FEC: about 64 kbit/s instead of 1.4 Mbit/s,
    /// 6.5 ms more delay; encoded off the mixing thread).
    #[arg(long, value_name = "CODEC", default_value = "l16",
          value_parser = ["l16", "opus"])]
    pub rtp_codec: String,

    /// The bitrate of Opus outputs (--rtp-codec opus, and those added
    /// through the control surface) in bit/s, `k` for thousands (6k to
    /// 510k).
    #[arg(long, value_name = "BITS", default_value = "64k")]
    pub rtp_bitrate: String,

    /// Write the SDP of the first --rtp-dest stream to PATH (for ffplay,
    /// VLC, GStreamer or another recorder).
    #[arg(long, value_name = "PATH")]
    pub sdp_file: Option<PathBuf>,

    /// Real-time (SCHED_FIFO) priority of the mixing thread, 1-99, or 0 for
    /// normal scheduling (--tcp-source threads run one step below it). Needs root, CAP_SYS_NICE or RLIMIT_RTPRIO; when
    /// not permitted the node says so once and mixes at normal priority.
    #[arg(long, value_name = "PRIORITY", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(0..=99))]
    pub rt_priority: u8,
}
