//! The node's sans-IO engine: admits sources, feeds them datagrams, runs the
//! mixing clock from the cumulative frame count, drops silent streams, and
//! applies the control state (master, per-source volume/balance/mute/solo).
//!
//! Time is passed in (`now`, since the node started); the run loop owns the
//! sockets and sleeps. Everything a source needs is allocated when the
//! engine is made (`max_sources` slots), so nothing here allocates per
//! packet, per block, or when sources join and leave.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::event::{DropReason, Event, EventKind, Events, NamedBy, NODE};
use super::ingress::{Malformed, SourcePacket};
use super::mixer::{Mixer, StereoGain};
use super::name::SourceName;
use super::pool::MemoryPool;
use super::prefetch;
use super::source::{MixClock, ReceiverReport, Source, SourceParams};
use super::source_id::SourceId;
use super::stats::{NodeCounters, SourceRow, StatsFrame};

/// Settings of the engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Source parameters (rate, block size, jitter target, …).
    pub source: SourceParams,
    /// A stream that sends nothing for this long is dropped.
    pub timeout: Duration,
    /// Most sources mixed at once.
    pub max_sources: usize,
    /// Longest valid datagram in bytes; longer ones are counted as malformed.
    pub max_datagram_bytes: usize,
}

/// Mixer controls of one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceControls {
    /// Linear gain, 0 and up (1 = unity).
    pub volume: f32,
    /// −1 (left) … 0 (centre) … 1 (right).
    pub balance: f32,
    /// Silenced.
    pub mute: bool,
    /// When any source is soloed, only soloed sources are heard.
    pub solo: bool,
}

impl Default for SourceControls {
    fn default() -> Self {
        Self {
            volume: 1.0,
            balance: 0.0,
            mute: false,
            solo: false,
        }
    }
}

/// Distinct refused RTP streams remembered, so each is reported once.
const REFUSED_SSRCS: usize = 64;
/// SDES names kept for RTP streams not heard yet (a sender may announce
/// itself before its first packet, or its RTCP socket may be read before
/// its RTP one); the oldest is replaced first.
const EARLY_NAMES: usize = 16;
/// How long such a name waits for its stream's first packet.
const EARLY_NAME_FOR: Duration = Duration::from_secs(10);

/// How long a dropped source's controls are remembered for its return.
pub const REMEMBER_CONTROLS: Duration = Duration::from_secs(600);
/// Most dropped sources whose controls are remembered.
const REMEMBER_MAX: usize = 4096;
/// A mixing clock this many blocks behind skips forward instead of
/// mixing every missed block back to back.
pub const STALL_BLOCKS: u64 = 4;
/// Pitch searches concealment may start per block, node-wide: a gap that
/// begins when they are spent (many streams ending or losing at once)
/// repeats its last packet instead, so concealment never holds up a block.
/// A search takes about 30 µs at 44.1 kHz (a release build).
const SEARCHES_PER_BLOCK: u32 = 8;
/// Meter windows kept: meters show the peak of the last few stats frames,
/// so a reader that polls less often than frames are published sees every
/// peak.
const METER_WINDOWS: usize = 3;

#[derive(Debug)]
struct Slot {
    source: Source,
    controls: SourceControls,
    name: SourceName,
    /// The operator named it: the sender's SDES no longer renames it.
    named_by_operator: bool,
    /// The sender sent an SDES NAME: its CNAME no longer renames it.
    sdes_name: bool,
    /// The sender said goodbye: dropped once its buffer has played.
    closing: bool,
    /// The gain applied at the end of the last block (ramp start).
    applied: StereoGain,
    /// Largest post-fader sample magnitude in each recent meter window
    /// (`meter_window` is the current one).
    peaks: [f32; METER_WINDOWS],
    /// The same before gain, mute and solo (the source's input level).
    input_peaks: [f32; METER_WINDOWS],
}

/// How many sources in front of the one being mixed have their samples
/// prefetched: far enough for a load from memory to finish while the
/// sources before it are mixed (about a microsecond each), near enough
/// that the lines are still in the cache when their turn comes (1 and 4
/// measured worse than 2 at 1000 sources).
const RING_AHEAD: usize = 2;
/// How many sources in front have their state (the fields a block reads)
/// prefetched: further than [`RING_AHEAD`], because finding a source's
/// samples reads its state.
const STATE_AHEAD: usize = 5;

