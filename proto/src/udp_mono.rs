//! UDP mono datagrams with a sequence number: `[seq: u32 BE][sample: i16 BE] × n`.
//!
//! Sent by the streamer to the node, one datagram per chunk. Big-endian
//! because the original implementation put samples on the wire in network
//! byte order; ours must interoperate with it.

use crate::EncodeError;

/// Bytes of the sequence-number header.
pub const SEQ_HEADER_LEN: usize = 4;

/// Length in bytes of a datagram carrying `samples` samples.
pub const fn mono_datagram_len(samples: usize) -> usize {
    SEQ_HEADER_LEN + 2 * samples
}

/// Why a byte string is not a valid mono datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MonoDecodeError {
    /// Fewer than the 4 bytes of the sequence number.
    #[error("datagram of {0} bytes is shorter than the 4-byte sequence number")]
    Truncated(usize),
    /// A sequence number and no samples.
    #[error("datagram carries no samples")]
    NoSamples,
    /// The payload after the sequence number is not a whole number of i16 samples.
    #[error("payload of {0} bytes is not a whole number of 16-bit samples")]
    OddPayload(usize),
}

/// A decoded mono datagram, borrowing the received bytes (no copy, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonoDatagram<'a> {
    /// The datagram's sequence number.
    pub seq: u32,
    payload: &'a [u8],
}

impl<'a> MonoDatagram<'a> {
    /// Decodes a datagram; any byte string gives a datagram or a typed error.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, MonoDecodeError> {
        let Some((header, payload)) = bytes.split_first_chunk::<SEQ_HEADER_LEN>() else {
            return Err(MonoDecodeError::Truncated(bytes.len()));
        };
        if payload.is_empty() {
            return Err(MonoDecodeError::NoSamples);
        }
        if payload.len() % 2 != 0 {
            return Err(MonoDecodeError::OddPayload(payload.len()));
        }
        Ok(Self {
            seq: u32::from_be_bytes(*header),
            payload,
        })
    }

    /// Number of samples carried (at least 1).
    pub fn sample_count(&self) -> usize {
        self.payload.len() / 2
    }

    /// The samples, decoded from big-endian on the fly.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        self.payload
            .chunks_exact(2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    /// Copies as many samples as fit into `out`; returns how many were copied.
    pub fn copy_samples_into(&self, out: &mut [i16]) -> usize {
        self.copy_samples_from(0, out)
    }

    /// Copies samples `first..` into `out` (as many as fit and exist);
    /// returns how many were copied. Vectorised: this is the receive path's
    /// per-sample work.
    pub fn copy_samples_from(&self, first: usize, out: &mut [i16]) -> usize {
        let bytes = self.payload.get(2 * first..).unwrap_or(&[]);
        decode_be(bytes, out)
    }
}

crate::with_avx2!(
    /// Decodes big-endian samples from `bytes` into `out`, as many as both
    /// hold; returns how many.
    pub fn decode_be(bytes: &[u8], out: &mut [i16]) -> usize = decode_be_body
);

/// [`decode_be`]'s loop: sixteen samples at a time through fixed-size
/// arrays, which the compiler turns into whole-vector byte swaps (one
/// shuffle per sixteen samples with AVX2, shifts and ors without; a plain
/// `chunks_exact(2)` loop stays scalar: one 2-byte store per sample).
#[inline(always)]
fn decode_be_body(bytes: &[u8], out: &mut [i16]) -> usize {
    const LANES: usize = 16;
    let n = out.len().min(bytes.len() / 2);
    let (out, bytes) = (&mut out[..n], &bytes[..2 * n]);
    let mut out_chunks = out.chunks_exact_mut(LANES);
    let mut byte_chunks = bytes.chunks_exact(2 * LANES);
    for (o, b) in (&mut out_chunks).zip(&mut byte_chunks) {
        let o: &mut [i16; LANES] = o.try_into().expect("chunk of LANES samples");
        let b: &[u8; 2 * LANES] = b.try_into().expect("chunk of 2 × LANES bytes");
        for k in 0..LANES {
            o[k] = i16::from_be_bytes([b[2 * k], b[2 * k + 1]]);
        }
    }
    let tail = out_chunks.into_remainder();
    for (o, b) in tail.iter_mut().zip(byte_chunks.remainder().chunks_exact(2)) {
        *o = i16::from_be_bytes([b[0], b[1]]);
    }
    n
}

