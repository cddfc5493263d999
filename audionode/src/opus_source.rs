//! RTP sources that send Opus: decoded on a thread of their own, named
//! `opus-decode`, never on the mixing thread.
//!
//! The mixing thread only copies an Opus packet's payload and header
//! fields into a pre-allocated slot of a lock-free ring ([`OpusIn::offer`]:
//! no allocation, no lock, no log); a full ring drops the packet and
//! counts it. The decode thread keeps one [`StreamDecoder`] per SSRC,
//! decodes in sequence order and, when the node does not run at 48 kHz,
//! resamples each stream with rubato to the node's rate, then pushes the
//! native samples back through a second ring, which the mixing thread
//! drains into the core like any other source's packets.
//!
//! Timestamps are the node's: at 48 kHz the packet's own; otherwise the
//! first packet's timestamp converted to the node's rate, advanced by the
//! frames the resampler put out, so consecutive packets abut exactly.
//!
//! Loss: a packet lost before one that can carry FEC is recovered from it
//! and handed over as that packet's redundant copy, so the core stores it
//! when its place is still open and counts it as recovered (exactly as an
//! RFC 2198 copy); a loss FEC cannot cover stays a gap that the node's
//! `--plc` conceals (counted as concealed frames).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use proto::opus::{self, OPUS_RATE};
use proto::opus_stream::{PieceKind, Pushed, StreamDecoder};
use proto::rtp::RtpPacket;
use proto::rtp_map::RtpMap;

use crate::nodecore::ingress::{
    Malformed, Redundant, RedundantCopy, RtpInfo, Samples, SourcePacket,
};
use crate::resample::{to_i16, Resampler};

/// Longest Opus packet the node takes: 20 ms (what ffmpeg and GStreamer
/// send by default).
pub const MAX_PACKET_FRAMES: usize = 960;
/// Packets in flight each way: 20 ms of traffic of 256 sources at 10 ms.
pub const RING_PACKETS: usize = 512;
/// Samples of one decoded packet at most (20 ms of stereo at 48 kHz).
const MAX_SAMPLES: usize = 2 * MAX_PACKET_FRAMES;
/// Resampling works in 10 ms steps (480 frames give a whole number of
/// frames at every rate that is a multiple of 100 Hz).
const STEP: usize = 480;
/// A stream silent this long is forgotten by the decode thread.
const FORGET_AFTER: Duration = Duration::from_secs(10);

/// An Opus packet as received, for the decode thread.
#[derive(Clone, Copy)]
pub struct RawOpus {
    from: SocketAddr,
    arrived: Duration,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    listener: u8,
    len: u16,
    payload: [u8; opus::MAX_PACKET],
}

/// What the decode thread hands back.
#[derive(Clone, Copy)]
pub struct DecodedOpus {
    /// The sender.
    pub from: SocketAddr,
    /// When the packet arrived (node time).
    pub arrived: Duration,
    ssrc: u32,
    seq: u16,
    listener: u8,
    /// Not a packet: the payload did not decode.
    bad: bool,
    channels: u8,
    timestamp: u32,
    len: usize,
    samples: [i16; MAX_SAMPLES],
    /// The FEC-recovered packet before it: timestamp and big-endian bytes.
    fec_timestamp: u32,
    fec_len: usize,
    fec: [u8; 2 * MAX_SAMPLES],
}

impl DecodedOpus {
    /// A slot for the decode thread to write packets into (boxed: it is
    /// about 11 KB).
    fn empty() -> Box<Self> {
        Box::new(DecodedOpus {
            from: SocketAddr::from(([0, 0, 0, 0], 0)),
            arrived: Duration::ZERO,
            ssrc: 0,
            seq: 0,
            listener: 0,
            bad: false,
            channels: 1,
            timestamp: 0,
            len: 0,
            samples: [0; MAX_SAMPLES],
            fec_timestamp: 0,
            fec_len: 0,
            fec: [0; 2 * MAX_SAMPLES],
        })
    }

    /// What the core takes: the packet (with its recovered predecessor as
    /// a redundant copy), or why it was refused.
    pub fn input(&self) -> Result<SourcePacket<'_>, Malformed> {
        if self.bad {
            return Err(Malformed::Opus { ssrc: self.ssrc });
        }
        let redundant = if self.fec_len > 0 {
            Redundant::single(RedundantCopy {
                back: 1,
                timestamp: self.fec_timestamp,
                payload: &self.fec[..self.fec_len],
            })
        } else {
            Redundant::NONE
        };
        Ok(SourcePacket {
            seq: u32::from(self.seq),
            samples: Samples::Native(&self.samples[..self.len]),
            channels: self.channels,
            rtp: Some(RtpInfo {
                ssrc: self.ssrc,
                timestamp: self.timestamp,
                listener: self.listener,
            }),
            redundant,
        })
    }
}

