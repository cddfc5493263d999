//! The IO edge: sockets, the poll loop and the handle that stops it.
//!
//! One thread owns every socket. It sleeps in `poll` until a datagram
//! arrives or the next scheduled release is due (no busy-wait), hands
//! datagrams to the sans-IO [`Engine`] and sends what it releases. Each
//! client gets its own upstream socket, bound to the local address that
//! routes to `--forward`, so the receiver sees one distinct source per
//! client and `SourceTruth::upstream` is exactly the address it sees.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::engine::Engine;
use crate::truth::GroundTruth;

const LISTEN: Token = Token(0);
const WAKE: Token = Token(1);
/// Client i's upstream socket has token `FIRST_UPSTREAM + i`.
const FIRST_UPSTREAM: usize = 2;

/// Receive buffer asked for on the listen socket: bursts from many clients
/// must not be dropped by the kernel before the proxy has seen them, or the
/// ground truth would miss losses it did not cause.
const LISTEN_BUFFER: usize = 4 << 20;
/// Buffers asked for on each upstream socket.
const UPSTREAM_BUFFER: usize = 1 << 20;
/// Datagrams read in a row before due releases are sent (keeps release
/// times accurate under a flood).
const READ_BATCH: usize = 64;
/// Consecutive receive errors tolerated before waiting for the next event.
const MAX_RECV_ERRORS: usize = 64;

/// Starts proxies.
pub struct Proxy;

