//! The WAV writer thread: receives whole frames over a bounded channel and
//! appends them to the file, bringing the header up to date twice a second.
//!
//! Memory is constant: hound streams samples to a `BufWriter`, and the
//! channel is bounded (when the disk falls that far behind, frames are
//! counted as dropped rather than stalling the network thread). A format
//! change (a new TCP Spec) finishes the file and continues in the next
//! numbered one (`rec-2.wav`, …), up to `--max-files` files per run.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::stats::Stats;
use crate::wav::{self, FileWriter, Opened, WavFormat};

/// How often the header is rewritten and the file synced to disk: a SIGKILL
/// or a power cut loses at most this much.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Messages queued before frames are dropped (each is one datagram or
/// Samples message: several seconds of audio).
const QUEUE_MESSAGES: usize = 4096;

/// A message to the writer thread.
#[derive(Debug)]
pub enum WriterMsg {
    /// Whole interleaved frames in the current format.
    Samples(Vec<i16>),
    /// The stream's format from now on (may start the next numbered file).
    Format(WavFormat),
}

/// The files of one recording session and the one being written.
pub struct WavSink {
    base: PathBuf,
    overwrite: bool,
    /// Number of the file being written (1 = the base path).
    index: u32,
    current: Option<(FileWriter, WavFormat, PathBuf)>,
    /// A second handle on the current file, for `fsync`: hound does not
    /// expose its own, and `fsync` applies to the file, whichever handle.
    sync: Option<File>,
    stats: Arc<Stats>,
    max_data_bytes: u64,
    /// `--max-files`: files this run may open.
    max_files: u32,
    /// Files opened so far in this run.
    files_opened: u32,
}

/// Largest data chunk written to one file: WAV (and hound) count sizes in
/// `u32`, so a file is continued in the next numbered one before 4 GiB
/// (about 6.7 h of 44.1 kHz stereo).
pub const MAX_DATA_BYTES: u64 = u32::MAX as u64 - (1 << 20);

impl WavSink {
    /// A sink writing to `base` (and `base-2…` after format changes).
    /// Fails early when `base`'s directory does not exist.
    pub fn new(base: &Path, overwrite: bool, stats: Arc<Stats>) -> anyhow::Result<Self> {
        let dir = match base.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            anyhow::bail!(
                "cannot write {}: directory {} does not exist",
                base.display(),
                dir.display()
            );
        }
        Ok(Self {
            base: base.to_owned(),
            overwrite,
            index: 0,
            current: None,
            sync: None,
            stats,
            max_data_bytes: MAX_DATA_BYTES,
            max_files: u32::MAX,
            files_opened: 0,
        })
    }

    /// Limits the files this run may open (`--max-files`); one more is an
    /// error that stops the recording.
    pub fn with_max_files(mut self, max_files: u32) -> Self {
        self.max_files = max_files.max(1);
        self
    }

    /// Lowers the per-file size limit (tests of the continuation).
    pub fn with_max_data_bytes(mut self, bytes: u64) -> Self {
        self.max_data_bytes = bytes.min(MAX_DATA_BYTES);
        self
    }

    /// The file being written, once a format is known.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|(_, _, p)| p.as_path())
    }

    /// Sets the stream format; opens the first file, or finishes the current
    /// one and starts the next numbered file when the format changed.
    pub fn set_format(&mut self, format: WavFormat) -> anyhow::Result<()> {
        if let Some((_, current, _)) = &self.current {
            if *current == format {
                return Ok(());
            }
        }
        self.start_next(format)
    }

    /// Finishes the current file (if any) and opens the next one in the
    /// sequence `base`, `base-2`, `base-3`, … for `format`.
    fn start_next(&mut self, format: WavFormat) -> anyhow::Result<()> {
        self.finish_current()?;
        if self.files_opened >= self.max_files {
            anyhow::bail!(
                "the recording needs more than --max-files {} files in this run (the stream \
                 changed format too often); stopping",
                self.max_files
            );
        }
        self.files_opened += 1;
        let (path, (writer, opened)) = if self.index == 0 {
            self.index = 1;
            (
                self.base.clone(),
                wav::open(&self.base, format, self.overwrite)?,
            )
        } else {
            // Skip numbered files of another format left by earlier runs.
            loop {
                self.index += 1;
                let path = wav::numbered_path(&self.base, self.index);
                if self.overwrite || !path.exists() || wav::matches(&path, format) {
                    let opened = wav::open(&path, format, self.overwrite)?;
                    break (path, opened);
                }
            }
        };
        match opened {
            Opened::Created => log::info!("recording to {} ({format})", path.display()),
            Opened::Appended(frames) => log::info!(
                "appending to {} ({format}; it already holds {:.2} s)",
                path.display(),
                frames as f64 / f64::from(format.sample_rate)
            ),
        }
        self.sync = Some(
            File::open(&path)
                .with_context(|| format!("cannot open {} to sync it", path.display()))?,
        );
        self.current = Some((writer, format, path));
        Ok(())
    }

    /// Finalises the current file and makes it durable.
    fn finish_current(&mut self) -> anyhow::Result<()> {
        let sync = self.sync.take();
        if let Some((writer, _, path)) = self.current.take() {
            writer
                .finalize()
                .with_context(|| format!("cannot finish {}", path.display()))?;
            if let Some(file) = sync {
                durable(&file).with_context(|| format!("cannot sync {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Appends whole frames in the current format.
    pub fn write(&mut self, samples: &[i16]) -> anyhow::Result<()> {
        let Some((writer, format, _)) = &self.current else {
            anyhow::bail!("samples before the stream format is known");
        };
        let bytes = 2 * (u64::from(writer.len()) + samples.len() as u64);
        if bytes > self.max_data_bytes {
            let format = *format;
            log::info!("the WAV file is full (4 GiB limit); continuing in the next file");
            self.start_next(format)?;
        }
        let Some((writer, format, path)) = &mut self.current else {
            anyhow::bail!("samples before the stream format is known");
        };
        let mut w = writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w.write_sample(s);
        }
        w.flush().with_context(|| {
            format!(
                "writing {} failed; the file holds what was recorded until the last header update",
                path.display()
            )
        })?;
        Stats::add(
            &self.stats.recorded_frames,
            (samples.len() / usize::from(format.channels)) as u64,
        );
        Ok(())
    }

    /// Brings the header up to date and makes samples and header durable
    /// (`fdatasync`), so a power cut loses no more than a process crash.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Some((writer, _, path)) = &mut self.current {
            let failed = || {
                format!(
                    "updating {} failed; the file holds what was recorded until the last header update",
                    path.display()
                )
            };
            writer.flush().with_context(failed)?;
            if let Some(file) = &self.sync {
                durable(file).with_context(failed)?;
            }
        }
        Ok(())
    }

    /// Finalises the current file.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.finish_current()
    }
}

