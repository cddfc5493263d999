//! Events the engine reports about each source, and their one-line text in
//! the original event-log format:
//! `[<ms since start, right-aligned in 12>] [<ip:port, right-aligned in 21>] <Event> <details>`.
//!
//! Events about the node as a whole (a stall, the log budget, a refused
//! source) carry [`NODE`] as their source and print `node` in its place.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::engine::SourceControls;
use super::name::SourceName;
use super::source_id::SourceId;
use crate::stats::SourceStats;

/// The source key of events about the node itself.
pub const NODE: SourceId = SourceId::Addr(SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
)));

/// Something that happened to one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Node time of the event (since the node started).
    pub at: Duration,
    /// The source (or [`NODE`]).
    pub source: SourceId,
    /// What happened.
    pub kind: EventKind,
}

/// A mixer setting as the event log records an operator's change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    /// The master volume.
    Master(f32),
    /// One source's controls.
    Source(SourceId, SourceControls),
}

/// An operator's change of a setting, to write to the event log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggedSetting {
    /// The setting after the change.
    pub setting: Setting,
    /// The operator's address.
    pub by: SocketAddr,
}

/// Why a stream was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Nothing arrived for the timeout.
    Timeout,
    /// The node is shutting down.
    Shutdown,
    /// The sender said goodbye (RTCP BYE, or a browser sender closed its
    /// WebSocket).
    Closed,
}

impl DropReason {
    /// The word the log line uses.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Timeout => "timeout",
            DropReason::Shutdown => "shutdown",
            DropReason::Closed => "closed",
        }
    }
}

/// Who named a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    /// The operator, from this address (the desk or the REST API).
    Operator(SocketAddr),
    /// The sender's RTCP SDES (or the name remembered from its last stream).
    Rtcp,
    /// The sender itself, a browser on the Send page (`/ws/send`).
    Browser,
}

impl NamedBy {
    /// Whether the operator set the name (the sender's own names then no
    /// longer replace it).
    pub fn is_operator(self) -> bool {
        matches!(self, NamedBy::Operator(_))
    }
}

/// The classes of event that can come in bursts and are rate-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Burstable {
    /// `Repeated packet`
    Repeated,
    /// `Out of order packet`
    OutOfOrder,
    /// `Missing packets`
    Missing,
    /// `Late packet`
    Late,
    /// `Overflow packet`
    Overflow,
}

impl Burstable {
    /// All classes, in a fixed order (indexes of per-class state).
    pub const ALL: [Burstable; 5] = [
        Burstable::Repeated,
        Burstable::OutOfOrder,
        Burstable::Missing,
        Burstable::Late,
        Burstable::Overflow,
    ];

