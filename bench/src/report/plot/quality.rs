//! The quality plot: PESQ WB through packet loss, one panel per stem, each
//! a grouped bar chart (a group per loss condition, a bar per loss mode),
//! Opus's lossless score as a dashed line, one legend under the panels.

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::bar_groups::BarGroups;
use super::err;
use crate::report::quality::{mode_label, Grid, Panel, QualityReport, OPUS};

/// Wider than the other plots: two panels side by side.
const SIZE: (u32, u32) = (1200, 600);

/// PESQ WB's MOS-LQO range: the bars start at its floor, not at 0.
const PESQ: std::ops::Range<f64> = 1.0..4.64;

/// Height of the legend strip under the panels, px.
const LEGEND_H: u32 = 40;

/// Share of a group's width its bars take (the rest parts the groups).
const GROUP_W: f64 = 0.86;

/// Draws `report`'s PESQ WB scores into the PNG at `path`; an error when
/// it has no score under loss. [`register_font`](super::register_font) must
/// have succeeded.
pub fn quality_plot(report: &QualityReport, path: &Path) -> anyhow::Result<()> {
    let grid = Grid::of(report).ok_or_else(|| anyhow!("no PESQ WB score under loss"))?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut title = String::from("PESQ WB through packet loss, by loss mode");
    if !report.started.is_empty() {
        title += &format!(", run started {}", report.started);
    }
    if !report.commit.is_empty() {
        title += &format!(", commit {}", report.commit);
    }
    let body = root.titled(&title, ("sans-serif", 22)).map_err(err)?;
    let (panels, legend_area) =
        body.split_vertically(body.dim_in_pixel().1.saturating_sub(LEGEND_H));
    let areas = panels.split_evenly((1, grid.panels.len()));
    for (area, panel) in areas.iter().zip(&grid.panels) {
        draw_panel(area, &grid, panel)?;
    }
    draw_legend(&legend_area, &grid)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The colour of a mode: fixed for the script's modes (Okabe–Ito, which
/// stays distinct for colour-blind readers), from a palette for others.
fn colour(mode: &str, index: usize) -> RGBColor {
    match mode {
        "silence" => RGBColor(150, 150, 150),
        "repeat" => RGBColor(230, 159, 0),
        "predict" => RGBColor(0, 114, 178),
        "red1" => RGBColor(0, 158, 115),
        OPUS => RGBColor(204, 121, 167),
        _ => {
            let c = Palette99::pick(index).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    grid: &Grid,
    panel: &Panel,
) -> anyhow::Result<()> {
    let groups = grid.conditions.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.stem, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d(BarGroups(grid.conditions.clone()), PESQ)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .x_desc("packet loss (Bernoulli; bursts: mean length 3)")
        .y_desc("PESQ WB, MOS-LQO")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    // Under the bars, so their values stay legible.
    if let Some(v) = panel.opus_clean {
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, v), (groups as f64, v)],
                8,
                5,
                colour(OPUS, 0).stroke_width(2),
            ))
            .map_err(err)?;
    }
    let bar_w = GROUP_W / grid.modes.len() as f64;
    let value_style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (c, scores) in panel.scores.iter().enumerate() {
        for (m, score) in scores.iter().enumerate() {
            let Some(v) = *score else { continue };
            let x0 = c as f64 + (1.0 - GROUP_W) / 2.0 + m as f64 * bar_w;
            // A tenth of a bar's width parts it from the next.
            let x1 = x0 + bar_w * 0.9;
            let fill = colour(&grid.modes[m], m).filled();
            chart
                .draw_series([Rectangle::new([(x0, PESQ.start), (x1, v)], fill)])
                .map_err(err)?;
            chart
                .draw_series([Text::new(
                    format!("{v:.2}"),
                    ((x0 + x1) / 2.0, v),
                    value_style.clone(),
                )])
                .map_err(err)?;
        }
    }
    Ok(())
}

/// One row of swatches and labels, centred: every mode present, then the
/// dashed line if any panel has it.
fn draw_legend(area: &DrawingArea<BitMapBackend, Shift>, grid: &Grid) -> anyhow::Result<()> {
    const SWATCH: i32 = 24;
    const GAP: i32 = 8;
    const SPACING: i32 = 28;
    let font =
        TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let mut items: Vec<(String, RGBColor, bool)> = grid
        .modes
        .iter()
        .enumerate()
        .map(|(i, m)| (mode_label(m).to_string(), colour(m, i), false))
        .collect();
    if grid.panels.iter().any(|p| p.opus_clean.is_some()) {
        items.push((
            format!("{} without loss", mode_label(OPUS)),
            colour(OPUS, 0),
            true,
        ));
    }
    let widths = items
        .iter()
        .map(|(label, _, _)| {
            area.estimate_text_size(label, &font)
                .map(|(w, _)| w as i32)
                .map_err(err)
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    let total: i32 =
        widths.iter().map(|w| SWATCH + GAP + w).sum::<i32>() + SPACING * (items.len() as i32 - 1);
    let (w, h) = area.dim_in_pixel();
    let y = h as i32 / 2;
    let mut x = (w as i32 - total).max(0) / 2;
    for ((label, c, dashed), width) in items.iter().zip(widths) {
        if *dashed {
            area.draw(&DashedPathElement::new(
                [(x, y), (x + SWATCH, y)],
                8,
                5,
                c.stroke_width(2),
            ))
            .map_err(err)?;
        } else {
            area.draw(&Rectangle::new(
                [(x, y - 8), (x + SWATCH, y + 8)],
                c.filled(),
            ))
            .map_err(err)?;
        }
        area.draw(&Text::new(
            label.as_str(),
            (x + SWATCH + GAP, y),
            font.clone(),
        ))
        .map_err(err)?;
        x += SWATCH + GAP + width + SPACING;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::{register_font, DEFAULT_FONT};

    #[test]
    fn writes_a_png() {
        if register_font(Path::new(DEFAULT_FONT)).is_err() {
            // scripts/setup.sh installs it; without it plotters cannot draw text.
            eprintln!("skipped: {DEFAULT_FONT} missing (run scripts/setup.sh)");
            return;
        }
        let report: QualityReport = serde_json::from_str(
            r#"{"started": "2026-12-02 05:52 UTC", "commit": "acbb0e7", "results": [
                {"stem": "music", "condition": "no loss", "mode": "opus64", "pesq_wb": 1.85},
                {"stem": "music", "condition": "bernoulli 5 %", "mode": "predict", "pesq_wb": 1.67},
                {"stem": "music", "condition": "bernoulli 5 %", "mode": "opus64", "pesq_wb": 1.40},
                {"stem": "speech", "condition": "bernoulli 5 %", "mode": "predict", "pesq_wb": 3.43}]}"#,
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("benchreport-quality-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("quality.png");
        quality_plot(&report, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(bytes.len() > 1000, "{} bytes", bytes.len());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(quality_plot(&QualityReport::default(), &path).is_err());
    }
}
