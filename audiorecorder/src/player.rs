//! Live playback: opens the cpal output stream and feeds it from the
//! network side through a lock-free SPSC ring (rtrb).
//!
//! The network thread calls [`Player::push`]: frames are converted to stereo
//! f32, resampled when the device runs at another rate, and written into the
//! ring (whatever does not fit is counted as an overrun). The cpal callback
//! owns the ring's consumer inside an [`OutputStage`], which applies the
//! jitter backoff, the latency bound and the level control (drift
//! compensation, in device-rate frames when resampling).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, Stream, StreamConfig};
use rtrb::Producer;

use crate::arrival::LastArrival;
use crate::backoff::Backoff;
use crate::device::{self, DeviceChoice};
use crate::level_control::LevelControl;
use crate::output::{OutputStage, RING_CHANNELS};
use crate::resample::StereoResampler;
use crate::stats::Stats;

/// Callbacks after which a new stream counts as running: errors before
/// that are start-up noise of the sound server, counted separately.
const STARTUP_CALLBACKS: u64 = 50;

/// What the player needs to know to open the device.
#[derive(Debug, Clone)]
pub struct PlaybackOptions {
    /// `--device`: part of the device's id or description.
    pub device: Option<String>,
    /// Rate of the incoming stream.
    pub stream_rate: u32,
    /// `--device-rate`: open the device at this rate and resample to it.
    pub device_rate: Option<u32>,
    /// `--jitter-backoff` in milliseconds.
    pub backoff_ms: u32,
    /// `--max-latency-ms`.
    pub max_latency_ms: u32,
    /// `--period-ms`: device period (0: the device's default).
    pub period_ms: u32,
    /// Drift compensation: hold the ring's level at the backoff (off with
    /// `--no-level-control`).
    pub level_control: bool,
    /// `--rt-priority`: SCHED_FIFO priority of the callback thread (0: none).
    pub rt_priority: u8,
    /// `--latency-probe`: where click onsets and underruns are reported.
    pub probe: Option<crate::probe::ProbeHandle>,
}

/// A running output stream and the network side of its ring.
pub struct Player {
    // Field order matters on drop: stop the stream before the producer goes.
    _stream: Stream,
    producer: Producer<f32>,
    resampler: Option<StereoResampler>,
    device_rate: u32,
    scratch: Vec<f32>,
    stats: Arc<Stats>,
    /// Stamped after every push, for the callback's level measure.
    arrival: Arc<LastArrival>,
    label: String,
}

impl Player {
    /// Opens the output device and starts the stream. `Ok(None)` when the
    /// machine has no output device at all (the caller warns and records on).
    pub fn open(opts: &PlaybackOptions, stats: Arc<Stats>) -> anyhow::Result<Option<Self>> {
        let Some(device) = device::find_output_device(opts.device.as_deref())? else {
            return Ok(None);
        };
        let label = device::device_label(&device);
        let choice =
            device::choose_config(&device, opts.stream_rate, opts.device_rate, opts.period_ms)?;
        let device_rate = choice.config.sample_rate;
        let backoff_frames = Backoff::ms_to_frames(opts.backoff_ms, device_rate);
        let max_frames = Backoff::ms_to_frames(opts.max_latency_ms, device_rate);
        let backoff = Backoff::new(backoff_frames, max_frames);
        if let cpal::BufferSize::Fixed(period) = choice.config.buffer_size {
            if period as usize > backoff.backoff_frames() {
                // Each callback takes more than the backoff holds: the ring
                // runs dry at every callback.
                log::warn!(
                    "--jitter-backoff {} ms is shorter than the device period ({period} frames, \
                     {:.1} ms): playback will underrun; use a --period-ms below the backoff",
                    opts.backoff_ms,
                    f64::from(period) * 1000.0 / f64::from(device_rate)
                );
            }
        }
        // Room above the latency bound, so the callback sees the excess and
        // trims it rather than the producer losing fresh audio.
        let backoff_frames_held = backoff.backoff_frames();
        let ring_frames = 2 * backoff.max_latency_frames() + device_rate as usize / 2;
        let (producer, consumer) = rtrb::RingBuffer::new(ring_frames * RING_CHANNELS);
        let arrival = Arc::new(LastArrival::new());
        let stage = OutputStage::new(
            consumer,
            backoff,
            Arc::clone(&stats),
            usize::from(choice.config.channels),
        )
        .with_arrival(Arc::clone(&arrival), device_rate)
        .with_rt_priority(opts.rt_priority)
        .with_probe(opts.probe.as_ref().map(|p| p.play_tap(device_rate)))
        .with_level_control(
            opts.level_control
                .then(|| LevelControl::new(backoff_frames_held, device_rate)),
        );
        let stream = build_stream(&device, choice, stage, Arc::clone(&stats))?;
        stream
            .play()
            .map_err(|e| anyhow::anyhow!("cannot start playback on {label}: {e}"))?;
        let resampler = if device_rate != opts.stream_rate {
            Some(StereoResampler::new(opts.stream_rate, device_rate)?)
        } else {
            None
        };
        log::info!(
            "playing on {label}: {} ch, {device_rate} Hz, {}, period {:?}{}; backoff {} ms, max latency {} ms, level control {}",
            choice.config.channels,
            choice.format,
            choice.config.buffer_size,
            if resampler.is_some() {
                format!(", resampling from {} Hz", opts.stream_rate)
            } else {
                String::new()
            },
            opts.backoff_ms,
            opts.max_latency_ms,
            if opts.level_control { "on" } else { "off" },
        );
        Ok(Some(Self {
            _stream: stream,
            producer,
            resampler,
            device_rate,
            scratch: Vec::new(),
            stats,
            arrival,
            label,
        }))
    }

