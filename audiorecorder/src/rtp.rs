//! `--rtp PORT` / `--sdp FILE`: receiving RTP with L16 payloads (RFC 3550,
//! RFC 3551) or Opus (RFC 7587) as another source of placed stereo frames
//! for the pipeline.
//!
//! The format comes from the payload type: the static 10 (L16/44100/2)
//! and 11 (L16/44100/1), and dynamic ones from `--rtp-map` (96/97 are
//! stereo/mono at `--sample-rate` unless redeclared) or the SDP file. A
//! packet of an unknown type, of a rate other than the recorder's, or with
//! a payload that is not whole frames is counted and dropped. A mono
//! stream is recorded and played as stereo with both channels equal.
//!
//! Opus (payload type 111, or declared `PT=opus/48000/2` by `--rtp-map`
//! or the SDP) needs the recorder at 48 kHz, Opus's clock; other rates
//! are refused like L16 at another rate. Its packets are decoded in order
//! ([`proto::opus_stream`]): a lost packet is recovered from the FEC of the
//! packet after it (counted), and what FEC does not cover stays a gap
//! that `--plc` fills as for L16. A reordered Opus packet arrives after
//! its place was decoded past and is dropped as too late.
//!
//! The first valid packet's SSRC (and sender address) is followed; packets
//! of other SSRCs are counted and dropped until that stream has been
//! silent for `--source-timeout-ms` or said BYE. Sequence numbers drive the
//! loss, reorder and duplicate counters ([`crate::rtp_stats`]); timestamps
//! place the audio ([`crate::rtp_place`]), lost audio becoming silence of
//! its length.
//!
//! RTCP: a second socket on the RTP port + 1 (or, if that is taken, any
//! port) receives sender reports, SDES and BYE (and so does the RTP port,
//! for senders that multiplex, RFC 5761); receiver reports with SDES CNAME
//! go back to where the sender reports came from, else to the RTP source
//! port + 1, at RFC 3550's randomised interval.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proto::opus::OPUS_RATE;
use proto::opus_stream::{PieceKind, StreamDecoder};
use proto::rtcp::{Compound, RtcpPacket, RtcpWriter, SDES_CNAME, SDES_NAME};
use proto::rtp::{is_rtcp, RtpPacket};
use proto::rtp_map::{RtpFormat, RtpMap};
use socket2::{Domain, Protocol, Socket, Type};

use crate::pipeline::Pipeline;
use crate::plc::GapFiller;
use crate::rtp_place::{Placed, Placer, Pushed};
use crate::rtp_stats::{SeqClass, SourceStats};
use crate::source::{Pin, WARN_EVERY};
use crate::stats::Stats;
use proto::plc::PlcMode;

/// How long a receive call waits: short, so held audio and RTCP timers
/// are served promptly.
const POLL: Duration = Duration::from_millis(20);

/// How long the RTCP reader waits before it checks whether to stop.
const RTCP_POLL: Duration = Duration::from_millis(50);

/// Kernel receive buffer asked for (as for the original UDP format).
const RECV_BUFFER: usize = 1 << 19;

/// RFC 3550 §6.3.1's compensation of the randomised interval (e − 3/2).
const COMPENSATION: f64 = std::f64::consts::E - 1.5;

/// The RTP receiver's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpSettings {
    /// Local address and port of the RTP socket (port 0: any free pair).
    pub bind: SocketAddr,
    /// A multicast group to join (from an SDP's `c=` line).
    pub group: Option<IpAddr>,
    /// Payload types and their formats.
    pub map: RtpMap,
    /// `--source`: accept packets only from this sender.
    pub pin: Option<Pin>,
    /// Silence after which another SSRC may be followed.
    pub source_timeout: Duration,
    /// The nominal RTCP report interval.
    pub rtcp_interval: Duration,
    /// Frames of audio held behind a gap for a late packet to fill it.
    pub reorder_frames: usize,
    /// The recorder's sample rate: other rates are refused.
    pub sample_rate: u32,
    /// How lost audio is filled.
    pub plc: PlcMode,
}

