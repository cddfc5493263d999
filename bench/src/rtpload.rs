//! The RTP load generator behind `audioload --rtp` and `audiortpvs`: N
//! synthetic RTP L16 sources (RFC 3551, static payload type 11 =
//! L16/44100/1), each with its own SSRC, sequence numbers and timestamps,
//! paced on the same deadline schedule as [`crate::load`]: source `i`
//! sends packet `k` at `t0 + k × chunk + i × chunk / N`.
//!
//! All sources send from one unconnected socket, so every packet that is
//! due at a wake-up goes out in one `sendmmsg(2)` call (up to
//! [`SEND_BATCH`] per call), each message with its own destination: a
//! receiver that tells sources apart by SSRC (the node) gets them all on
//! one port, and one that needs a port per stream (GStreamer's `udpsrc`)
//! gets source `i` on `dest port + i` ([`RtpLoadConfig::port_per_source`]).
//!
//! Each source's signal is a constant (DC) level, so a receiver of the mix
//! can tell, frame by frame, whether every source was in it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proto::rtp::{encode_l16, RtpHeader, HEADER_LEN};
use proto::rtp_map::PT_L16_MONO_44100;

use crate::load::{LoadStats, Schedule, LATE_SEND};

/// Most datagrams handed to one `sendmmsg` call.
pub const SEND_BATCH: usize = 256;

/// The SSRC of source `i` (distinct for every source, not sequential
/// in the low bits so hashing receivers see spread values).
pub fn ssrc_of(i: usize) -> u32 {
    0x5eed_0000u32.wrapping_add((i as u32).wrapping_mul(0x9e37_79b9))
}

/// Settings of one RTP load run.
#[derive(Debug, Clone)]
pub struct RtpLoadConfig {
    /// Number of sources (one SSRC each).
    pub sources: usize,
    /// Where the sources send (source `i` to port + `i` when
    /// `port_per_source`).
    pub dest: SocketAddr,
    /// Send source `i` to `dest`'s port + `i` instead of all to `dest`.
    pub port_per_source: bool,
    /// Samples per packet (441 = 10 ms at 44.1 kHz).
    pub chunk_frames: usize,
    /// Sample rate of the schedule and the RTP timestamps (44 100 for PT 11).
    pub rate: u32,
    /// Stop after this long (`None`: until the stop flag is set).
    pub duration: Option<Duration>,
    /// Longest sleep between wake-ups.
    pub tick: Duration,
    /// The constant sample value every source sends.
    pub level: i16,
    /// Count late sends only after this much of the run.
    pub count_late_after: Duration,
    /// Opus payloads to send in turn instead of L16 (payload type 111,
    /// 48 kHz timestamps), all of one length; empty: L16.
    pub opus: Vec<Vec<u8>>,
}

impl RtpLoadConfig {
    /// `sources` sources of 10 ms PT 11 packets to `dest`, each at `level`.
    pub fn new(sources: usize, dest: SocketAddr, level: i16) -> Self {
        Self {
            sources,
            dest,
            port_per_source: false,
            chunk_frames: 441,
            rate: 44_100,
            duration: None,
            tick: Duration::from_millis(1),
            level,
            count_late_after: Duration::ZERO,
            opus: Vec::new(),
        }
    }

    /// The same sources sending 10 ms Opus packets: `packets` cycled
    /// (each padded to the longest, so every datagram has one length).
    pub fn with_opus(mut self, mut packets: Vec<Vec<u8>>) -> Self {
        let longest = packets.iter().map(Vec::len).max().unwrap_or(0) + 2;
        for p in &mut packets {
            let len = p.len();
            p.resize(longest, 0);
            // Opus's own padding (RFC 6716 §3.2.5) keeps the packet
            // valid; it fills the whole buffer (the call returns 0, OK).
            opus::packet::pad(p, len).expect("pad an Opus packet");
        }
        self.opus = packets;
        self.chunk_frames = proto::opus::OPUS_RATE as usize / 100;
        self.rate = proto::opus::OPUS_RATE;
        self
    }

    /// Where source `i` sends.
    pub fn dest_of(&self, i: usize) -> SocketAddr {
        let mut d = self.dest;
        if self.port_per_source {
            d.set_port(self.dest.port() + i as u16);
        }
        d
    }
}

/// The level per source that sums `sources` DC sources to about `total`
/// (at least 1).
pub fn level_for(sources: usize, total: i32) -> i16 {
    (total / sources.max(1) as i32).clamp(1, i32::from(i16::MAX)) as i16
}