    /// The device's name as logged.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The device's sample rate.
    pub fn device_rate(&self) -> u32 {
        self.device_rate
    }

    /// Queues whole frames of `channels` interleaved samples at `rate` Hz for
    /// playback. Mono is played on both channels; beyond two channels the
    /// first two are played.
    pub fn push(&mut self, samples: &[i16], channels: usize, rate: u32) {
        if channels == 0 {
            return;
        }
        let from = self
            .resampler
            .as_ref()
            .map_or(self.device_rate, |r| r.from_rate());
        if from != rate {
            // The TCP Spec changed the rate: convert from the new one.
            self.resampler = if rate == self.device_rate {
                None
            } else {
                match StereoResampler::new(rate, self.device_rate) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        log::warn!("{e}; not playing this stream");
                        return;
                    }
                }
            };
        }
        self.scratch.clear();
        for frame in samples.chunks_exact(channels) {
            let left = f32::from(frame[0]) / 32768.0;
            let right = frame.get(1).map_or(left, |&r| f32::from(r) / 32768.0);
            self.scratch.push(left);
            self.scratch.push(right);
        }
        let Self {
            producer,
            resampler,
            scratch,
            stats,
            arrival,
            ..
        } = self;
        match resampler {
            Some(r) => r.process(scratch, |out| push_ring(producer, out, stats, arrival)),
            None => push_ring(producer, scratch, stats, arrival),
        }
    }
}

/// Writes as many whole stereo frames as fit and stamps the push; counts
/// the rest as overrun.
fn push_ring(producer: &mut Producer<f32>, samples: &[f32], stats: &Stats, arrival: &LastArrival) {
    let frames = samples.len() / RING_CHANNELS;
    let fit = (producer.slots() / RING_CHANNELS).min(frames);
    if fit > 0 {
        if let Ok(chunk) = producer.write_chunk_uninit(fit * RING_CHANNELS) {
            chunk.fill_from_iter(samples[..fit * RING_CHANNELS].iter().copied());
            arrival.record(fit, Instant::now());
        }
    }
    if fit < frames {
        Stats::add(&stats.overrun_frames, (frames - fit) as u64);
    }
}

fn build_stream(
    device: &cpal::Device,
    choice: DeviceChoice,
    stage: OutputStage,
    stats: Arc<Stats>,
) -> anyhow::Result<Stream> {
    let config = choice.config;
    let started_at = Stats::get(&stats.callbacks);
    match choice.format {
        SampleFormat::F32 => build::<f32>(device, config, stage, stats, started_at),
        SampleFormat::I16 => build::<i16>(device, config, stage, stats, started_at),
        SampleFormat::I32 => build::<i32>(device, config, stage, stats, started_at),
        SampleFormat::U16 => build::<u16>(device, config, stage, stats, started_at),
        SampleFormat::F64 => build::<f64>(device, config, stage, stats, started_at),
        SampleFormat::U8 => build::<u8>(device, config, stage, stats, started_at),
        other => anyhow::bail!("unsupported device sample format {other}"),
    }
}

fn build<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut stage: OutputStage,
    stats: Arc<Stats>,
    started_at: u64,
) -> anyhow::Result<Stream>
where
    T: SizedSample + FromSample<f32> + Send + 'static,
{
    device
        .build_output_stream(
            config,
            move |data: &mut [T], info: &cpal::OutputCallbackInfo| {
                let ts = info.timestamp();
                let delay = ts.playback.checked_duration_since(ts.callback);
                stage.fill_timed(data, delay.map(|d| d.as_nanos() as u64));
            },
            // Not the data callback, but a failing device can call this in a
            // tight loop: log the first error, count the rest (the network
            // thread reports the count).
            move |e| {
                // The ALSA pulse plugin reports errors (EIO) while PulseAudio
                // is still starting a new stream: expected, only counted.
                let running = Stats::get(&stats.callbacks) >= started_at + STARTUP_CALLBACKS;
                if !running {
                    Stats::add(&stats.startup_errors, 1);
                } else if stats.output_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!("audio output error: {e}");
                }
            },
            None,
        )
        .map_err(|e| anyhow::anyhow!("cannot open the audio output stream: {e}"))
}
