//! An x axis of labelled groups for grouped bar charts: group `i` spans
//! `i..i + 1` and has its tick and label at its centre. plotters' own f64
//! axis puts ticks at round numbers, and its segmented axis has no
//! positions inside a segment for the bars.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

/// The axis: one label per group.
pub(crate) struct BarGroups(pub(crate) Vec<String>);

impl Ranged for BarGroups {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = value / self.0.len().max(1) as f64;
        limit.0 + (f64::from(limit.1 - limit.0) * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // The centres are the bold points; light ones (between the
        // groups) would cut through the bars.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            (0..self.0.len()).map(|i| i as f64 + 0.5).collect()
        }
    }

    fn range(&self) -> Range<f64> {
        0.0..self.0.len() as f64
    }
}

impl ValueFormatter<f64> for BarGroups {
    fn format_ext(&self, value: &f64) -> String {
        self.0
            .get(value.floor() as usize)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::coord::ranged1d::BoldPoints;

    #[test]
    fn ticks_and_labels_at_the_centres() {
        let axis = BarGroups(vec!["1 %".into(), "5 %".into()]);
        assert_eq!(axis.key_points(BoldPoints(10)), [0.5, 1.5]);
        // A plain count allows light points: none.
        assert!(axis.key_points(10).is_empty());
        assert_eq!(axis.format_ext(&1.5), "5 %");
        assert_eq!(axis.format_ext(&7.5), "");
        assert_eq!(
            (axis.map(&0.0, (100, 300)), axis.map(&1.5, (100, 300))),
            (100, 250)
        );
        assert_eq!(axis.range(), 0.0..2.0);
    }
}
