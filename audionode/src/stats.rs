//! Counters reported per source and for the whole node (event log, tests,
//! metrics).

use std::fmt;
use std::net::SocketAddr;

/// Counters and gauges of one source.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SourceStats {
    /// Packets received, including duplicates, late and malformed ones.
    pub received: u64,
    /// Packets expected but not received (expected − unique received).
    pub lost: u64,
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
}

impl fmt::Display for SourceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} lost={} duplicates={} reordered={} late={} malformed={} overflow={} restarts={} stray={} jitter_ms={:.2} drift_drops={} drift_repeats={}",
            self.received,
            self.lost,
            self.duplicates,
            self.reordered,
            self.late,
            self.malformed,
            self.overflow,
            self.restarts,
            self.stray,
            self.jitter_ms,
            self.drift_drops,
            self.drift_repeats
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
}

/// A point-in-time view of the node, for tests, metrics and the control surface.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSnapshot {
    /// Node-wide counters.
    pub node: NodeCounters,
    /// Each active source with its counters.
    pub sources: Vec<(SocketAddr, SourceStats)>,
}

impl NodeSnapshot {
    /// The stats of the source at `addr`, if it is active.
    pub fn source(&self, addr: SocketAddr) -> Option<&SourceStats> {
        self.sources
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, s)| s)
    }
}
