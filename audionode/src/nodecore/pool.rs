//! Per-source memory allocated before the node receives its first packet:
//! one set for each of `--max-sources` slots, taken when a source joins and
//! returned (cleared) when it leaves, so joins and leaves on a running node
//! allocate nothing.

use proto::plc::Concealer;

use super::jitter_buffer::ChannelMemory;
use super::positions::Positions;
use super::source::SourceParams;
use super::tracker::RESTART_RUN;

/// The memory one source uses.
#[derive(Debug)]
pub struct SourceMemory {
    /// The jitter buffer's ring, coverage bitmap and concealer (cleared).
    pub ring: ChannelMemory,
    /// The right channel's, for a stereo source (cleared). Its pages
    /// are only touched, and so only cost memory, once a stereo source
    /// uses the slot (the concealers' once a gap needs them).
    pub ring_right: ChannelMemory,
    /// Recent packets' positions.
    pub positions: Positions,
    /// Packets held while a restart is on probation (empty).
    pub stash: Vec<i16>,
    /// Where the slot's ring starts its timeline (see
    /// [`super::jitter_buffer::JitterBuffer::with_skew`]).
    pub skew: usize,
}

impl SourceMemory {
    fn new(params: &SourceParams, slot: usize) -> Self {
        Self {
            // Rings are power-of-two sized and all read at about the same
            // position: without a skew, every source's read lands in the
            // same cache sets. 67 samples (134 bytes) apart spreads them.
            skew: slot * 67,
            ring: ChannelMemory::new(
                ring_capacity(params),
                Concealer::new(params.plc, params.rate),
            ),
            ring_right: ChannelMemory::new(
                ring_capacity(params),
                Concealer::new(params.plc, params.rate),
            ),
            positions: Positions::new(),
            // A restart's run of 20 ms packets; a run of longer packets
            // grows it (a restart, not the steady state).
            stash: Vec::with_capacity(RESTART_RUN as usize * params.rate as usize / 50),
        }
    }
}

/// Samples a source's jitter buffer holds ahead of the reader: the largest
/// target, two blocks, 50 ms of slack for a source that runs ahead, and
/// room for four 25 ms packets (the original streamer's longest), rounded
/// up to a power of two by the ring (8192 samples, 16 KB, at 44.1 kHz with
/// a fixed 20 ms target). Not more: every slot is touched once per lap, so
/// the ring's size is the node's memory and cache footprint per source
/// (32 KB rings cost 10-25 % more CPU per packet at 1000 sources). A
/// longer packet than the room left is counted as overflow.
pub fn ring_capacity(params: &SourceParams) -> usize {
    let rate = f64::from(params.rate);
    let max_target_ms = match params.target {
        super::source::JitterTarget::FixedMs(ms) => ms,
        super::source::JitterTarget::Auto => super::source::AUTO_MAX_MS,
    };
    (max_target_ms * rate / 1000.0) as usize
        + 2 * params.block_frames
        + params.rate as usize / 20
        + 4 * params.rate as usize / 40
}

/// The free sets.
#[derive(Debug)]
pub struct MemoryPool {
    free: Vec<SourceMemory>,
}

impl MemoryPool {
    /// `slots` sets for sources with `params`.
    pub fn new(slots: usize, params: &SourceParams) -> Self {
        Self {
            free: (0..slots).map(|k| SourceMemory::new(params, k)).collect(),
        }
    }

    /// A set, if any is free.
    pub fn take(&mut self) -> Option<SourceMemory> {
        self.free.pop()
    }

    /// Returns a set (cleared by the caller).
    pub fn give(&mut self, memory: SourceMemory) {
        // Never beyond the initial capacity: `free` was sized for every slot.
        if self.free.len() < self.free.capacity() {
            self.free.push(memory);
        }
    }
}
