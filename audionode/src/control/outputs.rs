//! The node's outputs as the control surface sees and changes them:
//! `GET/POST/DELETE /api/outputs` and the SDP of each RTP output
//! (`GET /mix.sdp`). The list here is the truth the pages see; each change
//! goes to the mixing thread through a lock-free ring (applied before its
//! next block) and is announced to every WebSocket client.

use std::net::SocketAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::outputs::{OutputCommand, OutputKind, OutputSpec, MAX_OUTPUTS};

use super::state::ApiError;

/// What the SDP of the mix needs to know about the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixFormat {
    /// Sample rate.
    pub rate: u32,
    /// Frames per mixed block.
    pub block_frames: usize,
    /// The address the mix is sent from (for `o=`).
    pub local: SocketAddr,
    /// The Opus `--rtp-dest` streams (sent by the tap, not in the list).
    pub opus: Vec<SocketAddr>,
}

/// Body of `POST /api/outputs` (and the items of the list).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRequest {
    /// `udp-stereo` (the original format) or `rtp`.
    pub kind: OutputKind,
    /// `HOST:PORT` (an IP address: names are not resolved here).
    pub addr: String,
}

/// The outputs list as pages and the API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputsView {
    /// Every destination, in the order they were added.
    pub outputs: Vec<OutputSpec>,
}

/// The outputs and the way to change them.
pub struct OutputRegistry {
    inner: Mutex<Inner>,
    format: MixFormat,
}

struct Inner {
    list: Vec<OutputSpec>,
    commands: rtrb::Producer<OutputCommand>,
}

impl OutputRegistry {
    /// The start-up outputs, changed through `commands`.
    pub fn new(
        start: Vec<OutputSpec>,
        commands: rtrb::Producer<OutputCommand>,
        format: MixFormat,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                list: start,
                commands,
            }),
            format,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current list.
    pub fn view(&self) -> OutputsView {
        OutputsView {
            outputs: self.lock().list.clone(),
        }
    }

    /// Adds a destination; the new list.
    pub fn add(&self, request: &OutputRequest) -> Result<OutputsView, ApiError> {
        let spec = parse(request)?;
        let mut inner = self.lock();
        if inner.list.contains(&spec) {
            return Err(ApiError::BadRequest(format!(
                "{} output to {} exists already",
                spec.kind, spec.addr
            )));
        }
        if inner.list.len() >= MAX_OUTPUTS {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_OUTPUTS} outputs"
            )));
        }
        inner
            .commands
            .push(OutputCommand::Add(spec))
            .map_err(|_| ApiError::Busy)?;
        inner.list.push(spec);
        Ok(OutputsView {
            outputs: inner.list.clone(),
        })
    }

    /// Removes a destination; the new list.
    pub fn remove(&self, kind: &str, addr: &str) -> Result<OutputsView, ApiError> {
        let kind: OutputKind = kind.parse().map_err(ApiError::NotFound)?;
        let spec = parse(&OutputRequest {
            kind,
            addr: addr.to_string(),
        })
        .map_err(|e| ApiError::NotFound(e.message()))?;
        let mut inner = self.lock();
        let Some(i) = inner.list.iter().position(|o| *o == spec) else {
            return Err(ApiError::NotFound(format!(
                "no {} output to {}",
                spec.kind, spec.addr
            )));
        };
        inner
            .commands
            .push(OutputCommand::Remove(spec))
            .map_err(|_| ApiError::Busy)?;
        inner.list.remove(i);
        Ok(OutputsView {
            outputs: inner.list.clone(),
        })
    }

    /// The SDP of the RTP output to `dest`, or of the first RTP output.
    pub fn sdp(&self, dest: Option<&str>) -> Result<String, ApiError> {
        let f = &self.format;
        let opus = match dest {
            Some(text) => text.parse().ok().filter(|a| f.opus.contains(a)),
            None => f.opus.first().copied(),
        };
        if let Some(addr) = opus {
            return Ok(crate::node::mix_sdp(
                addr,
                f.local,
                f.rate,
                f.block_frames,
                true,
            ));
        }
        let list = self.lock().list.clone();
        let mut rtp = list.iter().filter(|o| o.kind == OutputKind::Rtp);
        let spec = match dest {
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    ApiError::BadRequest(format!("dest {text:?} is not an IP:PORT"))
                })?;
                rtp.find(|o| o.addr == addr)
                    .ok_or_else(|| ApiError::NotFound(format!("no RTP output to {addr}")))?
            }
            None => rtp.next().ok_or_else(|| {
                ApiError::NotFound(
                    "the node sends no RTP: start it with --rtp-dest or POST /api/outputs".into(),
                )
            })?,
        };
        Ok(crate::node::mix_sdp(
            spec.addr,
            self.format.local,
            self.format.rate,
            self.format.block_frames,
            false,
        ))
    }
}

