//! End-to-end latency: the click track, joining the probe files
//! of the streamer (`send`) and the recorder (`arrive`, `play`, `underrun`)
//! by click id, the statistics and the result schema that
//! `audiolatency --json` writes and the report reads.
//!
//! **What is measured.** The time from a sample leaving the streamer (its
//! datagram's send call returned) to the same sample being handed to the
//! audio device by the recorder, both read from CLOCK_MONOTONIC. A sample at
//! frame offset `k` of a device buffer handed over at time `c` is counted at
//! `c + k / rate`: it is played `k` frames after the buffer's first one, just
//! as a sample at offset `j` of a datagram is played `j` samples after its
//! datagram-mates. The device's own buffer (two periods) comes after that
//! and is not part of the budget; the recorder logs cpal's estimate of it.
//!
//! **Why clicks sit on the last sample of a datagram.** All samples of a
//! datagram leave together, but the node plays them out one after another,
//! so the sample at offset `j` waits `j` samples behind its datagram-mates.
//! The last sample waits the longest, a whole chunk: it is the sample whose
//! latency the budget `chunk + jitter target + node block + backoff`
//! describes.
//!
//! **Click identity.** Click `id` is one sample of amplitude
//! `proto::probe::CLICK_BASE + id` in silence; a node mixing one source at
//! unity gain and centre balance passes it bit-exactly, so the recorder reads
//! the id back from the amplitude.

use std::collections::HashMap;
use std::path::Path;

use proto::probe::{click_amplitude, ProbeEvent, ProbeKind};
use serde::{Deserialize, Serialize};

pub use crate::stats::{median, percentile};

/// Everything `audiolatency --json` writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// One entry per profile, in the order run.
    pub profiles: Vec<ProfileResult>,
    /// UTC time the measurement started (RFC 3339), if known.
    #[serde(default)]
    pub started_utc: String,
    /// `/proc/loadavg` before the first and after the last run.
    #[serde(default)]
    pub loadavg: Vec<String>,
}

/// serde_json writes a NaN (a profile that matched no click) as `null`;
/// read it back as NaN instead of failing the whole file.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// [`nan_if_null`] for every element of a list.
fn nans_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let values = Vec::<Option<f64>>::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// One profile's result over all its runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileResult {
    /// Profile name (`default`, `low-latency`).
    pub name: String,
    /// Streamer `--chunk-ms`.
    pub chunk_ms: f64,
    /// Node `--jitter-ms`.
    pub jitter_ms: f64,
    /// The node's mixing block in ms (220 frames at 44.1 kHz = 4.99 ms).
    pub block_ms: f64,
    /// Recorder `--jitter-backoff`.
    pub backoff_ms: f64,
    /// chunk + jitter + block + backoff.
    pub budget_ms: f64,
    /// Seconds of clicks per run.
    pub seconds: f64,
    /// Runs.
    pub runs: u32,
    /// Clicks matched (sent and played) over all runs.
    pub clicks: u64,
    /// Clicks sent but never played, over all runs.
    pub clicks_missing: u64,
    /// Recorder underruns between the first click's send and the last
    /// click's playback, over all runs.
    pub underruns: u64,
    /// Median of every matched click, pooled over the runs (ms).
    #[serde(deserialize_with = "nan_if_null")]
    pub median_ms: f64,
    /// 99th percentile (nearest rank), pooled (ms).
    #[serde(deserialize_with = "nan_if_null")]
    pub p99_ms: f64,
    /// Largest latency, pooled (ms).
    #[serde(deserialize_with = "nan_if_null")]
    pub max_ms: f64,
    /// Each run's median (ms).
    #[serde(deserialize_with = "nans_if_null")]
    pub run_medians_ms: Vec<f64>,
    /// Each run's p99 (ms).
    #[serde(deserialize_with = "nans_if_null")]
    pub run_p99s_ms: Vec<f64>,
    /// Every matched click's latency, runs concatenated (ms).
    pub latencies_ms: Vec<f64>,
    /// The command lines of one run (streamer, node, recorder).
    pub command: String,
    /// Recorder `--period-ms`.
    #[serde(default)]
    pub period_ms: f64,
    /// Clicks sent over all runs.
    #[serde(default)]
    pub clicks_sent: u64,
    /// Underruns per run (within the click window).
    #[serde(default)]
    pub run_underruns: Vec<u64>,
    /// Median of `arrive − send`, the arrival counted at the click's own
    /// sample (datagram received + its offset in it): streamer and node,
    /// whose budget is chunk + jitter + block. Pooled.
    #[serde(default)]
    pub network_side_median_ms: Option<f64>,
    /// Median of `play − arrive` (recorder ring and callback, budget: the
    /// backoff), pooled.
    #[serde(default)]
    pub recorder_side_median_ms: Option<f64>,
    /// Median latency to the callback's start, without the frame offset.
    #[serde(default)]
    pub at_callback_median_ms: Option<f64>,
    /// Median of cpal's playback − callback timestamps (the device's own
    /// buffer delay estimate; informative).
    #[serde(default)]
    pub device_delay_median_ms: Option<f64>,
    /// median − budget (ms).
    #[serde(default, deserialize_with = "nan_if_null")]
    pub median_minus_budget_ms: f64,
    /// Recorder latency drops over whole runs (warm-up included), from its
    /// summary line: a stalled device made the ring exceed the bound.
    #[serde(default)]
    pub latency_drops: u64,
    /// Audio output errors (device xruns) over whole runs, from the
    /// recorder's log (start-up errors of a new stream are not logged).
    #[serde(default)]
    pub output_errors: u64,
}