/// Live counters of a run, readable from other threads while it runs.
#[derive(Debug, Default)]
pub struct RtpLoadCounters {
    /// Datagrams handed to the kernel so far.
    pub sent: AtomicU64,
    /// The generator thread's id (0 until it starts).
    pub tid: AtomicU64,
}

/// Packet `k` of source `i` into `buf` (which must hold
/// [`packet_len`] bytes); returns its length.
pub fn write_packet(
    config: &RtpLoadConfig,
    i: usize,
    k: u64,
    payload: &[i16],
    buf: &mut [u8],
) -> usize {
    let header = RtpHeader {
        marker: k == 0,
        payload_type: if config.opus.is_empty() {
            PT_L16_MONO_44100
        } else {
            proto::opus::PT_OPUS_DEFAULT
        },
        seq: k as u16,
        timestamp: (k as u32).wrapping_mul(config.chunk_frames as u32),
        ssrc: ssrc_of(i),
    };
    if !config.opus.is_empty() {
        let opus = &config.opus[(k as usize + i) % config.opus.len()];
        header.write(buf).expect("buffer sized by packet_len");
        buf[HEADER_LEN..HEADER_LEN + opus.len()].copy_from_slice(opus);
        return HEADER_LEN + opus.len();
    }
    encode_l16(&header, payload, buf).expect("buffer sized by packet_len")
}

/// Bytes of one packet.
pub fn packet_len(config: &RtpLoadConfig) -> usize {
    match config.opus.first() {
        Some(p) => HEADER_LEN + p.len(),
        None => HEADER_LEN + 2 * config.chunk_frames,
    }
}

