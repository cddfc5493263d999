//! The latency probe shared by audiostreamer, audiorecorder and the
//! `audiolatency` bench: click onsets that carry their own identity, the
//! one-line-per-event probe file format, and the machine's monotonic clock.
//!
//! It is not a wire format, but it is an interface between programs in the
//! same way: the streamer writes `send` events, the recorder `arrive` and
//! `play` events, and the bench joins them by click id. Keeping the detector
//! and the line format here (both programs and the bench already depend on
//! `proto`) means the three cannot disagree about either.
//!
//! A **click** is a single sample of amplitude [`CLICK_BASE`] + id in an
//! otherwise quiet signal. [`OnsetDetector`] is sans-IO: it is fed one sample
//! at a time (so a click may straddle buffers) and reports an onset when a
//! sample reaches [`ONSET_THRESHOLD`] after at least [`MIN_QUIET`] quiet
//! samples. A node mixing one source at unity gain and centre balance passes
//! samples bit-exactly, so the amplitude, and with it the id, survives the
//! whole pipeline; resampling does not preserve it.

use std::fmt;
use std::str::FromStr;

/// Amplitude of click 0; click `id` has amplitude `CLICK_BASE + id`.
pub const CLICK_BASE: i32 = 10_000;
/// Largest click id that fits in a 16-bit sample.
pub const MAX_CLICK_ID: u32 = (i16::MAX as i32 - CLICK_BASE) as u32;
/// A sample at or above this magnitude after a quiet run is an onset.
pub const ONSET_THRESHOLD: i32 = 8_192;
/// Samples below this magnitude count as quiet.
pub const QUIET_LEVEL: i32 = 256;
/// Quiet samples needed before an onset (so a loud steady signal, or the
/// tail of a longer click, is never an onset).
pub const MIN_QUIET: u32 = 64;

/// The amplitude of click `id`, or `None` when it does not fit in i16.
pub fn click_amplitude(id: u32) -> Option<i16> {
    if id > MAX_CLICK_ID {
        return None;
    }
    i16::try_from(CLICK_BASE + id as i32).ok()
}

/// The click id an onset's amplitude encodes, or `None` when the amplitude
/// is not one of ours (below the base, e.g. negative, scaled or resampled).
pub fn click_id(amplitude: i32) -> Option<u32> {
    let id = amplitude.checked_sub(CLICK_BASE)?;
    u32::try_from(id).ok().filter(|&id| id <= MAX_CLICK_ID)
}

/// Converts a playback sample in [-1, 1) (i16 / 32768, as the recorder's
/// ring holds them) back to the i16 scale; exact for such samples.
pub fn f32_to_i16_scale(x: f32) -> i32 {
    (x * 32_768.0).round() as i32
}

/// Finds click onsets in a stream of samples; see the module documentation.
#[derive(Debug, Clone)]
pub struct OnsetDetector {
    quiet_run: u32,
}

impl Default for OnsetDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl OnsetDetector {
    /// A detector that has heard enough quiet to accept an onset at once
    /// (a click on the very first sample of a stream counts).
    pub fn new() -> Self {
        Self {
            quiet_run: MIN_QUIET,
        }
    }

    /// Feeds the next sample (i16 scale); returns its value when it is an
    /// onset. Allocation-free and constant time: safe in an audio callback.
    #[inline]
    pub fn push(&mut self, sample: i32) -> Option<i32> {
        let magnitude = sample.saturating_abs();
        if magnitude < QUIET_LEVEL {
            self.quiet_run = self.quiet_run.saturating_add(1);
            return None;
        }
        let onset = magnitude >= ONSET_THRESHOLD && self.quiet_run >= MIN_QUIET;
        self.quiet_run = 0;
        onset.then_some(sample)
    }
}

