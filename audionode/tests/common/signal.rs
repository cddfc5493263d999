//! Signal helpers of the browser tests: a mono WAV file for a fake
//! microphone, the correlation coefficient of two pieces, and the lag that
//! best lines a signal up with a recording of it (by FFT cross-correlation,
//! bare or normalised).

use std::ops::RangeInclusive;
use std::path::Path;

/// Writes `samples` as a mono 16-bit WAV file at `rate`.
pub fn write_wav(path: &Path, samples: &[i16], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// Correlation coefficient of two equally long pieces.
pub fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let m = x.len() as f64;
    let (sx, sy) = (x.iter().sum::<f64>(), y.iter().sum::<f64>());
    let sxx: f64 = x.iter().map(|a| a * a).sum();
    let syy: f64 = y.iter().map(|a| a * a).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    (sxy - sx * sy / m) / ((sxx - sx * sx / m) * (syy - sy * sy / m)).sqrt()
}

/// The lag `d` within `lags` that best lines `file[n]` up with
/// `rec[n + d]` (the largest cross-correlation; negative when `rec` holds
/// `file` from past its start).
pub fn best_lag(rec: &[f64], file: &[f64], lags: RangeInclusive<i64>) -> i64 {
    let x = cross_correlation(rec, file);
    let n = x.len();
    // Index k of the circular correlation is lag k, or k − n past the middle.
    let lag_of = |k: usize| {
        if k > n / 2 {
            k as i64 - n as i64
        } else {
            k as i64
        }
    };
    (0..n)
        .filter(|&k| lags.contains(&lag_of(k)))
        .max_by(|&a, &b| x[a].total_cmp(&x[b]))
        .map(lag_of)
        .expect("a lag in range")
}

/// The offset `d` at which `rec[d..d + file.len()]` looks most like
/// `file`, by the normalised correlation (`rec` may be louder in one place
/// than another, which a bare cross-correlation would favour).
pub fn best_match(rec: &[f64], file: &[f64]) -> usize {
    assert!(rec.len() >= file.len(), "the recording holds the file");
    let x = cross_correlation(rec, file);
    // The energy of each piece of `rec` as long as `file`.
    let mut energy = Vec::with_capacity(rec.len() + 1);
    energy.push(0.0);
    for (i, v) in rec.iter().enumerate() {
        energy.push(energy[i] + v * v);
    }
    (0..=rec.len() - file.len())
        .filter(|&d| energy[d + file.len()] - energy[d] > 0.0)
        .max_by(|&a, &b| {
            let score = |d: usize| x[d] / (energy[d + file.len()] - energy[d]).sqrt();
            score(a).total_cmp(&score(b))
        })
        .unwrap_or(0)
}

/// The circular cross-correlation of `rec` with `file`, zero-padded to a
/// power of two: index k is lag k (`file[n]` against `rec[n + k]`), or
/// k − len past the middle.
fn cross_correlation(rec: &[f64], file: &[f64]) -> Vec<f64> {
    let n = (rec.len() + file.len()).next_power_of_two();
    let (mut ar, mut ai) = (vec![0.0; n], vec![0.0; n]);
    let (mut br, mut bi) = (vec![0.0; n], vec![0.0; n]);
    ar[..rec.len()].copy_from_slice(rec);
    br[..file.len()].copy_from_slice(file);
    fft(&mut ar, &mut ai, false);
    fft(&mut br, &mut bi, false);
    for k in 0..n {
        // rec × conj(file)
        let (r, i) = (ar[k] * br[k] + ai[k] * bi[k], ai[k] * br[k] - ar[k] * bi[k]);
        ar[k] = r;
        ai[k] = i;
    }
    fft(&mut ar, &mut ai, true);
    ar
}

/// In-place iterative radix-2 FFT (`inverse` without the 1/n scale).
fn fft(re: &mut [f64], im: &mut [f64], inverse: bool) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = 2.0 * std::f64::consts::PI / len as f64 * if inverse { 1.0 } else { -1.0 };
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = ((angle * k as f64).cos(), (angle * k as f64).sin());
                let (i, j) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[j] * wr - im[j] * wi, re[j] * wi + im[j] * wr);
                re[j] = re[i] - xr;
                im[j] = im[i] - xi;
                re[i] += xr;
                im[i] += xi;
            }
        }
        len <<= 1;
    }
}
