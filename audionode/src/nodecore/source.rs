//! One source: its sequence tracker, jitter buffer and drift controller,
//! the mapping of its timeline onto output frames, and its events.
//!
//! Timeline: a packet of the current stream instance holds the frames
//! from `instance_offset + position`, where `position` is the running sum
//! of the sizes of the packets before it in sequence order
//! ([`super::positions`]), so packets of any and of changing size land
//! exactly, or, for RTP, its timestamp's distance from the instance's
//! first packet's ([`RtpTimeline`]). A stereo source keeps a second
//! buffer for its right channel, written and read in step with the first.
//! Timeline position `p` is mixed into output frame
//! `p + frame_offset` (output frames are counted in frames sent). Drift
//! corrections move `frame_offset` by one per sample dropped or repeated.
//!
//! Nothing injected can silence a stream for long: a restart needs a run
//! of [`RESTART_RUN`] consecutive packets (any packet of the current
//! instance in between breaks the run), and when packets persistently miss
//! the buffer (late or beyond its capacity for longer than the jitter
//! target) the stream is re-anchored to the traffic that does arrive.
//!
//! Redundant copies an RTP packet carries (RFC 2198) are looked at before
//! the packet itself: a copy of a packet that has not arrived is stored at
//! its timestamp and counted as recovered; a copy of one that did arrive,
//! or that comes too late to play, is dropped without a word. Copies do not
//! feed the jitter estimate or the drift control: they arrive a packet or
//! two after their own time by design.

use std::net::SocketAddr;
use std::time::Duration;

use proto::plc::PlcMode;

use super::drift::DriftControl;
use super::event::{Burstable, DropReason, Event, EventKind, Events};
use super::ingress::{Redundant, RtpInfo, Samples, SourcePacket};
use super::jitter_buffer::{Adjust, ChannelMemory, JitterBuffer, WriteOutcome, GAPS};
use super::pool::SourceMemory;
use super::positions::Positions;
use super::source_id::SourceId;
use super::stats::SourceStats;
use super::throttle::{Summary, Throttle};
use super::tracker::{Arrival, SourceTracker, TrackerLimits, RESTART_RUN};

/// How long the arrival rate of a source's audio is measured per window.
const RATE_WINDOW: Duration = Duration::from_secs(3);
/// How far the measured rate may be off the node's before a sender is
/// said to run at another rate. Not 1 %: the original streamer sleeps
/// after each send and runs up to 3 % slow, which the drift control holds;
/// 44.1 kHz against 48 kHz is 8.8 % off, 32 against 44.1 kHz 27 %.
const RATE_TOLERANCE: f64 = 0.05;

/// Consecutive packets that must miss the buffer (besides lasting longer
/// than the jitter target) before a stream is re-anchored.
const REANCHOR_MIN_PACKETS: u64 = 3;

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
    /// How gaps (positions nobody wrote by their playout) are filled.
    pub plc: PlcMode,
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
    id: SourceId,
    /// Where its packets last came from.
    from: SocketAddr,
    params: SourceParams,
    tracker: SourceTracker,
    /// The (left, for stereo) channel.
    buffer: JitterBuffer,
    /// The right channel of a stereo source, in step with `buffer`.
    right: Option<JitterBuffer>,
    /// 1 or 2; packets with another count are refused.
    channels: u8,
    /// For RTP: sequence numbers are 16-bit, extended here.
    seq16: Option<u32>,
    rtp: Option<RtpTimeline>,
    /// RTCP state of an RTP source.
    rtcp: RtcpState,
    /// The ring's skew, handed back with the memory.
    skew: usize,
    /// A mono source's unused right-channel ring, handed back with it.
    spare_right: Option<ChannelMemory>,
    positions: Positions,
    drift: DriftControl,
    /// Corrections of earlier instances' controllers.
    past_corrections: (u64, u64),
    throttle: Throttle,
    /// Packet size of the stream (the newest packets' size).
    last_size: usize,
    /// A different size seen on the newest packet, and its sequence number,
    /// until the next packet confirms it.
    new_size: Option<(usize, u32)>,
    instance_offset: i64,
    frame_offset: i64,
    target_frames: i64,
    last_heard: Duration,
    packets_since_retarget: u32,
    /// Samples of the packets of a restart's run, in sequence order, and
    /// the length of each.
    stash: Vec<i16>,
    stash_lens: [usize; RESTART_RUN as usize],
    stash_timestamps: [Option<u32>; RESTART_RUN as usize],
    stash_count: usize,
    /// The output position (rounded up, never before what was already
    /// mixed) when the run's first packet arrived.
    probation_frames: u64,
    /// Since when, and for how many consecutive packets, packets missed the
    /// buffer (late or overflowing).
    missing_since: Option<Duration>,
    missed: u64,
    late: u64,
    malformed: u64,
    overflow: u64,
    stray: u64,
    size_changes: u64,
    reanchors: u64,
    format_changes: u64,
    rate: RateWatch,
    /// The first packets' sequence numbers: how many, how many jumped far
    /// from the one before, and the last.
    seq_probe: (u32, u32, u32),
}

