//! RTCP (RFC 3550 §6): sender and receiver reports, source descriptions
//! (SDES CNAME and NAME) and BYE, decoded from compound packets without
//! allocating and written into caller-provided buffers.
//!
//! Receivers answer senders with receiver reports (fraction lost,
//! cumulative lost, highest sequence number, interarrival jitter, and the
//! last sender report's time and the delay since), so a sender sees what
//! the receiver sees. Names travel in SDES: a node shows a source's NAME,
//! or its CNAME when no NAME is sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::EncodeError;

/// Sender report.
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;

/// SDES item: canonical name.
pub const SDES_CNAME: u8 = 1;
/// SDES item: user name.
pub const SDES_NAME: u8 = 2;

/// Bytes of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;

/// Why an RTCP packet does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpDecodeError {
    /// Shorter than a header or than its length field says.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Not version 2.
    #[error("not RTCP version 2")]
    Version,
    /// A sender or receiver report whose length does not fit its count.
    #[error("RTCP report of packet type {0} has a bad length")]
    BadReport(u8),
}

/// One receiver's view of one source (a report block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed; clamped when written).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last sender report (0: none).
    pub last_sr: u32,
    /// Delay since that sender report, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn decode(b: &[u8]) -> Self {
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        // Sign-extend the 24-bit count.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Self {
            ssrc: be32(&b[0..4]),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: be32(&b[8..12]),
            jitter: be32(&b[12..16]),
            last_sr: be32(&b[16..20]),
            delay_since_last_sr: be32(&b[20..24]),
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4] = self.fraction_lost;
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32;
        out[5..8].copy_from_slice(&lost.to_be_bytes()[1..4]);
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// The report blocks of a sender or receiver report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for ReportBlocks<'a> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let (block, rest) = self.bytes.split_at_checked(REPORT_BLOCK_LEN)?;
        self.bytes = rest;
        Some(ReportBlock::decode(block))
    }
}

/// A sender report's sender information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// The sender.
    pub ssrc: u32,
    /// Wall-clock time of the report (NTP format: seconds since 1900 in
    /// the high 32 bits, fraction in the low 32).
    pub ntp: u64,
    /// The RTP timestamp that corresponds to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packets: u32,
    /// Payload octets sent since the start.
    pub octets: u32,
}

impl SenderInfo {
    /// The middle 32 bits of the NTP time, as receivers echo it (`LSR`).
    pub fn ntp_middle(&self) -> u32 {
        (self.ntp >> 16) as u32
    }
}

/// One SDES item of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// The source described.
    pub ssrc: u32,
    /// Item type ([`SDES_CNAME`], [`SDES_NAME`], …).
    pub kind: u8,
    /// The item's text (UTF-8 by the RFC; not checked here).
    pub text: &'a [u8],
}

/// The items of an SDES packet, chunk by chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItems<'a> {
    bytes: &'a [u8],
    chunks_left: u8,
    /// Inside a chunk: its SSRC and the offset of the next item.
    current: Option<(u32, usize)>,
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;

    fn next(&mut self) -> Option<SdesItem<'a>> {
        loop {
            let (ssrc, at) = match self.current {
                Some(c) => c,
                None => {
                    if self.chunks_left == 0 || self.bytes.len() < 4 {
                        return None;
                    }
                    self.chunks_left -= 1;
                    let ssrc = be32(&self.bytes[..4]);
                    (ssrc, 4)
                }
            };
            let kind = *self.bytes.get(at)?;
            if kind == 0 {
                // End of the chunk: skip to the next 32-bit boundary.
                let next = (at + 4) & !3;
                self.bytes = self.bytes.get(next..).unwrap_or_default();
                self.current = None;
                continue;
            }
            let len = usize::from(*self.bytes.get(at + 1)?);
            let text = self.bytes.get(at + 2..at + 2 + len)?;
            self.current = Some((ssrc, at + 2 + len));
            return Some(SdesItem { ssrc, kind, text });
        }
    }
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// A sender report and its report blocks.
    SenderReport(SenderInfo, ReportBlocks<'a>),
    /// A receiver report: the reporter and its blocks.
    ReceiverReport(u32, ReportBlocks<'a>),
    /// Source descriptions.
    Sdes(SdesItems<'a>),
    /// Sources leaving (the SSRCs, 4 bytes each).
    Bye(Ssrcs<'a>),
    /// Any other packet type (APP, feedback, …), skipped.
    Other(u8),
}

/// The SSRCs of a BYE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ssrcs<'a> {
    bytes: &'a [u8],
}

impl Iterator for Ssrcs<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let (ssrc, rest) = self.bytes.split_at_checked(4)?;
        self.bytes = rest;
        Some(be32(ssrc))
    }
}

