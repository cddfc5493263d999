//! A source's jitter buffer: samples placed on a sample-accurate timeline
//! (position = packet index × packet size), read out one block at a time.
//!
//! Positions are `i64` sample indexes of the source's timeline; the read
//! position starts negative (the target delay) so the first packet waits.
//! The ring is zeroed behind the reader, so a position nobody wrote plays as
//! silence: that is the gap concealment (documented in docs/operations.md).

/// What happened to a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The samples are in place.
    Stored,
    /// The packet's first sample's playout time has passed; nothing stored.
    Late {
        /// Samples between its position and the read position.
        behind: i64,
    },
    /// The packet lies beyond the buffer's capacity ahead of the reader.
    Overflow,
}

/// A one-sample timing adjustment applied while reading a block, used to
/// pull the buffered delay back towards its target when clocks drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// Consume exactly one block.
    None,
    /// Consume one sample more than the block (skip one): latency shrinks.
    Drop,
    /// Consume one sample less than the block (repeat one): latency grows.
    Repeat,
}

impl Adjust {
    /// Samples consumed for a block of `frames` frames.
    pub fn consumed(self, frames: usize) -> usize {
        match self {
            Adjust::None => frames,
            Adjust::Drop => frames + 1,
            Adjust::Repeat => frames - 1,
        }
    }
}

/// Bounded timeline of one source's samples.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    ring: Box<[i16]>,
    mask: i64,
    read_pos: i64,
    write_end: i64,
}

impl JitterBuffer {
    /// A buffer holding `capacity` samples (rounded up to a power of two)
    /// whose next sample to play is at `read_pos`.
    pub fn new(capacity: usize, read_pos: i64) -> Self {
        let capacity = capacity.next_power_of_two();
        Self {
            ring: vec![0; capacity].into_boxed_slice(),
            mask: capacity as i64 - 1,
            read_pos,
            write_end: read_pos,
        }
    }

    /// Samples the buffer can hold ahead of the reader.
    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// Timeline position of the next sample to be played.
    pub fn read_pos(&self) -> i64 {
        self.read_pos
    }

    /// One past the highest position written so far.
    pub fn write_end(&self) -> i64 {
        self.write_end
    }

    /// Samples between the reader and the highest written position.
    pub fn buffered(&self) -> i64 {
        (self.write_end - self.read_pos).max(0)
    }

    /// Stores `samples` at timeline position `pos`.
    pub fn write(&mut self, pos: i64, samples: impl ExactSizeIterator<Item = i16>) -> WriteOutcome {
        if pos < self.read_pos {
            return WriteOutcome::Late {
                behind: self.read_pos - pos,
            };
        }
        let end = pos + samples.len() as i64;
        if end > self.read_pos + self.ring.len() as i64 {
            return WriteOutcome::Overflow;
        }
        for (i, s) in samples.enumerate() {
            self.ring[((pos + i as i64) & self.mask) as usize] = s;
        }
        self.write_end = self.write_end.max(end);
        WriteOutcome::Stored
    }

    /// Plays one block into `out` (as f32 sample values), consuming
    /// `adjust.consumed(out.len())` samples, and clears what it consumed.
    pub fn read(&mut self, out: &mut [f32], adjust: Adjust) {
        let consumed = adjust.consumed(out.len());
        let mid = out.len() / 2;
        // One pass over the consumed slots: take each sample (leaving
        // silence behind for the ring's next lap) and write it out; a Drop
        // skips the middle sample, a Repeat writes it twice.
        let mut o = 0;
        for k in 0..consumed {
            let slot = &mut self.ring[((self.read_pos + k as i64) & self.mask) as usize];
            let sample = f32::from(std::mem::take(slot));
            if adjust == Adjust::Drop && k == mid {
                continue;
            }
            out[o] = sample;
            o += 1;
            if adjust == Adjust::Repeat && k == mid {
                out[o] = sample;
                o += 1;
            }
        }
        self.read_pos += consumed as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(buf: &mut JitterBuffer, n: usize, adjust: Adjust) -> Vec<f32> {
        let mut out = vec![f32::NAN; n];
        buf.read(&mut out, adjust);
        out
    }

    #[test]
    fn plays_silence_until_the_target_delay_has_passed() {
        let mut b = JitterBuffer::new(64, -4);
        assert_eq!(b.write(0, [1i16, 2, 3].into_iter()), WriteOutcome::Stored);
        assert_eq!(
            read(&mut b, 6, Adjust::None),
            vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0]
        );
        assert_eq!(read(&mut b, 3, Adjust::None), vec![3.0, 0.0, 0.0]);
    }

    #[test]
    fn reordered_packets_go_back_in_place_and_gaps_are_silent() {
        let mut b = JitterBuffer::new(64, 0);
        b.write(4, [5i16, 6].into_iter());
        b.write(0, [1i16, 2].into_iter());
        // positions 2..4 never arrive
        assert_eq!(b.buffered(), 6);
        assert_eq!(
            read(&mut b, 6, Adjust::None),
            vec![1.0, 2.0, 0.0, 0.0, 5.0, 6.0]
        );
    }

    #[test]
    fn late_and_overflow() {
        let mut b = JitterBuffer::new(8, 0);
        read(&mut b, 4, Adjust::None);
        assert_eq!(
            b.write(2, [1i16].into_iter()),
            WriteOutcome::Late { behind: 2 }
        );
        assert_eq!(b.write(4, [1i16; 8].into_iter()), WriteOutcome::Stored);
        assert_eq!(b.write(12, [1i16].into_iter()), WriteOutcome::Overflow);
    }

    #[test]
    fn consumed_slots_are_cleared_for_reuse() {
        let mut b = JitterBuffer::new(4, 0);
        b.write(0, [9i16; 4].into_iter());
        read(&mut b, 4, Adjust::None);
        // Same ring slots, next lap: nothing written there plays as silence.
        assert_eq!(read(&mut b, 4, Adjust::None), vec![0.0; 4]);
    }

    #[test]
    fn drop_skips_and_repeat_reuses_one_sample() {
        let mut b = JitterBuffer::new(64, 0);
        b.write(0, (1..=20i16).collect::<Vec<_>>().into_iter());
        assert_eq!(read(&mut b, 4, Adjust::Drop), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(b.read_pos(), 5);
        assert_eq!(read(&mut b, 4, Adjust::Repeat), vec![6.0, 7.0, 8.0, 8.0]);
        assert_eq!(b.read_pos(), 8);
        assert_eq!(read(&mut b, 2, Adjust::None), vec![9.0, 10.0]);
    }
}
