//! The control state the web desk and API see: master volume, each active
//! source's controls, stats and meter, and the JSON messages that describe
//! it. Validation lives here, so every path (REST, WebSocket) checks input
//! the same way and a refused change alters nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::SourceControls;
use crate::nodecore::event::Setting;
use crate::nodecore::name::{SourceName, MAX_NAME_BYTES};
use crate::nodecore::source_id::SourceId;
use crate::stats::Meters;
use crate::stats::{NodeSnapshot, SourceStats};

use super::health::{Health, History, Verdict};
use super::listen::ListenCounts;

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
    /// Volume in dB, up to +6.02; `null` or −100 and below is silence.
    #[serde(default, deserialize_with = "present")]
    pub volume_db: Option<Option<f32>>,
    /// −1 (left) ..= 1 (right).
    pub balance: Option<f32>,
    /// Silence the source.
    pub mute: Option<bool>,
    /// Hear only soloed sources.
    pub solo: Option<bool>,
}

/// Body of a master-volume update: `volume` or `volume_db`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterPatch {
    /// Linear volume, 0 ..= 2.
    pub volume: Option<f32>,
    /// Volume in dB, as for a source.
    #[serde(default, deserialize_with = "present")]
    pub volume_db: Option<Option<f32>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A `volume_db` at or below this is silence (−∞ dB).
pub const SILENCE_DB: f32 = -100.0;

/// `volume` in dB (`None` for silence), rounded to 0.01 dB.
pub fn volume_db(volume: f32) -> Option<f32> {
    (volume > 0.0).then(|| (2000.0 * volume.log10()).round() / 100.0)
}

/// The linear volume a patch asks for, from `volume` or `volume_db`.
fn patch_volume(volume: Option<f32>, db: Option<Option<f32>>) -> Result<Option<f32>, ApiError> {
    match (volume, db) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give volume or volume_db, not both".into(),
        )),
        (Some(v), None) => check_volume(v, "volume").map(Some),
        (None, Some(None)) => Ok(Some(0.0)),
        (None, Some(Some(db))) => {
            let max_db = 20.0 * MAX_VOLUME.log10();
            if !db.is_finite() || db > max_db + 0.005 {
                Err(ApiError::BadRequest(format!(
                    "volume_db {db} is above {max_db:.2} (null or {SILENCE_DB} and below is silence)"
                )))
            } else if db <= SILENCE_DB {
                Ok(Some(0.0))
            } else if db >= max_db - 0.001 {
                Ok(Some(MAX_VOLUME))
            } else {
                Ok(Some(10f32.powf(db / 20.0).min(MAX_VOLUME)))
            }
        }
        (None, None) => Ok(None),
    }
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
    /// New master volume, from the operator at an address.
    Master(f32, SocketAddr),
    /// New controls of one source, from the operator at an address.
    Source(SourceId, SourceControls, SocketAddr),
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
    /// Post-fader peak, fraction of full scale.
    pub peak: f32,
    /// Pre-fader (input) peak, fraction of full scale.
    pub input_peak: f32,
    /// Network health over the last 10 s.
    pub health: Health,
    /// Network counters and buffer.
    pub stats: StatsView,
}

/// The per-source counters the desk shows: every counter of
/// [`SourceStats`], and the loss in percent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StatsView {
    /// Packets received.
    pub received: u64,
    /// Packets lost (neither received nor restored from a redundant copy).
    pub lost: u64,
    /// Packets restored from a redundant copy (RFC 2198).
    pub recovered: u64,
    /// Packets that arrived too late to play.
    pub late: u64,
    /// Packets that arrived after a newer one.
    pub reordered: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Packets beyond the buffer's capacity.
    pub overflow: u64,
    /// Stream restarts.
    pub restarts: u64,
    /// Times the stream was placed afresh.
    pub reanchors: u64,
    /// Packets whose size differed from the one before.
    pub size_changes: u64,
    /// Packets far off the stream's sequence numbers (discarded).
    pub stray: u64,
    /// Samples dropped to shorten the delay.
    pub drift_drops: u64,
    /// Samples repeated to lengthen the delay.
    pub drift_repeats: u64,
    /// Frames nobody sent in time that concealment filled (`--plc`).
    pub concealed_frames: u64,
    /// Interarrival jitter.
    pub jitter_ms: f64,
    /// Audio buffered ahead of playout.
    pub buffered_ms: f64,
    /// Jitter-buffer target.
    pub target_ms: f64,
    /// Loss in percent of expected packets.
    pub loss_percent: f64,
    /// The rate the sender's audio arrives at when it does not fit the
    /// node's (0: it fits).
    pub rate_mismatch_hz: u32,
}