/// The two sockets of an RTP session.
pub struct Sockets {
    /// RTP (and multiplexed RTCP).
    pub rtp: UdpSocket,
    /// RTCP.
    pub rtcp: UdpSocket,
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_error(addr: SocketAddr, e: io::Error) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "UDP port {} on {} is already in use",
            addr.port(),
            addr.ip()
        ),
        io::ErrorKind::AddrNotAvailable => {
            anyhow::anyhow!("cannot bind {addr}: no such local address")
        }
        _ => anyhow::anyhow!("cannot bind UDP {addr}: {e}"),
    }
}

/// Binds the RTP socket and the RTCP socket on the next port (for port 0,
/// a free pair is looked for; if port + 1 is taken, RTCP gets any port and
/// a warning).
pub fn bind(settings: &RtpSettings) -> anyhow::Result<Sockets> {
    let addr = settings.bind;
    let (rtp, rtcp) = if addr.port() == 0 {
        let mut pair = None;
        for _ in 0..32 {
            let rtp = udp_socket(addr).map_err(|e| bind_error(addr, e))?;
            let port = rtp.local_addr()?.port();
            let Some(next) = port.checked_add(1) else {
                continue;
            };
            if let Ok(rtcp) = udp_socket(SocketAddr::new(addr.ip(), next)) {
                pair = Some((rtp, rtcp));
                break;
            }
        }
        match pair {
            Some(p) => p,
            None => {
                let rtp = udp_socket(addr).map_err(|e| bind_error(addr, e))?;
                let rtcp =
                    udp_socket(SocketAddr::new(addr.ip(), 0)).map_err(|e| bind_error(addr, e))?;
                (rtp, rtcp)
            }
        }
    } else {
        let rtp = udp_socket(addr).map_err(|e| bind_error(addr, e))?;
        let next = addr
            .port()
            .checked_add(1)
            .map(|p| SocketAddr::new(addr.ip(), p));
        let rtcp = match next.map(udp_socket) {
            Some(Ok(s)) => s,
            _ => {
                let s =
                    udp_socket(SocketAddr::new(addr.ip(), 0)).map_err(|e| bind_error(addr, e))?;
                log::warn!(
                    "RTCP port {} is not free; receiving RTCP on {} instead (senders' reports \
                     will not reach it unless multiplexed on the RTP port)",
                    addr.port().wrapping_add(1),
                    s.local_addr().map(|a| a.to_string()).unwrap_or_default()
                );
                s
            }
        };
        (rtp, rtcp)
    };
    if let Some(group) = settings.group.filter(IpAddr::is_multicast) {
        let joined = match group {
            IpAddr::V4(g) => rtp.join_multicast_v4(&g, &std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(g) => rtp.join_multicast_v6(&g, 0),
        };
        joined.map_err(|e| anyhow::anyhow!("cannot join multicast group {group}: {e}"))?;
    }
    rtp.set_read_timeout(Some(POLL))
        .map_err(|e| anyhow::anyhow!("cannot set the socket's read timeout: {e}"))?;
    rtcp.set_read_timeout(Some(RTCP_POLL))
        .map_err(|e| anyhow::anyhow!("cannot set the socket's read timeout: {e}"))?;
    Ok(Sockets { rtp, rtcp })
}

/// A small random-number source without another dependency: SplitMix64
/// seeded from the standard library's per-process random hasher keys.
struct Rand(u64);

impl Rand {
    fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        Self(h.finish())
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// RFC 3550 §6.3.1: `nominal` × uniform 0.5–1.5 / (e − 3/2).
    fn interval(&mut self, nominal: Duration) -> Duration {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        nominal.mul_f64((0.5 + u) / COMPENSATION)
    }
}

/// The stream being followed.
struct Followed {
    ssrc: u32,
    from: SocketAddr,
    last_heard: Instant,
    stats: SourceStats,
    /// Where its sender reports come from.
    rtcp_from: Option<SocketAddr>,
    next_report: Instant,
    named: bool,
}

/// `user@host` style CNAME of the recorder.
fn cname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("audiorecorder@{host}")
}