    /// The event name that begins the log line.
    pub fn name(self) -> &'static str {
        match self {
            Burstable::Repeated => "Repeated packet",
            Burstable::OutOfOrder => "Out of order packet",
            Burstable::Missing => "Missing packets",
            Burstable::Late => "Late packet",
            Burstable::Overflow => "Overflow packet",
        }
    }

    /// Index into per-class arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What happened, with its details.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    /// The first packet of a new source.
    NewStream {
        /// Its sequence number.
        seq: u32,
        /// Output frame (counted in frames sent) at which its first sample is mixed.
        start_frame: u64,
        /// Frames in the packet (the stream's nominal packet size).
        samples: usize,
        /// For RTP sources: channels and the address the stream comes from
        /// (the id is its SSRC). `None` keeps the original line.
        rtp: Option<(u8, SocketAddr)>,
    },
    /// A packet received before.
    Repeated {
        /// Its sequence number.
        seq: u32,
    },
    /// A packet that arrived after a higher sequence number.
    OutOfOrder {
        /// Its sequence number.
        seq: u32,
        /// The highest sequence number seen when it arrived.
        highest: u32,
    },
    /// A run of sequence numbers skipped by a newer packet.
    Missing {
        /// How many packets are missing.
        count: u64,
        /// First missing sequence number.
        first: u32,
        /// Last missing sequence number.
        last: u32,
    },
    /// A gap (positions nobody wrote by their playout) was filled by
    /// packet-loss concealment; reported when it ended.
    Concealed {
        /// Output frame of its first concealed frame.
        first_frame: u64,
        /// Frames concealed (at most the 50 ms fade; the rest of a longer
        /// gap was silence).
        frames: u64,
        /// The concealment mode.
        mode: proto::plc::PlcMode,
    },
    /// A packet that arrived after its playout time (not mixed).
    Late {
        /// Its sequence number.
        seq: u32,
        /// How long after its playout time it arrived.
        late_by_ms: f64,
    },
    /// A sequence number far from the stream's, confirmed by its successor:
    /// a new instance of the stream (e.g. a restarted streamer).
    Restarted {
        /// First sequence number of the new instance.
        seq: u32,
        /// The highest sequence number of the previous instance.
        previous_highest: u32,
        /// Output frame at which the new instance's first sample is mixed.
        start_frame: u64,
    },
    /// The stream was removed; its final counters.
    Dropped {
        /// Why.
        reason: DropReason,
        /// Final counters.
        stats: SourceStats,
    },
    /// A packet that lay beyond the buffer's capacity ahead of the
    /// playout position (not mixed).
    Overflow {
        /// Its sequence number.
        seq: u32,
    },
    /// Packets persistently missed the buffer (overflow or late for longer
    /// than the jitter target): the stream is placed afresh from this packet.
    Reanchored {
        /// The packet the stream is placed from.
        seq: u32,
        /// Output frame at which that packet's first sample is mixed.
        start_frame: u64,
        /// Consecutive packets that missed the buffer before.
        missed: u64,
    },
    /// A packet whose size differs from its predecessor's; it is placed
    /// exactly at the end of the samples before it.
    SizeChanged {
        /// Its sequence number.
        seq: u32,
        /// Samples per packet before.
        from: usize,
        /// Samples per packet now.
        to: usize,
    },
    /// A datagram that was not a valid source packet (counted; only in the
    /// program log, at debug level).
    Malformed {
        /// Its length in bytes.
        len: usize,
        /// Why it did not decode.
        why: super::ingress::Malformed,
    },
    /// A packet with another channel count than its stream's (not mixed).
    FormatChanged {
        /// Its channels.
        channels: u8,
        /// The stream's.
        expected: u8,
        /// Such packets so far.
        count: u64,
    },
    /// The sender's audio arrives at a rate that does not fit the node's
    /// (it runs at another sample rate); `sender_hz` 0: it fits again.
    RateMismatch {
        /// The measured rate (nearest 50 Hz), or 0.
        sender_hz: u32,
        /// The node's rate.
        node_hz: u32,
    },
    /// A new source's sequence numbers jump at random: probably a stereo
    /// stream without them (the node's output format) sent to the node.
    NoSequenceNumbers {
        /// Far jumps among its first packets.
        jumps: u32,
    },
    /// The operator changed the source's controls (logged when a level
    /// has settled, at once for mute and solo).
    Controls {
        /// The controls after the change.
        controls: SourceControls,
        /// The operator's address.
        by: SocketAddr,
    },
    /// The operator changed the master volume (logged when it has settled).
    MasterVolume {
        /// The new linear gain.
        volume: f32,
        /// The operator's address.
        by: SocketAddr,
    },
    /// The source's name changed (RTCP SDES, a browser sender or the
    /// operator).
    Named {
        /// The new name (empty: none).
        name: SourceName,
        /// Who set it.
        by: NamedBy,
    },
    /// RTP packets of a stream the node cannot mix (unknown payload type,
    /// another sample rate): said once per SSRC.
    RtpRefused {
        /// Why.
        why: super::ingress::Malformed,
        /// Where they come from.
        from: SocketAddr,
    },
    /// A new source refused because `--max-sources` was reached (program
    /// log only).
    Refused {
        /// The limit.
        max_sources: usize,
    },
    /// The mixing thread was held off the CPU for longer than four blocks:
    /// the blocks it missed were skipped rather than sent in a burst.
    Stall {
        /// Blocks skipped.
        skipped_blocks: u64,
        /// How far behind the mixing clock was, in ms.
        behind_ms: u64,
    },
    /// Sending the mix to a destination (this event's source) failed; said
    /// once per run of failures.
    SendFailed {
        /// The OS error number.
        errno: i32,
    },
    /// Sending the mix works again after a run of failures.
    SendRecovered {
        /// Failed sends in the run.
        errors: u64,
        /// How long the run lasted, in ms.
        over_ms: u64,
    },
    /// Lines not written because the node's event-log budget was spent,
    /// summarised once per second.
    OverBudget {
        /// Lines not written, by class ([`EventClass::ALL`] order).
        counts: [u32; EventClass::COUNT],
        /// Length of the window, in ms.
        window_ms: u64,
    },
    /// Events of one class not logged individually in the last window.
    Suppressed {
        /// Which class.
        class: Burstable,
        /// How many were not logged.
        count: u64,
        /// Length of the window, in ms.
        window_ms: u64,
    },
}

/// A linear gain as the log shows it: the factor and its level in dB.
struct Gain(f32);

