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
//!
//! An RTP packet of a RED type (RFC 2198) is decoded here too: its primary
//! block becomes the packet's samples, its redundant L16 blocks of the same
//! format ride along as [`Redundant`] copies (each with the sequence number
//! distance and timestamp of the packet it copies), still borrowed from the
//! receive buffer, for the source to restore what was lost.
//!
//! Opus payloads are not decoded here but on a thread of their own
//! ([`crate::opus_source`]), which hands back native samples, and a frame
//! its FEC recovered as a redundant copy of the packet before.

use std::net::SocketAddr;

use proto::red::{self, RedDecodeError, RedPayload, MAX_REDUNDANT};
use proto::rtp::{RtpDecodeError, RtpPacket};
use proto::rtp_map::{RtpFormat, RtpMap};
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
    /// Copies of earlier packets' audio (RFC 2198), in the order sent.
    pub redundant: Redundant<'a>,
}

/// One redundant copy of an earlier packet's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedundantCopy<'a> {
    /// How many packets before the carrying one it is (1: the one before):
    /// its sequence number is the carrier's minus this.
    pub back: u32,
    /// Its timestamp (the carrier's minus the block's offset).
    pub timestamp: u32,
    /// Its L16 samples, big-endian, interleaved when stereo.
    pub payload: &'a [u8],
}

/// The redundant copies a packet carries (none for most formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Redundant<'a> {
    copies: [RedundantCopy<'a>; MAX_REDUNDANT],
    count: usize,
}

impl<'a> Redundant<'a> {
    /// No copies.
    pub const NONE: Redundant<'static> = Redundant {
        copies: [RedundantCopy {
            back: 0,
            timestamp: 0,
            payload: &[],
        }; MAX_REDUNDANT],
        count: 0,
    };

    /// The copies, oldest first as senders order them.
    pub fn copies(&self) -> &[RedundantCopy<'a>] {
        &self.copies[..self.count]
    }

    /// Just `copy`.
    pub fn single(copy: RedundantCopy<'a>) -> Self {
        let mut out = Redundant::NONE;
        out.push(copy);
        out
    }

    /// Keeps `copy` (the first [`MAX_REDUNDANT`] only).
    fn push(&mut self, copy: RedundantCopy<'a>) {
        if let Some(slot) = self.copies.get_mut(self.count) {
            *slot = copy;
            self.count += 1;
        }
    }
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
            redundant: Redundant::NONE,
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
    /// An RTP packet of a RED type whose payload is not valid RFC 2198.
    Red(RedDecodeError),
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
    /// An Opus payload that does not decode, or lasts more than the node
    /// takes.
    Opus {
        /// The stream.
        ssrc: u32,
    },
    /// An Opus packet dropped because the decoding thread is behind.
    OpusBehind,
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
            Malformed::Red(e) => write!(f, "{e}"),
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
            Malformed::Opus { .. } => f.write_str(
                "Opus payload that does not decode (or lasts more than 20 ms, or less than 10 ms \
                 on a node not at 48 kHz)",
            ),
            Malformed::OpusBehind => {
                f.write_str("Opus packet dropped: the decoding thread is behind")
            }
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
    let (pt, payload, red) = match map.red(packet.payload_type) {
        Some(_) => {
            let red = RedPayload::decode(packet.payload).map_err(Malformed::Red)?;
            (red.primary_type, red.primary, Some(red))
        }
        None => (packet.payload_type, packet.payload, None),
    };
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
    if payload.is_empty() || payload.len() % frame_bytes != 0 {
        return Err(Malformed::BadPayload {
            len: payload.len(),
            channels,
        });
    }
    let redundant = red.map_or(Redundant::NONE, |red| {
        redundant_copies(&red, map, format, packet.timestamp)
    });
    Ok(SourcePacket {
        seq: u32::from(packet.seq),
        samples: Samples::BigEndianPayload(payload),
        channels,
        rtp: Some(RtpInfo {
            ssrc: packet.ssrc,
            timestamp: packet.timestamp,
            listener,
        }),
        redundant,
    })
}

