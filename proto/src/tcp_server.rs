//! A TCP broadcast server for the Spec/Samples protocol.
//!
//! The server accepts clients on its own thread. Each client gets a writer
//! thread fed by a bounded queue of ready-made frames. A new client first
//! receives the "new-client message" (the current Spec) and only then joins
//! the broadcast set, under one lock, so it can never see Samples before a
//! Spec. [`TcpServer::broadcast`] never blocks on a client: when a client's
//! queue is full (it stopped reading or reads too slowly) the client is
//! disconnected with a log line and the others carry on.
//!
//! [`TcpServer::close`] (and `Drop`, which calls it) stops accepting and
//! waits, for a bounded time, until every client's writer has written what
//! was queued for it: a program that exits right after its last broadcast
//! would otherwise take the queued frames with it.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::framing::encode_frame;

/// Tuning of a [`TcpServer`].
#[derive(Debug, Clone)]
pub struct TcpServerConfig {
    /// Frames queued per client before the client counts as too far behind
    /// and is disconnected.
    pub queue_frames: usize,
    /// Longest a single write to a client may block before the client is
    /// disconnected.
    pub write_timeout: Duration,
}

impl Default for TcpServerConfig {
    fn default() -> Self {
        Self {
            queue_frames: 256,
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// How long `Drop` lets the clients' writers drain their queues in total
/// before cutting the slow ones off.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A frame with its length prefix, shared by every client's queue.
type Frame = Arc<[u8]>;

struct Client {
    id: u64,
    peer: SocketAddr,
    queue: Sender<Frame>,
    /// A handle to the socket, to unblock the writer when the client is dropped.
    stream: TcpStream,
    /// The writer thread, joined by [`TcpServer::close`].
    writer: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    clients: Vec<Client>,
    new_client_message: Option<Frame>,
    next_id: u64,
}

struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
    config: TcpServerConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the whole server down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, id: u64) -> Option<Client> {
        let mut state = self.lock();
        let index = state.clients.iter().position(|c| c.id == id)?;
        Some(state.clients.swap_remove(index))
    }
}

/// Broadcasts length-prefixed frames to every connected TCP client.
pub struct TcpServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
    closed: bool,
}

/// What [`TcpServer::close`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Closed {
    /// Clients whose queues were written out completely.
    pub drained: usize,
    /// Clients cut off at the timeout with frames still queued.
    pub cut_off: usize,
}

impl TcpServer {
    /// Binds `addr` and starts accepting clients on a background thread.
    pub fn bind<A: ToSocketAddrs>(addr: A, config: TcpServerConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
            config,
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("tcp-accept-{}", local_addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(Self {
            shared,
            local_addr,
            accept_thread: Some(accept_thread),
            closed: false,
        })
    }

    /// The address the server listens on (with the real port when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Number of clients currently in the broadcast set.
    pub fn client_count(&self) -> usize {
        self.shared.lock().clients.len()
    }

    /// Sets the message every new client receives before any broadcast
    /// (the current Spec); `None` sends nothing on join.
    pub fn set_new_client_message(&self, message: Option<&[u8]>) -> io::Result<()> {
        let frame = message.map(encode_frame).transpose()?;
        self.shared.lock().new_client_message = frame.map(Frame::from);
        Ok(())
    }

    /// Sets the new-client message and broadcasts it to current clients in
    /// one step (for a format change), so every client sees it exactly once.
    pub fn announce(&self, message: &[u8]) -> io::Result<()> {
        let frame: Frame = encode_frame(message)?.into();
        let mut state = self.shared.lock();
        state.new_client_message = Some(Arc::clone(&frame));
        send_to_all(&mut state, &frame, &self.shared.config);
        Ok(())
    }

    /// Queues `message` as one frame for every client; never blocks.
    /// Returns the number of clients it was queued for.
    pub fn broadcast(&self, message: &[u8]) -> io::Result<usize> {
        let frame: Frame = encode_frame(message)?.into();
        let mut state = self.shared.lock();
        Ok(send_to_all(&mut state, &frame, &self.shared.config))
    }
}

impl TcpServer {
    /// Stops accepting, lets every client's writer write out what is queued
    /// for it (the last Samples too) and closes the connections. Waits at
    /// most `timeout` in total; clients still writing then (a client that
    /// stopped reading) are cut off and logged. Later calls do nothing.
    pub fn close(&mut self, timeout: Duration) -> Closed {
        if std::mem::replace(&mut self.closed, true) {
            return Closed::default();
        }
        let deadline = Instant::now() + timeout;
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own.
        let wake_addr = match self.local_addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
            }
            other => other,
        };
        let woke = TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1)).is_ok();
        if let Some(handle) = self.accept_thread.take() {
            if woke {
                let _ = handle.join();
            }
        }
        // Dropping each queue's sender lets its writer finish the queue,
        // shut the socket down and end.
        let clients = std::mem::take(&mut self.shared.lock().clients);
        let mut closed = Closed::default();
        for client in clients {
            let Client {
                peer,
                queue,
                stream,
                writer,
                ..
            } = client;
            drop(queue);
            while !writer.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            if writer.is_finished() {
                closed.drained += 1;
            } else {
                log::warn!(
                    "TCP client {peer} had not received everything after {} ms; closing it",
                    timeout.as_millis()
                );
                let _ = stream.shutdown(Shutdown::Both);
                closed.cut_off += 1;
            }
            let _ = writer.join();
        }
        closed
    }
}

