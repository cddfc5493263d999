//! The mixing path's per-sample loops, compiled twice: for baseline x86-64
//! (SSE2, four f32 lanes) and for AVX2 (eight), the second chosen at run
//! time when the CPU has it (see [`proto::simd`]).
//!
//! These loops run once per source per block (a ring's samples converted
//! to f32 with their peak; a block scaled into the stereo accumulators), so
//! at a thousand sources they are most of the mixing thread's
//! instructions. Both builds perform the same IEEE operations in the same
//! order (multiplies and adds, never fused), so the mix is bit-identical
//! whichever runs.

use proto::with_avx2;

with_avx2!(
    /// A ring's run as f32 sample values into `out`; returns its peak
    /// magnitude (0..=32768).
    pub(crate) fn convert(run: &[i16], out: &mut [f32]) -> u32 = convert_body
);
with_avx2!(
    /// `left += input × gl`, `right += input × gr`.
    pub(crate) fn pan_add(left: &mut [f32], right: &mut [f32], input: &[f32], gl: f32, gr: f32) -> () = pan_add_body
);
with_avx2!(
    /// [`pan_add`] with the gains moving along `ramp`.
    pub(crate) fn pan_add_ramp(left: &mut [f32], right: &mut [f32], input: &[f32], ramp: Ramp<'_>) -> () = pan_add_ramp_body
);
with_avx2!(
    /// `acc += input × gain`.
    pub(crate) fn scale_add(acc: &mut [f32], input: &[f32], gain: f32) -> () = scale_add_body
);
with_avx2!(
    /// `acc += input × (from + step × steps[i])`.
    pub(crate) fn scale_add_ramp(acc: &mut [f32], input: &[f32], from: f32, step: f32, steps: &[f32]) -> () = scale_add_ramp_body
);

/// A gain ramp across one block on both sides: frame `i`'s gain is
/// `from + step × steps[i]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ramp<'a> {
    /// Gains before the first frame (left, right).
    pub(crate) from: (f32, f32),
    /// Gain change per frame (left, right).
    pub(crate) step: (f32, f32),
    /// 1.0, 2.0, …: each frame's index along the ramp.
    pub(crate) steps: &'a [f32],
}

/// `run` into `out` as f32 sample values; returns the peak magnitude
/// (0..=32768). The peak is kept as the 16-bit maximum and minimum, not as
/// a running `u32` of magnitudes: 16-bit max/min exist in every x86-64
/// vector unit, 32-bit unsigned max only from SSE4.1, and without them the
/// loop ran a sample at a time.
#[inline(always)]
fn convert_body(run: &[i16], out: &mut [f32]) -> u32 {
    let (mut hi, mut lo) = (0i16, 0i16);
    for (o, &s) in out.iter_mut().zip(run) {
        *o = f32::from(s);
        hi = hi.max(s);
        lo = lo.min(s);
    }
    i32::from(hi).max(-i32::from(lo)) as u32
}

#[inline(always)]
fn pan_add_body(left: &mut [f32], right: &mut [f32], input: &[f32], gl: f32, gr: f32) {
    let n = left.len().min(right.len()).min(input.len());
    let (left, right, input) = (&mut left[..n], &mut right[..n], &input[..n]);
    for ((l, r), &x) in left.iter_mut().zip(right.iter_mut()).zip(input) {
        *l += x * gl;
        *r += x * gr;
    }
}

#[inline(always)]
fn pan_add_ramp_body(left: &mut [f32], right: &mut [f32], input: &[f32], ramp: Ramp<'_>) {
    let n = left
        .len()
        .min(right.len())
        .min(input.len())
        .min(ramp.steps.len());
    let (left, right, input) = (&mut left[..n], &mut right[..n], &input[..n]);
    let ((fl, fr), (dl, dr)) = (ramp.from, ramp.step);
    for (((l, r), &x), &k) in left
        .iter_mut()
        .zip(right.iter_mut())
        .zip(input)
        .zip(ramp.steps)
    {
        *l += x * (fl + dl * k);
        *r += x * (fr + dr * k);
    }
}

#[inline(always)]
fn scale_add_body(acc: &mut [f32], input: &[f32], gain: f32) {
    for (a, &x) in acc.iter_mut().zip(input) {
        *a += x * gain;
    }
}

#[inline(always)]
fn scale_add_ramp_body(acc: &mut [f32], input: &[f32], from: f32, step: f32, steps: &[f32]) {
    for ((a, &x), &k) in acc.iter_mut().zip(input).zip(steps) {
        *a += x * (from + step * k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_reports_the_largest_magnitude_either_side() {
        let run: Vec<i16> = (0..37).map(|i| (i * 100 - 1800) as i16).collect();
        let mut out = vec![0.0; run.len()];
        assert_eq!(convert(&run, &mut out), 1800);
        assert!(out.iter().zip(&run).all(|(&o, &s)| o == f32::from(s)));
        assert_eq!(convert(&[i16::MIN, 5], &mut [0.0; 2]), 32768);
        assert_eq!(convert(&[], &mut []), 0);
    }

    #[test]
    fn both_builds_agree_bit_for_bit() {
        // Whatever the CPU, the baseline bodies and the dispatched calls
        // give identical results (same operations, same order).
        let input: Vec<f32> = (0..223).map(|i| (i as f32 * 0.37).sin() * 9000.0).collect();
        let steps: Vec<f32> = (1..=223).map(|k| k as f32).collect();
        let ramp = Ramp {
            from: (0.9, 0.2),
            step: (-0.003, 0.001),
            steps: &steps,
        };
        let (mut l1, mut r1) = (vec![1.5; 223], vec![-2.5; 223]);
        let (mut l2, mut r2) = (l1.clone(), r1.clone());
        pan_add(&mut l1, &mut r1, &input, 0.7, 0.3);
        pan_add_body(&mut l2, &mut r2, &input, 0.7, 0.3);
        pan_add_ramp(&mut l1, &mut r1, &input, ramp);
        pan_add_ramp_body(&mut l2, &mut r2, &input, ramp);
        scale_add(&mut l1, &input, 0.4);
        scale_add_body(&mut l2, &input, 0.4);
        scale_add_ramp(&mut r1, &input, 0.1, 0.002, &steps);
        scale_add_ramp_body(&mut r2, &input, 0.1, 0.002, &steps);
        assert_eq!(l1, l2);
        assert_eq!(r1, r2);
    }
}
