//! The pure part of `audiobrowserlatency`: finding clicks in a captured
//! signal, placing captured frames on the wall clock from the times their
//! reads returned, pairing each click sent with the one heard, and the
//! lateness of clicks made by a clock of their own.

use crate::stats::least_squares_slope;

/// Indices where a click starts: the first sample at or above `threshold`
/// in magnitude after at least `quiet` samples below it (a click is one
/// loud sample, smeared a little by resampling; the quiet spell keeps one
/// click from counting twice).
pub fn onsets(samples: &[i16], threshold: i16, quiet: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut calm = quiet;
    for (i, &s) in samples.iter().enumerate() {
        if s.unsigned_abs() >= threshold.unsigned_abs() {
            if calm >= quiet {
                out.push(i);
            }
            calm = 0;
        } else {
            calm += 1;
        }
    }
    out
}

/// When frame 0 of a capture was there to read, in seconds on the reader's
/// clock, from `(seconds, frames read so far)` after each read at `rate`:
/// the earliest origin no read contradicts. A read returns what the sound
/// server handed over in one piece, later than the frames in it were
/// played, and never earlier; the read that came soonest after its frames
/// places them all (the capture runs at the sink's rate).
pub fn capture_origin(reads: &[(f64, usize)], rate: f64) -> Option<f64> {
    reads
        .iter()
        .map(|&(t, frames)| t - frames as f64 / rate)
        .min_by(f64::total_cmp)
}

/// For each click sent at `sent[i]` (seconds, ascending), the latency to
/// the first click heard (`heard`, ascending) no earlier than it and at
/// most `max` later; `None` where no click was heard in that time. Clicks
/// must be sent further apart than `max`, so each is unambiguous.
pub fn pair(sent: &[f64], heard: &[f64], max: f64) -> Vec<Option<f64>> {
    sent.iter()
        .map(|&s| {
            let first = heard.partition_point(|&h| h < s);
            heard
                .get(first)
                .map(|&h| h - s)
                .filter(|&latency| latency <= max)
        })
        .collect()
}

/// For clicks heard at `heard` (seconds, ascending) that were made about
/// every `spacing` seconds from an unknown start by a clock of its own:
/// that clock's period between clicks (a least-squares line through the
/// times against their places in the sequence; a missing click leaves a
/// gap, it does not shift the others), and how much later than the
/// earliest, against that line, each click came.
pub fn lateness(heard: &[f64], spacing: f64) -> (f64, Vec<f64>) {
    let Some(&first) = heard.first() else {
        return (spacing, Vec::new());
    };
    let points: Vec<(f64, f64)> = heard
        .iter()
        .map(|&h| (((h - first) / spacing).round(), h - first))
        .collect();
    let period = least_squares_slope(&points).unwrap_or(spacing);
    let n = points.len() as f64;
    let (mk, mh) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let residuals: Vec<f64> = points
        .iter()
        .map(|&(k, h)| h - (mh + (k - mk) * period))
        .collect();
    let min = residuals.iter().copied().fold(f64::INFINITY, f64::min);
    (period, residuals.iter().map(|r| r - min).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_find_each_click_once() {
        let mut s = vec![0i16; 1000];
        s[100] = 20_000;
        s[101] = -9_000; // the same click, smeared
        s[500] = -20_000;
        s[503] = 300; // below the threshold
        assert_eq!(onsets(&s, 8_000, 50), vec![100, 500]);
        // A click at the very start counts.
        s[0] = 10_000;
        assert_eq!(onsets(&s, 8_000, 50), vec![0, 100, 500]);
    }

    #[test]
    fn the_origin_is_the_read_that_came_soonest() {
        // 480 frames a read at 48 kHz (10 ms); the second read came only
        // 1 ms after its frames, the others later.
        let reads = [(0.015, 480), (0.021, 960), (0.040, 1440)];
        let origin = capture_origin(&reads, 48_000.0).unwrap();
        assert!((origin - 0.001).abs() < 1e-9, "{origin}");
        assert_eq!(capture_origin(&[], 48_000.0), None);
    }

    #[test]
    fn pairs_each_click_with_the_first_heard_after_it() {
        let sent = [1.0, 1.25, 1.5, 1.75];
        // 1.25 was never heard; 1.75 only too late; a stray click before
        // the first is ignored.
        let heard = [0.9, 1.030, 1.541, 1.95];
        let got = pair(&sent, &heard, 0.15);
        let want = [Some(0.030), None, Some(0.041), None];
        for (g, w) in got.iter().zip(want) {
            match (g, w) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{got:?}"),
                (None, None) => {}
                _ => panic!("{got:?}"),
            }
        }
    }

    #[test]
    fn lateness_is_measured_against_the_clicks_own_clock() {
        // Every 0.251 s from 10.0 (a clock 0.4 % slow) with 5, 2, 9, 5 ms
        // of delay; the fourth click was lost.
        let heard = [10.005, 10.253, 10.511, 11.009];
        let (period, got) = lateness(&heard, 0.25);
        assert!((period - 0.251).abs() < 0.0005, "{period}");
        let want = [0.003, 0.0, 0.007, 0.003];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 0.0015, "{got:?}");
        }
        assert!(lateness(&[], 0.25).1.is_empty());
    }
}
