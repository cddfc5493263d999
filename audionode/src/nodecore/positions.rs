//! Where each packet of a stream instance sits on the source's sample
//! timeline, for formats that carry no timestamp (the original mono
//! format, TCP sources): the running sum of packet sizes in sequence order.
//!
//! A packet lands right after its predecessor when that one is known, right
//! before its successor otherwise; across a gap the missing packets are
//! assumed to have the size of the last packet before it. So a stream that
//! changes its packet size (a streamer restarted with another chunk length,
//! a sender that varies its packets) is placed exactly, and only a size
//! change hidden inside a run of lost packets can shift what follows.
//!
//! The table remembers the last [`WINDOW`] packets (the tracker's duplicate
//! window), in memory allocated once per source slot.

/// Packets whose position is remembered.
pub const WINDOW: usize = 1024;

/// How far a lookup searches for a known neighbour.
const SEARCH: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Low 32 bits of the packet index within the instance (`u32::MAX`
    /// with `len == 0`: empty). Entries a window apart never share them.
    index: u32,
    /// First sample's position relative to the instance's start.
    pos: i64,
    /// Samples in the packet.
    len: u32,
}

const EMPTY: Entry = Entry {
    index: u32::MAX,
    pos: 0,
    len: 0,
};

/// Positions of the recent packets of one stream instance.
#[derive(Debug)]
pub struct Positions {
    entries: Box<[Entry]>,
}

impl Default for Positions {
    fn default() -> Self {
        Self::new()
    }
}

impl Positions {
    /// An empty table (allocates its window once).
    pub fn new() -> Self {
        Self {
            entries: vec![EMPTY; WINDOW].into_boxed_slice(),
        }
    }

    /// Forgets everything (a new instance begins).
    pub fn clear(&mut self) {
        self.entries.fill(EMPTY);
    }

    fn get(&self, index: u64) -> Option<Entry> {
        let e = self.entries[(index % WINDOW as u64) as usize];
        (e.len > 0 && e.index == index as u32).then_some(e)
    }

    /// The position of packet `index` of `len` samples, relative to the
    /// instance's start, and records it.
    pub fn place(&mut self, index: u64, len: usize) -> i64 {
        let pos = self.locate(index, len);
        self.entries[(index % WINDOW as u64) as usize] = Entry {
            index: index as u32,
            pos,
            len: len as u32,
        };
        pos
    }

    fn locate(&self, index: u64, len: usize) -> i64 {
        if index == 0 {
            return 0;
        }
        if let Some(prev) = self.get(index - 1) {
            return prev.pos + i64::from(prev.len);
        }
        if let Some(next) = self.get(index + 1) {
            return next.pos - len as i64;
        }
        // Across a gap: the nearest known predecessor, with the missing
        // packets assumed to be of its size.
        for k in 2..=index.min(SEARCH) {
            if let Some(e) = self.get(index - k) {
                return e.pos + i64::from(e.len) * k as i64;
            }
        }
        // Reordered far back with nothing known before it: the nearest
        // known successor, the packets between assumed to be of this size.
        for k in 2..=SEARCH {
            if let Some(e) = self.get(index + k) {
                return e.pos - len as i64 * k as i64;
            }
        }
        index as i64 * len as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_sum_of_sizes_in_sequence_order() {
        let mut p = Positions::new();
        assert_eq!(p.place(0, 441), 0);
        assert_eq!(p.place(1, 882), 441);
        assert_eq!(p.place(2, 220), 1323);
        assert_eq!(p.place(3, 220), 1543);
    }

    #[test]
    fn reordered_packets_fit_between_their_neighbours() {
        let mut p = Positions::new();
        p.place(0, 100);
        // 2 arrives before 1: assumed after a packet of 100.
        assert_eq!(p.place(2, 50), 200);
        assert_eq!(p.place(1, 100), 100);
        // 4 before 3, then 3 lands right before 4.
        assert_eq!(p.place(4, 50), 300);
        assert_eq!(p.place(3, 50), 250);
    }

    #[test]
    fn gaps_assume_the_size_before_them() {
        let mut p = Positions::new();
        p.place(0, 441);
        p.place(1, 441);
        // 2, 3 and 4 lost.
        assert_eq!(p.place(5, 441), 5 * 441);
        // A late arrival from the gap finds its predecessor.
        assert_eq!(p.place(2, 441), 2 * 441);
    }

    #[test]
    fn forgets_after_a_clear() {
        let mut p = Positions::new();
        p.place(0, 10);
        p.place(1, 10);
        p.clear();
        assert_eq!(p.place(1, 7), 7);
    }
}
