//! `--rtp-dest` with `--rtp-codec opus`: the mix as an Opus stream
//! (RFC 7587), encoded on the tap thread, never on the mixing thread.
//!
//! The tap hands over the mixed blocks it reads from the outbox; here
//! they are resampled to 48 kHz when the node runs at another rate, cut
//! into 10 ms frames, encoded once (stereo, in-band FEC) and sent to every
//! Opus destination, each with its own SSRC, sequence numbers and
//! timestamps, from a socket of its own. Timestamps are sampling instants:
//! after a pause (no stream to mix) they jump by the time that passed and
//! the first packet carries the marker bit, as for L16 outputs. Sender
//! reports are not sent for Opus outputs.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use proto::opus::{Encoder, OpusError, MAX_PACKET, OPUS_RATE, PT_OPUS_DEFAULT};
use proto::rtp::{RtpHeader, HEADER_LEN};

use crate::resample::{to_i16, Resampler};
use crate::rtp_io::random_u32;

/// Frames per packet: 10 ms at 48 kHz.
pub const FRAME: usize = 480;

/// One destination's stream identity.
struct Dest {
    addr: SocketAddr,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
}

/// Encodes the mix once and sends it to each Opus destination.
pub struct OpusOut {
    socket: UdpSocket,
    dests: Vec<Dest>,
    encoder: Encoder,
    resampler: Option<Resampler>,
    /// 48 kHz stereo gathered until a frame is whole.
    frame: Vec<i16>,
    packet: Vec<u8>,
    last_packet: Option<Instant>,
    first: bool,
}

impl OpusOut {
    /// Sends to `dests` from `socket`, encoding at `bitrate` a mix at `rate`.
    pub fn new(
        socket: UdpSocket,
        dests: &[SocketAddr],
        rate: u32,
        bitrate: u32,
    ) -> Result<Self, OpusError> {
        let encoder = Encoder::new(2, bitrate, proto::opus::DEFAULT_LOSS_PERCENT)?;
        let resampler = if rate == OPUS_RATE {
            None
        } else {
            // 10 ms steps: a whole number of frames at both rates.
            Some(
                Resampler::new(rate, OPUS_RATE, (rate / 100) as usize, 2)
                    .map_err(|e| OpusError::Codec(e.to_string()))?,
            )
        };
        Ok(Self {
            socket,
            dests: dests
                .iter()
                .map(|&addr| Dest {
                    addr,
                    ssrc: random_u32(),
                    seq: random_u32() as u16,
                    timestamp: random_u32(),
                })
                .collect(),
            encoder,
            resampler,
            frame: Vec::with_capacity(2 * FRAME),
            packet: vec![0; HEADER_LEN + MAX_PACKET],
            last_packet: None,
            first: true,
        })
    }

    /// Takes mixed interleaved stereo samples at the node's rate; sends
    /// every frame completed.
    pub fn push(&mut self, samples: &[i16]) {
        match self.resampler.take() {
            Some(mut r) => {
                r.push(samples, |out| {
                    for &x in out {
                        self.take(to_i16(x));
                    }
                });
                self.resampler = Some(r);
            }
            None => {
                for &s in samples {
                    self.take(s);
                }
            }
        }
    }

    fn take(&mut self, sample: i16) {
        self.frame.push(sample);
        if self.frame.len() == 2 * FRAME {
            self.send_frame();
            self.frame.clear();
        }
    }

    fn send_frame(&mut self) {
        let Ok(len) = self
            .encoder
            .encode(&self.frame, &mut self.packet[HEADER_LEN..])
        else {
            return;
        };
        let now = Instant::now();
        // A pause (nothing was mixed): timestamps jump by the time that
        // passed, and the marker bit says where the new audio starts.
        let paused = self
            .last_packet
            .map(|t| now.duration_since(t))
            .filter(|gap| *gap > Duration::from_millis(40));
        self.last_packet = Some(now);
        let marker = std::mem::take(&mut self.first) || paused.is_some();
        for dest in &mut self.dests {
            if let Some(gap) = paused {
                dest.timestamp = dest
                    .timestamp
                    .wrapping_add((gap.as_secs_f64() * f64::from(OPUS_RATE)) as u32);
            }
            let header = RtpHeader {
                marker,
                payload_type: PT_OPUS_DEFAULT,
                seq: dest.seq,
                timestamp: dest.timestamp,
                ssrc: dest.ssrc,
            };
            dest.seq = dest.seq.wrapping_add(1);
            dest.timestamp = dest.timestamp.wrapping_add(FRAME as u32);
            if header.write(&mut self.packet).is_ok() {
                // A lost packet is only a lost packet; the receiver conceals.
                let _ = self
                    .socket
                    .send_to(&self.packet[..HEADER_LEN + len], dest.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::rtp::RtpPacket;

    #[test]
    fn the_mix_goes_out_as_10_ms_opus_packets() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = OpusOut::new(tx, &[rx.local_addr().unwrap()], 44_100, 64_000).unwrap();
        // 30 ms of a 44.1 kHz mix in 220-frame blocks (and a remainder).
        let block: Vec<i16> = (0..440).map(|i| (i as i16 % 100) * 50).collect();
        for _ in 0..6 {
            out.push(&block);
        }
        out.push(&block[..2 * 3]);
        let mut buf = [0u8; 2048];
        let mut seen = Vec::new();
        for _ in 0..2 {
            let n = rx.recv(&mut buf).unwrap();
            let p = RtpPacket::decode(&buf[..n]).unwrap();
            assert_eq!(p.payload_type, PT_OPUS_DEFAULT);
            assert_eq!(proto::opus::packet_frames(p.payload).unwrap(), FRAME);
            assert_eq!(proto::opus::packet_channels(p.payload), 2);
            seen.push((p.seq, p.timestamp, p.marker));
        }
        assert_eq!(seen[1].0, seen[0].0.wrapping_add(1));
        assert_eq!(seen[1].1, seen[0].1.wrapping_add(FRAME as u32));
        assert!(seen[0].2 && !seen[1].2);
    }
}
