//! Chunk sizing: how many samples one datagram carries, and whether that
//! size can go on the wire.

use proto::{mono_datagram_len, stereo_datagram_len, MAX_UDP_PAYLOAD, MAX_UNFRAGMENTED_PAYLOAD};

/// Largest number of samples per chunk (the original protocol's limit).
pub const MAX_CHUNK_SAMPLES: usize = 32_767;

/// Why a `--chunk-ms` value cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChunkError {
    /// Not a finite positive number of milliseconds.
    #[error("--chunk-ms {0} is not a positive number of milliseconds")]
    NotPositive(f64),
    /// Rounds to zero samples at this rate.
    #[error("--chunk-ms {ms} yields 0 samples per datagram at {rate} Hz")]
    Zero {
        /// The requested milliseconds.
        ms: f64,
        /// The sample rate.
        rate: u32,
    },
    /// More samples than a chunk may hold.
    #[error(
        "--chunk-ms {ms} yields {samples} samples per datagram at {rate} Hz; the maximum is 32767"
    )]
    TooLarge {
        /// The requested milliseconds.
        ms: f64,
        /// The sample rate.
        rate: u32,
        /// Samples it would yield.
        samples: u64,
    },
    /// The datagram would not fit in a UDP datagram at all.
    #[error("--chunk-ms {ms} makes {bytes}-byte datagrams; UDP carries at most 65507 bytes")]
    TooLargeForUdp {
        /// The requested milliseconds.
        ms: f64,
        /// The datagram size.
        bytes: usize,
    },
}

/// Samples per datagram: `round(chunk_ms × rate / 1000)`, checked to be 1…32767.
pub fn samples_per_chunk(chunk_ms: f64, rate: u32) -> Result<usize, ChunkError> {
    if !chunk_ms.is_finite() || chunk_ms <= 0.0 {
        return Err(ChunkError::NotPositive(chunk_ms));
    }
    let samples = (chunk_ms * f64::from(rate) / 1000.0).round();
    if samples < 1.0 {
        return Err(ChunkError::Zero { ms: chunk_ms, rate });
    }
    if samples > MAX_CHUNK_SAMPLES as f64 {
        return Err(ChunkError::TooLarge {
            ms: chunk_ms,
            rate,
            samples: samples.min(u64::MAX as f64) as u64,
        });
    }
    Ok(samples as usize)
}

/// What goes in each UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[seq: u32 BE][sample: i16 BE] × n`, to an audionode.
    MonoSeq,
    /// `[left: i16 BE][right: i16 BE] × n` without a sequence number, to an audiorecorder.
    Stereo,
}

impl Layout {
    /// Bytes of a datagram carrying `samples` mono samples in this layout.
    pub fn datagram_len(self, samples: usize) -> usize {
        match self {
            Layout::MonoSeq => mono_datagram_len(samples),
            Layout::Stereo => stereo_datagram_len(samples),
        }
    }
}

/// Checks that full chunks fit in a UDP datagram; returns `Ok(true)` when
/// they exceed 1472 bytes and so fragment on an Ethernet path (a warning).
pub fn check_udp_size(chunk_ms: f64, samples: usize, layout: Layout) -> Result<bool, ChunkError> {
    let bytes = layout.datagram_len(samples);
    if bytes > MAX_UDP_PAYLOAD {
        return Err(ChunkError::TooLargeForUdp {
            ms: chunk_ms,
            bytes,
        });
    }
    Ok(bytes > MAX_UNFRAGMENTED_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest() {
        assert_eq!(samples_per_chunk(10.0, 44_100), Ok(441));
        assert_eq!(samples_per_chunk(7.0, 44_100), Ok(309)); // 308.7
        assert_eq!(samples_per_chunk(1.0, 44_100), Ok(44)); // 44.1
        assert_eq!(samples_per_chunk(0.0125, 44_100), Ok(1)); // 0.55
        assert_eq!(samples_per_chunk(743.0, 44_100), Ok(32_766)); // 32766.3
    }

    #[test]
    fn rejects_zero_and_too_large() {
        assert!(matches!(
            samples_per_chunk(0.01, 44_100),
            Err(ChunkError::Zero { .. })
        ));
        assert!(matches!(
            samples_per_chunk(0.0, 44_100),
            Err(ChunkError::NotPositive(_))
        ));
        assert!(matches!(
            samples_per_chunk(-5.0, 44_100),
            Err(ChunkError::NotPositive(_))
        ));
        assert!(matches!(
            samples_per_chunk(f64::NAN, 44_100),
            Err(ChunkError::NotPositive(_))
        ));
        assert!(matches!(
            samples_per_chunk(744.0, 44_100), // 32810.4
            Err(ChunkError::TooLarge {
                samples: 32_810,
                ..
            })
        ));
        assert!(matches!(
            samples_per_chunk(1e300, 44_100),
            Err(ChunkError::TooLarge { .. })
        ));
    }

    #[test]
    fn udp_size_checks() {
        // 734 mono samples = 1472 bytes: the largest that does not fragment.
        assert_eq!(check_udp_size(1.0, 734, Layout::MonoSeq), Ok(false));
        assert_eq!(check_udp_size(1.0, 735, Layout::MonoSeq), Ok(true));
        // Stereo: 368 frames = 1472 bytes; the default 441 fragments.
        assert_eq!(check_udp_size(1.0, 368, Layout::Stereo), Ok(false));
        assert_eq!(check_udp_size(10.0, 441, Layout::Stereo), Ok(true));
        // 32751 mono samples = 65506 bytes fit; 32752 do not.
        assert_eq!(check_udp_size(1.0, 32_751, Layout::MonoSeq), Ok(true));
        assert!(check_udp_size(1.0, 32_752, Layout::MonoSeq).is_err());
        assert!(check_udp_size(1.0, 16_377, Layout::Stereo).is_err());
    }
}
