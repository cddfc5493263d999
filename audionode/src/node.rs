//! The node's run loop: the thin IO edge around the [`Engine`]. One thread
//! drains the UDP socket in batches, feeds the engine, mixes each block at
//! its deadline (computed from the cumulative frame count, so the clock
//! never drifts), sends the mix to every destination, and hands events to
//! the event-log writer thread.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::batch_recv::{self, BatchReceiver};
use crate::config::Config;
use crate::control::{ControlCommand, HttpServer, Hub, Tick};
use crate::engine::{Engine, Meters};
use crate::event::Event;
use crate::event_log::EventLog;
use crate::realtime;
use crate::stats::NodeSnapshot;
use crate::tcp_source::{self, TcpPacket};
use crate::wakeup::{Wait, WakePlanner};
use proto::message::encode_samples;
use proto::{Spec, TcpServer, TcpServerConfig};

/// Frames per output datagram: 368 × 4 bytes = 1472, the largest payload
/// that does not fragment on Ethernet.
pub const FRAMES_PER_DATAGRAM: usize = proto::MAX_UNFRAGMENTED_PAYLOAD / 4;

/// Longest the loop sleeps while idle (bounds the reaction to a stop request).
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Longest the loop sleeps when TCP sources may hand it packets.
const TCP_SOURCE_WAIT: Duration = Duration::from_millis(5);
/// How often timeouts are checked and the snapshot is published.
const HOUSEKEEPING: Duration = Duration::from_millis(10);
/// How often meters and counters go to the control surface (20 Hz).
const TICK: Duration = Duration::from_millis(50);
/// Datagrams taken per recvmmsg call.
const BATCH: usize = 64;

/// A running node.
pub struct NodeHandle {
    local_addr: SocketAddr,
    http: Option<HttpServer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    tcp_threads: Vec<JoinHandle<()>>,
    tcp_listen_addr: Option<SocketAddr>,
    snapshot: Arc<Mutex<NodeSnapshot>>,
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

