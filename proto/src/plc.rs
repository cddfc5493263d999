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
//! (at most 2.5 ms) from the repetition into the resumed audio continued
//! backwards by linear prediction: an order-16 predictor fitted on the
//! first 5 ms after the gap (Burg's method, so it is stable) runs back in
//! time from the gap's end, and a raised-cosine weight reaches it at the
//! gap's last sample ([`Concealer::merge`]). The gap then joins the
//! resumed audio without a step in value or slope. A prediction follows
//! the resumed audio's own spectrum rather than a period of it, so an
//! onset or noise after the gap is not copied into the gap (a period of
//! the resumed waveform, tried first, copied drum hits into it and cost
//! quality where gaps are short). Only gaps whose end is still concealed
//! (at most [`FADE_END_MS`] long) are merged, so the frames concealed stay
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
const MAX_MERGE_TENTHS_MS: u32 = 25;
/// Resumed audio the backward predictor is fitted on, in tenths of a ms.
const MERGE_FIT_TENTHS_MS: u32 = 50;
/// Order of the backward predictor.
const MERGE_ORDER: usize = 16;

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

/// The coefficients `a` of the order-[`MERGE_ORDER`] linear predictor of
/// `x` run backwards in time (`x[n] ≈ Σ a[k]·x[n + 1 + k]`), by Burg's
/// method in f64. Burg's predictor is the same forwards and backwards and always stable
/// (every reflection coefficient within ±1), so the backward recursion
/// never grows; unlike the autocorrelation method it needs no window, so
/// on a few ms of a tone it keeps the tone's level instead of decaying
/// within a millisecond. `scratch` holds at least `2 × x.len()` values.
/// `None` for silence.
fn backward_predictor(x: &[f32], scratch: &mut [f64]) -> Option<[f32; MERGE_ORDER]> {
    let n = x.len();
    let (f, rest) = scratch.split_at_mut(n);
    let b = &mut rest[..n];
    for ((f, b), &x) in f.iter_mut().zip(b.iter_mut()).zip(x) {
        *f = f64::from(x);
        *b = f64::from(x);
    }
    let power: f64 = f.iter().map(|v| v * v).sum();
    if power <= 0.0 {
        return None;
    }
    // The prediction-error filter 1 + Σ c[i]·z^-i.
    let mut c = [0.0f64; MERGE_ORDER + 1];
    c[0] = 1.0;
    for m in 1..=MERGE_ORDER {
        let (mut num, mut den) = (0.0, 0.0);
        for t in m..n {
            num += f[t] * b[t - 1];
            den += f[t] * f[t] + b[t - 1] * b[t - 1];
        }
        if den <= 0.0 {
            break;
        }
        let k = -2.0 * num / den;
        let prev = c;
        for i in 1..=m {
            c[i] = prev[i] + k * prev[m - i];
        }
        // Descending, so b[t - 1] is still the previous order's.
        for t in (m..n).rev() {
            let (ft, bt) = (f[t], b[t - 1]);
            f[t] = ft + k * bt;
            b[t] = bt + k * ft;
        }
    }
    let mut a = [0.0f32; MERGE_ORDER];
    for (a, &c) in a.iter_mut().zip(&c[1..]) {
        *a = -c as f32;
    }
    Some(a)
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
    /// Scratch for [`Concealer::merge`]: the resumed audio it fits on,
    /// then the backward prediction (`max_merge` samples before the
    /// gap's end, then the first [`MERGE_ORDER`] after it).
    merge_fit: Box<[f32]>,
    merge_back: Box<[f32]>,
    /// Scratch for Burg's recursion: forward and backward errors.
    merge_burg: Box<[f64]>,
    merge: Merge,
}

