//! Packet-loss concealment of the recorder: what is recorded and played
//! in place of RTP audio that never arrived (a gap the timestamp placer
//! gave up on), with [`proto::plc`]'s algorithm, the node's, per channel.
//!
//! Received frames pass through unchanged; only the gap is filled. The
//! history is the last 40 ms handed on (received or concealed), kept in a
//! ring allocated once.

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
            scratch: Vec::new(),
        }
    }

    /// Received `frames` (interleaved stereo) are handed on: a gap before
    /// them is over.
    pub fn on_audio(&mut self, frames: &[i16]) {
        for c in &mut self.channels {
            c.end();
        }
        self.last_packet = frames.len() / 2;
        self.remember(frames);
    }

    /// The stream ended or restarted: the next gap has no history.
    pub fn reset(&mut self) {
        self.history.fill(0);
        for c in &mut self.channels {
            c.end();
        }
    }

    /// `n` frames of a gap, interleaved, and how many of them were
    /// concealed (the rest, beyond the fade, and everything with `off`,
    /// are silence).
    pub fn fill(&mut self, n: usize) -> (Vec<i16>, u64) {
        let mut out = vec![0i16; 2 * n];
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
            for (o, &x) in out.iter_mut().skip(ch).step_by(2).zip(&self.scratch) {
                *o = x.round().clamp(-32768.0, 32767.0) as i16;
            }
        }
        self.remember(&out);
        (out, concealed)
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
        let (gap, concealed) = f.fill(3000);
        assert_eq!(concealed, 2205);
        let left: Vec<i16> = gap.iter().step_by(2).copied().collect();
        let right: Vec<i16> = gap.iter().skip(1).step_by(2).copied().collect();
        assert!(left[..441].iter().any(|&x| x > 8000));
        assert!(left.iter().zip(&right).all(|(l, r)| *l == -*r));
        assert!(left[2205..].iter().all(|&x| x == 0));
        // Audio resumes; a second gap is concealed afresh.
        f.on_audio(&tone(6000, 3000));
        assert_eq!(f.fill(441).1, 441);
    }

    #[test]
    fn off_and_reset_fill_silence() {
        let mut f = GapFiller::new(PlcMode::Off, 44_100);
        f.on_audio(&tone(0, 3000));
        assert_eq!(f.fill(100), (vec![0; 200], 0));
        let mut f = GapFiller::new(PlcMode::Repeat, 44_100);
        f.on_audio(&tone(0, 3000));
        f.reset();
        assert_eq!(f.fill(100), (vec![0; 200], 0));
    }
}
