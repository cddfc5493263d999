//! Which sequence number a datagram carries, the way the ground truth
//! lists it: the original mono datagram's 32-bit number, or an RTP
//! packet's 16-bit one extended to 32 bits.
//!
//! The two formats cannot be told apart one datagram at a time: an RTP
//! packet with an L16 payload (a 12-byte header and whole samples) is also
//! a valid mono datagram, whose "number" would be its first four header
//! bytes. So each client's format is decided once, by its first datagram
//! that has a number at all: a plausible RTP or RTCP packet (version 2,
//! the node's own tests: [`RtpPacket::decode`] and [`is_rtcp`]) makes it
//! an RTP client, any other valid mono datagram a mono client. A mono
//! stream starts at 0 (or `--start-seq`), so its first byte is 0 and it
//! stays mono for good, even when its numbers later pass 2^31 and their
//! first byte looks like RTP's version 2. Only a mono stream whose first
//! datagram is numbered 2^31 … 3·2^30 − 1 is taken for RTP.
//!
//! RTP numbers are extended as the node extends them (RFC 3550 A.1): the
//! client's first RTP packet keeps its number as it is on the wire, each
//! later one becomes the 32-bit value nearest the highest so far whose low
//! 16 bits are its own. So 65 535 is followed by 65 536, not 0, and the
//! release window's serial arithmetic on 32 bits sees no wrap where the
//! wire wraps; the wire number is the listed one modulo 65 536. Numbers
//! are given at arrival, in the sender's order, so a datagram and its
//! copies share one.

use proto::rtp::{is_rtcp, RtpPacket};
use proto::MonoDatagram;

/// The sequence number of `bytes` read as a mono datagram, if it is a
/// valid one (the same test the node applies before tracking a packet).
pub(crate) fn mono_seq(bytes: &[u8]) -> Option<u32> {
    MonoDatagram::decode(bytes).ok().map(|d| d.seq)
}

/// The 16-bit sequence number of `bytes` read as an RTP packet, if it is
/// one the node would decode and not RTCP (which carries no number).
pub(crate) fn rtp_seq(bytes: &[u8]) -> Option<u16> {
    if is_rtcp(bytes) {
        return None;
    }
    RtpPacket::decode(bytes).ok().map(|p| p.seq)
}

/// Extends one stream's 16-bit RTP sequence numbers to 32 bits, with the
/// node's arithmetic (`audionode/src/nodecore/source.rs`), so both give a
/// packet the same number.
#[derive(Debug, Clone, Default)]
struct RtpExtender {
    /// The highest extended number so far.
    highest: Option<u32>,
}

impl RtpExtender {
    fn extend(&mut self, seq: u16) -> u32 {
        let Some(highest) = self.highest else {
            self.highest = Some(u32::from(seq));
            return u32::from(seq);
        };
        let delta = seq.wrapping_sub(highest as u16) as i16;
        // Sign-extended: a number just before the highest lands just below
        // it, wrapping at 2^32 like the node's (a packet from before the
        // first one's cycle is then "older than the first" in the window).
        let extended = highest.wrapping_add(delta as i32 as u32);
        if delta > 0 {
            self.highest = Some(extended);
        }
        extended
    }
}

/// What a client sends, once known.
#[derive(Debug, Clone, Default)]
enum Format {
    /// No numbered datagram yet.
    #[default]
    Undecided,
    /// The original mono datagrams.
    Mono,
    /// RTP (and RTCP).
    Rtp(RtpExtender),
}

/// Numbers one client's datagrams, in arrival order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Numbering {
    format: Format,
}

impl Numbering {
    /// A client that has sent nothing yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The number the ground truth lists for `bytes`, the client's next
    /// datagram, if it has one; the first numbered datagram decides the
    /// client's format.
    pub(crate) fn number(&mut self, bytes: &[u8]) -> Option<u32> {
        if matches!(self.format, Format::Undecided) {
            if is_rtcp(bytes) || rtp_seq(bytes).is_some() {
                self.format = Format::Rtp(RtpExtender::default());
            } else if mono_seq(bytes).is_some() {
                self.format = Format::Mono;
            }
        }
        match &mut self.format {
            Format::Undecided => None,
            Format::Mono => mono_seq(bytes),
            Format::Rtp(extender) => rtp_seq(bytes).map(|seq| extender.extend(seq)),
        }
    }

