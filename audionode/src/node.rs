//! The node's run loop: the thin IO edge that pumps the [`NodeCore`].
//! One thread, named `mix`, receives datagrams in batches (with their
//! kernel arrival times) on the original-format socket and on every RTP
//! and RTCP socket, decodes them at the edge ([`ingress`],
//! [`rtp_io::rtcp_inputs`]), feeds them to the core with the TCP sources'
//! packets and the control commands, and drains the core's outputs until
//! it asks to wait: blocks go to every destination with `sendto`
//! ([`Outputs`]), receiver reports to RTP senders, events, blocks for the
//! TCP fan-out and stats frames into the [`outbox`](crate::outbox). In
//! steady state it makes no system call but `recvmmsg`, `ppoll`, `sendto`,
//! the clock and, under heavy load, `clock_nanosleep`.

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
use crate::control::listen::Listeners;
use crate::control::outputs::{MixFormat, OutputRegistry};
use crate::control::{HttpServer, Hub};
use crate::event_log::{self, EventLog};
use crate::nodecore::ingress::{self, Samples, SourcePacket};
use crate::nodecore::name::SourceName;
use crate::nodecore::stats::NodeSnapshot;
use crate::nodecore::{ControlCommand, CoreConfig, Input, NodeCore, Output, WaitMode};
use crate::opus_out::OpusOut;
use crate::opus_source::{self, OpusIn};
use crate::outbox::{self, Outbox, StatsReader};
use crate::outputs::{OutputCommand, OutputKind, OutputSpec, Outputs};
use crate::realtime;
use crate::rtp_io;
use crate::tap::{self, TapSinks};
use crate::tcp_source::{self, TcpPacket};
use crate::web_source::{self, WebInput, WebSenders};
use proto::{Spec, TcpServer, TcpServerConfig};

pub use crate::outputs::FRAMES_PER_DATAGRAM;

/// Longest the loop sleeps while idle (bounds the reaction to a stop request).
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Longest the loop sleeps when TCP sources may hand it packets.
const TCP_SOURCE_WAIT: Duration = Duration::from_millis(5);
/// Datagrams taken per recvmmsg call.
const BATCH: usize = 64;
/// Control commands queued between the control surface and the mixer.
pub const COMMAND_RING: usize = 1024;
/// Output changes queued between the control surface and the mixer.
const OUTPUT_RING: usize = 64;

/// A running node.
pub struct NodeHandle {
    local_addr: SocketAddr,
    http: Option<HttpServer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    helpers: Vec<JoinHandle<()>>,
    tcp_listen_addr: Option<SocketAddr>,
    rtp_listen_addrs: Vec<SocketAddr>,
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

