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

/// How long after its arrival the first packet of a stream may be read
/// before the stream's start counts from the read instead (see
/// [`Engine::on_datagram_read`]). Above the 1 ms drain interval of a busy
/// node, so a keeping-up node always starts streams exactly.
pub const STARTUP_READ_SLACK: Duration = Duration::from_millis(2);
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

#[derive(Debug)]
struct Slot {
    source: Source,
    controls: SourceControls,
    /// The gain applied at the end of the last block (ramp start).
    applied: StereoGain,
    /// Largest post-fader sample magnitude since the meters were last taken.
    peak: f32,
}

/// Peak levels since the last call to [`Engine::take_meters`], as fractions
/// of full scale (1.0 = 32768); a value of 1.0 or more means clipping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meters {
    /// Output peak, left channel.
    pub left: f32,
    /// Output peak, right channel.
    pub right: f32,
    /// Whether any output sample saturated.
    pub clipped: bool,
    /// Post-fader peak of each active source.
    pub sources: Vec<(SocketAddr, f32)>,
}

/// A change of the stream set, for the control surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamChange {
    /// A stream began, with the controls it starts with (remembered ones if
    /// it returned within ten minutes).
    Joined(SocketAddr, SourceControls),
    /// A stream was dropped.
    Left(SocketAddr),
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
    remembered: HashMap<SocketAddr, (SourceControls, Duration)>,
    changes: Vec<StreamChange>,
    out_peak: (f32, f32),
    clipped_since_meters: bool,
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
            remembered: HashMap::new(),
            changes: Vec::new(),
            out_peak: (0.0, 0.0),
            clipped_since_meters: false,
        }
    }

    /// Handles one datagram received at `now` from `from` (read as soon as
    /// it arrived).
    pub fn on_datagram(
        &mut self,
        now: Duration,
        from: SocketAddr,
        bytes: &[u8],
        events: &mut Vec<Event>,
    ) {
        self.on_datagram_read(now, now, from, bytes, events);
    }

    /// Handles one datagram that arrived at `now` (the kernel's timestamp)
    /// and was read at `read_at`.
    ///
    /// Everything is timed by the arrival, except the start of a new
    /// stream when the node read its first packet more than
    /// [`STARTUP_READ_SLACK`] after it arrived: then the node itself is
    /// behind (e.g. thousands of streams starting in the same instant), its
    /// next packets will be read as late, and a start a target after the
    /// arrival would leave them less than the target of margin. The start
    /// then counts from `read_at − STARTUP_READ_SLACK` instead.
    pub fn on_datagram_read(
        &mut self,
        now: Duration,
        read_at: Duration,
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
        let now = now.max(read_at.saturating_sub(STARTUP_READ_SLACK));
        if self.epoch.is_none() {
            self.epoch = Some((now, self.frames_mixed));
        }
        let clock = self.clock(now);
        let source = Source::new(from, self.config.source, &datagram, clock, events);
        let controls = match self.remembered.remove(&from) {
            Some((controls, dropped)) if now.saturating_sub(dropped) <= REMEMBER_CONTROLS => {
                controls
            }
            _ => SourceControls::default(),
        };
        let slot = Slot {
            source,
            controls,
            applied: StereoGain::from_controls(controls.volume, controls.balance, self.master),
            peak: 0.0,
        };
        self.changes.push(StreamChange::Joined(from, controls));
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
            slot.peak = slot
                .peak
                .max(loudest * target.left.max(target.right) / 32768.0);
        }
        let rendered = self.mixer.render(&mut self.out);
        self.counters.clipped += rendered.clipped;
        self.clipped_since_meters |= rendered.clipped > 0;
        self.out_peak.0 = self.out_peak.0.max(rendered.peak_left as f32 / 32768.0);
        self.out_peak.1 = self.out_peak.1.max(rendered.peak_right as f32 / 32768.0);
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
                self.remove(index, now);
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
                self.remove(index, now);
            }
        }
    }

    /// Streams that joined or left since the last call (oldest first).
    pub fn drain_changes(&mut self) -> std::vec::Drain<'_, StreamChange> {
        self.changes.drain(..)
    }

    /// Peak levels since the last call, into `meters` (reusing its allocation).
    pub fn take_meters(&mut self, meters: &mut Meters) {
        meters.left = std::mem::take(&mut self.out_peak.0);
        meters.right = std::mem::take(&mut self.out_peak.1);
        meters.clipped = std::mem::take(&mut self.clipped_since_meters);
        meters.sources.clear();
        for slot in self.slots.iter_mut().flatten() {
            meters
                .sources
                .push((slot.source.addr(), std::mem::take(&mut slot.peak)));
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

    /// Every active source with its controls.
    pub fn all_controls(&self) -> impl Iterator<Item = (SocketAddr, SourceControls)> + '_ {
        self.slots
            .iter()
            .flatten()
            .map(|s| (s.source.addr(), s.controls))
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

    fn remove(&mut self, index: usize, now: Duration) {
        if let Some(slot) = self.slots[index].take() {
            let addr = slot.source.addr();
            self.by_addr.remove(&addr);
            self.counters.streams_dropped += 1;
            self.changes.push(StreamChange::Left(addr));
            if self.remembered.len() >= REMEMBER_MAX {
                self.remembered
                    .retain(|_, (_, dropped)| now.saturating_sub(*dropped) <= REMEMBER_CONTROLS);
            }
            if self.remembered.len() < REMEMBER_MAX {
                self.remembered.insert(addr, (slot.controls, now));
            }
        }
        if self.by_addr.is_empty() {
            // Silent while no stream is active; the clock restarts with the next.
            self.epoch = None;
        }
    }
}
