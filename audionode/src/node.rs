//! The node's run loop: the thin IO edge that pumps the [`NodeCore`].
//! One thread, named `mix`, receives datagrams in batches (with their
//! kernel arrival times), decodes them at the edge ([`ingress`]), feeds
//! them to the core with the TCP sources' packets and the control
//! commands, and drains the core's outputs until it asks to wait: blocks
//! go to every destination with `sendto`, events, blocks for the TCP
//! fan-out and stats frames into the [`outbox`](crate::outbox). In steady
//! state it makes no system call but `recvmmsg`, `ppoll`, `sendto`, the
//! clock and, under heavy load, `clock_nanosleep`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::batch_recv::{self, BatchReceiver};
use crate::config::Config;
use crate::control::{HttpServer, Hub};
use crate::event_log::{self, EventLog};
use crate::nodecore::ingress::{self, Samples, SourcePacket};
use crate::nodecore::stats::NodeSnapshot;
use crate::nodecore::{ControlCommand, CoreConfig, Input, NodeCore, Output, WaitMode};
use crate::outbox::{self, Outbox, StatsReader};
use crate::realtime;
use crate::tcp_source::{self, TcpPacket};
use proto::{Spec, TcpServer, TcpServerConfig};

/// Frames per output datagram: 368 × 4 bytes = 1472, the largest payload
/// that does not fragment on Ethernet.
pub const FRAMES_PER_DATAGRAM: usize = proto::MAX_UNFRAGMENTED_PAYLOAD / 4;

/// Longest the loop sleeps while idle (bounds the reaction to a stop request).
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Longest the loop sleeps when TCP sources may hand it packets.
const TCP_SOURCE_WAIT: Duration = Duration::from_millis(5);
/// Datagrams taken per recvmmsg call.
const BATCH: usize = 64;
/// Control commands queued between the control surface and the mixer.
pub const COMMAND_RING: usize = 1024;

/// A running node.
pub struct NodeHandle {
    local_addr: SocketAddr,
    http: Option<HttpServer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    helpers: Vec<JoinHandle<()>>,
    tcp_listen_addr: Option<SocketAddr>,
    stats: StatsReader,
}

impl NodeHandle {
    /// The address sources send to (with the real port when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the mix is served over TCP, with `--tcp-listen`.
    pub fn tcp_listen_addr(&self) -> Option<SocketAddr> {
        self.tcp_listen_addr
    }

    /// The control surface's address, unless it is off.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    /// The latest published counters: at most 20 ms old while streams
    /// play, up to 50 ms when the node is idle.
    pub fn snapshot(&self) -> NodeSnapshot {
        self.stats.read(|frame| frame.snapshot())
    }

    /// A flag that stops the node when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Waits until the node stops (after the stop flag is set).
    pub fn wait(mut self) -> anyhow::Result<()> {
        self.join()
    }

    /// Stops the node: every stream is dropped with its final counters in
    /// the event log, which is flushed. Returns the final counters.
    pub fn stop(mut self) -> anyhow::Result<NodeSnapshot> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()?;
        Ok(self.snapshot())
    }

    fn join(&mut self) -> anyhow::Result<()> {
        let result = match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the node's thread panicked"))
                .and_then(|r| r),
            None => Ok(()),
        };
        // The stop flag is set once the mixing thread has ended: the TCP
        // threads see it too.
        self.stop.store(true, Ordering::SeqCst);
        self.http.take();
        for t in self.helpers.drain(..) {
            let _ = t.join();
        }
        result
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.join();
    }
}