    /// Where RTP sources are received (`--rtp-listen`, with the real ports
    /// when bound to 0; RTCP on each port + 1).
    pub fn rtp_listen_addrs(&self) -> &[SocketAddr] {
        &self.rtp_listen_addrs
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
    let all_dests: Vec<SocketAddr> = config
        .dests
        .iter()
        .chain(&config.rtp_dests)
        .copied()
        .collect();
    let out = output_socket(&socket, local_addr, &all_dests)?;
    let mut rtp_sockets = Vec::new();
    for &addr in &config.rtp_listen {
        let pair =
            bind_rtp_pair(addr).with_context(|| format!("cannot listen for RTP on {addr}"))?;
        rtp_sockets.push(pair);
    }
    // RTP outputs (at start or added later) leave from their own pair.
    let rtp_out_ip: std::net::IpAddr = if local_addr.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let rtp_out = bind_rtp_pair(SocketAddr::new(rtp_out_ip, 0))
        .context("cannot open the sockets RTP outputs are sent from")?;
    let rtp_listen_addrs = rtp_sockets
        .iter()
        .map(|(rtp, _)| rtp.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
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
    // The tap hands the mix to TCP clients and WebSocket listeners.
    let listeners = config
        .http
        .as_ref()
        .map(|settings| Listeners::new(rate, settings.limits.max_listeners));
    // Opus outputs are encoded on the tap thread: the start-up ones, and
    // those the control surface may add.
    let (opus_tx, opus_commands) = rtrb::RingBuffer::<OutputCommand>::new(OUTPUT_RING);
    let opus_out = if config.rtp_opus || config.http.is_some() {
        let any: SocketAddr = if local_addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        };
        let sockets = bind_rtp_pair(any).context("cannot open the Opus output sockets")?;
        let cname = SourceName::new(&format!("audionode@{local_addr}"));
        let mut out = OpusOut::new(sockets, rate, config.opus_bitrate, cname)
            .map_err(|e| anyhow::anyhow!("cannot start the Opus encoder: {e}"))?;
        for spec in start_outputs(&config) {
            out.apply(OutputCommand::Add(spec));
        }
        Some((out, opus_commands))
    } else {
        None
    };
    // Half a second of stereo for the tap.
    let block_ring = if tcp_out.is_some() || listeners.is_some() || opus_out.is_some() {
        rate as usize
    } else {
        0
    };
    let (outbox, readers) = outbox::outbox(config.engine.max_sources, block_ring);
    let stop = Arc::new(AtomicBool::new(false));
    let mut helpers = Vec::new();
    let mut log_file = log_file;
    let details = format!(
        "listen={local_addr}{} outputs={} sample_rate={rate} jitter={:?} max_sources={}",
        rtp_listen_addrs
            .iter()
            .map(|a| format!(" rtp_listen={a}"))
            .collect::<String>(),
        start_outputs(&config)
            .iter()
            .map(OutputSpec::to_string)
            .collect::<Vec<_>>()
            .join(","),
        config.engine.source.target,
        config.engine.max_sources,
    );
    {
        use std::io::Write;
        writeln!(
            log_file,
            "{}",
            event_log::start_line(std::time::SystemTime::now(), &details)
        )
        .with_context(|| format!("cannot write event log {}", config.log_file.display()))?;
    }
    let event_log = EventLog::start(log_file, &config.log_file, readers.events)
        .context("cannot start the event-log thread")?;
    let has_opus = opus_out.is_some();
    if let Some(blocks) = readers.blocks {
        let block_time =
            Duration::from_secs_f64(config.engine.source.block_frames as f64 / f64::from(rate));
        let sinks = TapSinks {
            tcp: tcp_out,
            listeners: listeners.clone(),
            opus: opus_out,
        };
        helpers.push(tap::spawn(blocks, sinks, block_time, Arc::clone(&stop))?);
    }
    let (commands_tx, commands) = rtrb::RingBuffer::new(COMMAND_RING);
    let (output_tx, output_commands) = rtrb::RingBuffer::<OutputCommand>::new(OUTPUT_RING);
    let outputs = Arc::new(OutputRegistry::new(
        start_outputs(&config),
        output_tx,
        has_opus.then_some(opus_tx),
        MixFormat {
            rate,
            block_frames: config.engine.source.block_frames,
            local: local_addr,
        },
    ));
    let epoch = Instant::now();
    let (senders, web_in) = WebSenders::new(rate, config.engine.max_sources, epoch);
    let http = match (&config.http, listeners) {
        (Some(settings), Some(listeners)) => {
            let hub = Hub::new(commands_tx);
            let server = HttpServer::start(
                settings,
                hub,
                readers.stats.clone(),
                outputs,
                local_addr,
                Arc::clone(&senders),
                listeners,
            )
            .with_context(|| format!("cannot serve the control surface on {}", settings.addr))?;
            log::info!("mixing desk on http://{}/", server.local_addr());
            Some(server)
        }
        _ => None,
    };
    // Opus sources are decoded off the mixing thread.
    let opus_in = if config.rtp_listen.is_empty() {
        None
    } else {
        let (opus_in, thread) = opus_source::spawn(rate, Arc::clone(&stop), config.rt_priority)
            .context("cannot start the Opus decoding thread")?;
        helpers.push(thread);
        Some(opus_in)
    };
    let mut tcp_in = Vec::new();
    for server in &config.tcp_sources {
        let (ring, rx) = rtrb::RingBuffer::new(tcp_source::RING_PACKETS);
        helpers.push(tcp_source::spawn(
            server.clone(),
            rate,
            ring,
            epoch,
            Arc::clone(&stop),
            config.rt_priority,
        )?);
        tcp_in.push(rx);
    }
    if let (Some(path), Some(&dest)) = (&config.sdp_file, config.rtp_dests.first()) {
        let sdp = mix_sdp(
            dest,
            local_addr,
            config.engine.source.rate,
            config.engine.source.block_frames,
            config.rtp_opus,
        );
        std::fs::write(path, sdp)
            .with_context(|| format!("cannot write the SDP file {}", path.display()))?;
        log::info!("SDP of the RTP mix to {dest} in {}", path.display());
    }
    let parts = LoopParts {
        config,
        socket,
        rtp_sockets,
        rtp_out,
        output_commands,
        out,
        outbox,
        event_log,
        commands,
        tcp_in,
        opus_in,
        web_in,
        senders,
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
        rtp_listen_addrs,
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

/// The SDP that describes the mix as sent to RTP destination `dest`
/// (L16, or Opus with `opus`).
pub fn mix_sdp(dest: SocketAddr, local: SocketAddr, rate: u32, block: usize, opus: bool) -> String {
    let origin = if local.ip().is_unspecified() {
        if dest.ip().is_loopback() {
            dest.ip()
        } else {
            local.ip()
        }
    } else {
        local.ip()
    };
    let format = proto::rtp_map::RtpFormat { rate, channels: 2 };
    let (payload_type, encoding, format, ptime_ms) = if opus {
        let format = proto::rtp_map::RtpFormat {
            rate: proto::opus::OPUS_RATE,
            channels: 2,
        };
        let ptime = (crate::opus_out::FRAME * 1000) as u32 / proto::opus::OPUS_RATE;
        (
            proto::opus::PT_OPUS_DEFAULT,
            proto::rtp_map::Encoding::Opus,
            format,
            ptime,
        )
    } else {
        (
            proto::rtp_map::payload_type_for(format),
            proto::rtp_map::Encoding::L16,
            format,
            rtp_io::ptime_ms(block, rate),
        )
    };
    proto::sdp::AudioSession {
        name: "audionode mix".into(),
        dest,
        origin,
        payload_type,
        encoding,
        format,
        ptime_ms,
        session_id: u64::from(rate) * 1000 + block as u64,
    }
    .to_sdp()
}

/// Binds an RTP socket at `addr` and its RTCP companion at the port + 1.
/// For port 0 the kernel picks the RTP port; a pair whose + 1 is taken is
/// tried again a few times.
fn bind_rtp_pair(addr: SocketAddr) -> anyhow::Result<(UdpSocket, UdpSocket)> {
    let attempts = if addr.port() == 0 { 32 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let rtp = bind_listen(addr)?;
        let mut rtcp_addr = rtp.local_addr()?;
        let Some(port) = rtcp_addr.port().checked_add(1) else {
            continue;
        };
        rtcp_addr.set_port(port);
        match bind_listen(rtcp_addr) {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last_error = Some((rtcp_addr, e)),
        }
    }
    match last_error {
        Some((rtcp_addr, e)) => Err(anyhow::anyhow!(
            "cannot listen for RTCP on {rtcp_addr}: {e}"
        )),
        None => Err(anyhow::anyhow!("no port pair free")),
    }
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
    /// Each `--rtp-listen` socket and its RTCP companion.
    rtp_sockets: Vec<(UdpSocket, UdpSocket)>,
    /// What RTP outputs are sent from: RTP and RTCP.
    rtp_out: (UdpSocket, UdpSocket),
    output_commands: rtrb::Consumer<OutputCommand>,
    out: UdpSocket,
    outbox: Outbox,
    event_log: EventLog,
    commands: rtrb::Consumer<ControlCommand>,
    tcp_in: Vec<rtrb::Consumer<TcpPacket>>,
    /// Opus packets to and from the decode thread (with `--rtp-listen`).
    opus_in: Option<OpusIn>,
    /// Browser senders' packets (`/ws/send`), from the control surface.
    web_in: rtrb::Consumer<WebInput>,
    /// How many browser senders are connected (one atomic load per wait).
    senders: Arc<WebSenders>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
}

/// The outputs the node starts with: `--dest`, then `--rtp-dest`.
fn start_outputs(config: &Config) -> Vec<OutputSpec> {
    config
        .dests
        .iter()
        .map(|&addr| OutputSpec::l16(OutputKind::UdpStereo, addr))
        .chain(config.rtp_dests.iter().map(|&addr| {
            if config.rtp_opus {
                OutputSpec::opus(addr)
            } else {
                OutputSpec::l16(OutputKind::Rtp, addr)
            }
        }))
        .collect()
}

/// What a socket of the run loop carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocketKind {
    /// The original mono format (`--listen`).
    Original,
    /// RTP, with RTCP multiplexed (RFC 5761), of `--rtp-listen` number k.
    Rtp(u8),
    /// RTCP on the port + 1 of `--rtp-listen` number k.
    Rtcp(u8),
}

fn run_loop(parts: LoopParts) -> anyhow::Result<()> {
    let LoopParts {
        config,
        socket,
        rtp_sockets,
        rtp_out,
        mut output_commands,
        out,
        mut outbox,
        event_log,
        mut commands,
        mut tcp_in,
        mut opus_in,
        mut web_in,
        senders,
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
    let start_outputs = start_outputs(&config);
    log::info!(
        "listening on {}{}, sending to {}, event log {}",
        socket.local_addr()?,
        rtp_sockets
            .iter()
            .filter_map(|(rtp, _)| rtp.local_addr().ok())
            .map(|a| format!(", RTP on {a}"))
            .collect::<String>(),
        start_outputs
            .iter()
            .map(|o| format!("{} ({})", o.addr, o.kind))
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
    let rate = config.engine.source.rate;
    let max_bytes = config.engine.max_datagram_bytes;
    // An RTP packet of the longest original datagram's samples, plus room
    // for CSRCs and an extension header.
    let max_rtp_bytes = max_bytes + 64;
    let mut rx = BatchReceiver::new(BATCH, max_rtp_bytes + 1);
    let cname = SourceName::new(&format!("audionode@{}", socket.local_addr()?));
    let mut sender = Outputs::new(out, rtp_out, rate, cname, &start_outputs);
    let reporter = rtp_io::random_u32();
    let mut sockets: Vec<(&UdpSocket, SocketKind)> = vec![(&socket, SocketKind::Original)];
    for (k, (rtp, rtcp)) in rtp_sockets.iter().enumerate() {
        sockets.push((rtp, SocketKind::Rtp(k as u8)));
        sockets.push((rtcp, SocketKind::Rtcp(k as u8)));
    }
    let all: Vec<&UdpSocket> = sockets.iter().map(|(s, _)| *s).collect();
    let rtcp_sockets: Vec<&UdpSocket> = rtp_sockets.iter().map(|(_, rtcp)| rtcp).collect();
    let mut pump = Pump {
        sender: &mut sender,
        outbox: &mut outbox,
        rtcp_sockets: &rtcp_sockets,
        reporter,
        rtcp_buf: [0; 128],
        epoch,
    };
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
        while let Ok(command) = output_commands.pop() {
            pump.sender.apply(command, epoch.elapsed());
        }
        let wake = pump.drain(&mut core);
        let mut wait = wake.at.saturating_sub(epoch.elapsed());
        let opus_pending = opus_in.as_ref().is_some_and(|o| o.busy(epoch.elapsed()));
        if senders.active() > 0 || opus_pending {
            // Browser senders' packets (and decoded Opus ones) come through
            // a ring, not a socket: look at it as often as at the TCP
            // sources'.
            wait = wait.min(TCP_SOURCE_WAIT);
        }
        batch_full = false;
        if all.len() == 1 {
            // One socket: the wait is the receive's own ppoll.
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
            feed_batch(
                &mut core,
                &rx,
                n,
                SocketKind::Original,
                &config,
                max_bytes,
                now,
                opus_in.as_mut(),
            );
        } else {
            match wake.mode {
                WaitMode::Now => {}
                WaitMode::Sleep => thread::sleep(wait),
                WaitMode::Socket => {
                    BatchReceiver::wait_any(&all, wait).context("waiting for datagrams")?;
                }
            }
            for &(sock, kind) in &sockets {
                let n = rx.recv(sock, None).context("receiving datagrams")?;
                batch_full |= n == BATCH;
                received += n;
                let now = epoch.elapsed();
                feed_batch(
                    &mut core,
                    &rx,
                    n,
                    kind,
                    &config,
                    max_bytes,
                    now,
                    opus_in.as_mut(),
                );
            }
        }
        let now = epoch.elapsed();
        for ring in &mut tcp_in {
            while let Ok(packet) = ring.pop() {
                core.handle_input(Input::Packet {
                    arrived: packet.handed_over,
                    read_at: now,
                    from: packet.from,
                    packet: SourcePacket::mono(packet.seq, Samples::Native(packet.samples())),
                });
            }
        }
        if let Some(opus) = opus_in.as_mut() {
            // Read in place: a decoded packet is about 11 KB, not worth
            // moving out of its slot.
            while let Ok(chunk) = opus.decoded.read_chunk(1) {
                let decoded = &chunk.as_slices().0[0];
                let input = match decoded.input() {
                    Ok(packet) => Input::Packet {
                        arrived: decoded.arrived,
                        read_at: now,
                        from: decoded.from,
                        packet,
                    },
                    Err(why) => Input::Malformed {
                        arrived: decoded.arrived,
                        from: decoded.from,
                        len: 0,
                        why,
                    },
                };
                core.handle_input(input);
                chunk.commit_all();
            }
        }
        web_source::drain(&mut web_in, &mut core, now);
    }
    core.handle_input(Input::Shutdown {
        now: epoch.elapsed(),
    });
    pump.drain(&mut core);
    sender.close();
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

/// Hands the `n` datagrams of the last batch, received on a socket of
/// `kind`, to the core (Opus ones to the decode thread).
#[allow(clippy::too_many_arguments)]
fn feed_batch(
    core: &mut NodeCore,
    rx: &BatchReceiver,
    n: usize,
    kind: SocketKind,
    config: &Config,
    max_bytes: usize,
    now: Duration,
    mut opus: Option<&mut OpusIn>,
) {
    let rate = config.engine.source.rate;
    for i in 0..n {
        let (from, bytes) = rx.get(i);
        // When it arrived, not when this batch was taken.
        let arrived = now.saturating_sub(rx.age(i).unwrap_or_default());
        let decoded = match kind {
            SocketKind::Original => ingress::decode_mono(bytes, max_bytes),
            SocketKind::Rtp(_) | SocketKind::Rtcp(_) if proto::rtp::is_rtcp(bytes) => {
                rtp_io::rtcp_inputs(bytes, |info| {
                    core.handle_input(Input::Rtcp {
                        arrived,
                        from,
                        info,
                    })
                });
                continue;
            }
            // Anything else on an RTCP port is not for the node.
            SocketKind::Rtcp(_) => continue,
            SocketKind::Rtp(k) => {
                let offered = opus
                    .as_deref_mut()
                    .and_then(|o| o.offer(bytes, &config.rtp_map, from, arrived, k));
                match offered {
                    Some(Ok(())) => continue,
                    Some(Err(why)) => Err(why),
                    None => ingress::decode_rtp(bytes, &config.rtp_map, rate, max_bytes + 64, k),
                }
            }
        };
        let input = match decoded {
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
}

/// What the drain needs besides the core.
struct Pump<'a> {
    sender: &'a mut Outputs,
    outbox: &'a mut Outbox,
    rtcp_sockets: &'a [&'a UdpSocket],
    /// The node's SSRC in its receiver reports.
    reporter: u32,
    rtcp_buf: [u8; 128],
    epoch: Instant,
}

impl Pump<'_> {
    /// Drains the core's outputs until it asks to wait (the drain rule).
    fn drain(&mut self, core: &mut NodeCore) -> crate::nodecore::Wake {
        loop {
            match core.poll_output() {
                Output::Block(block) => {
                    self.sender.send(block, self.epoch.elapsed(), self.outbox);
                    self.outbox.push_block(block);
                }
                Output::Event(event) => self.outbox.push_event(event),
                Output::Stats => self.outbox.publish_stats(core),
                Output::Report(report) => {
                    if let Some(socket) = self.rtcp_sockets.get(usize::from(report.listener)) {
                        let len = rtp_io::encode_receiver_report(
                            self.reporter,
                            &report,
                            &mut self.rtcp_buf,
                        );
                        // A lost report is only a lost report.
                        let _ = socket.send_to(&self.rtcp_buf[..len], report.to);
                    }
                }
                Output::Timeout(wake) => return wake,
            }
        }
    }
}
