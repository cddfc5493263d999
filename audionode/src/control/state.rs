//! The control state the web desk and API see: master volume, each active
//! source's controls, stats and meter, and the JSON messages that describe
//! it. Validation lives here, so every path (REST, WebSocket) checks input
//! the same way and a refused change alters nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::engine::SourceControls;
use crate::nodecore::name::{SourceName, MAX_NAME_BYTES};
use crate::nodecore::source_id::SourceId;
use crate::stats::Meters;
use crate::stats::{NodeSnapshot, SourceStats};

/// Largest linear volume (master or source): +6 dB.
pub const MAX_VOLUME: f32 = 2.0;

/// Why a request was refused; maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The body is larger than allowed (413).
    TooLarge,
    /// Malformed or out-of-range input (400).
    BadRequest(String),
    /// No such source (404).
    NotFound(String),
    /// Missing or wrong token (401).
    Unauthorized,
    /// The mixer's command queue is full (503).
    Busy,
}

impl ApiError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::Unauthorized => 401,
            ApiError::TooLarge => 413,
            ApiError::Busy => 503,
        }
    }

    /// The message shown to the client.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m) | ApiError::NotFound(m) => m.clone(),
            ApiError::Unauthorized => "missing or wrong token".into(),
            ApiError::TooLarge => "request body too large".into(),
            ApiError::Busy => "the mixer is busy; try again".into(),
        }
    }
}

/// A partial update of one source's controls (absent fields are kept).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    /// Display name (at most 64 bytes; "" removes the operator's name).
    pub name: Option<String>,
    /// Linear volume, 0 ..= 2.
    pub volume: Option<f32>,
    /// −1 (left) ..= 1 (right).
    pub balance: Option<f32>,
    /// Silence the source.
    pub mute: Option<bool>,
    /// Hear only soloed sources.
    pub solo: Option<bool>,
}

/// Body of a master-volume update.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterPatch {
    /// Linear volume, 0 ..= 2.
    pub volume: f32,
}

/// A message a page sends over the WebSocket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Set the master volume.
    SetMaster {
        /// Linear volume.
        volume: f32,
    },
    /// Change one source's controls.
    SetSource {
        /// The source's id.
        id: String,
        /// Display name.
        name: Option<String>,
        /// Linear volume.
        volume: Option<f32>,
        /// Balance.
        balance: Option<f32>,
        /// Mute.
        mute: Option<bool>,
        /// Solo.
        solo: Option<bool>,
    },
}

/// A validated change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// New master volume.
    Master(f32),
    /// New controls of one source.
    Source(SourceId, SourceControls),
    /// A new name of one source, given by the operator at an address.
    Name(SourceId, SourceName, SocketAddr),
}

/// One source as the desk shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceView {
    /// The source's identity: `ip:port`, or `ssrc:XXXXXXXX` for RTP.
    pub id: String,
    /// Its display name, if it has one.
    pub name: Option<String>,
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
    /// The address its packets come from.
    pub from: String,
    /// Linear volume.
    pub volume: f32,
    /// Balance.
    pub balance: f32,
    /// Muted.
    pub mute: bool,
    /// Soloed.
    pub solo: bool,
    /// Network health and buffer.
    pub stats: StatsView,
}

/// The per-source counters the desk shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StatsView {
    /// Packets received.
    pub received: u64,
    /// Packets lost.
    pub lost: u64,
    /// Packets that arrived too late to play.
    pub late: u64,
    /// Packets that arrived after a newer one.
    pub reordered: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Interarrival jitter.
    pub jitter_ms: f64,
    /// Audio buffered ahead of playout.
    pub buffered_ms: f64,
    /// Jitter-buffer target.
    pub target_ms: f64,
    /// Loss in percent of expected packets.
    pub loss_percent: f64,
}

