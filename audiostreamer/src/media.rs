//! Compressed and non-WAV files (FLAC, MP3, Ogg/Vorbis, AIFF) decoded with
//! symphonia, packet by packet: like the WAV reader, the file is never
//! loaded whole. Lossless formats come out sample-exact (a 16-bit sample
//! is the same i16-scale value as from a WAV); MP3's encoder delay and
//! padding are trimmed (gapless), so its length matches the source's.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::decoder::{map_frame, AudioInfo, FrameDecoder};
use crate::sample::FLOAT_SCALE;

/// The formats this build reads besides WAV, for messages.
pub const FORMATS: &str = "WAV, FLAC, MP3, Ogg/Vorbis or AIFF";

/// A symphonia-decoded file.
pub struct MediaDecoder {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    info: AudioInfo,
    out_channels: usize,
    /// Decoded frames (already mapped to the output channels) not yet read.
    pending: VecDeque<f32>,
    samples: Option<SampleBuffer<f32>>,
    frames_read: u64,
    ended: bool,
    /// Packets that failed to decode (skipped; reported once).
    bad_packets: u64,
}

impl MediaDecoder {
    /// Opens `path`, delivering frames of `channels` (1 or 2) values.
    pub fn open(path: &Path, channels: u16) -> anyhow::Result<Self> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!("{}: no such file", path.display()),
            _ => anyhow::anyhow!("{}: cannot read: {e}", path.display()),
        })?;
        let stream = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let options = FormatOptions {
            enable_gapless: true,
            ..Default::default()
        };
        let probed = symphonia::default::get_probe()
            .format(&hint, stream, &options, &MetadataOptions::default())
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: not an audio file this program reads ({FORMATS}): {e}",
                    path.display()
                )
            })?;
        let format = probed.format;
        let Some(track) = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        else {
            bail!("{}: no audio track", path.display());
        };
        let params = track.codec_params.clone();
        let track_id = track.id;
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| anyhow::anyhow!("{}: cannot decode its audio: {e}", path.display()))?;
        let codec = symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map_or("audio", |d| d.short_name);
        let Some(sample_rate) = params.sample_rate.filter(|&r| r > 0) else {
            bail!("{}: the file does not say its sample rate", path.display());
        };
        let in_channels = params.channels.map_or(0, |c| c.count() as u16);
        let encoding = params
            .bits_per_sample
            .map(|b| format!("{b}-bit"))
            .unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            format,
            decoder,
            track_id,
            info: AudioInfo {
                format: codec.to_uppercase(),
                channels: in_channels,
                sample_rate,
                encoding,
                frames: params.n_frames.filter(|&n| n > 0),
            },
            out_channels: usize::from(channels.clamp(1, 2)),
            pending: VecDeque::new(),
            samples: None,
            frames_read: 0,
            ended: false,
            bad_packets: 0,
        })
    }

    /// Decodes the next packet of the track into `pending`.
    fn decode_next(&mut self) -> anyhow::Result<()> {
        let packet = match self.format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.ended = true;
                return Ok(());
            }
            // A chained stream changing its parameters: this program takes
            // the first one only.
            Err(SymError::ResetRequired) => {
                self.ended = true;
                return Ok(());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("{}: reading failed", self.path.display()))
            }
        };
        if packet.track_id() != self.track_id {
            return Ok(());
        }
        let decoded = match self.decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(e)) => {
                // A damaged packet: skip it, as players do.
                if self.bad_packets == 0 {
                    log::warn!("{}: skipping undecodable audio ({e})", self.path.display());
                }
                self.bad_packets += 1;
                return Ok(());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("{}: decoding failed", self.path.display()))
            }
        };
        let spec = *decoded.spec();
        let ch = spec.channels.count().max(1);
        let needed = decoded.capacity() as u64;
        let buf = match &mut self.samples {
            Some(b) if b.capacity() as u64 >= needed * ch as u64 => b,
            slot => slot.insert(SampleBuffer::new(needed, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        for input in buf.samples().chunks_exact(ch) {
            // i16 scale: a 16-bit sample (s / 32768 in symphonia) comes back exact.
            let scaled: [f32; 8] = std::array::from_fn(|i| {
                input
                    .get(i)
                    .map_or(0.0, |&s| (f64::from(s) * FLOAT_SCALE) as f32)
            });
            let mut slot = [0.0f32; 2];
            let slot = &mut slot[..self.out_channels];
            if ch <= scaled.len() {
                map_frame(&scaled[..ch], slot);
            } else {
                // More than 8 channels: average them all (rare; allocates).
                let all: Vec<f32> = input
                    .iter()
                    .map(|&s| (f64::from(s) * FLOAT_SCALE) as f32)
                    .collect();
                map_frame(&all, slot);
            }
            self.pending.extend(slot.iter());
        }
        Ok(())
    }
}

impl FrameDecoder for MediaDecoder {
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
        let want = out.len() / ch * ch;
        while self.pending.len() < want && !self.ended {
            self.decode_next()?;
        }
        let n = want.min(self.pending.len() / ch * ch);
        for (slot, x) in out.iter_mut().zip(self.pending.drain(..n)) {
            *slot = x;
        }
        self.frames_read += (n / ch) as u64;
        Ok(n)
    }

    fn rewind(&mut self) -> anyhow::Result<()> {
        self.format
            .seek(
                SeekMode::Accurate,
                SeekTo::TimeStamp {
                    ts: 0,
                    track_id: self.track_id,
                },
            )
            .with_context(|| format!("{}: cannot go back to the start", self.path.display()))?;
        self.decoder.reset();
        self.pending.clear();
        self.frames_read = 0;
        self.ended = false;
        Ok(())
    }
}