/// The redundant blocks of `red` that restore a packet of the stream: L16
/// of the primary's format, whole frames, at a whole number of packets
/// back (see [`red::packets_back`]). Others (another encoding, a block of
/// odd size) are of no use to a receiver of this format and are skipped.
fn redundant_copies<'a>(
    red: &RedPayload<'a>,
    map: &RtpMap,
    format: RtpFormat,
    timestamp: u32,
) -> Redundant<'a> {
    let frame_bytes = 2 * usize::from(format.channels);
    let mut out = Redundant::NONE;
    for block in red.redundant() {
        if map.get(block.payload_type) != Some(format)
            || block.data.is_empty()
            || block.data.len() % frame_bytes != 0
        {
            continue;
        }
        let frames = block.data.len() / frame_bytes;
        let Some(back) = red::packets_back(block.timestamp_offset, frames) else {
            continue;
        };
        out.push(RedundantCopy {
            back,
            timestamp: timestamp.wrapping_sub(u32::from(block.timestamp_offset)),
            payload: block.data,
        });
    }
    out
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

    fn red_packet(blocks: &[red::RedBlock<'_>], primary_type: u8, primary: &[u8]) -> Vec<u8> {
        let header = proto::rtp::RtpHeader {
            marker: false,
            payload_type: proto::rtp_map::PT_RED_DEFAULT,
            seq: 10,
            timestamp: 5000,
            ssrc: 42,
        };
        let mut buf = vec![0u8; 1500];
        let len = red::encode_red(&header, blocks, primary_type, primary, &mut buf).unwrap();
        buf.truncate(len);
        buf
    }

    #[test]
    fn red_primary_is_the_packet_and_copies_ride_along() {
        let map = RtpMap::defaults_for(44_100);
        let (older, newer, primary) = ([0u8, 1, 0, 2], [0u8, 3, 0, 4], [0u8, 5, 0, 6]);
        let block = |offset, data| red::RedBlock {
            payload_type: 11,
            timestamp_offset: offset,
            data,
        };
        let bytes = red_packet(&[block(4, &older), block(2, &newer)], 11, &primary);
        let p = decode_rtp(&bytes, &map, 44_100, 2000, 0).unwrap();
        assert_eq!((p.seq, p.channels), (10, 1));
        assert_eq!(p.samples, Samples::BigEndianPayload(&primary));
        assert_eq!(
            p.redundant.copies(),
            &[
                RedundantCopy {
                    back: 2,
                    timestamp: 4996,
                    payload: &older
                },
                RedundantCopy {
                    back: 1,
                    timestamp: 4998,
                    payload: &newer
                }
            ]
        );
        // Blocks of another format or of no whole packet's distance are
        // skipped; the primary still plays.
        let other = red::RedBlock {
            payload_type: 10,
            ..block(2, &newer)
        };
        let odd = block(2, &newer[..3]);
        let zero = block(0, &newer);
        let bytes = red_packet(&[other, odd, zero], 11, &primary);
        let p = decode_rtp(&bytes, &map, 44_100, 2000, 0).unwrap();
        assert!(p.redundant.copies().is_empty());
        assert_eq!(p.samples.len(), 2);
    }

    #[test]
    fn broken_red_is_malformed() {
        let map = RtpMap::defaults_for(44_100);
        let mut bytes = red_packet(&[], 11, &[0, 1]);
        // A redundant header announcing 8 bytes that are not there.
        bytes.splice(12..12, [0x8b, 0x00, 0x08, 0x08]);
        assert_eq!(
            decode_rtp(&bytes, &map, 44_100, 2000, 0),
            Err(Malformed::Red(RedDecodeError::BlocksTooLong {
                needed: 8,
                available: 2
            }))
        );
        // A primary of an unknown type is said as that type.
        let bytes = red_packet(&[], 99, &[0, 1]);
        assert!(matches!(
            decode_rtp(&bytes, &map, 44_100, 2000, 0),
            Err(Malformed::UnknownPayloadType {
                payload_type: 99,
                ..
            })
        ));
        // RED whose primary is an empty L16 block.
        let mut empty = red_packet(&[], 11, &[0, 1]);
        empty.truncate(13);
        assert!(matches!(
            decode_rtp(&empty, &map, 44_100, 2000, 0),
            Err(Malformed::BadPayload { len: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_red_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = vec![0x80, proto::rtp_map::PT_RED_DEFAULT, 0, 1, 0, 0, 1, 0, 0, 0, 0, 7];
            bytes.extend_from_slice(&payload);
            let map = RtpMap::defaults_for(44_100);
            if let Ok(p) = decode_rtp(&bytes, &map, 44_100, 2000, 0) {
                let mut out = vec![0; p.samples.len()];
                p.samples.copy(0, &mut out);
                for copy in p.redundant.copies() {
                    prop_assert!((1..=MAX_REDUNDANT as u32).contains(&copy.back));
                    prop_assert!(!copy.payload.is_empty() && copy.payload.len() % 2 == 0);
                }
            }
        }

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
