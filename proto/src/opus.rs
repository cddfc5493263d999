//! Opus (RFC 6716) for RTP hops (RFC 7587): the encoder and decoder the
//! streamer, the node and the recorder share, over the reference libopus.
//!
//! RFC 7587 fixes what the wire looks like whatever the audio: the RTP
//! clock is always 48 kHz and SDP always says `opus/48000/2` (mono or
//! stereo is `a=fmtp:PT stereo=0|1`), so everything here runs at 48 kHz.
//! The encoder puts in-band FEC (a low-bitrate copy of the previous frame)
//! into each packet when its mode allows (SILK and hybrid modes; CELT-only
//! packets carry none), with DTX off so every frame is sent and sequence
//! numbers stay a loss signal. The decoder decodes, recovers a lost frame
//! from the packet after it ([`Decoder::recover`]) and conceals what FEC
//! cannot cover ([`Decoder::conceal`]).

use opus::{Application, Bitrate, Channels};

/// The RTP clock rate of Opus, whatever the audio's rate (RFC 7587 §4.1).
pub const OPUS_RATE: u32 = 48_000;
/// The dynamic payload type our programs use for Opus unless told
/// otherwise (the one WebRTC stacks commonly use).
pub const PT_OPUS_DEFAULT: u8 = 111;
/// The bitrate our senders use unless told otherwise.
pub const DEFAULT_BITRATE: u32 = 64_000;
/// The packet-loss hint given to the encoder: it spends a little of the
/// bitrate on FEC sized for this much loss. 10, not 5: at 5 % libopus 1.3
/// codes music at 64 kbit/s mostly CELT-only, whose packets carry no FEC
/// (measured with `examples/opus_cost.rs`: 23 % of packets FEC-capable at
/// 5 %, all at 10 %, at the same bitrate).
pub const DEFAULT_LOSS_PERCENT: u8 = 10;
/// Bitrates libopus accepts.
pub const BITRATES: std::ops::RangeInclusive<u32> = 6_000..=510_000;
/// Largest encoded packet we produce (RFC 6716 §3.4: a frame is at most
/// 1275 bytes); it fits one unfragmented datagram with the RTP header.
pub const MAX_PACKET: usize = 1275;
/// Most frames per channel one packet decodes to (120 ms at 48 kHz).
pub const MAX_FRAMES: usize = 5760;

/// Why an Opus operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    /// libopus refused (a corrupt packet, a bad argument).
    #[error("Opus: {0}")]
    Codec(String),
    /// A frame count that is not an Opus frame duration.
    #[error("{0} frames is not an Opus frame duration (2.5, 5, 10, 20, 40 or 60 ms at 48 kHz)")]
    FrameSize(usize),
    /// A channel count other than 1 or 2.
    #[error("{0} channels: Opus streams here are mono or stereo")]
    Channels(u16),
}

impl From<opus::Error> for OpusError {
    fn from(e: opus::Error) -> Self {
        OpusError::Codec(e.to_string())
    }
}

/// Whether `frames` (per channel, at 48 kHz) is a duration an Opus frame
/// can have: 2.5, 5, 10, 20, 40 or 60 ms.
pub fn is_frame_duration(frames: usize) -> bool {
    matches!(frames, 120 | 240 | 480 | 960 | 1920 | 2880)
}

/// Frames per channel (at 48 kHz) the packet `payload` decodes to.
pub fn packet_frames(payload: &[u8]) -> Result<usize, OpusError> {
    let frames = opus::packet::get_nb_samples(payload, OPUS_RATE)?;
    if frames == 0 || frames > MAX_FRAMES {
        return Err(OpusError::Codec(format!(
            "packet of {frames} frames (at most {MAX_FRAMES})"
        )));
    }
    Ok(frames)
}

/// Channels (1 or 2) the packet `payload` codes (its TOC's stereo bit).
pub fn packet_channels(payload: &[u8]) -> u16 {
    match payload.first() {
        Some(toc) if toc & 0x04 != 0 => 2,
        _ => 1,
    }
}

