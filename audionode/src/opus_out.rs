//! The mix as Opus streams (RFC 7587): the `--rtp-dest` streams of
//! `--rtp-codec opus` and the Opus outputs added through `/api/outputs`,
//! encoded on the tap thread, never on the mixing thread.
//!
//! The tap hands over the mixed blocks it reads from the outbox; here
//! they are resampled to 48 kHz when the node runs at another rate, cut
//! into 10 ms frames, encoded once (stereo, in-band FEC) and sent to every
//! Opus destination, each with its own SSRC, sequence numbers and
//! timestamps, from one RTP socket, with RTCP sender reports (and SDES
//! CNAME) from its companion at the next port up to each destination's
//! next port up, and a BYE when a destination is removed or the node
//! stops, as for L16 outputs. Timestamps are sampling instants: after a pause (no stream
//! to mix) they jump by the time that passed and the first packet carries
//! the marker bit. With no destination nothing is encoded.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use proto::opus::{Encoder, OpusError, MAX_PACKET, OPUS_RATE, PT_OPUS_DEFAULT};
use proto::rtcp::{self, SenderInfo};
use proto::rtp::{RtpHeader, HEADER_LEN};

use crate::nodecore::name::SourceName;
use crate::outputs::{Codec, OutputCommand, MAX_OUTPUTS};
use crate::resample::{to_i16, Resampler};
use crate::rtp_io::{next_report_after, random_u32, rtcp_dest_of, send_bye, sender_report};

/// Frames per packet: 10 ms at 48 kHz.
pub const FRAME: usize = 480;

/// One destination's stream.
struct Dest {
    addr: SocketAddr,
    rtcp_addr: SocketAddr,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Sent so far, for the sender reports (RFC 3550 §6.4.1: they wrap).
    packets: u32,
    octets: u32,
    next_report: Instant,
    /// The next packet starts a new stretch of audio (marker bit).
    fresh: bool,
}

impl Dest {
    fn new(addr: SocketAddr, now: Instant) -> Self {
        Self {
            addr,
            rtcp_addr: rtcp_dest_of(addr),
            ssrc: random_u32(),
            seq: random_u32() as u16,
            timestamp: random_u32(),
            packets: 0,
            octets: 0,
            next_report: now,
            fresh: true,
        }
    }
}

/// Encodes the mix once and sends it to each Opus destination.
pub struct OpusOut {
    /// RTP, and RTCP at its port + 1.
    sockets: (UdpSocket, UdpSocket),
    dests: Vec<Dest>,
    encoder: Encoder,
    resampler: Option<Resampler>,
    /// 48 kHz stereo gathered until a frame is whole.
    frame: Vec<i16>,
    packet: Vec<u8>,
    /// RTCP (reports, goodbyes) is written here, apart from the packet
    /// every destination is still to be sent.
    rtcp: Vec<u8>,
    last_packet: Option<Instant>,
    cname: SourceName,
}