/// The packets of a compound RTCP datagram, in order; iteration stops at
/// the first packet that does not decode (after yielding the error).
#[derive(Debug, Clone, Copy)]
pub struct Compound<'a> {
    bytes: &'a [u8],
}

impl<'a> Compound<'a> {
    /// The packets of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpDecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.is_empty() {
            return None;
        }
        let result = decode_one(self.bytes);
        match result {
            Ok((packet, len)) => {
                self.bytes = &self.bytes[len..];
                Some(Ok(packet))
            }
            Err(e) => {
                self.bytes = &[];
                Some(Err(e))
            }
        }
    }
}

fn decode_one(bytes: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpDecodeError> {
    if bytes.len() < 4 {
        return Err(RtcpDecodeError::Truncated);
    }
    if bytes[0] >> 6 != 2 {
        return Err(RtcpDecodeError::Version);
    }
    let count = bytes[0] & 0x1f;
    let padding = bytes[0] & 0x20 != 0;
    let pt = bytes[1];
    let len = 4 * (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) + 1);
    let packet = bytes.get(..len).ok_or(RtcpDecodeError::Truncated)?;
    let mut body = &packet[4..];
    if padding {
        let pad = usize::from(*body.last().ok_or(RtcpDecodeError::Truncated)?);
        body = body
            .get(..body.len().saturating_sub(pad))
            .ok_or(RtcpDecodeError::Truncated)?;
    }
    let reports = |offset: usize| -> Result<ReportBlocks<'_>, RtcpDecodeError> {
        let blocks = body
            .get(offset..offset + usize::from(count) * REPORT_BLOCK_LEN)
            .ok_or(RtcpDecodeError::BadReport(pt))?;
        Ok(ReportBlocks { bytes: blocks })
    };
    let decoded = match pt {
        PT_SR => {
            if body.len() < 24 {
                return Err(RtcpDecodeError::BadReport(pt));
            }
            let info = SenderInfo {
                ssrc: be32(&body[0..4]),
                ntp: (u64::from(be32(&body[4..8])) << 32) | u64::from(be32(&body[8..12])),
                rtp_timestamp: be32(&body[12..16]),
                packets: be32(&body[16..20]),
                octets: be32(&body[20..24]),
            };
            RtcpPacket::SenderReport(info, reports(24)?)
        }
        PT_RR => {
            if body.len() < 4 {
                return Err(RtcpDecodeError::BadReport(pt));
            }
            RtcpPacket::ReceiverReport(be32(&body[0..4]), reports(4)?)
        }
        PT_SDES => RtcpPacket::Sdes(SdesItems {
            bytes: body,
            chunks_left: count,
            current: None,
        }),
        PT_BYE => {
            let ssrcs = body
                .get(..4 * usize::from(count))
                .ok_or(RtcpDecodeError::Truncated)?;
            RtcpPacket::Bye(Ssrcs { bytes: ssrcs })
        }
        other => RtcpPacket::Other(other),
    };
    Ok((decoded, len))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Writes RTCP packets one after another into a caller's buffer (a