/// Where in the pipeline an event was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// The streamer's send call for the datagram carrying the click returned.
    Send,
    /// The recorder received the datagram carrying the click (network thread).
    Arrive,
    /// The recorder's audio callback handed the click to the device.
    Play,
    /// A recorder callback found the ring short (`click` holds the number of
    /// underruns so far, `offset` 0): lets a bench count underruns within
    /// its own window.
    Underrun,
    /// A recorder callback in steady playback: `click` holds the frames the
    /// ring held when it started, `offset` how many of them belong to the
    /// latest network block and are not yet due (the recorder's level
    /// control measures `click − offset`),
    /// `extra` the level control's correction (0 none, 1 one frame dropped,
    /// 2 one frame repeated). Lets a bench see drift compensation at work.
    Level,
}

impl ProbeKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Arrive => "arrive",
            Self::Play => "play",
            Self::Underrun => "underrun",
            Self::Level => "level",
        }
    }
}

/// One probe event: one line of a probe file.
///
/// Line format (space-separated, `#` starts a comment line):
/// `KIND MONO_NS CLICK OFFSET RATE EXTRA_NS`, where `KIND` is `send`,
/// `arrive`, `play`, `underrun` or `level` (see [`ProbeKind::Level`]); `MONO_NS` the CLOCK_MONOTONIC time in nanoseconds;
/// `CLICK` the click id; `OFFSET` the onset's frame offset within the
/// datagram (send, arrive) or the device buffer (play); `RATE` the sample
/// rate `OFFSET` counts at; `EXTRA_NS` for `play` the device's own estimate
/// of its buffer delay (cpal's playback − callback timestamp), `-` if unknown,
/// and for `send` the datagram's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeEvent {
    /// Where it was seen.
    pub kind: ProbeKind,
    /// CLOCK_MONOTONIC, nanoseconds.
    pub mono_ns: u64,
    /// The click id.
    pub click: u32,
    /// Frame offset of the onset in the datagram or device buffer.
    pub offset: u32,
    /// Sample rate of `offset`.
    pub rate: u32,
    /// `play`: device delay estimate in ns; `send`: sequence number.
    pub extra: Option<u64>,
}

impl ProbeEvent {
    /// The time the click's own sample passes this point, in ns: the event
    /// time plus its offset (a sample at offset j of a buffer leaves j
    /// samples after the buffer's first one).
    pub fn sample_time_ns(&self) -> u64 {
        let rate = u64::from(self.rate.max(1));
        self.mono_ns + u64::from(self.offset) * 1_000_000_000 / rate
    }
}

impl fmt::Display for ProbeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} ",
            self.kind.as_str(),
            self.mono_ns,
            self.click,
            self.offset,
            self.rate
        )?;
        match self.extra {
            Some(x) => write!(f, "{x}"),
            None => f.write_str("-"),
        }
    }
}

/// Why a probe-file line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad probe line: {0}")]
pub struct ProbeParseError(pub String);

impl FromStr for ProbeEvent {
    type Err = ProbeParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let bad = || ProbeParseError(line.chars().take(80).collect());
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [kind, mono, click, offset, rate, extra] = fields[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "send" => ProbeKind::Send,
            "arrive" => ProbeKind::Arrive,
            "play" => ProbeKind::Play,
            "underrun" => ProbeKind::Underrun,
            "level" => ProbeKind::Level,
            _ => return Err(bad()),
        };
        Ok(Self {
            kind,
            mono_ns: mono.parse().map_err(|_| bad())?,
            click: click.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
            rate: rate.parse().map_err(|_| bad())?,
            extra: match extra {
                "-" => None,
                x => Some(x.parse().map_err(|_| bad())?),
            },
        })
    }
}

/// Reads every event of a probe file's text; comment and empty lines are
/// skipped, a malformed line is an error naming it.
pub fn parse_probe_file(text: &str) -> Result<Vec<ProbeEvent>, ProbeParseError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::parse)
        .collect()
}

