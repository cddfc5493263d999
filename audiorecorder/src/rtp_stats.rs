//! What a receiver knows about one RTP stream, as RFC 3550 defines it:
//! sequence-number tracking with wrap-around, restarts and misordering
//! (Appendix A.1), loss for receiver reports (A.3), interarrival jitter
//! (A.8) and the last sender report (for LSR/DLSR).
//!
//! Sans-IO: the caller passes the arrival time in RTP timestamp units and
//! `Instant`s. Each packet is classified (in order, reordered, duplicate,
//! or a jump to discard) so the recorder can count them; the report block
//! it builds is what goes back to the sender.

use std::time::Instant;

use proto::rtcp::{dlsr_units, ReportBlock};

/// RFC 3550 A.1: a forward jump of more than this many sequence numbers
/// is not believed until the next packet confirms it.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a backward step of up to this many is a late packet.
const MAX_MISORDER: u16 = 100;
/// Sequence numbers remembered for duplicate detection.
const WINDOW: u64 = 1024;

/// How one packet's sequence number relates to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqClass {
    /// The next or a later sequence number; `skipped` were jumped over.
    InOrder {
        /// Sequence numbers between the previous highest and this one.
        skipped: u16,
    },
    /// Older than the highest, not seen before: arrived out of order.
    Reordered,
    /// Seen before.
    Duplicate,
    /// A large jump, discarded until a second packet confirms it.
    Jump,
    /// The second packet of a confirmed jump: the sender restarted its
    /// numbering; the statistics start again from this packet.
    Restarted,
}

/// Receiver statistics of one source (one SSRC).
#[derive(Debug, Clone)]
pub struct SourceStats {
    ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Seen flags of the last [`WINDOW`] extended sequence numbers.
    seen: [u64; (WINDOW / 64) as usize],
    last_transit: Option<u32>,
    /// Jitter × 16 (A.8's fixed point).
    jitter: u32,
    last_sr: Option<(u32, Instant)>,
    /// No packet counted yet.
    fresh: bool,
}

impl SourceStats {
    /// A source whose first packet (passed to [`Self::update`] next) has
    /// sequence number `seq`.
    pub fn new(ssrc: u32, seq: u16) -> Self {
        Self {
            ssrc,
            max_seq: seq,
            cycles: 0,
            base_seq: u32::from(seq),
            bad_seq: 1 << 16 | 1,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            seen: [0; (WINDOW / 64) as usize],
            last_transit: None,
            jitter: 0,
            last_sr: None,
            fresh: true,
        }
    }

    /// Starts counting afresh at `seq` (A.1's `init_seq`), keeping the
    /// jitter and the last sender report.
    fn restart(&mut self, seq: u16) {
        self.max_seq = seq;
        self.cycles = 0;
        self.base_seq = u32::from(seq);
        self.bad_seq = 1 << 16 | 1;
        self.received = 1;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.seen = [0; (WINDOW / 64) as usize];
        self.mark(u64::from(seq));
        self.fresh = false;
    }

