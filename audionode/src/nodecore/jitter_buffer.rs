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

/// A zeroed ring for a buffer of at least `capacity` samples (rounded up to
/// a power of two).
pub fn new_ring(capacity: usize) -> Box<[i16]> {
    vec![0; capacity.next_power_of_two()].into_boxed_slice()
}

/// Bounded timeline of one source's samples.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    ring: Box<[i16]>,
    mask: i64,
    /// Added to positions before they wrap: sources at the same timeline
    /// position then read different cache sets of their rings.
    skew: i64,
    read_pos: i64,
    write_end: i64,
}

impl JitterBuffer {
    /// A buffer holding `capacity` samples (rounded up to a power of two)
    /// whose next sample to play is at `read_pos`.
    pub fn new(capacity: usize, read_pos: i64) -> Self {
        Self::from_ring(new_ring(capacity), read_pos)
    }

    /// A buffer over `ring` (all zeros, its length a power of two, as
    /// [`new_ring`] makes and [`JitterBuffer::into_ring`] returns), so
    /// sources joining a running node reuse memory allocated before it
    /// started.
    pub fn from_ring(ring: Box<[i16]>, read_pos: i64) -> Self {
        debug_assert!(ring.len().is_power_of_two());
        debug_assert!(ring.iter().all(|&s| s == 0));
        Self {
            mask: ring.len() as i64 - 1,
            skew: 0,
            ring,
            read_pos,
            write_end: read_pos,
        }
    }

    /// Offsets where positions fall in the ring by `skew` samples.
    pub fn with_skew(mut self, skew: usize) -> Self {
        self.skew = (skew as i64) & self.mask;
        self
    }

    /// The ring, cleared, for the next source.
    pub fn into_ring(mut self) -> Box<[i16]> {
        self.ring.fill(0);
        self.ring
    }

    /// Skips `samples` samples without playing them (the node skipped
    /// blocks after a stall), clearing them for the ring's next lap.
    pub fn skip(&mut self, samples: usize) {
        let n = samples.min(self.ring.len());
        let start = ((self.read_pos + self.skew) & self.mask) as usize;
        let first = n.min(self.ring.len() - start);
        self.ring[start..start + first].fill(0);
        self.ring[..n - first].fill(0);
        self.read_pos += samples as i64;
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
    pub fn write(&mut self, pos: i64, samples: &[i16]) -> WriteOutcome {
        self.write_with(pos, samples.len(), |offset, run| {
            run.copy_from_slice(&samples[offset..offset + run.len()]);
        })
    }

    /// Stores `len` samples at timeline position `pos`, produced by `fill`
    /// straight into the ring: `fill(offset, run)` writes samples
    /// `offset..offset + run.len()` of the packet into `run`. Called at most
    /// twice (the ring's wrap point), so a packet is decoded in place with
    /// no intermediate copy and no per-sample index masking.
    pub fn write_with(
        &mut self,
        pos: i64,
        len: usize,
        mut fill: impl FnMut(usize, &mut [i16]),
    ) -> WriteOutcome {
        if pos < self.read_pos {
            return WriteOutcome::Late {
                behind: self.read_pos - pos,
            };
        }
        let end = pos + len as i64;
        if end > self.read_pos + self.ring.len() as i64 {
            return WriteOutcome::Overflow;
        }
        // The overflow check bounds the packet by the ring's length, so it
        // spans at most two contiguous runs: up to the ring's end, then from
        // its start.
        let start = ((pos + self.skew) & self.mask) as usize;
        let first = len.min(self.ring.len() - start);
        fill(0, &mut self.ring[start..start + first]);
        if first < len {
            fill(first, &mut self.ring[..len - first]);
        }
        self.write_end = self.write_end.max(end);
        WriteOutcome::Stored
    }

    /// Plays one block into `out` (as f32 sample values), consuming
    /// `adjust.consumed(out.len())` samples, and clears what it consumed.
    /// Returns the block's peak magnitude (0..=32768), for the meters.
    ///
    /// A `Drop` skips the block's middle sample, a `Repeat` plays it twice.
    pub fn read(&mut self, out: &mut [f32], adjust: Adjust) -> u32 {
        let frames = out.len();
        let mid = frames / 2;
        let pos = self.read_pos;
        let peak = match adjust {
            Adjust::None => self.take(pos, out),
            Adjust::Drop => {
                let (front, back) = out.split_at_mut(mid);
                let peak = self.take(pos, front);
                // The skipped sample is cleared but not played.
                self.take(pos + mid as i64, &mut [0.0]);
                peak.max(self.take(pos + mid as i64 + 1, back))
            }
            Adjust::Repeat if frames < 2 => {
                // Nothing to repeat inside a one-frame block: hold silence.
                out.fill(0.0);
                0
            }
            Adjust::Repeat => {
                let (front, back) = out.split_at_mut(mid + 1);
                let peak = self.take(pos, front);
                back[0] = front[mid];
                peak.max(self.take(pos + mid as i64 + 1, &mut back[1..]))
            }
        };
        self.read_pos += adjust.consumed(frames) as i64;
        peak
    }

    /// Starts loading the next `frames` samples the reader will take into
    /// the CPU's cache (see [`super::prefetch`]); changes nothing.
    #[inline]
    pub fn prefetch_next(&self, frames: usize) {
        let start = ((self.read_pos + self.skew) & self.mask) as usize;
        let first = frames.min(self.ring.len() - start);
        super::prefetch::prefetch(&self.ring[start..start + first]);
        super::prefetch::prefetch(&self.ring[..(frames - first).min(self.ring.len())]);
    }

    /// Moves `out.len()` samples from timeline position `pos` into `out`,
    /// leaving silence behind for the ring's next lap; returns their peak
    /// magnitude. At most two contiguous runs of the ring, each a plain
    /// slice loop the compiler vectorises (convert, clear, integer max).
    fn take(&mut self, pos: i64, out: &mut [f32]) -> u32 {
        let start = ((pos + self.skew) & self.mask) as usize;
        let first = out.len().min(self.ring.len() - start);
        let (out_head, out_tail) = out.split_at_mut(first);
        let mut peak = 0u32;
        for (run, out) in [(start, out_head), (0, out_tail)] {
            for (o, slot) in out.iter_mut().zip(&mut self.ring[run..]) {
                let s = std::mem::take(slot);
                *o = f32::from(s);
                peak = peak.max(s.unsigned_abs().into());
            }
        }
        peak
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
        assert_eq!(b.write(0, &[1i16, 2, 3]), WriteOutcome::Stored);
        assert_eq!(
            read(&mut b, 6, Adjust::None),
            vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0]
        );
        assert_eq!(read(&mut b, 3, Adjust::None), vec![3.0, 0.0, 0.0]);
    }

