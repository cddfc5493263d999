//! The TCP framing: each message travels as `[len: u32 LE][message: len bytes]`.
//!
//! [`FrameReader`] reads frames from any `Read` with their boundaries
//! preserved. It refuses a length prefix above a configurable maximum before
//! allocating anything, grows its buffer only as bytes actually arrive (so a
//! lying prefix cannot make it allocate the claimed length), and survives read
//! timeouts: a `WouldBlock`/`TimedOut` error leaves a partly read frame in
//! place and the next call continues it.

use std::io::{self, Read, Write};

/// Default largest frame accepted by a reader: 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Largest amount the buffer grows by per read, so memory follows real bytes.
const READ_CHUNK: usize = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the reader's maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Length the prefix claims.
        len: u32,
        /// The reader's maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside a frame ({got} of {expected} bytes read)")]
    Truncated {
        /// Bytes the frame (prefix included) should have had.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// An I/O error from the underlying reader (including read timeouts).
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// Whether this is a read timeout after which reading may simply continue.
    pub fn is_timeout(&self) -> bool {
        matches!(self, FrameError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// Writes `payload` as one frame (prefix and payload in a single write call).
pub fn write_frame<W: Write>(writer: &mut W, payload: &[u8]) -> io::Result<()> {
    writer.write_all(&encode_frame(payload)?)
}

/// The bytes of one frame: the `u32 LE` length prefix followed by `payload`.
pub fn encode_frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame payload exceeds u32::MAX bytes",
        )
    })?;
    let mut frame = Vec::with_capacity(LEN_PREFIX + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Reads length-prefixed frames from `R`, one at a time, reusing one buffer.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max_len: usize,
    prefix: [u8; LEN_PREFIX],
    prefix_filled: usize,
    /// Length of the frame being read, once its prefix is complete.
    body_len: Option<usize>,
    body: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// A reader accepting frames up to [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new(inner: R) -> Self {
        Self::with_max_len(inner, DEFAULT_MAX_FRAME_LEN)
    }

    /// A reader accepting frames up to `max_len` bytes (prefix excluded).
    pub fn with_max_len(inner: R, max_len: usize) -> Self {
        Self {
            inner,
            max_len,
            prefix: [0; LEN_PREFIX],
            prefix_filled: 0,
            body_len: None,
            body: Vec::new(),
        }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Reads the next frame. `Ok(None)` is a clean end of stream between frames.
    ///
    /// After a timeout error, call again to continue the same frame. After
    /// any other error the stream is out of sync and should be closed.
    pub fn read_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if self.body_len.is_none() && !self.read_prefix()? {
            return Ok(None);
        }
        let len = self.body_len.expect("prefix complete");
        while self.body.len() < len {
            let want = (len - self.body.len()).min(READ_CHUNK);
            let start = self.body.len();
            if self.body.capacity() < start + want {
                // Grow geometrically, but never past the frame's length nor
                // much past what has really arrived.
                let target = (start * 2).max(start + want).min(len);
                self.body.reserve_exact(target - start);
            }
            self.body.resize(start + want, 0);
            let result = self.inner.read(&mut self.body[start..]);
            let got = match result {
                Ok(n) => n,
                Err(e) => {
                    self.body.truncate(start);
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e.into());
                }
            };
            self.body.truncate(start + got);
            if got == 0 {
                let got_total = LEN_PREFIX + self.body.len();
                self.reset();
                return Err(FrameError::Truncated {
                    expected: LEN_PREFIX + len,
                    got: got_total,
                });
            }
        }
        self.body_len = None;
        self.prefix_filled = 0;
        Ok(Some(&self.body))
    }

    /// Fills the prefix; `Ok(false)` on a clean end of stream before any byte.
    fn read_prefix(&mut self) -> Result<bool, FrameError> {
        while self.prefix_filled < LEN_PREFIX {
            match self.inner.read(&mut self.prefix[self.prefix_filled..]) {
                Ok(0) if self.prefix_filled == 0 => return Ok(false),
                Ok(0) => {
                    let got = self.prefix_filled;
                    self.reset();
                    return Err(FrameError::Truncated {
                        expected: LEN_PREFIX,
                        got,
                    });
                }
                Ok(n) => self.prefix_filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let len = u32::from_le_bytes(self.prefix);
        if len as usize > self.max_len {
            self.reset();
            return Err(FrameError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        self.body.clear();
        self.body_len = Some(len as usize);
        Ok(true)
    }

    fn reset(&mut self) {
        self.prefix_filled = 0;
        self.body_len = None;
        self.body.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    #[test]
    fn known_frame_bytes() {
        let mut out = Vec::new();
        write_frame(&mut out, &[0xAA, 0xBB, 0xCC]).unwrap();
        assert_eq!(out, [0x03, 0x00, 0x00, 0x00, 0xAA, 0xBB, 0xCC]);
    }

    #[test]
    fn reads_frames_with_boundaries() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, b"one").unwrap();
        write_frame(&mut bytes, b"").unwrap();
        write_frame(&mut bytes, b"three").unwrap();
        let mut r = FrameReader::new(Cursor::new(bytes));
        assert_eq!(r.read_frame().unwrap(), Some(&b"one"[..]));
        assert_eq!(r.read_frame().unwrap(), Some(&b""[..]));
        assert_eq!(r.read_frame().unwrap(), Some(&b"three"[..]));
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocation() {
        let bytes = u32::MAX.to_le_bytes().to_vec();
        let mut r = FrameReader::with_max_len(Cursor::new(bytes), 1024);
        match r.read_frame() {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!((len, max), (u32::MAX, 1024));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(
            r.body.capacity() == 0,
            "nothing allocated for the claimed length"
        );
    }

    #[test]
    fn default_max_is_16_mib() {
        let mut bytes = (16 * 1024 * 1024 + 1u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        let mut r = FrameReader::new(Cursor::new(bytes));
        assert!(matches!(r.read_frame(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn lying_prefix_grows_only_with_real_bytes() {
        // Claims 16 MiB, delivers 10 bytes: truncated, buffer stays small.
        let mut bytes = (16 * 1024 * 1024u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[7; 10]);
        let mut r = FrameReader::new(Cursor::new(bytes));
        match r.read_frame() {
            Err(FrameError::Truncated { expected, got }) => {
                assert_eq!((expected, got), (4 + 16 * 1024 * 1024, 14));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        assert!(r.body.capacity() <= 2 * 14 + READ_CHUNK);
    }

    #[test]
    fn truncated_prefix() {
        let mut r = FrameReader::new(Cursor::new(vec![1, 0]));
        assert!(matches!(
            r.read_frame(),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
    }

    /// Delivers its bytes one at a time, with a timeout error between each.
    struct Trickle {
        bytes: Vec<u8>,
        pos: usize,
        timeout_next: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.timeout_next = !self.timeout_next;
            if self.timeout_next {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.pos == self.bytes.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.bytes[self.pos];
            self.pos += 1;
            Ok(1)
        }
    }

    #[test]
    fn timeouts_resume_the_same_frame() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, b"hello").unwrap();
        write_frame(&mut bytes, b"world!").unwrap();
        let mut r = FrameReader::new(Trickle {
            bytes,
            pos: 0,
            timeout_next: false,
        });
        let mut frames = Vec::new();
        loop {
            match r.read_frame() {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(e) if e.is_timeout() => continue,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(frames, vec![b"hello".to_vec(), b"world!".to_vec()]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut r = FrameReader::with_max_len(Cursor::new(bytes), 1024);
            for _ in 0..8 {
                match r.read_frame() {
                    Ok(Some(f)) => prop_assert!(f.len() <= 1024),
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn round_trip(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut bytes = Vec::new();
            for f in &frames {
                write_frame(&mut bytes, f).unwrap();
            }
            let mut r = FrameReader::new(Cursor::new(bytes));
            let mut got = Vec::new();
            while let Some(f) = r.read_frame().unwrap() {
                got.push(f.to_vec());
            }
            prop_assert_eq!(got, frames);
        }
    }
}
