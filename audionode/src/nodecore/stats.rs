//! Counters reported per source and for the whole node (event log, tests,
//! metrics), and the stats frame the mixing thread publishes for the
//! control surface and [`crate::NodeHandle::snapshot`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::engine::SourceControls;
use super::name::SourceName;
use super::source_id::SourceId;

/// Counters and gauges of one source.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SourceStats {
    /// Packets received, including duplicates, late and malformed ones.
    pub received: u64,
    /// Packets expected but neither received nor restored from a
    /// redundant copy.
    pub lost: u64,
    /// Packets not received but restored from a redundant copy (RFC 2198).
    pub recovered: u64,
    /// Packets received more than once.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Packets that arrived after their playout time (not mixed).
    pub late: u64,
    /// Datagrams that were not valid mono datagrams.
    pub malformed: u64,
    /// Packets that lay beyond the buffer's capacity (source far too fast).
    pub overflow: u64,
    /// Stream restarts detected.
    pub restarts: u64,
    /// Times the stream was placed afresh because its packets persistently
    /// missed the buffer (late or beyond its capacity).
    pub reanchors: u64,
    /// Packets whose size differed from the one before them.
    pub size_changes: u64,
    /// Packets too far from the stream's sequence numbers that no
    /// successor confirmed as a restart (discarded).
    pub stray: u64,
    /// RFC 3550 interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// Audio buffered ahead of the playout position, in milliseconds.
    pub buffered_ms: f64,
    /// Current jitter-buffer target, in milliseconds.
    pub target_ms: f64,
    /// Samples dropped to shorten the delay (fast source clock).
    pub drift_drops: u64,
    /// Samples repeated to lengthen the delay (slow source clock).
    pub drift_repeats: u64,
    /// The rate the sender's packets arrive at, when it does not fit the
    /// node's sample rate (a sender at another `--sample-rate`); 0 when it
    /// fits or is not measured yet.
    pub rate_mismatch_hz: u32,
    /// Frames of the stream's timeline that nobody wrote by their playout
    /// and that concealment filled (`--plc`; at most 50 ms per gap, the
    /// rest of a longer gap is silence; 0 with `--plc off`).
    pub concealed_frames: u64,
}

impl fmt::Display for SourceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} lost={} duplicates={} reordered={} late={} malformed={} overflow={} restarts={} reanchors={} size_changes={} stray={} jitter_ms={:.2} drift_drops={} drift_repeats={} concealed_frames={} recovered={}",
            self.received,
            self.lost,
            self.duplicates,
            self.reordered,
            self.late,
            self.malformed,
            self.overflow,
            self.restarts,
            self.reanchors,
            self.size_changes,
            self.stray,
            self.jitter_ms,
            self.drift_drops,
            self.drift_repeats,
            self.concealed_frames,
            self.recovered
        )
    }
}

/// Node-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Datagrams received on the listening socket.
    pub packets: u64,
    /// Malformed datagrams from addresses that are not admitted sources.
    pub malformed_unknown: u64,
    /// Datagrams from sources refused because `--max-sources` was reached.
    pub refused: u64,
    /// Blocks mixed.
    pub blocks: u64,
    /// Stereo frames mixed and sent.
    pub frames: u64,
    /// Blocks mixed more than one block period after their deadline.
    pub deadline_misses: u64,
    /// Output samples that saturated at the i16 range.
    pub clipped: u64,
    /// Streams admitted since start.
    pub streams_started: u64,
    /// Streams dropped since start.
    pub streams_dropped: u64,
    /// Blocks skipped after the mixing thread was held off the CPU for
    /// longer than four blocks.
    pub skipped_blocks: u64,
    /// Event-log lines not written because the node's budget was spent.
    pub events_over_budget: u64,
    /// Events dropped because the event-log thread fell behind (its ring
    /// was full).
    pub events_dropped: u64,
    /// Mixed blocks not handed to the TCP fan-out because its ring was full.
    pub blocks_dropped: u64,
}

/// A point-in-time view of the node, for tests, metrics and the control surface.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSnapshot {
    /// Node-wide counters.
    pub node: NodeCounters,
    /// Each active source with its counters.
    pub sources: Vec<(SourceId, SourceStats)>,
}

impl NodeSnapshot {
    /// The stats of the source at `addr`, if it is active.
    pub fn source(&self, id: impl Into<SourceId>) -> Option<&SourceStats> {
        let id = id.into();
        self.sources.iter().find(|(a, _)| *a == id).map(|(_, s)| s)
    }
}

