//! Opening the WAV file: append when the existing file's format matches,
//! refuse a mismatch clearly, start fresh with `--overwrite`, and name the
//! follow-up files of a format change (`rec.wav` → `rec-2.wav` → `rec-3.wav`).
//!
//! Before appending, the header's audio size is clamped to the audio really
//! in the file ([`crate::wav_repair`]): a killed recorder's uncounted last
//! second is kept, a placeholder size from a program that wrote to a pipe
//! does not make the new samples land gigabytes past the end.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// A WAV writer on a file, as hound builds it.
pub type FileWriter = hound::WavWriter<BufWriter<File>>;

/// The format of a recording: always 16-bit signed integer samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Interleaved channels.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
}

impl WavFormat {
    /// The hound spec of this format.
    pub fn spec(&self) -> hound::WavSpec {
        hound::WavSpec {
            channels: self.channels,
            sample_rate: self.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    }
}

impl fmt::Display for WavFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ch, {} Hz, 16-bit", self.channels, self.sample_rate)
    }
}

/// Why a WAV file could not be opened for recording.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file could not be created or opened (missing directory, permissions, full disk).
    #[error("cannot write {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, not chained, so
        /// `{:#}` prints it once).
        error: io::Error,
    },
    /// The file exists but is not a WAV file that can be appended to.
    #[error("{path} exists but is not a WAV file that can be appended to ({reason}); use --overwrite to replace it")]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        reason: String,
    },
    /// The file exists with another format than the stream's.
    #[error(
        "{path} holds {found}, but the stream is {wanted}; use --overwrite or another file name"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The file's format, described.
        found: String,
        /// The stream's format.
        wanted: WavFormat,
    },
}

/// How a file was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new file (or an overwritten one).
    Created,
    /// An existing file; it already held this many frames.
    Appended(u64),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WavError + '_ {
    move |error| WavError::Io {
        path: path.to_owned(),
        error,
    }
}

