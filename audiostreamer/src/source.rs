//! Where samples come from: the [`SampleSource`] interface and the file
//! source (decode any [`crate::decoder`] input → downmix, or keep stereo
//! for `--rtp --channels 2` → resample when rates differ, each channel on
//! its own → i16).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::decoder::{AudioInfo, FrameDecoder};
use crate::resample::{resampled_len, StreamResampler};
use crate::sample::to_i16;

/// A stream of i16 samples at the output sample rate: mono, or
/// interleaved frames of [`SampleSource::channels`] samples.
pub trait SampleSource {
    /// Fills `out` with the next samples (whole frames) and returns how
    /// many were written. Fewer than `out.len()` means the stream has
    /// ended. A live source may block until enough samples exist; it
    /// returns early when `stop` is set.
    fn read(&mut self, out: &mut [i16], stop: &AtomicBool) -> anyhow::Result<usize>;

    /// Frames (samples per channel) the whole stream holds, when that is
    /// known in advance.
    fn total_samples(&self) -> Option<u64>;

    /// Samples per frame: 1 (mono, the default) or 2 (stereo).
    fn channels(&self) -> u16 {
        1
    }

    /// True when the run loop must pace the stream against the clock (a
    /// file); false when the source delivers in real time itself (a device).
    fn needs_pacing(&self) -> bool;
}

/// Frames decoded per read from the file.
const DECODE_BLOCK: usize = 1024;

/// An audio file (or standard input) as a [`SampleSource`], optionally
/// repeated forever.
pub struct FileSource {
    decoder: Box<dyn FrameDecoder>,
    /// One resampler per output channel (none when the rates match).
    resamplers: Vec<StreamResampler>,
    out_rate: u32,
    looping: bool,
    block: Vec<f32>,
    /// Per channel: the block's samples, then the resampled ones.
    split: Vec<Vec<f32>>,
    resampled: Vec<VecDeque<f32>>,
    /// Interleaved output samples.
    pending: VecDeque<f32>,
    ended: bool,
    passes: u64,
}

impl FileSource {
    /// Opens `path` for streaming mono at `out_rate` Hz, repeating it if `looping`.
    pub fn open(path: &Path, out_rate: u32, looping: bool) -> anyhow::Result<Self> {
        Self::open_with_channels(path, out_rate, looping, 1)
    }

    /// Opens `path` for streaming frames of `channels` (1 or 2) samples at
    /// `out_rate` Hz (see [`crate::decoder`]); `-` is standard input.
    pub fn open_with_channels(
        path: &Path,
        out_rate: u32,
        looping: bool,
        channels: u16,
    ) -> anyhow::Result<Self> {
        let decoder = crate::decoder::open(path, channels)?;
        let ch = usize::from(decoder.output_channels());
        let in_rate = decoder.info().sample_rate;
        let resamplers = if in_rate == out_rate {
            Vec::new()
        } else {
            (0..ch)
                .map(|_| StreamResampler::new(in_rate, out_rate, DECODE_BLOCK))
                .collect::<Result<_, _>>()
                .with_context(|| {
                    format!(
                        "cannot resample {} from {in_rate} Hz to {out_rate} Hz",
                        path.display()
                    )
                })?
        };
        Ok(Self {
            decoder,
            resamplers,
            out_rate,
            looping,
            block: vec![0.0; DECODE_BLOCK * ch],
            split: vec![Vec::with_capacity(DECODE_BLOCK); ch],
            resampled: vec![VecDeque::with_capacity(4 * DECODE_BLOCK); ch],
            pending: VecDeque::with_capacity(4 * DECODE_BLOCK * ch),
            ended: false,
            passes: 0,
        })
    }

    /// The file's format.
    pub fn info(&self) -> &AudioInfo {
        self.decoder.info()
    }

    /// Whether the file is resampled on the way out.
    pub fn is_resampling(&self) -> bool {
        !self.resamplers.is_empty()
    }

    /// Completed passes through the file (grows with `--loop`).
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Output frames of one pass through the file, when its length is
    /// known in advance.
    pub fn samples_per_pass(&self) -> Option<u64> {
        let info = self.decoder.info();
        info.frames
            .map(|frames| resampled_len(frames, info.sample_rate, self.out_rate))
    }

    /// Decodes the next block into `pending`; handles the end of a pass.
    fn refill(&mut self) {
        let n = match self.decoder.read(&mut self.block) {
            Ok(n) => n,
            Err(e) => {
                // A truncated file: stream what was decoded and end the pass.
                log::warn!("{e:#}; treating it as the end of the file");
                0
            }
        };
        let full = n == self.block.len();
        if self.resamplers.is_empty() {
            self.pending.extend(&self.block[..n]);
        } else {
            let ch = self.split.len();
            for (c, split) in self.split.iter_mut().enumerate() {
                split.clear();
                split.extend(self.block[..n].iter().skip(c).step_by(ch));
            }
            for ((r, split), out) in self
                .resamplers
                .iter_mut()
                .zip(&self.split)
                .zip(&mut self.resampled)
            {
                r.push(split, out);
                if !full {
                    // End of this pass.
                    r.finish(out);
                }
            }
            // Every channel got the same input, so the same output count.
            let frames = self.resampled.iter().map(VecDeque::len).min().unwrap_or(0);
            for _ in 0..frames {
                for out in &mut self.resampled {
                    if let Some(x) = out.pop_front() {
                        self.pending.push_back(x);
                    }
                }
            }
        }
        if full {
            return;
        }
        let pass_frames = self.decoder.frames_read();
        self.passes += 1;
        if !self.looping || pass_frames == 0 {
            self.ended = true;
            return;
        }
        log::debug!("end of pass {}; starting again", self.passes);
        if let Err(e) = self.decoder.rewind() {
            log::warn!("{e:#}; cannot loop any more");
            self.ended = true;
        }
    }
}

