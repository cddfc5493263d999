//! `--rtp`: the chunks as RTP packets with L16 payloads (RFC 3550/3551)
//! and the RTCP that goes with them, instead of the original datagrams.
//!
//! A random SSRC, initial sequence number and initial timestamp (RFC 3550
//! §5.1; `--rtp-seed` makes them reproducible), the timestamp advancing by
//! the frames of each packet, the payload type of [`payload_type_for`] and
//! the marker bit on the first packet. A chunk whose payload would exceed
//! [`MAX_L16_PAYLOAD`] goes out as several packets of near-equal size, one
//! right after the other at the chunk's deadline.
//!
//! RTCP leaves from a second socket bound to the RTP port + 1 when that is
//! free (else any port) for the destination port + 1: a sender report with
//! SDES (CNAME, and NAME with `--name`) after the first packet and then at
//! RFC 3550's randomised interval, and SR + SDES + BYE at the end. Receiver
//! reports arriving on that socket are read by a helper thread as they
//! arrive (so the round trip from LSR/DLSR is not delayed by the send
//! schedule), logged once each, and the last one goes into the summary.
//!
//! With `--redundancy` the packets carry RFC 2198 redundancy
//! ([`crate::red_out`]) and are cut small enough that a packet and its
//! copies fit one datagram.
//!
//! With `--codec opus` each chunk is one Opus packet ([`crate::opus_out`])
//! of payload type `--opus-pt` (111), its timestamps at 48 kHz.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use proto::rtcp::{
    ntp_time, Compound, ReportBlock, RtcpPacket, RtcpWriter, SenderInfo, SDES_CNAME, SDES_NAME,
};
use proto::rtp::{encode_l16, RtpHeader, HEADER_LEN, MAX_L16_PAYLOAD};
use proto::rtp_map::{payload_type_for, RtpFormat};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::burst::{BurstReport, ErrorBurst};
use crate::opus_out::{OpusOptions, OpusPacketizer};
use crate::red_out::RedEncoder;
use crate::udp_out::default_bind_for;

/// RFC 3550 §6.2: the minimum RTCP interval.
pub const DEFAULT_RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// RFC 3550 §6.3.1: the randomised interval is divided by e − 3/2 so that
/// the timer reconsideration does not make reports rarer than intended.
const COMPENSATION: f64 = std::f64::consts::E - 1.5;

/// The `--rtp` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RtpOptions {
    /// Channels on the wire (1 or 2).
    pub channels: u16,
    /// SDES NAME (`--name`).
    pub name: Option<String>,
    /// Seed for SSRC, first sequence number, first timestamp and the RTCP
    /// timer (`None`: from the operating system).
    pub seed: Option<u64>,
    /// The nominal RTCP interval (`--rtcp-interval`).
    pub rtcp_interval: Duration,
    /// Earlier packets copied into each packet (`--redundancy`, 0: off).
    pub redundancy: usize,
    /// The RED payload type (`--red-pt`).
    pub red_payload_type: u8,
    /// `--codec opus`: Opus instead of L16.
    pub opus: Option<OpusOptions>,
}

/// What a receiver last reported about this stream (an RTCP report block).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiverView {
    /// The receiver's SSRC.
    pub reporter: u32,
    /// Fraction of packets lost since its previous report (0.0–1.0).
    pub fraction_lost: f64,
    /// Packets lost since the start.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// Round-trip time from LSR/DLSR, when the receiver echoed a report.
    pub round_trip: Option<Duration>,
}

impl fmt::Display for ReceiverView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "receiver {:08x} reports {:.1}% lost since its last report, {} lost in all, \
             jitter {:.2} ms, highest sequence {}",
            self.reporter,
            self.fraction_lost * 100.0,
            self.cumulative_lost,
            self.jitter_ms,
            self.highest_seq
        )?;
        if let Some(rtt) = self.round_trip {
            write!(f, ", round trip {:.2} ms", rtt.as_secs_f64() * 1e3)?;
        }
        Ok(())
    }
}