/// Binds the sockets, opens the event log and starts the node's threads.
/// Every start-up problem (occupied port, unwritable log) is an error here.
pub fn start(config: Config) -> anyhow::Result<NodeHandle> {
    let socket = bind_listen(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = socket.local_addr()?;
    let out = output_socket(&socket, local_addr, &config.dests)?;
    let log_file = event_log::open(&config.log_file)
        .with_context(|| format!("cannot write event log {}", config.log_file.display()))?;
    let rate = config.engine.source.rate;
    let tcp_out = match config.tcp_listen {
        Some(addr) => {
            let server = TcpServer::bind(addr, TcpServerConfig::default())
                .with_context(|| format!("cannot serve the mix over TCP on {addr}"))?;
            let spec = Spec::int16(2, rate);
            server.set_new_client_message(Some(&spec.to_bytes()))?;
            log::info!("serving the mix over TCP on {}", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let tcp_listen_addr = tcp_out.as_ref().map(TcpServer::local_addr);
    // Half a second of stereo for the TCP fan-out.
    let block_ring = if tcp_out.is_some() { rate as usize } else { 0 };
    let (outbox, readers) = outbox::outbox(config.engine.max_sources, block_ring);
    let stop = Arc::new(AtomicBool::new(false));
    let mut helpers = Vec::new();
    let event_log = EventLog::start(log_file, &config.log_file, readers.events)
        .context("cannot start the event-log thread")?;
    if let (Some(server), Some(blocks)) = (tcp_out, readers.blocks) {
        let block_time =
            Duration::from_secs_f64(config.engine.source.block_frames as f64 / f64::from(rate));
        helpers.push(outbox::spawn_tcp_fanout(
            blocks,
            server,
            block_time,
            Arc::clone(&stop),
        )?);
    }
    let (commands_tx, commands) = rtrb::RingBuffer::new(COMMAND_RING);
    let http = match &config.http {
        Some(settings) => {
            let hub = Hub::new(commands_tx);
            let server = HttpServer::start(settings, hub, readers.stats.clone(), local_addr)
                .with_context(|| {
                    format!("cannot serve the control surface on {}", settings.addr)
                })?;
            log::info!("mixing desk on http://{}/", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let epoch = Instant::now();
    let mut tcp_in = Vec::new();
    for server in &config.tcp_sources {
        let (ring, rx) = rtrb::RingBuffer::new(tcp_source::RING_PACKETS);
        helpers.push(tcp_source::spawn(
            server.clone(),
            rate,
            ring,
            epoch,
            Arc::clone(&stop),
        )?);
        tcp_in.push(rx);
    }
    let parts = LoopParts {
        config,
        socket,
        out,
        outbox,
        event_log,
        commands,
        tcp_in,
        epoch,
        stop: Arc::clone(&stop),
    };
    let thread = thread::Builder::new()
        .name("mix".into())
        .spawn(move || run_loop(parts))?;
    Ok(NodeHandle {
        local_addr,
        http,
        helpers,
        tcp_listen_addr,
        stop,
        thread: Some(thread),
        stats: readers.stats,
    })
}

/// The socket the mix is sent from. It is the listening socket itself when
/// the address families allow: recorders lock onto the sender's address,
/// and the listening address is the one that stays the same when the node
/// restarts. Otherwise a socket of the destinations' family on a free port.
fn output_socket(
    listen: &UdpSocket,
    local: SocketAddr,
    dests: &[SocketAddr],
) -> anyhow::Result<UdpSocket> {
    let same_family = dests.iter().all(|d| d.is_ipv4() == local.is_ipv4());
    if same_family {
        return listen
            .try_clone()
            .context("cannot share the listening socket for output");
    }
    let any: SocketAddr = if dests.iter().all(SocketAddr::is_ipv4) {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    UdpSocket::bind(any).context("cannot open the output socket")
}

fn bind_listen(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Room for bursts from many sources while a block is being mixed.
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    // Without kernel timestamps arrival times are taken when a batch is
    // drained: coarser, but everything still works.
    if let Err(e) = batch_recv::enable_arrival_timestamps(&socket) {
        log::warn!("no kernel arrival timestamps ({e}); timing packets when they are read");
    }
    Ok(socket)
}

/// Everything the run loop owns.
struct LoopParts {
    config: Config,
    socket: UdpSocket,
    out: UdpSocket,
    outbox: Outbox,
    event_log: EventLog,
    commands: rtrb::Consumer<ControlCommand>,
    tcp_in: Vec<rtrb::Consumer<TcpPacket>>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
}

fn run_loop(parts: LoopParts) -> anyhow::Result<()> {
    let LoopParts {
        config,
        socket,
        out,
        mut outbox,
        event_log,
        mut commands,
        mut tcp_in,
        epoch,
        stop,
    } = parts;
    if let Some(priority) = config.rt_priority {
        match realtime::promote_current_thread(priority) {
            Ok(()) => log::info!("mixing thread runs at SCHED_FIFO priority {priority}"),
            Err(e) => log::info!(
                "real-time priority {priority} not permitted ({e}); mixing at normal priority \
                 (grant CAP_SYS_NICE or RLIMIT_RTPRIO, or pass --rt-priority 0 to silence this)"
            ),
        }
    }
    log::info!(
        "listening on {}, sending to {}, event log {}",
        socket.local_addr()?,
        config
            .dests
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        config.log_file.display()
    );
    let mut core = NodeCore::new(CoreConfig {
        engine: config.engine,
        log_lines_per_second: config.log_lines_per_second,
        idle_wait: if tcp_in.is_empty() {
            IDLE_WAIT
        } else {
            TCP_SOURCE_WAIT
        },
    });
    let max_bytes = config.engine.max_datagram_bytes;
    let mut rx = BatchReceiver::new(BATCH, max_bytes + 1);
    let mut sender = MixSender::new(out, config.dests.clone());
    let mut received = 0;
    let mut batch_full = false;
    while !stop.load(Ordering::Relaxed) {
        core.handle_input(Input::Timeout {
            now: epoch.elapsed(),
            received: std::mem::take(&mut received),
            batch_full,
        });
        while let Ok(command) = commands.pop() {
            core.handle_input(Input::Command(command));
        }
        let wake = drain(&mut core, &mut sender, &mut outbox, epoch);
        let wait = wake.at.saturating_sub(epoch.elapsed());
        let n = match wake.mode {
            WaitMode::Now => rx.recv(&socket, None),
            WaitMode::Sleep => {
                thread::sleep(wait);
                rx.recv(&socket, None)
            }
            WaitMode::Socket => rx.recv(&socket, Some(wait)),
        }
        .context("receiving datagrams")?;
        batch_full = n == BATCH;
        received += n;
        let now = epoch.elapsed();
        for i in 0..n {
            let (from, bytes) = rx.get(i);
            // When it arrived, not when this batch was taken.
            let arrived = now.saturating_sub(rx.age(i).unwrap_or_default());
            let input = match ingress::decode_mono(bytes, max_bytes) {
                Ok(packet) => Input::Packet {
                    arrived,
                    read_at: now,
                    from,
                    packet,
                },
                Err(why) => Input::Malformed {
                    arrived,
                    from,
                    len: bytes.len(),
                    why,
                },
            };
            core.handle_input(input);
        }
        for ring in &mut tcp_in {
            while let Ok(packet) = ring.pop() {
                core.handle_input(Input::Packet {
                    arrived: packet.handed_over,
                    read_at: now,
                    from: packet.from,
                    packet: SourcePacket {
                        seq: packet.seq,
                        samples: Samples::Native(packet.samples()),
                    },
                });
            }
        }
    }
    core.handle_input(Input::Shutdown {
        now: epoch.elapsed(),
    });
    drain(&mut core, &mut sender, &mut outbox, epoch);
    let c = core.engine().counters();
    log::info!(
        "stopped: {} packets, {} blocks mixed, {} deadline misses, {} skipped blocks, {} clipped samples, {} streams",
        c.packets,
        c.blocks,
        c.deadline_misses,
        c.skipped_blocks,
        c.clipped,
        c.streams_started
    );
    event_log.close().context("writing the event log")?;
    Ok(())
}

/// Drains the core's outputs until it asks to wait (the drain rule).
fn drain(
    core: &mut NodeCore,
    sender: &mut MixSender,
    outbox: &mut Outbox,
    epoch: Instant,
) -> crate::nodecore::Wake {
    loop {
        match core.poll_output() {
            Output::Block(block) => {
                sender.send(block, epoch.elapsed(), outbox);
                outbox.push_block(block);
            }
            Output::Event(event) => outbox.push_event(event),
            Output::Stats => outbox.publish_stats(core),
            Output::Timeout(wake) => return wake,
        }
    }
}

/// Sends mixed blocks to every destination in datagrams of at most
/// [`FRAMES_PER_DATAGRAM`] frames. A destination that fails is reported
/// once per burst of failures, through the event log.
struct MixSender {
    socket: UdpSocket,
    dests: Vec<SocketAddr>,
    buf: Vec<u8>,
    failing_since: Option<Duration>,
    errors: u64,
}

impl MixSender {
    fn new(socket: UdpSocket, dests: Vec<SocketAddr>) -> Self {
        Self {
            socket,
            dests,
            buf: vec![0; proto::MAX_UNFRAGMENTED_PAYLOAD],
            failing_since: None,
            errors: 0,
        }
    }

    fn send(&mut self, interleaved: &[i16], now: Duration, outbox: &mut Outbox) {
        let mut ok = true;
        for frames in interleaved.chunks(2 * FRAMES_PER_DATAGRAM) {
            let Ok(len) = proto::encode_stereo(frames, &mut self.buf) else {
                continue;
            };
            for dest in &self.dests {
                if let Err(e) = self.socket.send_to(&self.buf[..len], dest) {
                    ok = false;
                    self.errors += 1;
                    if self.failing_since.is_none() {
                        self.failing_since = Some(now);
                        outbox.push_event(crate::nodecore::event::Event {
                            at: now,
                            source: *dest,
                            kind: crate::nodecore::event::EventKind::SendFailed {
                                errno: e.raw_os_error().unwrap_or(0),
                            },
                        });
                    }
                }
            }
        }
        if ok {
            if let Some(since) = self.failing_since.take() {
                outbox.push_event(crate::nodecore::event::Event {
                    at: now,
                    source: crate::nodecore::event::NODE,
                    kind: crate::nodecore::event::EventKind::SendRecovered {
                        errors: std::mem::take(&mut self.errors),
                        over_ms: (now - since).as_millis() as u64,
                    },
                });
            }
        }
    }
}
