//! Recorder memory over a long recording: RSS samples against
//! the audio recorded so far, the checkpoints and slope the report quotes,
//! the parser of the recorder's summary line, and the schema that
//! `audiomemory --json` writes and `benchreport` reads. (Node RSS with 1000
//! sources comes from `audiocapacity`, see [`crate::capacity`].)

use serde::{Deserialize, Serialize};

use crate::machine::MachineInfo;
use crate::stats;

/// Minutes of recorded audio at which RSS is reported.
pub const CHECKPOINT_MINUTES: [f64; 8] = [1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0];

/// The recorder's memory at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Audio in the WAV file so far, in seconds.
    pub audio_s: f64,
    /// Wall time since the recorder started, in seconds.
    pub wall_s: f64,
    /// `VmRSS`, in MiB.
    pub rss_mb: f64,
    /// `VmHWM` (peak RSS so far), in MiB.
    pub hwm_mb: f64,
}

/// RSS when a given amount of audio had been recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The checkpoint, in minutes of audio.
    pub minute: f64,
    /// Audio recorded at the sample used, in seconds (the first sample at
    /// or past the checkpoint).
    pub audio_s: f64,
    /// `VmRSS` then, in MiB.
    pub rss_mb: f64,
}

/// The first sample at or past each of `minutes` (checkpoints never reached
/// are left out). `samples` must be in time order.
pub fn checkpoints(samples: &[MemorySample], minutes: &[f64]) -> Vec<Checkpoint> {
    minutes
        .iter()
        .filter_map(|&m| {
            let s = samples.iter().find(|s| s.audio_s >= m * 60.0)?;
            Some(Checkpoint {
                minute: m,
                audio_s: s.audio_s,
                rss_mb: s.rss_mb,
            })
        })
        .collect()
}

/// Least-squares slope of RSS over the second half of the recording (by
/// audio time), in MiB per hour of audio: start-up growth is excluded, a
/// leak of any size shows. `None` with too few samples.
pub fn slope_second_half(samples: &[MemorySample]) -> Option<f64> {
    let end = samples.iter().map(|s| s.audio_s).fold(0.0, f64::max);
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.audio_s >= end / 2.0)
        .map(|s| (s.audio_s / 3600.0, s.rss_mb))
        .collect();
    stats::least_squares_slope(&pts)
}

/// The counters of the recorder's summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderCounts {
    /// Frames received.
    pub received_frames: u64,
    /// Frames handed to the WAV writer.
    pub recorded_frames: u64,
    /// Datagrams dropped from other senders.
    pub other_senders: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Frames the writer could not keep up with.
    pub writer_dropped: u64,
}

/// Parses `audiorecorder: received 30.00 s (1323000 frames), recorded
/// 1323000 frames, …, dropped: 0 from other senders, 0 malformed
/// datagrams, 0 frames the writer could not keep up with`.
pub fn parse_recorder_summary(line: &str) -> Option<RecorderCounts> {
    let before = |suffix: &str| -> Option<u64> {
        let head = &line[..line.find(suffix)?];
        head.split_whitespace()
            .last()?
            .trim_start_matches('(')
            .parse()
            .ok()
    };
    let after = |prefix: &str| -> Option<u64> {
        let tail = &line[line.find(prefix)? + prefix.len()..];
        tail.split_whitespace().next()?.parse().ok()
    };
    Some(RecorderCounts {
        received_frames: before(" frames), recorded")?,
        recorded_frames: after("recorded ")?,
        other_senders: before(" from other senders")?,
        malformed: before(" malformed datagrams")?,
        writer_dropped: before(" frames the writer could not keep up with")?,
    })
}

