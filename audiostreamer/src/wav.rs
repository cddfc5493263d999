//! Streaming WAV decoder: any file hound reads, delivered as mono `f32`
//! frames on the i16 scale (see [`crate::sample`]), or as stereo frames
//! for `--rtp --channels 2` (a stereo file stays stereo, a mono file is
//! duplicated to both channels, a file of more channels gives its first
//! two, front left and right in WAV's channel order).
//!
//! The file is read through hound's sample iterator a block at a time, never
//! loaded whole, so a multi-hour track costs the same memory as a short one.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use crate::sample::{downmix_float, downmix_int, int_scale};

/// What a WAV file holds, as read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Interleaved channels per frame.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// True for IEEE float samples, false for signed integers.
    pub float: bool,
    /// Frames (samples per channel) in the file.
    pub frames: u64,
}

impl WavInfo {
    /// Duration of the file in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Why a WAV file cannot be streamed. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file does not exist.
    #[error("{0}: no such file")]
    NotFound(PathBuf),
    /// The file exists but could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a RIFF/WAVE file, or its header is damaged.
    #[error("{path}: not a WAV file ({reason})")]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What hound found wrong.
        reason: String,
    },
    /// A WAV encoding this program cannot decode (compressed, 64-bit float, …).
    #[error("{path}: unsupported WAV encoding ({detail}); use 8/16/24/32-bit integer or 32-bit float PCM")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        detail: String,
    },
    /// A WAV file without a single sample.
    #[error("{0}: the WAV file contains no samples")]
    Empty(PathBuf),
    /// Reading samples failed part-way (for example a truncated file).
    #[error("{path}: reading samples failed after {frames} frames: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Frames decoded before the failure.
        frames: u64,
        /// What went wrong.
        reason: String,
    },
}

/// Decodes a WAV file block by block into mono (or stereo) i16-scale
/// `f32` frames.
pub struct WavDecoder {
    path: PathBuf,
    /// Values per output frame: 1 (downmixed) or 2 (left, right).
    out_channels: usize,
    reader: hound::WavReader<BufReader<File>>,
    info: WavInfo,
    scale: f64,
    frames_read: u64,
    // One frame of raw samples, reused (no allocation per frame).
    int_frame: Vec<i32>,
    float_frame: Vec<f32>,
}

