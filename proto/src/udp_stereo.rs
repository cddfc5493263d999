//! UDP stereo datagrams without a sequence number: `[left: i16 BE][right: i16 BE] × n`.
//!
//! Sent by the node (or `audiostreamer --stream-to-recorder`) to recorders.
//! Big-endian for compatibility with the original implementation.

use crate::EncodeError;

/// Bytes of one stereo frame (left and right i16).
pub const FRAME_LEN: usize = 4;

/// Length in bytes of a datagram carrying `frames` stereo frames.
pub const fn stereo_datagram_len(frames: usize) -> usize {
    FRAME_LEN * frames
}

/// Why a byte string is not a valid stereo datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StereoDecodeError {
    /// An empty datagram.
    #[error("datagram carries no frames")]
    NoFrames,
    /// The length is not a whole number of 4-byte stereo frames.
    #[error("datagram of {0} bytes is not a whole number of 4-byte stereo frames")]
    PartialFrame(usize),
    /// The length is odd: not even a whole number of 2-byte samples.
    #[error("datagram of {0} bytes is not a whole number of 2-byte samples")]
    OddLength(usize),
}

/// A decoded stereo datagram, borrowing the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StereoDatagram<'a> {
    payload: &'a [u8],
}

impl<'a> StereoDatagram<'a> {
    /// Decodes a datagram; any byte string gives a datagram or a typed error.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, StereoDecodeError> {
        if bytes.is_empty() {
            return Err(StereoDecodeError::NoFrames);
        }
        if bytes.len() % FRAME_LEN != 0 {
            return Err(StereoDecodeError::PartialFrame(bytes.len()));
        }
        Ok(Self { payload: bytes })
    }

    /// Decodes a datagram that may end (or, continuing the previous one,
    /// start) in the middle of a frame: any non-empty whole number of
    /// samples. The original `--stream-to-recorder` sender counts
    /// interleaved samples, so its 25 ms datagrams carry 1102.5 frames;
    /// the receiver joins the half frames across datagrams.
    pub fn decode_samples(bytes: &'a [u8]) -> Result<Self, StereoDecodeError> {
        if bytes.is_empty() {
            return Err(StereoDecodeError::NoFrames);
        }
        if bytes.len() % 2 != 0 {
            return Err(StereoDecodeError::OddLength(bytes.len()));
        }
        Ok(Self { payload: bytes })
    }

    /// Whether the datagram holds an odd number of samples (only from
    /// [`Self::decode_samples`]).
    pub fn ends_mid_frame(&self) -> bool {
        self.payload.len() % FRAME_LEN != 0
    }

    /// Number of whole stereo frames carried (at least 1 from
    /// [`Self::decode`]; a half frame from [`Self::decode_samples`] is not
    /// counted).
    pub fn frame_count(&self) -> usize {
        self.payload.len() / FRAME_LEN
    }

    /// The frames as `(left, right)` pairs.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = (i16, i16)> + 'a {
        self.payload.chunks_exact(FRAME_LEN).map(|b| {
            (
                i16::from_be_bytes([b[0], b[1]]),
                i16::from_be_bytes([b[2], b[3]]),
            )
        })
    }

    /// The samples interleaved `L R L R …` (every sample, a trailing half
    /// frame too).
    pub fn interleaved(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        self.payload
            .chunks_exact(2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    /// Copies as many whole frames as fit into `out` (interleaved); returns
    /// the number of samples written (twice the frames copied).
    pub fn copy_interleaved_into(&self, out: &mut [i16]) -> usize {
        let n = (self.payload.len() / 2).min(out.len() / 2 * 2);
        for (dst, b) in out[..n].iter_mut().zip(self.payload.chunks_exact(2)) {
            *dst = i16::from_be_bytes([b[0], b[1]]);
        }
        n
    }
}

/// Encodes interleaved `L R L R …` samples into the front of `out`; returns
/// the datagram length. `interleaved` must hold a whole number of frames.
pub fn encode_stereo(interleaved: &[i16], out: &mut [u8]) -> Result<usize, EncodeError> {
    // Half a frame is a caller bug we refuse rather than pad.
    if interleaved.len() < 2 || interleaved.len() % 2 != 0 {
        return Err(EncodeError::NoSamples);
    }
    let needed = 2 * interleaved.len();
    let Some(out) = out.get_mut(..needed) else {
        return Err(EncodeError::BufferTooSmall {
            needed,
            available: out.len(),
        });
    };
    for (dst, s) in out.chunks_exact_mut(2).zip(interleaved) {
        dst.copy_from_slice(&s.to_be_bytes());
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_datagram_bytes() {
        let mut buf = [0u8; 16];
        let n = encode_stereo(&[0x0102, -1, i16::MIN, 0x7F00], &mut buf).unwrap();
        assert_eq!(&buf[..n], &[0x01, 0x02, 0xFF, 0xFF, 0x80, 0x00, 0x7F, 0x00]);
        let d = StereoDatagram::decode(&buf[..n]).unwrap();
        assert_eq!(d.frame_count(), 2);
        assert_eq!(
            d.frames().collect::<Vec<_>>(),
            vec![(0x0102, -1), (i16::MIN, 0x7F00)]
        );
    }

    #[test]
    fn decode_errors() {
        assert_eq!(
            StereoDatagram::decode(&[]),
            Err(StereoDecodeError::NoFrames)
        );
        assert_eq!(
            StereoDatagram::decode(&[0; 2]),
            Err(StereoDecodeError::PartialFrame(2))
        );
        assert_eq!(
            StereoDatagram::decode(&[0; 7]),
            Err(StereoDecodeError::PartialFrame(7))
        );
    }

    #[test]
    fn decode_samples_takes_half_frames_but_not_half_samples() {
        let bytes = [0x00, 0x01, 0xFF, 0xFE, 0x7F, 0xFF];
        let d = StereoDatagram::decode_samples(&bytes).unwrap();
        assert!(d.ends_mid_frame());
        assert_eq!(d.frame_count(), 1);
        assert_eq!(d.interleaved().collect::<Vec<_>>(), [1, -2, 32767]);
        let d = StereoDatagram::decode_samples(&bytes[..4]).unwrap();
        assert!(!d.ends_mid_frame());
        assert_eq!(
            StereoDatagram::decode_samples(&bytes[..5]),
            Err(StereoDecodeError::OddLength(5))
        );
        assert_eq!(
            StereoDatagram::decode_samples(&[]),
            Err(StereoDecodeError::NoFrames)
        );
    }

    #[test]
    fn encode_errors() {
        assert_eq!(
            encode_stereo(&[1], &mut [0u8; 8]),
            Err(EncodeError::NoSamples)
        );
        assert_eq!(
            encode_stereo(&[], &mut [0u8; 8]),
            Err(EncodeError::NoSamples)
        );
        assert_eq!(
            encode_stereo(&[1, 2, 3, 4], &mut [0u8; 7]),
            Err(EncodeError::BufferTooSmall {
                needed: 8,
                available: 7
            })
        );
    }

    #[test]
    fn copy_into_short_buffer_copies_whole_frames() {
        let bytes = [0, 1, 0, 2, 0, 3, 0, 4];
        let d = StereoDatagram::decode(&bytes).unwrap();
        let mut out = [0i16; 3];
        assert_eq!(d.copy_interleaved_into(&mut out), 2);
        assert_eq!(out, [1, 2, 0]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(d) = StereoDatagram::decode(&bytes) {
                prop_assert_eq!(stereo_datagram_len(d.frame_count()), bytes.len());
                prop_assert_eq!(d.interleaved().len(), 2 * d.frame_count());
            }
        }

        #[test]
        fn decode_samples_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(d) = StereoDatagram::decode_samples(&bytes) {
                prop_assert_eq!(2 * d.interleaved().len(), bytes.len());
                prop_assert_eq!(d.ends_mid_frame(), bytes.len() % 4 == 2);
            }
        }

        #[test]
        fn round_trip(frames in proptest::collection::vec(any::<(i16, i16)>(), 1..512)) {
            let interleaved: Vec<i16> = frames.iter().flat_map(|&(l, r)| [l, r]).collect();
            let mut buf = vec![0u8; stereo_datagram_len(frames.len())];
            let n = encode_stereo(&interleaved, &mut buf).unwrap();
            let d = StereoDatagram::decode(&buf[..n]).unwrap();
            prop_assert_eq!(d.frames().collect::<Vec<_>>(), frames);
            prop_assert_eq!(d.interleaved().collect::<Vec<_>>(), interleaved);
        }
    }
}
