//! The TCP fallback side: a `proto::TcpServer` that greets every client
//! (late joiners too) with the Spec and broadcasts each chunk as a Samples
//! message. Broadcasting never blocks the pacing loop; a client that falls
//! too far behind is dropped by the server. [`TcpOut::finish`] lets every
//! client's queue drain before the program exits.

use std::io;
use std::net::SocketAddr;

use proto::message::encode_samples;
use proto::{Spec, TcpServer, TcpServerConfig};

/// Serves the stream to any number of TCP clients.
pub struct TcpOut {
    server: TcpServer,
    message: Vec<u8>,
}

impl TcpOut {
    /// Listens on `addr` and announces mono 16-bit integer samples at `sample_rate`.
    pub fn bind(addr: &str, sample_rate: u32) -> anyhow::Result<Self> {
        let server = TcpServer::bind(addr, TcpServerConfig::default()).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::AddrInUse {
                " (the port is already in use)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("cannot listen for TCP on {addr}{hint}"))
        })?;
        let spec = Spec::int16(1, sample_rate);
        server.set_new_client_message(Some(&spec.to_bytes()))?;
        Ok(Self {
            server,
            message: Vec::new(),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Clients currently connected.
    pub fn client_count(&self) -> usize {
        self.server.client_count()
    }

    /// Stops serving: waits (at most [`proto::DRAIN_TIMEOUT`]) until every
    /// client has been written everything queued for it, so the last
    /// Samples are not lost when the program exits.
    pub fn finish(&mut self) {
        let closed = self.server.close(proto::DRAIN_TIMEOUT);
        if closed.cut_off > 0 {
            log::warn!(
                "{} TCP client(s) did not take the end of the stream in time",
                closed.cut_off
            );
        }
    }

    /// Queues one chunk as a Samples message for every client.
    pub fn send(&mut self, samples: &[i16]) {
        self.message.clear();
        encode_samples(samples, &mut self.message);
        if let Err(e) = self.server.broadcast(&self.message) {
            // Only a message over u32::MAX bytes can fail to frame; chunks are small.
            log::warn!("TCP broadcast failed: {e}");
        }
    }
}
