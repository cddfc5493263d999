//! One received Opus stream decoded in sequence order, with its losses
//! handled the way both the node and the recorder do it.
//!
//! An Opus decoder carries state from packet to packet, so packets are
//! decoded in the order sent: a packet older than the last one decoded (a
//! reordered or duplicate one) is dropped as late. When packets were lost
//! before the one that arrived, that packet's in-band FEC recovers the
//! frame just before it (when its mode can carry FEC); the rest of the gap
//! is concealed by the decoder only to keep its state continuous, and
//! handed out marked as such, so the receiver's own concealment (`--plc`)
//! decides what is heard there and counts it as concealed.

use crate::opus::{self, Decoder, OpusError, Sample, MAX_FRAMES, OPUS_RATE};

/// A gap larger than this (one second) is not a loss but a new timeline:
/// nothing is recovered or concealed across it.
pub const MAX_GAP_FRAMES: u32 = OPUS_RATE;

/// What a piece of decoded audio is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// Decoded from the packet that arrived.
    Audio,
    /// A lost frame recovered from the FEC of the packet after it.
    Recovered,
    /// A lost stretch the decoder extrapolated (to keep its state); the
    /// receiver conceals there in its own way.
    Concealed,
}

/// Decoded audio at a 48 kHz RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a, S = i16> {
    /// What it is.
    pub kind: PieceKind,
    /// The RTP timestamp of its first frame.
    pub timestamp: u32,
    /// Interleaved samples.
    pub samples: &'a [S],
}

/// What became of one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Decoded (after whatever the loss before it called for).
    Decoded,
    /// Older than the last packet decoded: dropped.
    Late,
    /// Not a valid Opus packet: dropped.
    Bad(OpusError),
}

/// The decoder of one stream and where it is in the stream, decoding to
/// samples of type `S` (see [`Sample`]).
#[derive(Debug)]
pub struct StreamDecoder<S = i16> {
    decoder: Decoder,
    /// Sequence number and timestamp the next packet should have.
    next: Option<(u16, u32)>,
    pcm: Vec<S>,
}

impl<S: Sample> StreamDecoder<S> {
    /// A decoder whose pieces have `channels` (1 or 2) interleaved.
    pub fn new(channels: u16) -> Result<Self, OpusError> {
        let decoder = Decoder::new(channels)?;
        let pcm = vec![S::default(); MAX_FRAMES * decoder.channels()];
        Ok(Self {
            decoder,
            next: None,
            pcm,
        })
    }

    /// Channels of the pieces.
    pub fn channels(&self) -> usize {
        self.decoder.channels()
    }

