//! Publish-subscribe between the control surface's clients and the mixer.
//!
//! Clients' changes are validated against the [`ControlState`], handed to
//! the mixer through a lock-free ring (applied at its next block), applied
//! to the state and broadcast to every client, all under one lock so every
//! client sees changes in the same order. The server takes the mixer's
//! latest stats frame 20 times a second as a [`Tick`] with its counters,
//! meters and the active sources; the hub diffs them into `joined`/`left`
//! messages, so the desk converges even if a frame is skipped.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;

#[cfg(test)]
use crate::engine::SourceControls;
#[cfg(test)]
use crate::nodecore::event::Setting;
#[cfg(test)]
use crate::nodecore::name::SourceName;
use crate::nodecore::source_id::SourceId;
pub use crate::nodecore::ControlCommand;
use crate::stats::{Meters, NodeSnapshot, StatsFrame};

use super::listen::ListenCounts;
use super::settings_log::SettingsLog;
use super::state::{
    ApiError, Change, ControlState, MasterPatch, MasterView, ServerMessage, SourceInfo,
    SourcePatch, SourceView,
};
use crate::nodecore::event::LoggedSetting;

/// Messages kept for a slow WebSocket client before it must resynchronise.
const BROADCAST_DEPTH: usize = 256;

/// What the node reports about ten to twenty times a second.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    /// Node time of the frame.
    pub at: Duration,
    /// Counters.
    pub snapshot: NodeSnapshot,
    /// Peaks since the last tick.
    pub meters: Meters,
    /// Pre-fader peaks since the last tick.
    pub input_peaks: Vec<(SourceId, f32)>,
    /// Active sources with the controls the mixer applies and their names.
    pub sources: Vec<SourceInfo>,
    /// The mixer's master volume.
    pub master: f32,
    /// Listeners of the mix (counted by the control surface, not the mixer).
    pub listeners: ListenCounts,
}

impl Tick {
    /// The tick a stats frame makes.
    pub fn from_frame(frame: &StatsFrame) -> Self {
        Self {
            at: frame.at,
            snapshot: frame.snapshot(),
            meters: frame.meters(),
            input_peaks: frame
                .sources()
                .iter()
                .map(|r| (r.id, r.input_peak))
                .collect(),
            sources: frame.source_infos(),
            master: frame.master,
            listeners: ListenCounts::default(),
        }
    }
}

/// The shared hub.
pub struct Hub {
    state: Mutex<ControlState>,
    /// Taken only under `state`'s lock.
    settings_log: Mutex<SettingsLog>,
    commands: Mutex<rtrb::Producer<ControlCommand>>,
    broadcast: broadcast::Sender<Arc<str>>,
}