/// Packets of a new source whose sequence numbers are checked for jumps.
const SEQ_PROBE_PACKETS: u32 = 16;
/// A jump larger than this between consecutive packets is "far".
const SEQ_PROBE_FAR: u32 = 1000;

/// Measures the rate a source's audio arrives at, in windows of
/// [`RATE_WINDOW`], to catch a sender at another sample rate (its packets
/// arrive faster or slower than the node plays them: overflow or drift
/// corrections otherwise, with no word on why).
#[derive(Debug, Clone, Copy, Default)]
struct RateWatch {
    /// Start of the window and frames received in it.
    window: Option<(Duration, u64)>,
    /// Consecutive windows off by more than the tolerance.
    off_windows: u32,
    /// The rate reported, once two windows agreed (0: fits).
    mismatch_hz: u32,
}

impl RateWatch {
    /// Counts `frames` arriving at `now`; the measured rate when a window
    /// that confirms a mismatch (or its end) closes.
    fn on_frames(&mut self, now: Duration, frames: usize, node_rate: u32) -> Option<u32> {
        let (start, count) = self.window.get_or_insert((now, 0));
        *count += frames as u64;
        let elapsed = now.saturating_sub(*start);
        if elapsed < RATE_WINDOW {
            return None;
        }
        let measured = *count as f64 / elapsed.as_secs_f64();
        self.window = Some((now, 0));
        let off = (measured / f64::from(node_rate) - 1.0).abs() > RATE_TOLERANCE;
        self.off_windows = if off { self.off_windows + 1 } else { 0 };
        let before = self.mismatch_hz;
        if self.off_windows >= 2 {
            // To the nearest 50 Hz: an estimate, not a measurement of the crystal.
            self.mismatch_hz = ((measured / 50.0).round() * 50.0) as u32;
        } else if !off {
            self.mismatch_hz = 0;
        }
        (self.mismatch_hz != before).then_some(self.mismatch_hz)
    }
}

/// What receiver reports of an RTP source need between reports.
#[derive(Debug, Clone, Copy, Default)]
struct RtcpState {
    /// Which `--rtp-listen` socket the stream arrives on.
    listener: u8,
    /// Where the sender's RTCP comes from (else its RTP port + 1).
    rtcp_from: Option<SocketAddr>,
    /// The last sender report's NTP middle bits and arrival.
    last_sr: Option<(u32, Duration)>,
    /// When the next report is due.
    next_report: Option<Duration>,
    /// Expected and received packets at the last report.
    prior_expected: u64,
    prior_received: u64,
}

/// A receiver report block for one RTP source, and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport {
    /// The `--rtp-listen` socket the source sends to (the report leaves
    /// from its RTCP companion).
    pub listener: u8,
    /// The sender's RTCP address.
    pub to: SocketAddr,
    /// The report.
    pub block: proto::rtcp::ReportBlock,
}

/// Where RTP timestamps fall on the instance's timeline: a reference
/// packet's timestamp and position, moved to each packet that is stored
/// (so the 2^32 wrap never matters), and distances taken as signed 32-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpTimeline {
    reference: Option<(u32, i64)>,
}

impl RtpTimeline {
    /// A timeline anchored by its first packet.
    pub fn new() -> Self {
        Self { reference: None }
    }

    /// The position of the packet with `timestamp` (0 for the first).
    pub fn position(&mut self, timestamp: u32) -> i64 {
        match self.reference {
            Some((ts, pos)) => pos + i64::from(timestamp.wrapping_sub(ts) as i32),
            None => {
                self.reference = Some((timestamp, 0));
                0
            }
        }
    }

