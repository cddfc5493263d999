//! The UDP receiver: binds the port, filters senders (locking onto one only
//! after a datagram of it decodes, releasing it after silence), validates
//! datagrams and hands their samples to the pipeline, which keeps frames
//! whole across datagrams.
//!
//! The socket has a short read timeout so the loop notices a stop request
//! (Ctrl-C, SIGTERM, or a test's handle) within a tenth of a second.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto::StereoDatagram;
use socket2::{Domain, Protocol, Socket, Type};

use crate::format_watch::FormatWatch;
use crate::pipeline::Pipeline;
use crate::source::{Pin, SourceFilter, Verdict};
use crate::stats::Stats;

/// How long a receive call waits before the stop flag is checked again.
const POLL: Duration = Duration::from_millis(100);

/// Kernel receive buffer asked for: about 3 s of 44.1 kHz stereo, so a
/// briefly descheduled receiver loses nothing (the kernel caps it at
/// `net.core.rmem_max`).
const RECV_BUFFER: usize = 1 << 19;

/// Binds `bind:port` for receiving; an occupied port is a one-line error.
pub fn bind(bind: &str, port: u16) -> anyhow::Result<UdpSocket> {
    let addr: SocketAddr = (bind, port)
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("--bind {bind:?} is not a usable address: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--bind {bind:?} resolves to no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| anyhow::anyhow!("cannot create a UDP socket: {e}"))?;
    // Best effort: a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into()).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!("UDP port {port} on {bind} is already in use"),
        io::ErrorKind::AddrNotAvailable => {
            anyhow::anyhow!("cannot bind {addr}: no such local address")
        }
        _ => anyhow::anyhow!("cannot bind UDP {addr}: {e}"),
    })?;
    let socket: UdpSocket = socket.into();
    socket
        .set_read_timeout(Some(POLL))
        .map_err(|e| anyhow::anyhow!("cannot set the socket's read timeout: {e}"))?;
    Ok(socket)
}

/// Receives until `stop` is set or the writer fails. `source_timeout` is
/// the silence after which the sender lock is released.
pub fn receive_loop(
    socket: &UdpSocket,
    pin: Option<Pin>,
    source_timeout: Duration,
    pipeline: &mut Pipeline,
    stats: &Stats,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut filter = SourceFilter::new(pin, source_timeout);
    let mut watch = FormatWatch::new();
    // The largest UDP payload: any datagram fits, none is truncated.
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        if pipeline.writer_failed() {
            return Ok(());
        }
        pipeline.report();
        let received = socket.recv_from(&mut buf);
        let now = Instant::now();
        if let Some(released) = filter.expire(now) {
            Stats::add(&stats.source_releases, 1);
            log::info!(
                "released {} after {} ms of silence; the next sender whose datagram decodes is \
                 listened to",
                released.sender,
                released.silent_for.as_millis()
            );
            // Its unfinished frame will never be completed.
            pipeline.drop_partial_frame();
        }
        let (len, from) = match received {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => anyhow::bail!("receiving UDP failed: {e}"),
        };
        match filter.check(from, now) {
            Verdict::Listen => {}
            Verdict::Foreign { warn } => {
                Stats::add(&stats.foreign_datagrams, 1);
                if let Some(n) = warn {
                    log::warn!(
                        "dropped {n} datagram(s) from other senders (latest {from}); listening to {}",
                        filter.sender().map_or_else(|| "the --source address".to_owned(), |s| s.to_string())
                    );
                }
                continue;
            }
        }
        // A datagram may end inside a frame (the original sender's 25 ms
        // datagrams hold 1102.5 frames): the pipeline completes that frame
        // with the next datagram from this sender.
        let decoded = StereoDatagram::decode_samples(&buf[..len]);
        if let Some(warning) = watch.on_datagram(now, from, &buf[..len], decoded.is_ok()) {
            log::warn!("{warning}");
        }
        match decoded {
            // A lone half frame carries no audio to lock on.
            Ok(datagram) if datagram.frame_count() == 0 && filter.sender().is_none() => {
                Stats::add(&stats.bad_datagrams, 1);
                log::debug!("dropped a {len}-byte datagram from {from}: less than a frame");
            }
            Ok(datagram) => {
                if filter.decoded(from, now) {
                    log::info!(
                        "locked to {from}: listening to it only, until it is silent for {} ms",
                        source_timeout.as_millis()
                    );
                }
                Stats::add(&stats.packets, 1);
                pipeline.push(datagram.interleaved().collect());
            }
            Err(e) => {
                Stats::add(&stats.bad_datagrams, 1);
                log::debug!("dropped a datagram from {from}: {e}");
            }
        }
    }
    Ok(())
}
