//! Typed ingress: every wire format a source can arrive in is decoded at
//! the edge into one [`SourcePacket`], so the core never sees bytes of a
//! particular format.
//!
//! The formats are the original UDP mono datagram with a sequence number
//! (`[seq: u32 BE][sample: i16 BE] × n`), RTP with L16 payloads (mono or
//! stereo, big-endian), both decoded in place (the samples stay big-endian
//! in the receive buffer until they are copied into the jitter buffer),
//! and the TCP Spec/Samples source (already decoded to native samples by
//! its thread). The original format and TCP carry no timestamp: a packet's
//! sample position is the running sum of packet sizes in sequence order,
//! computed by the source ([`crate::nodecore::source`]); an RTP packet is
//! placed by its timestamp.

use std::net::SocketAddr;

use proto::rtp::{RtpDecodeError, RtpPacket};
use proto::rtp_map::RtpMap;
use proto::{MonoDatagram, MonoDecodeError};

use super::source_id::SourceId;

/// One packet of one source, whatever format it arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePacket<'a> {
    /// The packet's sequence number (wraps at 2^32; at 2^16 for RTP).
    pub seq: u32,
    /// Its samples, interleaved when stereo.
    pub samples: Samples<'a>,
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
    /// What RTP adds: the stream's identity and the packet's timestamp.
    pub rtp: Option<RtpInfo>,
}

/// The RTP fields a source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// The synchronisation source: the source's identity.
    pub ssrc: u32,
    /// The first frame's sampling instant, one tick per frame (L16).
    pub timestamp: u32,
    /// Which `--rtp-listen` socket it arrived on.
    pub listener: u8,
}

impl<'a> SourcePacket<'a> {
    /// A mono packet without timestamp (original format, TCP sources).
    pub fn mono(seq: u32, samples: Samples<'a>) -> Self {
        Self {
            seq,
            samples,
            channels: 1,
            rtp: None,
        }
    }

    /// Frames in the packet (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// The source this packet belongs to, when it came from `from`.
    pub fn source_id(&self, from: SocketAddr) -> SourceId {
        match self.rtp {
            Some(rtp) => SourceId::Ssrc(rtp.ssrc),
            None => SourceId::Addr(from),
        }
    }
}

/// A packet's samples, left where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Samples<'a> {
    /// Still in a received datagram: big-endian 16-bit.
    BigEndian(MonoDatagram<'a>),
    /// An RTP L16 payload: big-endian 16-bit, interleaved when stereo.
    BigEndianPayload(&'a [u8]),
    /// Already decoded.
    Native(&'a [i16]),
}

impl Samples<'_> {
    /// Number of samples (at least 1 for a decoded datagram).
    pub fn len(&self) -> usize {
        match self {
            Samples::BigEndian(d) => d.sample_count(),
            Samples::BigEndianPayload(b) => b.len() / 2,
            Samples::Native(s) => s.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes samples `offset..offset + run.len()` into `run`.
    pub fn copy(&self, offset: usize, run: &mut [i16]) {
        match self {
            Samples::BigEndian(d) => {
                d.copy_samples_from(offset, run);
            }
            Samples::BigEndianPayload(b) => {
                proto::udp_mono::decode_be(&b[2 * offset..], run);
            }
            Samples::Native(s) => run.copy_from_slice(&s[offset..offset + run.len()]),
        }
    }

    /// Writes channel `channel` of frames `frame..frame + run.len()` of an
    /// interleaved stereo packet into `run`.
    pub fn copy_stereo_channel(&self, channel: usize, frame: usize, run: &mut [i16]) {
        let first = 2 * frame + channel;
        match self {
            Samples::BigEndian(d) => {
                let mut pair = [0i16; 1];
                for (k, out) in run.iter_mut().enumerate() {
                    d.copy_samples_from(first + 2 * k, &mut pair);
                    *out = pair[0];
                }
            }
            Samples::BigEndianPayload(b) => {
                let frames = b.get(2 * first..).unwrap_or_default();
                for (out, s) in run.iter_mut().zip(frames.chunks(4)) {
                    *out = i16::from_be_bytes([s[0], s.get(1).copied().unwrap_or(0)]);
                }
            }
            Samples::Native(s) => {
                for (out, &x) in run.iter_mut().zip(s[first..].iter().step_by(2)) {
                    *out = x;
                }
            }
        }
    }
}

/// Why a datagram was not admitted as a source packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not a valid mono datagram.
    Decode(MonoDecodeError),
    /// Not a valid RTP packet.
    Rtp(RtpDecodeError),
    /// An RTP payload type the node has no format for.
    UnknownPayloadType {
        /// The stream.
        ssrc: u32,
        /// Its payload type.
        payload_type: u8,
    },
    /// An RTP format at another sample rate than the node's.
    Rate {
        /// The stream.
        ssrc: u32,
        /// The payload type.
        payload_type: u8,
        /// Its rate.
        rate: u32,
        /// The node's.
        node: u32,
    },
    /// An L16 payload that is not a whole number of frames (or empty).
    BadPayload {
        /// Payload bytes.
        len: usize,
        /// Channels of its payload type.
        channels: u8,
    },
    /// Longer than the node accepts (`max` bytes).
    TooLong {
        /// Its length.
        len: usize,
        /// The longest accepted.
        max: usize,
    },
    /// A browser sender's WebSocket frame that is not a packet of its stream.
    WebFrame(WebFrameError),
}

/// Why a browser sender's WebSocket frame (`/ws/send`) is not a packet of
/// its stream; the node closes the socket with this as the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebFrameError {
    /// The first frame is not the JSON header `{"name", "rate", "channels"}`.
    Header,
    /// The header's rate is not the node's (the page resamples).
    Rate {
        /// The header's rate.
        rate: u32,
        /// The node's.
        node: u32,
    },
    /// The header's channel count is not 1.
    Channels(u32),
    /// A binary frame of another length than one 10 ms packet.
    Size {
        /// Its length in bytes.
        len: usize,
        /// The one length accepted.
        expected: usize,
    },
    /// A text frame after the header.
    Text,
    /// A frame longer than the WebSocket accepts.
    TooLong,
}

impl std::fmt::Display for WebFrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            WebFrameError::Header => f.write_str(
                "the first frame must be the JSON header {\"name\",\"rate\",\"channels\"}",
            ),
            WebFrameError::Rate { rate, node } => {
                write!(f, "rate {rate} Hz is not the node's {node} Hz")
            }
            WebFrameError::Channels(n) => write!(f, "{n} channels; only mono is sent"),
            WebFrameError::Size { len, expected } => write!(
                f,
                "binary frame of {len} bytes; a packet is {expected} bytes"
            ),
            WebFrameError::Text => f.write_str("a text frame after the header"),
            WebFrameError::TooLong => f.write_str("a frame longer than the node accepts"),
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Decode(e) => write!(f, "{e}"),
            Malformed::Rtp(e) => write!(f, "{e}"),
            Malformed::UnknownPayloadType {
                payload_type: pt, ..
            } => write!(
                f,
                "RTP payload type {pt} is unknown (declare it with --rtp-map {pt}=L16/RATE/CHANNELS)"
            ),
            Malformed::Rate {
                payload_type,
                rate,
                node,
                ..
            } => write!(
                f,
                "RTP payload type {payload_type} runs at {rate} Hz, the node at {node} Hz (not resampled)"
            ),
            Malformed::BadPayload { len, channels } => write!(
                f,
                "L16 payload of {len} bytes is not a whole number of {channels}-channel frames"
            ),
            Malformed::TooLong { len, max } => {
                write!(f, "datagram of {len} bytes is longer than {max} bytes")
            }
            Malformed::WebFrame(e) => write!(f, "browser sender: {e}"),
        }
    }
}