impl From<&SourceStats> for StatsView {
    fn from(s: &SourceStats) -> Self {
        let expected = s.received.saturating_sub(s.duplicates + s.malformed) + s.recovered + s.lost;
        StatsView {
            received: s.received,
            lost: s.lost,
            recovered: s.recovered,
            late: s.late,
            reordered: s.reordered,
            duplicates: s.duplicates,
            malformed: s.malformed,
            overflow: s.overflow,
            restarts: s.restarts,
            reanchors: s.reanchors,
            size_changes: s.size_changes,
            stray: s.stray,
            drift_drops: s.drift_drops,
            drift_repeats: s.drift_repeats,
            concealed_frames: s.concealed_frames,
            jitter_ms: round2(s.jitter_ms),
            buffered_ms: round2(s.buffered_ms),
            target_ms: round2(s.target_ms),
            rate_mismatch_hz: s.rate_mismatch_hz,
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

/// The node-wide counters the master strip shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// Active sources.
    pub streams: usize,
    /// Datagrams received.
    pub packets: u64,
    /// Blocks mixed.
    pub blocks: u64,
    /// Blocks mixed more than a block late.
    pub deadline_misses: u64,
    /// Output samples saturated.
    pub clipped: u64,
    /// Blocks skipped after the mixer was held off the CPU.
    pub skipped_blocks: u64,
    /// Streams admitted since start.
    pub streams_started: u64,
    /// Streams dropped since start.
    pub streams_dropped: u64,
    /// Datagrams refused (`--max-sources` reached).
    pub refused: u64,
    /// Malformed datagrams from unknown addresses.
    pub malformed_unknown: u64,
    /// Mixed blocks the TCP fan-out could not take.
    pub blocks_dropped: u64,
    /// Events the event log fell behind on.
    pub events_dropped: u64,
    /// Listeners of the mix connected (`/ws/listen`).
    pub listeners: usize,
    /// Listeners dropped because they fell behind.
    pub listeners_dropped: u64,
}

impl From<&NodeSnapshot> for NodeView {
    fn from(s: &NodeSnapshot) -> Self {
        let n = &s.node;
        NodeView {
            streams: s.sources.len(),
            packets: n.packets,
            blocks: n.blocks,
            deadline_misses: n.deadline_misses,
            clipped: n.clipped,
            skipped_blocks: n.skipped_blocks,
            streams_started: n.streams_started,
            streams_dropped: n.streams_dropped,
            refused: n.refused,
            malformed_unknown: n.malformed_unknown,
            blocks_dropped: n.blocks_dropped,
            events_dropped: n.events_dropped,
            // Not the mixer's: the control state adds them.
            listeners: 0,
            listeners_dropped: 0,
        }
    }
}

/// The master strip, for `GET /api/master`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterView {
    /// Linear volume.
    pub volume: f32,
    /// The same in dB; `null` is silence.
    pub volume_db: Option<f32>,
    /// Output peak, left.
    pub left: f32,
    /// Output peak, right.
    pub right: f32,
    /// Whether the output clipped lately.
    pub clipped: bool,
    /// Node counters.
    pub node: NodeView,
}

/// One meter reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceMeter {
    /// The source.
    pub id: String,
    /// Post-fader peak, fraction of full scale.
    pub peak: f32,
    /// Pre-fader (input) peak, fraction of full scale.
    pub input_peak: f32,
    /// Network health over the last 10 s.
    pub health: Health,
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
        /// The address the node receives sources on (`null` when unknown).
        listen: Option<String>,
        /// Node counters.
        node: NodeView,
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
        /// Node counters.
        node: NodeView,
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
    peak: f32,
    input_peak: f32,
    history: History,
    verdict: Verdict,
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
    listen: Option<String>,
    sources: BTreeMap<SourceId, Entry>,
    snapshot: NodeSnapshot,
    /// Listeners of the mix, as of the latest tick.
    listen_counts: ListenCounts,
    /// Node time of the latest tick.
    at: Duration,
    out: (f32, f32, bool),
}

impl Default for ControlState {
    fn default() -> Self {
        Self {
            master: 1.0,
            listen: None,
            sources: BTreeMap::new(),
            snapshot: NodeSnapshot::default(),
            listen_counts: ListenCounts::default(),
            at: Duration::ZERO,
            out: (0.0, 0.0, false),
        }
    }
}

impl ControlState {
    /// The whole state as a message.
    pub fn full(&self) -> ServerMessage {
        ServerMessage::State {
            master: self.master,
            listen: self.listen.clone(),
            node: self.node_view(),
            sources: self.sources.iter().map(|(a, e)| view(*a, e)).collect(),
        }
    }

    /// The node counters with the listeners'.
    fn node_view(&self) -> NodeView {
        NodeView {
            listeners: self.listen_counts.listeners,
            listeners_dropped: self.listen_counts.dropped,
            ..NodeView::from(&self.snapshot)
        }
    }

