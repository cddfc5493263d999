//! Where received audio goes: every whole frame to the WAV writer (in
//! arrival order, unaffected by playback) and to the player's ring.
//!
//! Both transports (UDP and TCP) feed a [`Pipeline`]; it keeps frames whole
//! across messages (a datagram or Samples message may end inside a frame), opens the player when the first format is known, turns
//! format changes into new files, reports playback trouble and reopens an
//! output stream that stopped calling back.
//!
//! Opening (and closing) an output stream can block for seconds when the
//! sound server hangs, so it happens on a helper thread: the network thread
//! never waits for the audio device, and recording never misses a datagram
//! because of playback.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use crate::keep_time::WallClock;
use crate::player::{PlaybackOptions, Player};
use crate::probe::{ArriveTap, ProbeHandle};
use crate::report::Reporter;
use crate::stats::Stats;
use crate::wav::WavFormat;
use crate::writer::WriterHandle;

/// How long the audio callback may stay silent (not be called at all)
/// before the output stream counts as dead and is reopened. Longer than the
/// PulseAudio plugin's start-up pause (up to 1.5 s after an idle spell).
pub const STALL_LIMIT: Duration = Duration::from_millis(2500);

/// What opening the player produced: a player, no device, or why not.
type Opened = anyhow::Result<Option<Player>>;

/// The playback side, as far as it got.
enum Playback {
    /// `--no-playback`, or not opened yet.
    Off,
    /// A helper thread is opening the device.
    Opening(Receiver<Opened>),
    /// Playing.
    On(Box<Player>),
    /// No usable output device (already warned once).
    Unavailable,
}

/// Watches the callback count to notice a dead output stream.
#[derive(Debug, Clone, Copy)]
struct Watchdog {
    callbacks: u64,
    since: Instant,
}

/// Fans received frames out to the writer and the player.
pub struct Pipeline {
    writer: Option<WriterHandle>,
    playback: Playback,
    /// Playback settings (`None`: `--no-playback`).
    opts: Option<PlaybackOptions>,
    watchdog: Watchdog,
    format: Option<WavFormat>,
    /// Samples of a partial frame held until the next message completes it.
    carry: Vec<i16>,
    stats: Arc<Stats>,
    reporter: Reporter,
    /// Whether the callback's real-time outcome has been logged.
    rt_reported: bool,
    /// `--latency-probe`: click onsets as they arrive.
    probe: Option<(ProbeHandle, ArriveTap)>,
    /// `--keep-time`: whether gaps are filled with silence in the file.
    keep_time: bool,
    /// The current format's wall clock (with `--keep-time`).
    clock: Option<WallClock>,
}

