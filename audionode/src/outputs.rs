//! Where the mix goes: recorders in the original stereo format and RTP
//! receivers, a set the control surface can change while the node runs
//! (through a lock-free ring the run loop drains, so the mixing thread
//! never waits for it). Room for [`MAX_OUTPUTS`] is made at start: adding
//! one allocates nothing on the mixing thread. Opus outputs are not sent
//! from here but from the tap thread ([`crate::opus_out`]), which encodes.

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::nodecore::event::{Event, EventKind, NODE};
use crate::nodecore::name::SourceName;
use crate::nodecore::source_id::SourceId;
use crate::outbox::Outbox;
use crate::rtp_io::RtpStream;

/// Frames per original-format datagram: 368 × 4 bytes = 1472, the largest
/// payload that does not fragment on Ethernet.
pub const FRAMES_PER_DATAGRAM: usize = proto::MAX_UNFRAGMENTED_PAYLOAD / 4;

/// Most destinations at once.
pub const MAX_OUTPUTS: usize = 64;

/// The format an output is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// The original format: `[left: i16 BE][right: i16 BE] × n`, no header.
    UdpStereo,
    /// RTP L16 stereo with RTCP sender reports.
    Rtp,
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputKind::UdpStereo => "udp-stereo",
            OutputKind::Rtp => "rtp",
        })
    }
}

impl FromStr for OutputKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "udp-stereo" => Ok(OutputKind::UdpStereo),
            "rtp" => Ok(OutputKind::Rtp),
            other => Err(format!("unknown output kind {other:?} (udp-stereo or rtp)")),
        }
    }
}

/// How an output's audio is coded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    /// 16-bit PCM as it is mixed (the original format; RTP L16).
    #[default]
    L16,
    /// Opus (RFC 7587), RTP only: encoded on the tap thread, never on the
    /// mixing thread.
    Opus,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::L16 => "l16",
            Codec::Opus => "opus",
        })
    }
}

/// One destination of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct OutputSpec {
    /// The format.
    pub kind: OutputKind,
    /// The coding (Opus for RTP outputs only).
    pub codec: Codec,
    /// Where to.
    pub addr: SocketAddr,
}

impl OutputSpec {
    /// An uncompressed output.
    pub fn l16(kind: OutputKind, addr: SocketAddr) -> Self {
        Self {
            kind,
            codec: Codec::L16,
            addr,
        }
    }

    /// An Opus RTP output.
    pub fn opus(addr: SocketAddr) -> Self {
        Self {
            kind: OutputKind::Rtp,
            codec: Codec::Opus,
            addr,
        }
    }
}

impl fmt::Display for OutputSpec {
    /// `kind:addr`, or `rtp/opus:addr`: how the event log names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.codec {
            Codec::L16 => write!(f, "{}:{}", self.kind, self.addr),
            Codec::Opus => write!(f, "{}/opus:{}", self.kind, self.addr),
        }
    }
}

/// A change of the output set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCommand {
    /// Start sending to a destination.
    Add(OutputSpec),
    /// Stop sending to it.
    Remove(OutputSpec),
}

#[derive(Debug)]
enum Dest {
    Stereo(SocketAddr),
    Rtp(Box<RtpStream>),
}

impl Dest {
    fn spec(&self) -> OutputSpec {
        match self {
            Dest::Stereo(addr) => OutputSpec::l16(OutputKind::UdpStereo, *addr),
            Dest::Rtp(s) => OutputSpec::l16(OutputKind::Rtp, s.dest()),
        }
    }
}

/// Sends mixed blocks to every destination. A destination that fails is
/// reported once per run of failures, through the event log.
pub struct Outputs {
    socket: UdpSocket,
    /// RTP outputs leave from their own pair of sockets (RTP, and RTCP on
    /// the port + 1, as RFC 3550 has it), so receivers' reports go there
    /// and never to the original-format socket.
    rtp: (UdpSocket, UdpSocket),
    dests: Vec<Dest>,
    rate: u32,
    cname: SourceName,
    buf: Vec<u8>,
    failing_since: Option<Duration>,
    errors: u64,
}