/// A walk over the occupied slots some distance in front of the one
/// being mixed, prefetching each once.
#[derive(Default)]
struct Lookahead {
    /// The next slot to look at.
    next: usize,
    /// Occupied slots prefetched and not yet mixed (the current one
    /// included).
    in_flight: usize,
}

impl Lookahead {
    /// Called once per occupied slot mixed, before mixing it: prefetches
    /// (`hint`) until `distance` slots beyond it are.
    #[inline]
    fn step(&mut self, slots: &[Option<Slot>], distance: usize, hint: impl Fn(&Slot)) {
        while self.in_flight <= distance && self.next < slots.len() {
            if let Some(slot) = &slots[self.next] {
                hint(slot);
                self.in_flight += 1;
            }
            self.next += 1;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

impl Slot {
    /// Prefetches what mixing a block reads of this slot besides its samples.
    #[inline]
    fn prefetch_state(&self) {
        self.source.prefetch_state();
        prefetch::prefetch(std::slice::from_ref(&self.controls));
        prefetch::prefetch(std::slice::from_ref(&self.applied));
        prefetch::prefetch(&self.peaks);
        prefetch::prefetch(&self.input_peaks);
    }
}

/// The mixing engine.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    slots: Vec<Option<Slot>>,
    by_id: HashMap<SourceId, usize>,
    pool: MemoryPool,
    mixer: Mixer,
    block: Vec<f32>,
    block_right: Vec<f32>,
    out: Vec<i16>,
    frames_mixed: u64,
    /// Node time and frame count when the mixing clock last (re)started;
    /// `None` while no stream is active (the node is silent).
    epoch: Option<(Duration, u64)>,
    master: f32,
    counters: NodeCounters,
    refused_log: LogLimiter,
    malformed_log: LogLimiter,
    remembered: HashMap<SourceId, (Remembered, Duration)>,
    /// RTP streams refused (unknown payload type, another rate), each
    /// reported once; oldest replaced first.
    refused_ssrcs: [Option<u32>; REFUSED_SSRCS],
    /// SDES names of streams not heard yet, given to them when they join.
    early_names: [Option<EarlyName>; EARLY_NAMES],
    early_next: usize,
    refused_next: usize,
    meter_window: usize,
    out_peaks: [(f32, f32); METER_WINDOWS],
    clipped: [bool; METER_WINDOWS],
    /// Active sources soloed: kept as controls change, so a block need not
    /// visit every slot (a cache line each) before mixing to learn whether
    /// any is.
    soloed: usize,
}

/// An RTCP SDES name that arrived before its stream's first packet.
#[derive(Debug, Clone, Copy)]
struct EarlyName {
    ssrc: u32,
    name: SourceName,
    /// A CNAME (a NAME, arriving later, replaces it; not the reverse).
    cname: bool,
    at: Duration,
}

/// What the node remembers of a source that left, for its return.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    controls: SourceControls,
    name: SourceName,
    named_by_operator: bool,
}

/// At most one event per second for a kind of nuisance.
#[derive(Debug, Default)]
struct LogLimiter {
    last: Option<Duration>,
}

impl LogLimiter {
    /// Whether an event may be reported now.
    fn allow(&mut self, now: Duration) -> bool {
        if self
            .last
            .is_some_and(|last| now < last + Duration::from_secs(1))
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

impl Engine {
    /// An idle engine with memory for `config.max_sources` sources.
    pub fn new(config: EngineConfig) -> Self {
        let frames = config.source.block_frames;
        let slots = config.max_sources;
        Self {
            config,
            slots: (0..slots).map(|_| None).collect(),
            // Twice the entries ever held: hashbrown then always rehashes
            // its tombstones in place instead of growing (an allocation).
            by_id: HashMap::with_capacity(2 * slots),
            pool: MemoryPool::new(slots, &config.source),
            mixer: Mixer::new(frames),
            block: vec![0.0; frames],
            block_right: vec![0.0; frames],
            out: vec![0; 2 * frames],
            frames_mixed: 0,
            epoch: None,
            master: 1.0,
            counters: NodeCounters::default(),
            refused_log: LogLimiter::default(),
            malformed_log: LogLimiter::default(),
            remembered: HashMap::with_capacity(2 * REMEMBER_MAX),
            refused_ssrcs: [None; REFUSED_SSRCS],
            refused_next: 0,
            early_names: [None; EARLY_NAMES],
            early_next: 0,
            meter_window: 0,
            out_peaks: [(0.0, 0.0); METER_WINDOWS],
            clipped: [false; METER_WINDOWS],
            soloed: 0,
        }
    }

    /// Counts a datagram from `from`, received at `now`, that is not a
    /// valid source packet.
    pub fn on_malformed(
        &mut self,
        now: Duration,
        from: SocketAddr,
        bytes: usize,
        why: Malformed,
        events: &mut Events,
    ) {
        self.counters.packets += 1;
        if let Some(ssrc) = why.ssrc() {
            // An RTP stream the node cannot mix: one clear line per SSRC.
            self.counters.malformed_unknown += 1;
            if !self.refused_ssrcs.contains(&Some(ssrc)) {
                self.refused_ssrcs[self.refused_next] = Some(ssrc);
                self.refused_next = (self.refused_next + 1) % REFUSED_SSRCS;
                events.push(Event {
                    at: now,
                    source: SourceId::Ssrc(ssrc),
                    kind: EventKind::RtpRefused { why, from },
                });
            }
            return;
        }
        if let Some(&index) = self.by_id.get(&SourceId::Addr(from)) {
            if let Some(slot) = self.slots[index].as_mut() {
                slot.source.on_malformed(now);
            }
        } else {
            self.counters.malformed_unknown += 1;
        }
        if self.malformed_log.allow(now) {
            events.push(Event {
                at: now,
                source: SourceId::Addr(from),
                kind: EventKind::Malformed { len: bytes, why },
            });
        }
    }

    /// Handles one packet from `from` that arrived at `now` (the kernel's
    /// timestamp: everything is timed by the arrival, so the time a packet
    /// waited in the socket never counts as network jitter).
    pub fn on_packet(
        &mut self,
        now: Duration,
        from: SocketAddr,
        packet: &SourcePacket<'_>,
        events: &mut Events,
    ) {
        self.counters.packets += 1;
        let id = packet.source_id(from);
        if let Some(&index) = self.by_id.get(&id) {
            let clock = self.clock(now);
            if let Some(slot) = self.slots[index].as_mut() {
                slot.source.on_packet(from, packet, clock, events);
            }
            return;
        }
        let (Some(free), Some(memory)) = (
            self.slots.iter().position(Option::is_none),
            self.pool.take(),
        ) else {
            self.counters.refused += 1;
            if self.refused_log.allow(now) {
                events.push(Event {
                    at: now,
                    source: id,
                    kind: EventKind::Refused {
                        max_sources: self.config.max_sources,
                    },
                });
            }
            return;
        };
        if self.epoch.is_none() {
            self.epoch = Some((now, self.frames_mixed));
        }
        let clock = self.clock(now);
        let source = Source::new(id, from, self.config.source, memory, packet, clock, events);
        let remembered = match self.remembered.remove(&id) {
            Some((r, dropped)) if now.saturating_sub(dropped) <= REMEMBER_CONTROLS => r,
            _ => Remembered {
                controls: SourceControls::default(),
                name: SourceName::EMPTY,
                named_by_operator: false,
            },
        };
        let controls = remembered.controls;
        if !remembered.name.is_empty() {
            events.push(Event {
                at: now,
                source: id,
                kind: EventKind::Named {
                    name: remembered.name,
                    by: NamedBy::Rtcp,
                },
            });
        }
        self.slots[free] = Some(Slot {
            source,
            controls,
            name: remembered.name,
            named_by_operator: remembered.named_by_operator,
            sdes_name: false,
            closing: false,
            applied: StereoGain::from_controls(controls.volume, controls.balance, self.master),
            peaks: [0.0; METER_WINDOWS],
            input_peaks: [0.0; METER_WINDOWS],
        });
        self.by_id.insert(id, free);
        self.soloed += usize::from(controls.solo);
        self.counters.streams_started += 1;
        if let SourceId::Ssrc(ssrc) = id {
            let early = self.early_names.iter_mut().find(|e| {
                e.is_some_and(|e| e.ssrc == ssrc && now.saturating_sub(e.at) <= EARLY_NAME_FOR)
            });
            if let Some(early) = early.and_then(Option::take) {
                self.set_sender_name(now, ssrc, early.name, early.cname, events);
            }
        }
    }

    /// When the next block is due; `None` while idle (no active stream).
    pub fn next_deadline(&self) -> Option<Duration> {
        let (t0, f0) = self.epoch?;
        let frames = self.frames_mixed - f0;
        let nanos = frames as u128 * 1_000_000_000 / u128::from(self.config.source.rate);
        Some(t0 + Duration::from_nanos(nanos as u64))
    }

    fn block_time(&self) -> Duration {
        Duration::from_nanos(
            self.config.source.block_frames as u64 * 1_000_000_000
                / u64::from(self.config.source.rate),
        )
    }

    /// Mixes the next block if it is due at `now`; `true` if it did (its
    /// interleaved stereo samples are then in [`Engine::block`]).
    ///
    /// When the clock is more than [`STALL_BLOCKS`] blocks behind (the
    /// thread was held off the CPU), the missed blocks are skipped, every
    /// source skipping the same frames, and a `Mixing stalled` event says
    /// so: a burst of stale blocks would only overflow every receiver.
    pub fn mix_due(&mut self, now: Duration, events: &mut Events) -> bool {
        let Some(deadline) = self.next_deadline() else {
            return false;
        };
        if deadline > now {
            return false;
        }
        let frames = self.config.source.block_frames;
        let block_time = self.block_time();
        let mut behind = now - deadline;
        if let Some((_, f0)) = self.epoch {
            if self.frames_mixed == f0 && behind > block_time {
                // The clock started at a packet that waited in the socket
                // before the node could mix (it had just started, or was
                // idle and held off the CPU): start mixing now rather than
                // "skip" audio that was never late. Every source keeps its
                // frames; only the wall-clock time they play at moves.
                self.epoch = Some((now, f0));
                behind = Duration::ZERO;
            }
        }
        let behind_blocks = (behind.as_nanos() / block_time.as_nanos().max(1)) as u64;
        if behind_blocks > STALL_BLOCKS {
            // Skip to the block that is due now.
            let skipped = behind_blocks;
            let skipped_frames = skipped as usize * frames;
            for slot in self.slots.iter_mut().flatten() {
                slot.source.skip(skipped_frames);
            }
            self.frames_mixed += skipped_frames as u64;
            self.counters.skipped_blocks += skipped;
            events.push(Event {
                at: now,
                source: NODE,
                kind: EventKind::Stall {
                    skipped_blocks: skipped,
                    behind_ms: behind.as_millis() as u64,
                },
            });
        } else if behind > block_time {
            self.counters.deadline_misses += 1;
        }
        debug_assert_eq!(
            self.soloed,
            self.slots
                .iter()
                .flatten()
                .filter(|s| s.controls.solo)
                .count()
        );
        let any_solo = self.soloed > 0;
        let window = self.meter_window;
        self.mixer.begin(frames);
        // Two walks in front of the mix start the loads of the sources'
        // state and then of their samples (see `prefetch`).
        let mut state = Lookahead::default();
        let mut samples = Lookahead::default();
        let mut searches = SEARCHES_PER_BLOCK;
        for index in 0..self.slots.len() {
            if self.slots[index].is_none() {
                continue;
            }
            state.step(&self.slots, STATE_AHEAD, Slot::prefetch_state);
            samples.step(&self.slots, RING_AHEAD, |s| s.source.prefetch_block(frames));
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            let loudest = slot.source.read_block(
                now,
                &mut self.block,
                &mut self.block_right,
                &mut searches,
                events,
            ) as f32;
            let c = slot.controls;
            let audible = !c.mute && (!any_solo || c.solo);
            let target = if audible {
                StereoGain::from_controls(c.volume, c.balance, self.master)
            } else {
                StereoGain::SILENT
            };
            if slot.source.channels() == 2 {
                self.mixer
                    .add_stereo(&self.block, &self.block_right, slot.applied, target);
            } else {
                self.mixer.add(&self.block, slot.applied, target);
            }
            slot.applied = target;
            slot.peaks[window] =
                slot.peaks[window].max(loudest * target.left.max(target.right) / 32768.0);
            slot.input_peaks[window] = slot.input_peaks[window].max(loudest / 32768.0);
        }
        let rendered = self.mixer.render(&mut self.out);
        self.counters.clipped += rendered.clipped;
        self.clipped[window] |= rendered.clipped > 0;
        let peak = &mut self.out_peaks[window];
        peak.0 = peak.0.max(rendered.peak_left as f32 / 32768.0);
        peak.1 = peak.1.max(rendered.peak_right as f32 / 32768.0);
        self.counters.blocks += 1;
        self.counters.frames += frames as u64;
        self.frames_mixed += frames as u64;
        true
    }

    /// The last block mixed, interleaved stereo.
    pub fn block(&self) -> &[i16] {
        &self.out
    }

    /// Drops streams silent for longer than the timeout and logs summaries
    /// of event bursts whose window ended.
    pub fn expire(&mut self, now: Duration, events: &mut Events) {
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            if slot.closing && slot.source.played_out() {
                slot.source.drop_stream(now, DropReason::Closed, events);
                self.remove(index, now);
            } else if now.saturating_sub(slot.source.last_heard()) > self.config.timeout {
                slot.source.drop_stream(now, DropReason::Timeout, events);
                self.remove(index, now);
            } else {
                slot.source.flush_events(now, false, events);
            }
        }
    }

    /// Drops every stream (node shutting down), reporting final counters.
    pub fn shutdown(&mut self, now: Duration, events: &mut Events) {
        for index in 0..self.slots.len() {
            if let Some(slot) = self.slots[index].as_mut() {
                slot.source.drop_stream(now, DropReason::Shutdown, events);
                self.remove(index, now);
            }
        }
    }

    /// Fills `frame` with the counters, controls and the meters of the
    /// last few windows, then starts a new meter window. Allocates nothing:
    /// the frame has a row for every slot.
    pub fn write_stats(&mut self, now: Duration, frame: &mut StatsFrame) {
        frame.at = now;
        frame.node = self.counters;
        frame.master = self.master;
        frame.out_peak = self
            .out_peaks
            .iter()
            .fold((0.0, 0.0), |a, p| (a.0.max(p.0), a.1.max(p.1)));
        frame.clipped = self.clipped.iter().any(|&c| c);
        frame.clear();
        // One pass: each row, then the source's next meter window cleared.
        let next = (self.meter_window + 1) % METER_WINDOWS;
        for slot in self.slots.iter_mut().flatten() {
            frame.push(SourceRow {
                id: slot.source.id(),
                from: slot.source.from(),
                name: slot.name,
                channels: slot.source.channels(),
                stats: slot.source.stats(),
                controls: slot.controls,
                peak: slot.peaks.iter().fold(0.0, |a: f32, &p| a.max(p)),
                input_peak: slot.input_peaks.iter().fold(0.0, |a: f32, &p| a.max(p)),
            });
            slot.peaks[next] = 0.0;
            slot.input_peaks[next] = 0.0;
        }
        self.meter_window = next;
        self.out_peaks[next] = (0.0, 0.0);
        self.clipped[next] = false;
    }

    /// Sets the master volume (linear, 0 and up).
    pub fn set_master(&mut self, volume: f32) {
        self.master = volume.max(0.0);
    }

    /// The master volume.
    pub fn master(&self) -> f32 {
        self.master
    }

    /// Sets one source's controls; `false` if no such source is active.
    pub fn set_controls(&mut self, id: SourceId, controls: SourceControls) -> bool {
        match self.by_id.get(&id) {
            Some(&index) => match self.slots[index].as_mut() {
                Some(slot) => {
                    self.soloed =
                        self.soloed + usize::from(controls.solo) - usize::from(slot.controls.solo);
                    slot.controls = controls;
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    /// One source's controls, if it is active.
    pub fn controls(&self, id: SourceId) -> Option<SourceControls> {
        let index = *self.by_id.get(&id)?;
        self.slots[index].as_ref().map(|s| s.controls)
    }

    /// Names a source: `by` the operator, or the sender itself (RTCP SDES,
    /// a browser sender), whose names no longer rename a source the
    /// operator named. `false` if no such source is active.
    pub fn set_name(
        &mut self,
        now: Duration,
        id: SourceId,
        name: SourceName,
        by: NamedBy,
        events: &mut Events,
    ) -> bool {
        let Some(slot) = self.by_id.get(&id).and_then(|&i| self.slots[i].as_mut()) else {
            return false;
        };
        if !by.is_operator() && slot.named_by_operator {
            return true;
        }
        if by.is_operator() {
            slot.named_by_operator = !name.is_empty();
        }
        if slot.name != name {
            slot.name = name;
            events.push(Event {
                at: now,
                source: id,
                kind: EventKind::Named { name, by },
            });
        }
        true
    }

    /// The sender of RTP stream `ssrc` gave its name in RTCP SDES (`cname`:
    /// its CNAME, with no NAME beside it).
    pub fn set_sender_name(
        &mut self,
        now: Duration,
        ssrc: u32,
        name: SourceName,
        cname: bool,
        events: &mut Events,
    ) {
        let id = SourceId::Ssrc(ssrc);
        let Some(slot) = self.by_id.get(&id).and_then(|&i| self.slots[i].as_mut()) else {
            self.keep_early_name(now, ssrc, name, cname);
            return;
        };
        if cname && slot.sdes_name {
            return;
        }
        slot.sdes_name |= !cname;
        self.set_name(now, id, name, NamedBy::Rtcp, events);
    }

    /// Keeps the SDES name of stream `ssrc`, not heard yet, for when it
    /// joins: a CNAME does not replace a NAME kept for the same stream.
    fn keep_early_name(&mut self, now: Duration, ssrc: u32, name: SourceName, cname: bool) {
        let entry = EarlyName {
            ssrc,
            name,
            cname,
            at: now,
        };
        match self
            .early_names
            .iter_mut()
            .flatten()
            .find(|e| e.ssrc == ssrc)
        {
            Some(kept) if cname && !kept.cname => kept.at = now,
            Some(kept) => *kept = entry,
            None => {
                self.early_names[self.early_next] = Some(entry);
                self.early_next = (self.early_next + 1) % EARLY_NAMES;
            }
        }
    }

    /// A source's name (empty: none), if it is active.
    pub fn name(&self, id: SourceId) -> Option<SourceName> {
        let index = *self.by_id.get(&id)?;
        self.slots[index].as_ref().map(|s| s.name)
    }

    /// The sender of RTP stream `ssrc` said goodbye (RTCP BYE): the stream
    /// ends once what it sent has played, rather than at the timeout.
    pub fn on_bye(&mut self, ssrc: u32) {
        self.close(SourceId::Ssrc(ssrc));
    }

    /// Source `id`'s sender ended its stream (RTCP BYE, a browser sender's
    /// closed WebSocket): it is dropped with `reason=closed` once what it
    /// sent has played, rather than at the timeout.
    pub fn close(&mut self, id: SourceId) {
        if let Some(&index) = self.by_id.get(&id) {
            if let Some(slot) = self.slots[index].as_mut() {
                slot.closing = true;
            }
        }
    }

    /// An RTCP sender report of stream `ssrc` arrived at `now` (echoed in
    /// the node's receiver reports).
    pub fn on_sender_report(
        &mut self,
        now: Duration,
        ssrc: u32,
        ntp_middle: u32,
        from: SocketAddr,
    ) {
        if let Some(&index) = self.by_id.get(&SourceId::Ssrc(ssrc)) {
            if let Some(slot) = self.slots[index].as_mut() {
                slot.source.on_sender_report(now, ntp_middle, from);
            }
        }
    }

    /// Receiver report blocks for the RTP sources due one at `now` (each
    /// about every `interval`, spread over the interval by slot), with the
    /// address each goes to; returns how many were written into `out`.
    pub fn receiver_reports(
        &mut self,
        now: Duration,
        interval: Duration,
        out: &mut [ReceiverReport],
    ) -> usize {
        let mut n = 0;
        for slot in self.slots.iter_mut().flatten() {
            if n == out.len() {
                break;
            }
            if let Some(report) = slot.source.receiver_report(now, interval) {
                out[n] = report;
                n += 1;
            }
        }
        n
    }

    /// Number of active streams.
    pub fn active_streams(&self) -> usize {
        self.by_id.len()
    }

    /// Output frames mixed so far.
    pub fn frames_mixed(&self) -> u64 {
        self.frames_mixed
    }

    /// Node-wide counters.
    pub fn counters(&self) -> NodeCounters {
        self.counters
    }

    fn clock(&self, now: Duration) -> MixClock {
        let position = match self.epoch {
            Some((t0, f0)) => {
                f0 as f64
                    + now.saturating_sub(t0).as_secs_f64() * f64::from(self.config.source.rate)
            }
            None => self.frames_mixed as f64,
        };
        MixClock {
            now,
            frames_mixed: self.frames_mixed,
            position,
        }
    }

    fn remove(&mut self, index: usize, now: Duration) {
        if let Some(slot) = self.slots[index].take() {
            let id = slot.source.id();
            self.by_id.remove(&id);
            self.soloed -= usize::from(slot.controls.solo);
            self.counters.streams_dropped += 1;
            if self.remembered.len() >= REMEMBER_MAX {
                self.remembered
                    .retain(|_, (_, dropped)| now.saturating_sub(*dropped) <= REMEMBER_CONTROLS);
            }
            if self.remembered.len() < REMEMBER_MAX {
                let remembered = Remembered {
                    controls: slot.controls,
                    name: slot.name,
                    named_by_operator: slot.named_by_operator,
                };
                self.remembered.insert(id, (remembered, now));
            }
            self.pool.give(slot.source.into_memory());
        }
        if self.by_id.is_empty() {
            // Silent while no stream is active; the clock restarts with the next.
            self.epoch = None;
        }
    }
}
