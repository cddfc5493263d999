//! `quality.json` from `scripts/quality-bench.py` (PESQ WB and segmental
//! SNR per stem, loss condition and loss mode), and the grid the quality
//! plot draws from it: one panel per stem, the loss conditions along x, a
//! score per mode in each.

use serde::Deserialize;

/// `quality.json`. Only what the plot uses is read; the script's other
/// fields (segmental SNR, exact samples, bit rate, drop counts) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct QualityReport {
    /// When the run started, e.g. `2026-12-02 05:52 UTC`.
    #[serde(default)]
    pub started: String,
    /// The short commit it ran at.
    #[serde(default)]
    pub commit: String,
    /// One row per stem, condition and mode that was run.
    pub results: Vec<QualityRow>,
}

/// One recording's scores.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct QualityRow {
    /// `music` or `speech`.
    pub stem: String,
    /// E.g. `bernoulli 5 %`; `no loss` for Opus's lossless reference.
    pub condition: String,
    /// `silence`, `repeat`, `predict`, `red1` or `opus64`.
    pub mode: String,
    /// PESQ wide band (P.862.2) MOS-LQO, 1.0–4.64.
    pub pesq_wb: Option<f64>,
}

/// The condition of the row that scores Opus without loss: it is drawn as
/// a line (what the codec alone costs), not as a group of bars.
const NO_LOSS: &str = "no loss";

/// The script's conditions in its order, with the axis label of each.
const CONDITIONS: [(&str, &str); 4] = [
    ("bernoulli 1 %", "1 %"),
    ("bernoulli 5 %", "5 %"),
    ("bernoulli 10 %", "10 %"),
    ("bursts 5 % (mean 3)", "bursts 5 %"),
];

/// The script's modes in its order, with the legend label of each.
const MODES: [(&str, &str); 5] = [
    ("silence", "silence"),
    ("repeat", "repeat"),
    ("predict", "predict"),
    ("red1", "RED 1 (+ predict)"),
    ("opus64", "Opus 64k"),
];

/// The mode whose lossless score is drawn as a line.
pub(crate) const OPUS: &str = "opus64";

const STEMS: [&str; 2] = ["music", "speech"];

/// The legend label of a mode (its own name when the script adds one).
pub(crate) fn mode_label(mode: &str) -> &str {
    MODES
        .iter()
        .find(|(key, _)| *key == mode)
        .map_or(mode, |(_, label)| label)
}

/// One stem's scores.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Panel {
    pub(crate) stem: String,
    /// `scores[c][m]`: PESQ WB under `Grid::conditions[c]` in
    /// `Grid::modes[m]`, `None` when that cell was not run.
    pub(crate) scores: Vec<Vec<Option<f64>>>,
    /// Opus 64k's score without loss, if it was run.
    pub(crate) opus_clean: Option<f64>,
}

/// Every stem's scores over the same conditions and modes, so the panels
/// share one legend and their bars line up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grid {
    /// Axis labels of the conditions present, in the script's order
    /// (ones it does not know yet after, by first appearance).
    pub(crate) conditions: Vec<String>,
    /// The modes present, ordered likewise.
    pub(crate) modes: Vec<String>,
    /// One per stem present.
    pub(crate) panels: Vec<Panel>,
}

impl Grid {
    /// The grid of `report`; `None` when it has no score under loss.
    /// A cell run twice keeps its first score.
    pub(crate) fn of(report: &QualityReport) -> Option<Self> {
        let scored: Vec<&QualityRow> = report
            .results
            .iter()
            .filter(|r| r.pesq_wb.is_some_and(f64::is_finite))
            .collect();
        let lossy = || scored.iter().filter(|r| r.condition != NO_LOSS);
        let conditions = ordered(
            lossy().map(|r| r.condition.as_str()),
            &CONDITIONS.map(|c| c.0),
        );
        if conditions.is_empty() {
            return None;
        }
        let modes = ordered(lossy().map(|r| r.mode.as_str()), &MODES.map(|m| m.0));
        let score = |stem: &str, condition: &str, mode: &str| {
            scored
                .iter()
                .find(|r| r.stem == stem && r.condition == condition && r.mode == mode)
                .and_then(|r| r.pesq_wb)
        };
        let panels = ordered(scored.iter().map(|r| r.stem.as_str()), &STEMS)
            .into_iter()
            .map(|stem| Panel {
                scores: conditions
                    .iter()
                    .map(|c| modes.iter().map(|m| score(&stem, c, m)).collect())
                    .collect(),
                opus_clean: score(&stem, NO_LOSS, OPUS),
                stem,
            })
            .collect();
        let conditions = conditions
            .into_iter()
            .map(|c| match CONDITIONS.iter().find(|(key, _)| *key == c) {
                Some((_, label)) => (*label).to_string(),
                None => c,
            })
            .collect();
        Some(Grid {
            conditions,
            modes,
            panels,
        })
    }
}

