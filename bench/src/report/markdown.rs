//! The Markdown document: the machine, the summary of every benchmark target,
//! then each bench's detail table with the exact command behind it and the
//! time and load it ran at. Pure: the same inputs give the same text.

use std::fmt::Write as _;

use super::inputs::{Inputs, MixerReport};
use super::targets;
use crate::latency::{self, LatencyReport};
use crate::machine::MachineInfo;
use crate::{capacity, memory, pacing};

/// A plot written next to the report (file name relative to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotRef {
    /// What it shows.
    pub title: String,
    /// File name, e.g. `capacity.png`.
    pub file: String,
}

fn machine_table(m: &MachineInfo) -> String {
    format!(
        "| CPU | cores | memory | kernel | rustc | load average | date |\n\
         |---|---|---|---|---|---|---|\n\
         | {} | {} | {:.1} GiB | {} | {} | {} | {} |\n",
        m.cpu_model, m.cores, m.memory_gib, m.kernel, m.rustc, m.loadavg, m.date_utc
    )
}

fn when(m: &MachineInfo, loadavg_end: Option<&str>) -> String {
    match loadavg_end {
        Some(end) => format!(
            "Started {}, load average {} at the start, {end} at the end.",
            m.date_utc, m.loadavg
        ),
        None => format!(
            "Started {}, load average {} at the start.",
            m.date_utc, m.loadavg
        ),
    }
}

fn plot_line(plots: &[PlotRef], file: &str) -> String {
    plots
        .iter()
        .find(|p| p.file == file)
        .map(|p| format!("\n![{}]({})\n", p.title, p.file))
        .unwrap_or_default()
}

fn mixer_table(m: &MixerReport) -> String {
    let mut s = format!(
        "{} run(s) of `{}`; criterion's estimate (slope, else mean) per run, then the median.\n\n\
         | bench | time per iteration (runs) | median | median throughput |\n|---|---|---|---|\n",
        m.runs.len(),
        m.command
    );
    for id in m.ids() {
        let runs = m
            .of(&id)
            .iter()
            .map(|b| format_ns(b.time_ns))
            .collect::<Vec<_>>()
            .join(" / ");
        let (t, rate) = m.median(&id).unwrap_or((0.0, None));
        let rate = rate.map_or("-".into(), |r| format!("{:.3} × 10⁹/s", r / 1e9));
        let _ = writeln!(s, "| `{id}` | {runs} | {} | {rate} |", format_ns(t));
    }
    s
}

fn format_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn latency_section(lat: &LatencyReport) -> String {
    let mut s = String::new();
    if !lat.started_utc.is_empty() {
        let _ = writeln!(
            s,
            "Started {}, load average {}.\n",
            lat.started_utc,
            lat.loadavg.join(" → ")
        );
    }
    s += &latency::markdown_table(&lat.profiles);
    s += "\nCommands of one run per profile:\n\n";
    for p in &lat.profiles {
        let _ = writeln!(s, "- `{}`: `{}`", p.name, p.command);
    }
    s
}