/// Runs the generator until `config.duration` has passed or `stop` is set.
pub fn run(
    config: &RtpLoadConfig,
    stop: &AtomicBool,
    counters: &RtpLoadCounters,
) -> io::Result<LoadStats> {
    // SAFETY: gettid has no preconditions.
    counters
        .tid
        .store(unsafe { libc::gettid() } as u64, Ordering::SeqCst);
    let n = config.sources as u64;
    let mut stats = LoadStats::default();
    if n == 0 {
        return Ok(stats);
    }
    let bind: SocketAddr = if config.dest.is_ipv4() {
        if config.dest.ip().is_loopback() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = UdpSocket::bind(bind)?;
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(4 << 20);
    let dests: Vec<socket2::SockAddr> = (0..config.sources)
        .map(|i| socket2::SockAddr::from(config.dest_of(i)))
        .collect();
    let payload = vec![config.level; config.chunk_frames];
    let len = packet_len(config);
    let mut bufs = vec![0u8; len * SEND_BATCH];
    let mut batch: Vec<usize> = Vec::with_capacity(SEND_BATCH); // source of each message
    let schedule = Schedule {
        sources: u128::from(n),
        chunk_frames: config.chunk_frames as u128,
        rate: u128::from(config.rate),
    };
    let start = Instant::now();
    let end = config.duration;
    let mut next: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = start.elapsed();
        if end.is_some_and(|end| now >= end) {
            break;
        }
        let mut last = next;
        while schedule.due(last) <= now && end.is_none_or(|end| schedule.due(last) < end) {
            last += 1;
        }
        if last > next {
            let lag = now - schedule.due(next);
            stats.max_lag = stats.max_lag.max(lag);
            if lag >= LATE_SEND && now >= config.count_late_after {
                stats.sent_late += (next..last)
                    .take_while(|&e| now - schedule.due(e) >= LATE_SEND)
                    .count() as u64;
            }
            if last - next > n {
                stats.catch_ups += 1;
            }
        }
        // Send numbers in order: a source's packets stay in order, and
        // sources interleave as scheduled.
        let mut e = next;
        while e < last {
            batch.clear();
            let upto = last.min(e + SEND_BATCH as u64);
            for (j, s) in (e..upto).enumerate() {
                let (k, i) = (s / n, (s % n) as usize);
                write_packet(config, i, k, &payload, &mut bufs[j * len..(j + 1) * len]);
                batch.push(i);
            }
            let sent = send_many(&socket, &bufs, len, &batch, &dests);
            stats.syscalls += 1;
            match sent {
                Ok(m) => {
                    stats.sent += m as u64;
                    stats.send_errors += (batch.len() - m) as u64;
                }
                Err(_) => stats.send_errors += batch.len() as u64,
            }
            e = upto;
        }
        counters.sent.store(stats.sent, Ordering::Relaxed);
        next = last;
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

/// One `sendmmsg` of the first `batch.len()` packets of `bufs` (each `len`
/// bytes), message `j` to `dests[batch[j]]`. Returns how many were sent.
fn send_many(
    socket: &UdpSocket,
    bufs: &[u8],
    len: usize,
    batch: &[usize],
    dests: &[socket2::SockAddr],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut iovs: Vec<libc::iovec> = (0..batch.len())
        .map(|j| libc::iovec {
            iov_base: bufs[j * len..].as_ptr() as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(batch)
        .map(|(iov, &i)| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = dests[i].as_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_namelen = dests[i].len();
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: msgs holds msgs.len() initialised headers whose iovecs point
    // into `bufs` and whose names point into `dests`, all alive for the call.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proto::rtp::RtpPacket;
    use std::collections::HashMap;

    #[test]
    fn opus_packets_are_padded_to_one_valid_length() {
        let dest = "127.0.0.1:9".parse().unwrap();
        let mut enc = proto::opus::Encoder::new(1, 64_000, 10).unwrap();
        let mut buf = [0u8; proto::opus::MAX_PACKET];
        let packets: Vec<Vec<u8>> = (0..3)
            .map(|k| {
                let pcm: Vec<i16> = (0..480)
                    .map(|n| ((n * (k + 1)) % 500) as i16 * 20)
                    .collect();
                let n = enc.encode(&pcm, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect();
        let config = RtpLoadConfig::new(1, dest, 1).with_opus(packets);
        let len = packet_len(&config);
        let mut out = vec![0u8; len];
        for k in 0..3 {
            assert_eq!(write_packet(&config, 0, k, &[], &mut out), len);
            let p = proto::rtp::RtpPacket::decode(&out).unwrap();
            assert_eq!((p.payload_type, p.timestamp), (111, 480 * k as u32));
            assert_eq!(proto::opus::packet_frames(p.payload).unwrap(), 480);
        }
    }

    #[test]
    fn packet_is_pt11_l16_with_ssrc_seq_and_timestamp() {
        let config = RtpLoadConfig::new(3, "127.0.0.1:9".parse().unwrap(), 100);
        let mut buf = vec![0u8; packet_len(&config)];
        let payload = vec![100i16; 441];
        let len = write_packet(&config, 2, 70_000, &payload, &mut buf);
        assert_eq!(len, 12 + 882);
        let p = RtpPacket::decode(&buf[..len]).unwrap();
        assert_eq!(p.payload_type, 11);
        assert_eq!(p.ssrc, ssrc_of(2));
        assert_eq!(p.seq, (70_000u32 % 65_536) as u16);
        assert_eq!(p.timestamp, 70_000 * 441);
        assert!(!p.marker);
        assert_eq!(&p.payload[..2], &100i16.to_be_bytes());
        assert_ne!(ssrc_of(0), ssrc_of(1));
        assert_eq!(level_for(2000, 16_000), 8);
        assert_eq!(level_for(1, 100_000), i16::MAX);
    }

    /// Every source arrives on its own port (port per source) with its own
    /// SSRC and consecutive sequence numbers from 0.
    #[test]
    fn sources_arrive_in_order_one_port_each() {
        let rxs: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        // Three consecutive ports are not guaranteed free: use the first
        // socket's port for all, sending per-port only in the arithmetic.
        let mut config = RtpLoadConfig::new(3, rxs[0].local_addr().unwrap(), 5);
        assert_eq!(config.dest_of(2), config.dest);
        config.port_per_source = true;
        assert_eq!(config.dest_of(2).port(), config.dest.port() + 2);
        config.port_per_source = false;
        config.duration = Some(Duration::from_millis(200));
        let counters = RtpLoadCounters::default();
        let stats = run(&config, &AtomicBool::new(false), &counters).unwrap();
        assert_eq!(stats.send_errors, 0);
        assert!(stats.sent >= 3 * 15, "sent only {}", stats.sent);
        assert!(stats.syscalls <= stats.sent);
        assert_eq!(counters.sent.load(Ordering::Relaxed), stats.sent);
        let rx = &rxs[0];
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut seqs: HashMap<u32, Vec<u16>> = HashMap::new();
        let mut buf = [0u8; 2048];
        while let Ok(len) = rx.recv(&mut buf) {
            let p = RtpPacket::decode(&buf[..len]).unwrap();
            assert_eq!(p.payload.len(), 882);
            seqs.entry(p.ssrc).or_default().push(p.seq);
        }
        assert_eq!(seqs.len(), 3, "one SSRC per source");
        let total: usize = seqs.values().map(Vec::len).sum();
        assert_eq!(total as u64, stats.sent);
        for s in seqs.values() {
            let want: Vec<u16> = (0..s.len() as u16).collect();
            assert_eq!(s, &want);
        }
    }
}
