//! Progress reporting: an indicatif line (elapsed / total, datagrams) when
//! stderr is a terminal, a plain log line every few seconds when it is not
//! (a service log, a test), and the one-line [`Summary`] at the end.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// What a finished (or interrupted) stream sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Datagrams (or TCP Samples messages) sent.
    pub datagrams: u64,
    /// Samples sent.
    pub samples: u64,
    /// Output sample rate, to express `samples` as audio time.
    pub sample_rate: u32,
    /// Wall-clock time from the first to the last datagram.
    pub elapsed: Duration,
    /// True when stopped by Ctrl-C (or the stop flag) before the end.
    pub interrupted: bool,
    /// UDP sends that failed.
    pub send_failures: u64,
    /// How long after its scheduled time the last datagram left (paced
    /// file streams only): the measure of pacing accuracy.
    pub last_lateness: Option<Duration>,
    /// The largest such lateness over all datagrams (a stall, a busy machine).
    pub max_lateness: Option<Duration>,
    /// With `--rtp`: the last RTCP receiver report about the stream.
    pub receiver_report: Option<crate::rtp_out::ReceiverView>,
}

impl Summary {
    /// Seconds of audio sent.
    pub fn audio_secs(&self) -> f64 {
        self.samples as f64 / f64::from(self.sample_rate.max(1))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} datagrams, {} samples ({:.2} s of audio) in {:.2} s",
            if self.interrupted { "stopped" } else { "done" },
            self.datagrams,
            self.samples,
            self.audio_secs(),
            self.elapsed.as_secs_f64()
        )?;
        if let (Some(last), Some(max)) = (self.last_lateness, self.max_lateness) {
            write!(
                f,
                "; last datagram {:.3} ms after its deadline (worst {:.3} ms)",
                last.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            )?;
        }
        if self.send_failures > 0 {
            write!(f, ", {} sends failed", self.send_failures)?;
        }
        if let Some(report) = &self.receiver_report {
            write!(f, "; last report: {report}")?;
        }
        Ok(())
    }
}

/// How often the plain log line is written.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// How often the terminal line is redrawn.
const DRAW_EVERY: Duration = Duration::from_millis(100);

/// Reports progress on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    sample_rate: u32,
    next_report: Duration,
}

impl Progress {
    /// A reporter for a stream of `total` samples (`None`: endless) at
    /// `sample_rate`; draws a bar only when stderr is a terminal.
    pub fn new(total: Option<u64>, sample_rate: u32) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(t) => (ProgressBar::new(t), "{bar:30.cyan/blue} {msg}"),
                None => (ProgressBar::new_spinner(), "{spinner} {msg}"),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            sample_rate,
            next_report: Duration::ZERO,
        }
    }

    /// Notes progress at `now` (time since start); draws or logs when due.
    pub fn update(&mut self, now: Duration, datagrams: u64, samples: u64) {
        if now < self.next_report {
            return;
        }
        let line = self.line(datagrams, samples);
        match &self.bar {
            Some(bar) => {
                self.next_report = now + DRAW_EVERY;
                bar.set_position(samples);
                bar.set_message(line);
            }
            // The first log line comes after LOG_EVERY, not at the start.
            None if self.next_report.is_zero() => self.next_report = LOG_EVERY,
            None => {
                self.next_report = now + LOG_EVERY;
                log::info!("{line}");
            }
        }
    }

    /// Removes the terminal line (before the summary is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, datagrams: u64, samples: u64) -> String {
        let rate = f64::from(self.sample_rate.max(1));
        let done = samples as f64 / rate;
        match self.total {
            Some(t) => format!(
                "{done:.1} s / {:.1} s, {datagrams} datagrams",
                t as f64 / rate
            ),
            None => format!("{done:.1} s, {datagrams} datagrams"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let s = Summary {
            datagrams: 100,
            samples: 44_100,
            sample_rate: 44_100,
            elapsed: Duration::from_millis(990),
            interrupted: true,
            send_failures: 0,
            last_lateness: None,
            max_lateness: None,
            receiver_report: None,
        };
        assert_eq!(
            s.to_string(),
            "stopped: 100 datagrams, 44100 samples (1.00 s of audio) in 0.99 s"
        );
        let s = Summary {
            last_lateness: Some(Duration::from_micros(81)),
            max_lateness: Some(Duration::from_micros(1500)),
            receiver_report: None,
            send_failures: 3,
            interrupted: false,
            ..s
        };
        assert_eq!(
            s.to_string(),
            "done: 100 datagrams, 44100 samples (1.00 s of audio) in 0.99 s; \
             last datagram 0.081 ms after its deadline (worst 1.500 ms), 3 sends failed"
        );
    }

    #[test]
    fn progress_line() {
        let p = Progress {
            bar: None,
            total: Some(441_000),
            sample_rate: 44_100,
            next_report: Duration::ZERO,
        };
        assert_eq!(p.line(300, 132_300), "3.0 s / 10.0 s, 300 datagrams");
    }
}