/// `fdatasync`, except on files that cannot be synced (`/dev/null`, some
/// pipes and special files: EINVAL), where there is nothing to make durable.
fn durable(file: &File) -> std::io::Result<()> {
    match file.sync_data() {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// The network side of the writer thread.
pub struct WriterHandle {
    tx: Option<Sender<WriterMsg>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    stats: Arc<Stats>,
    warned_full: bool,
}

impl WriterHandle {
    /// Starts the writer thread on `sink`.
    pub fn spawn(sink: WavSink, stats: Arc<Stats>) -> anyhow::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_MESSAGES);
        let thread = std::thread::Builder::new()
            .name("wav-writer".into())
            .spawn(move || writer_loop(sink, rx))
            .context("cannot start the WAV writer thread")?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            stats,
            warned_full: false,
        })
    }

    /// Queues a format change.
    pub fn set_format(&mut self, format: WavFormat) {
        if let Some(tx) = &self.tx {
            // Blocking is fine: format changes are rare and must not be lost.
            let _ = tx.send(WriterMsg::Format(format));
        }
    }

    /// Queues whole frames (`channels` interleaved); never blocks.
    pub fn write(&mut self, samples: Vec<i16>, channels: usize) {
        let Some(tx) = &self.tx else { return };
        let frames = (samples.len() / channels.max(1)) as u64;
        match tx.try_send(WriterMsg::Samples(samples)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                Stats::add(&self.stats.record_dropped_frames, frames);
                if !self.warned_full {
                    self.warned_full = true;
                    log::warn!("the disk cannot keep up: dropping frames from the recording");
                }
            }
            // The thread ended with an error; `finished` reports it.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Whether the writer thread has ended (only on an error before `finish`).
    pub fn has_failed(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// Closes the queue, waits for the writer to write everything and
    /// finalise the file, and returns its result.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the WAV writer thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            log::error!("{e:#}");
        }
    }
}

fn writer_loop(mut sink: WavSink, rx: Receiver<WriterMsg>) -> anyhow::Result<()> {
    let mut last_flush = Instant::now();
    loop {
        let wait = FLUSH_INTERVAL.saturating_sub(last_flush.elapsed());
        match rx.recv_timeout(wait) {
            Ok(WriterMsg::Samples(samples)) => sink.write(&samples)?,
            Ok(WriterMsg::Format(format)) => sink.set_format(format)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= FLUSH_INTERVAL {
            sink.flush()?;
            last_flush = Instant::now();
        }
    }
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_continues_in_the_next_numbered_one() {
        let dir = std::env::temp_dir().join(format!("audiorecorder-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("rec.wav");
        let stats = Arc::new(Stats::default());
        // Room for 3 stereo frames (12 bytes) per file.
        let mut sink = WavSink::new(&base, false, Arc::clone(&stats))
            .unwrap()
            .with_max_data_bytes(12);
        sink.set_format(WavFormat {
            channels: 2,
            sample_rate: 8000,
        })
        .unwrap();
        sink.write(&[1, 2, 3, 4]).unwrap();
        sink.write(&[5, 6]).unwrap();
        sink.write(&[7, 8, 9, 10]).unwrap();
        assert_eq!(sink.current_path(), Some(dir.join("rec-2.wav").as_path()));
        sink.finish().unwrap();
        let read = |p: &Path| -> Vec<i16> {
            hound::WavReader::open(p)
                .unwrap()
                .samples()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(read(&base), [1, 2, 3, 4, 5, 6]);
        assert_eq!(read(&dir.join("rec-2.wav")), [7, 8, 9, 10]);
        assert_eq!(Stats::get(&stats.recorded_frames), 5);
    }
}