/// Whether `payload` was coded in a mode that can carry in-band FEC of the
/// frame before it (SILK-only or hybrid: TOC configurations 0..=15, RFC
/// 6716 §3.1); a CELT-only packet carries none.
pub fn may_carry_fec(payload: &[u8]) -> bool {
    payload.first().is_some_and(|toc| toc >> 3 < 16)
}

/// A bitrate as users write it: `64k`, `64000` or `1.5k`, in bit/s,
/// within [`BITRATES`].
pub fn parse_bitrate(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (digits, scale) = match t.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1000.0),
        None => (t, 1.0),
    };
    digits
        .parse::<f64>()
        .ok()
        .map(|v| v * scale)
        .filter(|v| v.is_finite() && BITRATES.contains(&(*v as u32)))
        .map(|v| v as u32)
        .ok_or_else(|| format!("{text:?} is not a bitrate from 6k to 510k bit/s"))
}

fn channels_of(channels: u16) -> Result<Channels, OpusError> {
    match channels {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        n => Err(OpusError::Channels(n)),
    }
}

/// An Opus encoder at 48 kHz with in-band FEC on and DTX off.
pub struct Encoder {
    inner: opus::Encoder,
    channels: usize,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder of `channels` (1 or 2) at `bitrate` bit/s (variable
    /// bitrate around it), with FEC sized for `loss_percent` loss.
    pub fn new(channels: u16, bitrate: u32, loss_percent: u8) -> Result<Self, OpusError> {
        let mut inner = opus::Encoder::new(OPUS_RATE, channels_of(channels)?, Application::Audio)?;
        inner.set_bitrate(Bitrate::Bits(
            bitrate.clamp(*BITRATES.start(), *BITRATES.end()) as i32,
        ))?;
        inner.set_inband_fec(true)?;
        inner.set_packet_loss_perc(i32::from(loss_percent.min(100)))?;
        inner.set_dtx(false)?;
        Ok(Self {
            inner,
            channels: usize::from(channels),
        })
    }

    /// Encodes one frame of interleaved samples (a legal frame duration)
    /// into `out`; returns the packet's length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        let frames = pcm.len() / self.channels;
        if !is_frame_duration(frames) || pcm.len() % self.channels != 0 {
            return Err(OpusError::FrameSize(frames));
        }
        let end = out.len().min(MAX_PACKET);
        Ok(self.inner.encode(pcm, &mut out[..end])?)
    }

    /// The encoder's lookahead in frames at 48 kHz (its algorithmic delay
    /// beyond the frame itself: 312, i.e. 6.5 ms, for libopus).
    pub fn lookahead(&mut self) -> Result<usize, OpusError> {
        Ok(self.inner.get_lookahead()?.max(0) as usize)
    }
}

/// A sample type the decoder writes: `i16` (libopus soft-clips and
/// rounds), or `f32` (libopus's own output, full scale ±1.0, for a
/// receiver that goes on in floating point, e.g. into a resampler:
/// it skips the clipping and two conversions per sample).
pub trait Sample: Copy + Default + sealed::Sealed {
    /// Decodes `input` (empty: conceal) into `out` with libopus.
    #[doc(hidden)]
    fn decode(
        decoder: &mut opus::Decoder,
        input: &[u8],
        out: &mut [Self],
        fec: bool,
    ) -> Result<usize, opus::Error>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i16 {}
    impl Sealed for f32 {}
}

impl Sample for i16 {
    fn decode(
        decoder: &mut opus::Decoder,
        input: &[u8],
        out: &mut [Self],
        fec: bool,
    ) -> Result<usize, opus::Error> {
        decoder.decode(input, out, fec)
    }
}

impl Sample for f32 {
    fn decode(
        decoder: &mut opus::Decoder,
        input: &[u8],
        out: &mut [Self],
        fec: bool,
    ) -> Result<usize, opus::Error> {
        decoder.decode_float(input, out, fec)
    }
}