impl SampleSource for FileSource {
    fn read(&mut self, out: &mut [i16], _stop: &AtomicBool) -> anyhow::Result<usize> {
        let mut filled = 0;
        loop {
            while filled < out.len() {
                let Some(x) = self.pending.pop_front() else {
                    break;
                };
                out[filled] = to_i16(x);
                filled += 1;
            }
            if filled == out.len() || self.ended {
                return Ok(filled);
            }
            self.refill();
        }
    }

    fn total_samples(&self) -> Option<u64> {
        if self.looping {
            None
        } else {
            self.samples_per_pass()
        }
    }

    fn needs_pacing(&self) -> bool {
        true
    }

    fn channels(&self) -> u16 {
        self.decoder.output_channels()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct TempWav(PathBuf);
    impl Drop for TempWav {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn write_mono16(name: &str, rate: u32, samples: &[i16]) -> TempWav {
        let path = std::env::temp_dir().join(format!(
            "audiostreamer-src-{}-{name}.wav",
            std::process::id()
        ));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        TempWav(path)
    }

    fn read_chunks(src: &mut FileSource, chunk: usize, max: usize) -> Vec<Vec<i16>> {
        let stop = AtomicBool::new(false);
        let mut chunks = Vec::new();
        let mut buf = vec![0; chunk];
        while chunks.len() < max {
            let n = src.read(&mut buf, &stop).unwrap();
            if n > 0 {
                chunks.push(buf[..n].to_vec());
            }
            if n < chunk {
                break;
            }
        }
        chunks
    }

    #[test]
    fn same_rate_is_bit_exact_with_short_last_chunk() {
        let samples: Vec<i16> = (0..2500).map(|i| (i * 37 - 40_000 / 3) as i16).collect();
        let f = write_mono16("exact", 44_100, &samples);
        let mut src = FileSource::open(&f.0, 44_100, false).unwrap();
        assert!(!src.is_resampling());
        assert_eq!(src.total_samples(), Some(2500));
        let chunks = read_chunks(&mut src, 441, usize::MAX);
        assert_eq!(chunks.len(), 6);
        assert_eq!(chunks[5].len(), 2500 - 5 * 441);
        assert_eq!(chunks.concat(), samples);
    }

    #[test]
    fn looping_repeats_seamlessly() {
        let samples: Vec<i16> = (1..=100).collect();
        let f = write_mono16("loop", 8_000, &samples);
        let mut src = FileSource::open(&f.0, 8_000, true).unwrap();
        assert_eq!(src.total_samples(), None);
        let chunks = read_chunks(&mut src, 30, 20);
        assert!(chunks.iter().all(|c| c.len() == 30));
        let all = chunks.concat();
        assert_eq!(all.len(), 600);
        assert!(all.chunks(100).all(|pass| pass == samples.as_slice()));
        assert!(src.passes() >= 5);
    }

    #[test]
    fn stereo_is_kept_and_resampled_per_channel() {
        let path = std::env::temp_dir().join(format!(
            "audiostreamer-src-{}-stereo.wav",
            std::process::id()
        ));
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 22_050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..2205 {
            w.write_sample(1000i16).unwrap();
            w.write_sample(-3000i16).unwrap();
        }
        w.finalize().unwrap();
        let f = TempWav(path);
        let mut same = FileSource::open_with_channels(&f.0, 22_050, false, 2).unwrap();
        assert_eq!(same.channels(), 2);
        let all = read_chunks(&mut same, 882, usize::MAX).concat();
        assert_eq!(all.len(), 4410);
        assert!(all.chunks(2).all(|fr| fr == [1000, -3000]));
        let mut up = FileSource::open_with_channels(&f.0, 44_100, false, 2).unwrap();
        assert_eq!(up.total_samples(), Some(4410));
        let all = read_chunks(&mut up, 882, usize::MAX).concat();
        assert_eq!(all.len(), 2 * 4410);
        let mid = &all[1000..7800];
        assert!(mid
            .chunks(2)
            .all(|fr| (990..=1010).contains(&fr[0]) && (-3010..=-2990).contains(&fr[1])));
    }

    #[test]
    fn resampled_length_is_exact() {
        let f = write_mono16("rs", 22_050, &vec![1000; 2205]);
        let mut src = FileSource::open(&f.0, 44_100, false).unwrap();
        assert!(src.is_resampling());
        assert_eq!(src.total_samples(), Some(4410));
        let all = read_chunks(&mut src, 441, usize::MAX).concat();
        assert_eq!(all.len(), 4410);
        // A constant stays (nearly) constant away from the edges.
        assert!(all[500..3900].iter().all(|&s| (990..=1010).contains(&s)));
    }
}
