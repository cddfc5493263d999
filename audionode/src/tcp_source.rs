//! `--tcp-source HOST:PORT`: pulls a source from a TCP Spec/Samples server
//! (e.g. `audiostreamer --tcp-listen`) for networks that block UDP.
//!
//! One thread per server: it connects (reconnecting with back-off), checks
//! the Spec (mono or stereo, 16-bit integer, the node's rate), downmixes to
//! mono and cuts the samples into 10 ms packets with consecutive sequence
//! numbers. The packets go to the mixing thread as native samples through
//! a lock-free ring ([`TcpPacket`], no datagram encoded here and decoded
//! there), each stamped with the time it was handed over.
//!
//! The thread hands packets over at the playout rate, on a deadline
//! schedule from the stream's first packet, and stops reading while it
//! waits, so TCP flow control slows a server that sends faster than real
//! time (the original server sends its first 3 s unpaced, then 1.25× real
//! time): every sample is mixed, none overflows the jitter buffer. A ring
//! that is full (the mixing thread is behind) is waited for, never dropped.
//! When the server pauses for two packet durations, the samples pending in
//! a partial packet go out as a shorter packet, so the end of a stream
//! that never closes its connection is heard too.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use proto::{Message, SampleFormat, Spec, TcpClient};

/// Largest packet in samples: 10 ms at 192 kHz.
pub const MAX_TCP_PACKET: usize = 1920;

/// A packet pulled from a TCP source.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket {
    /// The server's address (the source's identity).
    pub from: SocketAddr,
    /// When it was handed to the mixing thread (node time).
    pub handed_over: Duration,
    /// Its sequence number.
    pub seq: u32,
    len: usize,
    samples: [i16; MAX_TCP_PACKET],
}

impl TcpPacket {
    /// The packet's mono samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples[..self.len]
    }
}

/// Packets queued between a TCP source thread and the mixing thread.
pub const RING_PACKETS: usize = 64;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A schedule this far behind (the server paused) starts afresh.
const BEHIND: Duration = Duration::from_millis(20);

/// Turns Samples messages into mono packets of a fixed size.
#[derive(Debug, Clone)]
pub struct Packetizer {
    packet: usize,
    channels: usize,
    pending: Vec<i16>,
    seq: u32,
}

impl Packetizer {
    /// Packets of `packet` mono samples (at most [`MAX_TCP_PACKET`]),
    /// starting at sequence number 0.
    pub fn new(packet: usize) -> Self {
        let packet = packet.clamp(1, MAX_TCP_PACKET);
        Self {
            packet,
            channels: 1,
            pending: Vec::with_capacity(packet),
            seq: 0,
        }
    }

    /// Sets the channel count announced by a Spec (samples are interleaved).
    pub fn set_channels(&mut self, channels: usize) {
        self.channels = channels.max(1);
    }

    /// Adds interleaved samples; calls `emit(seq, samples)` with each
    /// complete packet.
    pub fn push(&mut self, interleaved: &[i16], mut emit: impl FnMut(u32, &[i16])) {
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
                self.emit_pending(&mut emit);
            }
        }
    }

    /// Emits the samples still pending as a shorter packet, if there are any.
    pub fn flush(&mut self, mut emit: impl FnMut(u32, &[i16])) {
        if !self.pending.is_empty() {
            self.emit_pending(&mut emit);
        }
    }

    fn emit_pending(&mut self, emit: &mut impl FnMut(u32, &[i16])) {
        emit(self.seq, &self.pending);
        self.seq = self.seq.wrapping_add(1);
        self.pending.clear();
    }
}

/// Hands packets to the mixing thread on a deadline schedule at the
/// playout rate.
struct Handover {
    ring: rtrb::Producer<TcpPacket>,
    epoch: Instant,
    rate: f64,
    /// When the schedule started and the samples handed over since.
    schedule: Option<(Instant, u64)>,
}

impl Handover {
    /// Starts a new schedule with the next packet (a new connection).
    fn restart_schedule(&mut self) {
        self.schedule = None;
    }

