//! The TCP Spec/Samples messages of the original protocol (all integers little-endian).
//!
//! - Spec: `[1: u8][channels: u16][sample_rate: u32][bits_per_sample: u16][sample_format: u8]`
//! - Samples: `[2: u8][count: u32][sample: i16] × count` (count in samples, interleaved)
//!
//! A message travels inside a length-prefixed frame (see [`crate::framing`]).

/// Type byte of a Spec message.
pub const SPEC_TYPE: u8 = 1;
/// Type byte of a Samples message.
pub const SAMPLES_TYPE: u8 = 2;
/// Encoded length of a Spec message.
pub const SPEC_LEN: usize = 10;
/// Length of a Samples message header (type byte and count).
pub const SAMPLES_HEADER_LEN: usize = 5;

/// How samples are encoded, as announced by a Spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// IEEE float samples (wire value 1).
    Float,
    /// Signed integer samples (wire value 2).
    Int,
}

impl SampleFormat {
    /// The wire value of this format.
    pub fn to_wire(self) -> u8 {
        match self {
            SampleFormat::Float => 1,
            SampleFormat::Int => 2,
        }
    }

    /// The format for a wire value, if it is one.
    pub fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(SampleFormat::Float),
            2 => Some(SampleFormat::Int),
            _ => None,
        }
    }
}

/// The stream format a TCP server announces before any samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    /// Interleaved channels per frame (1 mono, 2 stereo).
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Bits per sample (16 for this system's i16 samples).
    pub bits_per_sample: u16,
    /// Integer or float samples.
    pub sample_format: SampleFormat,
}

impl Spec {
    /// A 16-bit signed-integer Spec, the only sample encoding this system sends.
    pub fn int16(channels: u16, sample_rate: u32) -> Self {
        Self {
            channels,
            sample_rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        }
    }

    /// The 10 bytes of this Spec message.
    pub fn to_bytes(&self) -> [u8; SPEC_LEN] {
        let mut b = [0u8; SPEC_LEN];
        b[0] = SPEC_TYPE;
        b[1..3].copy_from_slice(&self.channels.to_le_bytes());
        b[3..7].copy_from_slice(&self.sample_rate.to_le_bytes());
        b[7..9].copy_from_slice(&self.bits_per_sample.to_le_bytes());
        b[9] = self.sample_format.to_wire();
        b
    }
}

/// One TCP protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The stream format; sent first to every client and again when it changes.
    Spec(Spec),
    /// Interleaved i16 samples.
    Samples(Vec<i16>),
}

/// Why a byte string is not a valid message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A zero-length message (no type byte).
    #[error("empty message")]
    Empty,
    /// The first byte is neither 1 (Spec) nor 2 (Samples).
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A Spec message that is not exactly 10 bytes long.
    #[error("Spec message of {0} bytes, expected 10")]
    BadSpecLength(usize),
    /// A Spec whose sample-format byte is neither 1 (float) nor 2 (int).
    #[error("unknown sample format {0} in Spec")]
    UnknownSampleFormat(u8),
    /// A Samples message shorter than its 5-byte header.
    #[error("Samples message of {0} bytes is shorter than its 5-byte header")]
    TruncatedSamplesHeader(usize),
    /// The Samples count does not match the bytes that follow.
    #[error("Samples message claims {count} samples but carries {bytes} bytes of samples")]
    SampleCountMismatch {
        /// Samples the header claims.
        count: u32,
        /// Bytes present after the header.
        bytes: usize,
    },
}

impl Message {
    /// Decodes one message (the content of one frame). Total: never panics,
    /// and allocates only after the claimed sample count matched the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let (&kind, rest) = bytes.split_first().ok_or(MessageError::Empty)?;
        match kind {
            SPEC_TYPE => {
                if bytes.len() != SPEC_LEN {
                    return Err(MessageError::BadSpecLength(bytes.len()));
                }
                let format = SampleFormat::from_wire(rest[8])
                    .ok_or(MessageError::UnknownSampleFormat(rest[8]))?;
                Ok(Message::Spec(Spec {
                    channels: u16::from_le_bytes([rest[0], rest[1]]),
                    sample_rate: u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]),
                    bits_per_sample: u16::from_le_bytes([rest[6], rest[7]]),
                    sample_format: format,
                }))
            }
            SAMPLES_TYPE => {
                let Some((count, body)) = rest.split_first_chunk::<4>() else {
                    return Err(MessageError::TruncatedSamplesHeader(bytes.len()));
                };
                let count = u32::from_le_bytes(*count);
                if u64::from(count) * 2 != body.len() as u64 {
                    return Err(MessageError::SampleCountMismatch {
                        count,
                        bytes: body.len(),
                    });
                }
                let samples = body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                Ok(Message::Samples(samples))
            }
            other => Err(MessageError::UnknownType(other)),
        }
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Spec(spec) => out.extend_from_slice(&spec.to_bytes()),
            Message::Samples(samples) => encode_samples(samples, out),
        }
    }

    /// The encoded message as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends a Samples message for `samples` to `out` without building a [`Message`].
