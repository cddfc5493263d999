//! One source: its sequence tracker, jitter buffer and drift controller,
//! the mapping of its timeline onto output frames, and its events.
//!
//! Timeline: packet `index` of the current stream instance holds samples
//! `instance_offset + index × packet_size ..`. Timeline position `p` is
//! mixed into output frame `p + frame_offset` (output frames are counted in
//! frames sent). Drift corrections move `frame_offset` by one per sample
//! dropped or repeated.

use std::net::SocketAddr;
use std::time::Duration;

use proto::MonoDatagram;

use crate::drift::DriftControl;
use crate::event::{Burstable, DropReason, Event, EventKind};
use crate::jitter_buffer::{Adjust, JitterBuffer, WriteOutcome};
use crate::stats::SourceStats;
use crate::throttle::{Summary, Throttle};
use crate::tracker::{Arrival, SourceTracker, TrackerLimits};

/// The jitter-buffer target delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JitterTarget {
    /// A fixed delay in milliseconds.
    FixedMs(f64),
    /// Adapt to the measured interarrival jitter.
    Auto,
}

/// Largest target `--jitter-ms auto` chooses, in ms.
pub const AUTO_MAX_MS: f64 = 250.0;
/// Smallest target `--jitter-ms auto` chooses, in ms.
pub const AUTO_MIN_MS: f64 = 10.0;
/// Target `--jitter-ms auto` starts with, before any jitter is measured.
pub const AUTO_INITIAL_MS: f64 = 20.0;

/// Settings shared by every source of a node.
#[derive(Debug, Clone, Copy)]
pub struct SourceParams {
    /// Samples per second on the wire and in the mix.
    pub rate: u32,
    /// Frames per mixing block.
    pub block_frames: usize,
    /// Jitter-buffer target.
    pub target: JitterTarget,
    /// Packets averaged for the drift controller's reference.
    pub drift_warmup: u32,
    /// Drift controller's tolerance, in ms.
    pub drift_band_ms: f64,
    /// Event lines per class per second before bursts are summarised.
    pub events_per_second: u32,
}

/// Where the mixer is, passed in with every call that needs the clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixClock {
    /// Node time.
    pub now: Duration,
    /// Output frames mixed so far (the next block starts here).
    pub frames_mixed: u64,
    /// The output frame that corresponds to `now`, continuously.
    pub position: f64,
}

/// State of one source.
#[derive(Debug)]
pub struct Source {
    addr: SocketAddr,
    params: SourceParams,
    tracker: SourceTracker,
    buffer: JitterBuffer,
    drift: DriftControl,
    throttle: Throttle,
    packet_size: usize,
    instance_offset: i64,
    frame_offset: i64,
    target_frames: i64,
    last_heard: Duration,
    packets_since_retarget: u32,
    probation: Vec<i16>,
    /// The output position (rounded up, never before what was already
    /// mixed) when the packet on probation arrived.
    probation_frames: u64,
    late: u64,
    malformed: u64,
    overflow: u64,
    stray: u64,
    size_warned: bool,
}

/// A packet's samples as `place` takes them: still in the datagram (decoded
/// straight into the jitter buffer) or already decoded (a restart's packet
/// held on probation).
enum Payload<'d, 'b> {
    Datagram(&'d MonoDatagram<'b>),
    Samples(&'d [i16]),
}

impl Payload<'_, '_> {
    fn len(&self) -> usize {
        match self {
            Payload::Datagram(d) => d.sample_count(),
            Payload::Samples(s) => s.len(),
        }
    }

