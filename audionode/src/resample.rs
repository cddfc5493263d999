//! Sample-rate conversion for the Opus edges, which run at 48 kHz while
//! the node mixes at its own rate: rubato's synchronous FFT resampler in
//! fixed input steps, with the remainder kept for the next call. Off the
//! mixing thread only (the Opus decode thread and the tap).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _, ResamplerConstructionError};

/// Converts interleaved 16-bit audio from one rate to another.
pub struct Resampler {
    inner: Fft<f32>,
    channels: usize,
    /// Input samples gathered until a whole step is there.
    pending: Vec<f32>,
    output: Vec<f32>,
}

impl Resampler {
    /// A resampler of `channels` from `from` Hz to `to` Hz working in steps
    /// of `step` input frames (a step that gives a whole number of output
    /// frames, e.g. 10 ms, gives exactly that many per step).
    pub fn new(
        from: u32,
        to: u32,
        step: usize,
        channels: usize,
    ) -> Result<Self, ResamplerConstructionError> {
        let inner = Fft::<f32>::new(from as usize, to as usize, step, channels, FixedSync::Input)?;
        let output = vec![0.0; inner.output_frames_max() * channels];
        Ok(Self {
            pending: Vec::with_capacity(step * channels),
            inner,
            channels,
            output,
        })
    }

    /// Forgets held input and the filter's history (a new timeline).
    pub fn reset(&mut self) {
        self.inner.reset();
        self.pending.clear();
    }

    /// Feeds interleaved `input` (16-bit, or floating point at full
    /// scale ±1.0); `emit` gets each completed step's output, interleaved.
    pub fn push<S: InputSample>(&mut self, input: &[S], mut emit: impl FnMut(&[f32])) {
        let ch = self.channels;
        let need = self.inner.input_frames_next() * ch;
        for &s in input {
            self.pending.push(s.to_f32());
            if self.pending.len() < need {
                continue;
            }
            let room = self.output.len() / ch;
            let result = match (
                InterleavedSlice::new(&self.pending[..], ch, need / ch),
                InterleavedSlice::new_mut(&mut self.output[..], ch, room),
            ) {
                (Ok(a), Ok(mut b)) => self.inner.process_into_buffer(&a, &mut b, None).ok(),
                _ => None,
            };
            self.pending.clear();
            if let Some((_, produced)) = result {
                emit(&self.output[..produced * ch]);
            }
        }
    }
}

/// A sample the resampler takes.
pub trait InputSample: Copy {
    /// The sample at full scale ±1.0.
    fn to_f32(self) -> f32;
}

impl InputSample for i16 {
    fn to_f32(self) -> f32 {
        f32::from(self) / 32768.0
    }
}

impl InputSample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
}

/// A converted sample back to 16 bits, rounded half away from zero and
/// saturated (`as` saturates). Not `f32::round`: without SSE4.1 in the
/// target that is a call into libm per sample, 2 % of the Opus decode
/// thread's time at 44.1 kHz.
pub fn to_i16(x: f32) -> i16 {
    let y = x * 32768.0;
    (y + 0.5f32.copysign(y)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_ms_steps_give_exactly_ten_ms() {
        let mut r = Resampler::new(48_000, 44_100, 480, 2).unwrap();
        let mut frames = Vec::new();
        r.push(&[100; 2 * 960], |out| frames.push(out.len() / 2));
        assert_eq!(frames, vec![441, 441]);
        let mut up = Resampler::new(44_100, 48_000, 441, 2).unwrap();
        let mut total = 0;
        // Blocks of 220 frames: steps complete across calls (6 × 220 =
        // 2 × 441 + 438 held for the next step).
        for _ in 0..6 {
            up.push(&[0; 440], |out| total += out.len() / 2);
        }
        assert_eq!(total, 960);
        assert_eq!(
            (to_i16(2.0), to_i16(-2.0), to_i16(0.5)),
            (32767, -32768, 16384)
        );
    }
}
