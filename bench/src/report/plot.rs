//! PNG plots with plotters: node CPU against sources (node and both bare loops,
//! each run's points with the median line), the latency distribution (a
//! CDF per profile with its budget marked), recorder RSS against audio
//! recorded and PESQ WB through loss ([`quality_plot`]). Text needs a
//! TrueType font registered once ([`register_font`]; plotters' `ab_glyph`
//! backend has no system lookup).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use super::inputs::Inputs;
use super::markdown::PlotRef;
use crate::capacity::CapacityReport;
use crate::latency::LatencyReport;
use crate::memory::MemoryReport;

mod bar_groups;
mod quality;
pub use quality::quality_plot;

/// Where `scripts/setup.sh` (fonts-dejavu-core) puts the font.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const SIZE: (u32, u32) = (960, 600);

/// Registers the TrueType font at `path` as plotters' "sans-serif" (call
/// once per process: each call keeps its copy of the font for good).
pub fn register_font(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("font {}", path.display()))?;
    // plotters keeps a &'static reference for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("font {}: not a TrueType/OpenType font", path.display()))
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

/// Draws every plot the inputs allow into `dir`; returns what was written.
/// [`register_font`] must have succeeded first.
pub fn write_all(inputs: &Inputs, dir: &Path) -> anyhow::Result<Vec<PlotRef>> {
    let mut out = Vec::new();
    let mut add = |title: &str, file: &str| {
        out.push(PlotRef {
            title: title.into(),
            file: file.into(),
        })
    };
    if let Some(c) = inputs.capacity.as_ref().filter(|c| !c.rows.is_empty()) {
        capacity_plot(c, &dir.join("capacity.png")).context("capacity.png")?;
        add("Node CPU vs sources", "capacity.png");
    }
    if let Some(l) = inputs
        .latency
        .as_ref()
        .filter(|l| l.profiles.iter().any(|p| !p.latencies_ms.is_empty()))
    {
        latency_plot(l, &dir.join("latency.png")).context("latency.png")?;
        add("End-to-end latency distribution", "latency.png");
    }
    if let Some(m) = inputs
        .memory
        .as_ref()
        .filter(|m| m.runs.iter().any(|r| !r.samples.is_empty()))
    {
        memory_plot(m, &dir.join("memory.png")).context("memory.png")?;
        add("Recorder RSS vs audio recorded", "memory.png");
    }
    if let Some(q) = inputs
        .quality
        .as_ref()
        .filter(|q| super::quality::Grid::of(q).is_some())
    {
        quality_plot(q, &dir.join("quality.png")).context("quality.png")?;
        add("PESQ WB through packet loss", "quality.png");
    }
    Ok(out)
}

/// Node and bare-loop CPU (% of one core) against N: every run as a point,
/// the run-to-run range as a bar, the medians joined by a line.
pub fn capacity_plot(cap: &CapacityReport, path: &PathBuf) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = cap.rows.iter().map(|r| r.sources).max().unwrap_or(1) as f64 * 1.08;
    let y_max = cap
        .rows
        .iter()
        .map(|r| r.node_cpu_pct.max(r.bare_cpu_pct).max(r.batched_cpu_pct))
        .fold(10.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("Node CPU vs sources (10 ms packets)", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("sources")
        .y_desc("CPU, % of one core")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    type Pick = fn(&crate::capacity::CapacityRow) -> f64;
    let series: [(&str, Pick, RGBColor); 3] = [
        ("audionode", |r| r.node_cpu_pct, BLUE),
        ("bare loop, batched", |r| r.batched_cpu_pct, GREEN),
        ("bare loop, blocking", |r| r.bare_cpu_pct, RED),
    ];
    for (name, pick, color) in series {
        let medians: Vec<(f64, f64)> = cap
            .medians
            .iter()
            .map(|m| (m.sources as f64, pick(m)))
            .filter(|p| p.1 > 0.0)
            .collect();
        if medians.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(medians.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{name} (median)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                cap.rows
                    .iter()
                    .map(|r| Circle::new((r.sources as f64, pick(r)), 3, color.mix(0.6).filled())),
            )
            .map_err(err)?;
        // Range over the runs at each N.
        chart
            .draw_series(medians.iter().map(|&(n, _)| {
                let of: Vec<f64> = cap
                    .rows
                    .iter()
                    .filter(|r| r.sources as f64 == n)
                    .map(pick)
                    .collect();
                let lo = of.iter().copied().fold(f64::MAX, f64::min);
                let hi = of.iter().copied().fold(f64::MIN, f64::max);
                PathElement::new(vec![(n, lo), (n, hi)], color.stroke_width(1))
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The cumulative distribution of every click's latency, one line per
/// profile, with the profile's budget as a vertical line in its colour.
pub fn latency_plot(lat: &LatencyReport, path: &PathBuf) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x_max = lat
        .profiles
        .iter()
        .flat_map(|p| p.latencies_ms.iter().copied().chain([p.budget_ms]))
        .filter(|v| v.is_finite())
        .fold(10.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "End-to-end latency (streamer → node → recorder)",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..100f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (vertical lines: each profile's budget)")
        .y_desc("% of clicks at or below")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (i, p) in lat.profiles.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let sorted = crate::stats::sorted_finite(&p.latencies_ms);
        let n = sorted.len() as f64;
        let cdf: Vec<(f64, f64)> = sorted
            .iter()
            .enumerate()
            .map(|(k, &v)| (v, 100.0 * (k as f64 + 1.0) / n))
            .collect();
        chart
            .draw_series(LineSeries::new(cdf, color.stroke_width(2)))
            .map_err(err)?
            .label(format!(
                "{}: median {:.1} ms, p99 {:.1} ms, budget {:.1} ms",
                p.name, p.median_ms, p.p99_ms, p.budget_ms
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(p.budget_ms, 0.0), (p.budget_ms, 100.0)],
                color.stroke_width(1),
            )))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Recorder `VmRSS` against minutes of audio recorded, one line per run.
pub fn memory_plot(mem: &MemoryReport, path: &PathBuf) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let samples = || mem.runs.iter().flat_map(|r| &r.samples);
    let x_max = samples().map(|s| s.audio_s / 60.0).fold(1.0, f64::max) * 1.02;
    let y_max = samples()
        .map(|s| s.hwm_mb.max(s.rss_mb))
        .fold(5.0, f64::max)
        * 1.3;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "audiorecorder RSS while recording ({}× real time, --no-playback)",
                mem.speed
            ),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("minutes of audio recorded")
        .y_desc("VmRSS, MiB")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (i, r) in mem.runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                r.samples.iter().map(|s| (s.audio_s / 60.0, s.rss_mb)),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("run {}: peak {:.2} MiB", r.run, r.peak_rss_mb))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::targets::tests::fixture;

    #[test]
    fn writes_valid_pngs_from_fixed_inputs() {
        if register_font(Path::new(DEFAULT_FONT)).is_err() {
            // scripts/setup.sh installs it; without it plotters cannot draw text.
            eprintln!("skipped: {DEFAULT_FONT} missing (run scripts/setup.sh)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("benchreport-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = write_all(&fixture(), &dir).unwrap();
        let files: Vec<&str> = written.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files,
            ["capacity.png", "latency.png", "memory.png", "quality.png"]
        );
        for f in files {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            assert!(bytes.len() > 1000, "{f}: {} bytes", bytes.len());
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_bad_font_is_an_error() {
        assert!(register_font(Path::new("/nonexistent/font.ttf")).is_err());
        assert!(register_font(Path::new("/proc/self/status")).is_err());
    }
}