impl OpusOut {
    /// Sends from `sockets` (RTP, RTCP) to no one yet, encoding at
    /// `bitrate` a mix at `rate`; `cname` names the node in its RTCP.
    pub fn new(
        sockets: (UdpSocket, UdpSocket),
        rate: u32,
        bitrate: u32,
        cname: SourceName,
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
            sockets,
            dests: Vec::with_capacity(MAX_OUTPUTS),
            encoder,
            resampler,
            frame: Vec::with_capacity(2 * FRAME),
            packet: vec![0; HEADER_LEN + MAX_PACKET],
            rtcp: vec![0; proto::MAX_UNFRAGMENTED_PAYLOAD],
            last_packet: None,
            cname,
        })
    }

    /// Whether any destination is there.
    pub fn has_dests(&self) -> bool {
        !self.dests.is_empty()
    }

    /// Adds or removes an Opus destination (adding one already there or
    /// beyond [`MAX_OUTPUTS`], removing one that is not there, or an L16
    /// one, which is the mixing thread's, changes nothing). A removed
    /// destination gets an RTCP BYE.
    pub fn apply(&mut self, command: OutputCommand) {
        match command {
            OutputCommand::Add(spec) => {
                if spec.codec != Codec::Opus
                    || self.dests.len() >= MAX_OUTPUTS
                    || self.dests.iter().any(|d| d.addr == spec.addr)
                {
                    return;
                }
                if self.dests.is_empty() {
                    // Nothing was encoded while no one listened: start
                    // afresh (no half frame, no resampler history).
                    self.frame.clear();
                    if let Some(r) = self.resampler.as_mut() {
                        r.reset();
                    }
                }
                self.dests.push(Dest::new(spec.addr, Instant::now()));
            }
            OutputCommand::Remove(spec) => {
                if spec.codec != Codec::Opus {
                    return;
                }
                if let Some(i) = self.dests.iter().position(|d| d.addr == spec.addr) {
                    let dest = self.dests.remove(i);
                    send_bye(&self.sockets.1, dest.ssrc, dest.rtcp_addr, &mut self.rtcp);
                }
            }
        }
    }

    /// Ends every stream with a BYE (the node stops).
    pub fn close(&mut self) {
        for dest in std::mem::take(&mut self.dests) {
            send_bye(&self.sockets.1, dest.ssrc, dest.rtcp_addr, &mut self.rtcp);
        }
    }

    /// Takes mixed interleaved stereo samples at the node's rate; sends
    /// every frame completed.
    pub fn push(&mut self, samples: &[i16]) {
        if self.dests.is_empty() {
            // No one to send to: nothing to encode.
            return;
        }
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
        for dest in &mut self.dests {
            if let Some(gap) = paused {
                dest.timestamp = dest
                    .timestamp
                    .wrapping_add((gap.as_secs_f64() * f64::from(OPUS_RATE)) as u32);
            }
            let header = RtpHeader {
                marker: std::mem::take(&mut dest.fresh) || paused.is_some(),
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
                    .sockets
                    .0
                    .send_to(&self.packet[..HEADER_LEN + len], dest.addr);
                dest.packets = dest.packets.wrapping_add(1);
                dest.octets = dest.octets.wrapping_add(len as u32);
            }
            if now >= dest.next_report {
                dest.next_report = next_report_after(now);
                let info = SenderInfo {
                    ssrc: dest.ssrc,
                    ntp: rtcp::ntp_time(SystemTime::now()),
                    rtp_timestamp: dest.timestamp,
                    packets: dest.packets,
                    octets: dest.octets,
                };
                let len = sender_report(&mut self.rtcp, info, self.cname);
                // A lost report is only a lost report: the audio went out.
                let _ = self.sockets.1.send_to(&self.rtcp[..len], dest.rtcp_addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::OutputSpec;
    use proto::rtcp::{Compound, RtcpPacket};
    use proto::rtp::RtpPacket;

    /// A receiving RTP socket and its RTCP companion at the port + 1.
    fn pair() -> (UdpSocket, UdpSocket) {
        loop {
            let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut at = rtp.local_addr().unwrap();
            at.set_port(at.port() + 1);
            if let Ok(rtcp) = UdpSocket::bind(at) {
                for s in [&rtp, &rtcp] {
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                }
                return (rtp, rtcp);
            }
        }
    }

    fn out(rate: u32) -> OpusOut {
        let sockets = (
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        OpusOut::new(sockets, rate, 64_000, SourceName::new("audionode@test")).unwrap()
    }

    #[test]
    fn the_mix_goes_out_as_10_ms_opus_packets_with_sender_reports() {
        let (rx, rtcp_rx) = pair();
        let mut out = out(44_100);
        let spec = OutputSpec::opus(rx.local_addr().unwrap());
        out.apply(OutputCommand::Add(spec));
        out.apply(OutputCommand::Add(spec));
        assert_eq!(
            out.dests.len(),
            1,
            "an output already there is not added twice"
        );
        // 30 ms of a 44.1 kHz mix in 220-frame blocks (and a remainder).
        let block: Vec<i16> = (0..440).map(|i| (i as i16 % 100) * 50).collect();
        for _ in 0..6 {
            out.push(&block);
        }
        out.push(&block[..2 * 3]);
        let mut buf = [0u8; 2048];
        let mut seen = Vec::new();
        let mut octets = 0;
        for _ in 0..2 {
            let n = rx.recv(&mut buf).unwrap();
            let p = RtpPacket::decode(&buf[..n]).unwrap();
            assert_eq!(p.payload_type, PT_OPUS_DEFAULT);
            assert_eq!(proto::opus::packet_frames(p.payload).unwrap(), FRAME);
            assert_eq!(proto::opus::packet_channels(p.payload), 2);
            octets += p.payload.len() as u32;
            seen.push((p.seq, p.timestamp, p.marker, p.ssrc));
        }
        assert_eq!(seen[1].0, seen[0].0.wrapping_add(1));
        assert_eq!(seen[1].1, seen[0].1.wrapping_add(FRAME as u32));
        assert!(seen[0].2 && !seen[1].2);
        // The first frame was reported at once: one packet sent by then.
        let n = rtcp_rx.recv(&mut buf).unwrap();
        let report: Vec<RtcpPacket> = Compound::new(&buf[..n]).map(Result::unwrap).collect();
        let RtcpPacket::SenderReport(info, _) = report[0] else {
            panic!("a sender report first: {report:?}");
        };
        assert_eq!(info.ssrc, seen[0].3);
        assert_eq!(info.packets, 1);
        assert!(info.octets > 0 && info.octets < octets);
        assert_eq!(
            info.rtp_timestamp, seen[1].1,
            "the next packet's sampling instant"
        );
        assert!(
            matches!(report[1], RtcpPacket::Sdes(items) if items.clone().any(|i| i.ssrc == info.ssrc && i.kind == rtcp::SDES_CNAME && i.text == b"audionode@test")),
            "{report:?}"
        );
        // Removed: a BYE, and nothing more is sent.
        rx.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while rx.recv(&mut buf).is_ok() {}
        out.apply(OutputCommand::Remove(spec));
        let n = rtcp_rx.recv(&mut buf).unwrap();
        let bye: Vec<RtcpPacket> = Compound::new(&buf[..n]).map(Result::unwrap).collect();
        assert!(
            matches!(bye[..], [RtcpPacket::Bye(ssrcs)] if ssrcs.eq([info.ssrc])),
            "{bye:?}"
        );
        assert!(!out.has_dests());
        for _ in 0..6 {
            out.push(&block);
        }
        assert!(
            rx.recv(&mut buf).is_err(),
            "nothing sent to a removed output"
        );
    }

    #[test]
    fn l16_outputs_are_not_the_taps() {
        let (rx, _rtcp) = pair();
        let mut out = out(48_000);
        out.apply(OutputCommand::Add(OutputSpec::l16(
            crate::outputs::OutputKind::Rtp,
            rx.local_addr().unwrap(),
        )));
        assert!(!out.has_dests());
    }
}
