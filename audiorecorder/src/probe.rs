//! `--latency-probe FILE`: when click onsets (see `proto::probe`) reach the
//! recorder's socket (`arrive`) and when the audio callback hands them to
//! the device (`play`), plus every underrun, as lines of FILE.
//!
//! The callback side ([`PlayTap`]) reads CLOCK_MONOTONIC once per callback
//! (a vDSO call), runs the onset detector over the frames it writes and
//! pushes fixed-size events into a preallocated rtrb ring: no allocation,
//! no lock, no IO. The [`ProbeWriter`] thread drains the rings (a reopened
//! output stream brings a new one) and the network side's events, and writes
//! the file. Events that find a ring full are counted, never waited for.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use proto::probe::{
    click_id, f32_to_i16_scale, monotonic_ns, OnsetDetector, ProbeEvent, ProbeKind,
};
use rtrb::{Consumer, Producer, RingBuffer};

use crate::level_control::Correction;

/// Events one callback ring holds: a `level` event per callback (up to
/// 1000 a second at 1 ms periods) plus clicks, for far longer than the
/// writer's poll interval.
const RING_EVENTS: usize = 8192;
/// How often the writer thread drains the rings.
const POLL: Duration = Duration::from_millis(20);
/// How often the file is flushed.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// What the writer thread receives.
enum Msg {
    /// The event ring of a newly opened output stream.
    Ring(Consumer<ProbeEvent>),
    /// An event from the network side.
    Event(ProbeEvent),
}

/// The writer thread; dropped or [`ProbeWriter::finish`]ed at the end.
pub struct ProbeWriter {
    handle: ProbeHandle,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Cloneable access to the writer: hands out callback taps and takes the
/// network side's events.
#[derive(Debug, Clone)]
pub struct ProbeHandle {
    tx: Sender<Msg>,
    lost: Arc<AtomicU64>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe message")
    }
}