impl Proxy {
    /// Validates `config`, binds the listen socket and starts the IO
    /// thread. The error says what went wrong in one line (e.g. the port is
    /// in use).
    pub fn start(config: Config) -> anyhow::Result<ProxyHandle> {
        config.validate()?;
        let listen = bind(config.listen, LISTEN_BUFFER)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let listen_addr = listen.local_addr()?;
        let mut listen = UdpSocket::from_std(listen);
        let poll = Poll::new().context("cannot create the poller")?;
        poll.registry()
            .register(&mut listen, LISTEN, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let engine = Arc::new(Mutex::new(Engine::new(
            config.impairment.clone(),
            config.seed,
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let io = IoLoop {
            poll,
            listen,
            forward: config.forward,
            upstream_ip: upstream_ip(config.forward),
            by_addr: HashMap::new(),
            upstreams: Vec::new(),
            engine: Arc::clone(&engine),
            stop: Arc::clone(&stop),
            start: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("audioimpair-io".into())
            .spawn(move || io.run())
            .context("cannot start the IO thread")?;
        log::info!(
            "listening on {listen_addr}, forwarding to {} (seed {})",
            config.forward,
            config.seed
        );
        Ok(ProxyHandle {
            listen_addr,
            engine,
            waker,
            stop,
            thread: Some(thread),
        })
    }
}

/// A running proxy. Dropping it stops it too (without the summary).
pub struct ProxyHandle {
    listen_addr: SocketAddr,
    engine: Arc<Mutex<Engine>>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProxyHandle {
    /// The address clients send to (the real port when port 0 was asked).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// A snapshot of the ground truth so far.
    pub fn ground_truth(&self) -> GroundTruth {
        lock(&self.engine).ground_truth()
    }

    /// Whether the IO thread is still running (it ends only when stopped,
    /// or on a fatal poll error, which is logged).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the proxy and returns the final ground truth; datagrams still
    /// scheduled are never sent and show as `pending`. Logs a one-line summary.
    pub fn stop(mut self) -> GroundTruth {
        self.shut_down();
        let truth = self.ground_truth();
        log::info!("{}", summary_line(&truth));
        truth
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the IO thread: {e}");
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the IO thread panicked");
            }
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// One line totalling the run over all clients.
pub fn summary_line(t: &GroundTruth) -> String {
    let sum = |f: fn(&crate::SourceTruth) -> u64| t.sources.iter().map(f).sum::<u64>();
    format!(
        "{} client(s): received {}, forwarded {}, dropped {} ({} by rate), duplicated {}, \
         reordered {}, never sent {}, send errors {}, replies {}",
        t.sources.len(),
        sum(|s| s.received),
        sum(|s| s.forwarded),
        sum(|s| s.dropped),
        sum(|s| s.dropped_by_rate),
        sum(|s| s.duplicated),
        sum(|s| s.reordered),
        sum(|s| s.pending),
        sum(|s| s.send_errors),
        sum(|s| s.replies),
    )
}

fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    // A panic elsewhere must not hide the truth gathered so far.
    engine.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A non-blocking UDP socket bound to `addr`, with buffers of `buffer` bytes
/// asked for (the kernel may grant less; that is not an error).
fn bind(addr: SocketAddr, buffer: usize) -> io::Result<StdUdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The local IP the system routes `forward` from (connecting a UDP socket
/// sends nothing); the unspecified address of the same family if unknown.
fn upstream_ip(forward: SocketAddr) -> IpAddr {
    let any: IpAddr = match forward {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    StdUdpSocket::bind((any, 0))
        .and_then(|s| {
            s.connect(forward)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(any)
}

/// State owned by the IO thread.
struct IoLoop {
    poll: Poll,
    listen: UdpSocket,
    forward: SocketAddr,
    upstream_ip: IpAddr,
    by_addr: HashMap<SocketAddr, usize>,
    /// Upstream socket and client address, by client index.
    upstreams: Vec<(UdpSocket, SocketAddr)>,
    engine: Arc<Mutex<Engine>>,
    stop: Arc<AtomicBool>,
    start: Instant,
}

impl IoLoop {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; 65536];
        while !self.stop.load(Ordering::SeqCst) {
            let timeout = lock(&self.engine)
                .next_release()
                .map(|t| t.saturating_sub(self.now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("poll failed, proxy stopped: {e}");
                return;
            }
            let engine = Arc::clone(&self.engine);
            let mut engine = lock(&engine);
            for event in events.iter() {
                match event.token() {
                    LISTEN => self.read_clients(&mut engine, &mut buf),
                    WAKE => {}
                    Token(t) => self.read_replies(&mut engine, t - FIRST_UPSTREAM, &mut buf),
                }
            }
            self.release_due(&mut engine);
        }
    }

    /// Reads every datagram waiting on the listen socket (the poller is
    /// edge-triggered: what is not read now is not announced again).
    fn read_clients(&mut self, engine: &mut Engine, buf: &mut [u8]) {
        let mut errors = 0;
        let mut batch = 0;
        loop {
            match self.listen.recv_from(buf) {
                Ok((n, from)) => {
                    errors = 0;
                    if let Some(client) = self.client(engine, from) {
                        engine.on_datagram(self.now(), client, &buf[..n]);
                    }
                    batch += 1;
                    if batch % READ_BATCH == 0 {
                        self.release_due(engine);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. a reset reported for an earlier reply (Windows).
                    log::debug!("receive error on the listen socket: {e}");
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        return;
                    }
                }
            }
        }
    }

    /// The index of the client at `from`, opening its upstream socket on
    /// its first datagram. `None` if no socket could be opened.
    fn client(&mut self, engine: &mut Engine, from: SocketAddr) -> Option<usize> {
        if let Some(&i) = self.by_addr.get(&from) {
            return Some(i);
        }
        let opened = bind(SocketAddr::new(self.upstream_ip, 0), UPSTREAM_BUFFER).and_then(|s| {
            let local = s.local_addr()?;
            let mut s = UdpSocket::from_std(s);
            let token = Token(FIRST_UPSTREAM + self.upstreams.len());
            self.poll
                .registry()
                .register(&mut s, token, Interest::READABLE)?;
            Ok((s, local))
        });
        match opened {
            Ok((socket, local)) => {
                let index = engine.add_client(from, local);
                debug_assert_eq!(index, self.upstreams.len());
                self.upstreams.push((socket, from));
                self.by_addr.insert(from, index);
                log::info!("client {from} (#{index}) forwarded from {local}");
                Some(index)
            }
            Err(e) => {
                log::warn!("cannot open an upstream socket for {from}, datagram ignored: {e}");
                None
            }
        }
    }

    /// Relays replies that arrived on client `index`'s upstream socket.
    fn read_replies(&mut self, engine: &mut Engine, index: usize, buf: &mut [u8]) {
        let Some((socket, client)) = self.upstreams.get(index) else {
            return;
        };
        let mut errors = 0;
        loop {
            match socket.recv_from(buf) {
                Ok((n, _)) => {
                    errors = 0;
                    match self.listen.send_to(&buf[..n], *client) {
                        Ok(_) => engine.on_reply(index),
                        Err(e) => log::debug!("cannot relay a reply to {client}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("receive error on the upstream socket of {client}: {e}");
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        return;
                    }
                }
            }
        }
    }

    /// Sends every datagram whose release time has come.
    fn release_due(&mut self, engine: &mut Engine) {
        let now = self.now();
        while let Some(d) = engine.pop_due(now) {
            let (socket, client) = &self.upstreams[d.client];
            let ok = match socket.send_to(&d.payload, self.forward) {
                Ok(_) => true,
                Err(e) => {
                    log::debug!("cannot forward a datagram of {client}: {e}");
                    false
                }
            };
            engine.on_sent(d, ok);
        }
    }
}