    /// Writes samples `offset..offset + run.len()` into `run`.
    fn copy(&self, offset: usize, run: &mut [i16]) {
        match self {
            Payload::Datagram(d) => {
                d.copy_samples_from(offset, run);
            }
            Payload::Samples(s) => run.copy_from_slice(&s[offset..offset + run.len()]),
        }
    }
}

impl Source {
    /// A source created by its first valid datagram; reports `New stream`.
    pub fn new(
        addr: SocketAddr,
        params: SourceParams,
        first: &MonoDatagram<'_>,
        clock: MixClock,
        events: &mut Vec<Event>,
    ) -> Self {
        let rate = f64::from(params.rate);
        let packet_size = first.sample_count();
        let (target_ms, max_target_ms) = match params.target {
            JitterTarget::FixedMs(ms) => (ms, ms),
            JitterTarget::Auto => (AUTO_INITIAL_MS, AUTO_MAX_MS),
        };
        let target_frames = (target_ms * rate / 1000.0).round() as i64;
        // Room for the largest target, a burst of packets, a block, and
        // 50 ms of slack for a source that runs ahead, so only a misbehaving
        // source overflows (the power-of-two rounding adds more: 186 ms
        // ahead of the reader at the defaults). Not more: every slot of the
        // ring is touched once per lap, so its size is the node's memory
        // per source (16 KB at the defaults).
        let capacity = (max_target_ms * rate / 1000.0) as usize
            + 8 * packet_size
            + 2 * params.block_frames
            + params.rate as usize / 20;
        let frame_offset = first_playout_frame(clock, target_frames + params.block_frames as i64);
        // The next block to mix is output frame `frames_mixed`, i.e. timeline
        // position `frames_mixed − frame_offset` (negative: the wait).
        let buffer = JitterBuffer::new(capacity, clock.frames_mixed as i64 - frame_offset);
        let misorder = (buffer.capacity() / packet_size.max(1)).clamp(16, 1024) as u64;
        let mut source = Self {
            addr,
            params,
            tracker: SourceTracker::new(TrackerLimits {
                max_misorder: misorder,
                ..TrackerLimits::default()
            }),
            buffer,
            drift: new_drift_control(&params, target_frames),
            throttle: Throttle::new(Duration::from_secs(1), params.events_per_second),
            packet_size,
            instance_offset: 0,
            frame_offset,
            target_frames,
            last_heard: clock.now,
            packets_since_retarget: 0,
            probation: Vec::new(),
            probation_frames: 0,
            late: 0,
            malformed: 0,
            overflow: 0,
            stray: 0,
            size_warned: false,
        };
        let classified = source.tracker.on_packet(first.seq);
        debug_assert_eq!(classified.arrival, Arrival::First);
        source.push_event(
            clock.now,
            events,
            EventKind::NewStream {
                seq: first.seq,
                start_frame: source.frame_offset as u64,
                samples: packet_size,
            },
        );
        source.place(0, first.seq, &Payload::Datagram(first), clock, events);
        source
    }

    /// The source's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When the source last sent anything.
    pub fn last_heard(&self) -> Duration {
        self.last_heard
    }

    /// Counts a datagram from this source that failed to decode.
    pub fn on_malformed(&mut self, now: Duration) {
        self.malformed += 1;
        self.last_heard = now;
    }

    /// Handles one valid datagram.
    pub fn on_datagram(
        &mut self,
        datagram: &MonoDatagram<'_>,
        clock: MixClock,
        events: &mut Vec<Event>,
    ) {
        self.last_heard = clock.now;
        let previous_highest = self.tracker.highest_seq();
        let classified = self.tracker.on_packet(datagram.seq);
        let seq = datagram.seq;
        if !matches!(classified.arrival, Arrival::Probation | Arrival::Restart) {
            self.discard_probation();
        }
        match classified.arrival {
            Arrival::First => unreachable!("a Source is created by its first packet"),
            Arrival::InOrder {
                missing,
                missing_from,
            } => {
                if missing > 0 {
                    let last = missing_from.wrapping_add((missing - 1) as u32);
                    self.push_burstable(
                        Burstable::Missing,
                        clock.now,
                        events,
                        EventKind::Missing {
                            count: missing,
                            first: missing_from,
                            last,
                        },
                    );
                }
                self.place(
                    classified.index,
                    seq,
                    &Payload::Datagram(datagram),
                    clock,
                    events,
                );
            }
            Arrival::Reordered { highest } => {
                self.push_burstable(
                    Burstable::OutOfOrder,
                    clock.now,
                    events,
                    EventKind::OutOfOrder { seq, highest },
                );
                self.place(
                    classified.index,
                    seq,
                    &Payload::Datagram(datagram),
                    clock,
                    events,
                );
            }
            Arrival::Duplicate => {
                self.push_burstable(
                    Burstable::Repeated,
                    clock.now,
                    events,
                    EventKind::Repeated { seq },
                );
            }
            Arrival::Probation => {
                self.discard_probation();
                self.probation.extend(datagram.samples());
                self.probation_frames = first_playout_frame(clock, 0) as u64;
            }
            Arrival::Restart => {
                // The new instance starts a target delay and a block after
                // its first packet arrived (as a new stream would), but never
                // before the old instance's buffered tail has played nor in
                // the past.
                let ideal = self.probation_frames as i64 - self.frame_offset
                    + self.target_frames
                    + self.params.block_frames as i64;
                self.instance_offset = ideal
                    .max(self.buffer.write_end())
                    .max(self.buffer.read_pos());
                let first_seq = seq.wrapping_sub(1);
                self.push_event(
                    clock.now,
                    events,
                    EventKind::Restarted {
                        seq: first_seq,
                        previous_highest,
                        start_frame: (self.instance_offset + self.frame_offset) as u64,
                    },
                );
                // The new instance has its own timing: its delay is measured
                // afresh rather than "corrected" towards the old instance's.
                self.drift = new_drift_control(&self.params, self.target_frames);
                let stashed = std::mem::take(&mut self.probation);
                self.place(0, first_seq, &Payload::Samples(&stashed), clock, events);
                self.probation = stashed;
                self.probation.clear();
                self.place(
                    classified.index,
                    seq,
                    &Payload::Datagram(datagram),
                    clock,
                    events,
                );
            }
        }
        if self.params.target == JitterTarget::Auto {
            self.retarget();
        }
    }

