//! Where received audio goes: every whole frame to the WAV writer (in
//! arrival order, unaffected by playback) and to the player's ring.
//!
//! Both transports (UDP and TCP) feed a [`Pipeline`]; it keeps frames whole
//! across messages, opens the player lazily when the first format is known
//! and turns format changes into new files.

use std::sync::Arc;
use std::time::Instant;

use crate::player::{PlaybackOptions, Player};
use crate::report::Reporter;
use crate::stats::Stats;
use crate::wav::WavFormat;
use crate::writer::WriterHandle;

/// The playback side, as far as it got.
enum Playback {
    /// `--no-playback`.
    Off,
    /// Waiting for the first format to open the device with.
    Pending(PlaybackOptions),
    /// Playing.
    On(Box<Player>),
    /// No usable output device (already warned once).
    Unavailable,
}

/// Fans received frames out to the writer and the player.
pub struct Pipeline {
    writer: Option<WriterHandle>,
    playback: Playback,
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
            playback: playback.map_or(Playback::Off, Playback::Pending),
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
        let Playback::Pending(opts) = &self.playback else {
            return Ok(());
        };
        let mut opts = opts.clone();
        opts.stream_rate = stream_rate;
        self.playback = match Player::open(&opts, Arc::clone(&self.stats)) {
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

    /// Logs playback trouble counted since the last report, if due; the
    /// receive loops call this after every datagram and every poll timeout.
    pub fn report(&mut self) {
        if let Some(line) = self.reporter.check(self.stats.snapshot(), Instant::now()) {
            log::warn!("{line}");
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
