//! Which sequence numbers of one stream were already released: a bitmap of
//! the last [`WINDOW`] numbers behind the highest, so classifying a
//! datagram costs O(1) and a run of any length uses constant memory.
//!
//! It follows the node's tracker (`audionode/src/tracker.rs`) where the
//! proxy can: a number older than the stream's first released one is put
//! aside first (the node takes it for a possible restart, not a reordered
//! packet), then duplicates are found, then reordered ones. A number older
//! than the memory counts as already seen, like in the node; the window is
//! 64 times the node's (1024), so with any sane `--reorder-ms`/`--jitter`
//! no datagram gets that far behind.

use proto::{seq_diff, seq_is_newer};

/// Sequence numbers remembered behind the highest (a power of two).
pub const WINDOW: u32 = 1 << 16;

const WORDS: usize = (WINDOW / 64) as usize;

/// How a released sequence number relates to those released before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Released before (or older than the window): a duplicate.
    Again,
    /// First release, but a higher number was released earlier: reordered.
    Late,
    /// First release and the highest so far.
    InOrder,
    /// Numbered before the stream's first released datagram (which was
    /// overtaken): the node puts it on restart probation instead of
    /// counting it, so it is neither reordered nor a duplicate.
    BeforeFirst,
}

/// Released-number memory of one stream.
#[derive(Debug, Clone)]
pub struct ReleaseWindow {
    bits: Box<[u64; WORDS]>,
    /// Highest number released, and its distance from the first released
    /// one (extended to 64 bits, so streams longer than 2^31 work).
    highest: Option<(u32, i64)>,
}

impl Default for ReleaseWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReleaseWindow {
    /// A window that has seen nothing.
    pub fn new() -> Self {
        Self {
            bits: Box::new([0; WORDS]),
            highest: None,
        }
    }

    /// Classifies `seq` (duplicate first, like the node) and remembers it.
    pub fn release(&mut self, seq: u32) -> Seen {
        let Some((highest, highest_ext)) = self.highest else {
            self.highest = Some((seq, 0));
            self.set(seq);
            return Seen::InOrder;
        };
        let ext = highest_ext + i64::from(seq_diff(seq, highest));
        if ext < 0 {
            return Seen::BeforeFirst;
        }
        if seq_is_newer(seq, highest) {
            // Numbers entering the window ahead of us were never seen.
            let steps = (seq_diff(seq, highest) as u32).min(WINDOW);
            for k in 0..steps {
                self.clear(seq.wrapping_sub(k));
            }
            self.highest = Some((seq, ext));
            self.set(seq);
            return Seen::InOrder;
        }
        let behind = seq_diff(highest, seq) as u32; // ≥ 0 here
        if behind >= WINDOW || self.is_set(seq) {
            return Seen::Again;
        }
        self.set(seq);
        Seen::Late
    }

    fn slot(seq: u32) -> (usize, u32) {
        let i = seq % WINDOW;
        ((i / 64) as usize, i % 64)
    }

    fn set(&mut self, seq: u32) {
        let (w, b) = Self::slot(seq);
        self.bits[w] |= 1 << b;
    }

    fn clear(&mut self, seq: u32) {
        let (w, b) = Self::slot(seq);
        self.bits[w] &= !(1 << b);
    }

    fn is_set(&self, seq: u32) -> bool {
        let (w, b) = Self::slot(seq);
        self.bits[w] & (1 << b) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Seen::*;

    fn run(seqs: &[u32]) -> Vec<Seen> {
        let mut w = ReleaseWindow::new();
        seqs.iter().map(|&s| w.release(s)).collect()
    }

    #[test]
    fn classifies_like_the_node() {
        assert_eq!(
            run(&[0, 1, 3, 2, 2, 6, 7, 3]),
            vec![InOrder, InOrder, InOrder, Late, Again, InOrder, InOrder, Again]
        );
    }

    #[test]
    fn older_than_the_first_is_set_aside_like_the_node_does() {
        // 1 overtook 0: the node anchors at 1 and puts 0 on probation, also
        // its copy; 2 is in order.
        assert_eq!(
            run(&[1, 0, 0, 2, 1]),
            vec![InOrder, BeforeFirst, BeforeFirst, InOrder, Again]
        );
        let m = u32::MAX;
        assert_eq!(run(&[0, m, 1]), vec![InOrder, BeforeFirst, InOrder]);
    }

    #[test]
    fn across_the_wrap() {
        let m = u32::MAX;
        assert_eq!(
            run(&[m - 1, m, 1, 0, m, 2]),
            vec![InOrder, InOrder, InOrder, Late, Again, InOrder]
        );
    }

    #[test]
    fn bits_are_reused_after_a_full_window() {
        // 5 and 5 + WINDOW share a bit: the advance must clear it.
        let mut w = ReleaseWindow::new();
        assert_eq!(w.release(5), InOrder);
        assert_eq!(w.release(5 + WINDOW - 10), InOrder);
        assert_eq!(w.release(5 + WINDOW + 1), InOrder);
        assert_eq!(w.release(5 + WINDOW), Late, "not mistaken for 5");
        // A huge jump clears everything.
        assert_eq!(w.release(1_000_000_000), InOrder);
        assert_eq!(w.release(1_000_000_000 - 3), Late);
    }

    #[test]
    fn older_than_the_window_counts_as_seen() {
        let mut w = ReleaseWindow::new();
        w.release(0);
        w.release(WINDOW + 100);
        assert_eq!(w.release(50), Again);
        assert_eq!(w.release(200), Late);
    }

    #[test]
    fn matches_a_brute_force_model_on_random_orders() {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for start in [0u32, u32::MAX - 300] {
            let mut seqs: Vec<u32> = (0..600u32).map(|i| start.wrapping_add(i / 2)).collect();
            // Local shuffles only, so nothing is 2^31 away.
            for chunk in seqs.chunks_mut(40) {
                chunk.shuffle(&mut rng);
            }
            let mut w = ReleaseWindow::new();
            for (i, &s) in seqs.iter().enumerate() {
                let before = &seqs[..i];
                let want = if i > 0 && seq_is_newer(seqs[0], s) {
                    BeforeFirst
                } else if before.contains(&s) {
                    Again
                } else if before.iter().any(|&p| seq_is_newer(p, s)) {
                    Late
                } else {
                    InOrder
                };
                assert_eq!(w.release(s), want, "#{i} = {s}");
            }
        }
    }
}
