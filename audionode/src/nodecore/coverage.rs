//! Which slots of a jitter buffer's ring were written in the current lap:
//! one bit per slot, set by writes and cleared as the reader passes, so a
//! slot nobody wrote is told from one that holds received audio (the ring
//! keeps what was played behind the reader, as the concealer's history).

/// One bit per ring slot.
#[derive(Debug, Clone)]
pub(crate) struct Coverage {
    bits: Box<[u64]>,
}

impl Coverage {
    /// All clear, for a ring of `slots` slots.
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            bits: vec![0; slots.div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Marks slots `start..start + len` written (one run, no wrap).
    pub(crate) fn mark(&mut self, start: usize, len: usize) {
        self.set(start, len, true);
    }

    /// Marks slots `start..start + len` unwritten (one run, no wrap).
    pub(crate) fn unmark(&mut self, start: usize, len: usize) {
        self.set(start, len, false);
    }

    /// The words holding the bits of slots `start..start + len` (one run,
    /// no wrap), for prefetching.
    pub(crate) fn words(&self, start: usize, len: usize) -> &[u64] {
        let end = (start + len).div_ceil(64).min(self.bits.len());
        &self.bits[(start / 64).min(end)..end]
    }

    /// Whether every slot of `start..start + len` is written (one run).
    pub(crate) fn all(&self, start: usize, len: usize) -> bool {
        let Some(span) = Span::new(start, len) else {
            return true;
        };
        let words = &self.bits[span.first..=span.last];
        match words {
            [only] => only & span.head & span.tail == span.head & span.tail,
            [first, middle @ .., last] => {
                first & span.head == span.head
                    && last & span.tail == span.tail
                    && middle.iter().all(|&w| w == u64::MAX)
            }
            [] => true,
        }
    }

    /// How many slots from `start` on (at most `limit`, one run, no wrap)
    /// are in the state `written`: whole words at a time.
    pub(crate) fn run(&self, start: usize, limit: usize, written: bool) -> usize {
        let mut n = 0;
        while n < limit {
            let i = start + n;
            let word = self.bits[i / 64];
            // Ones where the run ends.
            let ends = if written { !word } else { word } >> (i % 64);
            let left_in_word = 64 - i % 64;
            if ends == 0 {
                n += left_in_word;
            } else {
                n += (ends.trailing_zeros() as usize).min(left_in_word);
                break;
            }
        }
        n.min(limit)
    }

    /// Whether `slot` is written.
    pub(crate) fn get(&self, slot: usize) -> bool {
        self.bits[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// Marks every slot unwritten.
    pub(crate) fn clear(&mut self) {
        self.bits.fill(0);
    }

    /// Whether no slot is marked.
    pub(crate) fn is_clear(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Sets slots `start..start + len` to `written`: the edge words under
    /// their masks, the whole words between them at once (a plain loop,
    /// not `fill`, whose call costs more than the two or three words a
    /// packet or block covers).
    fn set(&mut self, start: usize, len: usize, written: bool) {
        let Some(span) = Span::new(start, len) else {
            return;
        };
        let apply = |w: &mut u64, mask: u64| {
            if written {
                *w |= mask;
            } else {
                *w &= !mask;
            }
        };
        match &mut self.bits[span.first..=span.last] {
            [only] => apply(only, span.head & span.tail),
            [first, middle @ .., last] => {
                apply(first, span.head);
                apply(last, span.tail);
                let whole = if written { u64::MAX } else { 0 };
                for w in middle {
                    *w = whole;
                }
            }
            [] => {}
        }
    }
}

/// The bitmap words a non-empty run of slots covers, and the masks of its
/// bits in the first and last of them. Reading and clearing whole words
/// between the two (rather than a mask per word) is what the reader does
/// for every source on every block.
struct Span {
    first: usize,
    last: usize,
    head: u64,
    tail: u64,
}

impl Span {
    fn new(start: usize, len: usize) -> Option<Self> {
        let end = start + len.checked_sub(1)?;
        Some(Self {
            first: start / 64,
            last: end / 64,
            head: u64::MAX << (start % 64),
            tail: u64::MAX >> (63 - end % 64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_within_and_across_words() {
        let mut c = Coverage::new(256);
        c.mark(60, 10);
        assert!(c.all(60, 10) && !c.all(59, 2) && !c.all(69, 2));
        assert!(c.get(60) && c.get(69) && !c.get(70));
        c.mark(0, 256);
        assert!(c.all(0, 256));
        c.unmark(64, 64);
        assert!(c.all(0, 64) && !c.get(64) && !c.get(127) && c.all(128, 128));
        assert!(c.all(5, 0));
        assert_eq!(c.run(0, 256, true), 64);
        assert_eq!(c.run(64, 256 - 64, false), 64);
        assert_eq!(c.run(70, 10, false), 10);
        assert_eq!(c.run(120, 136, false), 8);
        assert_eq!(c.run(128, 128, true), 128);
        c.clear();
        assert!(c.is_clear());
        let mut small = Coverage::new(8);
        small.mark(6, 2);
        assert!(small.all(6, 2) && !small.get(5));
    }
}