impl Hub {
    /// A hub sending mixer commands into `commands`.
    pub fn new(commands: rtrb::Producer<ControlCommand>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(ControlState::default()),
            settings_log: Mutex::new(SettingsLog::default()),
            commands: Mutex::new(commands),
            broadcast: broadcast::channel(BROADCAST_DEPTH).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The whole state.
    pub fn full_state(&self) -> ServerMessage {
        self.lock().full()
    }

    /// The whole state and a subscription to every later message, taken
    /// atomically so nothing falls between them.
    pub fn subscribe(&self) -> (ServerMessage, broadcast::Receiver<Arc<str>>) {
        let state = self.lock();
        (state.full(), self.broadcast.subscribe())
    }

    /// Records the address the node receives sources on.
    pub fn set_listen(&self, listen: SocketAddr) {
        self.lock().set_listen(listen);
    }

    /// One source (404 when it is not active).
    pub fn source(&self, id: &str) -> Result<SourceView, ApiError> {
        self.lock().source(id)
    }

    /// The master strip.
    pub fn master(&self) -> MasterView {
        self.lock().master()
    }

    /// Sets the master volume, for the operator at `by`.
    pub fn set_master(
        &self,
        patch: MasterPatch,
        by: SocketAddr,
    ) -> Result<ServerMessage, ApiError> {
        let mut state = self.lock();
        let change = state.check_master(patch, by)?;
        self.commit(&mut state, change)
    }

    /// Changes one source's controls or name, for the operator at `by`.
    pub fn set_source(
        &self,
        id: &str,
        patch: SourcePatch,
        by: SocketAddr,
    ) -> Result<ServerMessage, ApiError> {
        let mut state = self.lock();
        let changes = state.check_source(id, patch, by)?;
        let mut last = None;
        for change in changes {
            last = Some(self.commit(&mut state, change)?);
        }
        last.ok_or_else(|| ApiError::BadRequest("nothing to change".into()))
    }

    fn commit(&self, state: &mut ControlState, change: Change) -> Result<ServerMessage, ApiError> {
        let command = match change {
            Change::Master(v, _) => ControlCommand::Master(v),
            Change::Source(addr, c, _) => ControlCommand::Source(addr, c),
            Change::Name(id, name, by) => ControlCommand::Name { id, name, by },
        };
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        commands.push(command).map_err(|_| ApiError::Busy)?;
        if let Some((before, after, by)) = state.logged_change(&change) {
            let due = self
                .settings_log()
                .on_change(before, after, by, state.time());
            push_logs(&mut commands, due);
        }
        drop(commands);
        let message = state.apply(change);
        self.publish(&message);
        Ok(message)
    }

    fn settings_log(&self) -> MutexGuard<'_, SettingsLog> {
        self.settings_log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a tick from the node: announces joined and left streams, then
    /// the meters.
    pub fn on_tick(&self, tick: Tick) {
        let mut state = self.lock();
        state.set_time(tick.at);
        let settled = self.settings_log().settled(tick.at);
        if !settled.is_empty() {
            push_logs(
                &mut self.commands.lock().unwrap_or_else(|e| e.into_inner()),
                settled,
            );
        }
        state.set_listen_counts(tick.listeners);
        let (joined, left) = state.diff_sources(&tick.sources);
        for addr in left {
            let message = state.left(addr);
            self.publish(&message);
        }
        for info in joined {
            let message = state.joined(info);
            self.publish(&message);
        }
        for message in state.renamed(&tick.sources) {
            self.publish(&message);
        }
        state.tick(tick.at, tick.snapshot, &tick.meters, &tick.input_peaks);
        if self.broadcast.receiver_count() > 0 {
            self.publish(&state.meters_message(&tick.meters));
        }
    }

    /// Announces the outputs list to every client.
    pub fn publish_outputs(&self, view: &super::outputs::OutputsView) {
        let _state = self.lock();
        if self.broadcast.receiver_count() == 0 {
            return;
        }
        let message = serde_json::json!({ "type": "outputs", "outputs": view.outputs });
        let _ = self.broadcast.send(Arc::from(message.to_string()));
    }

    /// The latest counters and the sources' names, for `/metrics`.
    pub fn snapshot_and_names(
        &self,
    ) -> (NodeSnapshot, std::collections::HashMap<SourceId, String>) {
        let state = self.lock();
        (state.snapshot().clone(), state.names())
    }

    /// The latest counters, for `/metrics`.
    pub fn snapshot(&self) -> NodeSnapshot {
        self.lock().snapshot().clone()
    }

    fn publish(&self, message: &ServerMessage) {
        // Nobody watching: skip the JSON (a tick's meters message lists
        // every source: hundreds of KB at 2000 sources, 20 times a second).
        // Subscribing takes the same lock and starts with the whole state,
        // so a client that joins later misses nothing.
        if self.broadcast.receiver_count() == 0 {
            return;
        }
        let _ = self.broadcast.send(Arc::from(message.to_json()));
    }
}

impl ControlState {
    /// Sources in `active` but not in the state (joined, with their
    /// controls) and in the state but not in `active` (left).
    pub fn diff_sources(&self, active: &[SourceInfo]) -> (Vec<SourceInfo>, Vec<SourceId>) {
        let joined = active
            .iter()
            .filter(|i| !self.has_source(i.id))
            .copied()
            .collect();
        // A set, not a scan of `active` per source: 20 times a second with
        // thousands of sources.
        let active: HashSet<SourceId> = active.iter().map(|i| i.id).collect();
        let left = self
            .source_addrs()
            .filter(|a| !active.contains(a))
            .collect();
        (joined, left)
    }
}

/// Queues event-log lines for the mixer; a full queue loses the line, not
/// the change (which went before).
fn push_logs(commands: &mut rtrb::Producer<ControlCommand>, logs: Vec<LoggedSetting>) {
    for logged in logs {
        let _ = commands.push(ControlCommand::Log(logged));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SourceId {
        SourceId::Addr(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn info(port: u16, controls: SourceControls) -> SourceInfo {
        SourceInfo {
            id: addr(port),
            controls,
            name: SourceName::EMPTY,
            channels: 1,
            from: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn operator() -> std::net::SocketAddr {
        "127.0.0.1:9000".parse().unwrap()
    }

    #[test]
    fn changes_go_to_the_mixer_and_every_subscriber() {
        let (tx, mut rx) = rtrb::RingBuffer::new(8);
        let hub = Hub::new(tx);
        hub.on_tick(Tick {
            sources: vec![info(1, SourceControls::default())],
            ..Default::default()
        });
        let (initial, mut sub) = hub.subscribe();
        assert!(initial.to_json().contains(r#""id":"127.0.0.1:1""#));
        hub.set_source(
            "127.0.0.1:1",
            SourcePatch {
                volume: Some(0.5),
                ..Default::default()
            },
            operator(),
        )
        .unwrap();
        assert_eq!(
            rx.pop().unwrap(),
            ControlCommand::Source(
                addr(1),
                SourceControls {
                    volume: 0.5,
                    ..Default::default()
                }
            )
        );
        assert_eq!(
            &*sub.try_recv().unwrap(),
            r#"{"type":"source","id":"127.0.0.1:1","name":null,"volume":0.5,"balance":0.0,"mute":false,"solo":false}"#
        );
        // A refused change reaches nobody.
        assert!(hub
            .set_master(
                MasterPatch {
                    volume: Some(9.0),
                    ..Default::default()
                },
                operator()
            )
            .is_err());
        assert!(rx.pop().is_err());
        assert!(sub.try_recv().is_err());
    }

    #[test]
    fn settled_changes_and_switches_go_to_the_event_log_with_the_operator() {
        let (tx, mut rx) = rtrb::RingBuffer::new(16);
        let hub = Hub::new(tx);
        let tick = |ms: u64| Tick {
            at: Duration::from_millis(ms),
            sources: vec![info(1, SourceControls::default())],
            ..Default::default()
        };
        hub.on_tick(tick(0));
        let set = |patch: SourcePatch| hub.set_source("127.0.0.1:1", patch, operator()).unwrap();
        for volume in [0.9, 0.7, 0.5] {
            set(SourcePatch {
                volume: Some(volume),
                ..Default::default()
            });
        }
        let half = SourceControls {
            volume: 0.5,
            ..Default::default()
        };
        let mut commands = std::iter::from_fn(|| rx.pop().ok());
        assert_eq!(commands.by_ref().count(), 3, "three changes, no line yet");
        hub.on_tick(tick(450));
        assert!(rx.pop().is_err(), "still settling");
        hub.on_tick(tick(550));
        assert_eq!(
            rx.pop().unwrap(),
            ControlCommand::Log(LoggedSetting {
                setting: Setting::Source(addr(1), half),
                by: operator()
            })
        );
        set(SourcePatch {
            mute: Some(true),
            ..Default::default()
        });
        let muted = SourceControls { mute: true, ..half };
        assert_eq!(rx.pop().unwrap(), ControlCommand::Source(addr(1), muted));
        assert_eq!(
            rx.pop().unwrap(),
            ControlCommand::Log(LoggedSetting {
                setting: Setting::Source(addr(1), muted),
                by: operator()
            }),
            "a switch is logged at once"
        );
        hub.on_tick(tick(5000));
        assert!(rx.pop().is_err());
    }

    #[test]
    fn ticks_announce_joins_and_leaves() {
        let (tx, _rx) = rtrb::RingBuffer::new(8);
        let hub = Hub::new(tx);
        let (_, mut sub) = hub.subscribe();
        let remembered = SourceControls {
            mute: true,
            ..Default::default()
        };
        hub.on_tick(Tick {
            sources: vec![info(1, remembered)],
            ..Default::default()
        });
        let joined = sub.try_recv().unwrap();
        assert!(joined.starts_with(r#"{"type":"joined","source":{"id":"127.0.0.1:1","name":null,"channels":1,"from":"127.0.0.1:1","volume":1.0,"balance":0.0,"mute":true"#), "{joined}");
        assert!(sub.try_recv().unwrap().starts_with(r#"{"type":"meters""#));
        hub.on_tick(Tick::default());
        assert_eq!(
            &*sub.try_recv().unwrap(),
            r#"{"type":"left","id":"127.0.0.1:1"}"#
        );
    }

    #[test]
    fn names_from_the_operator_and_from_the_sender_reach_everyone() {
        let (tx, mut rx) = rtrb::RingBuffer::new(8);
        let hub = Hub::new(tx);
        hub.on_tick(Tick {
            sources: vec![info(1, SourceControls::default())],
            ..Default::default()
        });
        let (_, mut sub) = hub.subscribe();
        hub.set_source(
            "127.0.0.1:1",
            SourcePatch {
                name: Some("<b>bass</b>".into()),
                ..Default::default()
            },
            operator(),
        )
        .unwrap();
        assert_eq!(
            rx.pop().unwrap(),
            ControlCommand::Name {
                id: addr(1),
                name: SourceName::new("<b>bass</b>"),
                by: operator()
            }
        );
        // JSON carries the text as it is; pages show it as text.
        assert!(sub.try_recv().unwrap().contains(r#""name":"<b>bass</b>""#));
        // The sender renames itself (RTCP SDES): announced on the tick.
        let mut named = info(1, SourceControls::default());
        named.name = SourceName::new("drums");
        hub.on_tick(Tick {
            sources: vec![named],
            ..Default::default()
        });
        assert!(sub.try_recv().unwrap().contains(r#""name":"drums""#));
    }

    #[test]
    fn a_full_mixer_queue_is_busy_and_changes_nothing() {
        let (tx, _rx) = rtrb::RingBuffer::new(1);
        let hub = Hub::new(tx);
        hub.set_master(
            MasterPatch {
                volume: Some(0.5),
                ..Default::default()
            },
            operator(),
        )
        .unwrap();
        assert_eq!(
            hub.set_master(
                MasterPatch {
                    volume: Some(0.7),
                    ..Default::default()
                },
                operator()
            ),
            Err(ApiError::Busy)
        );
        assert_eq!(hub.master().volume, 0.5);
    }
}