/// One click's timings (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClickLatency {
    /// Click id.
    pub id: u32,
    /// Send → handed to the device at its buffer position (the measure).
    pub total_ms: f64,
    /// Send → the click's own sample reached the recorder: its datagram's
    /// receive time plus its offset in the datagram, as if the node's block
    /// arrived at the stream's rate (`None` without an arrive event). The
    /// node sends a block at once, a block's worth of samples ahead of
    /// their time; counting the offset splits the latency where the budget
    /// does: streamer + node = chunk + jitter + block, recorder = backoff.
    pub network_ms: Option<f64>,
    /// Send → the start of the callback that handed it over.
    pub at_callback_ms: f64,
    /// cpal's playback − callback estimate for that callback.
    pub device_delay_ms: Option<f64>,
}

/// What one run's probe files say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunResult {
    /// Clicks the streamer sent.
    pub sent: u64,
    /// Clicks sent and played, in id order.
    pub matched: Vec<ClickLatency>,
    /// Ids sent and never played.
    pub missing: Vec<u32>,
    /// Underrun events between the first send and the last play.
    pub underruns: u64,
    /// Latency drops over the whole run (recorder summary).
    pub latency_drops: u64,
    /// Audio output errors over the whole run (recorder log).
    pub output_errors: u64,
}

/// The number after `key` in `text` (e.g. `latency drops 3` → 3).
fn number_after(text: &str, key: &str) -> u64 {
    text.split(key)
        .skip(1)
        .filter_map(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|n| n.trim_end_matches(',').parse::<u64>().ok())
        })
        .sum()
}

/// Latency drops in the recorder's summary line.
pub fn summary_latency_drops(summary: &str) -> u64 {
    number_after(summary, "latency drops ")
}

/// Audio output errors reported in the recorder's log (`playback: N audio
/// output error(s)` lines; the first error is logged alone and counted in
/// the next report).
pub fn log_output_errors(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("playback: ").nth(1))
        .flat_map(|rest| rest.split(", "))
        .filter(|part| part.contains("audio output error"))
        .filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Click positions for a track: click `i` on the last sample of a datagram,
/// about every `spacing_ms`, starting after `lead_in` samples and within the
/// first `lead_in + click_samples` samples. The spacing varies by ±2
/// datagrams (deterministically) so clicks fall at many phases of the node's
/// blocks and the device's periods.
pub fn click_positions(
    chunk_samples: usize,
    rate: u32,
    spacing_ms: f64,
    lead_in: usize,
    click_samples: usize,
) -> Vec<(u32, usize)> {
    let chunk = chunk_samples.max(1);
    let base = ((spacing_ms * f64::from(rate) / 1000.0) / chunk as f64)
        .round()
        .max(3.0) as usize;
    let end = lead_in + click_samples;
    let mut out = Vec::new();
    // The first datagram that starts at or after the lead-in.
    let mut datagram = lead_in.div_ceil(chunk);
    let mut id = 0u32;
    loop {
        let last = datagram * chunk + chunk - 1;
        if last >= end || click_amplitude(id).is_none() {
            return out;
        }
        out.push((id, last));
        let wobble = [0usize, 1, 3, 4, 2][id as usize % 5]; // 0..=4 → −2..=+2
        datagram += base + wobble - 2;
        id += 1;
    }
}