/// The mixing thread's ends of the two rings.
pub struct OpusIn {
    to_decoder: rtrb::Producer<RawOpus>,
    /// Decoded packets coming back.
    pub decoded: rtrb::Consumer<DecodedOpus>,
    /// When the last packet was handed over.
    last_offer: Option<Duration>,
}

impl OpusIn {
    /// Whether decoded packets may be on their way back (a packet was
    /// handed over in the last 50 ms), so the run loop looks at the ring
    /// as often as at the TCP sources'.
    pub fn busy(&self, now: Duration) -> bool {
        self.last_offer
            .is_some_and(|t| now.saturating_sub(t) < Duration::from_millis(50))
    }

    /// Takes the RTP packet `bytes` when `map` says it is Opus: `None` if
    /// it is not Opus (or not RTP), `Some(Err)` when it is dropped (too
    /// long, or the ring is full). Copies into the ring's slot; allocates
    /// nothing.
    pub fn offer(
        &mut self,
        bytes: &[u8],
        map: &RtpMap,
        from: SocketAddr,
        arrived: Duration,
        listener: u8,
    ) -> Option<Result<(), Malformed>> {
        let packet = RtpPacket::decode(bytes).ok()?;
        if !map.is_opus(packet.payload_type) {
            return None;
        }
        if packet.payload.is_empty() || packet.payload.len() > opus::MAX_PACKET {
            return Some(Err(Malformed::Opus { ssrc: packet.ssrc }));
        }
        if self.to_decoder.is_full() {
            return Some(Err(Malformed::OpusBehind));
        }
        let mut raw = RawOpus {
            from,
            arrived,
            ssrc: packet.ssrc,
            seq: packet.seq,
            timestamp: packet.timestamp,
            listener,
            len: packet.payload.len() as u16,
            payload: [0; opus::MAX_PACKET],
        };
        raw.payload[..packet.payload.len()].copy_from_slice(packet.payload);
        self.last_offer = Some(arrived);
        // Moved into the ring's pre-allocated slot; cannot fail (not full).
        Some(self.to_decoder.push(raw).map_err(|_| Malformed::OpusBehind))
    }
}

/// Starts the decode thread for a node at `rate`.
///
/// With `rt_priority` (the mixing thread's, when it has one) it runs under
/// `SCHED_FIFO` one step below the mixing thread, as the TCP sources'
/// threads do, so a busy machine does not hold it off the CPU for longer
/// than the jitter target. It sleeps whenever its ring is empty.
pub fn spawn(
    rate: u32,
    stop: Arc<AtomicBool>,
    rt_priority: Option<u8>,
) -> anyhow::Result<(OpusIn, JoinHandle<()>)> {
    let (to_decoder, raw) = rtrb::RingBuffer::new(RING_PACKETS);
    let (out, decoded) = rtrb::RingBuffer::new(RING_PACKETS);
    let thread = thread::Builder::new()
        .name("opus-decode".into())
        .spawn(move || {
            if let Some(priority) = rt_priority {
                // Refused without the privilege: the mixing thread's own
                // promotion already said so once.
                let _ = crate::realtime::promote_current_thread(priority.saturating_sub(1).max(1));
            }
            decode_loop(raw, out, rate, &stop)
        })?;
    Ok((
        OpusIn {
            to_decoder,
            decoded,
            last_offer: None,
        },
        thread,
    ))
}

/// One stream's decoder, resampler and timeline.
struct Stream {
    /// Floating point out: the resampler takes it as it is, and the
    /// conversion to 16 bits is one rounding, done once (libopus's own
    /// soft clipping and rounding cost 2 % of this thread at 44.1 kHz).
    decoder: StreamDecoder<f32>,
    resampler: Option<Resampler>,
    /// 48 kHz timestamp the next piece continues from.
    next_in: Option<u32>,
    /// Node-rate timestamp of the next resampled frame.
    next_out: u32,
    last_heard: Instant,
}