    /// Waits for the packet's deadline and for room in the ring, then
    /// hands it over; `false` if the node is stopping.
    fn send(&mut self, from: SocketAddr, seq: u32, samples: &[i16], stop: &AtomicBool) -> bool {
        let now = Instant::now();
        let (start, sent) = *self.schedule.get_or_insert((now, 0));
        let due = start + Duration::from_secs_f64(sent as f64 / self.rate);
        if now > due + BEHIND {
            // The server paused: pace from here rather than burst to catch up.
            self.schedule = Some((now, 0));
        } else if due > now {
            thread::sleep(due - now);
        }
        if let Some((_, sent)) = self.schedule.as_mut() {
            *sent += samples.len() as u64;
        }
        let mut packet = TcpPacket {
            from,
            handed_over: Duration::ZERO,
            seq,
            len: samples.len(),
            samples: [0; MAX_TCP_PACKET],
        };
        packet.samples[..samples.len()].copy_from_slice(samples);
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            if self.ring.slots() > 0 {
                packet.handed_over = self.epoch.elapsed();
                let _ = self.ring.push(packet);
                return true;
            }
            // Full: the mixing thread is behind. Wait, never drop.
            thread::sleep(Duration::from_millis(1));
        }
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

/// Starts the thread that pulls `server` until `stop` is set, handing
/// packets to `ring`; `epoch` is the node's time zero.
///
/// With `rt_priority` (the mixing thread's, when it has one) the thread
/// runs under `SCHED_FIFO` one step below the mixing thread: its handover
/// is on a deadline schedule, and a normal thread on a busy machine can be
/// held off the CPU for longer than the jitter target (measured on a
/// loaded 2-core machine: packets late and the source re-anchored). It
/// sleeps or blocks on its socket between packets, so it cannot starve
/// anything.
pub fn spawn(
    server: String,
    rate: u32,
    ring: rtrb::Producer<TcpPacket>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    rt_priority: Option<u8>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("tcp-source-{server}"))
        .spawn(move || {
            if let Some(priority) = rt_priority {
                // Refused without the privilege: the mixing thread's own
                // promotion already said so once.
                let _ = crate::realtime::promote_current_thread(priority.saturating_sub(1).max(1));
            }
            let mut handover = Handover {
                ring,
                epoch,
                rate: f64::from(rate),
                schedule: None,
            };
            pull_loop(&server, rate, &mut handover, &stop)
        })
}

fn pull_loop(server: &str, rate: u32, handover: &mut Handover, stop: &AtomicBool) {
    let mut backoff = MIN_BACKOFF;
    let packet = (rate as usize / 100).max(1); // 10 ms
    let mut packetizer = Packetizer::new(packet);
    while !stop.load(Ordering::Relaxed) {
        handover.restart_schedule();
        match pull_once(server, rate, &mut packetizer, handover, stop) {
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
    handover: &mut Handover,
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
    // Two packet durations of silence from the server flush a partial packet.
    let idle = Duration::from_secs_f64(2.0 * packetizer.packet as f64 / f64::from(rate));
    client
        .set_read_timeout(Some(idle))
        .map_err(|e| e.to_string())?;
    log::info!("TCP source {server}: connected");
    let mut spec_seen = false;
    let mut stopping = false;
    let mut send = |seq: u32, samples: &[i16]| {
        if !stopping {
            stopping = !handover.send(addr, seq, samples, stop);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let message = match client.recv_message() {
            Ok(Some(m)) => m,
            Ok(None) => {
                // The stream ended: its tail goes out as a shorter last packet.
                packetizer.flush(&mut send);
                return Ok(());
            }
            Err(e) if e.is_timeout() => {
                packetizer.flush(&mut send);
                continue;
            }
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
                packetizer.push(&samples, &mut send);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(p: &mut Packetizer, samples: &[i16]) -> Vec<(u32, Vec<i16>)> {
        let mut out = Vec::new();
        p.push(samples, |seq, s| out.push((seq, s.to_vec())));
        out
    }

    #[test]
    fn packets_are_equal_size_with_consecutive_numbers() {
        let mut p = Packetizer::new(4);
        assert!(packets(&mut p, &[1, 2, 3]).is_empty());
        assert_eq!(
            packets(&mut p, &[4, 5, 6, 7, 8, 9]),
            vec![(0, vec![1, 2, 3, 4]), (1, vec![5, 6, 7, 8])]
        );
        let mut last = Vec::new();
        p.flush(|seq, s| last.push((seq, s.to_vec())));
        assert_eq!(last, vec![(2, vec![9])]);
        p.flush(|_, _| panic!("nothing pending"));
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let mut p = Packetizer::new(3);
        p.set_channels(2);
        let out = packets(&mut p, &[100, 200, -3, -4, i16::MAX, i16::MAX]);
        assert_eq!(out, vec![(0, vec![150, -4, i16::MAX])]);
    }

    #[test]
    fn handover_paces_and_waits_for_room() {
        let (ring, mut rx) = rtrb::RingBuffer::new(2);
        let stop = AtomicBool::new(false);
        let mut h = Handover {
            ring,
            epoch: Instant::now(),
            rate: 1000.0,
            schedule: None,
        };
        let from = SocketAddr::from(([127, 0, 0, 1], 1));
        // 10 samples at 1 kHz: the second packet is due 10 ms after the first.
        assert!(h.send(from, 0, &[1; 10], &stop));
        assert!(h.send(from, 1, &[2; 10], &stop));
        let a = rx.pop().unwrap();
        let b = rx.pop().unwrap();
        assert_eq!((a.seq, a.samples(), b.seq), (0, &[1; 10][..], 1));
        assert!(b.handed_over >= a.handed_over + Duration::from_millis(10));
        // A full ring and a stop request: nothing is dropped silently, the
        // send reports that the node stops.
        assert!(h.send(from, 2, &[3; 10], &stop));
        assert!(h.send(from, 3, &[3; 10], &stop));
        stop.store(true, Ordering::Relaxed);
        assert!(!h.send(from, 4, &[3; 10], &stop));
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