impl From<&SourceStats> for StatsView {
    fn from(s: &SourceStats) -> Self {
        let expected = s.received.saturating_sub(s.duplicates + s.malformed) + s.lost;
        StatsView {
            received: s.received,
            lost: s.lost,
            late: s.late,
            reordered: s.reordered,
            duplicates: s.duplicates,
            malformed: s.malformed,
            jitter_ms: round2(s.jitter_ms),
            buffered_ms: round2(s.buffered_ms),
            target_ms: round2(s.target_ms),
            loss_percent: if expected == 0 {
                0.0
            } else {
                round2(100.0 * s.lost as f64 / expected as f64)
            },
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One meter reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceMeter {
    /// The source.
    pub id: String,
    /// Post-fader peak, fraction of full scale.
    pub peak: f32,
    /// Network stats.
    pub stats: StatsView,
}

/// Messages pushed to every WebSocket client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The whole state (on connect).
    State {
        /// Master volume.
        master: f32,
        /// Active sources.
        sources: Vec<SourceView>,
    },
    /// The master volume changed.
    Master {
        /// New volume.
        volume: f32,
    },
    /// A source's controls or name changed.
    Source {
        /// The source.
        id: String,
        /// Its name.
        name: Option<String>,
        /// Volume.
        volume: f32,
        /// Balance.
        balance: f32,
        /// Mute.
        mute: bool,
        /// Solo.
        solo: bool,
    },
    /// A stream appeared.
    Joined {
        /// The source with its (possibly remembered) controls.
        source: SourceView,
    },
    /// A stream was dropped.
    Left {
        /// The source.
        id: String,
    },
    /// Meters and stats, about 20 times a second.
    Meters {
        /// Output peak, left.
        left: f32,
        /// Output peak, right.
        right: f32,
        /// Whether the output clipped.
        clipped: bool,
        /// Per source.
        sources: Vec<SourceMeter>,
    },
}

impl ServerMessage {
    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }
}

#[derive(Debug, Clone)]
struct Entry {
    controls: SourceControls,
    stats: SourceStats,
    name: SourceName,
    channels: u8,
    from: SocketAddr,
}

/// What the node says about one active source besides its counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceInfo {
    /// The source.
    pub id: SourceId,
    /// The controls the mixer applies.
    pub controls: SourceControls,
    /// Its name (empty: none).
    pub name: SourceName,
    /// 1 or 2.
    pub channels: u8,
    /// Where its packets come from.
    pub from: SocketAddr,
}

/// The desk's view of the mixer.
#[derive(Debug, Clone)]
pub struct ControlState {
    master: f32,
    sources: BTreeMap<SourceId, Entry>,
    snapshot: NodeSnapshot,
}

impl Default for ControlState {
    fn default() -> Self {
        Self {
            master: 1.0,
            sources: BTreeMap::new(),
            snapshot: NodeSnapshot::default(),
        }
    }
}

impl ControlState {
    /// The whole state as a message.
    pub fn full(&self) -> ServerMessage {
        ServerMessage::State {
            master: self.master,
            sources: self.sources.iter().map(|(a, e)| view(*a, e)).collect(),
        }
    }

    /// Whether `addr` is an active source.
    pub fn has_source(&self, addr: SourceId) -> bool {
        self.sources.contains_key(&addr)
    }