fn decode_loop(
    mut raw: rtrb::Consumer<RawOpus>,
    mut out: rtrb::Producer<DecodedOpus>,
    rate: u32,
    stop: &AtomicBool,
) {
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    // One slot built here and reused: the output is written into it.
    let mut slot = DecodedOpus::empty();
    let mut last_packet = Instant::now();
    let mut last_sweep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let Ok(packet) = raw.pop() else {
            // Idle for a while: poll less often.
            let nap = if last_packet.elapsed() > Duration::from_secs(1) {
                Duration::from_millis(10)
            } else {
                Duration::from_millis(1)
            };
            thread::sleep(nap);
            continue;
        };
        let now = Instant::now();
        last_packet = now;
        if decode_one(&packet, &mut streams, rate, now, &mut slot) {
            // A full ring (the mixing thread is behind): wait for room.
            while out.is_full() && !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(1));
            }
            let _ = out.push(*slot);
        }
        if now.duration_since(last_sweep) > FORGET_AFTER {
            last_sweep = now;
            streams.retain(|_, s| now.duration_since(s.last_heard) < FORGET_AFTER);
        }
    }
}

/// Decodes `packet` into `slot`; false when there is nothing to hand over
/// (a late packet).
fn decode_one(
    packet: &RawOpus,
    streams: &mut HashMap<u32, Stream>,
    rate: u32,
    now: Instant,
    slot: &mut DecodedOpus,
) -> bool {
    let payload = &packet.payload[..usize::from(packet.len)];
    slot.from = packet.from;
    slot.arrived = packet.arrived;
    slot.ssrc = packet.ssrc;
    slot.seq = packet.seq;
    slot.listener = packet.listener;
    slot.bad = false;
    slot.len = 0;
    slot.fec_len = 0;
    let frames = opus::packet_frames(payload).unwrap_or(0);
    let resampling = rate != OPUS_RATE;
    if frames == 0 || frames > MAX_PACKET_FRAMES || (resampling && frames % STEP != 0) {
        slot.bad = true;
        return true;
    }
    let stream = match streams.entry(packet.ssrc) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let channels = opus::packet_channels(payload);
            let Ok(decoder) = StreamDecoder::new(channels) else {
                slot.bad = true;
                return true;
            };
            let resampler = if resampling {
                match Resampler::new(OPUS_RATE, rate, STEP, usize::from(channels)) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        log::error!("cannot resample Opus to {rate} Hz: {e}");
                        slot.bad = true;
                        return true;
                    }
                }
            } else {
                None
            };
            e.insert(Stream {
                decoder,
                resampler,
                next_in: None,
                next_out: 0,
                last_heard: now,
            })
        }
    };
    stream.last_heard = now;
    slot.channels = stream.decoder.channels() as u8;
    let Stream {
        decoder,
        resampler,
        next_in,
        next_out,
        ..
    } = stream;
    let result = decoder.push(packet.seq, packet.timestamp, payload, |piece| {
        // A piece that does not continue the last one starts a new timeline.
        if *next_in != Some(piece.timestamp) {
            *next_out = convert(piece.timestamp, rate);
            if let Some(r) = resampler.as_mut() {
                r.reset();
            }
        }
        let frames = piece.samples.len() / slot.channels.max(1) as usize;
        *next_in = Some(piece.timestamp.wrapping_add(frames as u32));
        let at = if resampling {
            *next_out
        } else {
            piece.timestamp
        };
        let produced = match (piece.kind, resampler.as_mut()) {
            // Only the timeline moves on: the node's --plc fills the gap.
            (PieceKind::Concealed, Some(_)) => frames * rate as usize / OPUS_RATE as usize,
            (PieceKind::Concealed, None) => frames,
            (PieceKind::Recovered, Some(r)) => {
                let mut len = 0;
                r.push(piece.samples, |out| {
                    for (b, &x) in slot.fec[len..].chunks_exact_mut(2).zip(out) {
                        b.copy_from_slice(&to_i16(x).to_be_bytes());
                    }
                    len = (len + 2 * out.len()).min(slot.fec.len());
                });
                slot.fec_len = len;
                len / 2 / usize::from(slot.channels)
            }
            (PieceKind::Recovered, None) => {
                for (out, &s) in slot.fec.chunks_exact_mut(2).zip(piece.samples) {
                    out.copy_from_slice(&to_i16(s).to_be_bytes());
                }
                slot.fec_len = 2 * piece.samples.len();
                frames
            }
            (PieceKind::Audio, Some(r)) => {
                let mut len = 0;
                r.push(piece.samples, |out| {
                    for (o, &x) in slot.samples[len..].iter_mut().zip(out) {
                        *o = to_i16(x);
                    }
                    len = (len + out.len()).min(slot.samples.len());
                });
                slot.len = len;
                len / usize::from(slot.channels)
            }
            (PieceKind::Audio, None) => {
                for (o, &x) in slot.samples.iter_mut().zip(piece.samples) {
                    *o = to_i16(x);
                }
                slot.len = piece.samples.len();
                frames
            }
        };
        match piece.kind {
            PieceKind::Recovered => slot.fec_timestamp = at,
            PieceKind::Audio => slot.timestamp = at,
            PieceKind::Concealed => {}
        }
        if resampling {
            *next_out = next_out.wrapping_add(produced as u32);
        }
    });
    match result {
        Pushed::Decoded => slot.len > 0,
        Pushed::Late => false,
        Pushed::Bad(_) => {
            slot.bad = true;
            true
        }
    }
}

