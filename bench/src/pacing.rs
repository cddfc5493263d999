//! Streamer pacing over long tracks: the analysis of datagram
//! arrival times against the ideal schedule, and the result schema that
//! `audiopacing --json` writes and `benchreport` reads.
//!
//! Datagram `k` (its sequence number minus the first one's) is ideally sent
//! at `t0 + k × samples_per_datagram / rate`, where `t0` is the arrival of
//! datagram 0: the schedule the streamer itself keeps (a deadline from the
//! cumulative sample count). The deviation of each arrival from that line
//! is its send-time jitter; the deviation of the last datagram is the drift
//! over the whole track.

use serde::{Deserialize, Serialize};

use crate::machine::MachineInfo;
use crate::stats;

/// One datagram as the receiver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Sequence number from the datagram header.
    pub seq: u32,
    /// Samples carried.
    pub samples: u32,
    /// Arrival time in nanoseconds on a monotonic scale (any origin).
    pub t_ns: i64,
}

/// What the arrival times say about one stream's pacing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacingStats {
    /// Datagrams from the first to the last sequence number heard.
    pub expected: u64,
    /// Datagrams received (duplicates included).
    pub received: u64,
    /// Sequence numbers in that range never heard.
    pub lost: u64,
    /// Arrivals with a sequence number below one already heard.
    pub out_of_order: u64,
    /// Arrivals of a sequence number already heard.
    pub duplicates: u64,
    /// Samples of a full datagram (the largest seen).
    pub samples_per_datagram: u32,
    /// Audio carried by the received datagrams, in seconds.
    pub audio_seconds: f64,
    /// Deviation of the last datagram from its ideal time, in ms (positive:
    /// late). The target is |drift| under 2 ms.
    pub last_drift_ms: f64,
    /// Least-squares slope of the deviation over the run, in ppm (µs per
    /// second): a systematic rate error, unlike one late final datagram.
    pub drift_slope_ppm: f64,
    /// Median deviation from the ideal time, in ms.
    pub jitter_p50_ms: f64,
    /// 99th percentile of the deviation, in ms.
    pub jitter_p99_ms: f64,
    /// Largest deviation (latest datagram), in ms.
    pub jitter_max_ms: f64,
    /// Smallest deviation (earliest datagram relative to datagram 0), in ms.
    pub jitter_min_ms: f64,
    /// 99th percentile of |gap − chunk duration| between consecutive
    /// datagrams, in ms.
    pub interarrival_p99_ms: f64,
    /// Largest |gap − chunk duration|, in ms.
    pub interarrival_max_ms: f64,
}