/// An Opus decoder at 48 kHz.
pub struct Decoder {
    inner: opus::Decoder,
    channels: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder that outputs `channels` (1 or 2; a packet of the other
    /// count is mixed down or duplicated by libopus).
    pub fn new(channels: u16) -> Result<Self, OpusError> {
        Ok(Self {
            inner: opus::Decoder::new(OPUS_RATE, channels_of(channels)?)?,
            channels: usize::from(channels),
        })
    }

    /// Channels of the output.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Decodes `payload` into `out` (interleaved, room for
    /// [`MAX_FRAMES`]); returns the frames per channel written.
    pub fn decode<S: Sample>(&mut self, payload: &[u8], out: &mut [S]) -> Result<usize, OpusError> {
        if payload.is_empty() {
            return Err(OpusError::Codec("empty packet".into()));
        }
        Ok(S::decode(&mut self.inner, payload, out, false)?)
    }

    /// Recovers the `frames` just before `next` (the packet after a lost
    /// one) from the FEC data `next` carries, into `out`; libopus conceals
    /// instead when `next` has none. Decode `next` itself afterwards.
    pub fn recover<S: Sample>(
        &mut self,
        next: &[u8],
        frames: usize,
        out: &mut [S],
    ) -> Result<usize, OpusError> {
        if !is_frame_duration(frames) || out.len() < frames * self.channels {
            return Err(OpusError::FrameSize(frames));
        }
        Ok(S::decode(
            &mut self.inner,
            next,
            &mut out[..frames * self.channels],
            true,
        )?)
    }

    /// Conceals `frames` of lost audio (a multiple of 2.5 ms) into `out`
    /// by extrapolating what was decoded last.
    pub fn conceal<S: Sample>(&mut self, frames: usize, out: &mut [S]) -> Result<usize, OpusError> {
        if frames == 0 || frames % 120 != 0 || out.len() < frames * self.channels {
            return Err(OpusError::FrameSize(frames));
        }
        Ok(S::decode(
            &mut self.inner,
            &[],
            &mut out[..frames * self.channels],
            false,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 440 Hz tone of `frames` at 48 kHz starting at frame `at`.
    fn tone(at: usize, frames: usize, channels: usize) -> Vec<i16> {
        (at..at + frames)
            .flat_map(|n| {
                let x = (2.0 * std::f64::consts::PI * 440.0 * n as f64 / 48_000.0).sin();
                std::iter::repeat_n((x * 12_000.0) as i16, channels)
            })
            .collect()
    }

    fn energy(x: &[i16]) -> f64 {
        x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64
    }

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("64k"), Ok(64_000));
        assert_eq!(parse_bitrate("32000"), Ok(32_000));
        assert_eq!(
            parse_bitrate("1.5K"),
            Err("\"1.5K\" is not a bitrate from 6k to 510k bit/s".into())
        );
        assert!(parse_bitrate("600k").is_err() && parse_bitrate("x").is_err());
    }

    #[test]
    fn frame_durations() {
        for ok in [120, 240, 480, 960, 1920, 2880] {
            assert!(is_frame_duration(ok));
        }
        for bad in [0, 441, 882, 1000, 5760] {
            assert!(!is_frame_duration(bad));
        }
    }

    #[test]
    fn float_and_16_bit_decoding_agree_to_the_rounding() {
        let mut enc = Encoder::new(1, 64_000, 10).unwrap();
        let (mut a, mut b) = (Decoder::new(1).unwrap(), Decoder::new(1).unwrap());
        let mut packet = [0u8; MAX_PACKET];
        let mut ints = vec![0i16; MAX_FRAMES];
        let mut floats = vec![0f32; MAX_FRAMES];
        for k in 0..20 {
            let len = enc.encode(&tone(480 * k, 480, 1), &mut packet).unwrap();
            let p = &packet[..len];
            assert_eq!(a.decode(p, &mut ints).unwrap(), 480);
            assert_eq!(b.decode(p, &mut floats).unwrap(), 480);
            for (&i, &f) in ints[..480].iter().zip(&floats[..480]) {
                assert!(
                    (f64::from(f) * 32768.0 - f64::from(i)).abs() <= 1.0,
                    "{i} {f}"
                );
            }
        }
        // Concealment and recovery too.
        assert_eq!(a.conceal(480, &mut ints).unwrap(), 480);
        assert_eq!(b.conceal(480, &mut floats).unwrap(), 480);
        let len = enc.encode(&tone(480 * 21, 480, 1), &mut packet).unwrap();
        assert_eq!(a.recover(&packet[..len], 480, &mut ints).unwrap(), 480);
        assert_eq!(b.recover(&packet[..len], 480, &mut floats).unwrap(), 480);
        for (&i, &f) in ints[..480].iter().zip(&floats[..480]) {
            assert!(
                (f64::from(f) * 32768.0 - f64::from(i)).abs() <= 1.0,
                "{i} {f}"
            );
        }
    }

    #[test]
    fn round_trip_keeps_a_tone() {
        for channels in [1u16, 2] {
            let ch = usize::from(channels);
            let mut enc = Encoder::new(channels, 64_000, 5).unwrap();
            let mut dec = Decoder::new(channels).unwrap();
            let mut packet = [0u8; MAX_PACKET];
            let mut out = vec![0i16; MAX_FRAMES * 2];
            let mut decoded = Vec::new();
            for k in 0..50 {
                let len = enc.encode(&tone(480 * k, 480, ch), &mut packet).unwrap();
                assert!(len > 0 && len < 400, "{len} bytes at 64 kbit/s");
                assert_eq!(packet_frames(&packet[..len]).unwrap(), 480);
                let n = dec.decode(&packet[..len], &mut out).unwrap();
                assert_eq!(n, 480);
                decoded.extend_from_slice(&out[..n * ch]);
            }
            // Past the start-up, the decoded tone has the input's energy.
            let tail = &decoded[decoded.len() / 2..];
            let ratio = energy(tail) / energy(&tone(0, 4800, ch));
            assert!((0.8..1.25).contains(&ratio), "energy ratio {ratio}");
        }
    }

    #[test]
    fn recovers_and_conceals_losses() {
        let mut enc = Encoder::new(1, 32_000, 20).unwrap();
        let mut dec = Decoder::new(1).unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let mut out = vec![0i16; MAX_FRAMES];
        let packets: Vec<Vec<u8>> = (0..20)
            .map(|k| {
                let len = enc.encode(&tone(960 * k, 960, 1), &mut packet).unwrap();
                packet[..len].to_vec()
            })
            .collect();
        for p in &packets[..10] {
            dec.decode(p, &mut out).unwrap();
        }
        // Packet 10 is lost: recovered from packet 11, then 11 decoded.
        assert_eq!(dec.recover(&packets[11], 960, &mut out).unwrap(), 960);
        assert!(energy(&out[..960]) > 1e6, "recovered audio is not silence");
        assert_eq!(dec.decode(&packets[11], &mut out).unwrap(), 960);
        // Packets 12 and 13 are lost with nothing after them: concealed.
        assert_eq!(dec.conceal(1920, &mut out).unwrap(), 1920);
        assert!(dec.conceal(100, &mut out).is_err());
        assert!(dec.recover(&packets[14], 441, &mut out).is_err());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(2).unwrap();
        let mut out = vec![0i16; MAX_FRAMES * 2];
        assert!(dec.decode(&[], &mut out).is_err());
        // TOC of a 2.5 ms CELT frame, code 3 with an impossible frame count.
        assert!(dec.decode(&[0xff, 0x00], &mut out).is_err());
        assert!(packet_frames(&[]).is_err());
        let mut enc = Encoder::new(1, 64_000, 5).unwrap();
        assert_eq!(
            enc.encode(&[0; 441], &mut [0; MAX_PACKET]),
            Err(OpusError::FrameSize(441))
        );
        assert!(Encoder::new(3, 64_000, 5).is_err());
        assert_eq!(enc.lookahead().unwrap(), 312);
    }

    #[test]
    fn tells_fec_capable_packets() {
        // TOC config 0 (SILK NB 10 ms) and 12 (hybrid SWB 10 ms) can; 16+ (CELT) cannot.
        assert!(may_carry_fec(&[0 << 3]));
        assert!(may_carry_fec(&[12 << 3]));
        assert!(!may_carry_fec(&[16 << 3]));
        assert!(!may_carry_fec(&[31 << 3 | 1]));
        assert!(!may_carry_fec(&[]));
        assert_eq!((packet_channels(&[0x04]), packet_channels(&[0x00])), (2, 1));
    }
}
