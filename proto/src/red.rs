//! RFC 2198 redundant audio: one RTP payload carrying the current packet's
//! audio (the primary block) and copies of earlier packets' audio
//! (redundant blocks), so a receiver restores a lost packet exactly from
//! the packet after it.
//!
//! ```text
//! redundant block header (4 bytes)          primary block header (1 byte)
//! +-+-------------+----------------------------+------------------+  +-+-------------+
//! |1| block PT    |  timestamp offset (14 bits)| block length (10)|  |0| block PT    |
//! +-+-------------+----------------------------+------------------+  +-+-------------+
//! ```
//!
//! The headers come first, one per block (redundant ones, then the primary's
//! one byte), then the blocks' data in the same order. A redundant block's
//! audio started `timestamp offset` ticks before the packet's timestamp; the
//! primary block runs to the end of the payload.
//!
//! The decoder borrows the payload and is total: any byte string yields a
//! packet or a typed error, never a panic, and it keeps at most
//! [`MAX_REDUNDANT`] redundant blocks without allocating.

use crate::rtp::{RtpHeader, HEADER_LEN};
use crate::EncodeError;

/// Most redundant blocks a packet may carry (a receiver refuses more; our
/// streamer sends one or two).
pub const MAX_REDUNDANT: usize = 4;
/// Largest timestamp offset a redundant block header holds (14 bits).
pub const MAX_OFFSET: u32 = (1 << 14) - 1;
/// Largest redundant block in bytes (10-bit length).
pub const MAX_BLOCK_LEN: usize = (1 << 10) - 1;
/// Bytes of a redundant block's header.
pub const REDUNDANT_HEADER_LEN: usize = 4;

/// Why an RTP payload is not a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedDecodeError {
    /// The block headers run past the end of the payload.
    #[error("RED payload of {0} bytes ends inside its block headers")]
    Truncated(usize),
    /// The redundant blocks' lengths add up to more than the data present.
    #[error("RED block lengths add up to {needed} bytes, {available} present")]
    BlocksTooLong {
        /// Bytes the headers announce.
        needed: usize,
        /// Bytes after the headers.
        available: usize,
    },
    /// More redundant blocks than [`MAX_REDUNDANT`].
    #[error("RED payload with more than {MAX_REDUNDANT} redundant blocks")]
    TooManyBlocks,
}

/// One redundant block, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedBlock<'a> {
    /// The payload type of its audio.
    pub payload_type: u8,
    /// How many ticks before the packet's timestamp its audio started.
    pub timestamp_offset: u16,
    /// Its audio, in the format of `payload_type`.
    pub data: &'a [u8],
}

/// A decoded RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedPayload<'a> {
    /// The payload type of the primary block.
    pub primary_type: u8,
    /// The primary block's audio (the packet's own, at its timestamp).
    pub primary: &'a [u8],
    redundant: [RedBlock<'a>; MAX_REDUNDANT],
    count: usize,
}

impl<'a> RedPayload<'a> {
    /// Decodes the payload of an RTP packet of a RED payload type.
    pub fn decode(payload: &'a [u8]) -> Result<Self, RedDecodeError> {
        let mut redundant = [RedBlock::default(); MAX_REDUNDANT];
        let mut lengths = [0usize; MAX_REDUNDANT];
        let mut count = 0;
        let mut at = 0;
        loop {
            let &first = payload
                .get(at)
                .ok_or(RedDecodeError::Truncated(payload.len()))?;
            if first & 0x80 == 0 {
                at += 1;
                break;
            }
            let Some(h) = payload.get(at..at + REDUNDANT_HEADER_LEN) else {
                return Err(RedDecodeError::Truncated(payload.len()));
            };
            if count == MAX_REDUNDANT {
                return Err(RedDecodeError::TooManyBlocks);
            }
            let word = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            redundant[count].payload_type = (word >> 24) as u8 & 0x7f;
            redundant[count].timestamp_offset = ((word >> 10) & MAX_OFFSET) as u16;
            lengths[count] = (word & MAX_BLOCK_LEN as u32) as usize;
            count += 1;
            at += REDUNDANT_HEADER_LEN;
        }
        let primary_type = payload[at - 1] & 0x7f;
        let needed: usize = lengths[..count].iter().sum();
        let available = payload.len() - at;
        if needed > available {
            return Err(RedDecodeError::BlocksTooLong { needed, available });
        }
        for (block, &len) in redundant.iter_mut().zip(&lengths).take(count) {
            block.data = &payload[at..at + len];
            at += len;
        }
        Ok(Self {
            primary_type,
            primary: &payload[at..],
            redundant,
            count,
        })
    }

    /// The redundant blocks, in the order of the payload (the oldest first,
    /// as senders put them).
    pub fn redundant(&self) -> &[RedBlock<'a>] {
        &self.redundant[..self.count]
    }
}