fn hound_err(path: &Path, e: hound::Error) -> WavError {
    match e {
        hound::Error::IoError(error) => WavError::Io {
            path: path.to_owned(),
            error,
        },
        other => WavError::NotWav {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Opens `path` for recording `format`: appends to a matching existing file,
/// creates a missing (or empty) one, replaces any with `overwrite`. The
/// header is on disk when this returns, so the file is valid at once.
pub fn open(
    path: &Path,
    format: WavFormat,
    overwrite: bool,
) -> Result<(FileWriter, Opened), WavError> {
    let existing_len = match std::fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(path)(e)),
    };
    if overwrite || existing_len.unwrap_or(0) == 0 {
        let mut writer =
            hound::WavWriter::create(path, format.spec()).map_err(|e| hound_err(path, e))?;
        writer.flush().map_err(|e| hound_err(path, e))?;
        return Ok((writer, Opened::Created));
    }
    // Before reading the header with hound: a placeholder size that is not
    // a whole number of samples would make it refuse the file.
    if let Some(repair) = crate::wav_repair::repair(path, format).map_err(io_err(path))? {
        log::warn!("{}: repaired before appending: {repair}", path.display());
    }
    let found = existing_spec(path)?;
    if found != format.spec() {
        return Err(WavError::Mismatch {
            path: path.to_owned(),
            found: describe(&found),
            wanted: format,
        });
    }
    let writer = hound::WavWriter::append(path).map_err(|e| hound_err(path, e))?;
    let frames = u64::from(writer.duration());
    Ok((writer, Opened::Appended(frames)))
}

/// The spec of an existing WAV file.
pub fn existing_spec(path: &Path) -> Result<hound::WavSpec, WavError> {
    let reader = hound::WavReader::open(path).map_err(|e| hound_err(path, e))?;
    Ok(reader.spec())
}

/// Whether an existing file at `path` could be appended to with `format`.
pub fn matches(path: &Path, format: WavFormat) -> bool {
    existing_spec(path).is_ok_and(|s| s == format.spec())
}

fn describe(spec: &hound::WavSpec) -> String {
    let kind = match spec.sample_format {
        hound::SampleFormat::Int => "integer",
        hound::SampleFormat::Float => "float",
    };
    format!(
        "{} ch, {} Hz, {}-bit {kind}",
        spec.channels, spec.sample_rate, spec.bits_per_sample
    )
}

/// `rec.wav` with `n` = 2 → `rec-2.wav` (n = 1 is the path itself).
pub fn numbered_path(base: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return base.to_owned();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    base.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("audiorecorder-wav-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const STEREO: WavFormat = WavFormat {
        channels: 2,
        sample_rate: 44_100,
    };

    #[test]
    fn numbered_paths() {
        assert_eq!(
            numbered_path(Path::new("/a/rec.wav"), 1),
            Path::new("/a/rec.wav")
        );
        assert_eq!(
            numbered_path(Path::new("/a/rec.wav"), 2),
            Path::new("/a/rec-2.wav")
        );
        assert_eq!(numbered_path(Path::new("rec"), 3), Path::new("rec-3"));
        assert_eq!(
            numbered_path(Path::new("x.y.wav"), 2),
            Path::new("x.y-2.wav")
        );
    }

    #[test]
    fn create_append_mismatch_overwrite() {
        let dir = temp_dir("rules");
        let path = dir.join("rec.wav");
        let (mut w, opened) = open(&path, STEREO, false).unwrap();
        assert_eq!(opened, Opened::Created);
        for s in [1i16, 2, 3, 4] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let (mut w, opened) = open(&path, STEREO, false).unwrap();
        assert_eq!(opened, Opened::Appended(2));
        w.write_sample(5i16).unwrap();
        w.write_sample(6i16).unwrap();
        w.finalize().unwrap();
        let samples: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .samples()
            .map(Result::unwrap)
            .collect();
        assert_eq!(samples, [1, 2, 3, 4, 5, 6]);

        let mono = WavFormat {
            channels: 1,
            sample_rate: 44_100,
        };
        let err = open(&path, mono, false).err().unwrap();
        assert!(matches!(err, WavError::Mismatch { .. }), "{err}");
        assert!(
            err.to_string().contains("2 ch, 44100 Hz, 16-bit integer"),
            "{err}"
        );
        let (w, opened) = open(&path, mono, true).unwrap();
        assert_eq!(opened, Opened::Created);
        drop(w);
        assert_eq!(hound::WavReader::open(&path).unwrap().spec().channels, 1);
    }

    #[test]
    fn not_a_wav_and_missing_directory_are_clear_errors() {
        let dir = temp_dir("bad");
        let path = dir.join("notes.wav");
        std::fs::write(&path, b"hello, not a wav").unwrap();
        let err = open(&path, STEREO, false).err().unwrap();
        assert!(err.to_string().contains("not a WAV file"), "{err}");
        let err = open(&dir.join("missing/rec.wav"), STEREO, false)
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing/rec.wav"), "{err}");
    }

    #[test]
    fn partial_frame_after_a_killed_recording_is_cut_before_appending() {
        let dir = temp_dir("tail");
        let path = dir.join("rec.wav");
        let (mut w, _) = open(&path, STEREO, false).unwrap();
        for s in [10i16, 11] {
            w.write_sample(s).unwrap();
        }
        w.flush().unwrap();
        // Simulate a kill: bytes after the last header update (3 of them,
        // not even a whole sample), and no finalisation.
        std::mem::forget(w);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xAA, 0xBB, 0xCC]);
        std::fs::write(&path, &bytes).unwrap();
        let (mut w, opened) = open(&path, STEREO, false).unwrap();
        assert_eq!(opened, Opened::Appended(1));
        for s in [12i16, 13] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let samples: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .samples()
            .map(Result::unwrap)
            .collect();
        assert_eq!(samples, [10, 11, 12, 13]);
    }

    #[test]
    fn empty_existing_file_is_started_fresh() {
        let dir = temp_dir("empty");
        let path = dir.join("rec.wav");
        std::fs::write(&path, b"").unwrap();
        let (_, opened) = open(&path, STEREO, false).unwrap();
        assert_eq!(opened, Opened::Created);
    }
}
