//! Finding the output device and the stream configuration to open it with.
//!
//! cpal's default host (ALSA on Linux) is used. The stream is stereo when the
//! device allows it, at the requested rate when the device supports it, and
//! otherwise at the device's default rate (the player then resamples).

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{Device, Host, SampleFormat, StreamConfig};

/// Sample formats the output callback is instantiated for, best first.
const FORMATS: [SampleFormat; 6] = [
    SampleFormat::F32,
    SampleFormat::I16,
    SampleFormat::I32,
    SampleFormat::U16,
    SampleFormat::F64,
    SampleFormat::U8,
];

/// The chosen device configuration.
#[derive(Debug, Clone, Copy)]
pub struct DeviceChoice {
    /// Channels, rate and buffer size to open the stream with.
    pub config: StreamConfig,
    /// Sample format of the device buffer.
    pub format: SampleFormat,
}

/// The host used for playback.
pub fn host() -> Host {
    cpal::default_host()
}

/// A printable name for a device: its id, plus its description when known.
pub fn device_label(device: &Device) -> String {
    let id = device
        .id()
        .map(|id| id.to_string())
        .unwrap_or_else(|_| device.to_string());
    match device.description() {
        Ok(desc) => format!("{id} ({desc})"),
        Err(_) => id,
    }
}

/// The output device named `name` (matching its id, its name or a part of
/// its description, case-insensitively), or the default output device.
/// `Ok(None)`: the machine has no output device.
pub fn find_output_device(name: Option<&str>) -> anyhow::Result<Option<Device>> {
    let host = host();
    let Some(name) = name else {
        return Ok(host.default_output_device());
    };
    let wanted = name.to_lowercase();
    let devices: Vec<Device> = host
        .output_devices()
        .map_err(|e| anyhow::anyhow!("cannot list audio output devices: {e}"))?
        .collect();
    let id = |d: &Device| {
        d.id()
            .map(|i| i.to_string().to_lowercase())
            .unwrap_or_default()
    };
    // An exact id (`alsa:pulse`, or `pulse`) wins over a part of a
    // description, which several devices may share.
    let exact = devices
        .iter()
        .position(|d| id(d) == wanted || id(d).ends_with(&format!(":{wanted}")));
    let partial = || {
        devices
            .iter()
            .position(|d| device_label(d).to_lowercase().contains(&wanted))
    };
    if let Some(i) = exact.or_else(partial) {
        return Ok(devices.into_iter().nth(i));
    }
    anyhow::bail!("no audio output device matches {name:?}; see --list-devices")
}

/// Picks the configuration: stereo and `rate` when the device supports it
/// (`forced_rate` overrides `rate` and must be supported), else the
/// device's default configuration.
pub fn choose_config(
    device: &Device,
    rate: u32,
    forced_rate: Option<u32>,
    period_ms: u32,
) -> anyhow::Result<DeviceChoice> {
    let target = forced_rate.unwrap_or(rate);
    let ranges: Vec<_> = device
        .supported_output_configs()
        .map_err(|e| anyhow::anyhow!("cannot query the output device: {e}"))?
        .filter(|r| FORMATS.contains(&r.sample_format()))
        .collect();
    let rank = |r: &cpal::SupportedStreamConfigRange| {
        let channels = if r.channels() == 2 { 0 } else { 1 };
        let format = FORMATS
            .iter()
            .position(|f| *f == r.sample_format())
            .unwrap_or(FORMATS.len());
        (channels, format)
    };
    let mut supporting: Vec<_> = ranges.iter().collect();
    supporting.sort_by_key(|r| rank(r));
    if let Some(supported) = supporting
        .iter()
        .find_map(|r| (**r).try_with_sample_rate(target))
    {
        return Ok(DeviceChoice {
            config: with_period(&supported, period_ms),
            format: supported.sample_format(),
        });
    }
    if let Some(forced) = forced_rate {
        anyhow::bail!("the output device does not support {forced} Hz");
    }
    let default = device
        .default_output_config()
        .map_err(|e| anyhow::anyhow!("the output device has no usable configuration: {e}"))?;
    if !FORMATS.contains(&default.sample_format()) {
        anyhow::bail!(
            "the output device's sample format {} is not supported",
            default.sample_format()
        );
    }
    Ok(DeviceChoice {
        config: with_period(&default, period_ms),
        format: default.sample_format(),
    })
}

/// The stream configuration with a fixed period of about `period_ms`.
///
/// Left to itself, the ALSA pulse plugin picks a buffer of seconds and the
/// callback then stalls for over a second at a time; a fixed small period
/// keeps callbacks regular and the device latency low. `0` keeps the
/// device's default.
fn with_period(supported: &cpal::SupportedStreamConfig, period_ms: u32) -> StreamConfig {
    let mut config = supported.config();
    if period_ms == 0 {
        return config;
    }
    let want = (u64::from(config.sample_rate) * u64::from(period_ms) / 1000).max(1) as u32;
    config.buffer_size = match *supported.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } if min <= max => {
            cpal::BufferSize::Fixed(want.clamp(min, max))
        }
        _ => cpal::BufferSize::Fixed(want),
    };
    config
}