    /// The active sources' addresses.
    pub fn source_addrs(&self) -> impl Iterator<Item = SourceId> + '_ {
        self.sources.keys().copied()
    }

    /// The names of the named sources.
    pub fn names(&self) -> std::collections::HashMap<SourceId, String> {
        self.sources
            .iter()
            .filter(|(_, e)| !e.name.is_empty())
            .map(|(id, e)| (*id, e.name.as_str().to_string()))
            .collect()
    }

    /// The latest node snapshot (for metrics).
    pub fn snapshot(&self) -> &NodeSnapshot {
        &self.snapshot
    }

    /// Checks a master update.
    pub fn check_master(&self, patch: MasterPatch) -> Result<Change, ApiError> {
        Ok(Change::Master(check_volume(patch.volume, "volume")?))
    }

    /// Checks an update of source `id` from the operator at `by`, merging
    /// it into its current controls: a change of controls, of the name, or
    /// both.
    pub fn check_source(
        &self,
        id: &str,
        patch: SourcePatch,
        by: SocketAddr,
    ) -> Result<Vec<Change>, ApiError> {
        let addr: SourceId = id.parse().map_err(|_| {
            ApiError::NotFound(format!(
                "no source {id:?} (expected ip:port or ssrc:XXXXXXXX)"
            ))
        })?;
        let entry = self
            .sources
            .get(&addr)
            .ok_or_else(|| ApiError::NotFound(format!("no active source {addr}")))?;
        if patch == SourcePatch::default() {
            return Err(ApiError::BadRequest(
                "nothing to change: give name, volume, balance, mute or solo".into(),
            ));
        }
        let mut changes = Vec::new();
        if let Some(name) = &patch.name {
            if name.len() > MAX_NAME_BYTES {
                return Err(ApiError::BadRequest(format!(
                    "name of {} bytes is longer than {MAX_NAME_BYTES}",
                    name.len()
                )));
            }
            changes.push(Change::Name(addr, SourceName::new(name), by));
        }
        if patch.volume.is_none()
            && patch.balance.is_none()
            && patch.mute.is_none()
            && patch.solo.is_none()
        {
            return Ok(changes);
        }
        let mut c = entry.controls;
        if let Some(v) = patch.volume {
            c.volume = check_volume(v, "volume")?;
        }
        if let Some(b) = patch.balance {
            if !b.is_finite() || !(-1.0..=1.0).contains(&b) {
                return Err(ApiError::BadRequest(format!(
                    "balance {b} is outside -1 ..= 1"
                )));
            }
            c.balance = b;
        }
        c.mute = patch.mute.unwrap_or(c.mute);
        c.solo = patch.solo.unwrap_or(c.solo);
        changes.push(Change::Source(addr, c));
        Ok(changes)
    }

    /// Applies a checked change; returns the message announcing it.
    pub fn apply(&mut self, change: Change) -> ServerMessage {
        match change {
            Change::Master(volume) => {
                self.master = volume;
                ServerMessage::Master { volume }
            }
            Change::Source(addr, c) => {
                if let Some(e) = self.sources.get_mut(&addr) {
                    e.controls = c;
                }
                self.source_message(addr)
            }
            Change::Name(addr, name, _) => {
                if let Some(e) = self.sources.get_mut(&addr) {
                    e.name = name;
                }
                self.source_message(addr)
            }
        }
    }

    fn source_message(&self, addr: SourceId) -> ServerMessage {
        let (c, name) = self
            .sources
            .get(&addr)
            .map(|e| (e.controls, e.name))
            .unwrap_or_default();
        ServerMessage::Source {
            id: addr.to_string(),
            name: name_view(name),
            volume: c.volume,
            balance: c.balance,
            mute: c.mute,
            solo: c.solo,
        }
    }

    /// Sources whose name the node reports differently from the state's
    /// (named by their sender): renamed, with the message announcing it.
    pub fn renamed(&mut self, active: &[SourceInfo]) -> Vec<ServerMessage> {
        let mut messages = Vec::new();
        for info in active {
            let changed = self
                .sources
                .get(&info.id)
                .is_some_and(|e| e.name != info.name);
            if changed {
                if let Some(e) = self.sources.get_mut(&info.id) {
                    e.name = info.name;
                }
                messages.push(self.source_message(info.id));
            }
        }
        messages
    }

    /// A stream appeared.
    pub fn joined(&mut self, info: SourceInfo) -> ServerMessage {
        let entry = Entry {
            controls: info.controls,
            stats: SourceStats::default(),
            name: info.name,
            channels: info.channels,
            from: info.from,
        };
        let source = view(info.id, &entry);
        self.sources.insert(info.id, entry);
        ServerMessage::Joined { source }
    }

    /// A stream left.
    pub fn left(&mut self, addr: SourceId) -> ServerMessage {
        self.sources.remove(&addr);
        ServerMessage::Left {
            id: addr.to_string(),
        }
    }

    /// New counters and meters from the node.
    pub fn tick(&mut self, snapshot: NodeSnapshot, meters: &Meters) -> ServerMessage {
        for (addr, stats) in &snapshot.sources {
            if let Some(e) = self.sources.get_mut(addr) {
                e.stats = *stats;
            }
        }
        self.snapshot = snapshot;
        ServerMessage::Meters {
            left: meters.left,
            right: meters.right,
            clipped: meters.clipped,
            sources: meters
                .sources
                .iter()
                .filter_map(|(addr, peak)| {
                    let e = self.sources.get(addr)?;
                    Some(SourceMeter {
                        id: addr.to_string(),
                        peak: *peak,
                        stats: StatsView::from(&e.stats),
                    })
                })
                .collect(),
        }
    }
}

fn name_view(name: SourceName) -> Option<String> {
    (!name.is_empty()).then(|| name.as_str().to_string())
}

fn view(addr: SourceId, e: &Entry) -> SourceView {
    SourceView {
        id: addr.to_string(),
        name: name_view(e.name),
        channels: e.channels,
        from: e.from.to_string(),
        volume: e.controls.volume,
        balance: e.controls.balance,
        mute: e.controls.mute,
        solo: e.controls.solo,
        stats: StatsView::from(&e.stats),
    }
}

