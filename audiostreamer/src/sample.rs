//! Sample conversions between WAV encodings and the i16 samples on the wire.
//!
//! Everything in between is an `f32` on the **i16 scale** (−32768.0 … 32767.0),
//! so that a 16-bit integer sample passes through unchanged and the final
//! rounding to i16 is exact for it: that is what makes a 44.1 kHz mono 16-bit
//! file go out bit-exact.

/// Factor that brings an integer sample of `bits` bits to the i16 scale
/// (2^(16 − bits)): 256 for 8-bit, 1 for 16-bit, 1/256 for 24-bit, 1/65536 for 32-bit.
pub fn int_scale(bits: u16) -> f64 {
    2f64.powi(16 - i32::from(bits))
}

/// Factor that brings a float sample (full scale ±1.0) to the i16 scale.
///
/// 32768 rather than 32767 so that `i16 / 32768.0` (the usual normalisation)
/// converts back exactly; +1.0 then clips to 32767.
pub const FLOAT_SCALE: f64 = 32_768.0;

/// Averages the channels of one interleaved frame of integer samples and
/// brings the result to the i16 scale. The sum is exact (i64), so a mono
/// frame is only scaled, never rounded.
pub fn downmix_int(frame: &[i32], scale: f64) -> f32 {
    let sum: i64 = frame.iter().map(|&s| i64::from(s)).sum();
    (sum as f64 / frame.len().max(1) as f64 * scale) as f32
}

/// Averages the channels of one interleaved frame of float samples and
/// brings the result to the i16 scale.
pub fn downmix_float(frame: &[f32]) -> f32 {
    let sum: f64 = frame.iter().map(|&s| f64::from(s)).sum();
    (sum / frame.len().max(1) as f64 * FLOAT_SCALE) as f32
}

/// Rounds an i16-scale value to the nearest i16 (halves away from zero),
/// clipping what is out of range; NaN becomes 0.
pub fn to_i16(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    // `as` saturates, so the clamp is implicit; round first so 32767.4 → 32767.
    x.round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_per_bit_depth() {
        assert_eq!(int_scale(8), 256.0);
        assert_eq!(int_scale(16), 1.0);
        assert_eq!(int_scale(24), 1.0 / 256.0);
        assert_eq!(int_scale(32), 1.0 / 65_536.0);
    }

    #[test]
    fn sixteen_bit_mono_is_identity() {
        for s in [i16::MIN, -12_345, -1, 0, 1, 12_345, i16::MAX] {
            let x = downmix_int(&[i32::from(s)], int_scale(16));
            assert_eq!(to_i16(x), s);
        }
    }

    #[test]
    fn other_depths_by_hand() {
        // 8-bit: hound yields −128…127; −128 → −32768, 127 → 32512.
        assert_eq!(to_i16(downmix_int(&[-128], int_scale(8))), i16::MIN);
        assert_eq!(to_i16(downmix_int(&[127], int_scale(8))), 32_512);
        // 24-bit: 0x7FFFFF / 256 = 32767.996 → 32767 (clipped), 0x123456 / 256 = 4660.34 → 4660.
        assert_eq!(to_i16(downmix_int(&[0x7F_FFFF], int_scale(24))), i16::MAX);
        assert_eq!(to_i16(downmix_int(&[0x12_3456], int_scale(24))), 4660);
        assert_eq!(to_i16(downmix_int(&[-0x80_0000], int_scale(24))), i16::MIN);
        // 32-bit: i32::MIN / 65536 = −32768, 0x0001_8000 / 65536 = 1.5 → 2.
        assert_eq!(to_i16(downmix_int(&[i32::MIN], int_scale(32))), i16::MIN);
        assert_eq!(to_i16(downmix_int(&[0x0001_8000], int_scale(32))), 2);
        assert_eq!(to_i16(downmix_int(&[i32::MAX], int_scale(32))), i16::MAX);
    }

    #[test]
    fn float_conversion() {
        assert_eq!(to_i16(downmix_float(&[0.5])), 16_384);
        assert_eq!(to_i16(downmix_float(&[-1.0])), i16::MIN);
        assert_eq!(to_i16(downmix_float(&[1.0])), i16::MAX); // clipped
        assert_eq!(to_i16(downmix_float(&[2.0])), i16::MAX);
        assert_eq!(to_i16(downmix_float(&[f32::NAN])), 0);
        assert_eq!(to_i16(downmix_float(&[-1.0 / 32768.0])), -1);
    }

    #[test]
    fn downmix_averages_channels() {
        assert_eq!(to_i16(downmix_int(&[1000, 3000], 1.0)), 2000);
        assert_eq!(
            to_i16(downmix_int(&[i16::MAX.into(), i16::MAX.into()], 1.0)),
            i16::MAX
        );
        assert_eq!(to_i16(downmix_int(&[-1, 0], 1.0)), -1); // −0.5 rounds away from zero
        assert_eq!(to_i16(downmix_int(&[3, 3, 3, 3, 3, 9], 1.0)), 4);
        assert_eq!(to_i16(downmix_float(&[0.25, -0.75])), -8192);
    }
}
