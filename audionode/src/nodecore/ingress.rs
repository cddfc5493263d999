//! Typed ingress: every wire format a source can arrive in is decoded at
//! the edge into one [`SourcePacket`], so the core never sees bytes of a
//! particular format.
//!
//! Today's formats are the original UDP mono datagram with a sequence
//! number (`[seq: u32 BE][sample: i16 BE] × n`, decoded in place: the
//! samples stay big-endian in the receive buffer until they are copied
//! into the jitter buffer) and the TCP Spec/Samples source (already
//! decoded to native samples by its thread). Neither carries a timestamp:
//! a packet's sample position on the source's timeline is the running sum
//! of packet sizes in sequence order, computed by the source
//! ([`crate::nodecore::source`]).

use proto::{MonoDatagram, MonoDecodeError};

/// One packet of one source, whatever format it arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePacket<'a> {
    /// The packet's sequence number (wraps at 2^32).
    pub seq: u32,
    /// Its mono samples.
    pub samples: Samples<'a>,
}

/// A packet's samples, left where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Samples<'a> {
    /// Still in a received datagram: big-endian 16-bit.
    BigEndian(MonoDatagram<'a>),
    /// Already decoded.
    Native(&'a [i16]),
}

impl Samples<'_> {
    /// Number of samples (at least 1 for a decoded datagram).
    pub fn len(&self) -> usize {
        match self {
            Samples::BigEndian(d) => d.sample_count(),
            Samples::Native(s) => s.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes samples `offset..offset + run.len()` into `run`.
    pub fn copy(&self, offset: usize, run: &mut [i16]) {
        match self {
            Samples::BigEndian(d) => {
                d.copy_samples_from(offset, run);
            }
            Samples::Native(s) => run.copy_from_slice(&s[offset..offset + run.len()]),
        }
    }
}

/// Why a datagram was not admitted as a source packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not a valid mono datagram.
    Decode(MonoDecodeError),
    /// Longer than the node accepts (`max` bytes).
    TooLong {
        /// Its length.
        len: usize,
        /// The longest accepted.
        max: usize,
    },
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Decode(e) => write!(f, "{e}"),
            Malformed::TooLong { len, max } => {
                write!(f, "datagram of {len} bytes is longer than {max} bytes")
            }
        }
    }
}

/// Decodes one original-format mono datagram of at most `max_bytes`.
pub fn decode_mono(bytes: &[u8], max_bytes: usize) -> Result<SourcePacket<'_>, Malformed> {
    if bytes.len() > max_bytes {
        return Err(Malformed::TooLong {
            len: bytes.len(),
            max: max_bytes,
        });
    }
    let datagram = MonoDatagram::decode(bytes).map_err(Malformed::Decode)?;
    Ok(SourcePacket {
        seq: datagram.seq,
        samples: Samples::BigEndian(datagram),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_in_place() {
        let bytes = [0, 0, 1, 2, 0x12, 0x34, 0xff, 0xfe];
        let p = decode_mono(&bytes, 100).unwrap();
        assert_eq!(p.seq, 258);
        let mut out = [0i16; 2];
        p.samples.copy(0, &mut out);
        assert_eq!(out, [0x1234, -2]);
        let mut one = [0i16; 1];
        p.samples.copy(1, &mut one);
        assert_eq!(one, [-2]);
    }

    #[test]
    fn refuses_long_and_broken_datagrams() {
        assert_eq!(
            decode_mono(&[0; 10], 8),
            Err(Malformed::TooLong { len: 10, max: 8 })
        );
        assert!(matches!(
            decode_mono(&[0, 0, 0, 1, 5], 100),
            Err(Malformed::Decode(MonoDecodeError::OddPayload(1)))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = decode_mono(&bytes, 40) {
                let mut out = vec![0; p.samples.len()];
                p.samples.copy(0, &mut out);
                prop_assert_eq!(4 + 2 * out.len(), bytes.len());
            }
        }
    }
}