impl Drop for TcpServer {
    /// [`TcpServer::close`] with [`DRAIN_TIMEOUT`], unless already closed.
    fn drop(&mut self) {
        self.close(DRAIN_TIMEOUT);
    }
}

fn send_to_all(state: &mut State, frame: &Frame, config: &TcpServerConfig) -> usize {
    let mut sent = 0;
    state
        .clients
        .retain(|client| match client.queue.try_send(Arc::clone(frame)) {
            Ok(()) => {
                sent += 1;
                true
            }
            Err(TrySendError::Full(_)) => {
                log::warn!(
                    "TCP client {} fell {} frames behind; disconnecting it",
                    client.peer,
                    config.queue_frames
                );
                let _ = client.stream.shutdown(Shutdown::Both);
                false
            }
            // Its writer already quit (write error); it logged why.
            Err(TrySendError::Disconnected(_)) => false,
        });
    sent
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = admit(stream, peer, &shared) {
                    log::warn!("TCP client {peer}: could not be set up: {e}");
                }
            }
            Err(e) => {
                log::warn!("TCP accept failed: {e}");
                // Avoid spinning on a persistent error such as EMFILE.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(shared.config.write_timeout))?;
    let control = stream.try_clone()?;
    let (queue, frames) = crossbeam_channel::bounded(shared.config.queue_frames.max(1));
    let mut state = shared.lock();
    let id = state.next_id;
    state.next_id += 1;
    // The writer waits on the empty queue until the lock below is released.
    let writer_shared = Arc::clone(shared);
    let writer = thread::Builder::new()
        .name(format!("tcp-client-{peer}"))
        .spawn(move || write_loop(stream, peer, id, frames, writer_shared))?;
    if let Some(first) = &state.new_client_message {
        // The queue is empty, so this cannot fail for lack of room.
        let _ = queue.try_send(Arc::clone(first));
    }
    state.clients.push(Client {
        id,
        peer,
        queue,
        stream: control,
        writer,
    });
    drop(state);
    log::info!("TCP client {peer} connected");
    Ok(())
}

fn write_loop(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    frames: Receiver<Frame>,
    shared: Arc<Shared>,
) {
    for frame in frames.iter() {
        if let Err(e) = stream.write_all(&frame) {
            if shared.remove(id).is_some() {
                log::info!("TCP client {peer} disconnected: {e}");
            }
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
    // The server dropped our queue: shutting down or we fell behind.
    let _ = stream.shutdown(Shutdown::Both);
    log::debug!("TCP client {peer} closed");
}