impl ReceiverView {
    /// Reads a report block about our stream; `now_ntp` (the receipt time)
    /// gives the round trip when the block echoes a sender report.
    pub fn from_block(reporter: u32, b: &ReportBlock, rate: u32, now_ntp: u64) -> Self {
        let round_trip = (b.last_sr != 0).then(|| {
            // RFC 3550 §6.4.1: A − LSR − DLSR, in 1/65536 s.
            let a = (now_ntp >> 16) as u32;
            let units = a
                .wrapping_sub(b.last_sr)
                .wrapping_sub(b.delay_since_last_sr);
            Duration::from_secs_f64(f64::from(units) / 65536.0)
        });
        Self {
            reporter,
            fraction_lost: f64::from(b.fraction_lost) / 256.0,
            cumulative_lost: b.cumulative_lost,
            highest_seq: b.highest_seq,
            jitter_ms: f64::from(b.jitter) * 1e3 / f64::from(rate.max(1)),
            round_trip: round_trip.filter(|d| *d < Duration::from_secs(60)),
        }
    }
}

/// How many packets a chunk of `frames` frames of `channels` samples
/// needs, and the frames of each: near-equal, each payload at most
/// [`MAX_L16_PAYLOAD`] bytes, the larger ones first.
pub fn split_frames(frames: usize, channels: u16) -> impl Iterator<Item = usize> {
    split_within(frames, MAX_L16_PAYLOAD / (2 * usize::from(channels.max(1))))
}

/// `frames` cut into near-equal packets of at most `per_packet` frames,
/// the larger ones first.
pub fn split_within(frames: usize, per_packet: usize) -> impl Iterator<Item = usize> {
    let per_packet = per_packet.max(1);
    let packets = frames.div_ceil(per_packet).max(1);
    let (base, extra) = (frames / packets, frames % packets);
    (0..packets).map(move |i| base + usize::from(i < extra))
}

/// The next RTCP interval: RFC 3550 §6.3.1 for a session of two members
/// whose bandwidth share never exceeds the minimum, i.e. the nominal
/// interval × a uniform factor in 0.5–1.5 / (e − 3/2).
pub fn rtcp_interval(nominal: Duration, rng: &mut impl Rng) -> Duration {
    nominal.mul_f64(rng.random_range(0.5..1.5) / COMPENSATION)
}

/// `user@host` for SDES CNAME (RFC 3550 §6.5.1), from `$USER` and the
/// host name; `audiostreamer@host` without a user.
pub fn cname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && !u.contains('@'))
        .unwrap_or_else(|| "audiostreamer".into());
    format!("{user}@{host}")
}

/// Sends chunks as RTP packets to one destination, and its RTCP.
pub struct RtpOut {
    socket: UdpSocket,
    rtcp: UdpSocket,
    dest: SocketAddr,
    rtcp_dest: SocketAddr,
    channels: u16,
    payload_type: u8,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    first: bool,
    packets: u32,
    octets: u32,
    cname: String,
    name: Option<String>,
    rng: StdRng,
    nominal: Duration,
    next_rtcp: Option<Duration>,
    packet: Vec<u8>,
    stereo: Vec<i16>,
    /// Most frames per packet.
    max_frames: usize,
    red: Option<RedEncoder>,
    opus: Option<OpusPacketizer>,
    errors: ErrorBurst,
    reports: Reports,
}