/// compound packet); nothing allocates.
#[derive(Debug)]
pub struct RtcpWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> RtcpWriter<'a> {
    /// An empty compound packet in `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// The bytes written so far.
    pub fn finish(self) -> usize {
        self.len
    }

    fn reserve(&mut self, bytes: usize) -> Result<&mut [u8], EncodeError> {
        let available = self.buf.len() - self.len;
        if bytes > available {
            return Err(EncodeError::BufferTooSmall {
                needed: self.len + bytes,
                available: self.buf.len(),
            });
        }
        let start = self.len;
        self.len += bytes;
        Ok(&mut self.buf[start..start + bytes])
    }

    fn header(out: &mut [u8], count: u8, pt: u8, total_len: usize) {
        out[0] = 0x80 | (count & 0x1f);
        out[1] = pt;
        out[2..4].copy_from_slice(&((total_len / 4 - 1) as u16).to_be_bytes());
    }

    /// A sender report with up to 31 report blocks.
    pub fn sender_report(
        &mut self,
        info: &SenderInfo,
        blocks: &[ReportBlock],
    ) -> Result<(), EncodeError> {
        let blocks = &blocks[..blocks.len().min(31)];
        let len = 28 + REPORT_BLOCK_LEN * blocks.len();
        let out = self.reserve(len)?;
        Self::header(out, blocks.len() as u8, PT_SR, len);
        out[4..8].copy_from_slice(&info.ssrc.to_be_bytes());
        out[8..16].copy_from_slice(&info.ntp.to_be_bytes());
        out[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
        out[20..24].copy_from_slice(&info.packets.to_be_bytes());
        out[24..28].copy_from_slice(&info.octets.to_be_bytes());
        for (b, out) in blocks
            .iter()
            .zip(out[28..].chunks_exact_mut(REPORT_BLOCK_LEN))
        {
            b.write(out);
        }
        Ok(())
    }

    /// A receiver report from `reporter` with up to 31 report blocks.
    pub fn receiver_report(
        &mut self,
        reporter: u32,
        blocks: &[ReportBlock],
    ) -> Result<(), EncodeError> {
        let blocks = &blocks[..blocks.len().min(31)];
        let len = 8 + REPORT_BLOCK_LEN * blocks.len();
        let out = self.reserve(len)?;
        Self::header(out, blocks.len() as u8, PT_RR, len);
        out[4..8].copy_from_slice(&reporter.to_be_bytes());
        for (b, out) in blocks
            .iter()
            .zip(out[8..].chunks_exact_mut(REPORT_BLOCK_LEN))
        {
            b.write(out);
        }
        Ok(())
    }

    /// A source description of one source with the given items (each text
    /// cut to 255 bytes).
    pub fn sdes(&mut self, ssrc: u32, items: &[(u8, &str)]) -> Result<(), EncodeError> {
        let items_len: usize = items.iter().map(|(_, t)| 2 + t.len().min(255)).sum();
        // The chunk: SSRC, items, a zero byte, padded to 32 bits.
        let chunk = (4 + items_len + 1).div_ceil(4) * 4;
        let len = 4 + chunk;
        let out = self.reserve(len)?;
        out.fill(0);
        Self::header(out, 1, PT_SDES, len);
        out[4..8].copy_from_slice(&ssrc.to_be_bytes());
        let mut at = 8;
        for &(kind, text) in items {
            let text = &text.as_bytes()[..text.len().min(255)];
            out[at] = kind;
            out[at + 1] = text.len() as u8;
            out[at + 2..at + 2 + text.len()].copy_from_slice(text);
            at += 2 + text.len();
        }
        Ok(())
    }

    /// A BYE for one source.
    pub fn bye(&mut self, ssrc: u32) -> Result<(), EncodeError> {
        let out = self.reserve(8)?;
        Self::header(out, 1, PT_BYE, 8);
        out[4..8].copy_from_slice(&ssrc.to_be_bytes());
        Ok(())
    }
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A wall-clock time in NTP format (seconds since 1900 << 32 | fraction).
pub fn ntp_time(t: SystemTime) -> u64 {
    let since_unix = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// A delay in RTCP's 1/65536-second units (`DLSR`), saturating.
pub fn dlsr_units(delay: Duration) -> u32 {
    let units = delay.as_secs_f64() * 65536.0;
    units.clamp(0.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compound_round_trip() {
        let mut buf = [0u8; 256];
        let mut w = RtcpWriter::new(&mut buf);
        let info = SenderInfo {
            ssrc: 7,
            ntp: 0x1122_3344_5566_7788,
            rtp_timestamp: 1000,
            packets: 3,
            octets: 300,
        };
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 25,
            cumulative_lost: -2,
            highest_seq: 0x0001_0005,
            jitter: 44,
            last_sr: 0x3344_5566,
            delay_since_last_sr: 65536,
        };
        w.sender_report(&info, &[block]).unwrap();
        w.sdes(7, &[(SDES_CNAME, "node@host"), (SDES_NAME, "bass")])
            .unwrap();
        w.receiver_report(8, &[block, block]).unwrap();
        w.bye(7).unwrap();
        let len = w.finish();
        assert_eq!(len % 4, 0);
        let packets: Vec<_> = Compound::new(&buf[..len]).map(Result::unwrap).collect();
        assert_eq!(packets.len(), 4);
        match packets[0] {
            RtcpPacket::SenderReport(i, blocks) => {
                assert_eq!(i, info);
                assert_eq!(i.ntp_middle(), 0x3344_5566);
                assert_eq!(blocks.collect::<Vec<_>>(), vec![block]);
            }
            other => panic!("{other:?}"),
        }
        match packets[1] {
            RtcpPacket::Sdes(items) => {
                let items: Vec<_> = items.collect();
                assert_eq!(items.len(), 2);
                assert_eq!(items[0].kind, SDES_CNAME);
                assert_eq!(items[0].text, b"node@host");
                assert_eq!(items[1].kind, SDES_NAME);
                assert_eq!(items[1].text, b"bass");
                assert_eq!(items[1].ssrc, 7);
            }
            other => panic!("{other:?}"),
        }
        match packets[2] {
            RtcpPacket::ReceiverReport(reporter, blocks) => {
                assert_eq!(reporter, 8);
                assert_eq!(blocks.count(), 2);
            }
            other => panic!("{other:?}"),
        }
        match packets[3] {
            RtcpPacket::Bye(ssrcs) => assert_eq!(ssrcs.collect::<Vec<_>>(), vec![7]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sdes_of_several_chunks() {
        // Two chunks, written by hand: the second chunk's NAME.
        let mut b = vec![0x82, PT_SDES, 0, 5];
        b.extend_from_slice(&[0, 0, 0, 1, SDES_CNAME, 2, b'a', b'b', 0, 0, 0, 0]);
        b.extend_from_slice(&[0, 0, 0, 2, SDES_NAME, 1, b'x', 0]);
        let Some(Ok(RtcpPacket::Sdes(items))) = Compound::new(&b).next() else {
            panic!()
        };
        let items: Vec<_> = items.collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[1].ssrc, items[1].kind, items[1].text),
            (2, 2, &b"x"[..])
        );
    }

    #[test]
    fn truncated_packets_are_errors() {
        let mut buf = [0u8; 64];
        let mut w = RtcpWriter::new(&mut buf);
        w.receiver_report(1, &[ReportBlock::default()]).unwrap();
        let len = w.finish();
        assert!(matches!(
            Compound::new(&buf[..len - 4]).next(),
            Some(Err(RtcpDecodeError::Truncated))
        ));
        // Count says one block, length holds none.
        let b = [0x81, PT_RR, 0, 1, 0, 0, 0, 1];
        assert!(matches!(
            Compound::new(&b).next(),
            Some(Err(RtcpDecodeError::BadReport(PT_RR)))
        ));
    }

    #[test]
    fn ntp_and_dlsr() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(ntp_time(t), ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31));
        assert_eq!(dlsr_units(Duration::from_millis(500)), 32768);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            for packet in Compound::new(&bytes) {
                match packet {
                    Ok(RtcpPacket::Sdes(items)) => { items.count(); }
                    Ok(RtcpPacket::SenderReport(_, b)) | Ok(RtcpPacket::ReceiverReport(_, b)) => { b.count(); }
                    Ok(RtcpPacket::Bye(s)) => { s.count(); }
                    _ => {}
                }
            }
        }
    }
}