///
/// # Panics
/// If `samples` holds more than `u32::MAX` samples (the count field's range).
pub fn encode_samples(samples: &[i16], out: &mut Vec<u8>) {
    let count = u32::try_from(samples.len()).expect("Samples message over u32::MAX samples");
    out.reserve(SAMPLES_HEADER_LEN + 2 * samples.len());
    out.push(SAMPLES_TYPE);
    out.extend_from_slice(&count.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_spec_bytes() {
        let spec = Spec::int16(2, 44_100);
        assert_eq!(
            spec.to_bytes(),
            [0x01, 0x02, 0x00, 0x44, 0xAC, 0x00, 0x00, 0x10, 0x00, 0x02]
        );
        assert_eq!(Message::decode(&spec.to_bytes()), Ok(Message::Spec(spec)));
    }

    #[test]
    fn known_samples_bytes() {
        let msg = Message::Samples(vec![1, -2, 0x1234]);
        assert_eq!(
            msg.to_bytes(),
            [0x02, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0xFE, 0xFF, 0x34, 0x12]
        );
    }

    #[test]
    fn float_spec_decodes() {
        let bytes = [1, 1, 0, 0x80, 0xBB, 0, 0, 32, 0, 1];
        assert_eq!(
            Message::decode(&bytes),
            Ok(Message::Spec(Spec {
                channels: 1,
                sample_rate: 48_000,
                bits_per_sample: 32,
                sample_format: SampleFormat::Float,
            }))
        );
    }

    #[test]
    fn decode_errors() {
        use MessageError::*;
        assert_eq!(Message::decode(&[]), Err(Empty));
        assert_eq!(Message::decode(&[9, 1, 2]), Err(UnknownType(9)));
        assert_eq!(Message::decode(&[1, 2, 0]), Err(BadSpecLength(3)));
        assert_eq!(Message::decode(&[1; 11]), Err(BadSpecLength(11)));
        assert_eq!(
            Message::decode(&[1, 2, 0, 0x44, 0xAC, 0, 0, 16, 0, 3]),
            Err(UnknownSampleFormat(3))
        );
        assert_eq!(Message::decode(&[2, 0, 0]), Err(TruncatedSamplesHeader(3)));
        assert_eq!(
            Message::decode(&[2, 2, 0, 0, 0, 1, 0]),
            Err(SampleCountMismatch { count: 2, bytes: 2 })
        );
        // A huge claimed count must be rejected without allocating it.
        assert_eq!(
            Message::decode(&[2, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(SampleCountMismatch {
                count: u32::MAX,
                bytes: 0
            })
        );
    }

    #[test]
    fn empty_samples_message_is_valid() {
        assert_eq!(
            Message::decode(&[2, 0, 0, 0, 0]),
            Ok(Message::Samples(vec![]))
        );
    }

    fn any_spec() -> impl Strategy<Value = Spec> {
        (any::<u16>(), any::<u32>(), any::<u16>(), any::<bool>()).prop_map(|(c, r, b, f)| Spec {
            channels: c,
            sample_rate: r,
            bits_per_sample: b,
            sample_format: if f {
                SampleFormat::Float
            } else {
                SampleFormat::Int
            },
        })
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn decode_samples_like_never_panics(count in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = vec![SAMPLES_TYPE];
            bytes.extend_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&body);
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn spec_round_trip(spec in any_spec()) {
            prop_assert_eq!(Message::decode(&Message::Spec(spec).to_bytes()), Ok(Message::Spec(spec)));
        }

        #[test]
        fn samples_round_trip(samples in proptest::collection::vec(any::<i16>(), 0..2048)) {
            let msg = Message::Samples(samples);
            prop_assert_eq!(Message::decode(&msg.to_bytes()), Ok(msg));
        }
    }
}