/// A 48 kHz timestamp at the node's `rate`.
fn convert(timestamp: u32, rate: u32) -> u32 {
    (u64::from(timestamp) * u64::from(rate) / u64::from(OPUS_RATE)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::opus::Encoder;

    fn raw(seq: u16, timestamp: u32, payload: &[u8]) -> RawOpus {
        let mut p = RawOpus {
            from: SocketAddr::from(([127, 0, 0, 1], 9)),
            arrived: Duration::ZERO,
            ssrc: 5,
            seq,
            timestamp,
            listener: 0,
            len: payload.len() as u16,
            payload: [0; opus::MAX_PACKET],
        };
        p.payload[..payload.len()].copy_from_slice(payload);
        p
    }

    fn empty_slot() -> Box<DecodedOpus> {
        DecodedOpus::empty()
    }

    /// Packets of 10 ms (SILK at 16 kbit/s, so they carry FEC).
    fn packets(n: usize) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new(1, 16_000, 20).unwrap();
        let mut buf = [0u8; opus::MAX_PACKET];
        (0..n)
            .map(|k| {
                let pcm: Vec<i16> = (k * 480..(k + 1) * 480)
                    .map(|i| ((i as f64 * 0.03).sin() * 9000.0) as i16)
                    .collect();
                let len = enc.encode(&pcm, &mut buf).unwrap();
                buf[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn resampled_packets_abut_and_a_loss_comes_back_as_a_copy() {
        let ps = packets(6);
        let mut streams = HashMap::new();
        let mut slot = empty_slot();
        let now = Instant::now();
        let base = 48_000u32 * 10;
        let mut got = Vec::new();
        for k in [0usize, 1, 2, 4, 5] {
            let p = raw(k as u16, base + 480 * k as u32, &ps[k]);
            assert!(decode_one(&p, &mut streams, 44_100, now, &mut slot));
            let input = slot.input().unwrap();
            let copy = input
                .redundant
                .copies()
                .first()
                .map(|c| (c.back, c.timestamp, c.payload.len()));
            got.push((
                input.seq,
                input.rtp.unwrap().timestamp,
                input.frames(),
                copy,
            ));
        }
        let t = 441_000u32;
        assert_eq!(
            got,
            vec![
                (0, t, 441, None),
                (1, t + 441, 441, None),
                (2, t + 882, 441, None),
                (4, t + 1764, 441, Some((1, t + 1323, 882))),
                (5, t + 2205, 441, None),
            ]
        );
        // A late (reordered) packet is not handed over.
        assert!(!decode_one(
            &raw(3, base + 1440, &ps[3]),
            &mut streams,
            44_100,
            now,
            &mut slot
        ));
        // Garbage is refused, counted by the core as malformed.
        assert!(decode_one(
            &raw(9, 0, &[0xff, 0]),
            &mut streams,
            44_100,
            now,
            &mut slot
        ));
        assert!(matches!(slot.input(), Err(Malformed::Opus { ssrc: 5 })));
    }

    #[test]
    fn at_48_khz_timestamps_are_the_packets_own() {
        let ps = packets(2);
        let mut streams = HashMap::new();
        let mut slot = empty_slot();
        let now = Instant::now();
        for (k, p) in ps.iter().enumerate() {
            assert!(decode_one(
                &raw(k as u16, 7 + 480 * k as u32, p),
                &mut streams,
                48_000,
                now,
                &mut slot
            ));
            let input = slot.input().unwrap();
            assert_eq!(
                (input.rtp.unwrap().timestamp, input.frames()),
                (7 + 480 * k as u32, 480)
            );
        }
    }
}
