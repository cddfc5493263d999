//! A source's network health, judged over a sliding window: the control
//! surface keeps a checkpoint of every source's loss counters about twice a
//! second for the last [`WINDOW`], and compares the latest counters with
//! the checkpoint at the window's start. Every counter that means audio
//! was lost or altered counts (lost, late, overflow, stray, malformed,
//! restarts, reanchors, drift corrections, size changes), so the badge
//! turns bad as soon as audio is lost and good again once the window no
//! longer holds the damage. The thresholds are documented in
//! `docs/control-api.md`.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::stats::SourceStats;

/// How far back health looks.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Spacing of the checkpoints kept over the window.
const CHECKPOINT: Duration = Duration::from_millis(500);
/// Packets lost, late, overflowing, stray or malformed in the window from
/// which health is bad, when they are also [`BAD_LOSS_PERCENT`] or more of
/// the window's packets.
pub const BAD_PACKETS: u64 = 5;
/// The share of the window's packets (received + lost) that, lost, makes
/// health bad.
pub const BAD_LOSS_PERCENT: u64 = 1;
/// Drift-correction samples (dropped + repeated) in the window from which
/// health is fair: about 230 ppm at 44.1 kHz, more than a sound card's
/// clock is normally off.
pub const FAIR_DRIFT_SAMPLES: u64 = 100;
/// Drift-correction samples in the window from which health is bad: 1 %
/// of the audio at 44.1 kHz.
pub const BAD_DRIFT_SAMPLES: u64 = 4_410;

/// Good, fair or bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// No audio lost in the window.
    #[default]
    Good,
    /// Some audio lost or altered, not enough to be bad.
    Fair,
    /// Audible damage.
    Bad,
}

/// A source's health and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    /// The verdict.
    pub level: Level,
    /// One line per counter that lowered it, e.g.
    /// `"overflow: 312 packets in the last 10 s"`; empty when good.
    pub reasons: Vec<String>,
}

/// The counters that mean lost audio, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    received: u64,
    lost: u64,
    late: u64,
    overflow: u64,
    stray: u64,
    malformed: u64,
    restarts: u64,
    reanchors: u64,
    size_changes: u64,
    drift: u64,
}

impl Counts {
    fn of(s: &SourceStats) -> Self {
        Self {
            received: s.received,
            lost: s.lost,
            late: s.late,
            overflow: s.overflow,
            stray: s.stray,
            malformed: s.malformed,
            restarts: s.restarts,
            reanchors: s.reanchors,
            size_changes: s.size_changes,
            drift: s.drift_drops + s.drift_repeats,
        }
    }

    /// `self − earlier`, each counter at least 0.
    fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            received: self.received.saturating_sub(earlier.received),
            lost: self.lost.saturating_sub(earlier.lost),
            late: self.late.saturating_sub(earlier.late),
            overflow: self.overflow.saturating_sub(earlier.overflow),
            stray: self.stray.saturating_sub(earlier.stray),
            malformed: self.malformed.saturating_sub(earlier.malformed),
            restarts: self.restarts.saturating_sub(earlier.restarts),
            reanchors: self.reanchors.saturating_sub(earlier.reanchors),
            size_changes: self.size_changes.saturating_sub(earlier.size_changes),
            drift: self.drift.saturating_sub(earlier.drift),
        }
    }
}

/// One source's checkpoints over the window.
#[derive(Debug, Clone)]
pub(crate) struct History {
    checkpoints: VecDeque<(Duration, Counts)>,
}

impl History {
    /// A source that appeared at node time `at` (its counters start at 0).
    pub(crate) fn new(at: Duration) -> Self {
        let mut checkpoints =
            VecDeque::with_capacity(2 + (WINDOW.as_millis() / CHECKPOINT.as_millis()) as usize);
        checkpoints.push_back((at, Counts::default()));
        Self { checkpoints }
    }

    /// Takes the counters at node time `at` and returns what the window
    /// ending there holds. Only counters are compared here (20 times a
    /// second for every source); the verdict's words are written when a
    /// client asks for them ([`Verdict::health`]).
    pub(crate) fn update(&mut self, at: Duration, stats: &SourceStats) -> Verdict {
        let now = Counts::of(stats);
        let newest = self.checkpoints.back().map_or(Duration::ZERO, |c| c.0);
        if at.saturating_sub(newest) >= CHECKPOINT {
            self.checkpoints.push_back((at, now));
        }
        // The baseline is the newest checkpoint at or before the window's start.
        let start = at.saturating_sub(WINDOW);
        while self.checkpoints.len() >= 2 && self.checkpoints[1].0 <= start {
            self.checkpoints.pop_front();
        }
        let base = self.checkpoints.front().map_or(Counts::default(), |c| c.1);
        Verdict {
            window: now.since(&base),
            rate_mismatch_hz: stats.rate_mismatch_hz,
        }
    }
}

/// What one source's window holds: the counters behind its health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    window: Counts,
    rate_mismatch_hz: u32,
}