/// Analyses the arrivals of one stream (in arrival order) at `rate` Hz.
/// `None` if nothing arrived or `rate` is 0.
pub fn analyse(arrivals: &[Arrival], rate: u32) -> Option<PacingStats> {
    let first = arrivals.first()?;
    if rate == 0 {
        return None;
    }
    // Offsets from the first arrival's seq, in serial-number arithmetic so a
    // stream that wraps at 2^32 (or starts with a reordered datagram) works.
    let rel: Vec<i64> = arrivals
        .iter()
        .map(|a| i64::from(a.seq.wrapping_sub(first.seq) as i32))
        .collect();
    let min_k = *rel.iter().min()?;
    let ks: Vec<u64> = rel.iter().map(|k| (k - min_k) as u64).collect();
    let max_k = *ks.iter().max()?;
    let reference = arrivals[ks.iter().position(|&k| k == 0)?];
    let chunk = arrivals.iter().map(|a| a.samples).max()?;
    let chunk_ns = f64::from(chunk) * 1e9 / f64::from(rate);
    let ideal = |k: u64| reference.t_ns as f64 + k as f64 * chunk_ns;

    let mut seen = vec![false; max_k as usize + 1];
    let (mut duplicates, mut out_of_order, mut highest) = (0, 0, 0);
    let mut deviations = Vec::with_capacity(arrivals.len());
    let mut slope_points = Vec::with_capacity(arrivals.len());
    let mut gaps = Vec::new();
    let mut last_deviation_ms = 0.0;
    for (i, (a, &k)) in arrivals.iter().zip(&ks).enumerate() {
        if std::mem::replace(&mut seen[k as usize], true) {
            duplicates += 1;
            continue;
        }
        if k < highest {
            out_of_order += 1;
        }
        highest = highest.max(k);
        let d_ms = (a.t_ns as f64 - ideal(k)) / 1e6;
        deviations.push(d_ms);
        slope_points.push((k as f64 * chunk_ns / 1e9, d_ms / 1e3));
        if k == max_k {
            last_deviation_ms = d_ms;
        }
        if i > 0 && k == ks[i - 1] + 1 {
            let gap = (a.t_ns - arrivals[i - 1].t_ns) as f64;
            gaps.push((gap - chunk_ns).abs() / 1e6);
        }
    }
    let unique = seen.iter().filter(|&&s| s).count() as u64;
    let dev = stats::sorted_finite(&deviations);
    let gaps = stats::sorted_finite(&gaps);
    let pct = |v: &[f64], p| stats::percentile_of_sorted(v, p).unwrap_or(0.0);
    Some(PacingStats {
        expected: max_k + 1,
        received: arrivals.len() as u64,
        lost: max_k + 1 - unique,
        out_of_order,
        duplicates,
        samples_per_datagram: chunk,
        audio_seconds: arrivals.iter().map(|a| f64::from(a.samples)).sum::<f64>() / f64::from(rate),
        last_drift_ms: last_deviation_ms,
        drift_slope_ppm: stats::least_squares_slope(&slope_points).unwrap_or(0.0) * 1e6,
        jitter_p50_ms: pct(&dev, 50.0),
        jitter_p99_ms: pct(&dev, 99.0),
        jitter_max_ms: dev.last().copied().unwrap_or(0.0),
        jitter_min_ms: dev.first().copied().unwrap_or(0.0),
        interarrival_p99_ms: pct(&gaps, 99.0),
        interarrival_max_ms: gaps.last().copied().unwrap_or(0.0),
    })
}

/// One streamer run: the arrival analysis plus the process's own costs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacingRun {
    /// 1-based run number.
    pub run: usize,
    /// What the arrivals say.
    #[serde(flatten)]
    pub stats: PacingStats,
    /// The streamer's user + system CPU time over its life, in seconds.
    pub cpu_seconds: f64,
    /// The streamer's wall time from start to exit, in seconds.
    pub wall_seconds: f64,
    /// CPU time ÷ wall time, in % of one core (target under 2 %).
    pub cpu_pct: f64,
    /// The streamer's peak RSS (`ru_maxrss`), in MB.
    pub max_rss_mb: f64,
    /// Median delay from the kernel's receive timestamp to the receiving
    /// thread's wake-up, in ms (how much a user-space clock would have
    /// added; not part of the jitter above).
    pub wakeup_p50_ms: f64,
    /// 99th percentile of that delay, in ms.
    pub wakeup_p99_ms: f64,
    /// Change of CLOCK_REALTIME − CLOCK_MONOTONIC over the run, in ms; not
    /// near 0 means the wall clock was stepped and the run is suspect.
    pub clock_step_ms: f64,
    /// The streamer's own summary line (its view of its last deadline).
    pub streamer_summary: String,
}

/// Medians over the runs of the numbers the report quotes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacingMedians {
    /// Median last-datagram drift, in ms.
    pub last_drift_ms: f64,
    /// Median of |last-datagram drift|, in ms (what the target is about).
    pub abs_last_drift_ms: f64,
    /// Median drift slope, in ppm.
    pub drift_slope_ppm: f64,
    /// Median of the runs' jitter p50, in ms.
    pub jitter_p50_ms: f64,
    /// Median of the runs' jitter p99, in ms.
    pub jitter_p99_ms: f64,
    /// Median of the runs' jitter max, in ms.
    pub jitter_max_ms: f64,
    /// Median of the runs' inter-arrival p99, in ms.
    pub interarrival_p99_ms: f64,
    /// Median CPU, in % of one core.
    pub cpu_pct: f64,
    /// Median peak RSS, in MB.
    pub max_rss_mb: f64,
    /// Median of the datagrams lost per run.
    pub lost: f64,
}