/// A click track of `len` samples of silence with the clicks at `clicks`.
pub fn click_track(len: usize, clicks: &[(u32, usize)]) -> Vec<i16> {
    let mut samples = vec![0i16; len];
    for &(id, at) in clicks {
        if let (Some(a), Some(s)) = (click_amplitude(id), samples.get_mut(at)) {
            *s = a;
        }
    }
    samples
}

/// Writes mono 16-bit samples as a WAV file.
pub fn write_wav(path: &Path, samples: &[i16], rate: u32) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}

fn ns_to_ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

/// Joins the streamer's events with the recorder's by click id: the first
/// `play` (and `arrive`) of each id sent. Underruns count between the
/// first click's send and the last click's play (stream start-up and the
/// end of the stream lie outside and are not the steady state).
pub fn match_clicks(streamer: &[ProbeEvent], recorder: &[ProbeEvent]) -> RunResult {
    let mut sends: Vec<&ProbeEvent> = streamer
        .iter()
        .filter(|e| e.kind == ProbeKind::Send)
        .collect();
    sends.sort_by_key(|e| e.click);
    sends.dedup_by_key(|e| e.click);
    let first = |kind: ProbeKind| {
        let mut m: HashMap<u32, &ProbeEvent> = HashMap::new();
        for e in recorder.iter().filter(|e| e.kind == kind) {
            m.entry(e.click)
                .and_modify(|x| {
                    if e.mono_ns < x.mono_ns {
                        *x = e
                    }
                })
                .or_insert(e);
        }
        m
    };
    let plays = first(ProbeKind::Play);
    let arrivals = first(ProbeKind::Arrive);
    let mut result = RunResult {
        sent: sends.len() as u64,
        ..RunResult::default()
    };
    for s in &sends {
        let Some(p) = plays.get(&s.click) else {
            result.missing.push(s.click);
            continue;
        };
        let send = i128::from(s.mono_ns);
        result.matched.push(ClickLatency {
            id: s.click,
            total_ms: ns_to_ms(i128::from(p.sample_time_ns()) - send),
            network_ms: arrivals
                .get(&s.click)
                .map(|a| ns_to_ms(i128::from(a.sample_time_ns()) - send)),
            at_callback_ms: ns_to_ms(i128::from(p.mono_ns) - send),
            device_delay_ms: p.extra.map(|d| d as f64 / 1e6),
        });
    }
    let window_start = sends.iter().map(|e| e.mono_ns).min();
    let window_end = plays.values().map(|e| e.mono_ns).max();
    if let (Some(a), Some(b)) = (window_start, window_end) {
        result.underruns = recorder
            .iter()
            .filter(|e| e.kind == ProbeKind::Underrun && (a..=b).contains(&e.mono_ns))
            .count() as u64;
    }
    result
}

/// A profile's settings, as run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSettings {
    /// Name in the report.
    pub name: String,
    /// Streamer `--chunk-ms`.
    pub chunk_ms: f64,
    /// Node `--jitter-ms`.
    pub jitter_ms: f64,
    /// The node's block in ms.
    pub block_ms: f64,
    /// Recorder `--jitter-backoff`.
    pub backoff_ms: f64,
    /// Recorder `--period-ms`.
    pub period_ms: f64,
}

impl ProfileSettings {
    /// chunk + jitter target + node block + backoff.
    pub fn budget_ms(&self) -> f64 {
        self.chunk_ms + self.jitter_ms + self.block_ms + self.backoff_ms
    }
}