/// The helper thread that reads receiver reports, and what it read.
struct Reports {
    last: Arc<Mutex<Option<ReceiverView>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reports {
    /// Starts reading `socket` (with a short read timeout) for reports
    /// about `ssrc`.
    fn start(socket: UdpSocket, ssrc: u32, rate: u32) -> io::Result<Self> {
        let last = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (Arc::clone(&last), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("rtcp-reports".into())
            .spawn(move || read_reports(&socket, ssrc, rate, &l, &st))?;
        Ok(Self {
            last,
            stop,
            thread: Some(thread),
        })
    }

    fn last(&self) -> Option<ReceiverView> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The report thread's loop: every report block about `ssrc` is logged
/// and kept as the last one.
fn read_reports(
    socket: &UdpSocket,
    ssrc: u32,
    rate: u32,
    last: &Mutex<Option<ReceiverView>>,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let len = match socket.recv_from(&mut buf) {
            Ok((len, _)) => len,
            // A timeout, EINTR, or the ICMP error of an earlier send to a
            // receiver without RTCP: nothing to read now.
            Err(_) => continue,
        };
        let now_ntp = ntp_time(SystemTime::now());
        for packet in Compound::new(&buf[..len]) {
            let (reporter, blocks) = match packet {
                Ok(RtcpPacket::ReceiverReport(reporter, blocks)) => (reporter, blocks),
                Ok(RtcpPacket::SenderReport(info, blocks)) => (info.ssrc, blocks),
                Ok(_) => continue,
                Err(e) => {
                    log::debug!("dropped an RTCP packet: {e}");
                    break;
                }
            };
            for block in blocks.filter(|b| b.ssrc == ssrc) {
                let view = ReceiverView::from_block(reporter, &block, rate, now_ntp);
                log::info!("{view}");
                *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(view);
            }
        }
    }
}

impl RtpOut {
    /// Binds the RTP socket (`bind`, or an ephemeral port of the
    /// destination's family) and the RTCP socket next to it.
    pub fn bind(
        dest: SocketAddr,
        bind: Option<SocketAddr>,
        rate: u32,
        opts: &RtpOptions,
    ) -> anyhow::Result<Self> {
        let local = bind.unwrap_or_else(|| default_bind_for(dest));
        let socket = UdpSocket::bind(local)
            .map_err(|e| anyhow::anyhow!("cannot bind the RTP socket to {local}: {e}"))?;
        let rtp_local = socket.local_addr()?;
        let rtcp = rtp_local
            .port()
            .checked_add(1)
            .and_then(|p| UdpSocket::bind(SocketAddr::new(rtp_local.ip(), p)).ok())
            .map_or_else(|| UdpSocket::bind(SocketAddr::new(rtp_local.ip(), 0)), Ok)
            .map_err(|e| anyhow::anyhow!("cannot bind the RTCP socket: {e}"))?;
        rtcp.set_read_timeout(Some(Duration::from_millis(50)))?;
        let rtcp_port = dest.port().checked_add(1).ok_or_else(|| {
            anyhow::anyhow!("destination port 65535 leaves no port for RTCP (port + 1)")
        })?;
        let mut rng = match opts.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let channels = opts.channels.clamp(1, 2);
        let ssrc = rng.random();
        let seq = rng.random();
        let timestamp = rng.random();
        let max_payload_samples = MAX_L16_PAYLOAD / 2;
        let reports = Reports::start(rtcp.try_clone()?, ssrc, rate)
            .map_err(|e| anyhow::anyhow!("cannot start the RTCP report thread: {e}"))?;
        let opus = opts
            .opus
            .as_ref()
            .map(|o| OpusPacketizer::new(channels, o))
            .transpose()
            .map_err(|e| anyhow::anyhow!("cannot start the Opus encoder: {e}"))?;
        let payload_type = match &opts.opus {
            Some(o) => o.payload_type,
            None => payload_type_for(RtpFormat { rate, channels }),
        };
        let red = (opts.redundancy > 0)
            .then(|| RedEncoder::new(opts.redundancy, opts.red_payload_type, payload_type));
        let max_frames = match (&red, &opus) {
            (_, Some(o)) => o.frame(),
            (Some(_), None) => RedEncoder::max_frames(channels, opts.redundancy),
            (None, None) => MAX_L16_PAYLOAD / (2 * usize::from(channels)),
        };
        Ok(Self {
            socket,
            rtcp,
            dest,
            rtcp_dest: SocketAddr::new(dest.ip(), rtcp_port),
            channels,
            payload_type,
            ssrc,
            seq,
            timestamp,
            first: true,
            packets: 0,
            octets: 0,
            cname: cname(),
            name: opts.name.clone(),
            rng,
            nominal: opts.rtcp_interval,
            next_rtcp: None,
            packet: vec![0; HEADER_LEN + MAX_L16_PAYLOAD.max(proto::opus::MAX_PACKET)],
            stereo: Vec::with_capacity(max_payload_samples),
            max_frames,
            red,
            opus,
            errors: ErrorBurst::new(Duration::from_secs(10)),
            reports,
        })
    }

    /// The local address of the RTP socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The local address of the RTCP socket.
    pub fn rtcp_local_addr(&self) -> io::Result<SocketAddr> {
        self.rtcp.local_addr()
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Whether the packets carry Opus.
    pub fn is_opus(&self) -> bool {
        self.opus.is_some()
    }

    /// The payload type in use (of the blocks, with redundancy).
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// The RED payload type of the packets, with `--redundancy`.
    pub fn red_payload_type(&self) -> Option<u8> {
        self.red.as_ref().map(RedEncoder::red_type)
    }

    /// Channels on the wire.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The timestamp of the next packet.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Failed sends so far.
    pub fn send_failures(&self) -> u64 {
        self.errors.total_failures()
    }

    /// The last receiver report about this stream, if any arrived.
    pub fn last_report(&self) -> Option<ReceiverView> {
        self.reports.last()
    }

    /// Sends one chunk of interleaved samples with `in_channels` per frame
    /// (a mono source on a stereo stream is duplicated to both channels)
    /// at `now` (time since the stream started), as one or more packets;
    /// then RTCP when due.
    pub fn send(&mut self, samples: &[i16], in_channels: u16, now: Duration) {
        let in_ch = usize::from(in_channels.max(1));
        let out_ch = usize::from(self.channels);
        let frames = samples.len() / in_ch;
        let mut at = 0;
        for n in split_within(frames, self.max_frames) {
            let part = &samples[at * in_ch..(at + n) * in_ch];
            at += n;
            if in_ch == out_ch {
                self.send_packet(part, n, now);
            } else {
                // Only mono → stereo reaches here (the configuration never
                // gives a stereo source to a mono stream). The buffer is
                // taken out and put back: no allocation per packet.
                let mut stereo = std::mem::take(&mut self.stereo);
                stereo.clear();
                stereo.extend(part.iter().flat_map(|&s| [s; 2]));
                self.send_packet(&stereo, n, now);
                self.stereo = stereo;
            }
        }
        if self.next_rtcp.is_none_or(|t| now >= t) {
            self.send_rtcp(false);
            self.next_rtcp = Some(now + rtcp_interval(self.nominal, &mut self.rng));
        }
    }

    fn send_packet(&mut self, payload: &[i16], frames: usize, now: Duration) {
        if payload.is_empty() {
            return;
        }
        let header = RtpHeader {
            marker: self.first,
            payload_type: self.payload_type,
            seq: self.seq,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        // An Opus packet lasts its whole frame, a padded last one too.
        let frames = self.opus.as_ref().map_or(frames, OpusPacketizer::frame);
        self.timestamp = self.timestamp.wrapping_add(frames as u32);
        let encoded = match (self.red.as_mut(), self.opus.as_mut()) {
            (_, Some(opus)) => opus.encode(&header, payload, &mut self.packet),
            (Some(red), None) => red.encode(&header, payload, &mut self.packet),
            (None, None) => encode_l16(&header, payload, &mut self.packet),
        };
        let len = match encoded {
            Ok(len) => len,
            // Cannot happen: the buffer holds the largest payload.
            Err(e) => {
                log::error!("RTP packet {} could not be encoded: {e}", header.seq);
                return;
            }
        };
        match self.socket.send_to(&self.packet[..len], self.dest) {
            Ok(_) => {
                self.packets = self.packets.wrapping_add(1);
                // RFC 3550: payload octets, the RED headers and copies
                // included.
                self.octets = self.octets.wrapping_add((len - HEADER_LEN) as u32);
                if let Some(BurstReport::Ended { failures }) = self.errors.on_success() {
                    log::info!(
                        "sending RTP to {} works again after {failures} failed packets",
                        self.dest
                    );
                }
            }
            // Nothing listening there (an ICMP port unreachable of an
            // earlier packet): counted like any failed send.
            Err(e) => match self.errors.on_error(now) {
                Some(BurstReport::Started) => {
                    log::warn!(
                        "RTP send to {} failed: {e} (streaming continues)",
                        self.dest
                    )
                }
                Some(BurstReport::Ongoing { failures }) => log::warn!(
                    "RTP send to {} still failing: {e} ({failures} packets lost so far)",
                    self.dest
                ),
                _ => {}
            },
        }
    }

    /// SR + SDES (+ BYE at the end), to the destination's RTCP port.
    fn send_rtcp(&mut self, bye: bool) {
        let info = SenderInfo {
            ssrc: self.ssrc,
            ntp: ntp_time(SystemTime::now()),
            // The audio just sent ends at `timestamp`: that is now.
            rtp_timestamp: self.timestamp,
            packets: self.packets,
            octets: self.octets,
        };
        let mut buf = [0u8; 1024];
        let mut w = RtcpWriter::new(&mut buf);
        let mut items: Vec<(u8, &str)> = vec![(SDES_CNAME, &self.cname)];
        if let Some(name) = &self.name {
            items.push((SDES_NAME, name));
        }
        // Cannot fail: SR (28) + SDES (≤ 4 + 4 + 2 × 257 + 4) + BYE (8) < 1024.
        let written = w
            .sender_report(&info, &[])
            .and_then(|()| w.sdes(self.ssrc, &items))
            .and_then(|()| if bye { w.bye(self.ssrc) } else { Ok(()) });
        if let Err(e) = written {
            log::error!("RTCP packet could not be encoded: {e}");
            return;
        }
        let len = w.finish();
        if let Err(e) = self.rtcp.send_to(&buf[..len], self.rtcp_dest) {
            // Receivers that do not speak RTCP refuse it; RTP is unaffected.
            log::debug!("RTCP send to {} failed: {e}", self.rtcp_dest);
        }
    }

    /// Ends the stream: SR + SDES + BYE; stops reading reports.
    pub fn finish(&mut self) {
        self.send_rtcp(true);
        self.reports.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_split_below_the_payload_limit() {
        // 441 mono frames = 882 bytes: one packet.
        assert_eq!(split_frames(441, 1).collect::<Vec<_>>(), vec![441]);
        // 441 stereo frames = 1764 bytes > 1460: two packets, 221 + 220.
        assert_eq!(split_frames(441, 2).collect::<Vec<_>>(), vec![221, 220]);
        // The largest that fits: 365 stereo frames = 1460 bytes.
        assert_eq!(split_frames(365, 2).collect::<Vec<_>>(), vec![365]);
        assert_eq!(split_frames(366, 2).collect::<Vec<_>>(), vec![183, 183]);
        for (frames, ch) in [(32_767, 2), (32_767, 1), (1, 2), (731, 1)] {
            let parts: Vec<_> = split_frames(frames, ch).collect();
            assert_eq!(parts.iter().sum::<usize>(), frames);
            assert!(parts
                .iter()
                .all(|&n| n >= 1 && 2 * n * usize::from(ch) <= MAX_L16_PAYLOAD));
        }
    }

    #[test]
    fn interval_is_randomised_around_the_nominal() {
        let mut rng = StdRng::seed_from_u64(7);
        let nominal = Duration::from_secs(5);
        let lo = nominal.mul_f64(0.5 / COMPENSATION);
        let hi = nominal.mul_f64(1.5 / COMPENSATION);
        let draws: Vec<Duration> = (0..1000)
            .map(|_| rtcp_interval(nominal, &mut rng))
            .collect();
        assert!(draws.iter().all(|d| *d >= lo && *d <= hi));
        let mean = draws.iter().map(Duration::as_secs_f64).sum::<f64>() / 1000.0;
        assert!((mean - 5.0 / COMPENSATION).abs() < 0.15, "{mean}");
    }

    #[test]
    fn report_block_is_read_as_the_receiver_sees_it() {
        let block = ReportBlock {
            ssrc: 1,
            fraction_lost: 64,
            cumulative_lost: 12,
            highest_seq: 70_000,
            jitter: 441,
            last_sr: 0x0001_0000,
            delay_since_last_sr: 0x8000,
        };
        // Received 1.5 s after the echoed SR (whose middle bits are 1 s).
        let now = (0x0002_8000u64) << 16;
        let v = ReceiverView::from_block(9, &block, 44_100, now);
        assert_eq!(v.fraction_lost, 0.25);
        assert_eq!(v.cumulative_lost, 12);
        assert_eq!(v.jitter_ms, 10.0);
        // 1.5 s since the SR, 0.5 s held by the receiver: 1 s round trip.
        assert_eq!(v.round_trip, Some(Duration::from_secs(1)));
        let line = v.to_string();
        assert!(line.contains("25.0% lost") && line.contains("12 lost in all"));
        assert!(line.contains("jitter 10.00 ms"), "{line}");
    }

    #[test]
    fn cname_is_user_at_host() {
        let c = cname();
        let (user, host) = c.split_once('@').unwrap();
        assert!(!user.is_empty() && !host.is_empty());
    }
}
