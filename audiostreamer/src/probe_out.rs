//! `--latency-probe FILE`: one line per click onset sent, for measuring the
//! end-to-end latency (the `audiolatency` bench joins these lines with the
//! recorder's by click id; see `proto::probe` for the clicks and the format).
//!
//! The onsets of a chunk are found before it is sent, but their time is read
//! after the send call returned: that is when the samples have left this
//! program. The time comes from CLOCK_MONOTONIC, which the recorder's probe
//! reads too, so the two files compare directly on one machine.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use proto::probe::{click_id, monotonic_ns, OnsetDetector, ProbeEvent, ProbeKind};

/// Click onsets found in a chunk that is about to be sent (a handful at most).
pub type Pending = Vec<(u32, u32)>;

/// Writes `send` events for the click onsets in the streamed samples.
pub struct SendProbe {
    detector: OnsetDetector,
    out: BufWriter<File>,
    path: PathBuf,
    rate: u32,
    pending: Pending,
}

impl SendProbe {
    /// Creates (truncates) the probe file and writes its header comment.
    pub fn create(path: &Path, rate: u32) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the latency probe file {}", path.display()))?;
        let mut out = BufWriter::new(file);
        writeln!(
            out,
            "# audiostreamer latency probe: KIND MONO_NS CLICK OFFSET RATE SEQ \
             (send: CLOCK_MONOTONIC after the send returned; OFFSET = onset in the datagram)"
        )?;
        Ok(Self {
            detector: OnsetDetector::new(),
            out,
            path: path.to_owned(),
            rate,
            pending: Vec::new(),
        })
    }

    /// Looks for click onsets in the chunk about to be sent; onsets whose
    /// amplitude is not a click id (ordinary audio) are ignored.
    pub fn scan(&mut self, samples: &[i16]) {
        self.pending.clear();
        for (i, &s) in samples.iter().enumerate() {
            if let Some(id) = self.detector.push(i32::from(s)).and_then(click_id) {
                self.pending.push((id, i as u32));
            }
        }
    }

    /// Records the onsets of the last [`Self::scan`] as sent now, in
    /// datagram `seq`. A write error is logged once and ends probing, never
    /// the stream.
    pub fn on_sent(&mut self, seq: u32) {
        if self.pending.is_empty() {
            return;
        }
        let now = monotonic_ns();
        for &(click, offset) in &self.pending {
            let event = ProbeEvent {
                kind: ProbeKind::Send,
                mono_ns: now,
                click,
                offset,
                rate: self.rate,
                extra: Some(u64::from(seq)),
            };
            if let Err(e) = writeln!(self.out, "{event}") {
                log::warn!("latency probe {}: {e}", self.path.display());
            }
        }
        self.pending.clear();
    }

    /// Flushes the file (at the end of the stream).
    pub fn finish(&mut self) {
        if let Err(e) = self.out.flush() {
            log::warn!("latency probe {}: {e}", self.path.display());
        }
    }
}