impl WavDecoder {
    /// Opens `path` and checks that it can be streamed.
    pub fn open(path: &Path) -> Result<Self, WavError> {
        // Open the file ourselves so that "cannot open" and "cannot parse" stay apart.
        let file = File::open(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => WavError::NotFound(path.to_path_buf()),
            _ => WavError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let reader =
            hound::WavReader::new(BufReader::new(file)).map_err(|e| header_error(path, e))?;
        let spec = reader.spec();
        let float = match spec.sample_format {
            hound::SampleFormat::Float => true,
            hound::SampleFormat::Int => false,
        };
        let unsupported = |detail: String| WavError::Unsupported {
            path: path.to_path_buf(),
            detail,
        };
        if float && spec.bits_per_sample != 32 {
            return Err(unsupported(format!("{}-bit float", spec.bits_per_sample)));
        }
        if !float && !(1..=32).contains(&spec.bits_per_sample) {
            return Err(unsupported(format!("{}-bit integer", spec.bits_per_sample)));
        }
        if spec.channels == 0 {
            return Err(unsupported("zero channels".into()));
        }
        if spec.sample_rate == 0 {
            return Err(unsupported("sample rate 0 Hz".into()));
        }
        let frames = u64::from(reader.duration());
        if frames == 0 {
            return Err(WavError::Empty(path.to_path_buf()));
        }
        let channels = usize::from(spec.channels);
        Ok(Self {
            path: path.to_path_buf(),
            out_channels: 1,
            reader,
            info: WavInfo {
                channels: spec.channels,
                sample_rate: spec.sample_rate,
                bits_per_sample: spec.bits_per_sample,
                float,
                frames,
            },
            scale: int_scale(spec.bits_per_sample),
            frames_read: 0,
            int_frame: vec![0; channels],
            float_frame: vec![0.0; channels],
        })
    }

    /// Delivers frames of `channels` values (1: the channels averaged, as
    /// by default; 2: left and right, see the module documentation).
    pub fn with_output_channels(mut self, channels: u16) -> Self {
        self.out_channels = usize::from(channels.clamp(1, 2));
        self
    }

    /// Values per output frame (1 or 2).
    pub fn output_channels(&self) -> u16 {
        self.out_channels as u16
    }

    /// The file's format and length.
    pub fn info(&self) -> &WavInfo {
        &self.info
    }

    /// Frames decoded since the start (or the last [`rewind`](Self::rewind)).
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// Decodes up to `out.len()` values (whole frames of
    /// [`Self::output_channels`] values, interleaved) into `out`; returns
    /// how many values. Fewer than fit (0 included) means the end of the
    /// file.
    pub fn read(&mut self, out: &mut [f32]) -> Result<usize, WavError> {
        let n = if self.info.float {
            self.read_float(out)
        } else {
            self.read_int(out)
        };
        let n = n.map_err(|reason| WavError::Read {
            path: self.path.clone(),
            frames: self.frames_read,
            reason,
        })?;
        self.frames_read += (n / self.out_channels) as u64;
        Ok(n)
    }

    fn read_int(&mut self, out: &mut [f32]) -> Result<usize, String> {
        let mut samples = self.reader.samples::<i32>();
        let ch = self.out_channels;
        for (done, slot) in out.chunks_exact_mut(ch).enumerate() {
            for raw in self.int_frame.iter_mut() {
                match samples.next() {
                    Some(Ok(v)) => *raw = v,
                    Some(Err(e)) => return Err(e.to_string()),
                    // End of data; a partial last frame is dropped.
                    None => return Ok(done * ch),
                }
            }
            if ch == 1 {
                slot[0] = downmix_int(&self.int_frame, self.scale);
            } else {
                // A mono file's only channel goes to both sides.
                let right = usize::from(self.int_frame.len() > 1);
                slot[0] = downmix_int(&self.int_frame[..1], self.scale);
                slot[1] = downmix_int(&self.int_frame[right..=right], self.scale);
            }
        }
        Ok(out.len() / ch * ch)
    }

    fn read_float(&mut self, out: &mut [f32]) -> Result<usize, String> {
        let mut samples = self.reader.samples::<f32>();
        let ch = self.out_channels;
        for (done, slot) in out.chunks_exact_mut(ch).enumerate() {
            for raw in self.float_frame.iter_mut() {
                match samples.next() {
                    Some(Ok(v)) => *raw = v,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Ok(done * ch),
                }
            }
            if ch == 1 {
                slot[0] = downmix_float(&self.float_frame);
            } else {
                let right = usize::from(self.float_frame.len() > 1);
                slot[0] = downmix_float(&self.float_frame[..1]);
                slot[1] = downmix_float(&self.float_frame[right..=right]);
            }
        }
        Ok(out.len() / ch * ch)
    }

    /// Goes back to the first frame (for `--loop`).
    pub fn rewind(&mut self) -> Result<(), WavError> {
        self.reader.seek(0).map_err(|source| WavError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.frames_read = 0;
        Ok(())
    }
}

/// Maps a hound error while parsing the header (the file is open) to a [`WavError`].
fn header_error(path: &Path, e: hound::Error) -> WavError {
    let path = path.to_path_buf();
    match e {
        // hound reports a file shorter than its header as an I/O error
        // ("Failed to read enough bytes"): that is a damaged or non-WAV file.
        hound::Error::IoError(source)
            if matches!(
                source.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::Other
            ) =>
        {
            WavError::NotWav {
                path,
                reason: format!("header cut short: {source}"),
            }
        }
        hound::Error::IoError(source) => WavError::Io { path, source },
        // Without the RIFF/WAVE tags it is not a WAV file at all.
        hound::Error::FormatError(reason @ ("no RIFF tag found" | "no WAVE tag found")) => {
            WavError::NotWav {
                path,
                reason: reason.into(),
            }
        }
        // hound's only word for 64-bit float.
        hound::Error::FormatError("bits per sample is not 32") => WavError::Unsupported {
            path,
            detail: "float samples that are not 32-bit".into(),
        },
        // A WAV whose format header hound rejects: an encoding it cannot
        // describe (odd bit depths, …) or a damaged header.
        hound::Error::FormatError(reason) => WavError::Unsupported {
            path,
            detail: format!("format header rejected: {reason}"),
        },
        hound::Error::Unsupported => WavError::Unsupported {
            path,
            detail: "compressed or unknown format tag".into(),
        },
        other => WavError::NotWav {
            path,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempWav(PathBuf);
    impl Drop for TempWav {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn temp_path(name: &str) -> TempWav {
        let unique = format!(
            "audiostreamer-wav-{}-{}-{name}.wav",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        TempWav(std::env::temp_dir().join(unique))
    }

    fn write_int(path: &Path, channels: u16, bits: u16, samples: &[i32]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            match bits {
                8 => w.write_sample(s as i8).unwrap(),
                16 => w.write_sample(s as i16).unwrap(),
                _ => w.write_sample(s).unwrap(),
            }
        }
        w.finalize().unwrap();
    }

    fn decode_all(path: &Path, block: usize) -> Vec<f32> {
        let mut d = WavDecoder::open(path).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0.0; block];
        loop {
            let n = d.read(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            if n < block {
                return out;
            }
        }
    }

    #[test]
    fn decodes_each_int_depth_in_blocks() {
        let f = temp_path("depths");
        write_int(&f.0, 1, 8, &[-128, 0, 127]);
        assert_eq!(decode_all(&f.0, 2), vec![-32768.0, 0.0, 32512.0]);
        write_int(&f.0, 1, 24, &[0x12_3456, -256]);
        assert_eq!(decode_all(&f.0, 1), vec![0x12_3456 as f32 / 256.0, -1.0]);
        write_int(&f.0, 1, 32, &[65_536 * 3, i32::MIN]);
        assert_eq!(decode_all(&f.0, 5), vec![3.0, -32768.0]);
    }

    #[test]
    fn downmixes_stereo_and_rewinds() {
        let f = temp_path("stereo");
        write_int(&f.0, 2, 16, &[100, 300, -5, -7, 1, 2]);
        let mut d = WavDecoder::open(&f.0).unwrap();
        assert_eq!(d.info().frames, 3);
        assert_eq!(d.info().channels, 2);
        let mut buf = [0.0; 4];
        assert_eq!(d.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], &[200.0, -6.0, 1.5]);
        assert_eq!(d.read(&mut buf).unwrap(), 0);
        d.rewind().unwrap();
        assert_eq!(d.read(&mut buf[..1]).unwrap(), 1);
        assert_eq!(buf[0], 200.0);
    }

    #[test]
    fn stereo_output_keeps_duplicates_or_takes_the_front_pair() {
        let f = temp_path("stereo-out");
        write_int(&f.0, 2, 16, &[100, 300, -5, -7, 1, 2]);
        let mut d = WavDecoder::open(&f.0).unwrap().with_output_channels(2);
        let mut buf = [0.0; 5]; // room for two whole frames only
        assert_eq!(d.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[100.0, 300.0, -5.0, -7.0]);
        assert_eq!(d.frames_read(), 2);
        assert_eq!(d.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], &[1.0, 2.0]);
        write_int(&f.0, 1, 16, &[9, -9]);
        let mut d = WavDecoder::open(&f.0).unwrap().with_output_channels(2);
        assert_eq!(d.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[9.0, 9.0, -9.0, -9.0]);
        write_int(&f.0, 3, 16, &[1, 2, 3, 4, 5, 6]);
        let mut d = WavDecoder::open(&f.0).unwrap().with_output_channels(2);
        assert_eq!(d.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[1.0, 2.0, 4.0, 5.0]);
    }

    #[test]
    fn float_file() {
        let f = temp_path("float");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&f.0, spec).unwrap();
        for s in [0.5f32, -0.25] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(decode_all(&f.0, 8), vec![16384.0, -8192.0]);
    }

    #[test]
    fn bad_files_give_typed_errors() {
        let f = temp_path("bad");
        assert!(matches!(WavDecoder::open(&f.0), Err(WavError::NotFound(_))));
        std::fs::write(&f.0, b"this is certainly not a RIFF file, just some text").unwrap();
        let err = WavDecoder::open(&f.0).err().unwrap();
        assert!(matches!(err, WavError::NotWav { .. }), "{err}");
        std::fs::write(&f.0, b"hi").unwrap();
        let err = WavDecoder::open(&f.0).err().unwrap();
        assert!(matches!(err, WavError::NotWav { .. }), "{err:?}");
        write_int(&f.0, 1, 16, &[]);
        assert!(matches!(WavDecoder::open(&f.0), Err(WavError::Empty(_))));
    }

    fn valid_header(format_tag: u16, channels: u16, bits: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&1000u32.to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&format_tag.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        let align = channels.wrapping_mul(bits / 8);
        b.extend_from_slice(&(8000 * u32::from(align)).to_le_bytes());
        b.extend_from_slice(&align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Arbitrary bytes, and arbitrary bytes after a plausible header,
        /// give a decoder or a typed error, never a panic or a hang.
        #[test]
        fn arbitrary_files_never_panic(
            tag in proptest::sample::select(vec![1u16, 3, 0xFFFE, 6]),
            channels in 0u16..9,
            bits in proptest::sample::select(vec![0u16, 8, 12, 16, 24, 32, 64]),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            raw in proptest::prelude::any::<bool>(),
        ) {
            let f = temp_path("prop");
            let mut bytes = if raw { Vec::new() } else { valid_header(tag, channels, bits) };
            bytes.extend_from_slice(&body);
            std::fs::write(&f.0, &bytes).unwrap();
            if let Ok(mut d) = WavDecoder::open(&f.0) {
                let mut buf = [0.0f32; 64];
                // Each read either fills the buffer or ends; bound the loop anyway.
                for _ in 0..1000 {
                    match d.read(&mut buf) {
                        Ok(n) if n == buf.len() => {}
                        _ => break,
                    }
                }
            }
        }
    }
}