/// Whether the current gap's end is cross-faded into the audio after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// Not decided: no piece of the cross-fade has been played yet.
    Open,
    Merging,
    /// Its first piece was played without the audio after the gap.
    Declined,
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
        let max_merge = samples(rate, MAX_MERGE_TENTHS_MS);
        let (merge_fit, merge_back) = if mode == PlcMode::Predict {
            (
                samples(rate, MERGE_FIT_TENTHS_MS).max(MERGE_ORDER + 1),
                max_merge + MERGE_ORDER,
            )
        } else {
            (0, 0)
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
            max_merge,
            merge_fit: vec![0.0; merge_fit].into_boxed_slice(),
            merge_back: vec![0.0; merge_back].into_boxed_slice(),
            merge_burg: vec![0.0; 2 * merge_fit].into_boxed_slice(),
            merge: Merge::Open,
        }
    }

    /// How many samples of resumed audio [`Concealer::merge`] reads (the
    /// first 5 ms after the gap), and so how many must be there after a
    /// gap's end for the gap to be merged into them; 0 when this gap is
    /// not merged (not `Predict`, or nothing is repeated).
    pub fn merge_needs(&self) -> usize {
        if self.mode == PlcMode::Predict && self.run.is_some() && self.period > 0 {
            self.merge_fit.len()
        } else {
            0
        }
    }

    /// Cross-fades concealed samples near a gap's end into the audio after
    /// it. `tail[i]` lies `to_end - i` samples before the gap's end (the
    /// first sample after the gap is at distance 0; `to_end` ≥
    /// `tail.len()`); `next(k)` is the `k`-th sample after the gap, for `k`
    /// below [`Concealer::merge_needs`]. The last `min(gap, 2.5 ms)` samples
    /// of the gap move from the repetition to the resumed audio predicted
    /// backwards, by a raised cosine; the rest of `tail` is left as it is.
    ///
    /// The piece of the gap that holds the cross-fade's first sample
    /// decides: it fits the predictor (taking one of `fits`, the caller's
    /// budget, or declining when it is spent) and later pieces of the same
    /// gap reuse that prediction, so a gap in several pieces gets the
    /// result it would get whole. If that piece was played without the
    /// audio after the gap (no call), later pieces are not merged either:
    /// half a fade would be a step. Does nothing when `merge_needs` is 0.
    pub fn merge(
        &mut self,
        tail: &mut [f32],
        to_end: usize,
        fits: &mut u32,
        next: impl Fn(usize) -> f32,
    ) {
        if self.merge_needs() == 0 || self.merge == Merge::Declined {
            return;
        }
        let gap = self.run.unwrap_or(0) + to_end - tail.len();
        let m = self.max_merge.min(gap);
        if m == 0 || to_end - tail.len() >= m {
            return; // this piece ends before the cross-fade begins
        }
        if self.merge == Merge::Open {
            self.merge = if to_end >= m && *fits > 0 && self.predict_back(m, next) {
                *fits -= 1;
                Merge::Merging
            } else {
                Merge::Declined
            };
        }
        if self.merge == Merge::Declined {
            return;
        }
        let back = &self.merge_back;
        for (i, x) in tail.iter_mut().enumerate() {
            let Some(j) = to_end.checked_sub(i).filter(|&j| j >= 1 && j <= m) else {
                continue;
            };
            // j = m: barely moved; j = 1, the gap's last sample: nearly
            // all the prediction.
            let t = (m + 1 - j) as f32 / (m + 1) as f32;
            let w = 0.5 - 0.5 * (std::f32::consts::PI * t).cos();
            *x = (1.0 - w) * *x + w * back[m - j];
        }
    }

    /// Fits the backward predictor on the resumed audio (`next`) and runs
    /// it `m` samples back from the gap's end into `merge_back` (`[m - j]`:
    /// `j` samples before the end; `[m..]`: the resumed audio it starts
    /// from). False when the resumed audio is silent.
    fn predict_back(&mut self, m: usize, next: impl Fn(usize) -> f32) -> bool {
        for (k, f) in self.merge_fit.iter_mut().enumerate() {
            *f = next(k);
        }
        let Some(a) = backward_predictor(&self.merge_fit, &mut self.merge_burg) else {
            return false;
        };
        let back = &mut self.merge_back[..m + MERGE_ORDER];
        back[m..].copy_from_slice(&self.merge_fit[..MERGE_ORDER]);
        for i in (0..m).rev() {
            back[i] = (0..MERGE_ORDER).map(|k| a[k] * back[i + 1 + k]).sum();
        }
        true
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
        self.merge = Merge::Open;
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
        // 440 Hz with a phase jump of about 160° at the gap's end: the
        // audio after the gap is not what repetition predicts, so the join
        // shows.
        let before = tone(10_000, 440.0, 10_000.0);
        let shifted = tone(12_000, 440.0, 10_000.0);
        let after: Vec<f32> = shifted[2_072..].to_vec();
        let (at, gap) = (8_000, 441);
        let conceal = || {
            let mut c = Concealer::new(PlcMode::Predict, RATE);
            let n = c.history_len();
            c.start(|h| h.copy_from_slice(&before[at - n..at]), 441, true);
            let mut out = vec![0.0; gap];
            assert_eq!(c.fill(&mut out), gap);
            (c, out)
        };
        let (mut c, mut out) = conceal();
        let plain = out.clone();
        assert_eq!(c.merge_needs(), 220, "5 ms of the audio after the gap");
        // In two pieces, as two blocks would, split inside the fade.
        let m = c.max_merge;
        let (a, b) = out.split_at_mut(gap - m / 2);
        let mut fits = 1;
        c.merge(a, gap, &mut fits, |k| after[k]);
        c.merge(b, m / 2, &mut fits, |k| after[k]);
        assert_eq!(fits, 0, "one fit for the gap");
        assert_eq!(
            out[..gap - m],
            plain[..gap - m],
            "only the last 2.5 ms move"
        );
        // The gap's last sample against the resumed tone's own sample
        // before it: far off by repetition, close once merged.
        let miss = |x: &[f32]| (x[gap - 1] - shifted[2_071]).abs();
        let slope = (after[1] - after[0]).abs();
        assert!(
            miss(&plain) > 10.0 * slope,
            "the jump shows: {}",
            miss(&plain)
        );
        assert!(
            miss(&out) <= 0.2 * slope,
            "joined: {} off (slope {slope})",
            miss(&out)
        );
        // No kink either: the second difference across the join is within
        // a few times the tone's own (ω² × amplitude ≈ 35 here; what is
        // left of the 18 000 jump two samples before the end adds the
        // rest), far from the plain concealment's.
        let curve = |x: &[f32]| ((after[0] - x[gap - 1]) - (x[gap - 1] - x[gap - 2])).abs();
        assert!(curve(&plain) > 10.0 * slope, "kink: {}", curve(&plain));
        assert!(curve(&out) < 0.5 * slope, "kink: {}", curve(&out));
        // The piece holding the fade's start went by without the audio
        // after the gap: the rest of the gap is not merged either.
        let (mut late, mut out) = conceal();
        let (_, b) = out.split_at_mut(gap - m / 2);
        late.merge(b, m / 2, &mut 1, |k| after[k]);
        assert_eq!(out, plain, "half a fade would be a step");
        // Nor when the caller's budget for fits is spent.
        let (mut spent, mut out) = conceal();
        spent.merge(&mut out, gap, &mut 0, |k| after[k]);
        assert_eq!(out, plain, "no fit left");
        // Nothing moves for a mode that does not merge, or for silence.
        let mut r = Concealer::new(PlcMode::Repeat, RATE);
        let n = r.history_len();
        r.start(|h| h.copy_from_slice(&before[..n]), 441, true);
        assert_eq!(r.merge_needs(), 0);
        let mut same = plain.clone();
        r.merge(&mut same, gap, &mut 1, |k| after[k]);
        assert_eq!(same, plain);
        let (mut c, mut out) = conceal();
        c.merge(&mut out, gap, &mut 1, |_| 0.0);
        assert_eq!(out, plain, "nothing to predict from silence");
    }

    #[test]
    fn the_backward_predictor_continues_a_tone_back_in_time() {
        // Fitted on 5 ms of a 440 Hz tone, run backwards for 1 ms: the
        // tone as it was, within a few units of 10 000.
        let x = tone(2_000, 440.0, 10_000.0);
        let mut scratch = [0.0; 440];
        let a = backward_predictor(&x[1_000..1_220], &mut scratch).unwrap();
        let mut back = x[1_000..1_000 + MERGE_ORDER].to_vec();
        for _ in 0..44 {
            let next: f32 = (0..MERGE_ORDER).map(|k| a[k] * back[k]).sum();
            back.insert(0, next);
        }
        let worst = (0..44)
            .map(|j| (back[43 - j] - x[999 - j]).abs())
            .fold(0.0, f32::max);
        assert!(worst < 200.0, "worst error {worst} of 10 000");
        assert!(backward_predictor(&[0.0; 220], &mut scratch).is_none());
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
