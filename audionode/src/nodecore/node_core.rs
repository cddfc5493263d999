//! `NodeCore`: the whole node as a sans-IO state machine, in the shape of
//! str0m's `Rtc`. Inputs go in with [`NodeCore::handle_input`]; what the
//! node wants done comes out of [`NodeCore::poll_output`].
//!
//! **The drain rule:** after handing in inputs (one, or a received batch
//! of packets and the pending commands), call `poll_output` until it
//! returns [`Output::Timeout`], and never wait before that; then wait as
//! it says (or until input arrives) and feed [`Input::Timeout`] with the
//! time. Blocks are mixed when `poll_output` is called, so a batch's
//! packets all reach the buffers before the block they are due in. Every timer
//! lives in here: the mixing deadlines, the housekeeping (timeouts, burst
//! summaries, the event budget), the stats interval and the wake-up
//! planning; the run loop only pumps. The core never touches a socket, a
//! thread or the clock, so [`super::sim`] drives it in simulated time.

use std::net::SocketAddr;
use std::time::Duration;

use super::budget::EventBudget;
use super::engine::{Engine, EngineConfig, SourceControls};
use super::event::{Event, EventKind, Events, LoggedSetting, NamedBy, Setting, NODE};
use super::ingress::{Malformed, SourcePacket};
use super::name::SourceName;
use super::source::ReceiverReport;
use super::source_id::SourceId;
use super::stats::StatsFrame;
use super::wakeup::{Wait, WakePlanner};

/// How often timeouts are checked and burst summaries written.
pub const HOUSEKEEPING: Duration = Duration::from_millis(10);
/// How often a stats frame is published (meters cover the last three).
pub const STATS_INTERVAL: Duration = Duration::from_millis(20);
/// Events the core holds between two drains.
const EVENT_QUEUE: usize = 8192;
/// How often receiver reports go to each RTP sender (RFC 3550's minimum).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the core looks for receiver reports that are due.
const REPORT_CHECK: Duration = Duration::from_millis(100);

/// Settings of the core.
#[derive(Debug, Clone, Copy)]
pub struct CoreConfig {
    /// The mixing engine.
    pub engine: EngineConfig,
    /// Event-log lines per second for the whole node (0: unlimited).
    pub log_lines_per_second: u32,
    /// Longest wait while idle (bounds the reaction to a stop request).
    pub idle_wait: Duration,
}

/// A change for the mixer, from the control surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ControlCommand {
    /// New master volume.
    Master(f32),
    /// New controls of one source.
    Source(SourceId, SourceControls),
    /// An operator named a source (an empty name removes it).
    Name {
        /// The source.
        id: SourceId,
        /// Its name.
        name: SourceName,
        /// The operator's address.
        by: SocketAddr,
    },
    /// Write an operator's change to the event log (the control surface
    /// decides which changes are worth a line; the change itself came
    /// before as `Master` or `Source`).
    Log(LoggedSetting),
}

/// What the node takes from an RTCP packet of an RTP sender.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RtcpInput {
    /// A sender report (echoed back in receiver reports).
    SenderReport {
        /// The sender.
        ssrc: u32,
        /// The middle 32 bits of its NTP time.
        ntp_middle: u32,
    },
    /// The sender's name (SDES NAME, or CNAME when it sends no NAME).
    Name {
        /// The sender.
        ssrc: u32,
        /// Its name.
        name: SourceName,
        /// It is the CNAME (no NAME came with it): a NAME, once seen,
        /// is not replaced by a CNAME.
        cname: bool,
    },
    /// The sender leaves (BYE).
    Bye {
        /// The sender.
        ssrc: u32,
    },
}