    /// Decodes the packet `seq`/`timestamp` with `payload`, handing `out`
    /// the pieces in timeline order: concealed and recovered audio of a
    /// gap before it, then its own.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        mut out: impl FnMut(Piece<'_, S>),
    ) -> Pushed {
        let frames = match opus::packet_frames(payload) {
            Ok(f) => f,
            Err(e) => return Pushed::Bad(e),
        };
        if let Some((next_seq, next_ts)) = self.next {
            let lost = seq.wrapping_sub(next_seq) as i16;
            if lost < 0 {
                return Pushed::Late;
            }
            let gap = timestamp.wrapping_sub(next_ts);
            if lost > 0 && gap > 0 && gap <= MAX_GAP_FRAMES {
                self.fill_gap(next_ts, gap as usize, frames, payload, &mut out);
            }
        }
        let decoded = match self.decoder.decode(payload, &mut self.pcm) {
            Ok(n) => n,
            Err(e) => return Pushed::Bad(e),
        };
        self.next = Some((seq.wrapping_add(1), timestamp.wrapping_add(decoded as u32)));
        out(Piece {
            kind: PieceKind::Audio,
            timestamp,
            samples: &self.pcm[..decoded * self.channels()],
        });
        Pushed::Decoded
    }

    /// Forgets the stream's position (a new stream or timeline follows).
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// A gap of `gap` frames from `start` before a packet of `frames`: its
    /// last `frames` recovered from `payload`'s FEC when it can carry it,
    /// the rest concealed.
    fn fill_gap(
        &mut self,
        start: u32,
        gap: usize,
        frames: usize,
        payload: &[u8],
        out: &mut impl FnMut(Piece<'_, S>),
    ) {
        let ch = self.channels();
        let covered = if opus::may_carry_fec(payload) && frames <= gap {
            frames
        } else {
            0
        };
        // Concealment runs in 2.5 ms steps; a remainder stays a hole.
        let mut at = 0;
        while gap - covered - at >= 120 {
            let n = (gap - covered - at).min(MAX_FRAMES) / 120 * 120;
            let Ok(done) = self.decoder.conceal(n, &mut self.pcm) else {
                break;
            };
            out(Piece {
                kind: PieceKind::Concealed,
                timestamp: start.wrapping_add(at as u32),
                samples: &self.pcm[..done * ch],
            });
            at += n;
        }
        if covered > 0 {
            if let Ok(done) = self.decoder.recover(payload, covered, &mut self.pcm) {
                out(Piece {
                    kind: PieceKind::Recovered,
                    timestamp: start.wrapping_add((gap - covered) as u32),
                    samples: &self.pcm[..done * ch],
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus::{Encoder, MAX_PACKET};

    fn packets(count: usize, frames: usize, bitrate: u32) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new(1, bitrate, 20).unwrap();
        let mut buf = [0u8; MAX_PACKET];
        (0..count)
            .map(|k| {
                let pcm: Vec<i16> = (k * frames..(k + 1) * frames)
                    .map(|n| ((n as f64 * 0.05).sin() * 8000.0) as i16)
                    .collect();
                let len = enc.encode(&pcm, &mut buf).unwrap();
                buf[..len].to_vec()
            })
            .collect()
    }

    /// Pushes packets `order` (indices) of 20 ms each; returns the pieces
    /// as (kind, timestamp, frames).
    fn run(order: &[usize], bitrate: u32) -> (Vec<(PieceKind, u32, usize)>, Vec<Pushed>) {
        let ps = packets(12, 960, bitrate);
        let mut dec = StreamDecoder::<i16>::new(1).unwrap();
        let mut pieces = Vec::new();
        let mut results = Vec::new();
        for &k in order {
            let ts = 1000u32.wrapping_add(960 * k as u32);
            results.push(dec.push(100 + k as u16, ts, &ps[k], |p| {
                pieces.push((p.kind, p.timestamp, p.samples.len()))
            }));
        }
        (pieces, results)
    }

    #[test]
    fn in_order_packets_are_decoded_in_place() {
        let (pieces, results) = run(&[0, 1, 2], 64_000);
        assert!(results.iter().all(|r| *r == Pushed::Decoded));
        assert_eq!(
            pieces,
            vec![
                (PieceKind::Audio, 1000, 960),
                (PieceKind::Audio, 1960, 960),
                (PieceKind::Audio, 2920, 960),
            ]
        );
    }

    #[test]
    fn a_loss_is_recovered_from_the_next_packet_and_the_rest_concealed() {
        // At 16 kbit/s libopus codes SILK, which carries FEC.
        let (pieces, _) = run(&[0, 1, 2, 4, 5, 8], 16_000);
        assert_eq!(
            pieces,
            vec![
                (PieceKind::Audio, 1000, 960),
                (PieceKind::Audio, 1960, 960),
                (PieceKind::Audio, 2920, 960),
                (PieceKind::Recovered, 3880, 960),
                (PieceKind::Audio, 4840, 960),
                (PieceKind::Audio, 5800, 960),
                (PieceKind::Concealed, 6760, 960),
                (PieceKind::Recovered, 7720, 960),
                (PieceKind::Audio, 8680, 960),
            ]
        );
    }

    #[test]
    fn late_and_bad_packets_are_dropped() {
        let (pieces, results) = run(&[0, 2, 1, 2], 16_000);
        assert_eq!(
            results,
            vec![Pushed::Decoded, Pushed::Decoded, Pushed::Late, Pushed::Late]
        );
        assert_eq!(pieces.len(), 3);
        let mut dec = StreamDecoder::<i16>::new(2).unwrap();
        assert!(matches!(dec.push(1, 0, &[], |_| {}), Pushed::Bad(_)));
        assert!(matches!(dec.push(1, 0, &[0xff, 0], |_| {}), Pushed::Bad(_)));
    }
}