fn check_volume(v: f32, what: &str) -> Result<f32, ApiError> {
    if v.is_finite() && (0.0..=MAX_VOLUME).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::BadRequest(format!(
            "{what} {v} is outside 0 ..= {MAX_VOLUME}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATOR: &str = "127.0.0.1:9000";

    fn state_with(addr: &str) -> ControlState {
        let mut s = ControlState::default();
        s.joined(SourceInfo {
            id: addr.parse().unwrap(),
            controls: SourceControls::default(),
            name: SourceName::EMPTY,
            channels: 1,
            from: addr.parse().unwrap(),
        });
        s
    }

    #[test]
    fn source_patch_merges_and_validates() {
        let s = state_with("127.0.0.1:5000");
        let change = s
            .check_source(
                "127.0.0.1:5000",
                SourcePatch {
                    balance: Some(-0.5),
                    ..Default::default()
                },
                OPERATOR.parse().unwrap(),
            )
            .unwrap();
        assert_eq!(
            change[..],
            [Change::Source(
                "127.0.0.1:5000".parse().unwrap(),
                SourceControls {
                    balance: -0.5,
                    ..Default::default()
                }
            )]
        );
        let bad = |p: SourcePatch| {
            s.check_source("127.0.0.1:5000", p, OPERATOR.parse().unwrap())
                .unwrap_err()
        };
        assert_eq!(
            bad(SourcePatch {
                volume: Some(2.5),
                ..Default::default()
            })
            .status(),
            400
        );
        assert_eq!(
            bad(SourcePatch {
                volume: Some(f32::NAN),
                ..Default::default()
            })
            .status(),
            400
        );
        assert_eq!(
            bad(SourcePatch {
                balance: Some(-1.01),
                ..Default::default()
            })
            .status(),
            400
        );
        assert_eq!(bad(SourcePatch::default()).status(), 400);
        assert_eq!(
            bad(SourcePatch {
                name: Some("x".repeat(65)),
                ..Default::default()
            })
            .status(),
            400
        );
        // A name and a control change at once: both, the name first.
        let both = s
            .check_source(
                "127.0.0.1:5000",
                SourcePatch {
                    name: Some("bass".into()),
                    mute: Some(true),
                    ..Default::default()
                },
                OPERATOR.parse().unwrap(),
            )
            .unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(
            both[0],
            Change::Name(
                "127.0.0.1:5000".parse().unwrap(),
                SourceName::new("bass"),
                OPERATOR.parse().unwrap()
            )
        );
        assert_eq!(
            s.check_source(
                "127.0.0.1:5001",
                SourcePatch {
                    mute: Some(true),
                    ..Default::default()
                },
                OPERATOR.parse().unwrap(),
            )
            .unwrap_err()
            .status(),
            404
        );
        assert_eq!(
            s.check_source(
                "garbage",
                SourcePatch {
                    mute: Some(true),
                    ..Default::default()
                },
                OPERATOR.parse().unwrap(),
            )
            .unwrap_err()
            .status(),
            404
        );
    }

    #[test]
    fn messages_are_tagged_json() {
        let mut s = state_with("127.0.0.1:5000");
        let msg = s.apply(Change::Master(0.5));
        assert_eq!(msg.to_json(), r#"{"type":"master","volume":0.5}"#);
        let left = s.left("127.0.0.1:5000".parse().unwrap());
        assert_eq!(left.to_json(), r#"{"type":"left","id":"127.0.0.1:5000"}"#);
        assert_eq!(
            s.full().to_json(),
            r#"{"type":"state","master":0.5,"sources":[]}"#
        );
    }

    #[test]
    fn client_messages_parse_strictly() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"set_source","id":"1.2.3.4:5","mute":true}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::SetSource {
                id: "1.2.3.4:5".into(),
                name: None,
                volume: None,
                balance: None,
                mute: Some(true),
                solo: None
            }
        );
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"set_master","volume":1,"x":2}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<SourcePatch>(r#"{"volume":"loud"}"#).is_err());
    }

    #[test]
    fn loss_percent_counts_expected_packets() {
        let stats = SourceStats {
            received: 95,
            lost: 5,
            ..Default::default()
        };
        assert_eq!(StatsView::from(&stats).loss_percent, 5.0);
    }
}
