//! Packet-loss concealment of the recorder: what is recorded and played
//! in place of RTP audio that never arrived (a gap the timestamp placer
//! gave up on), with [`proto::plc`]'s algorithm, the node's, per channel.
//!
//! Received frames pass through unchanged; only the gap is filled. The
//! placer hands a gap on together with the audio after it, so a filled
//! gap is held until that audio comes and its end is cross-faded into it
//! ([`proto::plc::Concealer::merge`]), as the node does. The history is
//! the last 40 ms handed on (received or concealed), kept in a ring
//! allocated once.

use proto::plc::{Concealer, PlcMode};

/// Fills gaps of an interleaved stereo stream.
#[derive(Debug)]
pub struct GapFiller {
    channels: [Concealer; 2],
    /// The last frames handed on, interleaved, `next` the oldest.
    history: Box<[i16]>,
    next: usize,
    /// Frames of the latest received packet (what `repeat` repeats).
    last_packet: usize,
    /// The gap filled but not handed on yet (interleaved, unrounded),
    /// and how many of its frames were concealed.
    pending: Vec<f32>,
    pending_concealed: u64,
    /// Scratch for one channel of a gap.
    scratch: Vec<f32>,
}

impl GapFiller {
    /// A filler for `mode` at `rate` frames per second.
    pub fn new(mode: PlcMode, rate: u32) -> Self {
        let channels = [Concealer::new(mode, rate), Concealer::new(mode, rate)];
        let frames = channels[0].history_len();
        Self {
            channels,
            history: vec![0; 2 * frames].into_boxed_slice(),
            next: 0,
            last_packet: 0,
            pending: Vec::new(),
            pending_concealed: 0,
            scratch: Vec::new(),
        }
    }

    /// Received `frames` (interleaved stereo) are handed on: a gap before
    /// them is over. Returns that gap (interleaved), its end joined to
    /// `frames`, to be handed on first.
    pub fn on_audio(&mut self, frames: &[i16]) -> Option<Vec<i16>> {
        let gap = (!self.pending.is_empty()).then(|| {
            let n = self.pending.len() / 2;
            // Only a gap concealed to its end is joined: the frames
            // counted as concealed stay exactly the ones filled.
            let whole = self.pending_concealed == n as u64;
            for (ch, concealer) in self.channels.iter_mut().enumerate() {
                let needs = concealer.merge_needs();
                if !whole || needs == 0 || frames.len() / 2 < needs {
                    continue;
                }
                self.scratch.clear();
                self.scratch
                    .extend(self.pending.iter().skip(ch).step_by(2).copied());
                // A gap at a time, off any real-time thread: no budget.
                let mut unlimited = u32::MAX;
                concealer.merge(&mut self.scratch, n, &mut unlimited, |k| {
                    f32::from(frames[2 * k + ch])
                });
                for (o, &x) in self
                    .pending
                    .iter_mut()
                    .skip(ch)
                    .step_by(2)
                    .zip(&self.scratch)
                {
                    *o = x;
                }
            }
            self.take_pending()
        });
        for c in &mut self.channels {
            c.end();
        }
        self.last_packet = frames.len() / 2;
        self.remember(frames);
        gap
    }

    /// The gap filled and not handed on yet, as it is (no audio followed
    /// it: the stream was flushed or ends).
    pub fn take_gap(&mut self) -> Option<Vec<i16>> {
        (!self.pending.is_empty()).then(|| self.take_pending())
    }

    /// The stream ended or restarted: the next gap has no history (take
    /// a pending gap first, [`GapFiller::take_gap`]).
    pub fn reset(&mut self) {
        self.history.fill(0);
        self.pending.clear();
        self.pending_concealed = 0;
        for c in &mut self.channels {
            c.end();
        }
    }

    /// Fills `n` frames of a gap, held until the audio after it comes
    /// ([`GapFiller::on_audio`]); how many of them were concealed (the
    /// rest, beyond the fade, and everything with `off`, are silence).
    pub fn fill(&mut self, n: usize) -> u64 {
        let at = self.pending.len();
        self.pending.resize(at + 2 * n, 0.0);
        let mut concealed = 0;
        self.scratch.resize(n, 0.0);
        let len = self.history.len();
        for (ch, concealer) in self.channels.iter_mut().enumerate() {
            if !concealer.in_gap() {
                let (history, next) = (&self.history, self.next);
                concealer.start(
                    |h| {
                        for (k, x) in h.iter_mut().enumerate() {
                            *x = f32::from(history[(next + 2 * k + ch) % len]);
                        }
                    },
                    self.last_packet,
                    true,
                );
            }
            let filled = concealer.fill(&mut self.scratch) as u64;
            if ch == 0 {
                concealed = filled;
            }
            let out = &mut self.pending[at..];
            for (o, &x) in out.iter_mut().skip(ch).step_by(2).zip(&self.scratch) {
                *o = x;
            }
        }
        self.pending_concealed += concealed;
        concealed
    }

