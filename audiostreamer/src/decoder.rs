//! One interface over the decoders a file source can use: WAV files through
//! hound ([`crate::wav`]), WAV on standard input ([`crate::stream_wav`],
//! also with the unknown sizes pipes carry), and FLAC, MP3, Ogg/Vorbis and
//! AIFF through symphonia ([`crate::media`]).
//!
//! Every decoder delivers the same thing: `f32` frames on the i16 scale
//! (see [`crate::sample`]), mono (the channels averaged) or stereo (a
//! stereo file kept, a mono file on both sides, a file of more channels
//! giving its first two).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::media::MediaDecoder;
use crate::stream_wav::StreamWav;
use crate::wav::{WavDecoder, WavError};

/// The input name that means standard input.
pub const STDIN: &str = "-";

/// What a decoder knows about its input, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// The container or codec, e.g. `WAV`, `FLAC`, `MP3`.
    pub format: String,
    /// Interleaved channels per frame in the input.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// The sample encoding, e.g. `16-bit integer` (empty when not known).
    pub encoding: String,
    /// Frames (samples per channel), when known before decoding.
    pub frames: Option<u64>,
}

impl AudioInfo {
    /// Duration in seconds, when the length is known.
    pub fn duration_secs(&self) -> Option<f64> {
        self.frames
            .map(|f| f as f64 / f64::from(self.sample_rate.max(1)))
    }
}

/// A decoder of interleaved i16-scale `f32` frames.
pub trait FrameDecoder {
    /// The input's format.
    fn info(&self) -> &AudioInfo;

    /// Values per output frame (1 or 2).
    fn output_channels(&self) -> u16;

    /// Frames delivered since the start (or the last rewind).
    fn frames_read(&self) -> u64;

    /// Decodes up to `out.len()` values (whole frames) into `out`; returns
    /// how many. Fewer than fit (0 included) means the end of the input.
    fn read(&mut self, out: &mut [f32]) -> anyhow::Result<usize>;

    /// Goes back to the first frame (for `--loop`).
    fn rewind(&mut self) -> anyhow::Result<()>;
}

/// Opens `path` (or standard input for `-`) delivering frames of
/// `channels` (1 or 2) values. WAV files (a `.wav` name or a RIFF header)
/// go through hound, other files through symphonia.
pub fn open(path: &Path, channels: u16) -> anyhow::Result<Box<dyn FrameDecoder>> {
    if path.as_os_str() == STDIN {
        let wav = StreamWav::new(std::io::stdin().lock(), "standard input")?;
        return Ok(Box::new(wav.with_output_channels(channels)));
    }
    if is_wav(path)? {
        let wav = WavDecoder::open(path)?.with_output_channels(channels);
        let i = *wav.info();
        let info = AudioInfo {
            format: "WAV".into(),
            channels: i.channels,
            sample_rate: i.sample_rate,
            encoding: format!(
                "{}-bit {}",
                i.bits_per_sample,
                if i.float { "float" } else { "integer" }
            ),
            frames: Some(i.frames),
        };
        return Ok(Box::new(WavFile { wav, info }));
    }
    Ok(Box::new(MediaDecoder::open(path, channels)?))
}

/// A `.wav` name, or a file that starts with a RIFF header. Errors opening
/// the file are the WAV decoder's (they name the file).
fn is_wav(path: &Path) -> Result<bool, WavError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
    {
        return Ok(true);
    }
    let mut head = [0u8; 4];
    let mut file = match File::open(path) {
        Ok(f) => f,
        // Let the WAV decoder report it in its words.
        Err(_) => return Ok(true),
    };
    let n = file.read(&mut head).unwrap_or(0);
    Ok(n == 4 && &head == b"RIFF")
}

/// A hound-decoded WAV file with its [`AudioInfo`].
struct WavFile {
    wav: WavDecoder,
    info: AudioInfo,
}

impl FrameDecoder for WavFile {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    fn output_channels(&self) -> u16 {
        self.wav.output_channels()
    }

    fn frames_read(&self) -> u64 {
        self.wav.frames_read()
    }

    fn read(&mut self, out: &mut [f32]) -> anyhow::Result<usize> {
        Ok(self.wav.read(out)?)
    }

    fn rewind(&mut self) -> anyhow::Result<()> {
        Ok(self.wav.rewind()?)
    }
}

/// Puts one input frame into `slot` (1 or 2 values): averaged, or its
/// first two channels (a mono frame on both). `frame` is on the i16 scale.
pub(crate) fn map_frame(frame: &[f32], slot: &mut [f32]) {
    if slot.len() == 1 {
        let sum: f64 = frame.iter().map(|&s| f64::from(s)).sum();
        slot[0] = (sum / frame.len().max(1) as f64) as f32;
    } else {
        slot[0] = frame[0];
        slot[1] = frame[usize::from(frame.len() > 1)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_map_to_mono_or_the_front_pair() {
        let mut one = [0.0];
        map_frame(&[100.0, 300.0], &mut one);
        assert_eq!(one, [200.0]);
        let mut two = [0.0; 2];
        map_frame(&[9.0], &mut two);
        assert_eq!(two, [9.0, 9.0]);
        map_frame(&[1.0, 2.0, 3.0], &mut two);
        assert_eq!(two, [1.0, 2.0]);
    }
}
