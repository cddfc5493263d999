//! The control surface's accept loop and connections (hyper's HTTP/1.1
//! server under the axum router), written out instead of `axum::serve` so
//! that the server, not the kernel's descriptor limit, decides when a
//! client is refused:
//!
//! - a connection cap: past it a new connection gets a one-line 503 and is
//!   closed at once, so nothing piles up in the accept queue;
//! - each connection holds its slot for as long as its socket is open,
//!   also after a WebSocket upgrade (the slot lives inside the socket);
//! - the request head must arrive within the header timeout, counted again
//!   whenever a keep-alive connection waits for its next request;
//! - a connection that moves no byte for the idle timeout is closed, and a
//!   request (its body included) may take no longer than that;
//! - an accept error such as `EMFILE` is logged at most once a second and
//!   followed by a short pause, so the loop neither spins nor stops;
//! - every request passes the [`Guard`] before the router sees it;
//! - a request carries its connection's socket ([`ConnectionSocket`]) for
//!   the handlers that tune it (a listener's send buffer).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::HttpLimits;
use super::security::Guard;

/// Pause after an accept error that is not about one connection (e.g. no
/// descriptors left): long enough not to spin, short enough to recover
/// quickly once descriptors are free again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this interval for accept errors and refusals.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// The whole answer to a connection over the cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 45\r\nConnection: close\r\n\r\ntoo many connections to the control surface\r\n";

/// Serves `router` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, router: Router, guard: Guard, limits: HttpLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let shared = Arc::new(Shared {
        router,
        guard,
        limits,
        epoch: Instant::now(),
    });
    let mut last_error_log: Option<Instant> = None;
    let mut last_busy_log: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if due(&mut last_error_log) {
                    log::warn!("control surface: accept error: {e} (retrying)");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if due(&mut last_busy_log) {
                log::warn!(
                    "control surface: {} connections open (--http-max-connections); refusing more",
                    limits.max_connections
                );
            }
            // Best effort: the socket is fresh, so its send buffer is empty.
            let _ = stream.try_write(BUSY);
            continue;
        };
        tokio::spawn(serve_connection(stream, peer, slot, Arc::clone(&shared)));
    }
}

/// What every connection of one server shares.
struct Shared {
    router: Router,
    guard: Guard,
    limits: HttpLimits,
    /// Origin of the activity clocks.
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// True (and the clock reset) when the last log line is old enough.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

/// Errors about one connection that went away before it was accepted.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let socket = ConnectionSocket(stream.as_raw_fd());
    let activity = Arc::new(AtomicU64::new(shared.now_ms()));
    let io = Tracked {
        stream,
        activity: Arc::clone(&activity),
        shared: Arc::clone(&shared),
        _slot: slot,
    };
    let limits = shared.limits;
    let router = TowerToHyperService::new(shared.router.clone());
    let guard = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // Who asks: changes are logged with the operator's address.
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(socket);
        let checked = guard
            .guard
            .check(request.method(), request.uri(), request.headers());
        let routed = checked.map(|()| router.call(request));
        async move {
            let response = match routed {
                Err(refusal) => refusal.into_response(),
                Ok(routed) => match tokio::time::timeout(limits.idle_timeout, routed).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => timed_out(),
                },
            };
            Ok::<Response<Body>, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let idle_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut watchdog =
        tokio::time::interval((limits.idle_timeout / 4).max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    log::debug!("control surface connection: {e}");
                }
                // After an upgrade the socket (and its slot) lives on in the
                // WebSocket task.
                return;
            }
            _ = watchdog.tick() => {
                let quiet = shared.now_ms().saturating_sub(activity.load(Ordering::Relaxed));
                if quiet >= idle_ms {
                    log::debug!("control surface: closing a connection idle for {quiet} ms");
                    return;
                }
            }
        }
    }
}

/// The socket of the connection a request came on, valid while the
/// request is handled (the connection outlives its requests' handlers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionSocket(RawFd);

impl ConnectionSocket {
    /// Caps the kernel's send buffer at about `bytes` (the kernel doubles
    /// it), instead of letting it grow to megabytes: data that waits there
    /// is as late as data that waits in the server's queues.
    pub(crate) fn limit_send_buffer(&self, bytes: usize) {
        // SAFETY: the descriptor belongs to the connection whose request is
        // being handled, so it is open for the whole borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(self.0) };
        if let Err(e) = socket2::SockRef::from(&fd).set_send_buffer_size(bytes) {
            log::debug!("control surface: cannot set a send buffer: {e}");
        }
    }
}

fn timed_out() -> Response {
    (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
}

/// A client's socket with the connection slot it holds and the time it last
/// moved a byte.
struct Tracked {
    stream: TcpStream,
    activity: Arc<AtomicU64>,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
}

impl Tracked {
    fn touch(&self) {
        self.activity.store(self.shared.now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn log_lines_are_rate_limited() {
        let mut last = None;
        assert!(due(&mut last));
        assert!(!due(&mut last));
    }
}
