//! The run loop's RTP edge: what arrives in RTCP becomes core inputs
//! (sender reports, SDES names, BYE), receiver report blocks from the core
//! become RTCP packets, and the mix becomes an RTP L16 stream with sender
//! reports. Nothing here allocates per packet: buffers are the caller's or
//! made once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

use proto::rtcp::{self, Compound, RtcpPacket, RtcpWriter, SenderInfo};
use proto::rtp::{self, RtpHeader};
use proto::rtp_map::{payload_type_for, RtpFormat};

use crate::nodecore::name::SourceName;
use crate::nodecore::source::ReceiverReport;
use crate::nodecore::{RtcpInput, REPORT_INTERVAL};

/// A random 32-bit value (SSRCs, initial sequence numbers and timestamps,
/// as RFC 3550 asks), from the standard library's per-process random keys.
pub fn random_u32() -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Hands what an RTCP compound packet says to `feed`: each sender report,
/// each source's name (its SDES NAME, or its CNAME when the packet has no
/// NAME for it) and each BYE. Undecodable parts end the walk quietly (the
/// packet's earlier parts still count).
pub fn rtcp_inputs(bytes: &[u8], mut feed: impl FnMut(RtcpInput)) {
    for packet in Compound::new(bytes) {
        match packet {
            Ok(RtcpPacket::SenderReport(info, _)) => feed(RtcpInput::SenderReport {
                ssrc: info.ssrc,
                ntp_middle: info.ntp_middle(),
            }),
            Ok(RtcpPacket::Sdes(items)) => {
                // Chunk by chunk: a NAME wins over a CNAME of the same source.
                let mut current: Option<(u32, SourceName, bool)> = None;
                for item in items {
                    if current.is_some_and(|(ssrc, _, _)| ssrc != item.ssrc) {
                        if let Some((ssrc, name, cname)) = current.take() {
                            feed(RtcpInput::Name { ssrc, name, cname });
                        }
                    }
                    let is_name = item.kind == rtcp::SDES_NAME;
                    let is_cname = item.kind == rtcp::SDES_CNAME;
                    if !(is_name || is_cname) {
                        continue;
                    }
                    let name = SourceName::from_utf8_lossy(item.text);
                    if name.is_empty() {
                        continue;
                    }
                    match current {
                        Some((_, _, false)) if is_cname => {}
                        _ => current = Some((item.ssrc, name, is_cname)),
                    }
                }
                if let Some((ssrc, name, cname)) = current {
                    feed(RtcpInput::Name { ssrc, name, cname });
                }
            }
            Ok(RtcpPacket::Bye(ssrcs)) => {
                for ssrc in ssrcs {
                    feed(RtcpInput::Bye { ssrc });
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Writes a receiver report from `reporter` with one block into `buf`.
pub fn encode_receiver_report(reporter: u32, report: &ReceiverReport, buf: &mut [u8]) -> usize {
    let mut w = RtcpWriter::new(buf);
    // A buffer of at least 64 bytes always holds one block.
    let _ = w.receiver_report(reporter, &[report.block]);
    w.finish()
}

/// Payload bytes of one RTP packet of the mix at most (so a packet never
/// fragments on Ethernet).
const MAX_PAYLOAD: usize = rtp::MAX_L16_PAYLOAD;

/// How the mix is cut into RTP packets: `packets` per block of
/// `block_frames` stereo frames, each at most 10 ms and at most
/// [`MAX_PAYLOAD`] bytes.
pub fn packets_per_block(block_frames: usize, rate: u32) -> usize {
    let ten_ms = (rate as usize / 100).max(1);
    let by_size = (block_frames * 4).div_ceil(MAX_PAYLOAD);
    let by_time = block_frames.div_ceil(ten_ms);
    by_size.max(by_time).max(1)
}

/// The packet duration SDP's `a=ptime` states, in whole ms (at least 1).
pub fn ptime_ms(block_frames: usize, rate: u32) -> u32 {
    let frames = block_frames as f64 / packets_per_block(block_frames, rate) as f64;
    ((frames * 1000.0 / f64::from(rate)).round() as u32).max(1)
}

/// The mix as one RTP L16 stereo stream to one destination, with RTCP
/// sender reports (and SDES CNAME) to the destination's port + 1.
#[derive(Debug)]
pub struct RtpStream {
    dest: SocketAddr,
    rtcp_dest: SocketAddr,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    packets: u32,
    octets: u32,
    next_report: Duration,
    cname: SourceName,
    /// When the last block was sent and how long it lasted.
    last_block: Option<(Duration, Duration)>,
}

impl RtpStream {
    /// A stream of the mix at `rate` to `dest`, first sender report at `now`.
    pub fn new(dest: SocketAddr, rate: u32, now: Duration, cname: SourceName) -> Self {
        Self {
            dest,
            rtcp_dest: rtcp_dest_of(dest),
            ssrc: random_u32(),
            payload_type: payload_type_for(RtpFormat { rate, channels: 2 }),
            seq: random_u32() as u16,
            timestamp: random_u32(),
            packets: 0,
            octets: 0,
            next_report: now,
            cname,
            last_block: None,
        }
    }

    /// Where the stream goes.
    pub fn dest(&self) -> SocketAddr {
        self.dest
    }

    /// Sends one mixed block (interleaved stereo) as RTP packets from
    /// `socket`, then a sender report from `rtcp` when one is due; `buf`
    /// holds one datagram.
    ///
    /// Timestamps are sampling instants: after a pause (the node was idle,
    /// no stream to mix) they jump by the time that passed, and the first
    /// packet after it carries the marker bit, so a receiver placing by
    /// timestamp (another node) plays the new audio now, not late by the
    /// pause.
    pub fn send_block(
        &mut self,
        socket: &UdpSocket,
        rtcp: &UdpSocket,
        block: &[i16],
        rate: u32,
        now: Duration,
        buf: &mut [u8],
    ) -> io::Result<()> {
        let frames = block.len() / 2;
        let packets = packets_per_block(frames, rate);
        let duration = Duration::from_secs_f64(frames as f64 / f64::from(rate));
        let mut marker = self.packets == 0;
        if let Some((at, last)) = self.last_block {
            let gap = now.saturating_sub(at).saturating_sub(last);
            if gap > 4 * duration {
                self.timestamp = self
                    .timestamp
                    .wrapping_add((gap.as_secs_f64() * f64::from(rate)) as u32);
                marker = true;
            }
        }
        self.last_block = Some((now, duration));
        let mut result = Ok(());
        for k in 0..packets {
            let part = &block[2 * (k * frames / packets)..2 * ((k + 1) * frames / packets)];
            if part.is_empty() {
                continue;
            }
            let header = RtpHeader {
                marker: std::mem::take(&mut marker),
                payload_type: self.payload_type,
                seq: self.seq,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
            };
            let Ok(len) = rtp::encode_l16(&header, part, buf) else {
                continue;
            };
            if let Err(e) = socket.send_to(&buf[..len], self.dest) {
                result = Err(e);
            }
            self.seq = self.seq.wrapping_add(1);
            self.timestamp = self.timestamp.wrapping_add((part.len() / 2) as u32);
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(2 * part.len() as u32);
        }
        if now >= self.next_report {
            self.next_report = next_report_after(now);
            let len = self.sender_report(buf);
            // A lost report is only a lost report: the audio went out.
            let _ = rtcp.send_to(&buf[..len], self.rtcp_dest);
        }
        result
    }

    /// A sender report and SDES CNAME in `buf`; its length.
    fn sender_report(&self, buf: &mut [u8]) -> usize {
        sender_report(
            buf,
            SenderInfo {
                ssrc: self.ssrc,
                ntp: rtcp::ntp_time(SystemTime::now()),
                rtp_timestamp: self.timestamp,
                packets: self.packets,
                octets: self.octets,
            },
            self.cname,
        )
    }

    /// Says goodbye (RTCP BYE to the destination's port + 1).
    pub fn bye(&self, socket: &UdpSocket, buf: &mut [u8]) {
        send_bye(socket, self.ssrc, self.rtcp_dest, buf);
    }
}

/// Where the RTCP of an RTP stream to `dest` goes: the port + 1 (RFC 3550
/// §11), as ffmpeg, GStreamer and our recorder expect.
pub fn rtcp_dest_of(dest: SocketAddr) -> SocketAddr {
    let mut rtcp = dest;
    rtcp.set_port(dest.port().wrapping_add(1));
    rtcp
}

/// An RTCP sender report of `info` with an SDES CNAME of `cname` in
/// `buf` (what every RTP output of the node sends); its length.
pub fn sender_report(buf: &mut [u8], info: SenderInfo, cname: SourceName) -> usize {
    let mut w = RtcpWriter::new(buf);
    let _ = w.sender_report(&info, &[]);
    let _ = w.sdes(info.ssrc, &[(rtcp::SDES_CNAME, cname.as_str())]);
    w.finish()
}

/// An RTCP BYE for `ssrc` to `rtcp_dest` from `socket` (a lost one is
/// only a lost goodbye: the receiver times the stream out).
pub fn send_bye(socket: &UdpSocket, ssrc: u32, rtcp_dest: SocketAddr, buf: &mut [u8]) {
    let mut w = RtcpWriter::new(buf);
    let _ = w.bye(ssrc);
    let len = w.finish();
    let _ = socket.send_to(&buf[..len], rtcp_dest);
}

/// When the next sender report is due after one sent at `now`: RFC 3550's
/// interval, spread between 0.5 and 1.5 of it.
pub fn next_report_after<T: std::ops::Add<Duration, Output = T>>(now: T) -> T {
    let spread = 0.5 + f64::from(random_u32() % 1000) / 1000.0;
    now + REPORT_INTERVAL.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_stay_within_ten_ms_and_one_datagram() {
        // 10 ms blocks at 44.1 kHz: 441 frames = 1764 bytes, two packets.
        assert_eq!(packets_per_block(441, 44_100), 2);
        assert_eq!(ptime_ms(441, 44_100), 5);
        // 48 kHz, 10 ms: 1920 bytes, two packets of 5 ms.
        assert_eq!(packets_per_block(480, 48_000), 2);
        // 5 ms blocks at 44.1 kHz: 220 frames = 880 bytes, one packet.
        assert_eq!(packets_per_block(220, 44_100), 1);
        assert_eq!(ptime_ms(220, 44_100), 5);
        // 20 ms blocks: at least two packets by time.
        assert_eq!(packets_per_block(960, 48_000), 3);
    }

    #[test]
    fn timestamps_jump_over_a_pause_with_the_marker_set() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut stream = RtpStream::new(
            rx.local_addr().unwrap(),
            44_100,
            Duration::ZERO,
            SourceName::new("node"),
        );
        let block = vec![1i16; 440];
        let mut buf = [0u8; 1500];
        let mut got = Vec::new();
        for at_ms in [0, 5, 1005] {
            stream
                .send_block(
                    &tx,
                    &tx,
                    &block,
                    44_100,
                    Duration::from_millis(at_ms),
                    &mut buf,
                )
                .unwrap();
            let n = rx.recv(&mut buf).unwrap();
            let p = rtp::RtpPacket::decode(&buf[..n]).unwrap();
            got.push((p.marker, p.timestamp));
        }
        let (t0, t1, t2) = (got[0].1, got[1].1, got[2].1);
        assert_eq!((got[0].0, got[1].0, got[2].0), (true, false, true));
        assert_eq!(t1.wrapping_sub(t0), 220);
        // The third block began 1000 ms after the second: 44 100 frames.
        assert_eq!(t2.wrapping_sub(t1), 44_100);
    }

    #[test]
    fn names_prefer_sdes_name_over_cname() {
        let mut buf = [0u8; 256];
        let mut w = RtcpWriter::new(&mut buf);
        w.sdes(
            5,
            &[(rtcp::SDES_CNAME, "user@host"), (rtcp::SDES_NAME, "bass")],
        )
        .unwrap();
        w.sdes(6, &[(rtcp::SDES_CNAME, "other@host")]).unwrap();
        w.bye(6).unwrap();
        let len = w.finish();
        let mut got = Vec::new();
        rtcp_inputs(&buf[..len], |i| got.push(i));
        assert_eq!(
            got,
            vec![
                RtcpInput::Name {
                    ssrc: 5,
                    name: SourceName::new("bass"),
                    cname: false
                },
                RtcpInput::Name {
                    ssrc: 6,
                    name: SourceName::new("other@host"),
                    cname: true
                },
                RtcpInput::Bye { ssrc: 6 },
            ]
        );
    }

    #[test]
    fn sends_the_mix_as_rtp_with_a_sender_report() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // The RTCP port is the RTP port + 1.
        let port = rx.local_addr().unwrap().port() + 1;
        let rtcp_rx = UdpSocket::bind(("127.0.0.1", port)).expect("port + 1 free");
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut stream = RtpStream::new(
            rx.local_addr().unwrap(),
            44_100,
            Duration::ZERO,
            SourceName::new("node"),
        );
        let block: Vec<i16> = (0..882).map(|k| k as i16).collect();
        let mut buf = [0u8; 1500];
        stream
            .send_block(&tx, &tx, &block, 44_100, Duration::ZERO, &mut buf)
            .unwrap();
        let mut got = Vec::new();
        let mut first_ts = None;
        for _ in 0..2 {
            let n = rx.recv(&mut buf).unwrap();
            let p = rtp::RtpPacket::decode(&buf[..n]).unwrap();
            assert_eq!(p.payload_type, 10);
            let ts = *first_ts.get_or_insert(p.timestamp);
            assert_eq!(p.timestamp.wrapping_sub(ts) as usize, got.len() / 2);
            got.extend(
                p.payload
                    .chunks(2)
                    .map(|b| i16::from_be_bytes([b[0], b[1]])),
            );
        }
        assert_eq!(got, block);
        let n = rtcp_rx.recv(&mut buf).unwrap();
        let first = Compound::new(&buf[..n]).next().unwrap().unwrap();
        assert!(
            matches!(first, RtcpPacket::SenderReport(info, _) if info.packets == 2 && info.octets == 1764)
        );
    }
}