/// One recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryRun {
    /// 1-based run number.
    pub run: usize,
    /// Frames sent (the length of the generated track).
    pub frames_expected: u64,
    /// Frames in the finished WAV (read back from its header).
    pub frames_in_wav: u64,
    /// `frames_expected − frames_in_wav` (0 when every frame arrived).
    pub frames_missing: i64,
    /// The recorder's own counters.
    pub recorder: RecorderCounts,
    /// RSS at the checkpoints.
    pub checkpoints: Vec<Checkpoint>,
    /// Peak RSS: the larger of the last `VmHWM` and `ru_maxrss`, in MiB.
    pub peak_rss_mb: f64,
    /// `VmRSS` at the last sample before the recorder was stopped, in MiB.
    pub final_rss_mb: f64,
    /// See [`slope_second_half`], in MiB per hour of audio.
    pub slope_mb_per_hour: f64,
    /// The recorder's CPU over its life, in % of one core.
    pub recorder_cpu_pct: f64,
    /// Wall time of the recording, in seconds.
    pub wall_seconds: f64,
    /// Every sample taken.
    pub samples: Vec<MemorySample>,
    /// The recorder's summary line.
    pub recorder_summary: String,
}

/// Medians over the runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryMedians {
    /// Median RSS at each checkpoint reached by every run.
    pub checkpoints: Vec<Checkpoint>,
    /// Median peak RSS, in MiB.
    pub peak_rss_mb: f64,
    /// Median slope, in MiB per hour of audio.
    pub slope_mb_per_hour: f64,
    /// The most frames any run missed.
    pub worst_frames_missing: i64,
}

impl MemoryMedians {
    /// Medians of `runs`.
    pub fn of(runs: &[MemoryRun]) -> Self {
        let m = |v: Vec<f64>| stats::median(&v).unwrap_or(0.0);
        let minutes: Vec<f64> = runs.first().map_or(Vec::new(), |r| {
            r.checkpoints.iter().map(|c| c.minute).collect()
        });
        let checkpoints = minutes
            .iter()
            .filter_map(|&minute| {
                let of: Vec<&Checkpoint> = runs
                    .iter()
                    .filter_map(|r| r.checkpoints.iter().find(|c| c.minute == minute))
                    .collect();
                (of.len() == runs.len()).then(|| Checkpoint {
                    minute,
                    audio_s: m(of.iter().map(|c| c.audio_s).collect()),
                    rss_mb: m(of.iter().map(|c| c.rss_mb).collect()),
                })
            })
            .collect();
        Self {
            checkpoints,
            peak_rss_mb: m(runs.iter().map(|r| r.peak_rss_mb).collect()),
            slope_mb_per_hour: m(runs.iter().map(|r| r.slope_mb_per_hour).collect()),
            worst_frames_missing: runs.iter().map(|r| r.frames_missing).max().unwrap_or(0),
        }
    }
}

/// Everything `audiomemory --json` writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Minutes of audio recorded per run.
    pub minutes: f64,
    /// The streamer's `--speed`.
    pub speed: f64,
    /// Each run.
    pub runs: Vec<MemoryRun>,
    /// Medians over the runs.
    pub median: MemoryMedians,
    /// The command that produced this.
    pub command: String,
    /// The machine at the start.
    pub machine: MachineInfo,
    /// Load average at the end.
    pub loadavg_end: String,
}