/// The receiver's state across packets.
struct Receiver<'a> {
    settings: &'a RtpSettings,
    stats: &'a Stats,
    sockets: &'a Sockets,
    placer: Placer,
    filler: GapFiller,
    followed: Option<Followed>,
    own_ssrc: u32,
    cname: String,
    rand: Rand,
    epoch: Instant,
    last_packet: Instant,
    warned_pt: [bool; 128],
    last_foreign_warn: Option<Instant>,
    unreported_foreign: u64,
    /// The followed stream said BYE.
    bye: bool,
    /// The followed stream's Opus decoder, when it is Opus.
    opus: Option<StreamDecoder>,
}

/// Subtracts `n` from a counter without going below zero.
fn saturating_sub(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// Hands placed audio to the pipeline (lost audio concealed, `--plc`).
fn deliver(pipeline: &mut Pipeline, stats: &Stats, filler: &mut GapFiller, placed: Placed) {
    match placed {
        Placed::Audio(frames) => {
            // A gap is handed on with the audio after it, joined to it.
            if let Some(gap) = filler.on_audio(&frames) {
                pipeline.push(gap);
            }
            pipeline.push(frames);
        }
        Placed::Silence(n) => {
            Stats::add(&stats.rtp_concealed_frames, n as u64);
            let concealed = filler.fill(n);
            Stats::add(&stats.concealed_frames, concealed);
        }
    }
}

/// Hands on everything `placer` holds (gaps as concealment), the last gap
/// too when no audio followed it.
fn flush(placer: &mut Placer, pipeline: &mut Pipeline, stats: &Stats, filler: &mut GapFiller) {
    placer.flush(&mut |p| deliver(pipeline, stats, filler, p));
    if let Some(gap) = filler.take_gap() {
        pipeline.push(gap);
    }
}

impl<'a> Receiver<'a> {
    fn new(settings: &'a RtpSettings, stats: &'a Stats, sockets: &'a Sockets) -> Self {
        let mut rand = Rand::new();
        let own_ssrc = rand.next() as u32;
        let max_fill =
            (settings.source_timeout.as_secs_f64() * f64::from(settings.sample_rate)) as usize;
        Self {
            settings,
            stats,
            sockets,
            placer: Placer::new(settings.reorder_frames, max_fill),
            filler: GapFiller::new(settings.plc, settings.sample_rate),
            followed: None,
            own_ssrc,
            cname: cname(),
            rand,
            epoch: Instant::now(),
            last_packet: Instant::now(),
            warned_pt: [false; 128],
            last_foreign_warn: None,
            unreported_foreign: 0,
            bye: false,
            opus: None,
        }
    }

    /// Arrival time in RTP timestamp units (for the jitter).
    fn arrival_units(&self, now: Instant) -> u32 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        (nanos * u128::from(self.settings.sample_rate) / 1_000_000_000) as u32
    }

    fn warn_foreign(&mut self, what: &str, from: SocketAddr, now: Instant) {
        self.unreported_foreign += 1;
        let due = self
            .last_foreign_warn
            .is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY);
        if due {
            self.last_foreign_warn = Some(now);
            let n = std::mem::take(&mut self.unreported_foreign);
            let following = self.followed.as_ref().map_or_else(
                || "the --source address".to_owned(),
                |f| format!("SSRC {:08x} from {}", f.ssrc, f.from),
            );
            log::warn!(
                "dropped {n} RTP packet(s) {what} (latest from {from}); following {following}"
            );
        }
    }

    /// The format of a packet's payload type, or why it is refused.
    fn format_of(&mut self, pt: u8, from: SocketAddr) -> Option<RtpFormat> {
        if self.settings.map.is_opus(pt) {
            if self.settings.sample_rate == OPUS_RATE {
                // Decoded to stereo, as every stream is recorded.
                return Some(RtpFormat {
                    rate: OPUS_RATE,
                    channels: 2,
                });
            }
            Stats::add(&self.stats.rtp_wrong_rate, 1);
            if !std::mem::replace(&mut self.warned_pt[usize::from(pt & 0x7f)], true) {
                log::error!(
                    "refusing RTP payload type {pt} from {from}: Opus runs at 48000 Hz, but the \
                     recorder at {} Hz (start it with --sample-rate 48000)",
                    self.settings.sample_rate
                );
            }
            return None;
        }
        let Some(format) = self.settings.map.get(pt) else {
            Stats::add(&self.stats.rtp_unknown_payload, 1);
            if !std::mem::replace(&mut self.warned_pt[usize::from(pt & 0x7f)], true) {
                log::warn!(
                    "dropping RTP payload type {pt} from {from}: neither L16 nor Opus as far as \
                     this recorder knows (static 10 and 11, Opus 111; declare dynamic ones with \
                     --rtp-map {pt}=L16/RATE/CHANNELS, {pt}=opus/48000/2 or --sdp)"
                );
            }
            return None;
        };
        if format.rate != self.settings.sample_rate {
            Stats::add(&self.stats.rtp_wrong_rate, 1);
            if !std::mem::replace(&mut self.warned_pt[usize::from(pt & 0x7f)], true) {
                log::error!(
                    "refusing RTP payload type {pt} from {from}: L16 at {} Hz, but the recorder \
                     runs at {} Hz (start it with --sample-rate {})",
                    format.rate,
                    self.settings.sample_rate,
                    format.rate
                );
            }
            return None;
        }
        Some(format)
    }

    fn on_rtp(&mut self, bytes: &[u8], from: SocketAddr, now: Instant, pipeline: &mut Pipeline) {
        if self.settings.pin.is_some_and(|p| !p.matches(from)) {
            Stats::add(&self.stats.foreign_datagrams, 1);
            self.warn_foreign("from senders other than --source", from, now);
            return;
        }
        let packet = match RtpPacket::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                Stats::add(&self.stats.bad_datagrams, 1);
                log::debug!("dropped a datagram from {from}: {e}");
                return;
            }
        };
        let Some(format) = self.format_of(packet.payload_type, from) else {
            return;
        };
        let opus = self.settings.map.is_opus(packet.payload_type);
        let frame_bytes = 2 * usize::from(format.channels);
        if !opus && (packet.payload.is_empty() || packet.payload.len() % frame_bytes != 0) {
            Stats::add(&self.stats.bad_datagrams, 1);
            log::debug!(
                "dropped an RTP packet from {from}: {} payload bytes are not whole {}-channel frames",
                packet.payload.len(),
                format.channels
            );
            return;
        }
        match &self.followed {
            Some(f) if f.ssrc == packet.ssrc && f.from == from => {}
            Some(_) => {
                Stats::add(&self.stats.rtp_foreign_ssrc, 1);
                self.warn_foreign("of other streams (SSRCs or senders)", from, now);
                return;
            }
            None => {
                Stats::add(&self.stats.rtp_streams, 1);
                log::info!(
                    "following RTP stream SSRC {:08x} from {from} (payload type {}, {}/{}/{}); \
                     others are dropped until it is silent for {} ms or says BYE",
                    packet.ssrc,
                    packet.payload_type,
                    if opus { "opus" } else { "L16" },
                    format.rate,
                    format.channels,
                    self.settings.source_timeout.as_millis()
                );
                self.followed = Some(Followed {
                    ssrc: packet.ssrc,
                    from,
                    last_heard: now,
                    stats: SourceStats::new(packet.ssrc, packet.seq),
                    rtcp_from: None,
                    next_report: now + self.rand.interval(self.settings.rtcp_interval / 2),
                    named: false,
                });
            }
        }
        let arrival = self.arrival_units(now);
        let Some(f) = self.followed.as_mut() else {
            return;
        };
        f.last_heard = now;
        self.last_packet = now;
        let class = f.stats.update(packet.seq);
        match class {
            SeqClass::InOrder { skipped } => {
                Stats::add(&self.stats.rtp_lost_packets, u64::from(skipped));
            }
            SeqClass::Reordered => {
                Stats::add(&self.stats.rtp_reordered, 1);
                saturating_sub(&self.stats.rtp_lost_packets, 1);
            }
            SeqClass::Duplicate => {
                Stats::add(&self.stats.rtp_duplicates, 1);
                return;
            }
            SeqClass::Jump => {
                Stats::add(&self.stats.bad_datagrams, 1);
                log::debug!(
                    "dropped RTP packet {} from {from}: sequence jump",
                    packet.seq
                );
                return;
            }
            SeqClass::Restarted => {
                Stats::add(&self.stats.rtp_resyncs, 1);
                log::info!(
                    "SSRC {:08x} restarted its sequence numbers at {}",
                    packet.ssrc,
                    packet.seq
                );
            }
        }
        f.stats.on_arrival(packet.timestamp, arrival);
        Stats::add(&self.stats.packets, 1);
        if opus {
            self.on_opus(packet.seq, packet.timestamp, packet.payload, from, pipeline);
            return;
        }
        let samples = packet
            .payload
            .chunks_exact(2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]));
        let frames: Vec<i16> = if format.channels == 1 {
            samples.flat_map(|s| [s, s]).collect()
        } else {
            samples.collect()
        };
        self.place(packet.timestamp, frames, pipeline);
    }

    /// Puts a packet's stereo `frames` at `timestamp` on the timeline.
    fn place(&mut self, timestamp: u32, frames: Vec<i16>, pipeline: &mut Pipeline) {
        let (stats, filler) = (self.stats, &mut self.filler);
        match self.placer.push(timestamp, frames, &mut |p| {
            deliver(pipeline, stats, filler, p)
        }) {
            Pushed::Taken => {}
            Pushed::Late => Stats::add(&self.stats.rtp_late, 1),
            Pushed::Resync => {
                Stats::add(&self.stats.rtp_resyncs, 1);
                if let Some(opus) = self.opus.as_mut() {
                    opus.reset();
                }
                log::info!(
                    "SSRC {:08x}: timestamp {timestamp} is far from the timeline; starting it \
                     again there",
                    self.followed.as_ref().map_or(0, |f| f.ssrc),
                );
            }
        }
    }

    /// Decodes an Opus packet of the followed stream and places its audio
    /// (and a lost packet before it that its FEC recovers).
    fn on_opus(
        &mut self,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        from: SocketAddr,
        pipeline: &mut Pipeline,
    ) {
        if self.opus.is_none() {
            match StreamDecoder::new(2) {
                Ok(d) => self.opus = Some(d),
                Err(e) => {
                    log::error!("cannot start an Opus decoder: {e}");
                    return;
                }
            }
        }
        let Some(decoder) = self.opus.as_mut() else {
            return;
        };
        let mut pieces: Vec<(u32, Vec<i16>)> = Vec::with_capacity(2);
        let mut recovered = 0;
        let result = decoder.push(seq, timestamp, payload, |piece| match piece.kind {
            PieceKind::Audio => pieces.push((piece.timestamp, piece.samples.to_vec())),
            PieceKind::Recovered => {
                recovered += 1;
                pieces.push((piece.timestamp, piece.samples.to_vec()));
            }
            // --plc conceals the gap the placer leaves.
            PieceKind::Concealed => {}
        });
        match result {
            proto::opus_stream::Pushed::Decoded => {}
            proto::opus_stream::Pushed::Late => {
                Stats::add(&self.stats.rtp_late, 1);
                return;
            }
            proto::opus_stream::Pushed::Bad(e) => {
                Stats::add(&self.stats.bad_datagrams, 1);
                log::debug!("dropped an Opus packet from {from}: {e}");
                return;
            }
        }
        Stats::add(&self.stats.rtp_fec_recovered, recovered);
        for (ts, frames) in pieces {
            self.place(ts, frames, pipeline);
        }
    }

    fn on_rtcp(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        Stats::add(&self.stats.rtcp_received, 1);
        let mut bye = false;
        for packet in Compound::new(bytes) {
            let Some(f) = self.followed.as_mut().filter(|f| f.from.ip() == from.ip()) else {
                // Nothing followed, or another host: only the stream's
                // own RTCP matters.
                if let Err(e) = packet {
                    Stats::add(&self.stats.bad_datagrams, 1);
                    log::debug!("dropped an RTCP packet from {from}: {e}");
                    break;
                }
                continue;
            };
            match packet {
                Ok(RtcpPacket::SenderReport(info, _)) if info.ssrc == f.ssrc => {
                    f.stats.on_sender_report(info.ntp_middle(), now);
                    f.rtcp_from = Some(from);
                }
                Ok(RtcpPacket::Sdes(items)) if !f.named => {
                    let (mut cname, mut name) = (None, None);
                    for item in items.filter(|i| i.ssrc == f.ssrc) {
                        let text = String::from_utf8_lossy(item.text)
                            .chars()
                            .filter(|c| !c.is_control())
                            .collect::<String>();
                        match item.kind {
                            SDES_CNAME => cname = Some(text),
                            SDES_NAME => name = Some(text),
                            _ => {}
                        }
                    }
                    if cname.is_some() || name.is_some() {
                        f.named = true;
                        log::info!(
                            "SSRC {:08x} is {}{}",
                            f.ssrc,
                            name.as_deref().unwrap_or("unnamed"),
                            cname.map(|c| format!(" (CNAME {c})")).unwrap_or_default()
                        );
                    }
                }
                Ok(RtcpPacket::Bye(mut ssrcs)) => bye |= ssrcs.any(|s| s == f.ssrc),
                Ok(_) => {}
                Err(e) => {
                    Stats::add(&self.stats.bad_datagrams, 1);
                    log::debug!("dropped an RTCP packet from {from}: {e}");
                    break;
                }
            }
        }
        if bye {
            // Released once the RTP socket has nothing more of it queued.
            self.bye = true;
        }
    }

    /// The receive call found nothing: a BYE is acted on now.
    fn on_idle(&mut self, pipeline: &mut Pipeline) {
        if !std::mem::take(&mut self.bye) {
            return;
        }
        if let Some(f) = &self.followed {
            log::info!(
                "SSRC {:08x} from {} said BYE; following the next RTP stream",
                f.ssrc,
                f.from
            );
        }
        self.release(pipeline);
    }

    /// Stops following the current stream, placing what is held.
    fn release(&mut self, pipeline: &mut Pipeline) {
        self.bye = false;
        flush(&mut self.placer, pipeline, self.stats, &mut self.filler);
        self.placer.reset();
        self.filler.reset();
        self.opus = None;
        if self.followed.take().is_some() {
            Stats::add(&self.stats.source_releases, 1);
        }
    }

    /// Timers: release a silent stream, give up gaps nobody fills, send
    /// receiver reports.
    fn tick(&mut self, now: Instant, pipeline: &mut Pipeline) {
        let Some(f) = &self.followed else { return };
        let silent = now.saturating_duration_since(f.last_heard);
        if silent >= self.settings.source_timeout {
            log::info!(
                "SSRC {:08x} from {} silent for {} ms; following the next RTP stream",
                f.ssrc,
                f.from,
                silent.as_millis()
            );
            self.release(pipeline);
            return;
        }
        let window = Duration::from_secs_f64(
            self.settings.reorder_frames as f64 / f64::from(self.settings.sample_rate.max(1)),
        );
        if self.placer.held_frames() > 0 && now.saturating_duration_since(self.last_packet) > window
        {
            flush(&mut self.placer, pipeline, self.stats, &mut self.filler);
        }
        if now >= f.next_report {
            self.send_report(now, false);
        }
    }

    /// A receiver report (+ SDES CNAME, + BYE when leaving) about the
    /// followed stream to its sender's RTCP address.
    fn send_report(&mut self, now: Instant, bye: bool) {
        let next = now + self.rand.interval(self.settings.rtcp_interval);
        let Some(f) = self.followed.as_mut() else {
            return;
        };
        f.next_report = next;
        let block = f.stats.report(now);
        let to = f
            .rtcp_from
            .unwrap_or_else(|| SocketAddr::new(f.from.ip(), f.from.port().wrapping_add(1)));
        let mut buf = [0u8; 600];
        let mut w = RtcpWriter::new(&mut buf);
        let written = w
            .receiver_report(self.own_ssrc, &[block])
            .and_then(|()| w.sdes(self.own_ssrc, &[(SDES_CNAME, &self.cname)]))
            .and_then(|()| if bye { w.bye(self.own_ssrc) } else { Ok(()) });
        if let Err(e) = written {
            log::error!("RTCP receiver report could not be encoded: {e}");
            return;
        }
        let len = w.finish();
        match self.sockets.rtcp.send_to(&buf[..len], to) {
            Ok(_) => Stats::add(&self.stats.rtcp_reports_sent, 1),
            Err(e) => log::debug!("RTCP receiver report to {to} failed: {e}"),
        }
    }
}

