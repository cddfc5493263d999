//! `--tcp-source HOST:PORT`: pulls a source from a TCP Spec/Samples server
//! (e.g. `audiostreamer --tcp-listen`) for networks that block UDP.
//!
//! One thread per server: it connects (reconnecting with back-off), checks
//! the Spec (mono or stereo, 16-bit integer, the node's rate), downmixes to
//! mono, cuts the samples into equal 10 ms packets with consecutive sequence
//! numbers and hands them to the run loop as if they were UDP datagrams from
//! the server's address, so they are tracked, buffered and mixed the same way.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Sender;
use proto::udp_mono::{encode_mono, mono_datagram_len};
use proto::{Message, SampleFormat, Spec, TcpClient};

/// A packet pulled from a TCP source, encoded as a mono datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket {
    /// The server's address (the source's identity).
    pub from: SocketAddr,
    /// A UDP-format mono datagram.
    pub datagram: Vec<u8>,
}

/// How long a read may block, so a stop request is noticed promptly.
const READ_TIMEOUT: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Turns Samples messages into equal-size mono packets.
#[derive(Debug, Clone)]
pub struct Packetizer {
    packet: usize,
    channels: usize,
    pending: Vec<i16>,
    seq: u32,
}

impl Packetizer {
    /// Packets of `packet` mono samples, starting at sequence number 0.
    pub fn new(packet: usize) -> Self {
        Self {
            packet: packet.max(1),
            channels: 1,
            pending: Vec::with_capacity(packet),
            seq: 0,
        }
    }

    /// Sets the channel count announced by a Spec (samples are interleaved).
    pub fn set_channels(&mut self, channels: usize) {
        self.channels = channels.max(1);
    }

    /// Adds interleaved samples; calls `emit` with each complete datagram.
    pub fn push(&mut self, interleaved: &[i16], mut emit: impl FnMut(Vec<u8>)) {
        for frame in interleaved.chunks_exact(self.channels) {
            let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
            // Average the channels, rounding half away from zero.
            let n = self.channels as i32;
            let mono = if sum >= 0 {
                (sum + n / 2) / n
            } else {
                (sum - n / 2) / n
            };
            self.pending.push(mono as i16);
            if self.pending.len() == self.packet {
                emit(self.take_packet());
            }
        }
    }

    /// The samples still pending as a last, shorter packet (when the stream
    /// ends mid-packet), if there are any.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| self.take_packet())
    }

    fn take_packet(&mut self) -> Vec<u8> {
        let mut datagram = vec![0u8; mono_datagram_len(self.pending.len())];
        encode_mono(self.seq, &self.pending, &mut datagram).expect("sized for the packet");
        self.seq = self.seq.wrapping_add(1);
        self.pending.clear();
        datagram
    }
}

/// Why a Spec is not one the node can mix.
pub fn check_spec(spec: &Spec, rate: u32) -> Result<(), String> {
    if spec.sample_format != SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(format!(
            "unsupported sample format ({:?}, {} bits); only 16-bit integers are mixed",
            spec.sample_format, spec.bits_per_sample
        ));
    }
    if !(1..=2).contains(&spec.channels) {
        return Err(format!(
            "{} channels; only mono or stereo sources are mixed",
            spec.channels
        ));
    }
    if spec.sample_rate != rate {
        return Err(format!(
            "sample rate {} Hz differs from the node's {rate} Hz (start the node with --sample-rate {})",
            spec.sample_rate, spec.sample_rate
        ));
    }
    Ok(())
}

/// Starts the thread that pulls `server` until `stop` is set.
pub fn spawn(
    server: String,
    rate: u32,
    packets: Sender<TcpPacket>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("tcp-source-{server}"))
        .spawn(move || pull_loop(&server, rate, &packets, &stop))
}