impl PacingMedians {
    /// Medians of `runs` (zeros for no runs).
    pub fn of(runs: &[PacingRun]) -> Self {
        let m = |f: fn(&PacingRun) -> f64| {
            stats::median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0)
        };
        Self {
            last_drift_ms: m(|r| r.stats.last_drift_ms),
            abs_last_drift_ms: m(|r| r.stats.last_drift_ms.abs()),
            drift_slope_ppm: m(|r| r.stats.drift_slope_ppm),
            jitter_p50_ms: m(|r| r.stats.jitter_p50_ms),
            jitter_p99_ms: m(|r| r.stats.jitter_p99_ms),
            jitter_max_ms: m(|r| r.stats.jitter_max_ms),
            interarrival_p99_ms: m(|r| r.stats.interarrival_p99_ms),
            cpu_pct: m(|r| r.cpu_pct),
            max_rss_mb: m(|r| r.max_rss_mb),
            lost: m(|r| r.stats.lost as f64),
        }
    }
}

/// Everything `audiopacing --json` writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacingReport {
    /// Length of the test track, in seconds.
    pub seconds: f64,
    /// The streamer's `--chunk-ms`.
    pub chunk_ms: f64,
    /// Whether the runs' streamers ran at the same time (each with its own
    /// receiving socket and thread) rather than one after another.
    pub concurrent: bool,
    /// How arrival times were taken.
    pub clock: String,
    /// Each run.
    pub runs: Vec<PacingRun>,
    /// Medians over the runs.
    pub median: PacingMedians,
    /// The command that produced this.
    pub command: String,
    /// The machine at the start.
    pub machine: MachineInfo,
    /// Load average at the end.
    pub loadavg_end: String,
}