/// One source's row of a [`StatsFrame`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceRow {
    /// The source.
    pub id: SourceId,
    /// Where its packets last came from.
    pub from: SocketAddr,
    /// Its name (empty: none).
    pub name: SourceName,
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
    /// Its counters.
    pub stats: SourceStats,
    /// The controls the mixer applies.
    pub controls: SourceControls,
    /// Post-fader peak over the last few frames (1.0 = full scale).
    pub peak: f32,
    /// Pre-fader peak (before gain, mute and solo) over the same frames.
    pub input_peak: f32,
}

const EMPTY_ROW: SourceRow = SourceRow {
    id: super::event::NODE,
    from: SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        0,
    )),
    name: SourceName::EMPTY,
    channels: 1,
    stats: SourceStats {
        received: 0,
        lost: 0,
        recovered: 0,
        duplicates: 0,
        reordered: 0,
        late: 0,
        malformed: 0,
        overflow: 0,
        restarts: 0,
        reanchors: 0,
        size_changes: 0,
        stray: 0,
        jitter_ms: 0.0,
        buffered_ms: 0.0,
        target_ms: 0.0,
        drift_drops: 0,
        drift_repeats: 0,
        rate_mismatch_hz: 0,
        concealed_frames: 0,
    },
    controls: SourceControls {
        volume: 1.0,
        balance: 0.0,
        mute: false,
        solo: false,
    },
    peak: 0.0,
    input_peak: 0.0,
};

/// Everything the mixing thread reports, in a frame with a row for every
/// source slot: written in place and published through a triple buffer, so
/// reporting allocates nothing and never waits for a reader.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsFrame {
    /// Node time when it was written.
    pub at: Duration,
    /// Node-wide counters.
    pub node: NodeCounters,
    /// Master volume.
    pub master: f32,
    /// Output peak (left, right) over the last few frames.
    pub out_peak: (f32, f32),
    /// Whether any output sample saturated in the last few frames.
    pub clipped: bool,
    rows: Box<[SourceRow]>,
    len: usize,
}

impl Default for StatsFrame {
    fn default() -> Self {
        Self::new(0)
    }
}

impl StatsFrame {
    /// A frame with room for `max_sources` rows.
    pub fn new(max_sources: usize) -> Self {
        Self {
            at: Duration::ZERO,
            node: NodeCounters::default(),
            master: 1.0,
            out_peak: (0.0, 0.0),
            clipped: false,
            rows: vec![EMPTY_ROW; max_sources].into_boxed_slice(),
            len: 0,
        }
    }

    /// The active sources.
    pub fn sources(&self) -> &[SourceRow] {
        &self.rows[..self.len]
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds a row; `false` (and nothing added) when the frame is full.
    pub fn push(&mut self, row: SourceRow) -> bool {
        match self.rows.get_mut(self.len) {
            Some(slot) => {
                *slot = row;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The counters as a [`NodeSnapshot`].
    pub fn snapshot(&self) -> NodeSnapshot {
        NodeSnapshot {
            node: self.node,
            sources: self.sources().iter().map(|r| (r.id, r.stats)).collect(),
        }
    }

    /// The meters as [`Meters`].
    pub fn meters(&self) -> Meters {
        Meters {
            left: self.out_peak.0,
            right: self.out_peak.1,
            clipped: self.clipped,
            sources: self.sources().iter().map(|r| (r.id, r.peak)).collect(),
        }
    }

    /// Every active source with its controls, name, channels and address.
    pub fn source_infos(&self) -> Vec<crate::control::SourceInfo> {
        self.sources()
            .iter()
            .map(|r| crate::control::SourceInfo {
                id: r.id,
                controls: r.controls,
                name: r.name,
                channels: r.channels,
                from: r.from,
            })
            .collect()
    }

    /// Every active source with its controls.
    pub fn controls(&self) -> Vec<(SourceId, SourceControls)> {
        self.sources().iter().map(|r| (r.id, r.controls)).collect()
    }
}

/// Peak levels as fractions of full scale (1.0 = 32768); a value of 1.0 or
/// more means clipping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meters {
    /// Output peak, left channel.
    pub left: f32,
    /// Output peak, right channel.
    pub right: f32,
    /// Whether any output sample saturated.
    pub clipped: bool,
    /// Post-fader peak of each active source.
    pub sources: Vec<(SourceId, f32)>,
}
