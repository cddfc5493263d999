//! RTP (RFC 3550) packets carrying L16 audio (RFC 3551 §4.5.11): big-endian
//! signed 16-bit samples, interleaved when stereo, which are exactly the
//! samples of the original UDP formats.
//!
//! Beside the original formats, never instead of them: the node, the
//! streamer and the recorder speak RTP when asked (`--rtp-listen`,
//! `--rtp`, `--rtp-dest`), so ffmpeg, GStreamer, VLC and other nodes can
//! take part. The decoder borrows the received bytes and is total: any
//! byte string yields a packet or a typed error.

use crate::EncodeError;

/// Bytes of the fixed RTP header (no CSRCs, no extension).
pub const HEADER_LEN: usize = 12;

/// RTP version 2, the only one there is.
const VERSION: u8 = 2;

/// Why a datagram is not an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpDecodeError {
    /// Shorter than the header it announces.
    #[error("RTP packet of {0} bytes is shorter than its header")]
    Truncated(usize),
    /// Not RTP version 2.
    #[error("not RTP version 2 (version {0})")]
    Version(u8),
    /// The padding count is larger than the packet.
    #[error("RTP padding of {0} bytes is larger than the payload")]
    BadPadding(u8),
}

/// A decoded RTP packet, borrowing the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit (the first packet after silence, for audio).
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number (wraps at 2^16).
    pub seq: u16,
    /// Sampling instant of the first sample, in the clock rate of the
    /// payload type (for L16: one tick per frame).
    pub timestamp: u32,
    /// Synchronisation source: the stream's identity.
    pub ssrc: u32,
    /// The payload, without header, CSRCs, extension or padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Decodes a packet: the fixed header, CSRCs and a header extension
    /// are skipped, padding is removed.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, RtpDecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(RtpDecodeError::Truncated(bytes.len()));
        }
        let version = bytes[0] >> 6;
        if version != VERSION {
            return Err(RtpDecodeError::Version(version));
        }
        let padding = bytes[0] & 0x20 != 0;
        let extension = bytes[0] & 0x10 != 0;
        let csrcs = usize::from(bytes[0] & 0x0f);
        let mut start = HEADER_LEN + 4 * csrcs;
        if extension {
            if bytes.len() < start + 4 {
                return Err(RtpDecodeError::Truncated(bytes.len()));
            }
            let words = usize::from(u16::from_be_bytes([bytes[start + 2], bytes[start + 3]]));
            start += 4 + 4 * words;
        }
        if bytes.len() < start {
            return Err(RtpDecodeError::Truncated(bytes.len()));
        }
        let mut end = bytes.len();
        if padding {
            let pad = bytes[end - 1];
            if pad == 0 || usize::from(pad) > end - start {
                return Err(RtpDecodeError::BadPadding(pad));
            }
            end -= usize::from(pad);
        }
        Ok(Self {
            marker: bytes[1] & 0x80 != 0,
            payload_type: bytes[1] & 0x7f,
            seq: u16::from_be_bytes([bytes[2], bytes[3]]),
            timestamp: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            ssrc: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            payload: &bytes[start..end],
        })
    }
}

/// The header fields a sender chooses per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp of the first sample.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header into `buf`.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let Some(out) = buf.get_mut(..HEADER_LEN) else {
            return Err(EncodeError::BufferTooSmall {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        };
        out[0] = VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        out[2..4].copy_from_slice(&self.seq.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

/// Writes an RTP packet with an L16 payload of `samples` (interleaved when
/// stereo) into `buf`; returns its length.
pub fn encode_l16(
    header: &RtpHeader,
    samples: &[i16],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    if samples.is_empty() {
        return Err(EncodeError::NoSamples);
    }
    let needed = HEADER_LEN + 2 * samples.len();
    if buf.len() < needed {
        return Err(EncodeError::BufferTooSmall {
            needed,
            available: buf.len(),
        });
    }
    header.write(buf)?;
    for (out, s) in buf[HEADER_LEN..needed].chunks_exact_mut(2).zip(samples) {
        out.copy_from_slice(&s.to_be_bytes());
    }
    Ok(needed)
}

/// Whether a datagram on a port that carries both is RTCP rather than RTP
/// (RFC 5761 §4: RTCP packet types 192..=223 sit where RTP's marker bit
/// and payload types 64..=95 would, which no audio profile uses).
pub fn is_rtcp(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0] >> 6 == VERSION && (192..=223).contains(&bytes[1])
}

/// Largest L16 payload in bytes that keeps an RTP packet within one
/// unfragmented Ethernet datagram.
pub const MAX_L16_PAYLOAD: usize = crate::MAX_UNFRAGMENTED_PAYLOAD - HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let header = RtpHeader {
            marker: true,
            payload_type: 96,
            seq: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
        };
        let mut buf = [0u8; 64];
        let len = encode_l16(&header, &[1, -2, 0x1234], &mut buf).unwrap();
        assert_eq!(len, 18);
        assert_eq!(
            &buf[..len],
            &[
                0x80, 0xe0, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78, 0, 1, 0xff,
                0xfe, 0x12, 0x34
            ]
        );
        let p = RtpPacket::decode(&buf[..len]).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 96);
        assert_eq!(p.seq, 65535);
        assert_eq!(p.timestamp, 0xdead_beef);
        assert_eq!(p.ssrc, 0x1234_5678);
        assert_eq!(p.payload, &[0, 1, 0xff, 0xfe, 0x12, 0x34]);
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let mut b = vec![0xb1, 11, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // extension, one word
        b.extend_from_slice(&[0x12, 0x34]); // payload
        b.extend_from_slice(&[0, 2]); // two bytes of padding
        let p = RtpPacket::decode(&b).unwrap();
        assert_eq!(p.payload_type, 11);
        assert_eq!(p.payload, &[0x12, 0x34]);
    }

    #[test]
    fn refuses_broken_packets() {
        assert_eq!(
            RtpPacket::decode(&[0x80; 5]),
            Err(RtpDecodeError::Truncated(5))
        );
        assert_eq!(
            RtpPacket::decode(&[0x40; 12]),
            Err(RtpDecodeError::Version(1))
        );
        let mut padded = [0u8; 13];
        padded[0] = 0xa0;
        padded[12] = 5;
        assert_eq!(
            RtpPacket::decode(&padded),
            Err(RtpDecodeError::BadPadding(5))
        );
    }

    #[test]
    fn tells_rtcp_from_rtp() {
        assert!(is_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
        assert!(is_rtcp(&[0x81, 202, 0, 6, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 96, 0, 6, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0xe0, 0, 6, 0, 0, 0, 1])); // PT 96 with marker
        assert!(!is_rtcp(&[0x00, 200, 0, 6, 0, 0, 0, 1]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = RtpPacket::decode(&bytes) {
                prop_assert!(p.payload.len() + HEADER_LEN <= bytes.len());
            }
        }
    }
}