/// The Markdown tables of a memory report: RSS at each checkpoint per run
/// (and the median), then peak, slope and frame accounting per run.
pub fn table(report: &MemoryReport) -> String {
    let minutes: Vec<f64> = report.median.checkpoints.iter().map(|c| c.minute).collect();
    let mut s = String::from("| minutes of audio |");
    for r in &report.runs {
        s += &format!(" run {} RSS MB |", r.run);
    }
    s += " median RSS MB |\n|---|";
    s += &"---|".repeat(report.runs.len() + 1);
    s.push('\n');
    for (i, minute) in minutes.iter().enumerate() {
        s += &format!("| {minute} |");
        for r in &report.runs {
            let v = r.checkpoints.iter().find(|c| c.minute == *minute);
            s += &v.map_or(" - |".into(), |c| format!(" {:.2} |", c.rss_mb));
        }
        s += &format!(" {:.2} |\n", report.median.checkpoints[i].rss_mb);
    }
    s += "\n| run | peak RSS MB | final RSS MB | slope MB/h of audio (2nd half) | frames expected | frames in WAV | missing | writer dropped | malformed | recorder CPU % | wall s |\n\
          |---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in &report.runs {
        s += &format!(
            "| run {} | {:.2} | {:.2} | {:+.3} | {} | {} | {} | {} | {} | {:.1} | {:.1} |\n",
            r.run,
            r.peak_rss_mb,
            r.final_rss_mb,
            r.slope_mb_per_hour,
            r.frames_expected,
            r.frames_in_wav,
            r.frames_missing,
            r.recorder.writer_dropped,
            r.recorder.malformed,
            r.recorder_cpu_pct,
            r.wall_seconds,
        );
    }
    let m = &report.median;
    s += &format!(
        "| **median** | {:.2} | - | {:+.3} | - | - | {} (worst) | - | - | - | - |\n",
        m.peak_rss_mb, m.slope_mb_per_hour, m.worst_frames_missing
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss: impl Fn(f64) -> f64) -> Vec<MemorySample> {
        // One sample every 10 s of audio for an hour.
        (0..=360)
            .map(|i| {
                let audio_s = f64::from(i) * 10.0;
                MemorySample {
                    audio_s,
                    wall_s: audio_s / 20.0,
                    rss_mb: rss(audio_s),
                    hwm_mb: rss(audio_s),
                }
            })
            .collect()
    }

    #[test]
    fn checkpoints_pick_the_first_sample_past_each_minute() {
        let s = samples(|a| 4.0 + a / 3600.0);
        let c = checkpoints(&s, &[1.0, 5.0, 60.0, 61.0]);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].minute, c[0].audio_s), (1.0, 60.0));
        assert_eq!(c[2].audio_s, 3600.0);
        assert!((c[2].rss_mb - 5.0).abs() < 1e-12);
    }

    #[test]
    fn slope_ignores_start_up_growth() {
        // Grows 3 MB in the first 5 minutes, then flat.
        let flat = samples(|a| if a < 300.0 { 2.0 + a / 100.0 } else { 5.0 });
        assert!(slope_second_half(&flat).unwrap().abs() < 1e-9);
        let leak = samples(|a| 5.0 + 2.0 * a / 3600.0);
        assert!((slope_second_half(&leak).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(slope_second_half(&[]), None);
    }

    #[test]
    fn parses_the_recorder_summary() {
        let line = "audiorecorder: received 30.00 s (1323000 frames), recorded 1322999 frames, \
            underruns 1, backoffs 1, latency drops 0 (0 frames), overruns 0 frames, dropped: 2 \
            from other senders, 3 malformed datagrams, 4 frames the writer could not keep up with";
        assert_eq!(
            parse_recorder_summary(line),
            Some(RecorderCounts {
                received_frames: 1_323_000,
                recorded_frames: 1_322_999,
                other_senders: 2,
                malformed: 3,
                writer_dropped: 4,
            })
        );
        assert_eq!(parse_recorder_summary("audiorecorder: port in use"), None);
        assert_eq!(parse_recorder_summary(""), None);
    }

    #[test]
    fn report_round_trips_and_renders() {
        let s = samples(|_| 4.5);
        let run = MemoryRun {
            run: 1,
            frames_expected: 100,
            frames_in_wav: 100,
            checkpoints: checkpoints(&s, &CHECKPOINT_MINUTES),
            peak_rss_mb: 4.75,
            slope_mb_per_hour: slope_second_half(&s).unwrap(),
            samples: s,
            ..MemoryRun::default()
        };
        let runs = vec![run];
        let report = MemoryReport {
            minutes: 60.0,
            speed: 20.0,
            median: MemoryMedians::of(&runs),
            runs,
            ..MemoryReport::default()
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<MemoryReport>(&json).unwrap(), report);
        assert_eq!(report.median.checkpoints.len(), 8);
        let t = table(&report);
        assert!(t.contains("| 60 | 4.50 | 4.50 |"), "{t}");
        assert!(t.contains("| run 1 | 4.75 |"), "{t}");
    }
}