impl Malformed {
    /// The RTP stream a refusal is about, for those that are about a
    /// whole stream rather than one datagram.
    pub fn ssrc(&self) -> Option<u32> {
        match *self {
            Malformed::UnknownPayloadType { ssrc, .. } | Malformed::Rate { ssrc, .. } => Some(ssrc),
            _ => None,
        }
    }
}

/// Decodes one original-format mono datagram of at most `max_bytes`.
pub fn decode_mono(bytes: &[u8], max_bytes: usize) -> Result<SourcePacket<'_>, Malformed> {
    if bytes.len() > max_bytes {
        return Err(Malformed::TooLong {
            len: bytes.len(),
            max: max_bytes,
        });
    }
    let datagram = MonoDatagram::decode(bytes).map_err(Malformed::Decode)?;
    Ok(SourcePacket::mono(
        datagram.seq,
        Samples::BigEndian(datagram),
    ))
}

/// Decodes one RTP packet with an L16 payload of a type `map` knows, at the
/// node's `rate`, of at most `max_bytes`.
pub fn decode_rtp<'a>(
    bytes: &'a [u8],
    map: &RtpMap,
    rate: u32,
    max_bytes: usize,
    listener: u8,
) -> Result<SourcePacket<'a>, Malformed> {
    if bytes.len() > max_bytes {
        return Err(Malformed::TooLong {
            len: bytes.len(),
            max: max_bytes,
        });
    }
    let packet = RtpPacket::decode(bytes).map_err(Malformed::Rtp)?;
    let pt = packet.payload_type;
    let format = map.get(pt).ok_or(Malformed::UnknownPayloadType {
        ssrc: packet.ssrc,
        payload_type: pt,
    })?;
    if format.rate != rate {
        return Err(Malformed::Rate {
            ssrc: packet.ssrc,
            payload_type: pt,
            rate: format.rate,
            node: rate,
        });
    }
    let channels = format.channels as u8;
    let frame_bytes = 2 * usize::from(channels);
    if packet.payload.is_empty() || packet.payload.len() % frame_bytes != 0 {
        return Err(Malformed::BadPayload {
            len: packet.payload.len(),
            channels,
        });
    }
    Ok(SourcePacket {
        seq: u32::from(packet.seq),
        samples: Samples::BigEndianPayload(packet.payload),
        channels,
        rtp: Some(RtpInfo {
            ssrc: packet.ssrc,
            timestamp: packet.timestamp,
            listener,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_in_place() {
        let bytes = [0, 0, 1, 2, 0x12, 0x34, 0xff, 0xfe];
        let p = decode_mono(&bytes, 100).unwrap();
        assert_eq!(p.seq, 258);
        let mut out = [0i16; 2];
        p.samples.copy(0, &mut out);
        assert_eq!(out, [0x1234, -2]);
        let mut one = [0i16; 1];
        p.samples.copy(1, &mut one);
        assert_eq!(one, [-2]);
    }

    #[test]
    fn refuses_long_and_broken_datagrams() {
        assert_eq!(
            decode_mono(&[0; 10], 8),
            Err(Malformed::TooLong { len: 10, max: 8 })
        );
        assert!(matches!(
            decode_mono(&[0, 0, 0, 1, 5], 100),
            Err(Malformed::Decode(MonoDecodeError::OddPayload(1)))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = decode_mono(&bytes, 40) {
                let mut out = vec![0; p.samples.len()];
                p.samples.copy(0, &mut out);
                prop_assert_eq!(4 + 2 * out.len(), bytes.len());
            }
        }
    }
}
