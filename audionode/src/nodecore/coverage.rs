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
        self.update(start, len, |w, m| *w |= m);
    }

    /// Marks slots `start..start + len` unwritten (one run, no wrap).
    pub(crate) fn unmark(&mut self, start: usize, len: usize) {
        self.update(start, len, |w, m| *w &= !m);
    }

    /// The words holding the bits of slots `start..start + len` (one run,
    /// no wrap), for prefetching.
    pub(crate) fn words(&self, start: usize, len: usize) -> &[u64] {
        let end = (start + len).div_ceil(64).min(self.bits.len());
        &self.bits[(start / 64).min(end)..end]
    }

    /// Whether every slot of `start..start + len` is written (one run).
    pub(crate) fn all(&self, start: usize, len: usize) -> bool {
        let mut all = true;
        for_words(start, len, |word, mask| {
            all &= self.bits[word] & mask == mask;
        });
        all
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

    fn update(&mut self, start: usize, len: usize, mut f: impl FnMut(&mut u64, u64)) {
        let bits = &mut self.bits;
        for_words(start, len, |word, mask| f(&mut bits[word], mask));
    }
}

/// Calls `f(word, mask)` for each bitmap word covering bits
/// `start..start + len`, with the mask of those bits in it.
fn for_words(start: usize, len: usize, mut f: impl FnMut(usize, u64)) {
    let end = start + len;
    let mut i = start;
    while i < end {
        let word = i / 64;
        let (lo, hi) = (i % 64, (end - word * 64).min(64));
        let mask = if hi - lo == 64 {
            u64::MAX
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        };
        f(word, mask);
        i = word * 64 + hi;
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