fn pull_loop(server: &str, rate: u32, packets: &Sender<TcpPacket>, stop: &AtomicBool) {
    let mut backoff = MIN_BACKOFF;
    let packet = (rate as usize / 100).max(1); // 10 ms
    let mut packetizer = Packetizer::new(packet);
    while !stop.load(Ordering::Relaxed) {
        match pull_once(server, rate, &mut packetizer, packets, stop) {
            Ok(()) => {
                log::info!("TCP source {server}: server closed the stream");
                backoff = MIN_BACKOFF;
            }
            Err(e) => log::warn!(
                "TCP source {server}: {e}; retrying in {} ms",
                backoff.as_millis()
            ),
        }
        // Sleep in short steps so a stop request is honoured quickly.
        let mut slept = Duration::ZERO;
        while slept < backoff && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
            slept += Duration::from_millis(50);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: Ok when the server closed cleanly, Err with a reason otherwise.
fn pull_once(
    server: &str,
    rate: u32,
    packetizer: &mut Packetizer,
    packets: &Sender<TcpPacket>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let addr = server
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or("resolves to no address")?;
    let mut client =
        TcpClient::connect_timeout(&addr, CONNECT_TIMEOUT, proto::DEFAULT_MAX_FRAME_LEN)
            .map_err(|e| format!("cannot connect: {e}"))?;
    client
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    log::info!("TCP source {server}: connected");
    let mut spec_seen = false;
    while !stop.load(Ordering::Relaxed) {
        let message = match client.recv_message() {
            Ok(Some(m)) => m,
            Ok(None) => {
                // The stream ended: its tail goes out as a shorter last packet.
                if let Some(datagram) = packetizer.flush() {
                    let _ = packets.send(TcpPacket {
                        from: addr,
                        datagram,
                    });
                }
                return Ok(());
            }
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(format!("disconnecting: {e}")),
        };
        match message {
            Message::Spec(spec) => {
                check_spec(&spec, rate).map_err(|e| format!("disconnecting: {e}"))?;
                packetizer.set_channels(usize::from(spec.channels));
                spec_seen = true;
            }
            Message::Samples(samples) => {
                if !spec_seen {
                    return Err("disconnecting: Samples before any Spec".into());
                }
                let mut closed = false;
                packetizer.push(&samples, |datagram| {
                    closed |= packets
                        .send(TcpPacket {
                            from: addr,
                            datagram,
                        })
                        .is_err();
                });
                if closed {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::MonoDatagram;

    #[test]
    fn packets_are_equal_size_with_consecutive_numbers() {
        let mut p = Packetizer::new(4);
        let mut out = Vec::new();
        p.push(&[1, 2, 3], |d| out.push(d));
        assert!(out.is_empty());
        p.push(&[4, 5, 6, 7, 8, 9], |d| out.push(d));
        let decoded: Vec<(u32, Vec<i16>)> = out
            .iter()
            .map(|d| {
                let m = MonoDatagram::decode(d).unwrap();
                (m.seq, m.samples().collect())
            })
            .collect();
        assert_eq!(decoded, vec![(0, vec![1, 2, 3, 4]), (1, vec![5, 6, 7, 8])]);
        let last = p.flush().unwrap();
        let m = MonoDatagram::decode(&last).unwrap();
        assert_eq!((m.seq, m.samples().collect::<Vec<_>>()), (2, vec![9]));
        assert!(p.flush().is_none());
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let mut p = Packetizer::new(3);
        p.set_channels(2);
        let mut out = Vec::new();
        p.push(&[100, 200, -3, -4, i16::MAX, i16::MAX], |d| out.push(d));
        let m = MonoDatagram::decode(&out[0]).unwrap();
        assert_eq!(m.samples().collect::<Vec<_>>(), vec![150, -4, i16::MAX]);
    }

    #[test]
    fn specs_are_checked() {
        assert!(check_spec(&Spec::int16(1, 44_100), 44_100).is_ok());
        assert!(check_spec(&Spec::int16(2, 44_100), 44_100).is_ok());
        assert!(check_spec(&Spec::int16(2, 48_000), 44_100)
            .unwrap_err()
            .contains("--sample-rate 48000"));
        assert!(check_spec(&Spec::int16(6, 44_100), 44_100).is_err());
        let float = Spec {
            sample_format: SampleFormat::Float,
            bits_per_sample: 32,
            ..Spec::int16(1, 44_100)
        };
        assert!(check_spec(&float, 44_100).is_err());
    }
}
