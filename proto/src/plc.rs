//! Packet-loss concealment for PCM: what plays in place of audio that was
//! lost, shared by the node (per source) and the recorder (per channel).
//!
//! Not a wire format but a contract between the programs: both fill a gap
//! the same way, so a recording made through a lossy hop sounds like the
//! node's own output did.
//!
//! **Algorithm: pitch-period waveform repetition** (the approach of ITU-T
//! G.711 Appendix I), chosen over Burg/LPC prediction because it is cheap
//! and bounded: one normalized-autocorrelation search over the history
//! when a gap begins (about 40 000 multiply-adds at 44.1 kHz: a coarse
//! pass at a quarter of the rate, then a refinement), after which every concealed sample
//! is a table look-up and a multiply. A Burg predictor extrapolates well
//! for the first few milliseconds but needs an order-32+ recursion per
//! sample and drifts towards silence or instability on long gaps; music
//! and voice are mostly periodic over tens of milliseconds, which is what
//! repetition continues. Nothing here allocates after [`Concealer::new`],
//! so the node's mixing thread may run it.
//!
//! When a gap begins, the period is the lag (2.5–15 ms) whose last 10 ms
//! correlate best with the 10 ms before them, over the last 40 ms of
//! history. The last period is then repeated; its final quarter (at most
//! 3 ms) is cross-faded with the period before it, so each repetition
//! joins the next without a step. The first 10 ms of a gap play at full
//! level, then the level falls linearly to exactly zero at 50 ms; longer
//! gaps are silent. `Repeat` repeats the last packet's worth of audio
//! instead (no search, no cross-fade), with the same fade.
//!
//! **Back into the signal.** When the audio after a gap is already there
//! while the gap's end is still to be played (the usual case behind a
//! jitter buffer: the packet after a lost one arrives before the loss is
//! heard), `Predict` cross-fades the last few milliseconds of the gap
//! (at most 5 ms, at most one period) from the repetition into the
//! resumed audio's own waveform continued backwards by one period (the
//! sample a period after each position), with a raised-cosine weight
//! that reaches the resumed audio at the gap's end: a concealed gap then
//! joins the signal at both ends without a step, and the gap is filled
//! from both sides rather than extrapolated from one
//! ([`Concealer::merge`]). Only gaps whose end is still concealed (at
//! most [`FADE_END_MS`] long) are merged, so the frames concealed stay
//! exactly the ones counted.
//!
//! Received audio is never modified: concealment only fills the gap, and
//! when audio resumes it plays as received, bit for bit.

use std::fmt;
use std::str::FromStr;

/// How lost audio is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlcMode {
    /// Silence (no concealment).
    Off,
    /// The last packet's worth of audio, repeated, fading out.
    Repeat,
    /// The last pitch period, repeated with cross-faded joins, fading out.
    #[default]
    Predict,
}

impl FromStr for PlcMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(PlcMode::Off),
            "repeat" => Ok(PlcMode::Repeat),
            "predict" => Ok(PlcMode::Predict),
            _ => Err(format!(
                "{s:?} is not a concealment mode (off, repeat or predict)"
            )),
        }
    }
}

impl fmt::Display for PlcMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlcMode::Off => "off",
            PlcMode::Repeat => "repeat",
            PlcMode::Predict => "predict",
        })
    }
}

/// History the concealer analyses, in ms.
pub const HISTORY_MS: u32 = 40;
/// Part of a gap played at full level, in ms.
pub const HOLD_MS: u32 = 10;
/// Length of a gap after which concealment is silent, in ms.
pub const FADE_END_MS: u32 = 50;
/// Shortest and longest pitch period searched, in tenths of a ms.
const MIN_LAG_TENTHS_MS: u32 = 25;
const MAX_LAG_TENTHS_MS: u32 = 150;
/// Length of the stretch whose correlation is measured, in ms.
const WINDOW_MS: u32 = 10;
/// Longest cross-fade at a period's join, in tenths of a ms.
const MAX_JOIN_TENTHS_MS: u32 = 30;
/// The coarse pitch search runs on the history decimated by this.
const DECIMATE: usize = 4;
/// Longest cross-fade from the concealment into the audio after a gap, in
/// tenths of a ms.
const MAX_MERGE_TENTHS_MS: u32 = 50;

