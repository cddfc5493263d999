//! The UDP receiver: binds the port, filters senders, validates datagrams
//! and hands whole stereo frames to the pipeline.
//!
//! The socket has a short read timeout so the loop notices a stop request
//! (Ctrl-C, SIGTERM, or a test's handle) within a tenth of a second.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto::StereoDatagram;
use socket2::{Domain, Protocol, Socket, Type};

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

/// Receives until `stop` is set or the writer fails.
pub fn receive_loop(
    socket: &UdpSocket,
    pin: Option<Pin>,
    pipeline: &mut Pipeline,
    stats: &Stats,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut filter = SourceFilter::new(pin);
    // The largest UDP payload: any datagram fits, none is truncated.
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        if pipeline.writer_failed() {
            return Ok(());
        }
        pipeline.report();
        let (len, from) = match socket.recv_from(&mut buf) {
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
        match filter.check(from, Instant::now()) {
            Verdict::Accept { first } => {
                if first {
                    log::info!("receiving from {from}");
                }
            }
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
        match StereoDatagram::decode(&buf[..len]) {
            Ok(datagram) => {
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