impl fmt::Display for Gain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 <= 0.0 {
            write!(f, "0 (-inf dB)")
        } else {
            write!(f, "{:.3} ({:+.1} dB)", self.0, 20.0 * self.0.log10())
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EventKind::NewStream {
                seq,
                start_frame,
                samples,
                rtp,
            } => {
                write!(
                    f,
                    "New stream seq={seq} start_frame={start_frame} samples_per_packet={samples}"
                )?;
                match rtp {
                    Some((channels, from)) => write!(f, " channels={channels} from={from}"),
                    None => Ok(()),
                }
            }
            EventKind::FormatChanged {
                channels,
                expected,
                count,
            } => write!(
                f,
                "Format changed packets={count}: {channels} channels, the stream has {expected} (not mixed)"
            ),
            EventKind::Controls { controls, by } => write!(
                f,
                "Controls volume={} balance={:.2} mute={} solo={} by={by}",
                Gain(controls.volume),
                controls.balance,
                on_off(controls.mute),
                on_off(controls.solo)
            ),
            EventKind::MasterVolume { volume, by } => {
                write!(f, "Master volume={} by={by}", Gain(volume))
            }
            EventKind::Named { name, by } => {
                write!(f, "Named name=\"{}\"", name.escaped())?;
                match by {
                    NamedBy::Operator(by) => write!(f, " by={by}"),
                    NamedBy::Rtcp => write!(f, " by=rtcp"),
                    NamedBy::Browser => write!(f, " by=browser"),
                }
            }
            EventKind::RateMismatch { sender_hz: 0, node_hz } => {
                write!(f, "Rate fits again: the sender runs at the node's {node_hz} Hz")
            }
            EventKind::RateMismatch { sender_hz, node_hz } => write!(
                f,
                "Rate mismatch: sender runs at ~{sender_hz} Hz, node at {node_hz} Hz (set the same --sample-rate on both)"
            ),
            EventKind::NoSequenceNumbers { jumps } => write!(
                f,
                "No sequence numbers: {jumps} of the first 16 packets jump far; this looks like a stereo stream without sequence numbers (a node's output, audiostreamer --stream-to-recorder) sent to a node"
            ),
            EventKind::RtpRefused { why, from } => {
                write!(f, "Refused RTP stream from={from}: {why}")
            }
            EventKind::Repeated { seq } => write!(f, "Repeated packet seq={seq}"),
            EventKind::OutOfOrder { seq, highest } => {
                write!(f, "Out of order packet seq={seq} highest={highest}")
            }
            EventKind::Missing { count, first, last } => {
                write!(f, "Missing packets count={count} seq={first}..={last}")
            }
            EventKind::Concealed {
                first_frame,
                frames,
                mode,
            } => write!(
                f,
                "Concealed frames first_frame={first_frame} frames={frames} plc={mode}"
            ),
            EventKind::Late { seq, late_by_ms } => {
                write!(f, "Late packet seq={seq} late_by_ms={late_by_ms:.1}")
            }
            EventKind::Restarted {
                seq,
                previous_highest,
                start_frame,
            } => write!(
                f,
                "Stream restarted seq={seq} previous_highest={previous_highest} start_frame={start_frame}"
            ),
            EventKind::Dropped { reason, stats } => {
                write!(f, "Dropped stream reason={} {stats}", reason.name())
            }
            EventKind::Overflow { seq } => write!(f, "Overflow packet seq={seq}"),
            EventKind::Reanchored {
                seq,
                start_frame,
                missed,
            } => write!(
                f,
                "Stream re-anchored seq={seq} start_frame={start_frame} missed_packets={missed}"
            ),
            EventKind::SizeChanged { seq, from, to } => write!(
                f,
                "Packet size changed seq={seq} samples_per_packet={from}->{to}"
            ),
            EventKind::Malformed { len, why } => {
                write!(f, "Malformed datagram bytes={len}: {why}")
            }
            EventKind::Refused { max_sources } => {
                write!(f, "Refused source: --max-sources {max_sources} reached")
            }
            EventKind::Stall {
                skipped_blocks,
                behind_ms,
            } => write!(
                f,
                "Mixing stalled behind_ms={behind_ms} skipped_blocks={skipped_blocks}"
            ),
            EventKind::SendFailed { errno } => write!(
                f,
                "Cannot send the mix: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
            EventKind::SendRecovered { errors, over_ms } => write!(
                f,
                "Sending the mix works again after {errors} errors over {over_ms} ms"
            ),
            EventKind::OverBudget { counts, window_ms } => {
                let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
                write!(f, "Event log over budget: {total} lines not written in the last {window_ms} ms (")?;
                let mut first = true;
                for class in EventClass::ALL {
                    let n = counts[class as usize];
                    if n > 0 {
                        if !first {
                            write!(f, " ")?;
                        }
                        first = false;
                        write!(f, "{}={n}", class.name())?;
                    }
                }
                write!(f, ")")
            }
            EventKind::Suppressed {
                class,
                count,
                window_ms,
            } => write!(
                f,
                "{} count={count} suppressed in the last {window_ms} ms",
                class.name()
            ),
        }
    }
}

