//! The mixer: sums planar f32 source blocks into left/right accumulators
//! with per-source stereo gains (ramped over one block), then rounds and
//! saturates to interleaved i16, counting clipped samples.
//!
//! Balance follows the Jamulus law: b in [−1, 1]; centre leaves both
//! channels at full gain; b < 0 scales the right channel by 1 + b; b > 0
//! scales the left by 1 − b.

use super::kernels::{self, Ramp};

/// Gains applied to one source's samples on the left and right channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StereoGain {
    /// Left channel gain.
    pub left: f32,
    /// Right channel gain.
    pub right: f32,
}

impl StereoGain {
    /// Full gain on both channels.
    pub const UNITY: StereoGain = StereoGain {
        left: 1.0,
        right: 1.0,
    };
    /// Silence.
    pub const SILENT: StereoGain = StereoGain {
        left: 0.0,
        right: 0.0,
    };

    /// `volume × master` through the balance law.
    pub fn from_controls(volume: f32, balance: f32, master: f32) -> Self {
        let g = volume * master;
        let b = balance.clamp(-1.0, 1.0);
        StereoGain {
            left: if b > 0.0 { g * (1.0 - b) } else { g },
            right: if b < 0.0 { g * (1.0 + b) } else { g },
        }
    }
}

/// Accumulates one block at a time; buffers are allocated once.
#[derive(Debug, Clone)]
pub struct Mixer {
    left: Vec<f32>,
    right: Vec<f32>,
    /// 1.0, 2.0, …: each frame's step along a gain ramp, as f32 once and
    /// for all (converting the index per sample kept the ramp loop 4×
    /// slower than the constant-gain one).
    ramp_steps: Vec<f32>,
    frames: usize,
}

impl Mixer {
    /// A mixer for blocks of up to `max_frames` frames.
    pub fn new(max_frames: usize) -> Self {
        Self {
            left: vec![0.0; max_frames],
            right: vec![0.0; max_frames],
            ramp_steps: (1..=max_frames).map(|k| k as f32).collect(),
            frames: max_frames,
        }
    }

    /// Starts a block of `frames` frames (at most the size given to `new`).
    pub fn begin(&mut self, frames: usize) {
        self.frames = frames.min(self.left.len());
        self.left[..self.frames].fill(0.0);
        self.right[..self.frames].fill(0.0);
    }

    /// Adds one source's block, its gain moving linearly from `from` at the
    /// start of the block to `to` at its end (no zipper noise).
    pub fn add(&mut self, input: &[f32], from: StereoGain, to: StereoGain) {
        let n = self.frames.min(input.len());
        let (left, right, input) = (&mut self.left[..n], &mut self.right[..n], &input[..n]);
        if from == to {
            kernels::pan_add(left, right, input, to.left, to.right);
        } else {
            let step = 1.0 / n as f32;
            let ramp = Ramp {
                from: (from.left, from.right),
                step: ((to.left - from.left) * step, (to.right - from.right) * step),
                steps: &self.ramp_steps[..n],
            };
            kernels::pan_add_ramp(left, right, input, ramp);
        }
    }

    /// Adds a stereo source's block (`left`, `right` planar), each channel
    /// scaled by its side's gain, ramped like [`Mixer::add`]: volume scales
    /// both channels and balance acts as a stereo balance.
    pub fn add_stereo(
        &mut self,
        left_in: &[f32],
        right_in: &[f32],
        from: StereoGain,
        to: StereoGain,
    ) {
        let n = self.frames.min(left_in.len()).min(right_in.len());
        let (left, right) = (&mut self.left[..n], &mut self.right[..n]);
        let (left_in, right_in) = (&left_in[..n], &right_in[..n]);
        if from == to {
            kernels::scale_add(left, left_in, to.left);
            kernels::scale_add(right, right_in, to.right);
        } else {
            let step = 1.0 / n as f32;
            let steps = &self.ramp_steps[..n];
            let dl = (to.left - from.left) * step;
            let dr = (to.right - from.right) * step;
            kernels::scale_add_ramp(left, left_in, from.left, dl, steps);
            kernels::scale_add_ramp(right, right_in, from.right, dr, steps);
        }
    }

