//! `Sim`: the whole [`NodeCore`] in simulated time, for tests. Packets are
//! delivered at chosen instants, or sent through audioimpair's sans-IO
//! engine as a seeded network emulator ([`Netem`]); the core is pumped by
//! the drain rule exactly as the run loop pumps it, blocks are mixed at
//! their deadlines and kept for sample-by-sample comparison. An hour of
//! audio runs in seconds, with no socket and no sleep.

use std::net::SocketAddr;
use std::time::Duration;

use audioimpair::engine::Engine as ImpairEngine;
use audioimpair::impairment::ImpairmentConfig;

use super::engine::EngineConfig;
use super::event::{Event, EventKind};
use super::ingress;
use super::stats::{Meters, NodeSnapshot, StatsFrame};
use super::{ControlCommand, CoreConfig, Input, NodeCore, Output};

/// A simulated node.
pub(crate) struct Sim {
    pub(crate) core: NodeCore,
    /// Interleaved stereo output, every block mixed so far.
    pub(crate) out: Vec<i16>,
    /// Every event the core emitted.
    pub(crate) events: Vec<Event>,
    /// Receiver reports the core asked to send.
    pub(crate) reports: Vec<crate::nodecore::source::ReceiverReport>,
    /// Whether blocks are kept in `out`.
    pub(crate) keep_output: bool,
    frame: StatsFrame,
    now: Duration,
}

impl Sim {
    /// A node with `config` and no event budget.
    pub(crate) fn new(config: EngineConfig) -> Self {
        Self::with_budget(config, 0)
    }

    /// A node whose event log may write `lines_per_second`.
    pub(crate) fn with_budget(config: EngineConfig, lines_per_second: u32) -> Self {
        Self {
            core: NodeCore::new(CoreConfig {
                engine: config,
                log_lines_per_second: lines_per_second,
                idle_wait: Duration::from_millis(50),
            }),
            out: Vec::new(),
            events: Vec::new(),
            reports: Vec::new(),
            keep_output: true,
            frame: StatsFrame::new(config.max_sources),
            now: Duration::ZERO,
        }
    }

    fn drain(&mut self) {
        loop {
            match self.core.poll_output() {
                Output::Block(block) => {
                    if self.keep_output {
                        self.out.extend_from_slice(block);
                    }
                }
                Output::Event(event) => self.events.push(event),
                Output::Stats => self.core.write_stats(&mut self.frame),
                Output::Report(report) => self.reports.push(report),
                Output::Timeout(_) => return,
            }
        }
    }

    fn tick(&mut self, now: Duration) {
        self.now = self.now.max(now);
        self.core.handle_input(Input::Timeout {
            now: self.now,
            received: 0,
            batch_full: false,
        });
        self.drain();
    }

    /// Mixes every block due up to `t` at its own deadline, then runs the
    /// timers at `t`.
    pub(crate) fn advance_to(&mut self, t: Duration) {
        while let Some(deadline) = self.core.engine().next_deadline() {
            if deadline > t {
                break;
            }
            self.tick(deadline);
        }
        self.tick(t);
    }

    /// Like [`Sim::advance_to`], but as a node held off the CPU: nothing
    /// runs until `t`.
    pub(crate) fn stall_until(&mut self, t: Duration) {
        self.tick(t);
    }

    /// Delivers a datagram from `from` that arrives (and is read) at `t`.
    pub(crate) fn deliver(&mut self, t: Duration, from: SocketAddr, bytes: &[u8]) {
        self.advance_to(t);
        let max = self.core.config().engine.max_datagram_bytes;
        let input = match ingress::decode_mono(bytes, max) {
            Ok(packet) => Input::Packet {
                arrived: t,
                read_at: t,
                from,
                packet,
            },
            Err(why) => Input::Malformed {
                arrived: t,
                from,
                len: bytes.len(),
                why,
            },
        };
        self.core.handle_input(input);
        self.drain();
    }

    /// Delivers an RTP datagram (L16, the default payload-type map at the
    /// node's rate) from `from` that arrives at `t`.
    pub(crate) fn deliver_rtp(&mut self, t: Duration, from: SocketAddr, bytes: &[u8]) {
        self.advance_to(t);
        let engine = self.core.config().engine;
        let map = proto::rtp_map::RtpMap::defaults_for(engine.source.rate);
        let input = match ingress::decode_rtp(
            bytes,
            &map,
            engine.source.rate,
            engine.max_datagram_bytes,
            0,
        ) {
            Ok(packet) => Input::Packet {
                arrived: t,
                read_at: t,
                from,
                packet,
            },
            Err(why) => Input::Malformed {
                arrived: t,
                from,
                len: bytes.len(),
                why,
            },
        };
        self.core.handle_input(input);
        self.drain();
    }

