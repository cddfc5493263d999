//! Microphone capture with cpal, as a [`SampleSource`].
//!
//! The capture callback follows the real-time rules: it only averages each
//! frame's channels into one `f32` and pushes it into a lock-free SPSC ring
//! (rtrb) allocated before `play()`; a full ring is counted in an atomic, never
//! logged there. The sending thread drains the ring, resamples to the output
//! rate when the device runs at another rate, and hands out whole chunks. The
//! device clock paces the stream, so no [`crate::pacer::Pacer`] is used.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::resample::StreamResampler;
use crate::sample::{to_i16, FLOAT_SCALE};
use crate::source::SampleSource;

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| d.to_string())
}

/// Finds the input device called `wanted` (exact name, id, or id without its
/// host prefix; else a unique case-insensitive substring of name or id), or
/// the default input device.
fn find_device(wanted: Option<&str>) -> anyhow::Result<cpal::Device> {
    let host = cpal::default_host();
    let Some(wanted) = wanted else {
        return host
            .default_input_device()
            .context("no default audio input device (see --list-devices)");
    };
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .context("cannot list audio input devices")?
        .collect();
    let id_of = |d: &cpal::Device| d.id().map(|i| i.to_string()).unwrap_or_default();
    // An id is "host:name" (e.g. "alsa:default"); the part after the host counts too.
    let exact = |d: &cpal::Device| {
        let id = id_of(d);
        device_name(d) == wanted
            || id == wanted
            || id.split_once(':').is_some_and(|(_, n)| n == wanted)
    };
    if let Some(d) = devices.iter().find(|d| exact(d)) {
        return Ok(d.clone());
    }
    let needle = wanted.to_lowercase();
    let matching: Vec<&cpal::Device> = devices
        .iter()
        .filter(|d| {
            device_name(d).to_lowercase().contains(&needle)
                || id_of(d).to_lowercase().contains(&needle)
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no audio input device named '{wanted}' (see --list-devices)"),
        many => bail!(
            "'{wanted}' matches {} input devices ({}); be more specific",
            many.len(),
            many.iter()
                .map(|d| device_name(d))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A live microphone as a [`SampleSource`].
pub struct MicSource {
    // Held only to keep capturing; dropping it stops the device.
    _stream: cpal::Stream,
    ring: rtrb::Consumer<f32>,
    overruns: Arc<AtomicU64>,
    reported_overruns: u64,
    last_overrun_report: Option<Instant>,
    resampler: Option<StreamResampler>,
    drained: Vec<f32>,
    pending: VecDeque<f32>,
    poll: Duration,
}

impl MicSource {
    /// Opens `device` (or the default input) and starts capturing; samples
    /// come out at `out_rate` Hz in chunks of `chunk` samples.
    pub fn open(device: Option<&str>, out_rate: u32, chunk: usize) -> anyhow::Result<Self> {
        let device = find_device(device)?;
        let name = device_name(&device);
        let supported = device
            .default_input_config()
            .with_context(|| format!("input device '{name}' has no usable configuration"))?;
        let rate = supported.sample_rate();
        let channels = usize::from(supported.channels()).max(1);
        let config = supported.config();
        // One second of mono audio: the sender drains every few ms, so this
        // only fills if the sending thread stalls.
        let (producer, ring) = rtrb::RingBuffer::<f32>::new(rate as usize);
        let overruns = Arc::new(AtomicU64::new(0));
        let stream = match supported.sample_format() {
            cpal::SampleFormat::I8 => build::<i8>(&device, config, channels, producer, &overruns),
            cpal::SampleFormat::I16 => build::<i16>(&device, config, channels, producer, &overruns),
            cpal::SampleFormat::I32 => build::<i32>(&device, config, channels, producer, &overruns),
            cpal::SampleFormat::U8 => build::<u8>(&device, config, channels, producer, &overruns),
            cpal::SampleFormat::U16 => build::<u16>(&device, config, channels, producer, &overruns),
            cpal::SampleFormat::U32 => build::<u32>(&device, config, channels, producer, &overruns),
            cpal::SampleFormat::F32 => build::<f32>(&device, config, channels, producer, &overruns),
            cpal::SampleFormat::F64 => build::<f64>(&device, config, channels, producer, &overruns),
            other => {
                bail!("input device '{name}' uses sample format {other}, which is not supported")
            }
        }
        .with_context(|| format!("cannot open input device '{name}'"))?;
        stream
            .play()
            .with_context(|| format!("cannot start input device '{name}'"))?;
        log::info!(
            "capturing from '{name}' ({channels} ch, {rate} Hz, {})",
            supported.sample_format()
        );
        let resampler = if rate == out_rate {
            None
        } else {
            // Small blocks keep the added latency low (256 frames ≈ 5 ms).
            Some(StreamResampler::new(rate, out_rate, 256).with_context(|| {
                format!("cannot resample the microphone from {rate} Hz to {out_rate} Hz")
            })?)
        };
        // The chunk and rate are checked already; a Duration that does not
        // fit is still an error, not a panic.
        let chunk_time = Duration::try_from_secs_f64(chunk as f64 / f64::from(out_rate))
            .context("the chunk duration does not fit a Duration")?;
        Ok(Self {
            _stream: stream,
            ring,
            overruns,
            reported_overruns: 0,
            last_overrun_report: None,
            resampler,
            drained: Vec::with_capacity(rate as usize),
            pending: VecDeque::with_capacity(rate as usize),
            // Poll a few times per chunk: latency stays low and the thread sleeps.
            poll: (chunk_time / 4).clamp(Duration::from_millis(1), Duration::from_millis(20)),
        })
    }

    fn drain(&mut self) {
        let available = self.ring.slots();
        if available == 0 {
            return;
        }
        self.drained.clear();
        if let Ok(chunk) = self.ring.read_chunk(available) {
            let (a, b) = chunk.as_slices();
            self.drained.extend_from_slice(a);
            self.drained.extend_from_slice(b);
            chunk.commit_all();
        }
        match &mut self.resampler {
            Some(r) => r.push(&self.drained, &mut self.pending),
            None => self.pending.extend(&self.drained),
        }
    }

    fn report_overruns(&mut self) {
        let now = self.overruns.load(Ordering::Relaxed);
        let due = self
            .last_overrun_report
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
        if now > self.reported_overruns && due {
            log::warn!("microphone ring overflowed: {} samples dropped so far", now);
            self.reported_overruns = now;
            self.last_overrun_report = Some(Instant::now());
        }
    }
}

impl SampleSource for MicSource {
    fn read(&mut self, out: &mut [i16], stop: &AtomicBool) -> anyhow::Result<usize> {
        loop {
            self.drain();
            self.report_overruns();
            if self.pending.len() >= out.len() {
                for slot in out.iter_mut() {
                    *slot = to_i16(self.pending.pop_front().unwrap_or(0.0));
                }
                return Ok(out.len());
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            std::thread::sleep(self.poll);
        }
    }

    fn total_samples(&self) -> Option<u64> {
        None
    }

    fn needs_pacing(&self) -> bool {
        false
    }
}

/// Builds the input stream for device samples of type `T`.
fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: usize,
    mut producer: rtrb::Producer<f32>,
    overruns: &Arc<AtomicU64>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let overruns = Arc::clone(overruns);
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            push_mono(data, channels, &mut producer, &overruns);
        },
        // Not the audio callback: logging here is allowed.
        |e| log::warn!("audio input error: {e}"),
        None,
    )
}

/// The capture callback's work: averages each interleaved frame of `data`
/// to one i16-scale `f32` and pushes it into the ring; a full ring drops the
/// sample and counts it. Real-time safe: no allocation, no lock, no logging.
fn push_mono<T>(
    data: &[T],
    channels: usize,
    producer: &mut rtrb::Producer<f32>,
    overruns: &AtomicU64,
) where
    T: SizedSample,
    f32: FromSample<T>,
{
    let scale = FLOAT_SCALE as f32 / channels as f32;
    for frame in data.chunks_exact(channels) {
        let sum: f32 = frame.iter().map(|s| s.to_sample::<f32>()).sum();
        if producer.push(sum * scale).is_err() {
            overruns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_downmixes_and_counts_overruns() {
        let (mut producer, mut consumer) = rtrb::RingBuffer::<f32>::new(3);
        let overruns = AtomicU64::new(0);
        // Stereo i16 frames: (1000, 3000) → 2000, (−4, 0) → −2.
        push_mono(&[1000i16, 3000, -4, 0], 2, &mut producer, &overruns);
        assert_eq!(consumer.pop(), Ok(2000.0));
        assert_eq!(consumer.pop(), Ok(-2.0));
        // Float mono: 0.5 → 16384; four samples into three free slots: one dropped.
        push_mono(&[0.5f32, 0.25, -0.25, 1.0], 1, &mut producer, &overruns);
        assert_eq!(overruns.load(Ordering::Relaxed), 1);
        assert_eq!(consumer.pop(), Ok(16384.0));
        assert_eq!(consumer.pop(), Ok(8192.0));
        assert_eq!(consumer.pop(), Ok(-8192.0));
        assert!(consumer.pop().is_err());
        // A partial trailing frame is ignored.
        push_mono(&[7u8], 2, &mut producer, &overruns);
        assert!(consumer.pop().is_err());
    }
}
