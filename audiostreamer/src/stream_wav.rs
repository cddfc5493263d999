//! A WAV read front to back from any byte stream (standard input), as
//! sox and ffmpeg write it to a pipe: they cannot go back to fill in the
//! sizes, so the RIFF and data sizes are 0, `0xFFFFFFFF` or a placeholder.
//! The data chunk is therefore read until its declared size or the end of
//! the stream, whichever comes first, and a size of 0 means "until the
//! end". Integer PCM of 8 to 32 bits and 32-bit float, as in WAV files.

use std::io::{self, BufReader, Read};

use anyhow::{bail, Context};

use crate::decoder::{map_frame, AudioInfo, FrameDecoder};
use crate::sample::{int_scale, FLOAT_SCALE};

/// The sizes streamed headers carry instead of the real one.
const UNKNOWN_SIZES: [u32; 2] = [0, u32::MAX];

/// A streamed WAV.
pub struct StreamWav<R: Read> {
    reader: BufReader<R>,
    name: String,
    info: AudioInfo,
    out_channels: usize,
    /// Data bytes left to read (`None`: until the end of the stream).
    remaining: Option<u64>,
    bits: u16,
    float: bool,
    scale: f64,
    frames_read: u64,
    // One frame, reused (no allocation per frame).
    raw: Vec<u8>,
    frame: Vec<f32>,
}

impl<R: Read> StreamWav<R> {
    /// Reads the header from `reader` up to the start of the samples;
    /// `name` is used in messages.
    pub fn new(reader: R, name: &str) -> anyhow::Result<Self> {
        let mut reader = BufReader::new(reader);
        let bad = |what: &str| anyhow::anyhow!("{name}: not a WAV stream ({what})");
        let mut riff = [0u8; 12];
        reader
            .read_exact(&mut riff)
            .map_err(|_| bad("shorter than a RIFF header"))?;
        if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
            return Err(bad("no RIFF/WAVE header"));
        }
        let mut fmt: Option<Fmt> = None;
        let data_size = loop {
            let mut head = [0u8; 8];
            reader
                .read_exact(&mut head)
                .map_err(|_| bad("it ends before the data chunk"))?;
            let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            match &head[0..4] {
                b"fmt " => {
                    let mut body = vec![0u8; size as usize + (size as usize & 1)];
                    reader
                        .read_exact(&mut body)
                        .map_err(|_| bad("its fmt chunk is cut short"))?;
                    fmt = Some(Fmt::parse(&body).map_err(|e| anyhow::anyhow!("{name}: {e}"))?);
                }
                b"data" => break size,
                _ => {
                    // LIST, fact, … : skip (chunks are padded to even sizes).
                    let skip = u64::from(size) + u64::from(size & 1);
                    let skipped = io::copy(&mut (&mut reader).take(skip), &mut io::sink())
                        .with_context(|| format!("{name}: cannot read"))?;
                    if skipped < skip {
                        return Err(bad("it ends before the data chunk"));
                    }
                }
            }
        };
        let Some(fmt) = fmt else {
            return Err(bad("no fmt chunk before the data"));
        };
        let channels = usize::from(fmt.channels);
        Ok(Self {
            reader,
            name: name.to_string(),
            info: AudioInfo {
                format: "WAV".into(),
                channels: fmt.channels,
                sample_rate: fmt.rate,
                encoding: format!(
                    "{}-bit {}",
                    fmt.bits,
                    if fmt.float { "float" } else { "integer" }
                ),
                frames: None,
            },
            out_channels: 1,
            remaining: (!UNKNOWN_SIZES.contains(&data_size)).then_some(u64::from(data_size)),
            bits: fmt.bits,
            float: fmt.float,
            scale: int_scale(fmt.bits),
            frames_read: 0,
            raw: vec![0; channels * usize::from(fmt.bits / 8)],
            frame: vec![0.0; channels],
        })
    }

    /// Delivers frames of `channels` values (see [`crate::decoder`]).
    pub fn with_output_channels(mut self, channels: u16) -> Self {
        self.out_channels = usize::from(channels.clamp(1, 2));
        self
    }

    /// Reads the next frame into `self.frame`; false at the end.
    fn next_frame(&mut self) -> anyhow::Result<bool> {
        let len = self.raw.len() as u64;
        if self.remaining.is_some_and(|r| r < len) {
            return Ok(false);
        }
        match self.reader.read_exact(&mut self.raw) {
            Ok(()) => {}
            // The end of the stream, possibly inside a frame (dropped).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", self.name)),
        }
        if let Some(r) = &mut self.remaining {
            *r -= len;
        }
        let width = usize::from(self.bits / 8);
        for (value, b) in self.frame.iter_mut().zip(self.raw.chunks_exact(width)) {
            *value = if self.float {
                (f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])) * FLOAT_SCALE) as f32
            } else {
                (f64::from(int_sample(b)) * self.scale) as f32
            };
        }
        Ok(true)
    }
}

/// A little-endian PCM sample of 1 to 4 bytes (8-bit is unsigned).
fn int_sample(b: &[u8]) -> i32 {
    match b.len() {
        1 => i32::from(b[0]) - 128,
        2 => i32::from(i16::from_le_bytes([b[0], b[1]])),
        3 => i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8,
        _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
    }
}

impl<R: Read> FrameDecoder for StreamWav<R> {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    fn output_channels(&self) -> u16 {
        self.out_channels as u16
    }

    fn frames_read(&self) -> u64 {
        self.frames_read
    }