    #[test]
    fn reordered_packets_go_back_in_place_and_gaps_are_silent() {
        let mut b = JitterBuffer::new(64, 0);
        b.write(4, &[5i16, 6]);
        b.write(0, &[1i16, 2]);
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
        assert_eq!(b.write(2, &[1i16]), WriteOutcome::Late { behind: 2 });
        assert_eq!(b.write(4, &[1i16; 8]), WriteOutcome::Stored);
        assert_eq!(b.write(12, &[1i16]), WriteOutcome::Overflow);
    }

    #[test]
    fn consumed_slots_are_cleared_for_reuse() {
        let mut b = JitterBuffer::new(4, 0);
        b.write(0, &[9i16; 4]);
        read(&mut b, 4, Adjust::None);
        // Same ring slots, next lap: nothing written there plays as silence.
        assert_eq!(read(&mut b, 4, Adjust::None), vec![0.0; 4]);
    }

    #[test]
    fn drop_skips_and_repeat_reuses_one_sample() {
        let mut b = JitterBuffer::new(64, 0);
        b.write(0, &(1..=20i16).collect::<Vec<_>>());
        assert_eq!(read(&mut b, 4, Adjust::Drop), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(b.read_pos(), 5);
        assert_eq!(read(&mut b, 4, Adjust::Repeat), vec![6.0, 7.0, 8.0, 8.0]);
        assert_eq!(b.read_pos(), 8);
        assert_eq!(read(&mut b, 2, Adjust::None), vec![9.0, 10.0]);
    }

    #[test]
    fn reads_and_writes_across_the_ring_boundary() {
        let mut b = JitterBuffer::new(8, 0);
        read(&mut b, 6, Adjust::None);
        // Positions 6..12 occupy ring slots 6, 7, 0, 1, 2, 3.
        assert_eq!(b.write(6, &[1i16, 2, 3, 4, 5, 6]), WriteOutcome::Stored);
        assert_eq!(read(&mut b, 4, Adjust::Drop), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(read(&mut b, 1, Adjust::None), vec![6.0]);
        // Everything consumed across the wrap was cleared.
        assert_eq!(read(&mut b, 8, Adjust::None), vec![0.0; 8]);
    }

    #[test]
    fn a_skewed_ring_reads_what_was_written_across_its_wrap() {
        let mut buf = JitterBuffer::new(8, 0).with_skew(5);
        assert_eq!(buf.write(0, &[1, 2, 3, 4, 5, 6]), WriteOutcome::Stored);
        assert_eq!(
            read(&mut buf, 6, Adjust::None),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(buf.write(6, &[7, 8, 9]), WriteOutcome::Stored);
        assert_eq!(read(&mut buf, 4, Adjust::None), vec![7.0, 8.0, 9.0, 0.0]);
        assert!(buf.into_ring().iter().all(|&s| s == 0));
    }

    #[test]
    fn skip_clears_what_it_skips_and_moves_on() {
        let mut buf = JitterBuffer::new(8, 0);
        assert_eq!(buf.write(0, &[1, 2, 3, 4, 5, 6]), WriteOutcome::Stored);
        buf.skip(4);
        assert_eq!(read(&mut buf, 2, Adjust::None), vec![5.0, 6.0]);
        // The skipped slots were cleared: a lap later they play silence.
        buf.skip(2);
        assert_eq!(read(&mut buf, 4, Adjust::None), vec![0.0; 4]);
        let ring = buf.into_ring();
        assert!(ring.iter().all(|&s| s == 0));
    }

    #[test]
    fn read_reports_the_peak_magnitude_of_what_it_played() {
        let mut b = JitterBuffer::new(16, 0);
        b.write(0, &[3i16, -7, 5, i16::MIN, 2, 1]);
        let mut out = [0.0f32; 2];
        assert_eq!(b.read(&mut out, Adjust::None), 7);
        // The Drop skips -32768 (the middle of the next four): not played.
        let mut out = [0.0f32; 3];
        assert_eq!(b.read(&mut out, Adjust::Drop), 5);
        assert_eq!(out, [5.0, 2.0, 1.0]);
        let mut b = JitterBuffer::new(16, 0);
        b.write(0, &[i16::MIN]);
        assert_eq!(b.read(&mut [0.0f32; 2], Adjust::None), 32768);
    }
}
