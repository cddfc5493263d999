//! The UDP side: a socket bound to `--bind` (or an ephemeral port of the
//! destination's IP family), datagrams encoded into one reused buffer, and
//! send errors reported once per burst while streaming carries on.
//!
//! The socket is connected to the destination, so the kernel reports an
//! ICMP port unreachable (nothing listening there) as `ECONNREFUSED`; that
//! is said once, and once more when the destination listens again
//! ([`crate::refused`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use proto::{encode_mono, encode_stereo};

use crate::burst::{BurstReport, ErrorBurst};
use crate::chunk::Layout;
use crate::refused::{Change, Refusals};

/// Sends chunks as UDP datagrams to one destination.
pub struct UdpOut {
    socket: UdpSocket,
    dest: SocketAddr,
    layout: Layout,
    next_seq: u32,
    datagram: Vec<u8>,
    stereo: Vec<i16>,
    errors: ErrorBurst,
    refusals: Refusals,
    /// Whether `socket` is connected to `dest` (it always is unless the
    /// kernel refused the connect, e.g. a broadcast address).
    connected: bool,
}

/// The wildcard address of `dest`'s family with port 0.
pub fn default_bind_for(dest: SocketAddr) -> SocketAddr {
    match dest {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    }
}

impl UdpOut {
    /// Binds the sending socket. `max_samples` sizes the datagram buffer.
    pub fn bind(
        dest: SocketAddr,
        bind: Option<SocketAddr>,
        layout: Layout,
        max_samples: usize,
        start_seq: u32,
    ) -> anyhow::Result<Self> {
        let local = bind.unwrap_or_else(|| default_bind_for(dest));
        let socket = UdpSocket::bind(local).map_err(|e| bind_error(local, e))?;
        // Connected, ICMP errors reach us; if the kernel will not connect
        // (a broadcast address without SO_BROADCAST), send_to reports the
        // error per datagram instead.
        let connected = match socket.connect(dest) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("cannot connect the UDP socket to {dest} ({e}); using send_to");
                false
            }
        };
        Ok(Self {
            socket,
            dest,
            layout,
            next_seq: start_seq,
            datagram: vec![0; layout.datagram_len(max_samples)],
            stereo: Vec::with_capacity(2 * max_samples),
            errors: ErrorBurst::new(Duration::from_secs(10)),
            refusals: Refusals::default(),
            connected,
        })
    }

    /// The address datagrams are sent from.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The sequence number the next datagram will carry.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Failed sends so far (refused ones included).
    pub fn send_failures(&self) -> u64 {
        self.errors.total_failures() + self.refusals.total()
    }

    /// Sends one chunk (at least one sample). `now` (time since the stream
    /// started) only rate-limits error logging. A failed send is logged once
    /// per burst and otherwise ignored: the sequence number still advances,
    /// so the receiver sees the gap as loss.
    pub fn send(&mut self, samples: &[i16], now: Duration) {
        let encoded = match self.layout {
            Layout::MonoSeq => encode_mono(self.next_seq, samples, &mut self.datagram),
            Layout::Stereo => {
                self.stereo.clear();
                self.stereo.extend(samples.iter().flat_map(|&s| [s, s]));
                encode_stereo(&self.stereo, &mut self.datagram)
            }
        };
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let len = match encoded {
            Ok(len) => len,
            // Cannot happen: the buffer is sized for the largest chunk and
            // chunks are never empty. Count it as a failed send, not a panic.
            Err(e) => {
                log::error!("datagram {seq} could not be encoded: {e}");
                return;
            }
        };
        let sent = if self.connected {
            self.socket.send(&self.datagram[..len])
        } else {
            self.socket.send_to(&self.datagram[..len], self.dest)
        };
        match sent {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                if let Some(Change::NothingListening) = self.refusals.on_refused(now) {
                    log::warn!(
                        "nothing is listening at {} (ICMP port unreachable); streaming continues",
                        self.dest
                    );
                }
            }
            Ok(_) => {
                if let Some(Change::Listening { refused }) = self.refusals.on_sent(now) {
                    log::info!(
                        "{} is listening again ({refused} datagrams were refused meanwhile)",
                        self.dest
                    );
                }
                if let Some(BurstReport::Ended { failures }) = self.errors.on_success() {
                    log::info!(
                        "sending to {} works again after {failures} failed datagrams",
                        self.dest
                    );
                }
            }
            Err(e) => match self.errors.on_error(now) {
                Some(BurstReport::Started) => {
                    log::warn!("send to {} failed: {e} (streaming continues)", self.dest)
                }
                Some(BurstReport::Ongoing { failures }) => {
                    log::warn!(
                        "send to {} still failing: {e} ({failures} datagrams lost so far)",
                        self.dest
                    )
                }
                _ => {}
            },
        }
    }
}

fn bind_error(local: SocketAddr, e: io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => " (the port is already in use)",
        io::ErrorKind::AddrNotAvailable => " (no local interface has that address)",
        _ => "",
    };
    anyhow::Error::new(e).context(format!("cannot bind UDP socket to {local}{hint}"))
}