    /// The latest published counters (at most ~10 ms old).
    pub fn snapshot(&self) -> NodeSnapshot {
        self.snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        // The run loop sent its last tick; now the control surface can go.
        self.http.take();
        // TCP source threads watch the same stop flag.
        for t in self.tcp_threads.drain(..) {
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

/// Binds the sockets, opens the event log and starts the node's thread.
/// Every start-up problem (occupied port, unwritable log) is an error here.
pub fn start(config: Config) -> anyhow::Result<NodeHandle> {
    let socket = bind_listen(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = socket.local_addr()?;
    let out = output_socket(&socket, local_addr, &config.dests)?;
    let event_log = EventLog::open(&config.log_file)
        .with_context(|| format!("cannot write event log {}", config.log_file.display()))?;
    let (http, control) = match &config.http {
        Some(settings) => {
            let (commands_tx, commands) = crossbeam_channel::bounded(1024);
            let (ticks, ticks_rx) = tokio::sync::mpsc::channel(64);
            let hub = Hub::new(commands_tx);
            let server = HttpServer::start(settings, hub, ticks_rx).with_context(|| {
                format!("cannot serve the control surface on {}", settings.addr)
            })?;
            log::info!("mixing desk on http://{}/", server.local_addr());
            (Some(server), Some(ControlLink { commands, ticks }))
        }
        None => (None, None),
    };
    let tcp_out = match config.tcp_listen {
        Some(addr) => {
            let server = TcpServer::bind(addr, TcpServerConfig::default())
                .with_context(|| format!("cannot serve the mix over TCP on {addr}"))?;
            let spec = Spec::int16(2, config.engine.source.rate);
            server.set_new_client_message(Some(&spec.to_bytes()))?;
            log::info!("serving the mix over TCP on {}", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let tcp_listen_addr = tcp_out.as_ref().map(TcpServer::local_addr);
    let stop = Arc::new(AtomicBool::new(false));
    let (tcp_packets, tcp_in) = crossbeam_channel::bounded::<TcpPacket>(4096);
    let mut tcp_threads = Vec::new();
    for server in &config.tcp_sources {
        let rate = config.engine.source.rate;
        let packets = tcp_packets.clone();
        tcp_threads.push(tcp_source::spawn(
            server.clone(),
            rate,
            packets,
            Arc::clone(&stop),
        )?);
    }
    let tcp_in = (!config.tcp_sources.is_empty()).then_some(tcp_in);
    let snapshot = Arc::new(Mutex::new(NodeSnapshot::default()));
    let parts = LoopParts {
        sender: MixSender::new(out, config.dests.clone(), tcp_out),
        config,
        socket,
        event_log,
        control,
        tcp_in,
        stop: Arc::clone(&stop),
        snapshot: Arc::clone(&snapshot),
    };
    let thread = thread::Builder::new()
        .name("audionode".into())
        .spawn(move || run_loop(parts))?;
    Ok(NodeHandle {
        local_addr,
        http,
        tcp_threads,
        tcp_listen_addr,
        stop,
        thread: Some(thread),
        snapshot,
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

/// The run loop's side of the control surface.
struct ControlLink {
    commands: crossbeam_channel::Receiver<ControlCommand>,
    ticks: tokio::sync::mpsc::Sender<Tick>,
}

impl ControlLink {
    /// Applies every pending change (called before each block is mixed).
    fn apply_commands(&self, engine: &mut Engine) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                ControlCommand::Master(v) => engine.set_master(v),
                ControlCommand::Source(addr, controls) => {
                    // The source may have left meanwhile; then there is nothing to do.
                    engine.set_controls(addr, controls);
                }
            }
        }
    }

    /// Sends counters, meters and the active sources to the control surface.
    fn tick(&self, engine: &mut Engine, meters: &mut Meters) {
        let mut tick = Tick {
            master: engine.master(),
            ..Tick::default()
        };
        engine.snapshot(&mut tick.snapshot);
        engine.take_meters(meters);
        tick.meters = meters.clone();
        tick.controls.extend(engine.all_controls());
        // A full queue means the control thread is behind; the next tick
        // carries everything again.
        let _ = self.ticks.try_send(tick);
    }
}

/// Everything the run loop owns.
struct LoopParts {
    config: Config,
    socket: UdpSocket,
    sender: MixSender,
    event_log: EventLog,
    control: Option<ControlLink>,
    tcp_in: Option<crossbeam_channel::Receiver<TcpPacket>>,
    stop: Arc<AtomicBool>,
    snapshot: Arc<Mutex<NodeSnapshot>>,
}

fn run_loop(parts: LoopParts) -> anyhow::Result<()> {
    let LoopParts {
        config,
        socket,
        mut sender,
        event_log,
        control,
        tcp_in,
        stop,
        snapshot,
    } = parts;
    let idle_wait = if tcp_in.is_some() {
        TCP_SOURCE_WAIT
    } else {
        IDLE_WAIT
    };
    if let Some(priority) = config.rt_priority {
        match realtime::promote_current_thread(priority) {
            Ok(()) => log::info!("mixing thread runs at SCHED_FIFO priority {priority}"),
            Err(e) => log::info!(
                "real-time priority {priority} not permitted ({e}); mixing at normal priority \
                 (grant CAP_SYS_NICE or RLIMIT_RTPRIO, or pass --rt-priority 0 to silence this)"
            ),
        }
    }
    let started = Instant::now();
    let mut engine = Engine::new(config.engine);
    let mut rx = BatchReceiver::new(BATCH, config.engine.max_datagram_bytes + 1);
    let mut events: Vec<Event> = Vec::with_capacity(1024);
    let mut next_housekeeping = Duration::ZERO;
    let mut next_tick = Duration::ZERO;
    let mut meters = Meters::default();
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
    let mut planner = WakePlanner::default();
    let mut batch_was_full = false;
    while !stop.load(Ordering::Relaxed) {
        let now = started.elapsed();
        let until_deadline = engine
            .next_deadline()
            .map(|deadline| deadline.saturating_sub(now));
        let n = match planner.plan(batch_was_full, until_deadline, idle_wait) {
            Wait::Now => rx.recv(&socket, None),
            Wait::Sleep(d) => {
                thread::sleep(d);
                rx.recv(&socket, None)
            }
            Wait::Socket(d) => rx.recv(&socket, Some(d)),
        }
        .context("receiving datagrams")?;
        batch_was_full = n == BATCH;
        planner.on_batch(n);
        let now = started.elapsed();
        for i in 0..n {
            let (from, bytes) = rx.get(i);
            // When it arrived, not when this batch was taken.
            let arrived = now.saturating_sub(rx.age(i).unwrap_or_default());
            engine.on_datagram(arrived, from, bytes, &mut events);
        }
        if let Some(tcp_in) = &tcp_in {
            for packet in tcp_in.try_iter() {
                engine.on_datagram(now, packet.from, &packet.datagram, &mut events);
            }
        }
        if let Some(control) = &control {
            control.apply_commands(&mut engine);
        }
        while let Some(block) = engine.mix_due(started.elapsed()) {
            sender.send(block, started.elapsed());
            planner.on_block();
        }
        if now >= next_housekeeping {
            next_housekeeping = now + HOUSEKEEPING;
            engine.expire(now, &mut events);
            if let Ok(mut shared) = snapshot.try_lock() {
                engine.snapshot(&mut shared);
            }
        }
        if let Some(control) = &control {
            if now >= next_tick {
                next_tick = now + TICK;
                control.tick(&mut engine, &mut meters);
            }
        }
        for event in events.drain(..) {
            event_log.log(event);
        }
    }
    let now = started.elapsed();
    engine.shutdown(now, &mut events);
    if let Some(control) = &control {
        control.tick(&mut engine, &mut meters);
    }
    for event in events.drain(..) {
        event_log.log(event);
    }
    engine.snapshot(&mut snapshot.lock().unwrap_or_else(|e| e.into_inner()));
    let c = engine.counters();
    log::info!(
        "stopped: {} packets, {} blocks mixed, {} deadline misses, {} clipped samples, {} streams",
        c.packets,
        c.blocks,
        c.deadline_misses,
        c.clipped,
        c.streams_started
    );
    if event_log.dropped() > 0 {
        log::warn!(
            "{} events were not written (log writer fell behind)",
            event_log.dropped()
        );
    }
    event_log.close().context("writing the event log")?;
    Ok(())
}

/// Sends mixed blocks to every destination in datagrams of at most
/// [`FRAMES_PER_DATAGRAM`] frames (send errors logged once per burst), and
/// to TCP clients as Samples messages with `--tcp-listen`.
struct MixSender {
    socket: UdpSocket,
    dests: Vec<SocketAddr>,
    buf: Vec<u8>,
    failing_since: Option<Duration>,
    errors: u64,
    tcp: Option<TcpServer>,
    tcp_buf: Vec<u8>,
}

impl MixSender {
    fn new(socket: UdpSocket, dests: Vec<SocketAddr>, tcp: Option<TcpServer>) -> Self {
        Self {
            socket,
            dests,
            buf: vec![0; proto::MAX_UNFRAGMENTED_PAYLOAD],
            failing_since: None,
            errors: 0,
            tcp,
            tcp_buf: Vec::new(),
        }
    }

    fn send(&mut self, interleaved: &[i16], now: Duration) {
        if let Some(tcp) = &self.tcp {
            self.tcp_buf.clear();
            encode_samples(interleaved, &mut self.tcp_buf);
            // Never blocks: a client that falls behind is disconnected.
            let _ = tcp.broadcast(&self.tcp_buf);
        }
        let mut ok = true;
        for frames in interleaved.chunks(2 * FRAMES_PER_DATAGRAM) {
            let len = proto::encode_stereo(frames, &mut self.buf)
                .expect("buffer sized for a full datagram");
            for dest in &self.dests {
                if let Err(e) = self.socket.send_to(&self.buf[..len], dest) {
                    ok = false;
                    self.errors += 1;
                    if self.failing_since.is_none() {
                        log::warn!("cannot send the mix to {dest}: {e}");
                        self.failing_since = Some(now);
                    }
                }
            }
        }
        if ok {
            if let Some(since) = self.failing_since.take() {
                log::info!(
                    "sending the mix works again after {} errors over {} ms",
                    self.errors,
                    (now - since).as_millis()
                );
                self.errors = 0;
            }
        }
    }
}
