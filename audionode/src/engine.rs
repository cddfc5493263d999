//! The node's sans-IO engine: admits sources, feeds them datagrams, runs the
//! mixing clock from the cumulative frame count, drops silent streams, and
//! applies the control state (master, per-source volume/balance/mute/solo).
//!
//! Time is passed in (`now`, since the node started); the run loop owns the
//! sockets and sleeps. Nothing here allocates per packet or per block once
//! the sources exist.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use proto::MonoDatagram;

use crate::event::{DropReason, Event};
use crate::mixer::{Mixer, StereoGain};
use crate::source::{MixClock, Source, SourceParams};
use crate::stats::{NodeCounters, NodeSnapshot};

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

#[derive(Debug)]
struct Slot {
    source: Source,
    controls: SourceControls,
    /// The gain applied at the end of the last block (ramp start).
    applied: StereoGain,
}

/// The mixing engine.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    slots: Vec<Option<Slot>>,
    by_addr: HashMap<SocketAddr, usize>,
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
}

/// At most one log line per second for a kind of nuisance, with a count of
/// what was not logged.
#[derive(Debug, Default)]
struct LogLimiter {
    last: Option<Duration>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&mut self, now: Duration) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now < last + Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl Engine {
    /// An idle engine.
    pub fn new(config: EngineConfig) -> Self {
        let frames = config.source.block_frames;
        Self {
            config,
            slots: Vec::new(),
            by_addr: HashMap::new(),
            mixer: Mixer::new(frames),
            block: vec![0.0; frames],
            out: vec![0; 2 * frames],
            frames_mixed: 0,
            epoch: None,
            master: 1.0,
            counters: NodeCounters::default(),
            refused_log: LogLimiter::default(),
            malformed_log: LogLimiter::default(),
        }
    }

    /// Handles one datagram received at `now` from `from`.
    pub fn on_datagram(
        &mut self,
        now: Duration,
        from: SocketAddr,
        bytes: &[u8],
        events: &mut Vec<Event>,
    ) {
        self.counters.packets += 1;
        // `None` marks a datagram longer than the maximum.
        let decoded = if bytes.len() > self.config.max_datagram_bytes {
            Err(None)
        } else {
            MonoDatagram::decode(bytes).map_err(Some)
        };
        if let Err(e) = &decoded {
            if let Some(suppressed) = self.malformed_log.allow(now) {
                match e {
                    Some(e) => log::debug!(
                        "{from}: dropped malformed datagram: {e} ({suppressed} more not logged)"
                    ),
                    None => log::debug!(
                        "{from}: dropped datagram longer than {} bytes ({suppressed} more not logged)",
                        self.config.max_datagram_bytes
                    ),
                }
            }
        }
        if let Some(&index) = self.by_addr.get(&from) {
            let clock = self.clock(now);
            let slot = self.slots[index]
                .as_mut()
                .expect("indexed slot is occupied");
            match decoded {
                Ok(datagram) => slot.source.on_datagram(&datagram, clock, events),
                Err(_) => slot.source.on_malformed(now),
            }
            return;
        }
        let Ok(datagram) = decoded else {
            self.counters.malformed_unknown += 1;
            return;
        };
        if self.by_addr.len() >= self.config.max_sources {
            self.counters.refused += 1;
            if let Some(suppressed) = self.refused_log.allow(now) {
                log::warn!(
                    "{from}: refused, --max-sources {} reached ({suppressed} more refused datagrams not logged)",
                    self.config.max_sources
                );
            }
            return;
        }
        if self.epoch.is_none() {
            self.epoch = Some((now, self.frames_mixed));
        }
        let clock = self.clock(now);
        let source = Source::new(from, self.config.source, &datagram, clock, events);
        let slot = Slot {
            source,
            controls: SourceControls::default(),
            applied: StereoGain::from_controls(1.0, 0.0, self.master),
        };
        let index = match self.slots.iter().position(Option::is_none) {
            Some(free) => {
                self.slots[free] = Some(slot);
                free
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.by_addr.insert(from, index);
        self.counters.streams_started += 1;
    }

    /// When the next block is due; `None` while idle (no active stream).
    pub fn next_deadline(&self) -> Option<Duration> {
        let (t0, f0) = self.epoch?;
        let frames = self.frames_mixed - f0;
        let nanos = frames as u128 * 1_000_000_000 / u128::from(self.config.source.rate);
        Some(t0 + Duration::from_nanos(nanos as u64))
    }

    /// Mixes the next block if it is due at `now`, returning its interleaved
    /// stereo samples (to be sent to every destination).
    pub fn mix_due(&mut self, now: Duration) -> Option<&[i16]> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let frames = self.config.source.block_frames;
        let block_time = Duration::from_nanos(
            frames as u64 * 1_000_000_000 / u64::from(self.config.source.rate),
        );
        if now - deadline > block_time {
            self.counters.deadline_misses += 1;
        }
        let any_solo = self.slots.iter().flatten().any(|s| s.controls.solo);
        self.mixer.begin(frames);
        for slot in self.slots.iter_mut().flatten() {
            slot.source.read_block(&mut self.block);
            let c = slot.controls;
            let audible = !c.mute && (!any_solo || c.solo);
            let target = if audible {
                StereoGain::from_controls(c.volume, c.balance, self.master)
            } else {
                StereoGain::SILENT
            };
            self.mixer.add(&self.block, slot.applied, target);
            slot.applied = target;
        }
        self.counters.clipped += self.mixer.render(&mut self.out);
        self.counters.blocks += 1;
        self.counters.frames += frames as u64;
        self.frames_mixed += frames as u64;
        Some(&self.out)
    }

    /// Drops streams silent for longer than the timeout and logs summaries
    /// of event bursts whose window ended.
    pub fn expire(&mut self, now: Duration, events: &mut Vec<Event>) {
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            if now.saturating_sub(slot.source.last_heard()) > self.config.timeout {
                slot.source.drop_stream(now, DropReason::Timeout, events);
                self.remove(index);
            } else {
                slot.source.flush_events(now, false, events);
            }
        }
    }

    /// Drops every stream (node shutting down), reporting final counters.
    pub fn shutdown(&mut self, now: Duration, events: &mut Vec<Event>) {
        for index in 0..self.slots.len() {
            if let Some(slot) = self.slots[index].as_mut() {
                slot.source.drop_stream(now, DropReason::Shutdown, events);
                self.remove(index);
            }
        }
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
            Some(&index) => {
                self.slots[index].as_mut().expect("occupied").controls = controls;
                true
            }
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

    /// Fills `snapshot` with the current counters (reusing its allocation).
    pub fn snapshot(&self, snapshot: &mut NodeSnapshot) {
        snapshot.node = self.counters;
        snapshot.sources.clear();
        snapshot.sources.extend(
            self.slots
                .iter()
                .flatten()
                .map(|s| (s.source.addr(), s.source.stats())),
        );
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

    fn remove(&mut self, index: usize) {
        if let Some(slot) = self.slots[index].take() {
            self.by_addr.remove(&slot.source.addr());
            self.counters.streams_dropped += 1;
        }
        if self.by_addr.is_empty() {
            // Silent while no stream is active; the clock restarts with the next.
            self.epoch = None;
        }
    }
}