fn parse(request: &OutputRequest) -> Result<OutputSpec, ApiError> {
    let addr: SocketAddr = request.addr.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "addr {:?} is not an IP:PORT (e.g. 127.0.0.1:5004)",
            request.addr
        ))
    })?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(ApiError::BadRequest(format!(
            "addr {addr} cannot receive the mix"
        )));
    }
    Ok(OutputSpec {
        kind: request.kind,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (OutputRegistry, rtrb::Consumer<OutputCommand>) {
        let (tx, rx) = rtrb::RingBuffer::new(4);
        let format = MixFormat {
            rate: 48_000,
            block_frames: 480,
            local: "127.0.0.1:4030".parse().unwrap(),
            opus: Vec::new(),
        };
        (OutputRegistry::new(Vec::new(), tx, format), rx)
    }

    #[test]
    fn opus_outputs_have_their_sdp() {
        let (tx, _rx) = rtrb::RingBuffer::new(4);
        let format = MixFormat {
            rate: 44_100,
            block_frames: 220,
            local: "127.0.0.1:4030".parse().unwrap(),
            opus: vec!["127.0.0.1:5006".parse().unwrap()],
        };
        let r = OutputRegistry::new(Vec::new(), tx, format);
        let sdp = r.sdp(None).unwrap();
        assert!(
            sdp.contains("m=audio 5006 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"),
            "{sdp}"
        );
        assert!(
            sdp.contains("a=fmtp:111 stereo=1; sprop-stereo=1; useinbandfec=1\r\na=ptime:10\r\n")
        );
        assert_eq!(r.sdp(Some("127.0.0.1:5006")).unwrap(), sdp);
    }

    #[test]
    fn add_list_remove_and_sdp() {
        let (r, mut rx) = registry();
        assert!(r.sdp(None).is_err());
        let added = r
            .add(&OutputRequest {
                kind: OutputKind::Rtp,
                addr: "127.0.0.1:5004".into(),
            })
            .unwrap();
        assert_eq!(added.outputs.len(), 1);
        let spec = added.outputs[0];
        assert_eq!(rx.pop().unwrap(), OutputCommand::Add(spec));
        let sdp = r.sdp(None).unwrap();
        assert!(sdp.contains("m=audio 5004 RTP/AVP 96\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:96 L16/48000/2\r\n"));
        assert!(sdp.contains("a=ptime:5\r\n"));
        assert_eq!(r.sdp(Some("127.0.0.1:5004")).unwrap(), sdp);
        assert_eq!(r.sdp(Some("127.0.0.1:9")).unwrap_err().status(), 404);
        // Twice is refused; a bad address too.
        assert_eq!(
            r.add(&OutputRequest {
                kind: OutputKind::Rtp,
                addr: "127.0.0.1:5004".into()
            })
            .unwrap_err()
            .status(),
            400
        );
        assert_eq!(
            r.add(&OutputRequest {
                kind: OutputKind::UdpStereo,
                addr: "0.0.0.0:5004".into()
            })
            .unwrap_err()
            .status(),
            400
        );
        assert_eq!(r.remove("rtp", "127.0.0.1:5005").unwrap_err().status(), 404);
        assert_eq!(r.remove("tcp", "127.0.0.1:5004").unwrap_err().status(), 404);
        assert!(r
            .remove("rtp", "127.0.0.1:5004")
            .unwrap()
            .outputs
            .is_empty());
        assert_eq!(rx.pop().unwrap(), OutputCommand::Remove(spec));
    }
}
