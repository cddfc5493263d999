//! Which of the operator's changes reach the event log, and when.
//!
//! A fader drag sends a change per mouse move, 20 to 60 a second; logging
//! each would bury the stream events. So a level change (volume, balance,
//! master volume) is logged once it has settled: when no further change of
//! the same target has come for [`SETTLE`], with the operator who made the
//! last move. A switch (mute, solo) is logged at once, together with the
//! level it applies to, since it is the change an operator looks for when
//! a source went quiet. A drag that ends where it started is not logged.
//! When another operator (another host) takes over a target while its
//! change is still settling, the first operator's change is logged first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::nodecore::event::{LoggedSetting, Setting};
use crate::nodecore::source_id::SourceId;

/// How long a level must stay unchanged before it is logged.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

fn target(setting: &Setting) -> Option<SourceId> {
    match setting {
        Setting::Master(_) => None,
        Setting::Source(id, _) => Some(*id),
    }
}

/// A switch differs (mute or solo), not only a level.
fn switched(after: &Setting, before: &Setting) -> bool {
    match (after, before) {
        (Setting::Source(_, a), Setting::Source(_, b)) => a.mute != b.mute || a.solo != b.solo,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy)]
struct Settling {
    /// The setting before the first move of this change.
    from: Setting,
    /// The latest setting.
    to: Setting,
    by: SocketAddr,
    /// Node time of the latest move.
    moved_at: Duration,
}

/// The changes still settling, one per target (`None`: the master).
#[derive(Debug, Default)]
pub struct SettingsLog {
    settling: HashMap<Option<SourceId>, Settling>,
}

impl SettingsLog {
    /// Records a change from `before` to `after` by the operator at `by`,
    /// at node time `now`; returns what to log at once (at most two: a
    /// change of another operator that was still settling, then this one).
    pub fn on_change(
        &mut self,
        before: Setting,
        after: Setting,
        by: SocketAddr,
        now: Duration,
    ) -> Vec<LoggedSetting> {
        let key = target(&after);
        let mut now_due = Vec::new();
        let mut from = before;
        if let Some(s) = self.settling.get(&key).copied() {
            // By host: each REST request comes from another port.
            if s.by.ip() == by.ip() {
                from = s.from;
            } else {
                self.settling.remove(&key);
                if s.to != s.from {
                    now_due.push(LoggedSetting {
                        setting: s.to,
                        by: s.by,
                    });
                }
            }
        }
        if switched(&after, &before) {
            self.settling.remove(&key);
            now_due.push(LoggedSetting { setting: after, by });
        } else if after != before || from != after {
            self.settling.insert(
                key,
                Settling {
                    from,
                    to: after,
                    by,
                    moved_at: now,
                },
            );
        }
        now_due
    }

    /// The changes that have settled by node time `now`, removed from the
    /// set.
    pub fn settled(&mut self, now: Duration) -> Vec<LoggedSetting> {
        let mut due = Vec::new();
        self.settling.retain(|_, s| {
            if now.saturating_sub(s.moved_at) < SETTLE {
                return true;
            }
            if s.to != s.from {
                due.push(LoggedSetting {
                    setting: s.to,
                    by: s.by,
                });
            }
            false
        });
        // HashMap order is arbitrary; log in a stable order.
        due.sort_by_key(|l| target(&l.setting));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SourceControls;

    const ALICE: &str = "192.0.2.1:5000";
    const BOB: &str = "192.0.2.2:5000";
    /// Alice again, on another connection.
    const ALICE_AGAIN: &str = "192.0.2.1:5001";

    fn op(a: &str) -> SocketAddr {
        a.parse().unwrap()
    }

    fn src(volume: f32, mute: bool) -> Setting {
        Setting::Source(
            "10.0.0.1:4000".parse().unwrap(),
            SourceControls {
                volume,
                mute,
                ..SourceControls::default()
            },
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_drag_is_logged_once_when_it_settles() {
        let mut log = SettingsLog::default();
        let mut level = 1.0;
        for i in 0..20 {
            let next = 1.0 - 0.02 * (i + 1) as f32;
            assert!(log
                .on_change(src(level, false), src(next, false), op(ALICE), ms(i * 20))
                .is_empty());
            level = next;
        }
        assert!(log.settled(ms(380 + 499)).is_empty());
        assert_eq!(
            log.settled(ms(380 + 500)),
            [LoggedSetting {
                setting: src(level, false),
                by: op(ALICE)
            }]
        );
        assert!(log.settled(ms(5000)).is_empty());
    }

    #[test]
    fn a_drag_back_to_the_start_is_not_logged() {
        let mut log = SettingsLog::default();
        log.on_change(src(1.0, false), src(0.5, false), op(ALICE), ms(0));
        log.on_change(src(0.5, false), src(1.0, false), op(ALICE_AGAIN), ms(100));
        assert!(log.settled(ms(2000)).is_empty());
    }

    #[test]
    fn a_mute_is_logged_at_once_with_the_level() {
        let mut log = SettingsLog::default();
        log.on_change(src(1.0, false), src(0.5, false), op(ALICE), ms(0));
        assert_eq!(
            log.on_change(src(0.5, false), src(0.5, true), op(ALICE), ms(100)),
            [LoggedSetting {
                setting: src(0.5, true),
                by: op(ALICE)
            }]
        );
        assert!(log.settled(ms(2000)).is_empty(), "logged already");
    }

    #[test]
    fn another_operator_flushes_the_first_ones_change() {
        let mut log = SettingsLog::default();
        log.on_change(src(1.0, false), src(0.5, false), op(ALICE), ms(0));
        assert_eq!(
            log.on_change(src(0.5, false), src(0.25, false), op(BOB), ms(100)),
            [LoggedSetting {
                setting: src(0.5, false),
                by: op(ALICE)
            }]
        );
        assert_eq!(
            log.settled(ms(600)),
            [LoggedSetting {
                setting: src(0.25, false),
                by: op(BOB)
            }]
        );
    }

    #[test]
    fn master_and_sources_settle_apart() {
        let mut log = SettingsLog::default();
        log.on_change(Setting::Master(1.0), Setting::Master(0.5), op(ALICE), ms(0));
        log.on_change(src(1.0, false), src(0.8, false), op(ALICE), ms(400));
        assert_eq!(
            log.settled(ms(500)),
            [LoggedSetting {
                setting: Setting::Master(0.5),
                by: op(ALICE)
            }]
        );
        assert_eq!(log.settled(ms(900)).len(), 1);
    }
}