/// The lag in `lags` whose `window` last samples of `x` correlate best
/// with the samples `lag` before them.
fn best_lag(x: &[f32], window: usize, lags: std::ops::RangeInclusive<usize>) -> Option<usize> {
    let mut best = (f32::MIN, None);
    for lag in lags {
        if window + lag > x.len() {
            break;
        }
        let s = score(x, window, lag);
        if s > best.0 {
            best = (s, Some(lag));
        }
    }
    best.1
}

/// How well the last `window` samples of `x` match those `lag` earlier:
/// xy / √yy, which ranks lags as the normalized correlation does (the
/// recent stretch's energy is the same for every lag). Eight partial sums
/// so the loop vectorises; the order is fixed, so results are exact
/// across runs.
fn score(x: &[f32], window: usize, lag: usize) -> f32 {
    let n = x.len();
    let recent = &x[n - window..];
    let past = &x[n - window - lag..n - lag];
    let (mut xy, mut yy) = ([0.0f32; 8], [0.0f32; 8]);
    let (a8, b8) = (recent.chunks_exact(8), past.chunks_exact(8));
    let (ra, rb) = (a8.remainder(), b8.remainder());
    for (a, b) in a8.zip(b8) {
        for i in 0..8 {
            xy[i] += a[i] * b[i];
            yy[i] += b[i] * b[i];
        }
    }
    for (i, (a, b)) in ra.iter().zip(rb).enumerate() {
        xy[i] += a * b;
        yy[i] += b * b;
    }
    let (xy, yy): (f32, f32) = (xy.iter().sum(), yy.iter().sum());
    if yy > 0.0 {
        xy / yy.sqrt()
    } else {
        f32::MIN
    }
}

fn samples(rate: u32, tenths_ms: u32) -> usize {
    (u64::from(rate) * u64::from(tenths_ms) / 10_000).max(1) as usize
}

/// One channel's concealer: the cycle being repeated and where the gap is.
///
/// Use: when a gap begins, [`Concealer::start`] with the history (the
/// last [`Concealer::history_len`] samples played, oldest first); then
/// [`Concealer::fill`] for each stretch of the gap; [`Concealer::end`]
/// when received audio plays again.
#[derive(Debug, Clone)]
pub struct Concealer {
    mode: PlcMode,
    /// Scratch: the history, filled by the caller at the start of a gap.
    history: Box<[f32]>,
    /// The waveform repeated, `period` samples long.
    cycle: Box<[f32]>,
    /// Scratch: the history decimated for the coarse search.
    coarse: Box<[f32]>,
    period: usize,
    phase: usize,
    /// Samples of the current gap played so far (`None`: no gap).
    run: Option<usize>,
    hold: usize,
    fade_end: usize,
    min_lag: usize,
    max_lag: usize,
    window: usize,
    max_join: usize,
    max_merge: usize,
}

impl Concealer {
    /// A concealer for audio at `rate` samples per second. Its buffers
    /// (about 14 KB at 44.1 kHz; none with [`PlcMode::Off`]) are zeroed
    /// allocations, so their pages cost memory only once a gap uses them.
    pub fn new(mode: PlcMode, rate: u32) -> Self {
        let history = if mode == PlcMode::Off {
            0
        } else {
            samples(rate, 10 * HISTORY_MS)
        };
        Self {
            mode,
            history: vec![0.0; history].into_boxed_slice(),
            cycle: vec![0.0; history].into_boxed_slice(),
            coarse: vec![0.0; history / DECIMATE].into_boxed_slice(),
            period: 0,
            phase: 0,
            run: None,
            hold: samples(rate, 10 * HOLD_MS),
            fade_end: samples(rate, 10 * FADE_END_MS),
            min_lag: samples(rate, MIN_LAG_TENTHS_MS),
            max_lag: samples(rate, MAX_LAG_TENTHS_MS),
            window: samples(rate, 10 * WINDOW_MS),
            max_join: samples(rate, MAX_JOIN_TENTHS_MS),
            max_merge: samples(rate, MAX_MERGE_TENTHS_MS),
        }
    }

    /// How many samples of resumed audio [`Concealer::merge`] reads (one
    /// period), and so how many must be there after a gap's end for the
    /// gap to be merged into them; 0 when this gap is not merged (not
    /// `Predict`, or nothing is repeated).
    pub fn merge_needs(&self) -> usize {
        if self.mode == PlcMode::Predict && self.run.is_some() {
            self.period
        } else {
            0
        }
    }

