//! `--rtp --redundancy N`: RFC 2198 redundant audio. Each RTP packet
//! carries its own L16 audio as the primary block and the previous one or
//! two packets' audio as redundant blocks, so a receiver restores any lost
//! packet exactly from the packet after it (or, with 2, from either of the
//! next two).
//!
//! The packet's payload type is the RED type (`--red-pt`, 100 by default,
//! `red/RATE/CHANNELS`); the blocks keep the L16 type the stream has
//! without redundancy. The history is a few buffers made once and reused.

use proto::red::{encode_red, RedBlock, MAX_BLOCK_LEN, MAX_OFFSET, MAX_REDUNDANT};
use proto::rtp::{RtpHeader, MAX_L16_PAYLOAD};
use proto::EncodeError;

/// Most redundant blocks `--redundancy` may ask for.
pub const MAX_DEPTH: usize = 2;

/// One earlier packet's audio.
#[derive(Debug, Clone)]
struct Past {
    timestamp: u32,
    /// Its L16 payload (empty until a packet was sent).
    bytes: Vec<u8>,
}

/// Builds RED packets from L16 audio, remembering the last packets sent.
#[derive(Debug, Clone)]
pub struct RedEncoder {
    red_type: u8,
    block_type: u8,
    /// The last `depth` packets, oldest first.
    history: Vec<Past>,
    /// The current packet's L16 bytes (becomes the newest history entry).
    primary: Vec<u8>,
}

impl RedEncoder {
    /// An encoder of `depth` (1..=[`MAX_DEPTH`]) redundant blocks, sending
    /// payload type `red_type` with blocks of type `block_type`.
    pub fn new(depth: usize, red_type: u8, block_type: u8) -> Self {
        let depth = depth.clamp(1, MAX_DEPTH);
        let past = Past {
            timestamp: 0,
            bytes: Vec::with_capacity(MAX_L16_PAYLOAD),
        };
        Self {
            red_type,
            block_type,
            history: vec![past; depth],
            primary: Vec::with_capacity(MAX_L16_PAYLOAD),
        }
    }

    /// The RED payload type.
    pub fn red_type(&self) -> u8 {
        self.red_type
    }

    /// Most frames a packet of `channels` may hold so that it and `depth`
    /// copies of packets like it fit one unfragmented datagram, and each
    /// copy fits a RED block (at most 1023 bytes).
    pub fn max_frames(channels: u16, depth: usize) -> usize {
        let frame = 2 * usize::from(channels.max(1));
        let room = MAX_L16_PAYLOAD - (4 * depth + 1);
        (room / ((depth + 1) * frame)).min(MAX_BLOCK_LEN / frame)
    }

    /// Writes the RTP packet of `samples` (interleaved, big-endian on the
    /// wire) with `header` (its payload type replaced by the RED type)
    /// into `buf`, with copies of the packets before it; returns its length.
    pub fn encode(
        &mut self,
        header: &RtpHeader,
        samples: &[i16],
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        self.primary.clear();
        self.primary
            .extend(samples.iter().flat_map(|s| s.to_be_bytes()));
        let mut blocks = [RedBlock::default(); MAX_REDUNDANT];
        let mut count = 0;
        for past in &self.history {
            let offset = header.timestamp.wrapping_sub(past.timestamp);
            // A copy too far back for the 14-bit offset (after a pause) is
            // of no use to anyone: left out.
            if past.bytes.is_empty() || offset == 0 || offset > MAX_OFFSET {
                continue;
            }
            blocks[count] = RedBlock {
                payload_type: self.block_type,
                timestamp_offset: offset as u16,
                data: &past.bytes,
            };
            count += 1;
        }
        let header = RtpHeader {
            payload_type: self.red_type,
            ..*header
        };
        let len = encode_red(
            &header,
            &blocks[..count],
            self.block_type,
            &self.primary,
            buf,
        )?;
        // The oldest entry's buffer becomes the newest: no copy, no
        // allocation.
        self.history.rotate_left(1);
        let newest = self.history.last_mut().expect("depth is at least 1");
        newest.timestamp = header.timestamp;
        std::mem::swap(&mut newest.bytes, &mut self.primary);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::red::RedPayload;
    use proto::rtp::RtpPacket;

    fn header(seq: u16, timestamp: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: 11,
            seq,
            timestamp,
            ssrc: 9,
        }
    }

    #[test]
    fn each_packet_carries_the_ones_before_it() {
        let mut enc = RedEncoder::new(2, 100, 11);
        let mut buf = [0u8; 1500];
        let mut decoded = Vec::new();
        for k in 0..4u16 {
            let samples = [k as i16 * 10, k as i16 * 10 + 1];
            let len = enc
                .encode(&header(k, 1000 + 2 * u32::from(k)), &samples, &mut buf)
                .unwrap();
            let p = RtpPacket::decode(&buf[..len]).unwrap();
            assert_eq!(p.payload_type, 100);
            let red = RedPayload::decode(p.payload).unwrap();
            assert_eq!(red.primary_type, 11);
            let blocks: Vec<(u16, Vec<u8>)> = red
                .redundant()
                .iter()
                .map(|b| (b.timestamp_offset, b.data.to_vec()))
                .collect();
            decoded.push(blocks);
        }
        assert!(decoded[0].is_empty());
        assert_eq!(decoded[1], vec![(2, vec![0, 0, 0, 1])]);
        assert_eq!(
            decoded[2],
            vec![(4, vec![0, 0, 0, 1]), (2, vec![0, 10, 0, 11])]
        );
        assert_eq!(
            decoded[3],
            vec![(4, vec![0, 10, 0, 11]), (2, vec![0, 20, 0, 21])]
        );
    }

    #[test]
    fn copies_older_than_the_offset_field_are_left_out() {
        let mut enc = RedEncoder::new(1, 100, 11);
        let mut buf = [0u8; 1500];
        enc.encode(&header(0, 0), &[1], &mut buf).unwrap();
        let len = enc
            .encode(&header(1, MAX_OFFSET + 1), &[2], &mut buf)
            .unwrap();
        let red = RedPayload::decode(&buf[12..len]).unwrap();
        assert!(red.redundant().is_empty());
    }

    #[test]
    fn packets_with_their_copies_fit_one_datagram() {
        for (channels, depth) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
            let frames = RedEncoder::max_frames(channels, depth);
            let block = 2 * usize::from(channels) * frames;
            assert!(block <= MAX_BLOCK_LEN);
            assert!(proto::red::overhead(depth, block) + block <= MAX_L16_PAYLOAD);
        }
        assert_eq!(RedEncoder::max_frames(1, 1), 363);
        assert_eq!(RedEncoder::max_frames(2, 2), 120);
    }
}
