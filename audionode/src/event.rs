//! Events the engine reports about each source, and their one-line text in
//! the original event-log format:
//! `[<ms since start, right-aligned in 12>] [<ip:port, right-aligned in 21>] <Event> <details>`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::stats::SourceStats;

/// Something that happened to one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Node time of the event (since the node started).
    pub at: Duration,
    /// The source's address.
    pub source: SocketAddr,
    /// What happened.
    pub kind: EventKind,
}

/// Why a stream was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Nothing arrived for the timeout.
    Timeout,
    /// The node is shutting down.
    Shutdown,
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
}

impl Burstable {
    /// All classes, in a fixed order (indexes of per-class state).
    pub const ALL: [Burstable; 4] = [
        Burstable::Repeated,
        Burstable::OutOfOrder,
        Burstable::Missing,
        Burstable::Late,
    ];

    /// The event name that begins the log line.
    pub fn name(self) -> &'static str {
        match self {
            Burstable::Repeated => "Repeated packet",
            Burstable::OutOfOrder => "Out of order packet",
            Burstable::Missing => "Missing packets",
            Burstable::Late => "Late packet",
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
        /// Samples in the packet (the stream's nominal packet size).
        samples: usize,
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

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EventKind::NewStream {
                seq,
                start_frame,
                samples,
            } => write!(
                f,
                "New stream seq={seq} start_frame={start_frame} samples_per_packet={samples}"
            ),
            EventKind::Repeated { seq } => write!(f, "Repeated packet seq={seq}"),
            EventKind::OutOfOrder { seq, highest } => {
                write!(f, "Out of order packet seq={seq} highest={highest}")
            }
            EventKind::Missing { count, first, last } => {
                write!(f, "Missing packets count={count} seq={first}..={last}")
            }
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
                let why = match reason {
                    DropReason::Timeout => "timeout",
                    DropReason::Shutdown => "shutdown",
                };
                write!(f, "Dropped stream reason={why} {stats}")
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

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>12}] [{:>21}] {}",
            self.at.as_millis(),
            self.source.to_string(),
            self.kind
        )
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
                    samples: 441
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