/// CLOCK_MONOTONIC now, in nanoseconds: the one clock every process on the
/// machine shares (Rust's `Instant` reads it too but cannot be compared
/// across processes). A vDSO call on Linux: no system call, no lock, no
/// allocation, so the audio callback may use it.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onsets(det: &mut OnsetDetector, samples: &[i32]) -> Vec<(usize, i32)> {
        samples
            .iter()
            .enumerate()
            .filter_map(|(i, &s)| det.push(s).map(|a| (i, a)))
            .collect()
    }

    #[test]
    fn amplitude_round_trips_the_id() {
        for id in [0, 1, 239, MAX_CLICK_ID] {
            let a = click_amplitude(id).unwrap();
            assert_eq!(click_id(i32::from(a)), Some(id));
            assert_eq!(f32_to_i16_scale(f32::from(a) / 32768.0), i32::from(a));
        }
        assert_eq!(click_amplitude(MAX_CLICK_ID + 1), None);
        assert_eq!(click_id(CLICK_BASE - 1), None);
        assert_eq!(click_id(-CLICK_BASE), None);
    }

    #[test]
    fn single_sample_clicks_after_silence() {
        let mut det = OnsetDetector::new();
        let mut s = vec![0; 300];
        s[0] = 10_000;
        s[100] = 10_005;
        s[150] = -12_000; // only 49 quiet samples before it
        s[299] = 9_000;
        assert_eq!(
            onsets(&mut det, &s),
            vec![(0, 10_000), (100, 10_005), (299, 9_000)]
        );
    }

    #[test]
    fn click_spanning_buffer_boundaries() {
        // Quiet run split over two buffers; a 3-sample click starting on the
        // last sample of buffer 2 and ending in buffer 3: one onset, there.
        let mut det = OnsetDetector::new();
        assert!(onsets(&mut det, &[20_000, 0, 0]).len() == 1);
        assert!(onsets(&mut det, &[0; 40]).is_empty());
        let mut b2 = vec![1; 30];
        b2[29] = 10_042;
        assert_eq!(onsets(&mut det, &b2), vec![(29, 10_042)]);
        assert!(onsets(&mut det, &[12_000, 11_000, 0, 0]).is_empty());
    }

    #[test]
    fn no_onset_on_a_steady_loud_signal() {
        let mut det = OnsetDetector::new();
        det.push(0);
        let sine: Vec<i32> = (0..10_000)
            .map(|i| (20_000.0 * (i as f64 * 0.0625).sin()) as i32)
            .collect();
        // The tone rises through the quiet level before it reaches the
        // threshold, and its zero crossings never give 64 quiet samples.
        assert!(onsets(&mut det, &sine).is_empty());
        let loud = vec![15_000; 5000];
        assert!(onsets(&mut det, &loud).is_empty());
    }

    #[test]
    fn probe_lines_round_trip() {
        let events = [
            ProbeEvent {
                kind: ProbeKind::Send,
                mono_ns: 123_456_789_012,
                click: 7,
                offset: 440,
                rate: 44_100,
                extra: Some(4_294_967_295),
            },
            ProbeEvent {
                kind: ProbeKind::Play,
                mono_ns: 1,
                click: 0,
                offset: 0,
                rate: 48_000,
                extra: None,
            },
            ProbeEvent {
                kind: ProbeKind::Level,
                mono_ns: 2,
                click: 441,
                offset: 220,
                rate: 44_100,
                extra: Some(2),
            },
        ];
        let text: String = events.iter().map(|e| format!("{e}\n")).collect();
        let text = format!("# header\n\n{text}");
        assert_eq!(parse_probe_file(&text).unwrap(), events);
        assert!(parse_probe_file("send 1 2 3").is_err());
        assert!(parse_probe_file("jump 1 2 3 4 -").is_err());
        assert!(parse_probe_file("send x 2 3 4 -").is_err());
    }

    #[test]
    fn sample_time_adds_the_offset() {
        let e = ProbeEvent {
            kind: ProbeKind::Play,
            mono_ns: 1_000_000_000,
            click: 0,
            offset: 441,
            rate: 44_100,
            extra: None,
        };
        assert_eq!(e.sample_time_ns(), 1_010_000_000);
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
