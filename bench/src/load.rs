//! The load generator behind `audioload`: N synthetic mono-with-seq sources
//! from one thread, each on its own UDP socket (its own source port, so the
//! node sees N streams), paced on a deadline schedule.
//!
//! Source `i` sends packet `k` at `t0 + k × chunk + i × chunk / N`: the
//! sources are spread evenly over each chunk period (as independent
//! streamers would be), and the schedule is computed from the packet count,
//! so it never drifts. The thread wakes at most every `tick` and sends every
//! packet that is due. A source with several packets due at once (the
//! generator was descheduled for longer than a chunk) sends them with one
//! `sendmmsg(2)` call; in steady state each source has one packet due per
//! wake-up and `sendmmsg` cannot batch across sockets, so the cost is one
//! system call per packet (see docs/performance.md).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto::udp_mono::{encode_mono, mono_datagram_len};

/// Settings of one load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Number of sources (one socket each).
    pub sources: usize,
    /// Where every source sends.
    pub dest: SocketAddr,
    /// Samples per packet (441 = 10 ms at 44.1 kHz).
    pub chunk_frames: usize,
    /// Sample rate the schedule is computed at.
    pub rate: u32,
    /// Stop after this long (`None`: until the stop flag is set).
    pub duration: Option<Duration>,
    /// Longest sleep between wake-ups.
    pub tick: Duration,
    /// Peak amplitude of each source's signal (kept small so many sources
    /// sum without clipping).
    pub amplitude: i16,
    /// Count late sends ([`LoadStats::sent_late`]) only after this much of
    /// the run (the warm-up is not part of a measured window).
    pub count_late_after: Duration,
}

impl LoadConfig {
    /// `sources` sources of `chunk_ms` packets at 44.1 kHz to `dest`.
    pub fn new(sources: usize, dest: SocketAddr, chunk_ms: f64) -> Self {
        let rate = 44_100;
        Self {
            sources,
            dest,
            chunk_frames: ((chunk_ms * f64::from(rate) / 1000.0).round() as usize).max(1),
            rate,
            duration: None,
            tick: Duration::from_millis(1),
            amplitude: 8,
            count_late_after: Duration::ZERO,
        }
    }
}

/// What a load run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Datagrams whose send failed.
    pub send_errors: u64,
    /// System calls made to send.
    pub syscalls: u64,
    /// Wake-ups that found a source with more than one packet due.
    pub catch_ups: u64,
    /// Largest delay of a send behind its scheduled time.
    pub max_lag: Duration,
    /// Datagrams sent [`LATE_SEND`] or more behind their scheduled time
    /// (after [`LoadConfig::count_late_after`]): late at a node with the
    /// default 20 ms target through no fault of the node (the generator was
    /// starved of CPU).
    pub sent_late: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// One synthetic source: its socket and its packet (seq rewritten per send).
struct Source {
    socket: UdpSocket,
    packet: Vec<u8>,
}

/// A low-level sine-like triangle wave, different per source.
fn samples(k: usize, len: usize, amplitude: i16) -> Vec<i16> {
    let a = i32::from(amplitude.max(1));
    let period = 4 * a;
    (0..len)
        .map(|n| {
            let p = (n as i32 + k as i32 * 7) % period;
            let v = if p < 2 * a { p - a } else { 3 * a - p };
            v as i16
        })
        .collect()
}

/// Opens one socket per source, connected to `dest`.
fn open_sources(config: &LoadConfig) -> io::Result<Vec<Source>> {
    let bind: SocketAddr = if config.dest.ip().is_loopback() {
        if config.dest.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        }
    } else if config.dest.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    (0..config.sources)
        .map(|k| {
            let socket = UdpSocket::bind(bind)?;
            socket.connect(config.dest)?;
            let mut packet = vec![0; mono_datagram_len(config.chunk_frames)];
            encode_mono(
                0,
                &samples(k, config.chunk_frames, config.amplitude),
                &mut packet,
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            Ok(Source { socket, packet })
        })
        .collect()
}