    /// Cross-fades concealed samples near a gap's end into the audio after
    /// it. `tail[i]` lies `to_end - i` samples before the gap's end (the
    /// first sample after the gap is at distance 0; `to_end` ≥
    /// `tail.len()`); `next(k)` is the `k`-th sample after the gap, for `k`
    /// below [`Concealer::merge_needs`]. The last `min(period, 5 ms)`
    /// samples of the gap move from the repetition to `next(k + period)`
    /// continued backwards (the resumed waveform one period later), by a
    /// raised cosine; the rest of `tail` is left as it is. Does nothing
    /// when `merge_needs` is 0.
    pub fn merge(&self, tail: &mut [f32], to_end: usize, next: impl Fn(usize) -> f32) {
        let p = self.merge_needs();
        if p == 0 {
            return;
        }
        let m = p.min(self.max_merge);
        for (i, x) in tail.iter_mut().enumerate() {
            let Some(j) = to_end.checked_sub(i).filter(|&j| j >= 1 && j <= m) else {
                continue;
            };
            // j = m: barely moved; j = 1, the gap's last sample: nearly
            // all the resumed waveform.
            let t = (m + 1 - j) as f32 / (m + 1) as f32;
            let w = 0.5 - 0.5 * (std::f32::consts::PI * t).cos();
            *x = (1.0 - w) * *x + w * next(p - j);
        }
    }

    /// The mode.
    pub fn mode(&self) -> PlcMode {
        self.mode
    }

    /// Samples of history [`Concealer::start`] wants (0 when off).
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Samples after the start of a gap from which it is silent.
    pub fn fade_end(&self) -> usize {
        self.fade_end
    }

    /// Whether a gap is being concealed.
    pub fn in_gap(&self) -> bool {
        self.run.is_some()
    }

    /// A gap begins: `history` writes the last [`Concealer::history_len`]
    /// samples played into its argument, oldest first (zeros where there
    /// were none); `packet` is the size of the latest packet (the stretch
    /// [`PlcMode::Repeat`] repeats). With `may_search` false, `Predict`
    /// repeats the packet as `Repeat` does, without the pitch search (the
    /// caller's time for searches is spent); returns whether it searched.
    pub fn start(
        &mut self,
        history: impl FnOnce(&mut [f32]),
        packet: usize,
        may_search: bool,
    ) -> bool {
        self.run = Some(0);
        self.phase = 0;
        self.period = 0;
        if self.mode == PlcMode::Off {
            return false;
        }
        history(&mut self.history);
        let h = &self.history;
        let n = h.len();
        match self.mode {
            PlcMode::Off => false,
            PlcMode::Repeat | PlcMode::Predict if !may_search || self.mode == PlcMode::Repeat => {
                let p = packet.clamp(1, n);
                if h[n - p..].iter().any(|&x| x != 0.0) {
                    self.cycle[..p].copy_from_slice(&h[n - p..]);
                    self.period = p;
                }
                false
            }
            PlcMode::Repeat | PlcMode::Predict => {
                let Some(p) = self.pitch() else { return true };
                let join = (p / 4).min(self.max_join);
                let h = &self.history;
                for k in 0..p {
                    let recent = h[n - p + k];
                    self.cycle[k] = if k + join < p {
                        recent
                    } else {
                        // Towards the period before, which the next
                        // repetition's first sample follows.
                        let w = (k + join + 1 - p) as f32 / (join + 1) as f32;
                        (1.0 - w) * recent + w * h[n - 2 * p + k]
                    };
                }
                self.period = p;
                true
            }
        }
    }

    /// The best pitch period of the history, `None` when it is silent.
    ///
    /// Coarse: every lag of the history decimated by [`DECIMATE`]; then,
    /// at full resolution, the lags next to the coarse period and to each
    /// of its multiples up to the longest lag (a tone's multiples of its
    /// period differ by fractions of a sample, and the one closest to a
    /// whole number of samples repeats with the least drift).
    fn pitch(&mut self) -> Option<usize> {
        let n = self.history.len();
        let max_lag = self.max_lag.min(n / 2).min(n.saturating_sub(self.window));
        if max_lag < self.min_lag || self.window < DECIMATE {
            return None;
        }
        if self.history[n - self.window..].iter().all(|&x| x == 0.0) {
            return None;
        }
        let m = n / DECIMATE;
        for (k, c) in self.coarse[..m].iter_mut().enumerate() {
            let at = n - m * DECIMATE + k * DECIMATE;
            *c = self.history[at..at + DECIMATE].iter().sum();
        }
        let coarse = &self.coarse[..m];
        let coarse_lag = best_lag(
            coarse,
            self.window / DECIMATE,
            (self.min_lag / DECIMATE).max(1)..=max_lag / DECIMATE,
        )?;
        let base = coarse_lag * DECIMATE;
        let mut best = (f32::MIN, None);
        for multiple in (base..=max_lag + DECIMATE).step_by(base) {
            let lags = multiple.saturating_sub(DECIMATE).max(self.min_lag)
                ..=(multiple + DECIMATE).min(max_lag);
            for lag in lags {
                let s = score(&self.history, self.window, lag);
                if s > best.0 {
                    best = (s, Some(lag));
                }
            }
        }
        best.1
    }