impl Pipeline {
    /// A pipeline recording through `writer` (if any) and playing with
    /// `playback` options (if any); nothing flows before [`Self::set_format`].
    pub fn new(
        writer: Option<WriterHandle>,
        playback: Option<PlaybackOptions>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            writer,
            playback: Playback::Off,
            opts: playback,
            watchdog: Watchdog {
                callbacks: 0,
                since: Instant::now(),
            },
            format: None,
            carry: Vec::new(),
            stats,
            reporter: Reporter::new(),
            rt_reported: false,
            probe: None,
            keep_time: false,
            clock: None,
        }
    }

    /// `--keep-time`: fills gaps in the stream with silence in the file
    /// (see [`crate::keep_time`]).
    pub fn with_keep_time(mut self, keep_time: bool) -> Self {
        self.keep_time = keep_time;
        self
    }

    /// Reports click onsets in received frames to the latency probe.
    pub fn with_probe(mut self, probe: Option<ProbeHandle>) -> Self {
        self.probe = probe.map(|p| (p, ArriveTap::default()));
        self
    }

    /// Starts opening the output device for a stream at `stream_rate` on a
    /// helper thread; `old` (a dead player) is dropped there too.
    fn open_player(&mut self, stream_rate: u32, old: Option<Box<Player>>) {
        let Some(opts) = &mut self.opts else { return };
        opts.stream_rate = stream_rate;
        let opts = opts.clone();
        let stats = Arc::clone(&self.stats);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("audio-open".into())
            .spawn(move || {
                drop(old);
                let _ = tx.send(Player::open(&opts, stats));
            });
        self.playback = match spawned {
            Ok(_) => Playback::Opening(rx),
            Err(e) => {
                log::warn!("cannot start the audio thread ({e}); recording without playback");
                Playback::Unavailable
            }
        };
    }

    /// Takes the player once the helper thread has opened it.
    fn poll_opening(&mut self) {
        let Playback::Opening(rx) = &self.playback else {
            return;
        };
        let opened = match rx.try_recv() {
            Ok(opened) => opened,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err(anyhow::anyhow!("the audio thread died")),
        };
        self.playback = match opened {
            Ok(Some(player)) => {
                self.watchdog = Watchdog {
                    callbacks: Stats::get(&self.stats.callbacks),
                    since: Instant::now(),
                };
                Playback::On(Box::new(player))
            }
            Ok(None) => {
                log::warn!("no audio output device: recording without playback");
                Playback::Unavailable
            }
            Err(e) => {
                log::warn!("audio output unavailable ({e:#}); recording without playback");
                Playback::Unavailable
            }
        };
    }

    /// Whether audio is being played.
    pub fn is_playing(&self) -> bool {
        matches!(self.playback, Playback::On(_))
    }

    /// The current format.
    pub fn format(&self) -> Option<WavFormat> {
        self.format
    }

    /// Sets the stream format (the first, or a changed one from a TCP Spec).
    /// The same format again (a server that repeats its Spec) changes
    /// nothing: a half frame held from the last message stays, so the
    /// channels stay in place.
    pub fn set_format(&mut self, format: WavFormat) {
        if self.format == Some(format) {
            return;
        }
        self.drop_partial_frame();
        if self.format.is_some() {
            log::info!("stream format changed to {format}");
        }
        self.format = Some(format);
        if let Some(w) = &mut self.writer {
            w.set_format(format);
        }
        // A new format is a new file: its clock starts with its first frame.
        self.clock = self.keep_time.then(|| WallClock::new(format.sample_rate));
        // The device stays open across format changes: the player
        // resamples from the new rate.
        if matches!(self.playback, Playback::Off) {
            self.open_player(format.sample_rate, None);
        }
    }

    /// Drops (and counts) the samples of a frame begun by the last message
    /// whose rest will not come: the sender changed, went silent or changed
    /// the format. Joining them with another stream's samples would swap
    /// its channels.
    pub fn drop_partial_frame(&mut self) {
        if self.carry.is_empty() {
            return;
        }
        Stats::add(&self.stats.dropped_samples, self.carry.len() as u64);
        log::debug!(
            "dropped {} sample(s) of an unfinished frame",
            self.carry.len()
        );
        self.carry.clear();
    }

    /// Takes received interleaved samples in the current format. A message
    /// that ends inside a frame leaves that frame's samples here until the
    /// next message completes it (counted in `split_frames`).
    pub fn push(&mut self, mut samples: Vec<i16>) {
        let Some(format) = self.format else { return };
        let channels = usize::from(format.channels).max(1);
        if !self.carry.is_empty() {
            let held = self.carry.len();
            self.carry.extend_from_slice(&samples);
            samples = std::mem::take(&mut self.carry);
            if held < channels && samples.len() >= channels {
                Stats::add(&self.stats.split_frames, 1);
            }
        }
        let whole = samples.len() / channels * channels;
        if whole < samples.len() {
            self.carry.extend_from_slice(&samples[whole..]);
            samples.truncate(whole);
        }
        if samples.is_empty() {
            return;
        }
        Stats::add(&self.stats.received_frames, (whole / channels) as u64);
        self.stats.note_peak(&samples);
        if let Some((handle, tap)) = &mut self.probe {
            tap.scan(&samples, channels, format.sample_rate, handle);
        }
        self.poll_opening();
        if let Playback::On(player) = &mut self.playback {
            player.push(&samples, channels, format.sample_rate);
        }
        if let Some(clock) = &mut self.clock {
            clock.on_frames(Instant::now(), (whole / channels) as u64);
        }
        if let Some(w) = &mut self.writer {
            w.write(samples, channels);
        }
    }

    /// `--keep-time`: records the silence due for a gap in the stream.
    fn fill_gap(&mut self, now: Instant) {
        let (Some(clock), Some(format), Some(w)) = (&mut self.clock, self.format, &mut self.writer)
        else {
            return;
        };
        let frames = clock.silence_due(now);
        if frames == 0 {
            return;
        }
        let channels = usize::from(format.channels).max(1);
        Stats::add(&self.stats.gap_silence_frames, frames);
        w.write(vec![0; frames as usize * channels], channels);
    }

    /// Logs playback trouble counted since the last report, if due, and
    /// reopens a dead output stream; the receive loops call this after
    /// every datagram and every poll timeout.
    pub fn report(&mut self) {
        let now = Instant::now();
        self.fill_gap(now);
        self.poll_opening();
        self.report_realtime();
        if let Some(line) = self.reporter.check(self.stats.snapshot(), now) {
            log::warn!("{line}");
        }
        self.check_stall(now);
    }

    /// Logs once how the audio callback thread is scheduled, when the first
    /// callback has tried `--rt-priority`.
    fn report_realtime(&mut self) {
        let outcome = self.stats.callback_rt.load(Ordering::Relaxed);
        if outcome == 0 || self.rt_reported {
            return;
        }
        self.rt_reported = true;
        if outcome > 0 {
            log::info!("audio callback runs at SCHED_FIFO priority {outcome}");
        } else {
            log::info!(
                "real-time priority for the audio callback not permitted ({}); playing at normal \
                 priority (grant CAP_SYS_NICE or RLIMIT_RTPRIO, or pass --rt-priority 0 to \
                 silence this)",
                std::io::Error::from_raw_os_error((-outcome) as i32)
            );
        }
    }

    fn check_stall(&mut self, now: Instant) {
        if !matches!(self.playback, Playback::On(_)) {
            return;
        }
        let callbacks = Stats::get(&self.stats.callbacks);
        if callbacks != self.watchdog.callbacks {
            self.watchdog = Watchdog {
                callbacks,
                since: now,
            };
            return;
        }
        if now.saturating_duration_since(self.watchdog.since) < STALL_LIMIT {
            return;
        }
        log::warn!(
            "the audio output stopped calling back for {} ms; reopening it",
            STALL_LIMIT.as_millis()
        );
        Stats::add(&self.stats.output_reopens, 1);
        let old = match std::mem::replace(&mut self.playback, Playback::Off) {
            Playback::On(player) => Some(player),
            _ => None,
        };
        let rate = self.opts.as_ref().map_or(0, |o| o.stream_rate);
        self.open_player(rate, old);
    }

    /// Whether the writer thread stopped on an error.
    pub fn writer_failed(&self) -> bool {
        self.writer.as_ref().is_some_and(|w| w.has_failed())
    }

    /// Stops playback, lets the writer finish the file; returns its result.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.playback = Playback::Off;
        match self.writer.take() {
            Some(mut w) => w.finish(),
            None => Ok(()),
        }
    }
}
