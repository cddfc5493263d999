//! `--rtp --codec opus`: each chunk becomes one Opus packet (RFC 7587)
//! instead of L16 samples.
//!
//! A chunk is exactly one Opus frame (`--chunk-ms` must be a frame
//! duration: 2.5, 5, 10, 20, 40 or 60 ms), at 48 kHz, the only clock Opus
//! has on RTP. The stream's last, shorter chunk is padded with silence to
//! a whole frame. The encoder codes in-band FEC of the previous frame into
//! each packet, so no `--redundancy` is needed (or offered).

use proto::opus::{Encoder, OpusError, MAX_PACKET};
use proto::rtp::{RtpHeader, HEADER_LEN};
use proto::EncodeError;

/// The `--codec opus` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusOptions {
    /// Bit/s (`--bitrate`).
    pub bitrate: u32,
    /// The dynamic payload type (`--opus-pt`).
    pub payload_type: u8,
    /// Frames (at 48 kHz) per packet: the chunk.
    pub frame: usize,
}

/// Encodes chunks into RTP packets with Opus payloads.
pub struct OpusPacketizer {
    encoder: Encoder,
    frame: usize,
    channels: usize,
    /// A short final chunk padded to a whole frame.
    padded: Vec<i16>,
}

impl OpusPacketizer {
    /// A packetizer of `channels` with `opts`.
    pub fn new(channels: u16, opts: &OpusOptions) -> Result<Self, OpusError> {
        let encoder = Encoder::new(channels, opts.bitrate, proto::opus::DEFAULT_LOSS_PERCENT)?;
        let channels = usize::from(channels);
        Ok(Self {
            encoder,
            frame: opts.frame,
            channels,
            padded: vec![0; opts.frame * channels],
        })
    }

    /// Frames one packet holds (and the timestamp advances by).
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// Writes the RTP packet of `samples` (interleaved, at most one frame)
    /// with `header` into `buf`; returns its length.
    pub fn encode(
        &mut self,
        header: &RtpHeader,
        samples: &[i16],
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let needed = HEADER_LEN + MAX_PACKET;
        if buf.len() < needed {
            return Err(EncodeError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        header.write(buf)?;
        let pcm = if samples.len() == self.frame * self.channels {
            samples
        } else {
            let n = samples.len().min(self.padded.len());
            self.padded[..n].copy_from_slice(&samples[..n]);
            self.padded[n..].fill(0);
            &self.padded[..]
        };
        match self.encoder.encode(pcm, &mut buf[HEADER_LEN..needed]) {
            Ok(len) => Ok(HEADER_LEN + len),
            // Cannot happen: the frame was checked when the stream was set up.
            Err(_) => Err(EncodeError::NoSamples),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::rtp::RtpPacket;

    #[test]
    fn packets_are_rtp_with_opus_payloads() {
        let opts = OpusOptions {
            bitrate: 64_000,
            payload_type: 111,
            frame: 480,
        };
        let mut p = OpusPacketizer::new(2, &opts).unwrap();
        let header = RtpHeader {
            marker: true,
            payload_type: 111,
            seq: 7,
            timestamp: 9,
            ssrc: 3,
        };
        let mut buf = vec![0u8; 1500];
        let tone: Vec<i16> = (0..960)
            .map(|n| ((n as f64 * 0.06).sin() * 9000.0) as i16)
            .collect();
        let len = p.encode(&header, &tone, &mut buf).unwrap();
        let packet = RtpPacket::decode(&buf[..len]).unwrap();
        assert_eq!(
            (packet.payload_type, packet.seq, packet.timestamp),
            (111, 7, 9)
        );
        assert_eq!(proto::opus::packet_frames(packet.payload).unwrap(), 480);
        // A short last chunk is padded to the frame.
        let len = p.encode(&header, &tone[..100], &mut buf).unwrap();
        let packet = RtpPacket::decode(&buf[..len]).unwrap();
        assert_eq!(proto::opus::packet_frames(packet.payload).unwrap(), 480);
        assert!(p.encode(&header, &tone, &mut [0u8; 100]).is_err());
    }
}
