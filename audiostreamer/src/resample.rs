//! Streaming mono sample-rate conversion with rubato's sinc resampler.
//!
//! rubato works on fixed input blocks and delays its output by half the
//! filter length. [`StreamResampler`] hides both: callers push any number of
//! frames, the start-up delay is trimmed so output sample 0 lines up with
//! input sample 0, and [`StreamResampler::finish`] flushes the tail so a
//! finite input of `n` frames yields exactly `ceil(n × out_rate / in_rate)`
//! frames. Buffers are allocated once, in `new`.

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Indexing, Resampler, ResamplerConstructionError,
    SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

/// Converts a mono stream from one sample rate to another.
pub struct StreamResampler {
    inner: Async<f32>,
    in_rate: u32,
    out_rate: u32,
    /// Input gathered until a full block is there.
    block: Vec<f32>,
    block_len: usize,
    scratch: Vec<f32>,
    /// Output frames still to drop to cancel the filter delay.
    delay_left: usize,
    frames_in: u64,
    frames_out: u64,
}

/// Frames that output length `ceil(frames_in × out_rate / in_rate)` for a finite input.
pub fn resampled_len(frames_in: u64, in_rate: u32, out_rate: u32) -> u64 {
    let num = u128::from(frames_in) * u128::from(out_rate);
    num.div_ceil(u128::from(in_rate.max(1))) as u64
}

impl StreamResampler {
    /// A resampler from `in_rate` to `out_rate` that processes input in
    /// blocks of `block_frames` (smaller blocks: less latency, more calls).
    pub fn new(
        in_rate: u32,
        out_rate: u32,
        block_frames: usize,
    ) -> Result<Self, ResamplerConstructionError> {
        let params = SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2)
            .oversampling_factor(256)
            .interpolation(SincInterpolationType::Linear);
        let ratio = f64::from(out_rate) / f64::from(in_rate);
        let inner =
            Async::<f32>::new_sinc(ratio, 1.0, &params, block_frames, 1, FixedAsync::Input)?;
        let block = vec![0.0; inner.input_frames_max()];
        let scratch = vec![0.0; inner.output_frames_max()];
        let delay_left = inner.output_delay();
        Ok(Self {
            inner,
            in_rate,
            out_rate,
            block,
            block_len: 0,
            scratch,
            delay_left,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Input frames per processing block.
    pub fn block_frames(&self) -> usize {
        self.inner.input_frames_next()
    }

    /// Feeds `input`; every completed block's output is appended to `out`.
    pub fn push(&mut self, mut input: &[f32], out: &mut VecDeque<f32>) {
        self.frames_in += input.len() as u64;
        while !input.is_empty() {
            let need = self.inner.input_frames_next();
            let take = (need - self.block_len).min(input.len());
            self.block[self.block_len..self.block_len + take].copy_from_slice(&input[..take]);
            self.block_len += take;
            input = &input[take..];
            if self.block_len == need {
                self.process(None, None, out);
                self.block_len = 0;
            }
        }
    }

    /// Ends a finite stream: flushes the partial block and the filter tail so
    /// that the total output is exactly [`resampled_len`] of the input. The
    /// resampler is then reset for a new stream.
    pub fn finish(&mut self, out: &mut VecDeque<f32>) {
        let total = resampled_len(self.frames_in, self.in_rate, self.out_rate);
        let mut partial = Some(self.block_len);
        // Each call produces at least one block of output, so this ends.
        while self.frames_out < total {
            self.process(partial, Some(total), out);
            partial = Some(0); // then only silence, to push the tail out
        }
        self.reset();
    }

    /// Forgets all state (buffered input, filter history, counters).
    pub fn reset(&mut self) {
        self.inner.reset();
        self.block_len = 0;
        self.delay_left = self.inner.output_delay();
        self.frames_in = 0;
        self.frames_out = 0;
    }

    fn process(&mut self, partial: Option<usize>, limit: Option<u64>, out: &mut VecDeque<f32>) {
        let frames_in = self.block.len();
        let frames_out = self.scratch.len();
        // The adapters cannot fail: the buffers were sized from the resampler's maxima.
        let input = InterleavedSlice::new(&self.block[..], 1, frames_in).expect("input block size");
        let mut output =
            InterleavedSlice::new_mut(&mut self.scratch[..], 1, frames_out).expect("output size");
        let indexing = Indexing {
            partial_len: partial,
            ..Indexing::default()
        };
        let (_, produced) = self
            .inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .expect("buffers sized from the resampler's own maxima");
        for &x in &self.scratch[..produced] {
            if self.delay_left > 0 {
                self.delay_left -= 1;
            } else if limit.is_none_or(|l| self.frames_out < l) {
                out.push_back(x);
                self.frames_out += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    fn sine(rate: u32, freq: f64, amp: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (amp * (TAU * freq * i as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    fn run_in_pieces(r: &mut StreamResampler, input: &[f32], piece: usize) -> Vec<f32> {
        let mut out = VecDeque::new();
        for part in input.chunks(piece) {
            r.push(part, &mut out);
        }
        r.finish(&mut out);
        out.into()
    }

    #[test]
    fn exact_output_length() {
        assert_eq!(resampled_len(48_000, 48_000, 44_100), 44_100);
        assert_eq!(resampled_len(1, 48_000, 44_100), 1);
        assert_eq!(resampled_len(481, 48_000, 44_100), 442); // 441.92 → 442
        let mut r = StreamResampler::new(48_000, 44_100, 1024).unwrap();
        for n in [1usize, 100, 1024, 5000] {
            let out = run_in_pieces(&mut r, &vec![0.0; n], 333);
            assert_eq!(
                out.len() as u64,
                resampled_len(n as u64, 48_000, 44_100),
                "n={n}"
            );
        }
    }

    #[test]
    fn sine_keeps_frequency_amplitude_and_phase() {
        let (fin, fout, f, amp) = (48_000, 44_100, 1000.0, 10_000.0);
        let input = sine(fin, f, amp, 48_000);
        let mut r = StreamResampler::new(fin, fout, 1024).unwrap();
        let out = run_in_pieces(&mut r, &input, 777);
        assert_eq!(out.len(), 44_100);
        let mid = &out[1000..43_000];
        // Amplitude: RMS of a sine is amp/√2; within 1 %.
        let rms =
            (mid.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
        assert!((rms / (amp / 2f64.sqrt()) - 1.0).abs() < 0.01, "rms {rms}");
        // Frequency: rising zero crossings over 42 000 samples (952.4 ms) → 952 ± 1.
        let crossings = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!((951..=953).contains(&crossings), "{crossings} crossings");
        // Phase: the start-up delay is trimmed to within a fraction of a sample
        // (rubato reports it in whole samples); 1 kHz moves ≤ 1425 per sample.
        let ideal = sine(fout, f, amp, out.len());
        let worst = mid
            .iter()
            .zip(&ideal[1000..43_000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 0.5 * 1425.0, "worst deviation {worst}");
    }

    #[test]
    fn reset_between_streams_gives_same_output() {
        let input = sine(22_050, 440.0, 5000.0, 3000);
        let mut r = StreamResampler::new(22_050, 44_100, 256).unwrap();
        let a = run_in_pieces(&mut r, &input, 1000);
        let b = run_in_pieces(&mut r, &input, 17);
        assert_eq!(a.len(), 6000);
        assert_eq!(a, b);
    }
}
