//! A source's jitter buffer: samples placed on a sample-accurate timeline
//! (position = packet index × packet size), read out one block at a time.
//!
//! Positions are `i64` sample indexes of the source's timeline; the read
//! position starts negative (the target delay) so the first packet waits.
//! A bitmap records which positions were written in the ring's current
//! lap; a position nobody wrote by the time it is read is a gap, filled by
//! the concealer ([`proto::plc`]: silence with `--plc off`) once the
//! stream has played audio (before that it is the start-up wait, silent
//! and not a gap). The ring keeps what was played (received or concealed)
//! behind the reader: that is the concealer's history.

use proto::plc::Concealer;

use super::coverage::Coverage;
use super::kernels;

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

/// The memory of one channel's buffer, allocated before the node starts
/// and reused by the sources that join it.
#[derive(Debug, Clone)]
pub struct ChannelMemory {
    /// The ring (zeroed, its length a power of two).
    ring: Box<[i16]>,
    /// Which ring slots were written in the current lap (all clear).
    written: Coverage,
    /// The gap concealer.
    concealer: Concealer,
}

impl ChannelMemory {
    /// Memory for a buffer of at least `capacity` samples with `concealer`.
    pub fn new(capacity: usize, concealer: Concealer) -> Self {
        let ring = new_ring(capacity);
        Self {
            written: Coverage::new(ring.len()),
            ring,
            concealer,
        }
    }
}

/// Most finished gaps held between two [`JitterBuffer::take_gaps`].
pub const GAPS: usize = 8;

/// A gap that was concealed: where it began and how many frames were
/// filled (at most the concealer's fade length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Timeline position of its first frame.
    pub pos: i64,
    /// Frames filled by concealment.
    pub frames: u64,
}

/// Bounded timeline of one source's samples.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    ring: Box<[i16]>,
    written: Coverage,
    concealer: Concealer,
    /// Whether the stream has played received audio (a gap before that is
    /// the start-up wait, not a loss).
    played: bool,
    /// Size of the latest packet written (what `--plc repeat` repeats).
    last_packet: usize,
    /// The gap being concealed: its first position and frames filled.
    gap: Option<Gap>,
    /// Gaps finished since the last [`JitterBuffer::take_gaps`].
    finished: [Gap; GAPS],
    finished_len: usize,
    /// Frames filled by concealment since the buffer was made.
    concealed: u64,
    /// Pitch searches the current read may still start (see
    /// [`JitterBuffer::read_budgeted`]).
    searches: u32,
    mask: i64,
    /// Added to positions before they wrap: sources at the same timeline
    /// position then read different cache sets of their rings.
    skew: i64,
    read_pos: i64,
    write_end: i64,
}

impl JitterBuffer {
    /// A buffer holding `capacity` samples (rounded up to a power of two)
    /// whose next sample to play is at `read_pos`, gaps silent.
    pub fn new(capacity: usize, read_pos: i64) -> Self {
        let off = Concealer::new(proto::plc::PlcMode::Off, 1);
        Self::from_memory(ChannelMemory::new(capacity, off), read_pos)
    }

    /// A buffer over `memory` (cleared, as [`ChannelMemory::new`] makes and
    /// [`JitterBuffer::into_memory`] returns), so sources joining a running
    /// node reuse memory allocated before it started.
    pub fn from_memory(memory: ChannelMemory, read_pos: i64) -> Self {
        let ChannelMemory {
            ring,
            written,
            concealer,
        } = memory;
        debug_assert!(ring.len().is_power_of_two());
        debug_assert!(ring.iter().all(|&s| s == 0));
        debug_assert!(written.is_clear());
        Self {
            mask: ring.len() as i64 - 1,
            skew: 0,
            ring,
            written,
            concealer,
            played: false,
            last_packet: 0,
            gap: None,
            finished: [Gap { pos: 0, frames: 0 }; GAPS],
            finished_len: 0,
            concealed: 0,
            searches: 0,
            read_pos,
            write_end: read_pos,
        }
    }

    /// Offsets where positions fall in the ring by `skew` samples.
    pub fn with_skew(mut self, skew: usize) -> Self {
        self.skew = (skew as i64) & self.mask;
        self
    }

    /// The memory, cleared, for the next source.
    pub fn into_memory(mut self) -> ChannelMemory {
        self.ring.fill(0);
        self.written.clear();
        self.concealer.end();
        ChannelMemory {
            ring: self.ring,
            written: self.written,
            concealer: self.concealer,
        }
    }

    /// Skips `samples` samples without playing them (the node skipped
    /// blocks after a stall), clearing them for the ring's next lap (and
    /// as the concealer's history: silence was heard there).
    pub fn skip(&mut self, samples: usize) {
        let n = samples.min(self.ring.len());
        let start = ((self.read_pos + self.skew) & self.mask) as usize;
        let first = n.min(self.ring.len() - start);
        self.ring[start..start + first].fill(0);
        self.ring[..n - first].fill(0);
        self.written.unmark(start, first);
        self.written.unmark(0, n - first);
        self.finish_gap();
        self.read_pos += samples as i64;
    }