    /// Plays the next block of this source into `out`; returns the block's
    /// peak magnitude (0..=32768).
    pub fn read_block(&mut self, out: &mut [f32]) -> u32 {
        let adjust = self.drift.next_adjust();
        let peak = self.buffer.read(out, adjust);
        match adjust {
            Adjust::None => {}
            Adjust::Drop => self.frame_offset -= 1,
            Adjust::Repeat => self.frame_offset += 1,
        }
        peak
    }

    /// Logs summaries of suppressed bursts whose window has ended (all of
    /// them with `force`).
    pub fn flush_events(&mut self, now: Duration, force: bool, events: &mut Vec<Event>) {
        let addr = self.addr;
        let window_ms = self.throttle.window().as_millis() as u64;
        self.throttle.flush(now, force, |s| {
            events.push(Event {
                at: now,
                source: addr,
                kind: summary_kind(s, window_ms),
            })
        });
    }

    /// A packet held on probation that no successor confirmed is a stray:
    /// counted and forgotten.
    fn discard_probation(&mut self) {
        if !self.probation.is_empty() {
            self.stray += 1;
            self.probation.clear();
        }
    }

    /// Reports the stream's removal with its final counters.
    pub fn drop_stream(&mut self, now: Duration, reason: DropReason, events: &mut Vec<Event>) {
        self.discard_probation();
        self.flush_events(now, true, events);
        let stats = self.stats();
        self.push_event(now, events, EventKind::Dropped { reason, stats });
    }

    /// The source's counters and gauges.
    pub fn stats(&self) -> SourceStats {
        let t = self.tracker.counters();
        let rate = f64::from(self.params.rate);
        let (drops, repeats) = self.drift.corrections();
        SourceStats {
            received: t.received + self.malformed,
            lost: t.lost,
            duplicates: t.duplicates,
            reordered: t.reordered,
            late: self.late,
            malformed: self.malformed,
            overflow: self.overflow,
            restarts: t.restarts,
            stray: self.stray,
            jitter_ms: t.jitter_samples / rate * 1000.0,
            buffered_ms: self.buffer.buffered() as f64 / rate * 1000.0,
            target_ms: self.target_frames as f64 / rate * 1000.0,
            drift_drops: drops,
            drift_repeats: repeats,
        }
    }