/// Sends `packets` (already carrying their seqs) on one connected socket:
/// one `sendmmsg` call for several, a plain `send` for one. Returns how
/// many were sent.
fn send_batch(socket: &UdpSocket, packets: &[&[u8]]) -> io::Result<usize> {
    if let [one] = packets {
        return socket.send(one).map(|_| 1);
    }
    send_many(socket, packets)
}

#[cfg(target_os = "linux")]
fn send_many(socket: &UdpSocket, packets: &[&[u8]]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut iovs: Vec<libc::iovec> = packets
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: msgs points to msgs.len() initialised headers whose iovecs
    // point into `packets`, all alive for the duration of the call; the
    // socket is connected, so no addresses are needed.
    let n = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            0,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn send_many(socket: &UdpSocket, packets: &[&[u8]]) -> io::Result<usize> {
    for p in packets {
        socket.send(p)?;
    }
    Ok(packets.len())
}

/// The schedule: when send number `e` (packet `e / N` of source `e % N`)
/// is due, relative to the start.
pub(crate) struct Schedule {
    pub(crate) sources: u128,
    pub(crate) chunk_frames: u128,
    pub(crate) rate: u128,
}

impl Schedule {
    pub(crate) fn due(&self, e: u64) -> Duration {
        let e = u128::from(e);
        let (k, i) = (e / self.sources, e % self.sources);
        let chunk_nanos_times_rate = self.chunk_frames * 1_000_000_000;
        // k × chunk + i × chunk / N, in ns, computed exactly before dividing.
        let nanos = (k * self.sources + i) * chunk_nanos_times_rate / (self.rate * self.sources);
        Duration::from_nanos(nanos as u64)
    }
}

/// How far behind schedule a send counts in [`LoadStats::sent_late`].
pub const LATE_SEND: Duration = Duration::from_millis(20);

/// Runs the generator until `config.duration` has passed or `stop` is set.
pub fn run(config: &LoadConfig, stop: &AtomicBool) -> io::Result<LoadStats> {
    let mut sources = open_sources(config)?;
    let n = sources.len() as u64;
    let mut stats = LoadStats::default();
    if n == 0 {
        return Ok(stats);
    }
    let schedule = Schedule {
        sources: u128::from(n),
        chunk_frames: config.chunk_frames as u128,
        rate: u128::from(config.rate),
    };
    let start = Instant::now();
    let end = config.duration;
    let mut next: u64 = 0; // the next send number
    let mut scratch: Vec<Vec<u8>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = start.elapsed();
        if end.is_some_and(|end| now >= end) {
            break;
        }
        // Sends due now: [next, last).
        let mut last = next;
        while schedule.due(last) <= now && end.is_none_or(|end| schedule.due(last) < end) {
            last += 1;
        }
        if last > next {
            let lag = now - schedule.due(next);
            stats.max_lag = stats.max_lag.max(lag);
            if lag >= LATE_SEND && now >= config.count_late_after {
                // Rare (a starved generator), so the per-send division is fine.
                stats.sent_late += (next..last)
                    .take_while(|&e| now - schedule.due(e) >= LATE_SEND)
                    .count() as u64;
            }
        }
        if last - next <= n {
            // Each source has at most one packet due: one send each.
            for e in next..last {
                let source = &mut sources[(e % n) as usize];
                source.packet[..4].copy_from_slice(&((e / n) as u32).to_be_bytes());
                count(&mut stats, send_batch(&source.socket, &[&source.packet]), 1);
            }
        } else {
            // Catching up: each source sends its due packets in one call.
            stats.catch_ups += 1;
            for (i, source) in sources.iter_mut().enumerate() {
                let i = i as u64;
                let first_k = (next.saturating_sub(i)).div_ceil(n);
                let end_k = (last.saturating_sub(i)).div_ceil(n);
                let mut k = first_k;
                while k < end_k {
                    let batch = (end_k - k).min(64) as usize;
                    scratch.resize_with(batch, Vec::new);
                    for (j, buf) in scratch.iter_mut().enumerate() {
                        buf.clear();
                        buf.extend_from_slice(&source.packet);
                        buf[..4].copy_from_slice(&((k + j as u64) as u32).to_be_bytes());
                    }
                    let refs: Vec<&[u8]> = scratch[..batch].iter().map(Vec::as_slice).collect();
                    count(&mut stats, send_batch(&source.socket, &refs), batch);
                    k += batch as u64;
                }
            }
        }
        next = last;
        // Sleep until the next send is due, but at least a tick's worth of
        // sends are batched per wake-up when they are closer than that.
        let wake = schedule
            .due(next)
            .max(now + config.tick.min(Duration::from_micros(500)));
        let wake = match end {
            Some(end) => wake.min(end),
            None => wake,
        };
        let now = start.elapsed();
        if wake > now {
            std::thread::sleep((wake - now).min(config.tick));
        }
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn count(stats: &mut LoadStats, result: io::Result<usize>, wanted: usize) {
    stats.syscalls += 1;
    match result {
        Ok(sent) => {
            stats.sent += sent as u64;
            stats.send_errors += (wanted - sent) as u64;
        }
        Err(_) => stats.send_errors += wanted as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::MonoDatagram;
    use std::collections::HashMap;

    #[test]
    fn schedule_spreads_sources_over_each_chunk() {
        let s = Schedule {
            sources: 4,
            chunk_frames: 441,
            rate: 44_100,
        };
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_micros(2500));
        assert_eq!(s.due(4), Duration::from_millis(10));
        assert_eq!(s.due(4 * 100 + 3), Duration::from_micros(1_007_500));
    }

    #[test]
    fn signal_stays_within_amplitude() {
        let x = samples(3, 441, 8);
        assert!(x.iter().all(|&s| (-8..=8).contains(&s)));
        assert!(x.iter().any(|&s| s != x[0]));
    }

    /// Every packet decodes with proto, and each source (one source port)
    /// carries consecutive sequence numbers from 0.
    #[test]
    fn packets_decode_with_consecutive_seqs_per_source() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock = socket2::SockRef::from(&rx);
        let _ = sock.set_recv_buffer_size(1 << 20);
        let mut config = LoadConfig::new(5, rx.local_addr().unwrap(), 10.0);
        config.duration = Some(Duration::from_millis(200));
        let stats = run(&config, &AtomicBool::new(false)).unwrap();
        assert_eq!(stats.send_errors, 0);
        assert!(stats.sent >= 5 * 15, "sent only {}", stats.sent);
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut seqs: HashMap<SocketAddr, Vec<u32>> = HashMap::new();
        let mut buf = [0u8; 2048];
        let mut received = 0;
        while let Ok((len, from)) = rx.recv_from(&mut buf) {
            let d = MonoDatagram::decode(&buf[..len]).expect("decodes");
            assert_eq!(d.sample_count(), 441);
            seqs.entry(from).or_default().push(d.seq);
            received += 1;
        }
        assert_eq!(received, stats.sent);
        assert_eq!(seqs.len(), 5, "one source port per source");
        for (from, s) in seqs {
            let want: Vec<u32> = (0..s.len() as u32).collect();
            assert_eq!(s, want, "{from}");
        }
    }

    /// A generator far behind its schedule catches up with sendmmsg and
    /// still sends every packet once, in order.
    #[test]
    fn catch_up_sends_every_packet_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let src = UdpSocket::bind("127.0.0.1:0").unwrap();
        src.connect(rx.local_addr().unwrap()).unwrap();
        let packets: Vec<Vec<u8>> = (0..3u32)
            .map(|seq| {
                let mut b = vec![0; mono_datagram_len(2)];
                encode_mono(seq, &[1, 2], &mut b).unwrap();
                b
            })
            .collect();
        let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        assert_eq!(send_batch(&src, &refs).unwrap(), 3);
        let mut buf = [0u8; 64];
        for seq in 0..3 {
            let len = rx.recv(&mut buf).unwrap();
            assert_eq!(MonoDatagram::decode(&buf[..len]).unwrap().seq, seq);
        }
    }
}