    /// The source.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    fn extended_max(&self) -> u64 {
        u64::from(self.cycles) + u64::from(self.max_seq)
    }

    fn bit(&mut self, ext: u64) -> (usize, u64) {
        let i = (ext % WINDOW) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    fn mark(&mut self, ext: u64) -> bool {
        let (w, b) = self.bit(ext);
        let was = self.seen[w] & b != 0;
        self.seen[w] |= b;
        was
    }

    fn clear(&mut self, ext: u64) {
        let (w, b) = self.bit(ext);
        self.seen[w] &= !b;
    }

    /// Classifies and counts a packet with sequence number `seq` (RFC 3550
    /// A.1, and duplicates by the recent-sequence window).
    pub fn update(&mut self, seq: u16) -> SeqClass {
        if self.fresh {
            self.restart(seq);
            return SeqClass::InOrder { skipped: 0 };
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        let class = if udelta == 0 {
            SeqClass::Duplicate
        } else if udelta < MAX_DROPOUT {
            let old_max = self.extended_max();
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
            let new_max = self.extended_max();
            // Forget what falls out of the window, remember this one.
            let step = new_max - old_max;
            if step >= WINDOW {
                self.seen = [0; (WINDOW / 64) as usize];
            } else {
                for ext in old_max + 1..=new_max {
                    self.clear(ext);
                }
            }
            self.mark(new_max);
            SeqClass::InOrder {
                skipped: udelta - 1,
            }
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: believe it only if the next packet follows.
            if u32::from(seq) == self.bad_seq {
                self.restart(seq);
                return SeqClass::Restarted;
            }
            self.bad_seq = u32::from(seq.wrapping_add(1));
            return SeqClass::Jump;
        } else {
            // Up to MAX_MISORDER behind the highest.
            let back = u64::from(self.max_seq.wrapping_sub(seq));
            let max = self.extended_max();
            if back >= WINDOW || back > max {
                SeqClass::Reordered
            } else if self.mark(max - back) {
                SeqClass::Duplicate
            } else {
                SeqClass::Reordered
            }
        };
        // RFC 3550 §6.4.1: duplicates and late packets count as received.
        self.received = self.received.wrapping_add(1);
        class
    }

    /// A.8: updates the interarrival jitter with a packet of timestamp
    /// `timestamp` that arrived at `arrival` (the receiver's clock in the
    /// same units, any origin).
    pub fn on_arrival(&mut self, timestamp: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            // J += (|D| − J) / 16, with J kept × 16.
            self.jitter = self
                .jitter
                .wrapping_add(d)
                .wrapping_sub((self.jitter + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Remembers a sender report of this source (`ntp_middle`: the middle
    /// 32 bits of its NTP time) received at `at`.
    pub fn on_sender_report(&mut self, ntp_middle: u32, at: Instant) {
        self.last_sr = Some((ntp_middle, at));
    }

    /// Packets expected so far: extended highest − base + 1.
    pub fn expected(&self) -> u32 {
        (self.extended_max() + 1).wrapping_sub(u64::from(self.base_seq)) as u32
    }

    /// Packets received so far (duplicates included, as RFC 3550 counts).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets lost so far: expected − received (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// The interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter >> 4
    }

    /// The report block for a receiver report at `now` (A.3); starts the
    /// next reporting interval.
    pub fn report(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, dlsr_units(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_max() as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn feed(s: &mut SourceStats, seqs: &[u16]) -> Vec<SeqClass> {
        seqs.iter().map(|&q| s.update(q)).collect()
    }

    #[test]
    fn in_order_loss_reorder_and_duplicates() {
        let mut s = SourceStats::new(7, 100);
        let c = feed(&mut s, &[100, 101, 103, 102, 103, 104, 101]);
        assert_eq!(
            c,
            vec![
                SeqClass::InOrder { skipped: 0 },
                SeqClass::InOrder { skipped: 0 },
                SeqClass::InOrder { skipped: 1 },
                SeqClass::Reordered,
                SeqClass::Duplicate,
                SeqClass::InOrder { skipped: 0 },
                SeqClass::Duplicate,
            ]
        );
        assert_eq!(s.expected(), 5);
        assert_eq!(s.received(), 7);
        assert_eq!(s.cumulative_lost(), -2);
    }

    #[test]
    fn report_block_fraction_and_cumulative_loss() {
        let t0 = Instant::now();
        let mut s = SourceStats::new(9, 65_530);
        // 65530..=65535, 0..=3 with 65533 and 1 lost: 10 expected, 8 received.
        feed(&mut s, &[65_530, 65_531, 65_532, 65_534, 65_535, 0, 2, 3]);
        s.on_sender_report(0xabcd_0000, t0);
        let b = s.report(t0 + Duration::from_millis(250));
        assert_eq!(b.ssrc, 9);
        assert_eq!(b.highest_seq, (1 << 16) | 3);
        assert_eq!(b.cumulative_lost, 2);
        assert_eq!(b.fraction_lost, (2 * 256 / 10) as u8); // 51
        assert_eq!(b.last_sr, 0xabcd_0000);
        assert_eq!(b.delay_since_last_sr, 16_384); // 0.25 s
                                                   // Next interval: 4..=7 all received.
        feed(&mut s, &[4, 5, 6, 7]);
        let b = s.report(t0);
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.cumulative_lost, 2);
        assert_eq!(b.highest_seq, (1 << 16) | 7);
    }

    #[test]
    fn a_big_jump_needs_confirmation_then_restarts() {
        let mut s = SourceStats::new(1, 0);
        feed(&mut s, &[0, 11]);
        assert_eq!(s.update(30_000), SeqClass::Jump);
        assert_eq!(s.update(12), SeqClass::InOrder { skipped: 0 });
        assert_eq!(s.expected(), 13);
        assert_eq!(s.update(40_000), SeqClass::Jump);
        assert_eq!(s.update(40_001), SeqClass::Restarted);
        assert_eq!(s.update(40_002), SeqClass::InOrder { skipped: 0 });
        assert_eq!(s.expected(), 2);
        assert_eq!(s.received(), 2);
    }

    #[test]
    fn jitter_follows_a8() {
        let mut s = SourceStats::new(1, 0);
        // Packets 160 ticks apart arriving 160 apart: no jitter.
        for k in 0..10u32 {
            s.on_arrival(k * 160, 5_000 + k * 160);
        }
        assert_eq!(s.jitter(), 0);
        // Alternately 32 ticks late and on time: J → 32 (|D| = 32 each time).
        for k in 10..400u32 {
            s.on_arrival(k * 160, 5_000 + k * 160 + if k % 2 == 0 { 32 } else { 0 });
        }
        assert!((31..=32).contains(&s.jitter()), "{}", s.jitter());
        // Timestamps and arrival clocks wrap without a jump in jitter.
        let mut w = SourceStats::new(1, 0);
        w.on_arrival(u32::MAX - 10, 100);
        w.on_arrival(149, 260);
        assert_eq!(w.jitter(), 0);
    }
}