/// Writes an RTP packet with a RED payload into `buf`: the `redundant`
/// blocks (oldest first), then the primary block of type `primary_type`
/// with `primary`'s bytes; returns its length. `header.payload_type` is
/// the RED type.
pub fn encode_red(
    header: &RtpHeader,
    redundant: &[RedBlock<'_>],
    primary_type: u8,
    primary: &[u8],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    if primary.is_empty() {
        return Err(EncodeError::NoSamples);
    }
    let needed = HEADER_LEN
        + redundant
            .iter()
            .map(|b| REDUNDANT_HEADER_LEN + b.data.len())
            .sum::<usize>()
        + 1
        + primary.len();
    if let Some(b) = redundant
        .iter()
        .find(|b| b.data.len() > MAX_BLOCK_LEN || u32::from(b.timestamp_offset) > MAX_OFFSET)
    {
        return Err(EncodeError::RedBlockTooLarge {
            len: b.data.len(),
            offset: b.timestamp_offset,
        });
    }
    if buf.len() < needed {
        return Err(EncodeError::BufferTooSmall {
            needed,
            available: buf.len(),
        });
    }
    header.write(buf)?;
    let mut at = HEADER_LEN;
    for b in redundant {
        let word = 0x8000_0000
            | (u32::from(b.payload_type & 0x7f) << 24)
            | (u32::from(b.timestamp_offset) << 10)
            | b.data.len() as u32;
        buf[at..at + REDUNDANT_HEADER_LEN].copy_from_slice(&word.to_be_bytes());
        at += REDUNDANT_HEADER_LEN;
    }
    buf[at] = primary_type & 0x7f;
    at += 1;
    for b in redundant {
        buf[at..at + b.data.len()].copy_from_slice(b.data);
        at += b.data.len();
    }
    buf[at..at + primary.len()].copy_from_slice(primary);
    Ok(at + primary.len())
}

/// The bytes a RED payload adds to `redundant` blocks of `block_bytes`
/// each: their headers and data, and the primary's one-byte header.
pub fn overhead(redundant: usize, block_bytes: usize) -> usize {
    redundant * (REDUNDANT_HEADER_LEN + block_bytes) + 1
}

/// Which earlier packet a redundant block copies, counted back from the
/// packet that carries it (1: the one before), for a stream of near-equal
/// packets: the block's offset in units of its own length, to the nearest
/// whole packet. `None` when that is not 1..=[`MAX_REDUNDANT`] packets back
/// or the block is empty.
pub fn packets_back(timestamp_offset: u16, block_frames: usize) -> Option<u32> {
    if block_frames == 0 {
        return None;
    }
    let k = (usize::from(timestamp_offset) + block_frames / 2) / block_frames;
    (1..=MAX_REDUNDANT).contains(&k).then_some(k as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;
    use proptest::prelude::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: 100,
            seq: 7,
            timestamp: 1000,
            ssrc: 0x0102_0304,
        }
    }

    #[test]
    fn encodes_the_rfc_layout_byte_for_byte() {
        // Two redundant blocks of PT 11 (offsets 4 and 2, 4 and 2 bytes),
        // primary of PT 11 with 2 bytes.
        let older = [1u8, 2, 3, 4];
        let newer = [5u8, 6];
        let blocks = [
            RedBlock {
                payload_type: 11,
                timestamp_offset: 4,
                data: &older,
            },
            RedBlock {
                payload_type: 11,
                timestamp_offset: 2,
                data: &newer,
            },
        ];
        let mut buf = [0u8; 64];
        let len = encode_red(&header(), &blocks, 11, &[7, 8], &mut buf).unwrap();
        assert_eq!(len, 12 + 4 + 4 + 1 + 4 + 2 + 2);
        assert_eq!(
            &buf[12..len],
            &[
                // F=1 PT=11, offset 4 (<< 10), length 4.
                0x8b, 0x00, 0x10, 0x04, //
                // F=1 PT=11, offset 2, length 2.
                0x8b, 0x00, 0x08, 0x02, //
                // F=0 PT=11.
                0x0b, //
                1, 2, 3, 4, 5, 6, 7, 8
            ]
        );
        let packet = RtpPacket::decode(&buf[..len]).unwrap();
        assert_eq!(packet.payload_type, 100);
        let red = RedPayload::decode(packet.payload).unwrap();
        assert_eq!(red.primary_type, 11);
        assert_eq!(red.primary, &[7, 8]);
        assert_eq!(red.redundant(), &blocks);
    }

    #[test]
    fn a_payload_of_only_a_primary_block() {
        let red = RedPayload::decode(&[0x0b, 9, 9]).unwrap();
        assert_eq!((red.primary_type, red.primary), (11, &[9u8, 9][..]));
        assert!(red.redundant().is_empty());
        // An empty primary is still a valid RED payload (the receiver
        // decides what an empty L16 block is).
        assert_eq!(RedPayload::decode(&[0x0b]).unwrap().primary, &[] as &[u8]);
    }

    #[test]
    fn the_largest_fields_survive() {
        let data = [0xaau8; MAX_BLOCK_LEN];
        let block = RedBlock {
            payload_type: 127,
            timestamp_offset: MAX_OFFSET as u16,
            data: &data,
        };
        let mut buf = vec![0u8; 12 + 5 + MAX_BLOCK_LEN + 1];
        let len = encode_red(&header(), &[block], 127, &[1], &mut buf).unwrap();
        let red = RedPayload::decode(&buf[12..len]).unwrap();
        assert_eq!(red.redundant(), &[block]);
        assert_eq!(red.primary, &[1]);
    }

    #[test]
    fn refuses_malformed_headers() {
        // Nothing at all; a redundant header cut short; no primary header.
        assert_eq!(RedPayload::decode(&[]), Err(RedDecodeError::Truncated(0)));
        assert_eq!(
            RedPayload::decode(&[0x8b, 0x00]),
            Err(RedDecodeError::Truncated(2))
        );
        assert_eq!(
            RedPayload::decode(&[0x8b, 0x00, 0x08, 0x00]),
            Err(RedDecodeError::Truncated(4))
        );
        // A block of 2 bytes announced, 1 present.
        assert_eq!(
            RedPayload::decode(&[0x8b, 0x00, 0x08, 0x02, 0x0b, 1]),
            Err(RedDecodeError::BlocksTooLong {
                needed: 2,
                available: 1
            })
        );
        // Five redundant headers.
        let mut many = [0x8b, 0, 0, 0].repeat(5);
        many.push(0x0b);
        assert_eq!(
            RedPayload::decode(&many),
            Err(RedDecodeError::TooManyBlocks)
        );
    }

    #[test]
    fn encoder_checks_its_buffer_and_primary() {
        let mut small = [0u8; 14];
        assert_eq!(
            encode_red(&header(), &[], 11, &[1, 2], &mut small),
            Err(EncodeError::BufferTooSmall {
                needed: 15,
                available: 14
            })
        );
        assert_eq!(
            encode_red(&header(), &[], 11, &[], &mut [0u8; 64]),
            Err(EncodeError::NoSamples)
        );
        let big = [0u8; MAX_BLOCK_LEN + 1];
        let block = RedBlock {
            payload_type: 11,
            timestamp_offset: 1,
            data: &big,
        };
        assert_eq!(
            encode_red(&header(), &[block], 11, &[1, 2], &mut [0u8; 2048]),
            Err(EncodeError::RedBlockTooLarge {
                len: MAX_BLOCK_LEN + 1,
                offset: 1
            })
        );
        let far = RedBlock {
            timestamp_offset: MAX_OFFSET as u16 + 1,
            data: &big[..2],
            ..block
        };
        assert!(matches!(
            encode_red(&header(), &[far], 11, &[1, 2], &mut [0u8; 64]),
            Err(EncodeError::RedBlockTooLarge { .. })
        ));
        assert_eq!(overhead(2, 882), 2 * 886 + 1);
    }

    #[test]
    fn packets_back_rounds_offsets_of_near_equal_packets() {
        // Packets of 221 and 220 frames: one back is 220 or 221 ticks, two
        // back 441.
        assert_eq!(packets_back(221, 221), Some(1));
        assert_eq!(packets_back(220, 221), Some(1));
        assert_eq!(packets_back(441, 221), Some(2));
        assert_eq!(packets_back(441, 220), Some(2));
        assert_eq!(packets_back(0, 441), None);
        assert_eq!(packets_back(441, 0), None);
        assert_eq!(packets_back(5 * 100, 100), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(red) = RedPayload::decode(&bytes) {
                let used: usize = red
                    .redundant()
                    .iter()
                    .map(|b| REDUNDANT_HEADER_LEN + b.data.len())
                    .sum::<usize>()
                    + 1
                    + red.primary.len();
                prop_assert_eq!(used, bytes.len());
            }
        }

        #[test]
        fn what_is_encoded_decodes(
            offsets in proptest::collection::vec(0u16..=MAX_OFFSET as u16, 0..=MAX_REDUNDANT),
            lens in proptest::collection::vec(0usize..40, MAX_REDUNDANT),
            primary in proptest::collection::vec(any::<u8>(), 1..40),
        ) {
            let datas: Vec<Vec<u8>> = lens.iter().map(|&n| (0..n as u8).collect()).collect();
            let blocks: Vec<RedBlock<'_>> = offsets
                .iter()
                .zip(&datas)
                .map(|(&timestamp_offset, data)| RedBlock {
                    payload_type: 97,
                    timestamp_offset,
                    data,
                })
                .collect();
            let mut buf = vec![0u8; 12 + 5 * MAX_REDUNDANT + 200];
            let len = encode_red(&header(), &blocks, 97, &primary, &mut buf).unwrap();
            let red = RedPayload::decode(&buf[12..len]).unwrap();
            prop_assert_eq!(red.redundant(), &blocks[..]);
            prop_assert_eq!(red.primary, &primary[..]);
        }
    }
}