    /// The pending gap as whole samples, remembered as played.
    fn take_pending(&mut self) -> Vec<i16> {
        let out: Vec<i16> = self
            .pending
            .iter()
            .map(|x| x.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        self.pending.clear();
        self.pending_concealed = 0;
        self.remember(&out);
        out
    }

    /// Appends frames to the history ring.
    fn remember(&mut self, frames: &[i16]) {
        let len = self.history.len();
        if len == 0 {
            return;
        }
        let frames = &frames[frames.len().saturating_sub(len)..];
        for &s in frames {
            self.history[self.next] = s;
            self.next = (self.next + 1) % len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(from: usize, n: usize) -> Vec<i16> {
        (from..from + n)
            .flat_map(|i| {
                let x = (9000.0 * (i as f32 * 0.0627).sin()).round() as i16;
                [x, -x]
            })
            .collect()
    }

    #[test]
    fn a_gap_continues_both_channels_and_fades() {
        let mut f = GapFiller::new(PlcMode::Predict, 44_100);
        f.on_audio(&tone(0, 3000));
        assert_eq!(f.fill(3000), 2205);
        let gap = f.take_gap().unwrap();
        let left: Vec<i16> = gap.iter().step_by(2).copied().collect();
        let right: Vec<i16> = gap.iter().skip(1).step_by(2).copied().collect();
        assert!(left[..441].iter().any(|&x| x > 8000));
        assert!(left.iter().zip(&right).all(|(l, r)| *l == -*r));
        assert!(left[2205..].iter().all(|&x| x == 0));
        // Audio resumes; a second gap is concealed afresh.
        assert!(f.on_audio(&tone(6000, 3000)).is_none());
        assert_eq!(f.fill(441), 441);
        assert_eq!(f.on_audio(&tone(9441, 3000)).unwrap().len(), 2 * 441);
    }

    #[test]
    fn a_gap_is_held_and_joined_to_the_audio_after_it() {
        let mut f = GapFiller::new(PlcMode::Predict, 44_100);
        f.on_audio(&tone(0, 3000));
        // Two stretches of one gap, then the audio after it, out of phase
        // with what repetition predicts.
        assert_eq!(f.fill(200), 200);
        assert_eq!(f.fill(241), 241);
        let after = tone(3441 + 37, 2000);
        let gap = f
            .on_audio(&after)
            .expect("the gap, handed on with the audio");
        assert_eq!(gap.len(), 2 * 441);
        // The same gap without the join, for comparison.
        let mut g = GapFiller::new(PlcMode::Predict, 44_100);
        g.on_audio(&tone(0, 3000));
        g.fill(441);
        let plain = g.take_gap().unwrap();
        let step = |x: &[i16], ch: usize| (i32::from(x[2 * 440 + ch]) - i32::from(after[ch])).abs();
        let slope = (i32::from(after[2]) - i32::from(after[0])).abs();
        for ch in 0..2 {
            assert!(step(&plain, ch) > 3 * slope, "{}", step(&plain, ch));
            assert!(step(&gap, ch) <= 2 * slope, "{} vs {slope}", step(&gap, ch));
        }
        assert_eq!(gap[..2 * 200], plain[..2 * 200], "only the end moves");
    }

    #[test]
    fn off_and_reset_fill_silence() {
        let mut f = GapFiller::new(PlcMode::Off, 44_100);
        f.on_audio(&tone(0, 3000));
        assert_eq!(f.fill(100), 0);
        assert_eq!(f.take_gap(), Some(vec![0; 200]));
        let mut f = GapFiller::new(PlcMode::Repeat, 44_100);
        f.on_audio(&tone(0, 3000));
        f.reset();
        assert_eq!(f.fill(100), 0);
        assert_eq!(f.take_gap(), Some(vec![0; 200]));
        assert_eq!(f.take_gap(), None);
    }
}