    /// Frames filled by concealment so far (0 with `--plc off`).
    pub fn concealed(&self) -> u64 {
        self.concealed
    }

    /// Hands the gaps concealed since the last call to `f`, oldest first.
    pub fn take_gaps(&mut self, mut f: impl FnMut(Gap)) {
        for &gap in &self.finished[..self.finished_len] {
            f(gap);
        }
        self.finished_len = 0;
    }

    /// The gap being concealed is over (audio resumed, it faded out or the
    /// timeline moved): it joins the finished ones.
    fn finish_gap(&mut self) {
        self.concealer.end();
        self.close_gap();
    }

    /// The gap being concealed joins the finished ones (if it filled any).
    fn close_gap(&mut self) {
        if let Some(gap) = self.gap.take() {
            if gap.frames > 0 && self.finished_len < GAPS {
                self.finished[self.finished_len] = gap;
                self.finished_len += 1;
            }
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
        self.written.mark(start, first);
        if first < len {
            fill(first, &mut self.ring[..len - first]);
            self.written.mark(0, len - first);
        }
        self.write_end = self.write_end.max(end);
        self.last_packet = len;
        WriteOutcome::Stored
    }

    /// [`JitterBuffer::read_budgeted`] with no limit on pitch searches.
    pub fn read(&mut self, out: &mut [f32], adjust: Adjust) -> u32 {
        let mut unlimited = u32::MAX;
        self.read_budgeted(out, adjust, &mut unlimited)
    }

    /// Plays one block into `out` (as f32 sample values), consuming
    /// `adjust.consumed(out.len())` samples; gaps are concealed. A gap
    /// that begins takes one of `searches` (the node's budget per block)
    /// for its pitch search; when none is left it repeats the last packet.
    /// Returns the block's peak magnitude (0..=32768), for the meters.
    ///
    /// A `Drop` skips the block's middle sample, a `Repeat` plays it twice.
    pub fn read_budgeted(&mut self, out: &mut [f32], adjust: Adjust, searches: &mut u32) -> u32 {
        self.searches = *searches;
        let peak = self.read_adjusted(out, adjust);
        *searches = self.searches;
        peak
    }

    fn read_adjusted(&mut self, out: &mut [f32], adjust: Adjust) -> u32 {
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
        let rest = (frames - first).min(self.ring.len());
        super::prefetch::prefetch(&self.ring[start..start + first]);
        super::prefetch::prefetch(&self.ring[..rest]);
        // And the bits that say which of them were written.
        super::prefetch::prefetch(self.written.words(start, first));
        super::prefetch::prefetch(self.written.words(0, rest));
    }

    /// Moves `out.len()` samples from timeline position `pos` into `out`,
    /// marking their slots unwritten for the ring's next lap, and
    /// conceals what nobody wrote; returns their peak magnitude.
    fn take(&mut self, pos: i64, out: &mut [f32]) -> u32 {
        let start = ((pos + self.skew) & self.mask) as usize;
        let first = out.len().min(self.ring.len() - start);
        let complete = self.written.all(start, first) && self.written.all(0, out.len() - first);
        if !complete {
            return self.take_with_gaps(pos, out);
        }
        self.written.unmark(start, first);
        self.written.unmark(0, out.len() - first);
        if !out.is_empty() {
            self.played = true;
            self.finish_gap();
        }
        // Everything was written: at most two contiguous runs of the ring.
        let (out_head, out_tail) = out.split_at_mut(first);
        let head = kernels::convert(&self.ring[start..start + first], out_head);
        let tail = kernels::convert(&self.ring[..out_tail.len()], out_tail);
        head.max(tail)
    }

    /// [`JitterBuffer::take`] of a stretch with unwritten positions: runs
    /// of received samples play as they are, runs of gap are concealed
    /// (and kept in the ring as what was played, the next gap's history).
    fn take_with_gaps(&mut self, pos: i64, out: &mut [f32]) -> u32 {
        let mut peak = 0u32;
        let mut i = 0;
        while i < out.len() {
            let slot = self.slot(pos + i as i64);
            // A run stops at the ring's end, so it is one slice of it.
            let limit = (out.len() - i).min(self.ring.len() - slot);
            let written = self.written.get(slot);
            let len = self.written.run(slot, limit, written).max(1);
            let out = &mut out[i..i + len];
            let ring = slot..slot + len;
            if written {
                self.played = true;
                self.finish_gap();
                self.written.unmark(slot, len);
                peak = peak.max(kernels::convert(&self.ring[ring], out));
            } else {
                self.conceal(pos + i as i64, out);
                for (s, &o) in self.ring[ring].iter_mut().zip(out.iter()) {
                    *s = o as i16;
                    peak = peak.max(s.unsigned_abs().into());
                }
            }
            i += len;
        }
        peak
    }

    /// Fills `out`, the unwritten positions from `pos` on, with the
    /// concealment (whole sample values); silence before the stream
    /// played any audio.
    fn conceal(&mut self, pos: i64, out: &mut [f32]) {
        if !self.played {
            out.fill(0.0);
            return;
        }
        if !self.concealer.in_gap() {
            let n = self.concealer.history_len() as i64;
            // A slot behind the reader holds what was played there unless
            // a write a lap ahead reused it (a source running far ahead).
            let reused_below = self.write_end - self.ring.len() as i64;
            let (ring, skew, mask) = (&self.ring, self.skew, self.mask);
            let searched = self.concealer.start(
                |history| {
                    for (k, h) in history.iter_mut().enumerate() {
                        let p = pos - n + k as i64;
                        *h = if p < reused_below {
                            0.0
                        } else {
                            f32::from(ring[((p + skew) & mask) as usize])
                        };
                    }
                },
                self.last_packet,
                self.searches > 0,
            );
            if searched {
                self.searches -= 1;
            }
            self.gap = Some(Gap { pos, frames: 0 });
        }
        let filled = self.concealer.fill(out) as u64;
        if filled == out.len() as u64 {
            self.merge_into_resumed(pos, out);
        }
        // Whole sample values, as received ones are (nothing to do once
        // the gap is silent).
        for o in out[..filled as usize].iter_mut() {
            // Half away from zero, as `f32::round`, without its libm call
            // (no rounding instruction in baseline x86-64).
            let c = o.clamp(-32768.0, 32767.0);
            *o = (if c < 0.0 { c - 0.5 } else { c + 0.5 }) as i32 as f32;
        }
        self.concealed += filled;
        if let Some(gap) = self.gap.as_mut() {
            gap.frames += filled;
        }
        if filled < out.len() as u64 {
            // Faded out (or nothing to continue): the rest of the gap is
            // silence, not counted; the concealer stays in the gap until
            // audio resumes.
            self.close_gap();
        }
    }

    /// When the audio after the gap being concealed is already here and
    /// the gap ends within its concealed span, cross-fades the part of
    /// `out` (the concealment of the positions from `pos` on) near the
    /// gap's end into it ([`Concealer::merge`]); calls for later parts of
    /// the same gap find the same end and continue the same fade.
    fn merge_into_resumed(&mut self, pos: i64, out: &mut [f32]) {
        let needs = self.concealer.merge_needs();
        let Some(gap) = self.gap else { return };
        if needs == 0 {
            return;
        }
        let last = gap.pos + self.concealer.fade_end() as i64;
        let Some(end) = self.next_written(pos + out.len() as i64, last) else {
            return;
        };
        // The audio the fit reads after the end, within one lap of the ring.
        if end + needs as i64 - pos >= self.ring.len() as i64 || !self.all_written(end, needs) {
            return;
        }
        let (ring, skew, mask) = (&self.ring, self.skew, self.mask);
        // A fit (about 18 000 multiply-adds) costs under half a pitch search: the same budget.
        self.concealer
            .merge(out, (end - pos) as usize, &mut self.searches, |k| {
                f32::from(ring[((end + k as i64 + skew) & mask) as usize])
            });
    }

    /// The first written position from `from` to `last` (both included).
    fn next_written(&self, from: i64, last: i64) -> Option<i64> {
        let mut p = from;
        while p <= last {
            let slot = self.slot(p);
            let limit = (self.ring.len() - slot).min((last - p + 1) as usize);
            match self.written.run(slot, limit, false) {
                0 => return Some(p),
                n => p += n as i64,
            }
        }
        None
    }

    /// Whether the `len` positions from `from` on are all written.
    fn all_written(&self, from: i64, len: usize) -> bool {
        let slot = self.slot(from);
        let first = len.min(self.ring.len() - slot);
        self.written.all(slot, first) && self.written.all(0, len - first)
    }

    fn slot(&self, pos: i64) -> usize {
        ((pos + self.skew) & self.mask) as usize
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
        assert!(buf.into_memory().ring.iter().all(|&s| s == 0));
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
        let memory = buf.into_memory();
        assert!(memory.ring.iter().all(|&s| s == 0));
        assert!(memory.written.is_clear());
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

    fn tone(from: usize, len: usize) -> Vec<i16> {
        (from..from + len)
            .map(|i| (8000.0 * (i as f32 * 0.0627).sin()).round() as i16)
            .collect()
    }

    fn concealing(capacity: usize, mode: proto::plc::PlcMode) -> JitterBuffer {
        let memory = ChannelMemory::new(capacity, Concealer::new(mode, 44_100));
        JitterBuffer::from_memory(memory, -100)
    }

    #[test]
    fn a_gap_is_concealed_and_received_samples_stay_exact() {
        use proto::plc::PlcMode;
        for mode in [PlcMode::Predict, PlcMode::Repeat] {
            let mut b = concealing(8192, mode).with_skew(3);
            // 2000 samples, then 441 lost, then 2000 more.
            b.write(0, &tone(0, 2000));
            b.write(2441, &tone(2441, 2000));
            let out = read(&mut b, 4541, Adjust::None);
            // The start-up wait is silence, not concealment.
            assert!(out[..100].iter().all(|&x| x == 0.0));
            let played: Vec<i16> = out[100..].iter().map(|&x| x as i16).collect();
            assert_eq!(played[..2000], tone(0, 2000)[..], "{mode}");
            assert_eq!(played[2441..], tone(2441, 2000)[..], "{mode}");
            let gap = &played[2000..2441];
            assert!(
                gap.iter().filter(|&&x| x.abs() > 2000).count() > 200,
                "{mode}"
            );
            assert_eq!(b.concealed(), 441);
            let mut gaps = Vec::new();
            b.take_gaps(|g| gaps.push(g));
            assert_eq!(
                gaps,
                [Gap {
                    pos: 2000,
                    frames: 441
                }]
            );
            // The concealed samples are the history of the next gap and
            // nothing is left marked written.
            let memory = b.into_memory();
            assert!(memory.written.is_clear());
        }
    }

    #[test]
    fn a_gap_whose_next_packet_is_there_joins_it_without_a_step() {
        use proto::plc::PlcMode;
        // The audio after the gap is out of phase with what repetition
        // predicts (the source's phase jumps), as real music often is.
        let after = tone(2441 + 37, 2000);
        let play = |late: bool| {
            let mut b = concealing(8192, PlcMode::Predict);
            b.write(0, &tone(0, 2000));
            if !late {
                b.write(2441, &after);
            }
            // In 5 ms blocks, as the node plays, one of them cut short
            // where the gap ends (the late packet is written there).
            let mut out = Vec::new();
            let blocks = [220; 11].into_iter().chain([121, 220, 220]);
            for (k, n) in blocks.enumerate() {
                if late && k == 12 {
                    b.write(2441, &after);
                }
                out.extend(read(&mut b, n, Adjust::None));
            }
            let count = b.concealed();
            (
                out[100..].iter().map(|&x| x as i16).collect::<Vec<_>>(),
                count,
            )
        };
        // The packet after the gap came late (only once the gap had been
        // played): the concealment ends with a step into it.
        let (plain, _) = play(true);
        let (merged, concealed) = play(false);
        assert_eq!(concealed, 441, "the same frames concealed");
        assert_eq!(merged[..2000], tone(0, 2000)[..]);
        assert_eq!(
            merged[2441..2441 + 100],
            after[..100],
            "received audio exact"
        );
        // Only the gap's last few milliseconds moved.
        assert_eq!(merged[..2441 - 220], plain[..2441 - 220]);
        let step = |x: &[i16]| (i32::from(x[2440]) - i32::from(after[0])).abs();
        let slope = (i32::from(after[1]) - i32::from(after[0])).abs();
        assert!(step(&plain) > 3 * slope, "{} vs {slope}", step(&plain));
        assert!(step(&merged) <= 2 * slope, "{} vs {slope}", step(&merged));
    }

    #[test]
    fn a_long_gap_fades_to_silence_and_counts_50_ms() {
        let mut b = concealing(8192, proto::plc::PlcMode::Predict);
        b.write(0, &tone(0, 3000));
        let out = read(&mut b, 100 + 3000 + 4000, Adjust::None);
        let tail = &out[3100..];
        assert!(tail[..441].iter().any(|&x| x.abs() > 4000.0));
        assert!(tail[2205..].iter().all(|&x| x == 0.0));
        assert_eq!(b.concealed(), 2205);
        let mut gaps = Vec::new();
        b.take_gaps(|g| gaps.push(g));
        assert_eq!(
            gaps,
            [Gap {
                pos: 3000,
                frames: 2205
            }]
        );
    }

    #[test]
    fn off_plays_gaps_as_silence() {
        let mut b = concealing(64, proto::plc::PlcMode::Off);
        b.read(&mut [0.0; 100], Adjust::None);
        b.write(0, &[5, 6]);
        b.write(4, &[7, 8]);
        assert_eq!(
            read(&mut b, 8, Adjust::None),
            vec![5.0, 6.0, 0.0, 0.0, 7.0, 8.0, 0.0, 0.0]
        );
        assert_eq!(b.concealed(), 0);
    }
}