    /// Stores packet `index` of the current instance.
    fn place(
        &mut self,
        index: u64,
        seq: u32,
        payload: &Payload<'_, '_>,
        clock: MixClock,
        events: &mut Vec<Event>,
    ) {
        let len = payload.len();
        if len > self.packet_size && !self.size_warned {
            self.size_warned = true;
            log::warn!(
                "{}: packet of {} samples after packets of {}; the timeline assumes equal-size packets",
                self.addr,
                len,
                self.packet_size
            );
        }
        let pos = self.instance_offset + index as i64 * self.packet_size as i64;
        let playout_frame = (pos + self.frame_offset) as f64;
        self.tracker.update_jitter(clock.position, pos as f64);
        self.drift.on_wait(playout_frame - clock.position);
        match self
            .buffer
            .write_with(pos, len, |offset, run| payload.copy(offset, run))
        {
            WriteOutcome::Stored => {}
            WriteOutcome::Late { .. } => {
                self.late += 1;
                let late_by = (clock.position - playout_frame).max(0.0);
                let late_by_ms = late_by / f64::from(self.params.rate) * 1000.0;
                self.push_burstable(
                    Burstable::Late,
                    clock.now,
                    events,
                    EventKind::Late { seq, late_by_ms },
                );
            }
            WriteOutcome::Overflow => {
                self.overflow += 1;
                log::debug!(
                    "{}: packet {seq} beyond the buffer's capacity; dropped",
                    self.addr
                );
            }
        }
    }

    /// For `--jitter-ms auto`: moves the target towards four times the
    /// measured jitter plus one packet, within [AUTO_MIN_MS, AUTO_MAX_MS].
    fn retarget(&mut self) {
        self.packets_since_retarget += 1;
        if self.packets_since_retarget < 50 {
            return;
        }
        self.packets_since_retarget = 0;
        let rate = f64::from(self.params.rate);
        let jitter = self.tracker.counters().jitter_samples;
        let min = AUTO_MIN_MS * rate / 1000.0;
        let max = AUTO_MAX_MS * rate / 1000.0;
        let wanted = (4.0 * jitter + self.packet_size as f64)
            .clamp(min, max)
            .round() as i64;
        let band = self.params.drift_band_ms * rate / 1000.0;
        if ((wanted - self.target_frames) as f64).abs() > band {
            self.drift
                .shift_reference((wanted - self.target_frames) as f64);
            self.target_frames = wanted;
        }
    }

    fn push_event(&self, at: Duration, events: &mut Vec<Event>, kind: EventKind) {
        events.push(Event {
            at,
            source: self.addr,
            kind,
        });
    }

    fn push_burstable(
        &mut self,
        class: Burstable,
        now: Duration,
        events: &mut Vec<Event>,
        kind: EventKind,
    ) {
        let (admit, summary) = self.throttle.admit(class, now);
        if let Some(summary) = summary {
            let window_ms = self.throttle.window().as_millis() as u64;
            self.push_event(now, events, summary_kind(summary, window_ms));
        }
        if admit {
            self.push_event(now, events, kind);
        }
    }
}

fn new_drift_control(params: &SourceParams, target_frames: i64) -> DriftControl {
    let band = params.drift_band_ms * f64::from(params.rate) / 1000.0;
    // Whatever the warm-up saw, the average packet keeps at least half the
    // target of margin against lateness (the wait counts to the playout of
    // its first sample, whose block is mixed up to a block earlier).
    let floor = target_frames as f64 / 2.0 + params.block_frames as f64;
    DriftControl::new(params.drift_warmup, band, floor)
}

/// The output frame where a stream arriving at `clock` starts playing:
/// `delay_frames` (the target plus one block) after its arrival, measured
/// on the continuous clock (so streams arriving together start together,
/// whatever the block phase), but never inside a block that was already
/// mixed.
///
/// Why the block: a block is mixed at its start, so a sample must be in the
/// buffer up to one block before its own playout time (how much depends on
/// where it falls in its block, and that phase slides when packets and
/// blocks differ in length). With the target alone a packet's margin
/// against lateness was anywhere between `target − block` and `target`:
/// none at all at `--jitter-ms 5` with 5 ms blocks (measured: 92 of 14 168
/// packets late on loopback). With the block added it is at least the
/// target at every phase, which is what `--jitter-ms` promises.
fn first_playout_frame(clock: MixClock, delay_frames: i64) -> i64 {
    let ideal = clock.position.ceil() as i64 + delay_frames;
    ideal.max(clock.frames_mixed as i64)
}

fn summary_kind(summary: Summary, window_ms: u64) -> EventKind {
    EventKind::Suppressed {
        class: summary.class,
        count: summary.count,
        window_ms,
    }
}
