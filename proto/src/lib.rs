//! Wire formats shared by `audiostreamer`, `audionode` and `audiorecorder`.
//!
//! Everything here is sans-IO except the TCP transport (`tcp_server`,
//! `tcp_client`), which is a thin layer over [`framing`] and [`message`]:
//!
//! - [`udp_mono`]: `[seq: u32 BE][sample: i16 BE] × n`, streamer → node.
//! - [`udp_stereo`]: `[left: i16 BE][right: i16 BE] × n`, node → recorder.
//! - [`message`]: the TCP Spec/Samples messages (little-endian).
//! - [`framing`]: the `[len: u32 LE][message]` framing over any `Read`/`Write`.
//! - [`rtp`], [`rtcp`], [`rtp_map`], [`sdp`]: RTP with L16 payloads, its
//!   control protocol, payload-type tables and session descriptions, beside
//!   the original formats so standard tools (ffmpeg, GStreamer, VLC) and
//!   other nodes take part.
//! - [`red`]: RFC 2198 redundant audio, RTP payloads that carry copies of
//!   earlier packets' audio so a receiver restores a lost packet exactly.
//! - [`opus`]: the Opus codec (RFC 6716) as RTP payloads (RFC 7587), with
//!   in-band FEC, beside L16 on any RTP hop when asked; [`opus_stream`]
//!   decodes one received stream in order, recovering and concealing losses.
//! - [`seq`]: sequence-number arithmetic across the 2^32 wrap.
//! - [`probe`]: not a wire format but a cross-program contract too: the
//!   self-identifying click onsets and the probe-file lines of the latency
//!   probe (`--latency-probe` in the streamer and the recorder).
//! - [`plc`]: packet-loss concealment, the same in the node and the recorder.
//! - [`realtime`]: not a wire format either: `SCHED_FIFO` for the node's
//!   mixing thread and the recorder's audio callback (`--rt-priority`).
//!
//! Every decoder is total: any byte string yields a value or a typed error,
//! never a panic, and no decoder allocates a length it has not verified.
//! See `docs/protocol.md` for byte diagrams.

pub mod civil;
pub mod framing;
pub mod message;
pub mod opus;
pub mod opus_stream;
pub mod plc;
pub mod probe;
pub mod realtime;
pub mod red;
pub mod rtcp;
pub mod rtp;
pub mod rtp_map;
pub mod sdp;
pub mod seq;
pub mod simd;
pub mod tcp_client;
pub mod tcp_server;
pub mod udp_mono;
pub mod udp_stereo;

pub use framing::{FrameError, FrameReader, DEFAULT_MAX_FRAME_LEN};
pub use message::{Message, MessageError, SampleFormat, Spec};
pub use seq::{seq_diff, seq_is_newer, SeqExtender};
pub use tcp_client::{RecvError, TcpClient};
pub use tcp_server::{Closed, TcpServer, TcpServerConfig, DRAIN_TIMEOUT};
pub use udp_mono::{encode_mono, mono_datagram_len, MonoDatagram, MonoDecodeError};
pub use udp_stereo::{encode_stereo, stereo_datagram_len, StereoDatagram, StereoDecodeError};

/// Largest UDP payload that crosses an Ethernet path (1500-byte MTU) without
/// IP fragmentation: 1500 − 20 (IPv4 header) − 8 (UDP header).
pub const MAX_UNFRAGMENTED_PAYLOAD: usize = 1472;

/// Largest payload a UDP datagram can carry over IPv4 (65535 − 20 − 8).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Error returned by the UDP encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The caller's buffer cannot hold the datagram.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes the datagram needs.
        needed: usize,
        /// Bytes the caller's buffer holds.
        available: usize,
    },
    /// A datagram must carry at least one sample (receivers reject empty ones).
    #[error("a datagram must carry at least one sample")]
    NoSamples,
    /// A RED block that its header's fields cannot describe (more than
    /// 1023 bytes, or an offset above 16383 ticks).
    #[error("a RED block of {len} bytes at offset {offset} does not fit its header")]
    RedBlockTooLarge {
        /// The block's bytes.
        len: usize,
        /// Its timestamp offset.
        offset: u16,
    },
}