/// The whole report. `command` is how the report itself was made; `plots`
/// are the PNGs written beside it (only those are linked).
pub fn render(inputs: &Inputs, machine: &MachineInfo, command: &str, plots: &[PlotRef]) -> String {
    let mut s = String::from("# Benchmark report\n\n");
    let _ = writeln!(s, "Written {} by `{command}`.\n", machine.date_utc);
    s += "## Machine\n\n";
    s += &machine_table(machine);
    s += "\nThe machine may be shared: each section gives the load average while its bench ran.\n";

    s += "\n## Targets\n\n| § | target | measured | verdict |\n|---|---|---|---|\n";
    for t in targets::evaluate(inputs) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.section,
            t.target,
            t.measured,
            t.verdict.label()
        );
    }
    if !inputs.problems.is_empty() {
        s += "\nResult files that could not be read:\n\n";
        for p in &inputs.problems {
            let _ = writeln!(s, "- {p}");
        }
    }

    s += "\n## §1 Node capacity\n\n";
    match &inputs.capacity {
        Some(c) => {
            let _ = writeln!(
                s,
                "`{}`: {} run(s) of a {} s window after {} s warm-up per N, {} ms packets. {}\n",
                c.command,
                c.runs,
                c.seconds,
                c.warmup,
                c.chunk_ms,
                when(&c.machine, None)
            );
            s += &capacity::table(c);
            s += &plot_line(plots, "capacity.png");
        }
        None => s += "Not measured (no `capacity.json`).\n",
    }

    s += "\n## §2 Mixer\n\n";
    match &inputs.mixer {
        Some(m) => s += &mixer_table(m),
        None => s += "Not measured (no `mixer.json`).\n",
    }

    s += "\n## §3 End-to-end latency\n\n";
    match &inputs.latency {
        Some(l) => {
            s += &latency_section(l);
            s += &plot_line(plots, "latency.png");
        }
        None => s += "Not measured (no `latency.json`).\n",
    }

    s += "\n## §4 Streamer pacing\n\n";
    match &inputs.pacing {
        Some(p) => {
            let _ = writeln!(
                s,
                "`{}`: {} run(s) of a {} s track, {} ms datagrams{}. Arrival times: {}. \
                 Jitter = deviation of each datagram from datagram 0's time + k × chunk. {}\n",
                p.command,
                p.runs.len(),
                p.seconds,
                p.chunk_ms,
                if p.concurrent {
                    ", the streamers running at the same time (each with its own socket and receiving thread)"
                } else {
                    ""
                },
                p.clock,
                when(&p.machine, Some(&p.loadavg_end))
            );
            s += &pacing::table(p);
        }
        None => s += "Not measured (no `pacing.json`).\n",
    }

    s += "\n## §5 Recorder memory\n\n";
    match &inputs.memory {
        Some(m) => {
            let _ = writeln!(
                s,
                "`{}`: {} run(s), {} min of audio each, sent at {}× real time; RSS = `VmRSS` \
                 of `/proc/PID/status` (MiB), peak = `VmHWM` / `ru_maxrss`; slope = least \
                 squares over the second half. {}\n",
                m.command,
                m.runs.len(),
                m.minutes,
                m.speed,
                when(&m.machine, Some(&m.loadavg_end))
            );
            s += &memory::table(m);
            s += &plot_line(plots, "memory.png");
        }
        None => s += "Not measured (no `memory.json`).\n",
    }

    s += "\n## §7 Sound through loss\n\n";
    match &inputs.quality {
        Some(q) => {
            let _ = writeln!(
                s,
                "`scripts/quality-bench.py`, started {}, commit `{}`: PESQ WB of each recording \
                 against a lossless one ({} in all).",
                q.started,
                q.commit,
                q.results.len()
            );
            s += &plot_line(plots, "quality.png");
        }
        None => s += "Not measured (no `quality/quality.json`).\n",
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::targets::tests::fixture;

    #[test]
    fn renders_every_section_from_fixed_inputs() {
        let machine = MachineInfo {
            cpu_model: "Test CPU".into(),
            cores: 2,
            memory_gib: 24.0,
            date_utc: "2026-11-21 14:00:00 UTC".into(),
            ..MachineInfo::default()
        };
        let plots = [PlotRef {
            title: "Node CPU".into(),
            file: "capacity.png".into(),
        }];
        let md = render(&fixture(), &machine, "benchreport --dir out", &plots);
        assert!(md.starts_with("# Benchmark report\n"));
        assert!(md.contains("| Test CPU | 2 | 24.0 GiB |"), "{md}");
        assert!(md.contains("| §1 | 2000 sources at 10 ms: zero deadline misses | median 1.5 (runs 3 / 0) per 20 s window | **not met** |"), "{md}");
        assert!(md.contains("![Node CPU](capacity.png)"));
        // Plots not written are not linked.
        assert!(!md.contains("latency.png"));
        assert!(md.contains("Not measured (no `mixer.json`)."));
        assert!(
            md.contains("| default | 0 | 0 / 100 / 0 | 83.00 | 90.00 |"),
            "{md}"
        );
        assert!(md.contains("`audiopacing --runs 3`"));
        assert!(md.contains("| 60 | 4.70 | 4.70 |"), "{md}");
        assert!(
            md.contains("started 2026-12-02 05:52 UTC, commit `acbb0e7`: PESQ WB of each"),
            "{md}"
        );
        // Deterministic.
        assert_eq!(
            md,
            render(&fixture(), &machine, "benchreport --dir out", &plots)
        );
    }

    #[test]
    fn mixer_section_and_time_units() {
        use crate::report::inputs::{MixerBench, MixerRun};
        let m = MixerReport {
            command: "cargo bench".into(),
            runs: vec![MixerRun {
                date_utc: String::new(),
                benches: vec![MixerBench {
                    id: "mixer/unity/256".into(),
                    sources: Some(256),
                    time_ns: 12_700.0,
                    elements: Some(56_320.0),
                    ..MixerBench::default()
                }],
            }],
        };
        let t = mixer_table(&m);
        assert!(
            t.contains("| `mixer/unity/256` | 12.70 µs | 12.70 µs | 4.435 × 10⁹/s |"),
            "{t}"
        );
        assert_eq!(format_ns(1_010_000.0), "1.010 ms");
        assert_eq!(format_ns(950.0), "950 ns");
    }
}