/// Where an event's line goes besides the event-log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror {
    /// Only the event-log file (and the program log at debug level).
    FileOnly,
    /// The file and the program log at info level.
    Info,
    /// The file and the program log at warn level.
    Warn,
    /// Only the program log, at debug level (not an event of the original log).
    DebugOnly,
    /// Only the program log, at warn level.
    WarnOnly,
}

/// The classes of event the node-wide budget counts, one per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    /// New streams.
    New,
    /// Restarts and re-anchors.
    Restart,
    /// Dropped streams.
    Drop,
    /// Duplicates.
    Repeated,
    /// Reordered packets.
    OutOfOrder,
    /// Missing runs.
    Missing,
    /// Late packets.
    Late,
    /// Overflowing packets.
    Overflow,
    /// Size changes.
    Size,
    /// Per-source burst summaries.
    Suppressed,
    /// Everything about the node itself.
    Node,
}

impl EventClass {
    /// Number of classes.
    pub const COUNT: usize = 11;
    /// Every class, in index order.
    pub const ALL: [EventClass; Self::COUNT] = [
        EventClass::New,
        EventClass::Restart,
        EventClass::Drop,
        EventClass::Repeated,
        EventClass::OutOfOrder,
        EventClass::Missing,
        EventClass::Late,
        EventClass::Overflow,
        EventClass::Size,
        EventClass::Suppressed,
        EventClass::Node,
    ];

    /// The short name in budget summaries.
    pub fn name(self) -> &'static str {
        match self {
            EventClass::New => "new",
            EventClass::Restart => "restart",
            EventClass::Drop => "drop",
            EventClass::Repeated => "repeated",
            EventClass::OutOfOrder => "out_of_order",
            EventClass::Missing => "missing",
            EventClass::Late => "late",
            EventClass::Overflow => "overflow",
            EventClass::Size => "size",
            EventClass::Suppressed => "suppressed",
            EventClass::Node => "node",
        }
    }
}

impl EventKind {
    /// The budget class of this kind.
    pub fn class(&self) -> EventClass {
        match self {
            EventKind::NewStream { .. } => EventClass::New,
            EventKind::Restarted { .. } | EventKind::Reanchored { .. } => EventClass::Restart,
            EventKind::Dropped { .. } => EventClass::Drop,
            EventKind::Repeated { .. } => EventClass::Repeated,
            EventKind::OutOfOrder { .. } => EventClass::OutOfOrder,
            EventKind::Missing { .. } | EventKind::Concealed { .. } => EventClass::Missing,
            EventKind::Late { .. } => EventClass::Late,
            EventKind::Overflow { .. } => EventClass::Overflow,
            EventKind::SizeChanged { .. } => EventClass::Size,
            EventKind::Suppressed { .. } => EventClass::Suppressed,
            EventKind::FormatChanged { .. }
            | EventKind::Named { .. }
            | EventKind::Controls { .. }
            | EventKind::RateMismatch { .. }
            | EventKind::NoSequenceNumbers { .. } => EventClass::New,
            EventKind::Malformed { .. }
            | EventKind::RtpRefused { .. }
            | EventKind::Refused { .. }
            | EventKind::Stall { .. }
            | EventKind::SendFailed { .. }
            | EventKind::SendRecovered { .. }
            | EventKind::MasterVolume { .. }
            | EventKind::OverBudget { .. } => EventClass::Node,
        }
    }

