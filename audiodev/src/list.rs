//! The `--list-devices` output of both programs: one line per device with
//! its index, id, name, a default marker, and the channel counts and rates
//! it supports. [`format_lines`] is pure (unit-tested); [`list_devices`]
//! asks cpal.

use cpal::traits::{DeviceTrait, HostTrait};

/// Input (capture) or output (playback) devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Capture devices (audiostreamer --mic).
    Input,
    /// Playback devices (audiorecorder).
    Output,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// What `--list-devices` shows of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's id, as `--device` accepts it (e.g. `alsa:default`).
    pub id: String,
    /// Its human-readable name.
    pub name: String,
    /// Whether it is the host's default device of this direction.
    pub is_default: bool,
    /// Fewest and most channels of its configurations (`None`: unknown).
    pub channels: Option<(u16, u16)>,
    /// Lowest and highest sample rate in Hz (`None`: unknown).
    pub rates: Option<(u32, u32)>,
}

/// The lines to print: a header, then `INDEX  ID  NAME [default]  CHANNELS
/// ch, RATES Hz` per device; a single explanatory line when there is none.
pub fn format_lines(direction: Direction, devices: &[DeviceInfo]) -> Vec<String> {
    if devices.is_empty() {
        return vec![format!("no audio {} devices found", direction.word())];
    }
    let id_width = devices.iter().map(|d| d.id.len()).max().unwrap_or(0);
    let mut lines = vec![format!("audio {} devices:", direction.word())];
    for (index, d) in devices.iter().enumerate() {
        let default = if d.is_default { " [default]" } else { "" };
        lines.push(format!(
            "{index:>3}  {:<id_width$}  {}{default}  ({})",
            d.id,
            d.name,
            formats(d)
        ));
    }
    lines
}

/// `1-2 ch, 8000-48000 Hz`, collapsing equal bounds.
fn formats(d: &DeviceInfo) -> String {
    let span = |(lo, hi): (u64, u64)| {
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        }
    };
    match (d.channels, d.rates) {
        (Some((c0, c1)), Some((r0, r1))) => format!(
            "{} ch, {} Hz",
            span((c0.into(), c1.into())),
            span((r0.into(), r1.into()))
        ),
        _ => "formats unknown".to_string(),
    }
}

/// The devices of the default host in `direction`, in the host's order.
pub fn list_devices(direction: Direction) -> Result<Vec<DeviceInfo>, String> {
    let host = cpal::default_host();
    let (devices, default) = match direction {
        Direction::Input => (host.input_devices(), host.default_input_device()),
        Direction::Output => (host.output_devices(), host.default_output_device()),
    };
    let default_id = default.and_then(|d| d.id().ok());
    let devices = devices.map_err(|e| {
        format!(
            "cannot list {} {} devices: {e}",
            host.id().name(),
            direction.word()
        )
    })?;
    Ok(devices
        .map(|d| {
            let id = d.id().ok();
            let (channels, rates) = ranges(&d, direction);
            DeviceInfo {
                is_default: id.is_some() && id == default_id,
                id: id.map_or_else(|| "?".to_string(), |i| i.to_string()),
                name: d
                    .description()
                    .map(|desc| desc.name().to_string())
                    .unwrap_or_else(|_| d.to_string()),
                channels,
                rates,
            }
        })
        .collect())
}

/// Fewest/most channels and lowest/highest rate, each when known.
type Bounds = (Option<(u16, u16)>, Option<(u32, u32)>);

/// Channel and rate bounds over the device's supported configurations.
fn ranges(d: &cpal::Device, direction: Direction) -> Bounds {
    let configs: Vec<cpal::SupportedStreamConfigRange> = match direction {
        Direction::Input => d.supported_input_configs().map(|c| c.collect()),
        Direction::Output => d.supported_output_configs().map(|c| c.collect()),
    }
    .unwrap_or_default();
    let channels = configs.iter().map(|c| c.channels()).fold(None, widen);
    let lo = configs.iter().map(|c| c.min_sample_rate()).min();
    let hi = configs.iter().map(|c| c.max_sample_rate()).max();
    (channels, lo.zip(hi))
}

fn widen(acc: Option<(u16, u16)>, c: u16) -> Option<(u16, u16)> {
    Some(acc.map_or((c, c), |(lo, hi)| (lo.min(c), hi.max(c))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(
        id: &str,
        name: &str,
        default: bool,
        ch: Option<(u16, u16)>,
        r: Option<(u32, u32)>,
    ) -> DeviceInfo {
        DeviceInfo {
            id: id.into(),
            name: name.into(),
            is_default: default,
            channels: ch,
            rates: r,
        }
    }

    #[test]
    fn one_aligned_line_per_device() {
        let lines = format_lines(
            Direction::Output,
            &[
                dev(
                    "alsa:default",
                    "Default Audio Device",
                    true,
                    Some((1, 2)),
                    Some((8000, 48000)),
                ),
                dev(
                    "alsa:hw:0",
                    "HDA Intel",
                    false,
                    Some((2, 2)),
                    Some((44100, 44100)),
                ),
                dev("alsa:null", "Discard all samples", false, None, None),
            ],
        );
        assert_eq!(
            lines,
            [
                "audio output devices:",
                "  0  alsa:default  Default Audio Device [default]  (1-2 ch, 8000-48000 Hz)",
                "  1  alsa:hw:0     HDA Intel  (2 ch, 44100 Hz)",
                "  2  alsa:null     Discard all samples  (formats unknown)",
            ]
        );
    }

    #[test]
    fn nothing_found_is_one_line() {
        assert_eq!(
            format_lines(Direction::Input, &[]),
            ["no audio input devices found"]
        );
    }

    #[test]
    fn channel_bounds_widen() {
        assert_eq!([2u16, 1, 6].into_iter().fold(None, widen), Some((1, 6)));
    }
}