    /// A packet at `timestamp` landed at `pos` (the new reference).
    pub fn stored(&mut self, timestamp: u32, pos: i64) {
        self.reference = Some((timestamp, pos));
    }

    /// The next packet anchors afresh.
    pub fn clear(&mut self) {
        self.reference = None;
    }
}

impl Default for RtpTimeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Source {
    /// A source created by its first valid packet, in `memory` taken from
    /// the node's pool; reports `New stream`.
    pub fn new(
        id: SourceId,
        from: SocketAddr,
        params: SourceParams,
        memory: SourceMemory,
        first: &SourcePacket<'_>,
        clock: MixClock,
        events: &mut Events,
    ) -> Self {
        let rate = f64::from(params.rate);
        let packet_size = first.frames();
        let target_ms = match params.target {
            JitterTarget::FixedMs(ms) => ms,
            JitterTarget::Auto => AUTO_INITIAL_MS,
        };
        let target_frames = (target_ms * rate / 1000.0).round() as i64;
        let frame_offset = first_playout_frame(clock, target_frames + params.block_frames as i64);
        // The next block to mix is output frame `frames_mixed`, i.e. timeline
        // position `frames_mixed − frame_offset` (negative: the wait).
        let read_pos = clock.frames_mixed as i64 - frame_offset;
        let buffer = JitterBuffer::from_memory(memory.ring, read_pos).with_skew(memory.skew);
        let stereo = first.channels == 2;
        let (right, spare_right) = if stereo {
            (
                Some(JitterBuffer::from_memory(memory.ring_right, read_pos).with_skew(memory.skew)),
                None,
            )
        } else {
            (None, Some(memory.ring_right))
        };
        let misorder = (buffer.capacity() / packet_size.max(1)).clamp(16, 1024) as u64;
        let mut source = Self {
            id,
            from,
            params,
            tracker: SourceTracker::new(TrackerLimits {
                max_misorder: misorder,
                ..TrackerLimits::default()
            }),
            buffer,
            right,
            spare_right,
            channels: first.channels,
            seq16: first.rtp.map(|_| first.seq),
            rtp: first.rtp.map(|_| RtpTimeline::new()),
            rtcp: RtcpState {
                listener: first.rtp.map_or(0, |r| r.listener),
                ..RtcpState::default()
            },
            skew: memory.skew,
            positions: memory.positions,
            drift: new_drift_control(&params, target_frames),
            past_corrections: (0, 0),
            throttle: Throttle::new(Duration::from_secs(1), params.events_per_second),
            last_size: packet_size,
            new_size: None,
            instance_offset: 0,
            frame_offset,
            target_frames,
            last_heard: clock.now,
            packets_since_retarget: 0,
            stash: memory.stash,
            stash_lens: [0; RESTART_RUN as usize],
            stash_timestamps: [None; RESTART_RUN as usize],
            stash_count: 0,
            probation_frames: 0,
            missing_since: None,
            missed: 0,
            late: 0,
            malformed: 0,
            overflow: 0,
            stray: 0,
            size_changes: 0,
            reanchors: 0,
            format_changes: 0,
            rate: RateWatch::default(),
            seq_probe: (1, 0, first.seq),
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
                rtp: first.rtp.map(|_| (first.channels, from)),
            },
        );
        source.place(0, first, clock, events);
        source
    }

    /// Gives the source's memory back, cleared, for the next source.
    pub fn into_memory(self) -> SourceMemory {
        let mut positions = self.positions;
        positions.clear();
        let mut stash = self.stash;
        stash.clear();
        let ring_right = match (self.right, self.spare_right) {
            (Some(right), _) => right.into_memory(),
            (None, Some(spare)) => spare,
            (None, None) => unreachable!("a source holds its right ring or its spare"),
        };
        SourceMemory {
            skew: self.skew,
            ring: self.buffer.into_memory(),
            ring_right,
            positions,
            stash,
        }
    }

    /// The source's identity.
    pub fn id(&self) -> SourceId {
        self.id
    }

    /// Where its packets last came from.
    pub fn from(&self) -> SocketAddr {
        self.from
    }

    /// 1 (mono) or 2 (stereo).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Whether everything received has been played.
    pub fn played_out(&self) -> bool {
        self.buffer.buffered() == 0
    }

    /// An RTCP sender report arrived at `now` from `from`.
    pub fn on_sender_report(&mut self, now: Duration, ntp_middle: u32, from: SocketAddr) {
        self.rtcp.last_sr = Some((ntp_middle, now));
        self.rtcp.rtcp_from = Some(from);
    }

    /// The receiver report block of an RTP source when one is due at
    /// `now` (every `interval`, the first a slot-dependent fraction of it
    /// after the stream began, so reports of many sources spread out).
    pub fn receiver_report(&mut self, now: Duration, interval: Duration) -> Option<ReceiverReport> {
        let SourceId::Ssrc(ssrc) = self.id else {
            return None;
        };
        let due = *self.rtcp.next_report.get_or_insert_with(|| {
            // Between 0.5 and 1.5 intervals after the start, by SSRC.
            let spread = f64::from(ssrc % 1000) / 1000.0 + 0.5;
            now + interval.mul_f64(spread)
        });
        if now < due {
            return None;
        }
        self.rtcp.next_report = Some(now + interval);
        let t = self.tracker.counters();
        // The report tells the sender what the network lost (what it needs
        // to choose its redundancy): a packet restored from a copy did not
        // arrive.
        let lost = t.lost + t.recovered;
        let unique = t.received.saturating_sub(t.duplicates);
        let expected = unique + lost;
        let expected_interval = expected.saturating_sub(self.rtcp.prior_expected);
        let received_interval = unique.saturating_sub(self.rtcp.prior_received);
        self.rtcp.prior_expected = expected;
        self.rtcp.prior_received = unique;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let (last_sr, delay_since_last_sr) = match self.rtcp.last_sr {
            Some((ntp, at)) => (ntp, proto::rtcp::dlsr_units(now.saturating_sub(at))),
            None => (0, 0),
        };
        let to = self.rtcp.rtcp_from.unwrap_or_else(|| {
            let mut a = self.from;
            a.set_port(a.port().wrapping_add(1));
            a
        });
        Some(ReceiverReport {
            listener: self.rtcp.listener,
            to,
            block: proto::rtcp::ReportBlock {
                ssrc,
                fraction_lost,
                cumulative_lost: lost.min(0x7f_ffff) as i32,
                highest_seq: self.tracker.highest_seq(),
                jitter: t.jitter_samples.round().clamp(0.0, f64::from(u32::MAX)) as u32,
                last_sr,
                delay_since_last_sr,
            },
        })
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

    /// Handles one valid packet.
    pub fn on_packet(
        &mut self,
        from: SocketAddr,
        packet: &SourcePacket<'_>,
        clock: MixClock,
        events: &mut Events,
    ) {
        self.last_heard = clock.now;
        self.from = from;
        if packet.channels != self.channels {
            // A sender that switched between mono and stereo under the
            // same identity: refused (logged at the 1st, 2nd, 4th, …
            // such packet) rather than mixed as the wrong format.
            self.format_changes += 1;
            self.malformed += 1;
            if self.format_changes.is_power_of_two() {
                self.push_event(
                    clock.now,
                    events,
                    EventKind::FormatChanged {
                        channels: packet.channels,
                        expected: self.channels,
                        count: self.format_changes,
                    },
                );
            }
            return;
        }
        let mut packet = *packet;
        if let Some(last) = self.seq16 {
            // RTP sequence numbers are 16-bit: extend them to the nearest
            // 32-bit value to the newest one seen (RFC 3550 A.1).
            let delta = (packet.seq as u16).wrapping_sub(last as u16) as i16;
            packet.seq = last.wrapping_add(delta as i32 as u32);
            if delta > 0 {
                self.seq16 = Some(packet.seq);
            }
        }
        let packet = &packet;
        if packet.rtp.is_none() {
            self.probe_sequence(packet.seq, clock.now, events);
        }
        if let Some(rtp) = packet.rtp {
            self.restore_copies(packet, rtp);
        }
        let previous_highest = self.tracker.highest_seq();
        let classified = self.tracker.on_packet(packet.seq);
        let seq = packet.seq;
        if !matches!(
            classified.arrival,
            Arrival::Probation { .. } | Arrival::Restart
        ) {
            self.discard_probation();
        }
        match classified.arrival {
            Arrival::First => unreachable!("a Source is created by its first packet"),
            Arrival::InOrder {
                missing,
                missing_from,
            } => {
                self.watch_rate(packet.frames(), clock.now, events);
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
                self.note_size(seq, packet.frames(), clock.now, events);
                self.place(classified.index, packet, clock, events);
            }
            Arrival::Reordered { highest } => {
                self.push_burstable(
                    Burstable::OutOfOrder,
                    clock.now,
                    events,
                    EventKind::OutOfOrder { seq, highest },
                );
                self.place(classified.index, packet, clock, events);
            }
            // Its copy played: nothing to add, nothing to say.
            Arrival::AlreadyRecovered => {}
            Arrival::Duplicate => {
                self.push_burstable(
                    Burstable::Repeated,
                    clock.now,
                    events,
                    EventKind::Repeated { seq },
                );
            }
            Arrival::Probation { held } => {
                if held == 1 {
                    self.discard_probation();
                    self.probation_frames = first_playout_frame(clock, 0) as u64;
                }
                self.hold(packet);
            }
            Arrival::Restart => self.restart(packet, previous_highest, clock, events),
        }
        if self.params.target == JitterTarget::Auto {
            self.retarget();
        }
    }

    /// Stores the redundant copies `packet` carries of packets that have not
    /// arrived (oldest first, so a run of lost packets fills in order).
    fn restore_copies(&mut self, packet: &SourcePacket<'_>, rtp: RtpInfo) {
        for copy in packet.redundant.copies() {
            let seq = packet.seq.wrapping_sub(copy.back);
            if !self.tracker.wants_copy(seq) {
                continue;
            }
            let Some(relative) = self.rtp.as_mut().map(|t| t.position(copy.timestamp)) else {
                return;
            };
            let restored = SourcePacket {
                seq,
                samples: Samples::BigEndianPayload(copy.payload),
                channels: packet.channels,
                rtp: Some(RtpInfo {
                    timestamp: copy.timestamp,
                    ..rtp
                }),
                redundant: Redundant::NONE,
            };
            if self.write(self.instance_offset + relative, &restored) == WriteOutcome::Stored {
                if let Some(timeline) = self.rtp.as_mut() {
                    timeline.stored(copy.timestamp, relative);
                }
                self.tracker.on_recovered(seq);
            }
        }
    }

    /// Over a new source's first packets: when most sequence numbers jump
    /// far from the one before, they are not sequence numbers. The usual
    /// cause is the stereo format of the node's own output (no sequence
    /// number: the first left and right samples read as one) sent to a
    /// node's port; said once.
    fn probe_sequence(&mut self, seq: u32, now: Duration, events: &mut Events) {
        let (count, jumps, last) = self.seq_probe;
        if count >= SEQ_PROBE_PACKETS {
            return;
        }
        let distance = seq.wrapping_sub(last).min(last.wrapping_sub(seq));
        let jumps = jumps + u32::from(distance > SEQ_PROBE_FAR);
        self.seq_probe = (count + 1, jumps, seq);
        if count + 1 == SEQ_PROBE_PACKETS && jumps > SEQ_PROBE_PACKETS / 2 {
            self.push_event(now, events, EventKind::NoSequenceNumbers { jumps });
        }
    }

    /// Measures the arrival rate; says so when it stops (or starts again
    /// to) fit the node's rate.
    fn watch_rate(&mut self, frames: usize, now: Duration, events: &mut Events) {
        if let Some(hz) = self.rate.on_frames(now, frames, self.params.rate) {
            self.push_event(
                now,
                events,
                EventKind::RateMismatch {
                    sender_hz: hz,
                    node_hz: self.params.rate,
                },
            );
        }
    }

    /// Counts a change of packet size once two consecutive packets confirm
    /// it (a stream's last, shorter packet is not a change).
    fn note_size(&mut self, seq: u32, len: usize, now: Duration, events: &mut Events) {
        if len == self.last_size {
            self.new_size = None;
            return;
        }
        match self.new_size {
            Some((size, first_seq)) if size == len && first_seq.wrapping_add(1) == seq => {
                self.size_changes += 1;
                self.push_event(
                    now,
                    events,
                    EventKind::SizeChanged {
                        seq: first_seq,
                        from: self.last_size,
                        to: len,
                    },
                );
                self.last_size = len;
                self.new_size = None;
            }
            _ => self.new_size = Some((len, seq)),
        }
    }

    /// Holds a packet of a restart's run.
    fn hold(&mut self, packet: &SourcePacket<'_>) {
        let len = packet.samples.len();
        let start = self.stash.len();
        self.stash.resize(start + len, 0);
        packet.samples.copy(0, &mut self.stash[start..]);
        self.stash_lens[self.stash_count] = len;
        self.stash_timestamps[self.stash_count] = packet.rtp.map(|r| r.timestamp);
        self.stash_count += 1;
    }

    /// A run of [`RESTART_RUN`] packets confirmed a new instance: `last` is
    /// its newest packet, the others are in the stash.
    fn restart(
        &mut self,
        last: &SourcePacket<'_>,
        previous_highest: u32,
        clock: MixClock,
        events: &mut Events,
    ) {
        let held: usize =
            self.stash_lens[..self.stash_count].iter().sum::<usize>() / usize::from(self.channels);
        let delay = self.target_frames + self.params.block_frames as i64;
        // The new instance starts a target delay and a block after the
        // run's first packet arrived (as a new stream would), or so that
        // its newest packet has that margin if the run came in a burst, but
        // never before the old instance's buffered tail has played nor in
        // the past.
        let from_first = self.probation_frames as i64 - self.frame_offset + delay;
        let from_last = first_playout_frame(clock, delay) - self.frame_offset - held as i64;
        self.instance_offset = from_first
            .max(from_last)
            .max(self.buffer.write_end())
            .max(self.buffer.read_pos());
        let first_seq = last.seq.wrapping_sub(self.stash_count as u32);
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
        self.reset_drift();
        self.positions.clear();
        if let Some(rtp) = self.rtp.as_mut() {
            rtp.clear();
        }
        self.missing_since = None;
        self.missed = 0;
        let stash = std::mem::take(&mut self.stash);
        let mut offset = 0;
        for k in 0..self.stash_count {
            let len = self.stash_lens[k];
            let held = SourcePacket {
                seq: first_seq.wrapping_add(k as u32),
                samples: Samples::Native(&stash[offset..offset + len]),
                channels: self.channels,
                rtp: self.stash_timestamps[k].map(|timestamp| super::ingress::RtpInfo {
                    ssrc: last.rtp.map_or(0, |r| r.ssrc),
                    timestamp,
                    listener: self.rtcp.listener,
                }),
                redundant: super::ingress::Redundant::NONE,
            };
            self.place(k as u64, &held, clock, events);
            offset += len;
        }
        self.stash = stash;
        self.stash.clear();
        let index = self.stash_count as u64;
        self.stash_count = 0;
        self.last_size = last.frames();
        self.new_size = None;
        self.place(index, last, clock, events);
    }

    fn reset_drift(&mut self) {
        let (drops, repeats) = self.drift.corrections();
        self.past_corrections.0 += drops;
        self.past_corrections.1 += repeats;
        self.drift = new_drift_control(&self.params, self.target_frames);
    }

    /// Starts loading what [`Source::read_block`] reads of this source's
    /// state (the drift controller and the buffers' positions) into the
    /// CPU's cache.
    #[inline]
    pub fn prefetch_state(&self) {
        use super::prefetch::prefetch;
        prefetch(std::slice::from_ref(&self.drift));
        prefetch(std::slice::from_ref(&self.buffer));
        prefetch(std::slice::from_ref(&self.right));
        prefetch(std::slice::from_ref(&self.frame_offset));
        prefetch(std::slice::from_ref(&self.channels));
    }

    /// Starts loading the samples the next [`Source::read_block`] of
    /// `frames` frames will read (two more, for drift corrections) into
    /// the CPU's cache.
    #[inline]
    pub fn prefetch_block(&self, frames: usize) {
        self.buffer.prefetch_next(frames + 2);
        if let Some(right) = &self.right {
            right.prefetch_next(frames + 2);
        }
    }

    /// Plays the next block of this source into `out`; returns the block's
    /// peak magnitude (0..=32768). Gaps are concealed (`--plc`), a gap that
    /// begins taking one of `searches`, the pitch searches left in this
    /// block; each concealed gap that ended is reported as a `Concealed`
    /// event at `now`.
    ///
    /// A stereo source plays its right channel into `out_right` with the
    /// same corrections; a mono source leaves it untouched.
    pub fn read_block(
        &mut self,
        now: Duration,
        out: &mut [f32],
        out_right: &mut [f32],
        searches: &mut u32,
        events: &mut Events,
    ) -> u32 {
        let peak = self.read_channels(out, out_right, searches);
        self.report_gaps(now, events);
        peak
    }

    /// Says which output frames were concealed, for the gaps that ended.
    /// The left (or only) channel's gaps: the right one's are the same
    /// positions.
    fn report_gaps(&mut self, now: Duration, events: &mut Events) {
        let mut gaps = [None; GAPS];
        let mut n = 0;
        self.buffer.take_gaps(|gap| {
            if n < gaps.len() {
                gaps[n] = Some(gap);
                n += 1;
            }
        });
        if let Some(right) = self.right.as_mut() {
            right.take_gaps(|_| {});
        }
        for gap in gaps.into_iter().flatten() {
            let first_frame = (gap.pos + self.frame_offset).max(0) as u64;
            self.push_burstable(
                Burstable::Missing,
                now,
                events,
                EventKind::Concealed {
                    first_frame,
                    frames: gap.frames,
                    mode: self.params.plc,
                },
            );
        }
    }

    fn read_channels(&mut self, out: &mut [f32], out_right: &mut [f32], searches: &mut u32) -> u32 {
        let (adjust, n) = self.drift.next_correction();
        if n <= 1 {
            let mut peak = self.buffer.read_budgeted(out, adjust, searches);
            if let Some(right) = self.right.as_mut() {
                peak = peak.max(right.read_budgeted(out_right, adjust, searches));
            }
            self.shift(adjust, 1);
            return peak;
        }
        // n corrections, one in the middle of each of n equal parts.
        let parts = n as usize;
        let len = out.len();
        let mut peak = 0;
        for k in 0..parts {
            let range = k * len / parts..(k + 1) * len / parts;
            peak = peak.max(
                self.buffer
                    .read_budgeted(&mut out[range.clone()], adjust, searches),
            );
            if let Some(right) = self.right.as_mut() {
                peak = peak.max(right.read_budgeted(&mut out_right[range], adjust, searches));
            }
        }
        self.shift(adjust, n);
        peak
    }

    fn shift(&mut self, adjust: Adjust, n: u32) {
        match adjust {
            Adjust::None => {}
            Adjust::Drop => self.frame_offset -= i64::from(n),
            Adjust::Repeat => self.frame_offset += i64::from(n),
        }
    }

    /// Skips `frames` output frames without playing them (the node skipped
    /// blocks after a stall): the source stays on the same output timing.
    pub fn skip(&mut self, frames: usize) {
        self.buffer.skip(frames);
        if let Some(right) = self.right.as_mut() {
            right.skip(frames);
        }
    }

    /// Logs summaries of suppressed bursts whose window has ended (all of
    /// them with `force`).
    pub fn flush_events(&mut self, now: Duration, force: bool, events: &mut Events) {
        let addr = self.id;
        let window_ms = self.throttle.window().as_millis() as u64;
        self.throttle.flush(now, force, |s| {
            events.push(Event {
                at: now,
                source: addr,
                kind: summary_kind(s, window_ms),
            })
        });
    }

    /// Packets held for a restart's run that no full run confirmed are
    /// strays: counted and forgotten.
    fn discard_probation(&mut self) {
        if self.stash_count > 0 {
            self.stray += self.stash_count as u64;
            self.stash.clear();
            self.stash_count = 0;
        }
    }

    /// Reports the stream's removal with its final counters.
    pub fn drop_stream(&mut self, now: Duration, reason: DropReason, events: &mut Events) {
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
            recovered: t.recovered,
            duplicates: t.duplicates,
            reordered: t.reordered,
            late: self.late,
            malformed: self.malformed,
            overflow: self.overflow,
            restarts: t.restarts,
            reanchors: self.reanchors,
            stray: self.stray,
            size_changes: self.size_changes,
            jitter_ms: t.jitter_samples / rate * 1000.0,
            buffered_ms: self.buffer.buffered() as f64 / rate * 1000.0,
            target_ms: self.target_frames as f64 / rate * 1000.0,
            drift_drops: drops + self.past_corrections.0,
            drift_repeats: repeats + self.past_corrections.1,
            rate_mismatch_hz: self.rate.mismatch_hz,
            concealed_frames: self.buffer.concealed(),
        }
    }

    /// Stores packet `index` of the current instance.
    fn place(
        &mut self,
        index: u64,
        packet: &SourcePacket<'_>,
        clock: MixClock,
        events: &mut Events,
    ) {
        let seq = packet.seq;
        let len = packet.frames();
        let timestamp = packet.rtp.map(|r| r.timestamp);
        let relative = match (self.rtp.as_mut(), timestamp) {
            (Some(rtp), Some(ts)) => rtp.position(ts),
            _ => self.positions.place(index, len),
        };
        let pos = self.instance_offset + relative;
        let playout_frame = (pos + self.frame_offset) as f64;
        self.tracker.update_jitter(clock.position, pos as f64);
        self.drift.on_wait(playout_frame - clock.position);
        let outcome = self.write(pos, packet);
        if outcome == WriteOutcome::Stored {
            if let (Some(rtp), Some(ts)) = (self.rtp.as_mut(), timestamp) {
                rtp.stored(ts, relative);
            }
            self.missing_since = None;
            self.missed = 0;
            return;
        }
        if self.missed_for_too_long(clock.now) {
            self.reanchor(packet, clock, events);
            return;
        }
        match outcome {
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
                self.push_burstable(
                    Burstable::Overflow,
                    clock.now,
                    events,
                    EventKind::Overflow { seq },
                );
            }
        }
    }

    /// Writes `packet`'s samples at timeline position `pos` into the buffer
    /// (both channels of a stereo source).
    fn write(&mut self, pos: i64, packet: &SourcePacket<'_>) -> WriteOutcome {
        let samples = &packet.samples;
        let len = packet.frames();
        match self.right.as_mut() {
            None => self
                .buffer
                .write_with(pos, len, |offset, run| samples.copy(offset, run)),
            Some(right) => {
                let outcome = self.buffer.write_with(pos, len, |frame, run| {
                    samples.copy_stereo_channel(0, frame, run)
                });
                if outcome == WriteOutcome::Stored {
                    right.write_with(pos, len, |frame, run| {
                        samples.copy_stereo_channel(1, frame, run)
                    });
                }
                outcome
            }
        }
    }

    /// Counts a packet that missed the buffer; whether they have been
    /// missing it for longer than the target (and at least a few packets).
    fn missed_for_too_long(&mut self, now: Duration) -> bool {
        self.missed += 1;
        let since = *self.missing_since.get_or_insert(now);
        let target =
            Duration::from_secs_f64(self.target_frames.max(0) as f64 / f64::from(self.params.rate));
        self.missed >= REANCHOR_MIN_PACKETS && now.saturating_sub(since) >= target
    }

    /// Places the stream afresh from packet `seq`, which plays a target
    /// delay and a block after now, as a new stream's first packet would.
    fn reanchor(&mut self, packet: &SourcePacket<'_>, clock: MixClock, events: &mut Events) {
        let seq = packet.seq;
        let missed = self.missed - 1;
        self.reanchors += 1;
        self.tracker.reanchor(seq);
        self.positions.clear();
        if let Some(rtp) = self.rtp.as_mut() {
            rtp.clear();
        }
        self.missing_since = None;
        self.missed = 0;
        let delay = self.target_frames + self.params.block_frames as i64;
        self.instance_offset =
            (first_playout_frame(clock, delay) - self.frame_offset).max(self.buffer.read_pos());
        self.drift.resync();
        self.last_size = packet.frames();
        self.new_size = None;
        self.push_event(
            clock.now,
            events,
            EventKind::Reanchored {
                seq,
                start_frame: (self.instance_offset + self.frame_offset) as u64,
                missed,
            },
        );
        self.place(0, packet, clock, events);
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
        let wanted = (4.0 * jitter + self.last_size as f64)
            .clamp(min, max)
            .round() as i64;
        let band = self.params.drift_band_ms * rate / 1000.0;
        if ((wanted - self.target_frames) as f64).abs() > band {
            self.drift
                .shift_reference((wanted - self.target_frames) as f64);
            self.target_frames = wanted;
        }
    }

    fn push_event(&self, at: Duration, events: &mut Events, kind: EventKind) {
        events.push(Event {
            at,
            source: self.id,
            kind,
        });
    }

    fn push_burstable(
        &mut self,
        class: Burstable,
        now: Duration,
        events: &mut Events,
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
        .with_max_per_block((params.block_frames / 2) as u32)
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