/// The Markdown table of a pacing report: one row per run, then the median.
pub fn table(report: &PacingReport) -> String {
    let mut s = String::from(
        "| run | datagrams | lost | out of order | last drift ms | slope ppm | jitter p50 ms | jitter p99 ms | jitter max ms | inter-arrival p99 ms | CPU % of a core | RSS MB | receiver wake-up p99 ms |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &report.runs {
        let st = &r.stats;
        s += &format!(
            "| run {} | {} | {} | {} | {:+.3} | {:+.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.3} |\n",
            r.run,
            st.received,
            st.lost,
            st.out_of_order,
            st.last_drift_ms,
            st.drift_slope_ppm,
            st.jitter_p50_ms,
            st.jitter_p99_ms,
            st.jitter_max_ms,
            st.interarrival_p99_ms,
            r.cpu_pct,
            r.max_rss_mb,
            r.wakeup_p99_ms,
        );
    }
    let m = &report.median;
    s += &format!(
        "| **median** | - | {} | - | {:+.3} | {:+.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | - |\n",
        m.lost,
        m.last_drift_ms,
        m.drift_slope_ppm,
        m.jitter_p50_ms,
        m.jitter_p99_ms,
        m.jitter_max_ms,
        m.interarrival_p99_ms,
        m.cpu_pct,
        m.max_rss_mb,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn arrivals(offsets_ms: &[(u32, f64)]) -> Vec<Arrival> {
        // 441 samples at 44.1 kHz: exactly 10 ms per datagram.
        offsets_ms
            .iter()
            .map(|&(seq, extra)| Arrival {
                seq,
                samples: 441,
                t_ns: 5 * MS + i64::from(seq) * 10 * MS + (extra * 1e6) as i64,
            })
            .collect()
    }

    #[test]
    fn perfect_schedule_has_no_jitter_or_drift() {
        let a = arrivals(&(0..100).map(|s| (s, 0.0)).collect::<Vec<_>>());
        let s = analyse(&a, 44_100).unwrap();
        assert_eq!((s.expected, s.received, s.lost), (100, 100, 0));
        assert_eq!(s.samples_per_datagram, 441);
        assert!((s.audio_seconds - 1.0).abs() < 1e-12);
        assert!(s.last_drift_ms.abs() < 1e-9 && s.jitter_max_ms.abs() < 1e-9);
        assert!(s.drift_slope_ppm.abs() < 1e-6 && s.interarrival_max_ms.abs() < 1e-9);
    }

    #[test]
    fn late_datagrams_drift_and_percentiles() {
        // Datagram 50 is 3 ms late; the last one (99) is 1.5 ms late.
        let mut spec: Vec<(u32, f64)> = (0..100).map(|s| (s, 0.0)).collect();
        spec[50].1 = 3.0;
        spec[99].1 = 1.5;
        let s = analyse(&arrivals(&spec), 44_100).unwrap();
        assert!((s.last_drift_ms - 1.5).abs() < 1e-9);
        assert!((s.jitter_max_ms - 3.0).abs() < 1e-9);
        assert!((s.jitter_p99_ms - 1.5).abs() < 1e-9);
        assert!(s.jitter_p50_ms.abs() < 1e-9);
        // Gaps around 50 are 13 and 7 ms: both 3 ms off.
        assert!((s.interarrival_max_ms - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_steady_rate_error_shows_in_the_slope() {
        // 100 ppm slow: datagram k arrives k × 1 µs late.
        let a = arrivals(
            &(0..1000)
                .map(|s| (s, f64::from(s) * 1e-3))
                .collect::<Vec<_>>(),
        );
        let s = analyse(&a, 44_100).unwrap();
        assert!(
            (s.drift_slope_ppm - 100.0).abs() < 0.5,
            "{}",
            s.drift_slope_ppm
        );
        assert!((s.last_drift_ms - 0.999).abs() < 1e-6);
    }

    #[test]
    fn loss_reorder_duplicates_and_wrap() {
        let base = u32::MAX - 2;
        let seqs = [0u32, 1, 3, 2, 3, 5];
        let a: Vec<Arrival> = seqs
            .iter()
            .map(|&k| Arrival {
                seq: base.wrapping_add(k),
                samples: 441,
                t_ns: i64::from(k) * 10 * MS,
            })
            .collect();
        let s = analyse(&a, 44_100).unwrap();
        assert_eq!(s.expected, 6);
        assert_eq!(s.received, 6);
        assert_eq!(s.lost, 1); // 4
        assert_eq!(s.duplicates, 1); // the second 3
        assert_eq!(s.out_of_order, 1); // 2 after 3
        assert!(s.last_drift_ms.abs() < 1e-9);
    }

    #[test]
    fn short_last_datagram_keeps_the_full_chunk_schedule() {
        let mut a = arrivals(&[(0, 0.0), (1, 0.0), (2, 0.25)]);
        a[2].samples = 100;
        let s = analyse(&a, 44_100).unwrap();
        assert_eq!(s.samples_per_datagram, 441);
        assert!((s.last_drift_ms - 0.25).abs() < 1e-9);
    }

    #[test]
    fn nothing_to_analyse() {
        assert_eq!(analyse(&[], 44_100), None);
        assert_eq!(analyse(&arrivals(&[(0, 0.0)]), 0), None);
    }

    #[test]
    fn report_round_trips_through_json_and_renders() {
        let stats = analyse(&arrivals(&[(0, 0.0), (1, 0.5)]), 44_100).unwrap();
        let runs = vec![PacingRun {
            run: 1,
            stats,
            cpu_pct: 0.8,
            max_rss_mb: 4.5,
            ..PacingRun::default()
        }];
        let report = PacingReport {
            seconds: 600.0,
            chunk_ms: 10.0,
            median: PacingMedians::of(&runs),
            runs,
            command: "audiopacing".into(),
            ..PacingReport::default()
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<PacingReport>(&json).unwrap(), report);
        let t = table(&report);
        assert!(t.contains("| run 1 | 2 | 0 | 0 | +0.500 |"), "{t}");
        assert!(t.contains("| **median** |"), "{t}");
        assert_eq!(report.median.cpu_pct, 0.8);
    }
}