/// An RTCP datagram, its sender and when it arrived.
type RtcpDatagram = (Vec<u8>, SocketAddr, Instant);

/// Reads the RTCP socket on its own thread, so a sender report's arrival
/// time (the start of DLSR) is not delayed by the RTP receive call.
fn read_rtcp(socket: &UdpSocket, tx: &crossbeam_channel::Sender<RtcpDatagram>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        // Errors are a timeout, EINTR, or the ICMP error of an earlier
        // report: nothing to read now.
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            // Full (the network thread is stuck): dropped, RTCP is advisory.
            let _ = tx.try_send((buf[..len].to_vec(), from, Instant::now()));
        }
    }
}

/// Receives until `stop` is set or the writer fails; what is held is
/// placed at the end.
pub fn receive_loop(
    sockets: &Sockets,
    settings: &RtpSettings,
    pipeline: &mut Pipeline,
    stats: &Stats,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let done = AtomicBool::new(false);
    let (tx, rtcp_rx) = crossbeam_channel::bounded::<RtcpDatagram>(256);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("rtcp".into())
            .spawn_scoped(scope, || read_rtcp(&sockets.rtcp, &tx, &done))
            .map_err(|e| anyhow::anyhow!("cannot start the RTCP thread: {e}"))?;
        let result = receive_packets(sockets, settings, pipeline, stats, stop, &rtcp_rx);
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn receive_packets(
    sockets: &Sockets,
    settings: &RtpSettings,
    pipeline: &mut Pipeline,
    stats: &Stats,
    stop: &AtomicBool,
    rtcp_rx: &crossbeam_channel::Receiver<RtcpDatagram>,
) -> anyhow::Result<()> {
    let mut rx = Receiver::new(settings, stats, sockets);
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        if pipeline.writer_failed() {
            break;
        }
        pipeline.report();
        // RTCP first: a BYE releases the stream once its packets are read.
        while let Ok((bytes, from, at)) = rtcp_rx.try_recv() {
            rx.on_rtcp(&bytes, from, at);
        }
        let received = sockets.rtp.recv_from(&mut buf);
        let now = Instant::now();
        match received {
            Ok((len, from)) if is_rtcp(&buf[..len]) => rx.on_rtcp(&buf[..len], from, now),
            Ok((len, from)) => rx.on_rtp(&buf[..len], from, now, pipeline),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionRefused
                ) =>
            {
                rx.on_idle(pipeline)
            }
            Err(e) => anyhow::bail!("receiving RTP failed: {e}"),
        }
        rx.tick(now, pipeline);
    }
    if rx.followed.is_some() {
        rx.send_report(Instant::now(), true);
    }
    flush(&mut rx.placer, pipeline, rx.stats, &mut rx.filler);
    Ok(())
}