    /// Writes the block as interleaved i16 into `out` (2 × frames samples),
    /// rounding and saturating; returns how many samples clipped and the
    /// block's peaks, in the same pass.
    pub fn render(&self, out: &mut [i16]) -> Rendered {
        let mut rendered = Rendered::default();
        let frames = self.frames;
        for ((o, &l), &r) in out
            .chunks_exact_mut(2)
            .zip(&self.left[..frames])
            .zip(&self.right[..frames])
        {
            let (l, cl) = saturate(l);
            let (r, cr) = saturate(r);
            o[0] = l;
            o[1] = r;
            rendered.clipped += u64::from(cl) + u64::from(cr);
            rendered.peak_left = rendered.peak_left.max(i32::from(l).unsigned_abs());
            rendered.peak_right = rendered.peak_right.max(i32::from(r).unsigned_abs());
        }
        rendered
    }
}

/// What rendering one block produced besides the samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Samples that saturated at the i16 range.
    pub clipped: u64,
    /// Largest |sample| on the left channel (32768 at most).
    pub peak_left: u32,
    /// Largest |sample| on the right channel.
    pub peak_right: u32,
}

/// Rounds to the nearest integer and clamps to i16, reporting clipping.
fn saturate(x: f32) -> (i16, bool) {
    let r = x.round();
    if r > f32::from(i16::MAX) {
        (i16::MAX, true)
    } else if r < f32::from(i16::MIN) {
        (i16::MIN, true)
    } else {
        (r as i16, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(sources: &[(&[f32], StereoGain)]) -> (Vec<i16>, u64) {
        let frames = sources[0].0.len();
        let mut m = Mixer::new(frames);
        m.begin(frames);
        for &(x, g) in sources {
            m.add(x, g, g);
        }
        let mut out = vec![0; 2 * frames];
        let clipped = m.render(&mut out).clipped;
        (out, clipped)
    }

    #[test]
    fn balance_law() {
        let centre = StereoGain::from_controls(1.0, 0.0, 1.0);
        assert_eq!(centre, StereoGain::UNITY);
        let left = StereoGain::from_controls(0.5, -0.25, 1.0);
        assert_eq!(
            left,
            StereoGain {
                left: 0.5,
                right: 0.375
            }
        );
        let right = StereoGain::from_controls(1.0, 1.0, 0.5);
        assert_eq!(
            right,
            StereoGain {
                left: 0.0,
                right: 0.5
            }
        );
    }

    #[test]
    fn unity_single_source_is_bit_exact() {
        let x: Vec<f32> = [i16::MIN, -1, 0, 1, 12345, i16::MAX]
            .iter()
            .map(|&s| f32::from(s))
            .collect();
        let (out, clipped) = mix(&[(&x, StereoGain::UNITY)]);
        assert_eq!(
            out,
            vec![
                i16::MIN,
                i16::MIN,
                -1,
                -1,
                0,
                0,
                1,
                1,
                12345,
                12345,
                i16::MAX,
                i16::MAX
            ]
        );
        assert_eq!(clipped, 0);
    }

    #[test]
    fn gains_round_and_saturate() {
        let a = [1000.0f32, 30000.0, -30000.0, 3.0];
        let b = [1000.0f32, 30000.0, -30000.0, 0.0];
        let half_left = StereoGain::from_controls(1.0, 0.5, 1.0); // left 0.5, right 1
        let (out, clipped) = mix(&[(&a, half_left), (&b, StereoGain::UNITY)]);
        assert_eq!(
            out,
            vec![
                1500, 2000, // 500 + 1000, 1000 + 1000
                32767, 32767, // 15000 + 30000 clips, 60000 clips
                -32768, -32768, // and negative
                2, 3, // 1.5 rounds away from zero to 2
            ]
        );
        assert_eq!(clipped, 4);
    }

    #[test]
    fn stereo_sources_keep_their_channels() {
        let (l, r) = ([100.0f32, -200.0], [7.0f32, 8.0]);
        let mut m = Mixer::new(2);
        m.begin(2);
        let g = StereoGain::from_controls(1.0, 0.5, 1.0); // left 0.5, right 1
        m.add_stereo(&l, &r, g, g);
        let mut out = [0i16; 4];
        m.render(&mut out);
        assert_eq!(out, [50, 7, -100, 8]);
    }

    #[test]
    fn gain_ramps_over_one_block() {
        let x = [1000.0f32; 4];
        let mut m = Mixer::new(4);
        m.begin(4);
        m.add(&x, StereoGain::UNITY, StereoGain::SILENT);
        let mut out = [0i16; 8];
        m.render(&mut out);
        assert_eq!(out, [750, 750, 500, 500, 250, 250, 0, 0]);
    }
}