    /// Hands in what an RTCP packet from `from` said, at `t`.
    pub(crate) fn rtcp(&mut self, t: Duration, from: SocketAddr, info: super::RtcpInput) {
        self.advance_to(t);
        self.core.handle_input(Input::Rtcp {
            arrived: t,
            from,
            info,
        });
        self.drain();
    }

    /// Hands in `input` at `t` (a browser sender's packet, name or close).
    pub(crate) fn input(&mut self, t: Duration, input: Input<'_>) {
        self.advance_to(t);
        self.core.handle_input(input);
        self.drain();
    }

    /// Output frames' right channel.
    pub(crate) fn right(&self) -> Vec<i16> {
        self.out.iter().skip(1).step_by(2).copied().collect()
    }

    /// Applies a control change.
    pub(crate) fn command(&mut self, command: ControlCommand) {
        self.core.handle_input(Input::Command(command));
        self.drain();
    }

    /// A fresh stats frame, as the control surface would read it.
    pub(crate) fn stats(&mut self) -> &StatsFrame {
        self.core.write_stats(&mut self.frame);
        &self.frame
    }

    /// The counters now.
    pub(crate) fn snapshot(&mut self) -> NodeSnapshot {
        self.stats().snapshot()
    }

    /// The meters of the last few stats windows.
    pub(crate) fn meters(&mut self) -> Meters {
        self.stats().meters()
    }

    /// The start frame of every new stream, restart and re-anchor.
    pub(crate) fn start_frames(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::NewStream { start_frame, .. }
                | EventKind::Restarted { start_frame, .. }
                | EventKind::Reanchored { start_frame, .. } => Some(start_frame),
                _ => None,
            })
            .collect()
    }

    /// The events' texts (without time and source).
    pub(crate) fn event_texts(&self) -> Vec<String> {
        self.events.iter().map(|e| e.kind.to_string()).collect()
    }

    /// Output frames' left channel.
    pub(crate) fn left(&self) -> Vec<i16> {
        self.out.iter().step_by(2).copied().collect()
    }
}

/// A seeded network between senders and the simulated node: audioimpair's
/// engine decides each datagram's fate and release time.
pub(crate) struct Netem {
    engine: ImpairEngine,
    clients: Vec<SocketAddr>,
    /// Whether the datagrams are RTP (else the original mono format).
    rtp: bool,
    /// The RTP sequence numbers delivered, in order (the ground truth
    /// lists only what decodes as the original format).
    pub(crate) delivered_rtp: Vec<u16>,
}

impl Netem {
    /// A network applying `config` from `seed`.
    pub(crate) fn new(config: ImpairmentConfig, seed: u64) -> Self {
        Self {
            engine: ImpairEngine::new(config, seed),
            clients: Vec::new(),
            rtp: false,
            delivered_rtp: Vec::new(),
        }
    }

    /// The same network carrying RTP datagrams to the node's RTP socket.
    pub(crate) fn rtp(self) -> Self {
        Self { rtp: true, ..self }
    }

    /// Sends `bytes` from `from` at `t`: first every datagram the network
    /// releases before `t` reaches the node.
    pub(crate) fn send(&mut self, sim: &mut Sim, t: Duration, from: SocketAddr, bytes: &[u8]) {
        self.release_until(sim, t);
        let client = match self.clients.iter().position(|&c| c == from) {
            Some(i) => i,
            None => {
                self.clients.push(from);
                self.engine.add_client(from, from)
            }
        };
        self.engine.on_datagram(t, client, bytes);
        self.release_until(sim, t);
    }

    /// Delivers every datagram released up to `t`, at its release time.
    pub(crate) fn release_until(&mut self, sim: &mut Sim, t: Duration) {
        while let Some(release) = self.engine.next_release() {
            if release > t {
                break;
            }
            let Some(datagram) = self.engine.pop_due(release) else {
                break;
            };
            let from = self.clients[datagram.client];
            if self.rtp {
                if let Ok(p) = proto::rtp::RtpPacket::decode(&datagram.payload) {
                    self.delivered_rtp.push(p.seq);
                }
                sim.deliver_rtp(datagram.release, from, &datagram.payload);
            } else {
                sim.deliver(datagram.release, from, &datagram.payload);
            }
            self.engine.on_sent(datagram, true);
        }
    }

    /// What the network did, per source.
    pub(crate) fn truth(&self) -> audioimpair::truth::GroundTruth {
        self.engine.ground_truth()
    }
}
