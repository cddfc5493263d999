//! Where received audio goes: every whole frame to the WAV writer (in
//! arrival order, unaffected by playback) and to the player's ring.
//!
//! Both transports (UDP and TCP) feed a [`Pipeline`]; it keeps frames whole
//! across messages, opens the player lazily when the first format is known
//! and turns format changes into new files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::player::{PlaybackOptions, Player};
use crate::report::Reporter;
use crate::stats::Stats;
use crate::wav::WavFormat;
use crate::writer::WriterHandle;

/// How long the audio callback may stay silent (not be called at all)
/// before the output stream counts as dead and is reopened. Longer than the
/// PulseAudio plugin's start-up pause (up to 1.5 s after an idle spell).
pub const STALL_LIMIT: Duration = Duration::from_millis(2500);

/// The playback side, as far as it got.
enum Playback {
    /// `--no-playback`, or not opened yet.
    Off,
    /// Playing.
    On(Box<Player>),
    /// No usable output device (already warned once).
    Unavailable,
}

/// Watches the callback count to notice a dead output stream (the ALSA
/// pulse plugin, for one, never recovers from some xruns).
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
    /// Samples of a partial frame held until the rest arrives (TCP only).
    carry: Vec<i16>,
    stats: Arc<Stats>,
    reporter: Reporter,
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
        }
    }

    /// Opens the output device now (UDP knows its format from the start).
    /// A missing or unusable device is a warning, never an error, unless
    /// `--device` named one that does not exist.
    pub fn open_player(&mut self, stream_rate: u32) -> anyhow::Result<()> {
        let Some(opts) = &mut self.opts else {
            return Ok(());
        };
        if !matches!(self.playback, Playback::Off) {
            return Ok(());
        }
        opts.stream_rate = stream_rate;
        self.watchdog = Watchdog {
            callbacks: Stats::get(&self.stats.callbacks),
            since: Instant::now(),
        };
        self.playback = match Player::open(opts, Arc::clone(&self.stats)) {
            Ok(Some(player)) => Playback::On(Box::new(player)),
            Ok(None) => {
                log::warn!("no audio output device: recording without playback");
                Playback::Unavailable
            }
            Err(e)
                if opts.device.is_some()
                    && e.to_string().contains("no audio output device matches") =>
            {
                return Err(e)
            }
            Err(e) => {
                log::warn!("audio output unavailable ({e:#}); recording without playback");
                Playback::Unavailable
            }
        };
        Ok(())
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
    pub fn set_format(&mut self, format: WavFormat) -> anyhow::Result<()> {
        self.carry.clear();
        if self.format == Some(format) {
            return Ok(());
        }
        if self.format.is_some() {
            log::info!("stream format changed to {format}");
        }
        self.format = Some(format);
        if let Some(w) = &mut self.writer {
            w.set_format(format);
        }
        self.open_player(format.sample_rate)
    }

    /// Takes received interleaved samples in the current format.
    pub fn push(&mut self, mut samples: Vec<i16>) {
        let Some(format) = self.format else { return };
        let channels = usize::from(format.channels).max(1);
        if !self.carry.is_empty() {
            self.carry.extend_from_slice(&samples);
            samples = std::mem::take(&mut self.carry);
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
        if let Playback::On(player) = &mut self.playback {
            player.push(&samples, channels, format.sample_rate);
        }
        if let Some(w) = &mut self.writer {
            w.write(samples, channels);
        }
    }

    /// Logs playback trouble counted since the last report, if due, and
    /// reopens a dead output stream; the receive loops call this after
    /// every datagram and every poll timeout.
    pub fn report(&mut self) {
        let now = Instant::now();
        if let Some(line) = self.reporter.check(self.stats.snapshot(), now) {
            log::warn!("{line}");
        }
        self.check_stall(now);
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
        // Close the dead stream before opening the device again.
        self.playback = Playback::Off;
        let rate = self.opts.as_ref().map_or(0, |o| o.stream_rate);
        if let Err(e) = self.open_player(rate) {
            log::warn!("cannot reopen the audio output ({e:#}); recording without playback");
            self.playback = Playback::Unavailable;
        }
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