/// Pools the runs of one profile into its result.
pub fn summarise(
    settings: &ProfileSettings,
    seconds: f64,
    runs: &[RunResult],
    command: String,
) -> ProfileResult {
    let pooled: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.matched.iter().map(|c| c.total_ms))
        .collect();
    let pick = |f: fn(&ClickLatency) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.matched.iter().filter_map(f))
            .collect();
        median(&v)
    };
    let median_ms = median(&pooled).unwrap_or(f64::NAN);
    let budget_ms = settings.budget_ms();
    ProfileResult {
        name: settings.name.clone(),
        chunk_ms: settings.chunk_ms,
        jitter_ms: settings.jitter_ms,
        block_ms: settings.block_ms,
        backoff_ms: settings.backoff_ms,
        budget_ms,
        seconds,
        runs: runs.len() as u32,
        clicks: pooled.len() as u64,
        clicks_missing: runs.iter().map(|r| r.missing.len() as u64).sum(),
        underruns: runs.iter().map(|r| r.underruns).sum(),
        median_ms,
        p99_ms: percentile(&pooled, 99.0).unwrap_or(f64::NAN),
        max_ms: percentile(&pooled, 100.0).unwrap_or(f64::NAN),
        run_medians_ms: runs
            .iter()
            .map(|r| median(&totals(r)).unwrap_or(f64::NAN))
            .collect(),
        run_p99s_ms: runs
            .iter()
            .map(|r| percentile(&totals(r), 99.0).unwrap_or(f64::NAN))
            .collect(),
        latencies_ms: pooled,
        command,
        period_ms: settings.period_ms,
        clicks_sent: runs.iter().map(|r| r.sent).sum(),
        run_underruns: runs.iter().map(|r| r.underruns).collect(),
        network_side_median_ms: pick(|c| c.network_ms),
        recorder_side_median_ms: pick(|c| c.network_ms.map(|n| c.total_ms - n)),
        at_callback_median_ms: pick(|c| Some(c.at_callback_ms)),
        device_delay_median_ms: pick(|c| c.device_delay_ms),
        median_minus_budget_ms: median_ms - budget_ms,
        latency_drops: runs.iter().map(|r| r.latency_drops).sum(),
        output_errors: runs.iter().map(|r| r.output_errors).sum(),
    }
}

fn totals(r: &RunResult) -> Vec<f64> {
    r.matched.iter().map(|c| c.total_ms).collect()
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{x:.2}"))
}

