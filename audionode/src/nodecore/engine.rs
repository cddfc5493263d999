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

use super::event::{DropReason, Event, EventKind, Events, NODE};
use super::ingress::{Malformed, SourcePacket};
use super::mixer::{Mixer, StereoGain};
use super::pool::MemoryPool;
use super::source::{MixClock, Source, SourceParams};
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

/// How long a dropped source's controls are remembered for its return.
pub const REMEMBER_CONTROLS: Duration = Duration::from_secs(600);
/// Most dropped sources whose controls are remembered.
const REMEMBER_MAX: usize = 4096;
/// A mixing clock this many blocks behind skips forward instead of
/// mixing every missed block back to back.
pub const STALL_BLOCKS: u64 = 4;
/// Meter windows kept: meters show the peak of the last few stats frames,
/// so a reader that polls less often than frames are published sees every
/// peak.
const METER_WINDOWS: usize = 3;

#[derive(Debug)]
struct Slot {
    source: Source,
    controls: SourceControls,
    /// The gain applied at the end of the last block (ramp start).
    applied: StereoGain,
    /// Largest post-fader sample magnitude in each recent meter window
    /// (`meter_window` is the current one).
    peaks: [f32; METER_WINDOWS],
    /// The same before gain, mute and solo (the source's input level).
    input_peaks: [f32; METER_WINDOWS],
}

/// The mixing engine.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    slots: Vec<Option<Slot>>,
    by_addr: HashMap<SocketAddr, usize>,
    pool: MemoryPool,
    mixer: Mixer,
    block: Vec<f32>,
    out: Vec<i16>,
    frames_mixed: u64,
    /// Node time and frame count when the mixing clock last (re)started;
    /// `None` while no stream is active (the node is silent).
    epoch: Option<(Duration, u64)>,
    master: f32,
    counters: NodeCounters,
    refused_log: LogLimiter,
    malformed_log: LogLimiter,
    remembered: HashMap<SocketAddr, (SourceControls, Duration)>,
    meter_window: usize,
    out_peaks: [(f32, f32); METER_WINDOWS],
    clipped: [bool; METER_WINDOWS],
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
            by_addr: HashMap::with_capacity(2 * slots),
            pool: MemoryPool::new(slots, &config.source),
            mixer: Mixer::new(frames),
            block: vec![0.0; frames],
            out: vec![0; 2 * frames],
            frames_mixed: 0,
            epoch: None,
            master: 1.0,
            counters: NodeCounters::default(),
            refused_log: LogLimiter::default(),
            malformed_log: LogLimiter::default(),
            remembered: HashMap::with_capacity(2 * REMEMBER_MAX),
            meter_window: 0,
            out_peaks: [(0.0, 0.0); METER_WINDOWS],
            clipped: [false; METER_WINDOWS],
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
        if let Some(&index) = self.by_addr.get(&from) {
            if let Some(slot) = self.slots[index].as_mut() {
                slot.source.on_malformed(now);
            }
        } else {
            self.counters.malformed_unknown += 1;
        }
        if self.malformed_log.allow(now) {
            events.push(Event {
                at: now,
                source: from,
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
        if let Some(&index) = self.by_addr.get(&from) {
            let clock = self.clock(now);
            if let Some(slot) = self.slots[index].as_mut() {
                slot.source.on_packet(packet, clock, events);
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
                    source: from,
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
        let source = Source::new(from, self.config.source, memory, packet, clock, events);
        let controls = match self.remembered.remove(&from) {
            Some((controls, dropped)) if now.saturating_sub(dropped) <= REMEMBER_CONTROLS => {
                controls
            }
            _ => SourceControls::default(),
        };
        self.slots[free] = Some(Slot {
            source,
            controls,
            applied: StereoGain::from_controls(controls.volume, controls.balance, self.master),
            peaks: [0.0; METER_WINDOWS],
            input_peaks: [0.0; METER_WINDOWS],
        });
        self.by_addr.insert(from, free);
        self.counters.streams_started += 1;
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
        let behind = now - deadline;
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
        let any_solo = self.slots.iter().flatten().any(|s| s.controls.solo);
        let window = self.meter_window;
        self.mixer.begin(frames);
        for slot in self.slots.iter_mut().flatten() {
            let loudest = slot.source.read_block(&mut self.block) as f32;
            let c = slot.controls;
            let audible = !c.mute && (!any_solo || c.solo);
            let target = if audible {
                StereoGain::from_controls(c.volume, c.balance, self.master)
            } else {
                StereoGain::SILENT
            };
            self.mixer.add(&self.block, slot.applied, target);
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
            if now.saturating_sub(slot.source.last_heard()) > self.config.timeout {
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
                addr: slot.source.addr(),
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
    pub fn set_controls(&mut self, addr: SocketAddr, controls: SourceControls) -> bool {
        match self.by_addr.get(&addr) {
            Some(&index) => match self.slots[index].as_mut() {
                Some(slot) => {
                    slot.controls = controls;
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    /// One source's controls, if it is active.
    pub fn controls(&self, addr: SocketAddr) -> Option<SourceControls> {
        let index = *self.by_addr.get(&addr)?;
        self.slots[index].as_ref().map(|s| s.controls)
    }

    /// Number of active streams.
    pub fn active_streams(&self) -> usize {
        self.by_addr.len()
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
            let addr = slot.source.addr();
            self.by_addr.remove(&addr);
            self.counters.streams_dropped += 1;
            if self.remembered.len() >= REMEMBER_MAX {
                self.remembered
                    .retain(|_, (_, dropped)| now.saturating_sub(*dropped) <= REMEMBER_CONTROLS);
            }
            if self.remembered.len() < REMEMBER_MAX {
                self.remembered.insert(addr, (slot.controls, now));
            }
            self.pool.give(slot.source.into_memory());
        }
        if self.by_addr.is_empty() {
            // Silent while no stream is active; the clock restarts with the next.
            self.epoch = None;
        }
    }
}