    /// Plays the next `out.len()` samples of the gap; returns how many of
    /// them were concealed (played before the gap's silence began; none
    /// when off or when the history was silent).
    pub fn fill(&mut self, out: &mut [f32]) -> usize {
        let run = self.run.get_or_insert(0);
        let start = *run;
        *run += out.len();
        if self.period == 0 || start >= self.fade_end {
            // Off, nothing to continue, or faded out: silence.
            out.fill(0.0);
            return 0;
        }
        let span = (self.fade_end - self.hold) as f32;
        for (i, o) in out.iter_mut().enumerate() {
            let k = start + i;
            let gain = if k < self.hold {
                1.0
            } else if k < self.fade_end {
                (self.fade_end - k) as f32 / span
            } else {
                0.0
            };
            *o = self.cycle[self.phase] * gain;
            self.phase += 1;
            if self.phase == self.period {
                self.phase = 0;
            }
        }
        out.len().min(self.fade_end.saturating_sub(start))
    }

    /// Received audio plays again: the next gap starts afresh.
    pub fn end(&mut self) {
        self.run = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 44_100;

    fn tone(n: usize, hz: f32, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin()).round()
            })
            .collect()
    }

    /// Conceals `gap` samples after `signal[..at]`.
    fn conceal(mode: PlcMode, signal: &[f32], at: usize, gap: usize) -> (Vec<f32>, usize) {
        let mut c = Concealer::new(mode, RATE);
        let n = c.history_len();
        c.start(|h| h.copy_from_slice(&signal[at - n..at]), 441, true);
        let mut out = vec![f32::NAN; gap];
        let mut counted = 0;
        for part in out.chunks_mut(100) {
            counted += c.fill(part);
        }
        (out, counted)
    }

    #[test]
    fn a_periodic_signal_is_continued_with_small_error() {
        let signal = tone(20_000, 440.0, 10_000.0);
        let at = 10_000;
        let (out, _) = conceal(PlcMode::Predict, &signal, at, 441);
        // The first 10 ms play at full level: compare with the real tone.
        let worst = out
            .iter()
            .zip(&signal[at..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 300.0, "worst error {worst} of 10000");
        // Another pitch, another phase.
        let signal = tone(20_000, 97.0, 8_000.0);
        let (out, _) = conceal(PlcMode::Predict, &signal, 12_345, 441);
        let worst = out
            .iter()
            .zip(&signal[12_345..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 400.0, "worst error {worst} of 8000");
    }

    #[test]
    fn a_gap_merges_into_the_audio_after_it() {
        // 440 Hz with a phase jump at the gap's end: the audio after the
        // gap is not what repetition predicts, so the join shows.
        let before = tone(10_000, 440.0, 10_000.0);
        let after: Vec<f32> = tone(12_000, 440.0, 10_000.0)[2_000 + 66..].to_vec();
        let (at, gap) = (8_000, 441);
        let mut c = Concealer::new(PlcMode::Predict, RATE);
        let n = c.history_len();
        c.start(|h| h.copy_from_slice(&before[at - n..at]), 441, true);
        let mut out = vec![0.0; gap];
        assert_eq!(c.fill(&mut out), gap);
        let plain = out.clone();
        let p = c.merge_needs();
        // A whole number of 440 Hz periods (100.2 samples each): the
        // multiple closest to whole samples.
        let periods = p as f32 / (RATE as f32 / 440.0);
        assert!((periods - periods.round()).abs() < 0.05, "{p} samples");
        // In two pieces, as two blocks would: the same result.
        let (a, b) = out.split_at_mut(300);
        c.merge(a, gap, |k| after[k]);
        c.merge(b, gap - 300, |k| after[k]);
        let m = p.min(c.max_merge);
        assert_eq!(
            out[..gap - m],
            plain[..gap - m],
            "only the last period moves"
        );
        // The step into the resumed audio: from the plain concealment's
        // last sample, and from the merged one's.
        let step = |x: &[f32]| (x[gap - 1] - after[0]).abs();
        let slope = (after[1] - after[0]).abs();
        assert!(
            step(&plain) > 3.0 * slope,
            "the phase jump shows: {}",
            step(&plain)
        );
        assert!(
            step(&out) <= 1.5 * slope + 1.0,
            "joined: {} (slope {slope})",
            step(&out)
        );
        // Nothing moves for a mode or a gap that is not merged.
        let mut r = Concealer::new(PlcMode::Repeat, RATE);
        r.start(|h| h.copy_from_slice(&before[at - n..at]), 441, true);
        assert_eq!(r.merge_needs(), 0);
        let mut same = plain.clone();
        r.merge(&mut same, gap, |k| after[k]);
        assert_eq!(same, plain);
    }

    #[test]
    fn concealment_fades_to_exact_zero_at_50_ms() {
        let signal = tone(10_000, 440.0, 10_000.0);
        for mode in [PlcMode::Predict, PlcMode::Repeat] {
            let (out, counted) = conceal(mode, &signal, 8_000, 4_410);
            assert_eq!(counted, 2_205, "{mode}");
            // Loud over the first 10 ms, quieter towards 50 ms, then silent.
            let peak =
                |r: std::ops::Range<usize>| out[r].iter().fold(0.0f32, |a, x| a.max(x.abs()));
            assert!(peak(0..441) > 9_000.0, "{mode}");
            assert!(peak(1_323..1_764) < peak(441..882), "{mode}");
            assert!(peak(1_764..2_205) < 2_600.0, "{mode}");
            assert!(out[2_205..].iter().all(|&x| x == 0.0), "{mode}");
        }
    }

    #[test]
    fn repeat_plays_the_last_packet_again() {
        let signal: Vec<f32> = (0..4_000).map(|i| (i % 1000) as f32).collect();
        let (out, _) = conceal(PlcMode::Repeat, &signal, 3_000, 441);
        assert_eq!(out[..441], signal[3_000 - 441..3_000]);
        // Predict without the search does the same.
        let mut c = Concealer::new(PlcMode::Predict, RATE);
        let n = c.history_len();
        assert!(!c.start(|h| h.copy_from_slice(&signal[3_000 - n..3_000]), 441, false));
        let mut out = vec![0.0; 441];
        c.fill(&mut out);
        assert_eq!(out[..], signal[3_000 - 441..3_000]);
    }

    #[test]
    fn off_and_silent_history_conceal_silence() {
        let signal = tone(4_000, 440.0, 10_000.0);
        let (out, counted) = conceal(PlcMode::Off, &signal, 3_000, 500);
        assert!(out.iter().all(|&x| x == 0.0));
        assert_eq!(counted, 0);
        for mode in [PlcMode::Predict, PlcMode::Repeat] {
            let (out, counted) = conceal(mode, &[0.0; 4_000], 3_000, 500);
            assert!(out.iter().all(|&x| x == 0.0));
            // Nothing to continue: silence, not counted as concealed.
            assert_eq!(counted, 0);
        }
    }

    #[test]
    fn concealment_is_deterministic_and_restarts_after_end() {
        let signal = tone(8_000, 300.0, 5_000.0);
        let a = conceal(PlcMode::Predict, &signal, 6_000, 1_000);
        let b = conceal(PlcMode::Predict, &signal, 6_000, 1_000);
        assert_eq!(a, b);
        let mut c = Concealer::new(PlcMode::Predict, RATE);
        let n = c.history_len();
        c.start(|h| h.copy_from_slice(&signal[6_000 - n..6_000]), 441, true);
        c.fill(&mut [0.0; 3_000]);
        c.end();
        assert!(!c.in_gap());
        c.start(|h| h.copy_from_slice(&signal[6_000 - n..6_000]), 441, true);
        let mut out = vec![0.0; 1_000];
        assert_eq!(c.fill(&mut out), 1_000);
        assert_eq!(out, a.0);
    }

    #[test]
    fn mode_names_round_trip() {
        for mode in [PlcMode::Off, PlcMode::Repeat, PlcMode::Predict] {
            assert_eq!(mode.to_string().parse::<PlcMode>(), Ok(mode));
        }
        assert!("loud".parse::<PlcMode>().is_err());
        assert_eq!(PlcMode::default(), PlcMode::Predict);
    }
}