/// What goes into the core.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A source packet that arrived at `arrived` (the kernel's timestamp)
    /// and was read at `read_at` (the core's clock advances to it), from
    /// the source `from`.
    Packet {
        /// Arrival time.
        arrived: Duration,
        /// When the node read it.
        read_at: Duration,
        /// The source's key.
        from: SocketAddr,
        /// The decoded packet.
        packet: SourcePacket<'a>,
    },
    /// A datagram that did not decode.
    Malformed {
        /// Arrival time.
        arrived: Duration,
        /// Its sender.
        from: SocketAddr,
        /// Its length in bytes.
        len: usize,
        /// Why.
        why: Malformed,
    },
    /// A control change.
    Command(ControlCommand),
    /// Part of an RTCP packet from `from`, arrived at `arrived`.
    Rtcp {
        /// Arrival time.
        arrived: Duration,
        /// Its sender's address.
        from: SocketAddr,
        /// What it says.
        info: RtcpInput,
    },
    /// A browser sender's own name, given when it opened its stream
    /// (`/ws/send`): names the source `from` as RTCP SDES NAME names an
    /// RTP source (an operator's name stays).
    SenderName {
        /// When it arrived.
        arrived: Duration,
        /// The sender's address (the source's key).
        from: SocketAddr,
        /// Its name.
        name: SourceName,
    },
    /// The sender `from` ended its stream (a browser closed its WebSocket):
    /// it is dropped with `reason=closed` once what it sent has played, as
    /// after RTCP BYE.
    Closed {
        /// When it closed.
        arrived: Duration,
        /// The sender's address (the source's key).
        from: SocketAddr,
    },
    /// Time passed: `now`, and the datagrams received since the last
    /// timeout input (`batch_full`: the last receive filled its batch).
    Timeout {
        /// The time.
        now: Duration,
        /// Datagrams received since the previous `Timeout`.
        received: usize,
        /// Whether the last receive filled every slot (more may be queued).
        batch_full: bool,
    },
    /// The node is stopping: every stream is dropped with its counters.
    Shutdown {
        /// The time.
        now: Duration,
    },
}

/// What the core wants done.
#[derive(Debug)]
pub enum Output<'a> {
    /// A mixed block of interleaved stereo samples: send it.
    Block(&'a [i16]),
    /// An event for the event log (already within the budget).
    Event(Event),
    /// A stats frame is due: fill one with [`NodeCore::write_stats`] and
    /// publish it.
    Stats,
    /// An RTCP receiver report block for one RTP sender: send it.
    Report(ReceiverReport),
    /// Nothing more until this wake-up (or until input arrives).
    Timeout(Wake),
}

/// When and how the run loop waits next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    /// Until when (node time).
    pub at: Duration,
    /// How.
    pub mode: WaitMode,
}

/// How the run loop waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// Do not wait: receive at once.
    Now,
    /// Sleep until `at`, then take what is queued (heavy load).
    Sleep,
    /// Wait on the sockets until `at` or a datagram (light load).
    Socket,
}

/// The node.
#[derive(Debug)]
pub struct NodeCore {
    config: CoreConfig,
    engine: Engine,
    now: Duration,
    events: Events,
    /// An event held back while the budget's summary goes first.
    held: Option<Event>,
    budget: EventBudget,
    planner: WakePlanner,
    batch_full: bool,
    next_housekeeping: Duration,
    next_stats: Duration,
    stats_due: bool,
    next_report_check: Duration,
    /// Receiver reports due, sent one per poll (allocated for every slot).
    reports: Vec<ReceiverReport>,
    reports_len: usize,
}

impl NodeCore {
    /// A core with all its memory allocated.
    pub fn new(config: CoreConfig) -> Self {
        Self {
            engine: Engine::new(config.engine),
            config,
            now: Duration::ZERO,
            events: Events::with_capacity(EVENT_QUEUE),
            held: None,
            budget: EventBudget::new(config.log_lines_per_second),
            planner: WakePlanner::default(),
            batch_full: false,
            next_housekeeping: Duration::ZERO,
            next_stats: Duration::ZERO,
            stats_due: false,
            next_report_check: Duration::ZERO,
            reports: vec![
                ReceiverReport {
                    listener: 0,
                    to: SocketAddr::from(([0, 0, 0, 0], 0)),
                    block: proto::rtcp::ReportBlock::default(),
                };
                config.engine.max_sources
            ],
            reports_len: 0,
        }
    }