impl Outputs {
    /// The start-up set, sent from `socket` (original format) and `rtp`
    /// (RTP and RTCP); `cname` names the node in its RTP streams' RTCP.
    pub fn new(
        socket: UdpSocket,
        rtp: (UdpSocket, UdpSocket),
        rate: u32,
        cname: SourceName,
        start: &[OutputSpec],
    ) -> Self {
        let mut outputs = Self {
            socket,
            rtp,
            dests: Vec::with_capacity(MAX_OUTPUTS),
            rate,
            cname,
            buf: vec![0; proto::MAX_UNFRAGMENTED_PAYLOAD],
            failing_since: None,
            errors: 0,
        };
        for &spec in start {
            outputs.apply(OutputCommand::Add(spec), Duration::ZERO);
        }
        outputs
    }

    /// Adds or removes a destination (adding one already there, removing
    /// one that is not, adding beyond [`MAX_OUTPUTS`] or an Opus one, which
    /// is the tap's, changes nothing).
    pub fn apply(&mut self, command: OutputCommand, now: Duration) {
        match command {
            OutputCommand::Add(spec) => {
                if spec.codec != Codec::L16
                    || self.dests.len() >= MAX_OUTPUTS
                    || self.dests.iter().any(|d| d.spec() == spec)
                {
                    return;
                }
                self.dests.push(match spec.kind {
                    OutputKind::UdpStereo => Dest::Stereo(spec.addr),
                    OutputKind::Rtp => Dest::Rtp(Box::new(RtpStream::new(
                        spec.addr, self.rate, now, self.cname,
                    ))),
                });
            }
            OutputCommand::Remove(spec) => {
                if let Some(i) = self.dests.iter().position(|d| d.spec() == spec) {
                    if let Dest::Rtp(stream) = self.dests.remove(i) {
                        stream.bye(&self.rtp.1, &mut self.buf);
                    }
                }
            }
        }
    }

    /// Sends one block (interleaved stereo) to every destination.
    pub fn send(&mut self, interleaved: &[i16], now: Duration, outbox: &mut Outbox) {
        let mut ok = true;
        for dest in &mut self.dests {
            let result = match dest {
                Dest::Stereo(addr) => {
                    let mut result = Ok(());
                    for frames in interleaved.chunks(2 * FRAMES_PER_DATAGRAM) {
                        let Ok(len) = proto::encode_stereo(frames, &mut self.buf) else {
                            continue;
                        };
                        if let Err(e) = self.socket.send_to(&self.buf[..len], *addr) {
                            result = Err(e);
                        }
                    }
                    result
                }
                Dest::Rtp(stream) => stream.send_block(
                    &self.rtp.0,
                    &self.rtp.1,
                    interleaved,
                    self.rate,
                    now,
                    &mut self.buf,
                ),
            };
            if let Err(e) = result {
                ok = false;
                self.errors += 1;
                if self.failing_since.is_none() {
                    self.failing_since = Some(now);
                    outbox.push_event(Event {
                        at: now,
                        source: SourceId::Addr(dest.spec().addr),
                        kind: EventKind::SendFailed {
                            errno: e.raw_os_error().unwrap_or(0),
                        },
                    });
                }
            }
        }
        if ok {
            if let Some(since) = self.failing_since.take() {
                outbox.push_event(Event {
                    at: now,
                    source: NODE,
                    kind: EventKind::SendRecovered {
                        errors: std::mem::take(&mut self.errors),
                        over_ms: (now - since).as_millis() as u64,
                    },
                });
            }
        }
    }

    /// Ends every RTP stream with a BYE (the node stops).
    pub fn close(&mut self) {
        for dest in &self.dests {
            if let Dest::Rtp(stream) = dest {
                stream.bye(&self.rtp.1, &mut self.buf);
            }
        }
    }
}