    /// Where the line goes besides (or instead of) the file.
    pub fn mirror(&self) -> Mirror {
        match self {
            EventKind::NewStream { .. }
            | EventKind::Restarted { .. }
            | EventKind::Reanchored { .. }
            | EventKind::Dropped { .. }
            | EventKind::SizeChanged { .. }
            | EventKind::Named { .. }
            | EventKind::Controls { .. }
            | EventKind::MasterVolume { .. } => Mirror::Info,
            EventKind::FormatChanged { .. }
            | EventKind::RtpRefused { .. }
            | EventKind::RateMismatch { .. }
            | EventKind::NoSequenceNumbers { .. } => Mirror::Warn,
            EventKind::Stall { .. } | EventKind::OverBudget { .. } => Mirror::Warn,
            EventKind::SendFailed { .. } => Mirror::WarnOnly,
            EventKind::SendRecovered { .. } => Mirror::Info,
            EventKind::Malformed { .. } => Mirror::DebugOnly,
            EventKind::Refused { .. } => Mirror::WarnOnly,
            _ => Mirror::FileOnly,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source == NODE {
            write!(
                f,
                "[{:>12}] [{:>21}] {}",
                self.at.as_millis(),
                "node",
                self.kind
            )
        } else {
            // Right-aligned without an intermediate String: the address is
            // formatted into a fixed stack buffer first.
            let mut buf = AddrBuf::default();
            let _ = fmt::write(&mut buf, format_args!("{}", self.source));
            write!(
                f,
                "[{:>12}] [{:>21}] {}",
                self.at.as_millis(),
                buf.as_str(),
                self.kind
            )
        }
    }
}

/// A stack buffer long enough for any socket address.
struct AddrBuf {
    bytes: [u8; 64],
    len: usize,
}

impl Default for AddrBuf {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl AddrBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl fmt::Write for AddrBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A bounded queue of events, allocated once: when it is full the newest
/// event is dropped and counted, never grown (the mixing thread allocates
/// nothing in steady state).
#[derive(Debug)]
pub struct Events {
    queue: std::collections::VecDeque<Event>,
    capacity: usize,
    dropped: u64,
}

impl Events {
    /// A queue of at most `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            queue: std::collections::VecDeque::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    /// Queues `event`, or counts it as dropped when the queue is full.
    pub fn push(&mut self, event: Event) {
        if self.queue.len() < self.capacity {
            self.queue.push_back(event);
        } else {
            self.dropped += 1;
        }
    }

    /// The oldest event.
    pub fn pop(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    /// Events queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none are queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, kind: EventKind) -> String {
        Event {
            at: Duration::from_millis(ms),
            source: "127.0.0.1:50000".parse().unwrap(),
            kind,
        }
        .to_string()
    }

    #[test]
    fn original_line_layout() {
        assert_eq!(
            at(1234, EventKind::Repeated { seq: 7 }),
            "[        1234] [      127.0.0.1:50000] Repeated packet seq=7"
        );
        assert_eq!(
            at(
                5,
                EventKind::NewStream {
                    seq: 0,
                    start_frame: 882,
                    samples: 441,
                    rtp: None,
                }
            ),
            "[           5] [      127.0.0.1:50000] New stream seq=0 start_frame=882 samples_per_packet=441"
        );
        assert_eq!(
            at(
                99,
                EventKind::Missing {
                    count: 2,
                    first: 4,
                    last: 5
                }
            ),
            "[          99] [      127.0.0.1:50000] Missing packets count=2 seq=4..=5"
        );
    }

    #[test]
    fn node_events_print_node_for_the_address() {
        let line = Event {
            at: Duration::from_millis(7),
            source: NODE,
            kind: EventKind::Stall {
                skipped_blocks: 12,
                behind_ms: 61,
            },
        }
        .to_string();
        assert_eq!(
            line,
            "[           7] [                 node] Mixing stalled behind_ms=61 skipped_blocks=12"
        );
    }

    #[test]
    fn over_budget_lists_the_classes_it_cut() {
        let mut counts = [0; EventClass::COUNT];
        counts[EventClass::Late as usize] = 40;
        counts[EventClass::New as usize] = 3;
        let line = at(
            1000,
            EventKind::OverBudget {
                counts,
                window_ms: 1000,
            },
        );
        assert!(
            line.ends_with(
                "] Event log over budget: 43 lines not written in the last 1000 ms (new=3 late=40)"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_full_queue_drops_the_newest() {
        let mut q = Events::with_capacity(2);
        for seq in 0..3 {
            q.push(Event {
                at: Duration::ZERO,
                source: NODE,
                kind: EventKind::Repeated { seq },
            });
        }
        assert_eq!((q.len(), q.dropped()), (2, 1));
        assert_eq!(q.pop().unwrap().kind, EventKind::Repeated { seq: 0 });
    }

    #[test]
    fn suppressed_line_begins_with_the_event_name() {
        let line = at(
            2000,
            EventKind::Suppressed {
                class: Burstable::Late,
                count: 347,
                window_ms: 1000,
            },
        );
        assert!(line.ends_with("] Late packet count=347 suppressed in the last 1000 ms"));
    }
}