    /// The mixing engine (for inspection).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Packet {
                arrived,
                read_at,
                from,
                packet,
            } => {
                self.advance(read_at);
                self.engine
                    .on_packet(arrived, from, &packet, &mut self.events);
            }
            Input::Malformed {
                arrived,
                from,
                len,
                why,
            } => {
                self.advance(arrived);
                self.engine
                    .on_malformed(arrived, from, len, why, &mut self.events);
            }
            Input::Command(ControlCommand::Master(v)) => self.engine.set_master(v),
            Input::Command(ControlCommand::Source(id, controls)) => {
                // The source may have left meanwhile; then there is nothing to do.
                self.engine.set_controls(id, controls);
            }
            Input::Command(ControlCommand::Log(logged)) => {
                let (source, kind) = match logged.setting {
                    Setting::Master(volume) => (
                        NODE,
                        EventKind::MasterVolume {
                            volume,
                            by: logged.by,
                        },
                    ),
                    Setting::Source(id, controls) => (
                        id,
                        EventKind::Controls {
                            controls,
                            by: logged.by,
                        },
                    ),
                };
                self.events.push(Event {
                    at: self.now,
                    source,
                    kind,
                });
            }
            Input::Command(ControlCommand::Name { id, name, by }) => {
                self.engine
                    .set_name(self.now, id, name, NamedBy::Operator(by), &mut self.events);
            }
            Input::Rtcp {
                arrived,
                from,
                info,
            } => {
                self.advance(arrived);
                match info {
                    RtcpInput::SenderReport { ssrc, ntp_middle } => self
                        .engine
                        .on_sender_report(arrived, ssrc, ntp_middle, from),
                    RtcpInput::Name { ssrc, name, cname } => {
                        self.engine
                            .set_sender_name(arrived, ssrc, name, cname, &mut self.events);
                    }
                    RtcpInput::Bye { ssrc } => self.engine.on_bye(ssrc),
                }
            }
            Input::SenderName {
                arrived,
                from,
                name,
            } => {
                self.advance(arrived);
                self.engine.set_name(
                    arrived,
                    SourceId::Addr(from),
                    name,
                    NamedBy::Browser,
                    &mut self.events,
                );
            }
            Input::Closed { arrived, from } => {
                self.advance(arrived);
                self.engine.close(SourceId::Addr(from));
            }
            Input::Timeout {
                now,
                received,
                batch_full,
            } => {
                self.advance(now);
                self.planner.on_batch(received);
                self.batch_full = batch_full;
                self.timers();
            }
            Input::Shutdown { now } => {
                self.advance(now);
                self.engine.shutdown(self.now, &mut self.events);
                self.flush_budget();
                self.stats_due = true;
            }
        }
    }

    /// The next thing to do; see the drain rule in the module docs.
    pub fn poll_output(&mut self) -> Output<'_> {
        if self.engine.mix_due(self.now, &mut self.events) {
            self.planner.on_block();
            return Output::Block(self.engine.block());
        }
        if let Some(event) = self.next_event() {
            return Output::Event(event);
        }
        if std::mem::take(&mut self.stats_due) {
            return Output::Stats;
        }
        if self.reports_len > 0 {
            self.reports_len -= 1;
            return Output::Report(self.reports[self.reports_len]);
        }
        Output::Timeout(self.wake())
    }

    /// Fills `frame` (a frame made with room for `max_sources` rows) with
    /// the counters, controls and meters; after [`Output::Stats`].
    pub fn write_stats(&mut self, frame: &mut StatsFrame) {
        self.engine.write_stats(self.now, frame);
        frame.node.events_over_budget = self.budget.cut_total();
        frame.node.events_dropped = self.events.dropped();
    }

    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
    }

    fn timers(&mut self) {
        if self.now >= self.next_housekeeping {
            self.next_housekeeping = self.now + HOUSEKEEPING;
            self.engine.expire(self.now, &mut self.events);
            self.flush_budget();
        }
        if self.now >= self.next_stats {
            self.next_stats = self.now + STATS_INTERVAL;
            self.stats_due = true;
        }
        if self.now >= self.next_report_check && self.reports_len == 0 {
            self.next_report_check = self.now + REPORT_CHECK;
            self.reports_len =
                self.engine
                    .receiver_reports(self.now, REPORT_INTERVAL, &mut self.reports);
        }
    }

    fn flush_budget(&mut self) {
        if let Some(kind) = self.budget.flush(self.now) {
            self.push_summary(kind);
        }
    }

    fn push_summary(&mut self, kind: super::event::EventKind) {
        let summary = Event {
            at: self.now,
            source: NODE,
            kind,
        };
        // Ahead of anything held back, so the order of lines is kept.
        if let Some(held) = self.held.replace(summary) {
            self.events.push(held);
        }
    }

    fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.held.take() {
            return Some(event);
        }
        while let Some(event) = self.events.pop() {
            let (admit, summary) = self.budget.admit(self.now, &event.kind);
            if let Some(kind) = summary {
                if admit {
                    self.held = Some(event);
                }
                return Some(Event {
                    at: self.now,
                    source: NODE,
                    kind,
                });
            }
            if admit {
                return Some(event);
            }
        }
        None
    }

    fn wake(&self) -> Wake {
        let until_deadline = self
            .engine
            .next_deadline()
            .map(|deadline| deadline.saturating_sub(self.now));
        let (mode, wait) =
            match self
                .planner
                .plan(self.batch_full, until_deadline, self.config.idle_wait)
            {
                Wait::Now => (WaitMode::Now, Duration::ZERO),
                Wait::Sleep(d) => (WaitMode::Sleep, d),
                Wait::Socket(d) => (WaitMode::Socket, d),
            };
        Wake {
            at: self.now + wait,
            mode,
        }
    }
}
