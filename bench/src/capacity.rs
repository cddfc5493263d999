//! Node capacity results: one row per run and source count as
//! `audiocapacity` measures it, the median rows, the Markdown table it
//! prints, and the schema of `audiocapacity --json` that `benchreport`
//! reads.

use serde::{Deserialize, Serialize};

use crate::machine::MachineInfo;
use crate::stats;

/// One measurement of one source count N (or the median of several).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityRow {
    /// 1-based run number; 0 for a median row.
    pub run: usize,
    /// Number of sources N.
    pub sources: usize,
    /// Node CPU over the window, in % of one core (all threads).
    pub node_cpu_pct: f64,
    /// Node CPU per packet received, in µs.
    pub node_us_per_packet: f64,
    /// Blocking bare loop ([`crate::bare`]) CPU, in % of one core (0 when
    /// skipped).
    pub bare_cpu_pct: f64,
    /// Blocking bare loop CPU per packet, in µs (0 when skipped).
    pub bare_us_per_packet: f64,
    /// Batched bare loop ([`crate::batched`]) CPU, in % of one core (0
    /// when skipped, or in results written before it existed).
    #[serde(default)]
    pub batched_cpu_pct: f64,
    /// Batched bare loop CPU per packet, in µs (0 when skipped).
    #[serde(default)]
    pub batched_us_per_packet: f64,
    /// Deadline misses in the window.
    pub deadline_misses: f64,
    /// Packets the node received in the window (summed over sources).
    pub received: f64,
    /// Late packets in the window.
    pub late: f64,
    /// Late ÷ received, in %.
    pub late_pct: f64,
    /// Packets lost in the window.
    pub lost: f64,
    /// Jitter-buffer overflows in the window.
    pub overflow: f64,
    /// Datagrams refused in the window.
    pub refused: f64,
    /// Node `VmRSS` at the end of the window, in MiB.
    pub rss_mb: f64,
    /// Node `VmHWM` (peak RSS), in MiB.
    pub hwm_mb: f64,
    /// Load generator CPU, in % of one core.
    pub load_cpu_pct: f64,
    /// The generator's largest lag behind its schedule, in ms.
    pub load_max_lag_ms: f64,
    /// Packets the generator sent 20 ms or more behind schedule after the
    /// warm-up: late at the node through the generator's fault. Compare
    /// with `late`.
    #[serde(default)]
    pub load_sent_late: f64,
    /// Machine idle % (all cores) over the window.
    pub machine_idle_pct: f64,
    /// Machine softirq % (all cores) over the window.
    pub softirq_pct: f64,
    /// Load averages at the end of the window ("-" for a median row).
    pub loadavg: String,
}

impl CapacityRow {
    /// The headline ratio: node µs per packet ÷ the batched bare loop's,
    /// if that loop ran (it batches its receives the way the node does, so
    /// this is what the node's own work costs on top of the floor).
    pub fn ratio(&self) -> Option<f64> {
        (self.batched_us_per_packet > 0.0)
            .then(|| self.node_us_per_packet / self.batched_us_per_packet)
    }

    /// Node µs per packet ÷ the blocking bare loop's, if that loop ran.
    pub fn blocking_ratio(&self) -> Option<f64> {
        (self.bare_us_per_packet > 0.0).then(|| self.node_us_per_packet / self.bare_us_per_packet)
    }

    /// The field-wise median of `rows` (all of one N), as a median row.
    pub fn median_of(rows: &[&CapacityRow]) -> CapacityRow {
        let m = |f: fn(&CapacityRow) -> f64| {
            stats::median(&rows.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or(0.0)
        };
        CapacityRow {
            run: 0,
            sources: rows.first().map_or(0, |r| r.sources),
            node_cpu_pct: m(|r| r.node_cpu_pct),
            node_us_per_packet: m(|r| r.node_us_per_packet),
            bare_cpu_pct: m(|r| r.bare_cpu_pct),
            bare_us_per_packet: m(|r| r.bare_us_per_packet),
            batched_cpu_pct: m(|r| r.batched_cpu_pct),
            batched_us_per_packet: m(|r| r.batched_us_per_packet),
            deadline_misses: m(|r| r.deadline_misses),
            received: m(|r| r.received),
            late: m(|r| r.late),
            late_pct: m(|r| r.late_pct),
            lost: m(|r| r.lost),
            overflow: m(|r| r.overflow),
            refused: m(|r| r.refused),
            rss_mb: m(|r| r.rss_mb),
            hwm_mb: m(|r| r.hwm_mb),
            load_cpu_pct: m(|r| r.load_cpu_pct),
            load_max_lag_ms: m(|r| r.load_max_lag_ms),
            load_sent_late: m(|r| r.load_sent_late),
            machine_idle_pct: m(|r| r.machine_idle_pct),
            softirq_pct: m(|r| r.softirq_pct),
            loadavg: "-".into(),
        }
    }
}

/// Everything `audiocapacity --json` writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// Source counts measured, in order.
    pub sources: Vec<usize>,
    /// Length of each measured window, in seconds.
    pub seconds: f64,
    /// Warm-up before each window, in seconds.
    pub warmup: f64,
    /// Repetitions of the sweep.
    pub runs: usize,
    /// Milliseconds of audio per packet.
    pub chunk_ms: f64,
    /// Every run's row, in the order measured.
    pub rows: Vec<CapacityRow>,
    /// One median row per N, in the order of `sources`.
    pub medians: Vec<CapacityRow>,
    /// The command that produced this.
    pub command: String,
    /// The machine at the start.
    pub machine: MachineInfo,
}