    /// Records the listener counts of the latest tick.
    pub fn set_listen_counts(&mut self, counts: ListenCounts) {
        self.listen_counts = counts;
    }

    /// Records the address the node receives sources on.
    pub fn set_listen(&mut self, listen: SocketAddr) {
        self.listen = Some(listen.to_string());
    }

    /// One source, or 404.
    pub fn source(&self, id: &str) -> Result<SourceView, ApiError> {
        let addr = self.lookup(id)?;
        Ok(view(addr, &self.sources[&addr]))
    }

    /// The master strip.
    pub fn master(&self) -> MasterView {
        MasterView {
            volume: self.master,
            volume_db: volume_db(self.master),
            left: self.out.0,
            right: self.out.1,
            clipped: self.out.2,
            node: self.node_view(),
        }
    }

    fn lookup(&self, id: &str) -> Result<SourceId, ApiError> {
        id.parse::<SourceId>()
            .ok()
            .filter(|a| self.sources.contains_key(a))
            .ok_or_else(|| ApiError::NotFound(format!("no active source {id}")))
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

    /// Checks a master update from the operator at `by`.
    pub fn check_master(&self, patch: MasterPatch, by: SocketAddr) -> Result<Change, ApiError> {
        match patch_volume(patch.volume, patch.volume_db)? {
            Some(v) => Ok(Change::Master(v, by)),
            None => Err(ApiError::BadRequest(
                "nothing to change: give volume or volume_db".into(),
            )),
        }
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
        let addr = self.lookup(id)?;
        let entry = &self.sources[&addr];
        if patch == SourcePatch::default() {
            return Err(ApiError::BadRequest(
                "nothing to change: give name, volume, volume_db, balance, mute or solo".into(),
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
            && patch.volume_db.is_none()
            && patch.balance.is_none()
            && patch.mute.is_none()
            && patch.solo.is_none()
        {
            return Ok(changes);
        }
        let mut c = entry.controls;
        if let Some(v) = patch_volume(patch.volume, patch.volume_db)? {
            c.volume = v;
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
        changes.push(Change::Source(addr, c, by));
        Ok(changes)
    }

    /// What a checked change of controls does, for the event log: the
    /// setting before and after, and who changes it (`None` for a name,
    /// which the mixer logs itself).
    pub fn logged_change(&self, change: &Change) -> Option<(Setting, Setting, SocketAddr)> {
        match *change {
            Change::Master(v, by) => Some((Setting::Master(self.master), Setting::Master(v), by)),
            Change::Source(id, c, by) => {
                let before = self.sources.get(&id)?.controls;
                Some((Setting::Source(id, before), Setting::Source(id, c), by))
            }
            Change::Name(..) => None,
        }
    }

    /// Applies a checked change; returns the message announcing it.
    pub fn apply(&mut self, change: Change) -> ServerMessage {
        match change {
            Change::Master(volume, _) => {
                self.master = volume;
                ServerMessage::Master { volume }
            }
            Change::Source(addr, c, _) => {
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
            peak: 0.0,
            input_peak: 0.0,
            history: History::new(self.at),
            verdict: Verdict::default(),
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

    /// Node time of the latest tick.
    pub fn time(&self) -> Duration {
        self.at
    }

    /// Node time of the latest tick (new sources' health starts there).
    pub fn set_time(&mut self, at: Duration) {
        self.at = at;
    }

    /// New counters and meters from the node at node time `at`;
    /// `input_peaks` are the sources' pre-fader peaks.
    pub fn tick(
        &mut self,
        at: Duration,
        snapshot: NodeSnapshot,
        meters: &Meters,
        input_peaks: &[(SourceId, f32)],
    ) {
        self.at = at;
        for (addr, stats) in &snapshot.sources {
            if let Some(e) = self.sources.get_mut(addr) {
                e.stats = *stats;
                e.verdict = e.history.update(at, stats);
            }
        }
        for (addr, peak) in &meters.sources {
            if let Some(e) = self.sources.get_mut(addr) {
                e.peak = *peak;
            }
        }
        for (addr, peak) in input_peaks {
            if let Some(e) = self.sources.get_mut(addr) {
                e.input_peak = *peak;
            }
        }
        self.snapshot = snapshot;
        self.out = (meters.left, meters.right, meters.clipped);
    }

    /// The meters message of the latest tick: every source of `meters`
    /// with its levels, health and counters. Built only when a client
    /// listens (hundreds of KB at 2000 sources).
    pub fn meters_message(&self, meters: &Meters) -> ServerMessage {
        ServerMessage::Meters {
            left: meters.left,
            right: meters.right,
            clipped: meters.clipped,
            node: self.node_view(),
            sources: meters
                .sources
                .iter()
                .filter_map(|(addr, _)| {
                    let e = self.sources.get(addr)?;
                    Some(SourceMeter {
                        id: addr.to_string(),
                        peak: e.peak,
                        input_peak: e.input_peak,
                        health: e.verdict.health(),
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
        peak: e.peak,
        input_peak: e.input_peak,
        health: e.verdict.health(),
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
                },
                OPERATOR.parse().unwrap(),
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
        let msg = s.apply(Change::Master(0.5, OPERATOR.parse().unwrap()));
        assert_eq!(msg.to_json(), r#"{"type":"master","volume":0.5}"#);
        let left = s.left("127.0.0.1:5000".parse().unwrap());
        assert_eq!(left.to_json(), r#"{"type":"left","id":"127.0.0.1:5000"}"#);
        assert_eq!(
            s.full().to_json(),
            r#"{"type":"state","master":0.5,"listen":null,"node":{"streams":0,"packets":0,"blocks":0,"deadline_misses":0,"clipped":0,"skipped_blocks":0,"streams_started":0,"streams_dropped":0,"refused":0,"malformed_unknown":0,"blocks_dropped":0,"events_dropped":0,"listeners":0,"listeners_dropped":0},"sources":[]}"#
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

    #[test]
    fn gains_in_db() {
        let s = state_with("127.0.0.1:5000");
        let patch = |json: &str| serde_json::from_str::<SourcePatch>(json).unwrap();
        let by = "127.0.0.1:9000".parse().unwrap();
        let volume = |json: &str| match s.check_source("127.0.0.1:5000", patch(json), by).as_deref()
        {
            Ok([Change::Source(_, c, _)]) => Ok(c.volume),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.status()),
        };
        assert!((volume(r#"{"volume_db":-6}"#).unwrap() - 0.501_187).abs() < 1e-5);
        assert_eq!(volume(r#"{"volume_db":0}"#), Ok(1.0));
        assert_eq!(volume(r#"{"volume_db":6.0206}"#), Ok(2.0));
        assert_eq!(volume(r#"{"volume_db":null}"#), Ok(0.0));
        assert_eq!(volume(r#"{"volume_db":-100}"#), Ok(0.0));
        assert_eq!(volume(r#"{"volume_db":-1e30}"#), Ok(0.0));
        assert_eq!(volume(r#"{"volume_db":6.1}"#), Err(400));
        assert_eq!(volume(r#"{"volume_db":-6,"volume":0.5}"#), Err(400));
        assert!(serde_json::from_str::<SourcePatch>(r#"{"volume_db":"-inf"}"#).is_err());
        let master = |json: &str| {
            s.check_master(serde_json::from_str(json).unwrap(), by)
                .map_err(|e| e.status())
        };
        assert_eq!(master(r#"{"volume_db":null}"#), Ok(Change::Master(0.0, by)));
        assert_eq!(master(r#"{"volume":0.5}"#), Ok(Change::Master(0.5, by)));
        assert_eq!(master(r#"{"volume":0.5,"volume_db":0}"#), Err(400));
        assert_eq!(master("{}"), Err(400));
        assert_eq!(volume_db(0.5), Some(-6.02));
        assert_eq!(volume_db(0.0), None);
    }

    #[test]
    fn meters_carry_both_peaks_health_and_every_counter() {
        let mut s = state_with("127.0.0.1:5000");
        let addr: SourceId = "127.0.0.1:5000".parse().unwrap();
        let stats = SourceStats {
            received: 1000,
            overflow: 312,
            drift_drops: 3,
            ..Default::default()
        };
        let snapshot = NodeSnapshot {
            sources: vec![(addr, stats)],
            ..Default::default()
        };
        let meters = Meters {
            sources: vec![(addr, 0.0)],
            ..Default::default()
        };
        s.tick(Duration::from_secs(1), snapshot, &meters, &[(addr, 0.25)]);
        let json = s.meters_message(&meters).to_json();
        assert!(json.contains(r#""peak":0.0,"input_peak":0.25,"health":{"level":"bad","reasons":["overflow: 312 packets in the last 10 s"]}"#), "{json}");
        assert!(
            json.contains(r#""overflow":312"#) && json.contains(r#""drift_drops":3"#),
            "{json}"
        );
        assert!(json.contains(r#""node":{"streams":1,"#), "{json}");
        let one = serde_json::to_string(&s.source("127.0.0.1:5000").unwrap()).unwrap();
        assert!(one.contains(r#""input_peak":0.25"#), "{one}");
        assert_eq!(s.source("127.0.0.1:5001").unwrap_err().status(), 404);
        assert_eq!(s.source("ssrc:1a2b3c4d").unwrap_err().status(), 404);
    }
}