impl Verdict {
    /// The health these counters make, with one reason per counter.
    pub(crate) fn health(&self) -> Health {
        let mut health = assess(&self.window);
        if self.rate_mismatch_hz > 0 {
            // Not a window's count: a wrong setting, bad for as long as it lasts.
            health.level = Level::Bad;
            health.reasons.insert(
                0,
                format!(
                    "rate mismatch: the sender runs at ~{} Hz (set the same --sample-rate on both)",
                    self.rate_mismatch_hz
                ),
            );
        }
        health
    }
}

/// The verdict on what happened in one window.
fn assess(d: &Counts) -> Health {
    let mut level = Level::Good;
    let mut reasons = Vec::new();
    let secs = WINDOW.as_secs();
    let mut note = |lvl: Level, count: u64, what: &str, unit: &str| {
        if count > 0 {
            level = level.max(lvl);
            let unit = if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            };
            reasons.push(format!("{what}: {count}{unit} in the last {secs} s"));
        }
    };
    let damaged = d.lost + d.late + d.overflow + d.stray + d.malformed;
    let packets = (d.received + d.lost).max(1);
    let loss_level = if damaged >= BAD_PACKETS && damaged * 100 >= BAD_LOSS_PERCENT * packets {
        Level::Bad
    } else {
        Level::Fair
    };
    note(loss_level, d.lost, "lost", "packets");
    note(loss_level, d.late, "late", "packets");
    note(loss_level, d.overflow, "overflow", "packets");
    note(loss_level, d.stray, "stray", "packets");
    note(loss_level, d.malformed, "malformed", "datagrams");
    note(Level::Bad, d.reanchors, "reanchors", "");
    note(Level::Fair, d.restarts, "restarts", "");
    note(Level::Fair, d.size_changes, "packet size changes", "");
    if d.drift >= FAIR_DRIFT_SAMPLES {
        let lvl = if d.drift >= BAD_DRIFT_SAMPLES {
            Level::Bad
        } else {
            Level::Fair
        };
        note(lvl, d.drift, "drift corrections", "samples");
    }
    Health { level, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn clean(received: u64) -> SourceStats {
        SourceStats {
            received,
            ..Default::default()
        }
    }

    #[test]
    fn a_transient_is_bad_for_the_window_then_good() {
        let mut h = History::new(at(0));
        let mut t = 0;
        // 3 s of clean audio, 100 packets a second.
        while t <= 3_000 {
            assert_eq!(h.update(at(t), &clean(t / 10)).health().level, Level::Good);
            t += 50;
        }
        // A burst: 312 packets overflow.
        let burst = SourceStats {
            received: 330 + 312,
            overflow: 312,
            ..Default::default()
        };
        let health = h.update(at(3_050), &burst).health();
        assert_eq!(health.level, Level::Bad);
        assert_eq!(health.reasons, ["overflow: 312 packets in the last 10 s"]);
        // Still bad 9.5 s later, good by 10.5 s later.
        let mut after = burst;
        let mut t = 3_100;
        let mut good_at = None;
        while t <= 15_000 {
            after.received += 5;
            let level = h.update(at(t), &after).health().level;
            if t <= 12_550 {
                assert_eq!(level, Level::Bad, "at {t} ms");
            }
            if level == Level::Good && good_at.is_none() {
                good_at = Some(t);
            }
            t += 50;
        }
        let good_at = good_at.expect("good again");
        assert!((13_050..=13_600).contains(&good_at), "good at {good_at} ms");
    }

    #[test]
    fn thresholds() {
        let of = |d: Counts| assess(&d).level;
        let base = Counts {
            received: 1_000,
            ..Default::default()
        };
        assert_eq!(of(base), Level::Good);
        // A few lost packets are fair; 1 % and at least 5 is bad.
        assert_eq!(of(Counts { lost: 4, ..base }), Level::Fair);
        assert_eq!(of(Counts { lost: 9, ..base }), Level::Fair);
        assert_eq!(of(Counts { lost: 11, ..base }), Level::Bad);
        assert_eq!(
            of(Counts {
                late: 6,
                lost: 5,
                ..base
            }),
            Level::Bad
        );
        // A reanchor is bad; a restart or a size change fair.
        assert_eq!(
            of(Counts {
                reanchors: 1,
                ..base
            }),
            Level::Bad
        );
        assert_eq!(
            of(Counts {
                restarts: 1,
                ..base
            }),
            Level::Fair
        );
        assert_eq!(
            of(Counts {
                size_changes: 1,
                ..base
            }),
            Level::Fair
        );
        // Drift corrections: a crystal's worth is fine.
        assert_eq!(of(Counts { drift: 99, ..base }), Level::Good);
        assert_eq!(of(Counts { drift: 100, ..base }), Level::Fair);
        assert_eq!(
            of(Counts {
                drift: 4_410,
                ..base
            }),
            Level::Bad
        );
        let h = assess(&Counts {
            drift: 150,
            restarts: 1,
            ..base
        });
        assert_eq!(
            h.reasons,
            [
                "restarts: 1 in the last 10 s",
                "drift corrections: 150 samples in the last 10 s"
            ]
        );
    }
}
