//! Sequence-number arithmetic for the 32-bit UDP sequence numbers.
//!
//! Sequence numbers start at 0 and wrap at 2^32. Comparisons use serial-number
//! arithmetic (RFC 1982): `a` is newer than `b` when `a − b (mod 2^32)` lies in
//! `1 ..= 2^31 − 1`. [`SeqExtender`] turns the wrapping numbers of one stream
//! into a monotonic 64-bit timeline, the way RTP receivers extend their 16-bit
//! sequence numbers (RFC 3550, A.1).

/// Signed distance from `b` to `a` in serial-number arithmetic: positive when
/// `a` is newer than `b`. Exact for distances in `−2^31 ..= 2^31 − 1`.
///
/// ```
/// assert_eq!(proto::seq_diff(0, u32::MAX), 1);
/// assert_eq!(proto::seq_diff(u32::MAX, 0), -1);
/// ```
pub fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Whether `a` comes after `b` in serial-number order (never use `<` on
/// sequence numbers: it is wrong across the wrap).
pub fn seq_is_newer(a: u32, b: u32) -> bool {
    seq_diff(a, b) > 0
}

/// Extends the 32-bit sequence numbers of one stream to 64 bits.
///
/// The first number seen anchors the timeline (its cycle is 0). Each later
/// number is placed at the extended value nearest to the highest one seen so
/// far, so reordering across the wrap lands on the right side of it.
#[derive(Debug, Clone, Default)]
pub struct SeqExtender {
    highest: Option<u64>,
}

impl SeqExtender {
    /// A new extender that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extends `seq` to 64 bits and records it if it is the highest so far.
    ///
    /// Returns `None` when `seq` lies before the start of the 64-bit timeline
    /// (a number from before the anchor's cycle 0, e.g. `u32::MAX` right after
    /// a first packet 0); callers treat such a packet as stale.
    pub fn extend(&mut self, seq: u32) -> Option<u64> {
        let extended = match self.highest {
            None => u64::from(seq),
            Some(highest) => {
                let delta = i64::from(seq_diff(seq, highest as u32));
                let candidate = highest as i64 + delta;
                if candidate < 0 {
                    return None;
                }
                candidate as u64
            }
        };
        if self.highest.is_none_or(|h| extended > h) {
            self.highest = Some(extended);
        }
        Some(extended)
    }

    /// Extends `seq` without recording it (for "what would this be" checks).
    pub fn peek(&self, seq: u32) -> Option<u64> {
        self.clone().extend(seq)
    }

    /// The highest extended sequence number seen, if any.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Forgets everything: the next number anchors a new timeline.
    pub fn reset(&mut self) {
        self.highest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_table_at_the_wrap() {
        let cases: &[(u32, u32, i32)] = &[
            (0, 0, 0),
            (1, 0, 1),
            (0, 1, -1),
            (0, u32::MAX, 1),
            (u32::MAX, 0, -1),
            (5, u32::MAX - 4, 10),
            (u32::MAX - 4, 5, -10),
            (0x8000_0000, 1, i32::MAX),
            (0x8000_0000, 0, i32::MIN),
        ];
        for &(a, b, want) in cases {
            assert_eq!(seq_diff(a, b), want, "seq_diff({a:#x}, {b:#x})");
        }
    }

    #[test]
    fn newer_across_the_wrap() {
        assert!(seq_is_newer(0, u32::MAX));
        assert!(seq_is_newer(10, u32::MAX - 10));
        assert!(!seq_is_newer(u32::MAX, 0));
        assert!(!seq_is_newer(7, 7));
    }

    #[test]
    fn extend_table_across_the_wrap() {
        // (input, expected extended value) fed in order to one extender.
        let steps: &[(u32, Option<u64>)] = &[
            (u32::MAX - 2, Some(0xFFFF_FFFD)),
            (u32::MAX - 1, Some(0xFFFF_FFFE)),
            (0, Some(0x1_0000_0000)),      // wrapped forward
            (u32::MAX, Some(0xFFFF_FFFF)), // reordered from before the wrap
            (1, Some(0x1_0000_0001)),
            (u32::MAX - 1, Some(0xFFFF_FFFE)), // duplicate from before the wrap
            (2, Some(0x1_0000_0002)),
        ];
        let mut ext = SeqExtender::new();
        for &(seq, want) in steps {
            assert_eq!(ext.extend(seq), want, "extend({seq:#x})");
        }
        assert_eq!(ext.highest(), Some(0x1_0000_0002));
    }

    #[test]
    fn extend_many_cycles() {
        let mut ext = SeqExtender::new();
        let mut seq = 0u32;
        let step = 0x4000_0000u32; // a quarter cycle: always "newer"
        for i in 0..20u64 {
            assert_eq!(ext.extend(seq), Some(i * u64::from(step)));
            seq = seq.wrapping_add(step);
        }
    }

    #[test]
    fn before_origin_is_none_and_does_not_move_highest() {
        let mut ext = SeqExtender::new();
        assert_eq!(ext.extend(0), Some(0));
        assert_eq!(ext.extend(u32::MAX), None);
        assert_eq!(ext.highest(), Some(0));
        assert_eq!(ext.extend(1), Some(1));
    }

    #[test]
    fn peek_does_not_record() {
        let mut ext = SeqExtender::new();
        ext.extend(100);
        assert_eq!(ext.peek(200), Some(200));
        assert_eq!(ext.highest(), Some(100));
        ext.reset();
        assert_eq!(ext.extend(7), Some(7));
    }
}