/// The distinct `names`, those in `known` first in its order, then the
/// others as they first appear (a mode or condition added to the script
/// is still drawn, after the ones this file knows).
fn ordered<'a>(names: impl Iterator<Item = &'a str>, known: &[&str]) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    let rank = |n: &&str| known.iter().position(|k| k == n).unwrap_or(known.len());
    // Stable: unknown names keep the order they appeared in.
    seen.sort_by_key(rank);
    seen.into_iter().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script's shape: opus64 run without loss too, other fields
    /// beside the score, `repeat` left out, one speech cell not scored.
    const JSON: &str = r#"{
 "started": "2026-12-02 05:52 UTC", "commit": "acbb0e7", "note": "x",
 "results": [
  {"stem": "music", "condition": "no loss", "mode": "opus64", "kbit_per_s": 91.4, "pesq_wb": 1.846, "lag": 507},
  {"stem": "music", "condition": "bursts 5 % (mean 3)", "mode": "predict", "pesq_wb": 2.287},
  {"stem": "music", "condition": "bernoulli 5 %", "mode": "opus64", "pesq_wb": 1.398, "seg_snr_db": 20.1},
  {"stem": "music", "condition": "bernoulli 5 %", "mode": "predict", "pesq_wb": 1.673},
  {"stem": "music", "condition": "bernoulli 5 %", "mode": "silence", "pesq_wb": 1.202},
  {"stem": "music", "condition": "bernoulli 5 %", "mode": "silence", "pesq_wb": 9.0},
  {"stem": "speech", "condition": "bernoulli 5 %", "mode": "silence", "pesq_wb": 2.843},
  {"stem": "speech", "condition": "bernoulli 5 %", "mode": "predict"},
  {"stem": "speech", "condition": "bernoulli 5 %", "mode": "opus64", "pesq_wb": null}
 ]}"#;

    #[test]
    fn grid_of_a_partial_run() {
        let report: QualityReport = serde_json::from_str(JSON).unwrap();
        assert_eq!(
            (report.started.as_str(), report.commit.as_str()),
            ("2026-12-02 05:52 UTC", "acbb0e7")
        );
        let g = Grid::of(&report).unwrap();
        // The script's order, not the file's; "no loss" is not a group.
        assert_eq!(g.conditions, ["5 %", "bursts 5 %"]);
        assert_eq!(g.modes, ["silence", "predict", "opus64"]);
        let stems: Vec<&str> = g.panels.iter().map(|p| p.stem.as_str()).collect();
        assert_eq!(stems, ["music", "speech"]);
        let music = &g.panels[0];
        assert_eq!(music.opus_clean, Some(1.846));
        // The first of the two silence rows.
        assert_eq!(music.scores[0], [Some(1.202), Some(1.673), Some(1.398)]);
        assert_eq!(music.scores[1], [None, Some(2.287), None]);
        let speech = &g.panels[1];
        assert_eq!(speech.opus_clean, None);
        // No score and a null score are both a missing cell.
        assert_eq!(speech.scores[0], [Some(2.843), None, None]);
        assert_eq!(speech.scores[1], [None, None, None]);
    }

    #[test]
    fn unknown_names_come_after_known_ones() {
        let row = |condition: &str, mode: &str| QualityRow {
            stem: "drums".into(),
            condition: condition.into(),
            mode: mode.into(),
            pesq_wb: Some(3.0),
        };
        let report = QualityReport {
            results: vec![
                row("reorder 2 %", "red2"),
                row("bernoulli 1 %", "predict"),
                row("bernoulli 1 %", "silence"),
            ],
            ..QualityReport::default()
        };
        let g = Grid::of(&report).unwrap();
        assert_eq!(g.conditions, ["1 %", "reorder 2 %"]);
        assert_eq!(g.modes, ["silence", "predict", "red2"]);
        assert_eq!(g.panels[0].stem, "drums");
        assert_eq!(mode_label("red1"), "RED 1 (+ predict)");
        assert_eq!(mode_label("red2"), "red2");
    }

    #[test]
    fn nothing_under_loss_is_no_grid() {
        let clean_only = r#"{"results": [{"stem": "music", "condition": "no loss", "mode": "opus64", "pesq_wb": 1.8}]}"#;
        assert_eq!(Grid::of(&serde_json::from_str(clean_only).unwrap()), None);
        assert_eq!(Grid::of(&QualityReport::default()), None);
        assert!(serde_json::from_str::<QualityReport>(r#"{"started": "x"}"#).is_err());
    }
}