impl ProbeWriter {
    /// Creates (truncates) `path` and starts the writer thread.
    pub fn start(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the latency probe file {}", path.display()))?;
        let mut out = BufWriter::new(file);
        writeln!(
            out,
            "# audiorecorder latency probe: KIND MONO_NS CLICK OFFSET RATE EXTRA \
             (arrive: datagram received, OFFSET in it; play: callback start, OFFSET in the \
             device buffer, EXTRA = cpal playback - callback ns; underrun: CLICK = count; \
             level: CLICK = frames in the ring, OFFSET = frames of the latest block not yet due, EXTRA = correction \
             0 none 1 drop 2 repeat)"
        )?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let lost = Arc::clone(&lost);
            let path = path.to_owned();
            std::thread::Builder::new()
                .name("latency-probe".into())
                .spawn(move || write_loop(rx, out, &stop, &lost, &path))
                .context("cannot start the latency probe thread")?
        };
        Ok(Self {
            handle: ProbeHandle { tx, lost },
            stop,
            thread: Some(thread),
        })
    }

    /// A handle for the pipeline and the player.
    pub fn handle(&self) -> ProbeHandle {
        self.handle.clone()
    }

    /// Writes what is queued, flushes and stops the thread.
    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProbeWriter {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

impl ProbeHandle {
    /// A tap for a new output stream at `rate` Hz; its ring goes to the writer.
    pub fn play_tap(&self, rate: u32) -> PlayTap {
        let (producer, consumer) = RingBuffer::new(RING_EVENTS);
        let _ = self.tx.send(Msg::Ring(consumer));
        PlayTap {
            detector: OnsetDetector::new(),
            producer,
            rate,
            now: 0,
            delay: None,
            lost: Arc::clone(&self.lost),
        }
    }

    /// Records a network-side event.
    pub fn send(&self, event: ProbeEvent) {
        let _ = self.tx.send(Msg::Event(event));
    }
}

/// The audio callback's side of the probe. REAL-TIME: no allocation, lock or IO.
pub struct PlayTap {
    detector: OnsetDetector,
    producer: Producer<ProbeEvent>,
    rate: u32,
    now: u64,
    delay: Option<u64>,
    lost: Arc<AtomicU64>,
}

impl PlayTap {
    /// Starts a callback: its time and the device's delay estimate.
    #[inline]
    pub fn begin(&mut self, device_delay_ns: Option<u64>) {
        self.now = monotonic_ns();
        self.delay = device_delay_ns;
    }

    /// The frame at `offset` of the device buffer carries `left`.
    #[inline]
    pub fn frame(&mut self, offset: usize, left: f32) {
        if let Some(id) = self
            .detector
            .push(f32_to_i16_scale(left))
            .and_then(click_id)
        {
            self.push(ProbeEvent {
                kind: ProbeKind::Play,
                mono_ns: self.now,
                click: id,
                offset: offset as u32,
                rate: self.rate,
                extra: self.delay,
            });
        }
    }

    /// `frames` of silence were written.
    #[inline]
    pub fn silence(&mut self, frames: usize) {
        for _ in 0..frames.min(proto::probe::MIN_QUIET as usize) {
            self.detector.push(0);
        }
    }

    /// This callback ran short: the `total`-th underrun.
    #[inline]
    pub fn underrun(&mut self, total: u64) {
        self.push(ProbeEvent {
            kind: ProbeKind::Underrun,
            mono_ns: self.now,
            click: total.min(u64::from(u32::MAX)) as u32,
            offset: 0,
            rate: self.rate,
            extra: None,
        });
    }

    /// A steady callback found `available` frames in the ring, `pending` of
    /// them not yet due (see `level_control`), and applied `correction`.
    #[inline]
    pub fn level(&mut self, available: usize, pending: usize, correction: Correction) {
        let code = match correction {
            Correction::None => 0,
            Correction::Drop => 1,
            Correction::Repeat => 2,
        };
        self.push(ProbeEvent {
            kind: ProbeKind::Level,
            mono_ns: self.now,
            click: available.min(u32::MAX as usize) as u32,
            offset: pending.min(u32::MAX as usize) as u32,
            rate: self.rate,
            extra: Some(code),
        });
    }

    fn push(&mut self, event: ProbeEvent) {
        if self.producer.push(event).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Finds click onsets in received frames (the network side).
#[derive(Debug, Default)]
pub struct ArriveTap {
    detector: OnsetDetector,
}

impl ArriveTap {
    /// Scans the left channel of interleaved `samples` just received at
    /// `rate` Hz and records an `arrive` event per click onset.
    pub fn scan(&mut self, samples: &[i16], channels: usize, rate: u32, probe: &ProbeHandle) {
        let mut now = None;
        for (offset, frame) in samples.chunks_exact(channels.max(1)).enumerate() {
            if let Some(id) = self.detector.push(i32::from(frame[0])).and_then(click_id) {
                let mono_ns = *now.get_or_insert_with(monotonic_ns);
                probe.send(ProbeEvent {
                    kind: ProbeKind::Arrive,
                    mono_ns,
                    click: id,
                    offset: offset as u32,
                    rate,
                    extra: None,
                });
            }
        }
    }
}

fn write_loop(
    rx: Receiver<Msg>,
    mut out: BufWriter<File>,
    stop: &AtomicBool,
    lost: &AtomicU64,
    path: &Path,
) {
    let mut rings: Vec<Consumer<ProbeEvent>> = Vec::new();
    let mut failed = false;
    let mut last_flush = Instant::now();
    let mut write = |out: &mut BufWriter<File>, e: ProbeEvent| {
        if !failed {
            if let Err(err) = writeln!(out, "{e}") {
                log::warn!("latency probe {}: {err}; probing stops", path.display());
                failed = true;
            }
        }
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        loop {
            match rx.recv_timeout(if stopping { Duration::ZERO } else { POLL }) {
                Ok(Msg::Ring(c)) => rings.push(c),
                Ok(Msg::Event(e)) => write(&mut out, e),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
            if !stopping {
                break;
            }
        }
        for ring in &mut rings {
            while let Ok(e) = ring.pop() {
                write(&mut out, e);
            }
        }
        // A ring whose stream is gone has been drained for the last time.
        rings.retain(|r| !(r.is_abandoned() && r.is_empty()));
        if stopping || last_flush.elapsed() >= FLUSH_EVERY {
            let _ = out.flush();
            last_flush = Instant::now();
        }
        if stopping {
            let n = lost.load(Ordering::Relaxed);
            if n > 0 {
                log::warn!("latency probe: {n} events lost (the ring was full)");
            }
            return;
        }
    }
}