    fn read(&mut self, out: &mut [f32]) -> anyhow::Result<usize> {
        let ch = self.out_channels;
        let mut n = 0;
        for slot in out.chunks_exact_mut(ch) {
            if !self.next_frame()? {
                break;
            }
            map_frame(&self.frame, slot);
            n += ch;
        }
        self.frames_read += (n / ch) as u64;
        Ok(n)
    }

    fn rewind(&mut self) -> anyhow::Result<()> {
        bail!("{}: a stream cannot be rewound", self.name)
    }
}

/// The fmt chunk's fields that matter.
struct Fmt {
    channels: u16,
    rate: u32,
    bits: u16,
    float: bool,
}

impl Fmt {
    fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < 16 {
            return Err(format!("fmt chunk of {} bytes (at least 16)", b.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let mut tag = u16_at(0);
        // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
        if tag == 0xFFFE && b.len() >= 26 {
            tag = u16_at(24);
        }
        let channels = u16_at(2);
        let rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let block_align = u16_at(12);
        let bits = u16_at(14);
        let float = match (tag, bits) {
            (1, 8 | 16 | 24 | 32) => false,
            (3, 32) => true,
            _ => {
                return Err(format!(
                    "unsupported WAV encoding (format tag {tag}, {bits}-bit); use 8/16/24/32-bit \
                     integer or 32-bit float PCM"
                ))
            }
        };
        if channels == 0 || rate == 0 {
            return Err(format!(
                "unsupported WAV encoding ({channels} channels at {rate} Hz)"
            ));
        }
        if u32::from(block_align) != u32::from(channels) * u32::from(bits / 8) {
            return Err(format!(
                "damaged WAV header (block align {block_align} for {channels} × {bits}-bit)"
            ));
        }
        Ok(Self {
            channels,
            rate,
            bits,
            float,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with the given sizes, then `data`.
    fn wav(tag: u16, channels: u16, bits: u16, riff: u32, size: u32, data: &[u8]) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&riff.to_le_bytes());
        b.extend_from_slice(b"WAVELIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc\0"); // odd size, padded
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&(8000 * u32::from(align)).to_le_bytes());
        b.extend_from_slice(&align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    fn decode(bytes: &[u8], channels: u16) -> Vec<f32> {
        let mut d = StreamWav::new(bytes, "test")
            .unwrap()
            .with_output_channels(channels);
        let mut out = Vec::new();
        let mut buf = [0.0f32; 3];
        loop {
            let n = d.read(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            if n < buf.len() / usize::from(channels) * usize::from(channels) {
                assert_eq!(d.frames_read() as usize, out.len() / usize::from(channels));
                return out;
            }
        }
    }

    fn i16_bytes(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn unknown_sizes_read_until_the_end() {
        let data = i16_bytes(&[1, -2, 300, -32768, 32767]);
        for (riff, size) in [(u32::MAX, u32::MAX), (0, 0), (u32::MAX, 0)] {
            assert_eq!(
                decode(&wav(1, 1, 16, riff, size, &data), 1),
                [1.0, -2.0, 300.0, -32768.0, 32767.0]
            );
        }
        // A declared size is honoured (trailing bytes are another chunk).
        assert_eq!(decode(&wav(1, 1, 16, 100, 4, &data), 1), [1.0, -2.0]);
        // A cut-off last frame is dropped.
        assert_eq!(decode(&wav(1, 1, 16, 0, 0, &data[..5]), 1), [1.0, -2.0]);
    }

    #[test]
    fn depths_and_channels() {
        let stereo = i16_bytes(&[100, 300, -5, -7]);
        assert_eq!(decode(&wav(1, 2, 16, 0, 0, &stereo), 1), [200.0, -6.0]);
        assert_eq!(
            decode(&wav(1, 2, 16, 0, 0, &stereo), 2),
            [100.0, 300.0, -5.0, -7.0]
        );
        assert_eq!(
            decode(&wav(1, 1, 8, 0, 0, &[0, 128, 255]), 1),
            [-32768.0, 0.0, 32512.0]
        );
        let s24 = [0x56, 0x34, 0x12, 0x00, 0xFF, 0xFF];
        assert_eq!(
            decode(&wav(1, 1, 24, 0, 0, &s24), 1),
            [0x12_3456 as f32 / 256.0, -1.0]
        );
        let f: Vec<u8> = [0.5f32, -0.25]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(decode(&wav(3, 1, 32, 0, 0, &f), 1), [16384.0, -8192.0]);
    }

    #[test]
    fn bad_streams_are_one_line_errors() {
        let err = |b: &[u8]| format!("{:#}", StreamWav::new(b, "standard input").err().unwrap());
        assert_eq!(
            err(b"hello"),
            "standard input: not a WAV stream (shorter than a RIFF header)"
        );
        assert_eq!(
            err(b"RIFF\0\0\0\0AVI LIST"),
            "standard input: not a WAV stream (no RIFF/WAVE header)"
        );
        assert!(err(&wav(6, 1, 8, 0, 0, &[])).contains("unsupported WAV encoding (format tag 6"));
        let mut no_fmt = b"RIFF\0\0\0\0WAVEdata\0\0\0\0".to_vec();
        no_fmt.extend_from_slice(&[1, 2]);
        assert!(err(&no_fmt).contains("no fmt chunk"));
        let bytes = wav(1, 1, 16, 0, 0, &[]);
        let mut d = StreamWav::new(&bytes[..], "x").unwrap();
        assert!(d.rewind().is_err());
    }
}
