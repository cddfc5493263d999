//! The live status line on a terminal: recorded duration, the level of the
//! audio received since the last update in dBFS, and underruns, rewritten
//! in place about four times a second. Only when stderr is a terminal:
//! logs and tests (no terminal) get nothing from here.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::stats::{Snapshot, Stats};

/// How often the line is rewritten.
pub const EVERY: Duration = Duration::from_millis(250);

/// Lowest level shown; quieter (and silence) reads as this.
const FLOOR_DBFS: f64 = -90.0;

/// The status line of a terminal, if stderr is one.
#[derive(Debug)]
pub struct StatusLine {
    sample_rate: u32,
    last: Option<Instant>,
    shown: bool,
}

impl StatusLine {
    /// A status line when stderr is a terminal, else `None`.
    pub fn on_terminal(sample_rate: u32) -> Option<Self> {
        std::io::stderr().is_terminal().then_some(Self {
            sample_rate,
            last: None,
            shown: false,
        })
    }

    /// Rewrites the line if an update is due at `now`.
    pub fn tick(&mut self, now: Instant, stats: &Stats) {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < EVERY)
        {
            return;
        }
        self.last = Some(now);
        let line = format_line(&stats.snapshot(), self.sample_rate, stats.take_peak());
        // \r and "erase to end of line": the line is rewritten in place.
        let _ = write!(std::io::stderr(), "\r{line}\x1b[K");
        self.shown = true;
    }

    /// Clears the line, so the next output starts on a clean line.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

/// `recording 12.3 s, level -6.0 dBFS, underruns 2`: the recorded
/// duration at `sample_rate`, `peak` (the largest absolute sample since
/// the last line) in dBFS, the underruns so far.
pub fn format_line(s: &Snapshot, sample_rate: u32, peak: u16) -> String {
    let secs = s.recorded_frames.max(s.received_frames) as f64 / f64::from(sample_rate.max(1));
    format!(
        "recording {secs:.1} s, level {}, underruns {}",
        level(peak),
        s.underruns
    )
}

/// A peak sample as dBFS (full scale 32768), floored at [`FLOOR_DBFS`].
fn level(peak: u16) -> String {
    if peak == 0 {
        return format!("{FLOOR_DBFS:.0} dBFS");
    }
    let db = (20.0 * (f64::from(peak) / 32_768.0).log10()).max(FLOOR_DBFS);
    format!("{db:.1} dBFS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_duration_level_and_underruns() {
        let s = Snapshot {
            recorded_frames: 44_100 * 12 + 13_230,
            received_frames: 44_100 * 12 + 13_230,
            underruns: 2,
            ..Snapshot::default()
        };
        assert_eq!(
            format_line(&s, 44_100, 16_384),
            "recording 12.3 s, level -6.0 dBFS, underruns 2"
        );
        assert_eq!(
            format_line(&Snapshot::default(), 44_100, 0),
            "recording 0.0 s, level -90 dBFS, underruns 0"
        );
        assert_eq!(level(32_767), "-0.0 dBFS");
        assert_eq!(level(1), "-90.0 dBFS");
    }
}
