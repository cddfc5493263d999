//! Sample-rate conversion of the stereo stream on the network side, used
//! when the output device cannot run at the stream's rate.
//!
//! Wraps rubato's synchronous FFT resampler with a fixed input chunk: frames
//! are collected until a chunk is full, converted, and handed out. All
//! buffers are allocated once, in [`StereoResampler::new`].

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Input frames per conversion step (about 5 ms at 48 kHz: small latency).
const CHUNK_FRAMES: usize = 256;

/// Converts interleaved stereo f32 from one rate to another.
pub struct StereoResampler {
    inner: Fft<f32>,
    pending: Vec<f32>,
    output: Vec<f32>,
    from: u32,
    to: u32,
}

impl StereoResampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> anyhow::Result<Self> {
        let inner = Fft::<f32>::new(
            from as usize,
            to as usize,
            CHUNK_FRAMES,
            2,
            FixedSync::Input,
        )
        .map_err(|e| anyhow::anyhow!("cannot resample {from} Hz to {to} Hz: {e}"))?;
        let output = vec![0.0; inner.output_frames_max() * 2];
        Ok(Self {
            pending: Vec::with_capacity(inner.input_frames_max() * 2),
            inner,
            output,
            from,
            to,
        })
    }

    /// The input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Feeds interleaved stereo frames; `emit` receives converted interleaved
    /// stereo frames as whole chunks become available.
    pub fn process(&mut self, mut input: &[f32], mut emit: impl FnMut(&[f32])) {
        while !input.is_empty() {
            let need = self.inner.input_frames_next() * 2;
            let take = (need - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < need {
                return;
            }
            let frames_in = need / 2;
            let frames_out_cap = self.output.len() / 2;
            let result = match (
                InterleavedSlice::new(&self.pending[..], 2, frames_in),
                InterleavedSlice::new_mut(&mut self.output[..], 2, frames_out_cap),
            ) {
                (Ok(a), Ok(mut b)) => self.inner.process_into_buffer(&a, &mut b, None),
                _ => {
                    self.pending.clear();
                    return;
                }
            };
            self.pending.clear();
            if let Ok((_, produced)) = result {
                emit(&self.output[..produced * 2]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_rate_and_keeps_a_sine_a_sine() {
        let mut r = StereoResampler::new(44_100, 48_000).unwrap();
        let input: Vec<f32> = (0..44_100)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * 441.0 * i as f32 / 44_100.0).sin() * 0.5;
                [v, -v]
            })
            .collect();
        let mut out = Vec::new();
        for piece in input.chunks(2 * 100) {
            r.process(piece, |o| out.extend_from_slice(o));
        }
        let frames = out.len() / 2;
        // All but the last partial chunk comes out, scaled by 48000/44100.
        assert!((47_500..=48_000).contains(&frames), "{frames}");
        // Left and right stay opposite, and the level is preserved.
        let peak = out
            .iter()
            .step_by(2)
            .skip(2000)
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!((0.45..0.55).contains(&peak), "{peak}");
        for f in out.chunks_exact(2).skip(2000) {
            assert!((f[0] + f[1]).abs() < 1e-3);
        }
    }
}
