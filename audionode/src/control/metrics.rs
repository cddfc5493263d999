//! `/metrics` in the Prometheus text format, built with the official client
//! crate from the node's latest counters at each scrape.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::listen::ListenCounts;
use crate::nodecore::source_id::SourceId;
use crate::stats::{NodeSnapshot, SourceStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
    /// The source's display name ("" when it has none); the client crate
    /// escapes label values.
    name: String,
}

type SourceCounter = Family<SourceLabel, Counter>;
/// A per-source metric: name, help, and how to read it from the stats.
type Metric<T> = (&'static str, &'static str, fn(&SourceStats) -> T);
type SourceGauge = Family<SourceLabel, Gauge<f64, AtomicU64>>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// Renders `snapshot` and the `listen` counts as a Prometheus text
/// exposition; `name_of` gives a source's display name.
pub fn render(
    snapshot: &NodeSnapshot,
    listen: ListenCounts,
    name_of: impl Fn(SourceId) -> String,
) -> String {
    let label = |id: SourceId| SourceLabel {
        source: id.to_string(),
        name: name_of(id),
    };
    let mut registry = Registry::with_prefix("audionode");
    let n = snapshot.node;
    counter(&mut registry, "packets", "Datagrams received", n.packets);
    counter(&mut registry, "blocks_mixed", "Blocks mixed", n.blocks);
    counter(
        &mut registry,
        "frames_sent",
        "Stereo frames mixed and sent",
        n.frames,
    );
    counter(
        &mut registry,
        "deadline_misses",
        "Blocks mixed more than a block late",
        n.deadline_misses,
    );
    counter(
        &mut registry,
        "clipped_samples",
        "Output samples saturated at the i16 range",
        n.clipped,
    );
    counter(
        &mut registry,
        "refused_datagrams",
        "Datagrams refused because --max-sources was reached",
        n.refused,
    );
    counter(
        &mut registry,
        "malformed_unknown",
        "Malformed datagrams from unknown addresses",
        n.malformed_unknown,
    );
    counter(
        &mut registry,
        "streams_started",
        "Streams admitted",
        n.streams_started,
    );
    counter(
        &mut registry,
        "streams_dropped",
        "Streams dropped",
        n.streams_dropped,
    );
    counter(
        &mut registry,
        "skipped_blocks",
        "Blocks skipped after the mixing thread was held off the CPU",
        n.skipped_blocks,
    );
    counter(
        &mut registry,
        "events_over_budget",
        "Event-log lines not written because the node's budget was spent",
        n.events_over_budget,
    );
    counter(
        &mut registry,
        "events_dropped",
        "Events dropped because the event-log thread fell behind",
        n.events_dropped,
    );
    counter(
        &mut registry,
        "tcp_blocks_dropped",
        "Mixed blocks not handed to the TCP fan-out (its ring was full)",
        n.blocks_dropped,
    );
    counter(
        &mut registry,
        "listeners_dropped",
        "Listeners of the mix (/ws/listen) dropped because they fell behind",
        listen.dropped,
    );
    let listeners = Gauge::<i64>::default();
    listeners.set(i64::try_from(listen.listeners).unwrap_or(i64::MAX));
    registry.register(
        "listeners",
        "Listeners of the mix (/ws/listen) connected",
        listeners,
    );
    let active = Gauge::<i64>::default();
    active.set(snapshot.sources.len() as i64);
    registry.register("active_sources", "Streams being mixed", active);

    let per_source_counters: [Metric<u64>; 15] = [
        (
            "source_received",
            "Datagrams received from the source",
            |s| s.received,
        ),
        (
            "source_lost",
            "Packets lost (neither received nor restored from a redundant copy)",
            |s| s.lost,
        ),
        (
            "source_recovered",
            "Packets not received but restored from a redundant copy (RFC 2198)",
            |s| s.recovered,
        ),
        (
            "source_duplicates",
            "Packets received more than once",
            |s| s.duplicates,
        ),
        (
            "source_reordered",
            "Packets that arrived after a higher sequence number",
            |s| s.reordered,
        ),
        (
            "source_late",
            "Packets that arrived after their playout time",
            |s| s.late,
        ),
        (
            "source_malformed",
            "Malformed datagrams from the source",
            |s| s.malformed,
        ),
        (
            "source_overflow",
            "Packets beyond the jitter buffer's capacity",
            |s| s.overflow,
        ),
        ("source_restarts", "Stream restarts detected", |s| {
            s.restarts
        }),
        (
            "source_reanchors",
            "Times the stream was placed afresh after its packets kept missing the buffer",
            |s| s.reanchors,
        ),
        ("source_size_changes", "Changes of the packet size", |s| {
            s.size_changes
        }),
        (
            "source_stray",
            "Far-off packets no restart confirmed (discarded)",
            |s| s.stray,
        ),
        (
            "source_drift_drops",
            "Samples dropped to hold the delay",
            |s| s.drift_drops,
        ),
        (
            "source_drift_repeats",
            "Samples repeated to hold the delay",
            |s| s.drift_repeats,
        ),
        (
            "source_concealed_frames",
            "Frames nobody sent in time that packet-loss concealment filled",
            |s| s.concealed_frames,
        ),
    ];
    for (name, help, get) in per_source_counters {
        let family = SourceCounter::default();
        for (addr, stats) in &snapshot.sources {
            family.get_or_create(&label(*addr)).inc_by(get(stats));
        }
        registry.register(name, help, family);
    }
    // Base units, as Prometheus asks: seconds and hertz.
    let per_source_gauges: [Metric<f64>; 4] = [
        (
            "source_jitter_seconds",
            "RFC 3550 interarrival jitter",
            |s| s.jitter_ms / 1000.0,
        ),
        (
            "source_buffered_seconds",
            "Audio buffered ahead of playout",
            |s| s.buffered_ms / 1000.0,
        ),
        (
            "source_target_seconds",
            "Jitter-buffer target delay",
            |s| s.target_ms / 1000.0,
        ),
        (
            "source_rate_mismatch_hertz",
            "The rate the sender's audio arrives at when it does not fit the node's sample rate (0: it fits)",
            |s| f64::from(s.rate_mismatch_hz),
        ),
    ];
    for (name, help, get) in per_source_gauges {
        let family = SourceGauge::default();
        for (addr, stats) in &snapshot.sources {
            family.get_or_create(&label(*addr)).set(get(stats));
        }
        registry.register(name, help, family);
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::NodeCounters;

    #[test]
    fn exposes_node_and_labelled_source_metrics() {
        let snapshot = NodeSnapshot {
            node: NodeCounters {
                packets: 42,
                deadline_misses: 1,
                ..Default::default()
            },
            sources: vec![(
                "127.0.0.1:5000".parse().unwrap(),
                SourceStats {
                    received: 40,
                    lost: 2,
                    jitter_ms: 1.5,
                    ..Default::default()
                },
            )],
        };
        let listen = ListenCounts {
            listeners: 3,
            dropped: 2,
        };
        let text = render(&snapshot, listen, |_| r#"bass "DI""#.to_string());
        assert!(text.contains("audionode_packets_total 42\n"), "{text}");
        assert!(text.contains("audionode_deadline_misses_total 1\n"));
        assert!(text.contains("audionode_active_sources 1\n"));
        assert!(text.contains("audionode_listeners 3\n"), "{text}");
        assert!(text.contains("audionode_listeners_dropped_total 2\n"));
        assert!(text.contains(
            r#"audionode_source_lost_total{source="127.0.0.1:5000",name="bass \"DI\""} 2"#
        ));
        assert!(text.contains(
            r#"audionode_source_jitter_seconds{source="127.0.0.1:5000",name="bass \"DI\""} 0.0015"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }
}