    /// Whether the client was found to send RTP.
    pub(crate) fn is_rtp(&self) -> bool {
        matches!(self.format, Format::Rtp(_))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proto::red::{encode_red, RedBlock};
    use proto::rtp::{encode_l16, RtpHeader};

    /// An RTP packet with an L16 payload of `samples` samples (even length:
    /// also a valid mono datagram).
    pub(crate) fn rtp(seq: u16, samples: usize) -> Vec<u8> {
        let header = RtpHeader {
            marker: false,
            payload_type: 11,
            seq,
            timestamp: 1000 + 220 * u32::from(seq),
            ssrc: 0x1234_5678,
        };
        let mut buf = vec![0; 12 + 2 * samples];
        let len = encode_l16(&header, &vec![7; samples], &mut buf).unwrap();
        buf.truncate(len);
        buf
    }

    /// An RFC 2198 packet with one copy of 2 samples and 2 samples of its
    /// own: 12 + 5 + 8 bytes, odd, so not a valid mono datagram.
    fn red(seq: u16) -> Vec<u8> {
        let header = RtpHeader {
            marker: false,
            payload_type: 100,
            seq,
            timestamp: 220 * u32::from(seq),
            ssrc: 9,
        };
        let copy = RedBlock {
            payload_type: 11,
            timestamp_offset: 220,
            data: &[0, 1, 0, 2],
        };
        let mut buf = [0; 64];
        let len = encode_red(&header, &[copy], 11, &[0, 3, 0, 4], &mut buf).unwrap();
        assert_eq!(len % 2, 1);
        buf[..len].to_vec()
    }

    fn mono(seq: u32) -> Vec<u8> {
        let mut b = seq.to_be_bytes().to_vec();
        b.extend_from_slice(&[0; 16]);
        b
    }

    /// An RTCP receiver report (second byte 201) of 8 bytes: a valid mono
    /// datagram too, by its length.
    fn rtcp(pt: u8) -> Vec<u8> {
        vec![0x80, pt, 0, 1, 0, 0, 0, 9]
    }

    fn numbers(packets: &[Vec<u8>]) -> Vec<Option<u32>> {
        let mut n = Numbering::new();
        packets.iter().map(|p| n.number(p)).collect()
    }

    #[test]
    fn rtp_packets_get_their_sequence_number() {
        let mut n = Numbering::new();
        assert_eq!(n.number(&rtp(4660, 220)), Some(4660));
        assert!(n.is_rtp());
        // RED (odd length) and plain L16 of the same stream alike.
        assert_eq!(n.number(&red(4661)), Some(4661));
        assert_eq!(n.number(&rtp(4662, 221)), Some(4662));
        // A client whose first packet is RED is an RTP client too.
        assert_eq!(numbers(&[red(9), red(10)]), vec![Some(9), Some(10)]);
    }

    #[test]
    fn rtcp_has_no_sequence_number() {
        for pt in 200..=204 {
            // First, or amid the RTP packets (RFC 5761 multiplexing).
            assert_eq!(
                numbers(&[rtcp(pt), rtp(5, 2), rtcp(pt)]),
                vec![None, Some(5), None],
                "{pt}"
            );
        }
        // Marker bit and payload type 72–76 would be 200–204: is_rtcp's
        // range (192–223) covers them.
        assert!((200..=204).all(|b| is_rtcp(&rtcp(b))));
        assert_eq!(rtp_seq(&rtcp(201)), None);
    }

    #[test]
    fn wire_wrap_is_extended_past_65535() {
        let seqs = [65_533u16, 65_534, 65_535, 0, 1];
        let got = numbers(&seqs.map(|s| rtp(s, 2)));
        assert_eq!(
            got,
            [65_533, 65_534, 65_535, 65_536, 65_537].map(Some).to_vec()
        );
        // A packet late across the wrap goes back below it, and the
        // extended numbers keep the wire number in their low 16 bits.
        let got = numbers(&[65_535, 1, 0, 65_534, 2].map(|s| rtp(s, 2)));
        assert_eq!(
            got,
            [65_535, 65_537, 65_536, 65_534, 65_538].map(Some).to_vec()
        );
        // Before the first packet's cycle: wraps at 2^32 like the node's.
        assert_eq!(
            numbers(&[0, 65_535].map(|s| rtp(s, 2))),
            vec![Some(0), Some(u32::MAX)]
        );
    }

    #[test]
    fn mono_streams_keep_their_numbers_past_2_pow_31() {
        // From the second datagram on these look like RTP version 2, but
        // the client is mono from its first.
        let seqs = [
            0x7fff_fffe,
            0x7fff_ffff,
            0x8000_0000,
            0x8000_0001,
            0xbfff_ffff,
        ];
        let got = numbers(&seqs.map(mono));
        assert_eq!(got, seqs.map(Some).to_vec());
        let mut n = Numbering::new();
        assert_eq!(n.number(&mono(0)), Some(0));
        assert!(!n.is_rtp());
        // An RTP packet from a mono client is read as mono, like before;
        // one that is no mono datagram has no number.
        assert_eq!(n.number(&rtp(3, 2)), mono_seq(&rtp(3, 2)));
        assert_eq!(n.number(&red(3)), None);
        // Wrap at 2^32, as always.
        assert_eq!(
            numbers(&[u32::MAX, 0].map(mono)),
            vec![Some(u32::MAX), Some(0)]
        );
    }

    #[test]
    fn unnumbered_datagrams_leave_the_format_open() {
        let mut n = Numbering::new();
        assert_eq!(n.number(b"hi"), None);
        assert_eq!(n.number(&[0x80; 5]), None);
        assert!(!n.is_rtp());
        assert_eq!(n.number(&rtp(77, 2)), Some(77));
        assert!(n.is_rtp());
        // Garbage from an RTP client: no number.
        assert_eq!(n.number(&[0; 8]), None);
    }
}
