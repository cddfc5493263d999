//! A TCP client of the Spec/Samples protocol: connect, then receive frames
//! with their boundaries preserved, or decoded [`Message`]s.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::framing::{FrameError, FrameReader, DEFAULT_MAX_FRAME_LEN};
use crate::message::{Message, MessageError};

/// Why a message could not be received.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The frame layer failed (I/O, timeout, oversized or truncated frame).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A whole frame arrived but is not a valid message.
    #[error("invalid message: {0}")]
    Message(#[from] MessageError),
}

impl RecvError {
    /// Whether this is a read timeout after which receiving may continue.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvError::Frame(e) if e.is_timeout())
    }
}

/// A connected client reading frames from a [`crate::TcpServer`] or any
/// server of the original protocol.
pub struct TcpClient {
    reader: FrameReader<TcpStream>,
    peer: SocketAddr,
}

impl TcpClient {
    /// Connects to `addr`, accepting frames up to [`DEFAULT_MAX_FRAME_LEN`].
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<Self> {
        Self::from_stream(TcpStream::connect(addr)?, DEFAULT_MAX_FRAME_LEN)
    }

    /// Connects to `addr` giving up after `timeout`, accepting frames up to `max_frame_len`.
    pub fn connect_timeout(
        addr: &SocketAddr,
        timeout: Duration,
        max_frame_len: usize,
    ) -> io::Result<Self> {
        Self::from_stream(TcpStream::connect_timeout(addr, timeout)?, max_frame_len)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: TcpStream, max_frame_len: usize) -> io::Result<Self> {
        let peer = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: FrameReader::with_max_len(stream, max_frame_len),
            peer,
        })
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Makes receive calls fail with a timeout error after `timeout` without
    /// data; a partly received frame is kept and the next call continues it.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Receives the next frame's bytes; `Ok(None)` when the server closed
    /// the connection cleanly between frames.
    pub fn recv_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.reader.read_frame()
    }

    /// Receives and decodes the next message; `Ok(None)` at a clean close.
    pub fn recv_message(&mut self) -> Result<Option<Message>, RecvError> {
        match self.reader.read_frame()? {
            Some(frame) => Ok(Some(Message::decode(frame)?)),
            None => Ok(None),
        }
    }
}