/// The Markdown table of the profiles: pooled rows plus each run's median,
/// p99 and underruns.
pub fn markdown_table(profiles: &[ProfileResult]) -> String {
    let mut s = String::from(
        "| profile | runs | clicks sent / matched / missing | median ms | p99 ms | max ms | underruns | budget ms | median − budget ms | per-run medians ms | per-run p99 ms | streamer + node ms (sample at the recorder) | recorder ms (to the device) | device delay (cpal) ms | latency drops / output errors (whole runs) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for p in profiles {
        s.push_str(&format!(
            "| {} | {} | {} / {} / {} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:+.2} | {} | {} | {} | {} | {} | {} / {} |\n",
            p.name,
            p.runs,
            p.clicks_sent,
            p.clicks,
            p.clicks_missing,
            p.median_ms,
            p.p99_ms,
            p.max_ms,
            p.underruns,
            p.budget_ms,
            p.median_ms - p.budget_ms,
            list(&p.run_medians_ms),
            list(&p.run_p99s_ms),
            opt(p.network_side_median_ms),
            opt(p.recorder_side_median_ms),
            opt(p.device_delay_median_ms),
            p.latency_drops,
            p.output_errors,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: ProbeKind, ms: u64, click: u32, offset: u32, extra: Option<u64>) -> ProbeEvent {
        ProbeEvent {
            kind,
            mono_ns: ms * 1_000_000,
            click,
            offset,
            rate: 1000, // one frame = 1 ms keeps the arithmetic readable
            extra,
        }
    }

    #[test]
    fn clicks_sit_on_the_last_sample_of_datagrams() {
        let clicks = click_positions(441, 44_100, 250.0, 44_100, 44_100 * 2);
        assert_eq!(clicks[0], (0, 44_100 + 440));
        for &(_, at) in &clicks {
            assert_eq!(at % 441, 440);
            assert!((44_100..44_100 * 3).contains(&at));
        }
        let gaps: Vec<usize> = clicks.windows(2).map(|w| (w[1].1 - w[0].1) / 441).collect();
        assert_eq!(&gaps[..5], &[23, 24, 26, 27, 25]);
        assert_eq!(clicks.len(), 9);
        let track = click_track(44_100 * 3, &clicks);
        assert_eq!(track[44_100 + 440], 10_000);
        assert_eq!(track[clicks[7].1], 10_007);
        assert_eq!(track.iter().filter(|&&s| s != 0).count(), 9);
    }

    #[test]
    fn matching_by_id_with_offsets_missing_and_underruns() {
        let streamer = [
            ev(ProbeKind::Send, 1000, 0, 9, Some(5)),
            ev(ProbeKind::Send, 1250, 1, 9, Some(30)),
            ev(ProbeKind::Send, 1500, 2, 9, Some(55)),
        ];
        let recorder = [
            ev(ProbeKind::Underrun, 900, 1, 0, None), // start-up: outside
            ev(ProbeKind::Arrive, 1030, 0, 0, None),
            ev(ProbeKind::Play, 1080, 0, 5, Some(40_000_000)),
            ev(ProbeKind::Play, 1380, 0, 0, None), // a later duplicate: ignored
            ev(ProbeKind::Underrun, 1300, 2, 0, None),
            ev(ProbeKind::Play, 1340, 1, 2, None),
            ev(ProbeKind::Underrun, 1400, 3, 0, None), // after the last play: outside
        ];
        let r = match_clicks(&streamer, &recorder);
        assert_eq!(r.sent, 3);
        assert_eq!(r.missing, vec![2]);
        assert_eq!(r.underruns, 1);
        assert_eq!(
            r.matched,
            vec![
                ClickLatency {
                    id: 0,
                    total_ms: 85.0,
                    network_ms: Some(30.0),
                    at_callback_ms: 80.0,
                    device_delay_ms: Some(40.0),
                },
                ClickLatency {
                    id: 1,
                    total_ms: 92.0,
                    network_ms: None,
                    at_callback_ms: 90.0,
                    device_delay_ms: None,
                },
            ]
        );
    }

    #[test]
    fn recorder_counters_from_summary_and_log() {
        let summary = "audiorecorder: received 71.00 s (3131040 frames), recorded 0 frames, \
            underruns 0, backoffs 1, latency drops 7 (208725 frames), overruns 239594 frames";
        assert_eq!(summary_latency_drops(summary), 7);
        let log = "[x WARN  audiorecorder::player] audio output error: A buffer underrun\n\
            [x WARN  audiorecorder::pipeline] playback: 472 audio output error(s)\n\
            [x WARN  audiorecorder::pipeline] playback: 9343 frames lost to a full ring (overrun), 1262 audio output error(s)\n\
            [x WARN  audiorecorder::pipeline] playback: 1 latency drop(s) (37485 oldest frames dropped)\n";
        assert_eq!(log_output_errors(log), 1734);
    }

    #[test]
    fn statistics_and_summary() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median(&v), Some(50.5));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);

        let run = |lat: &[f64], underruns| RunResult {
            sent: lat.len() as u64 + 1,
            matched: lat
                .iter()
                .enumerate()
                .map(|(i, &t)| ClickLatency {
                    id: i as u32,
                    total_ms: t,
                    network_ms: Some(t - 50.0),
                    at_callback_ms: t,
                    device_delay_ms: None,
                })
                .collect(),
            missing: vec![99],
            underruns,
            ..RunResult::default()
        };
        let settings = ProfileSettings {
            name: "default".into(),
            chunk_ms: 10.0,
            jitter_ms: 20.0,
            block_ms: 4.99,
            backoff_ms: 50.0,
            period_ms: 20.0,
        };
        let p = summarise(
            &settings,
            60.0,
            &[run(&[80.0, 82.0, 90.0], 0), run(&[84.0], 2)],
            "cmd".into(),
        );
        assert!((p.budget_ms - 84.99).abs() < 1e-9);
        assert_eq!((p.runs, p.clicks, p.clicks_sent), (2, 4, 6));
        assert_eq!((p.clicks_missing, p.underruns), (2, 2));
        assert_eq!((p.median_ms, p.p99_ms, p.max_ms), (83.0, 90.0, 90.0));
        assert_eq!(p.run_medians_ms, vec![82.0, 84.0]);
        assert_eq!(p.recorder_side_median_ms, Some(50.0));
        assert_eq!(p.latencies_ms, vec![80.0, 82.0, 90.0, 84.0]);
        let json = serde_json::to_string(&LatencyReport {
            profiles: vec![p.clone()],
            ..Default::default()
        })
        .unwrap();
        let back: LatencyReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.profiles[0], p);
        assert!(markdown_table(&[p]).contains("| default | 2 | 6 / 4 / 2 | 83.00 |"));
    }

    #[test]
    fn a_profile_without_clicks_round_trips_through_json() {
        let report = LatencyReport {
            profiles: vec![ProfileResult {
                name: "low-latency".into(),
                median_ms: f64::NAN,
                p99_ms: f64::NAN,
                max_ms: f64::NAN,
                run_medians_ms: vec![f64::NAN, 19.0],
                ..ProfileResult::default()
            }],
            ..LatencyReport::default()
        };
        let text = serde_json::to_string(&report).unwrap();
        let back: LatencyReport = serde_json::from_str(&text).unwrap();
        let p = &back.profiles[0];
        assert!(p.median_ms.is_nan() && p.p99_ms.is_nan() && p.max_ms.is_nan());
        assert!(p.run_medians_ms[0].is_nan());
        assert_eq!(p.run_medians_ms[1], 19.0);
    }
}