/// Encodes `seq` and `samples` into the front of `out`; returns the datagram length.
pub fn encode_mono(seq: u32, samples: &[i16], out: &mut [u8]) -> Result<usize, EncodeError> {
    if samples.is_empty() {
        return Err(EncodeError::NoSamples);
    }
    let needed = mono_datagram_len(samples.len());
    let Some(out) = out.get_mut(..needed) else {
        return Err(EncodeError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    };
    let (header, body) = out.split_at_mut(SEQ_HEADER_LEN);
    header.copy_from_slice(&seq.to_be_bytes());
    for (dst, s) in body.chunks_exact_mut(2).zip(samples) {
        dst.copy_from_slice(&s.to_be_bytes());
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decode_be_matches_the_plain_definition_at_every_length() {
        // Every tail length around the 16-sample vector steps, an odd byte
        // count, and an `out` shorter than the bytes; dispatched and
        // baseline builds alike.
        let bytes: Vec<u8> = (0..81u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
        for len in 0..=bytes.len() {
            let want: Vec<i16> = bytes[..len]
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .collect();
            let (mut a, mut b) = (vec![0; 40], vec![0; 40]);
            assert_eq!(decode_be(&bytes[..len], &mut a), want.len());
            assert_eq!(decode_be_body(&bytes[..len], &mut b), want.len());
            assert_eq!(&a[..want.len()], &want[..]);
            assert_eq!(a, b);
        }
        let mut short = [0i16; 3];
        assert_eq!(decode_be(&bytes, &mut short), 3);
    }

    #[test]
    fn known_datagram_bytes() {
        let mut buf = [0u8; 64];
        let n = encode_mono(0x0102_0304, &[1, -2, i16::MAX, i16::MIN], &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &[
                0x01, 0x02, 0x03, 0x04, // seq, big-endian
                0x00, 0x01, // 1
                0xFF, 0xFE, // -2
                0x7F, 0xFF, // 32767
                0x80, 0x00, // -32768
            ]
        );
    }

    #[test]
    fn decode_known_bytes() {
        let bytes = [0xFF, 0xFF, 0xFF, 0xFE, 0x12, 0x34, 0xAB, 0xCD];
        let d = MonoDatagram::decode(&bytes).unwrap();
        assert_eq!(d.seq, 0xFFFF_FFFE);
        assert_eq!(d.sample_count(), 2);
        assert_eq!(
            d.samples().collect::<Vec<_>>(),
            vec![0x1234, 0xABCDu16 as i16]
        );
        let mut out = [0i16; 1];
        assert_eq!(d.copy_samples_into(&mut out), 1);
        assert_eq!(out, [0x1234]);
    }

    #[test]
    fn copies_any_range_of_samples() {
        let samples: Vec<i16> = (0..37).map(|i| (i * 1000 - 18_000) as i16).collect();
        let mut bytes = vec![0; mono_datagram_len(samples.len())];
        encode_mono(9, &samples, &mut bytes).unwrap();
        let d = MonoDatagram::decode(&bytes).unwrap();
        for first in [0, 1, 8, 17, 36, 37, 50] {
            for len in [0, 1, 7, 8, 9, 16, 40] {
                let mut out = vec![i16::MIN; len];
                let n = d.copy_samples_from(first, &mut out);
                let expected = &samples[first.min(37)..(first + len).min(37)];
                assert_eq!(n, expected.len(), "first {first} len {len}");
                assert_eq!(&out[..n], expected);
                assert!(out[n..].iter().all(|&x| x == i16::MIN), "untouched tail");
            }
        }
    }

    #[test]
    fn decode_errors() {
        assert_eq!(
            MonoDatagram::decode(&[]),
            Err(MonoDecodeError::Truncated(0))
        );
        assert_eq!(
            MonoDatagram::decode(&[1, 2, 3]),
            Err(MonoDecodeError::Truncated(3))
        );
        assert_eq!(
            MonoDatagram::decode(&[0; 4]),
            Err(MonoDecodeError::NoSamples)
        );
        assert_eq!(
            MonoDatagram::decode(&[0; 7]),
            Err(MonoDecodeError::OddPayload(3))
        );
    }

    #[test]
    fn encode_errors() {
        let mut small = [0u8; 5];
        assert_eq!(
            encode_mono(0, &[1], &mut small),
            Err(EncodeError::BufferTooSmall {
                needed: 6,
                available: 5
            })
        );
        assert_eq!(
            encode_mono(0, &[], &mut [0u8; 16]),
            Err(EncodeError::NoSamples)
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(d) = MonoDatagram::decode(&bytes) {
                prop_assert_eq!(mono_datagram_len(d.sample_count()), bytes.len());
                prop_assert_eq!(d.samples().len(), d.sample_count());
            }
        }

        #[test]
        fn round_trip(seq in any::<u32>(), samples in proptest::collection::vec(any::<i16>(), 1..1024)) {
            let mut buf = vec![0u8; mono_datagram_len(samples.len())];
            let n = encode_mono(seq, &samples, &mut buf).unwrap();
            prop_assert_eq!(n, buf.len());
            let d = MonoDatagram::decode(&buf[..n]).unwrap();
            prop_assert_eq!(d.seq, seq);
            prop_assert_eq!(d.samples().collect::<Vec<_>>(), samples);
        }
    }
}