impl CapacityReport {
    /// The median row of `n` sources, if measured.
    pub fn median_for(&self, n: usize) -> Option<&CapacityRow> {
        self.medians.iter().find(|r| r.sources == n)
    }
}

/// The header of the capacity table (two lines).
pub fn header() -> String {
    "| run | N | node CPU % | node µs/pkt | batched CPU % | batched µs/pkt | node ÷ batched | blocking CPU % | blocking µs/pkt | node ÷ blocking | deadline misses | late % | lost | overflow | refused | RSS MB (peak) | load CPU % | load max lag ms | load sends ≥ 20 ms late | machine idle % | softirq % | loadavg |\n\
     |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        .to_string()
}

/// One row of the capacity table, labelled `label` ("run 2", "median").
pub fn format_row(label: &str, r: &CapacityRow) -> String {
    let ratio = r.ratio().map_or("-".into(), |x| format!("{x:.2}"));
    let blocking_ratio = r.blocking_ratio().map_or("-".into(), |x| format!("{x:.2}"));
    format!(
        "| {label} | {} | {:.1} | {:.2} | {:.1} | {:.2} | {ratio} | {:.1} | {:.2} | {blocking_ratio} | {} | {:.3} | {} | {} | {} | {:.1} ({:.1}) | {:.1} | {:.1} | {} | {:.1} | {:.1} | {} |",
        r.sources,
        r.node_cpu_pct,
        r.node_us_per_packet,
        r.batched_cpu_pct,
        r.batched_us_per_packet,
        r.bare_cpu_pct,
        r.bare_us_per_packet,
        r.deadline_misses,
        r.late_pct,
        r.lost,
        r.overflow,
        r.refused,
        r.rss_mb,
        r.hwm_mb,
        r.load_cpu_pct,
        r.load_max_lag_ms,
        r.load_sent_late,
        r.machine_idle_pct,
        r.softirq_pct,
        r.loadavg,
    )
}

/// The whole table: header, every run's rows, then the medians.
pub fn table(report: &CapacityReport) -> String {
    let mut s = header() + "\n";
    for r in &report.rows {
        s += &format_row(&format!("run {}", r.run), r);
        s.push('\n');
    }
    for r in &report.medians {
        s += &format_row("**median**", r);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: usize, n: usize, cpu: f64, bare_us: f64) -> CapacityRow {
        CapacityRow {
            run,
            sources: n,
            node_cpu_pct: cpu,
            node_us_per_packet: 4.0,
            batched_us_per_packet: bare_us,
            bare_us_per_packet: 2.0 * bare_us,
            loadavg: "1.00 0.50 0.25".into(),
            ..CapacityRow::default()
        }
    }

    #[test]
    fn medians_and_ratio() {
        let rows = [
            row(1, 100, 7.0, 2.0),
            row(2, 100, 9.0, 2.0),
            row(3, 100, 8.0, 2.0),
        ];
        let m = CapacityRow::median_of(&rows.iter().collect::<Vec<_>>());
        assert_eq!((m.run, m.sources, m.node_cpu_pct), (0, 100, 8.0));
        assert_eq!(m.ratio(), Some(2.0));
        assert_eq!(m.blocking_ratio(), Some(1.0));
        assert_eq!(row(1, 1, 1.0, 0.0).ratio(), None);
    }

    #[test]
    fn json_round_trip_and_table() {
        let rows = vec![row(1, 100, 7.0, 2.0)];
        let report = CapacityReport {
            sources: vec![100],
            seconds: 20.0,
            warmup: 3.0,
            runs: 1,
            chunk_ms: 10.0,
            medians: vec![CapacityRow::median_of(&rows.iter().collect::<Vec<_>>())],
            rows,
            command: "audiocapacity --runs 1".into(),
            machine: MachineInfo::default(),
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            serde_json::from_str::<CapacityReport>(&json).unwrap(),
            report
        );
        let t = table(&report);
        assert!(t.starts_with("| run | N |"));
        assert!(
            t.contains("| run 1 | 100 | 7.0 | 4.00 | 0.0 | 2.00 | 2.00 | 0.0 | 4.00 | 1.00 |"),
            "{t}"
        );
        assert!(t.contains("| **median** | 100 |"), "{t}");
        assert_eq!(report.median_for(100).map(|r| r.node_cpu_pct), Some(7.0));
    }

    #[test]
    fn results_from_before_the_batched_loop_still_load() {
        let mut v = serde_json::to_value(row(1, 100, 7.0, 2.0)).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("batched_cpu_pct");
        o.remove("batched_us_per_packet");
        let r: CapacityRow = serde_json::from_value(v).unwrap();
        assert_eq!((r.ratio(), r.blocking_ratio()), (None, Some(1.0)));
    }
}
