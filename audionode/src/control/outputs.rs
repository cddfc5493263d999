//! The node's outputs as the control surface sees and changes them:
//! `GET/POST/DELETE /api/outputs` and the SDP of each RTP output
//! (`GET /mix.sdp`). The list here is the truth the pages see; each change
//! goes through a lock-free ring to the thread that sends that output (the
//! mixing thread for L16, applied before its next block; the tap thread
//! for Opus, which it encodes) and is announced to every WebSocket client.

use std::net::SocketAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::outputs::{Codec, OutputCommand, OutputKind, OutputSpec, MAX_OUTPUTS};

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
}

/// Body of `POST /api/outputs` (and the items of the list).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRequest {
    /// `udp-stereo` (the original format) or `rtp`.
    pub kind: OutputKind,
    /// `l16` (the default) or, for `rtp`, `opus`.
    #[serde(default)]
    pub codec: Codec,
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
    /// To the mixing thread, which sends L16.
    commands: rtrb::Producer<OutputCommand>,
    /// To the tap thread, which encodes and sends Opus (none: the node
    /// cannot, which start-up never leaves it with while it serves HTTP).
    opus_commands: Option<rtrb::Producer<OutputCommand>>,
}

impl Inner {
    /// Hands `command` to the thread that sends its kind of output.
    fn send(&mut self, command: OutputCommand) -> Result<(), ApiError> {
        let spec = match command {
            OutputCommand::Add(s) | OutputCommand::Remove(s) => s,
        };
        let ring = match spec.codec {
            Codec::L16 => &mut self.commands,
            Codec::Opus => self
                .opus_commands
                .as_mut()
                .ok_or_else(|| ApiError::BadRequest("this node cannot send Opus".into()))?,
        };
        ring.push(command).map_err(|_| ApiError::Busy)
    }
}

impl OutputRegistry {
    /// The start-up outputs, changed through `commands` (L16, to the
    /// mixing thread) and `opus_commands` (Opus, to the tap thread).
    pub fn new(
        start: Vec<OutputSpec>,
        commands: rtrb::Producer<OutputCommand>,
        opus_commands: Option<rtrb::Producer<OutputCommand>>,
        format: MixFormat,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                list: start,
                commands,
                opus_commands,
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
        // One output of a kind per address, whatever its codec.
        if let Some(there) = inner
            .list
            .iter()
            .find(|o| o.kind == spec.kind && o.addr == spec.addr)
        {
            return Err(ApiError::BadRequest(format!(
                "{} output to {} exists already ({})",
                spec.kind, spec.addr, there.codec
            )));
        }
        if inner.list.len() >= MAX_OUTPUTS {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_OUTPUTS} outputs"
            )));
        }
        inner.send(OutputCommand::Add(spec))?;
        inner.list.push(spec);
        Ok(OutputsView {
            outputs: inner.list.clone(),
        })
    }

    /// Removes a destination; the new list.
    pub fn remove(&self, kind: &str, addr: &str) -> Result<OutputsView, ApiError> {
        let kind: OutputKind = kind.parse().map_err(ApiError::NotFound)?;
        let wanted = parse(&OutputRequest {
            kind,
            codec: Codec::L16,
            addr: addr.to_string(),
        })
        .map_err(|e| ApiError::NotFound(e.message()))?;
        let mut inner = self.lock();
        let Some(i) = inner
            .list
            .iter()
            .position(|o| o.kind == wanted.kind && o.addr == wanted.addr)
        else {
            return Err(ApiError::NotFound(format!(
                "no {} output to {}",
                wanted.kind, wanted.addr
            )));
        };
        let spec = inner.list[i];
        inner.send(OutputCommand::Remove(spec))?;
        inner.list.remove(i);
        Ok(OutputsView {
            outputs: inner.list.clone(),
        })
    }

    /// The SDP of the RTP output to `dest`, or of the first RTP output.
    pub fn sdp(&self, dest: Option<&str>) -> Result<String, ApiError> {
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
            spec.codec == Codec::Opus,
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
    if request.codec == Codec::Opus && request.kind != OutputKind::Rtp {
        return Err(ApiError::BadRequest(format!(
            "codec opus is for rtp outputs; {} carries 16-bit PCM",
            request.kind
        )));
    }
    Ok(OutputSpec {
        kind: request.kind,
        codec: request.codec,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rings = (rtrb::Consumer<OutputCommand>, rtrb::Consumer<OutputCommand>);

    fn registry(rate: u32, block_frames: usize, start: Vec<OutputSpec>) -> (OutputRegistry, Rings) {
        let (tx, rx) = rtrb::RingBuffer::new(4);
        let (opus_tx, opus_rx) = rtrb::RingBuffer::new(4);
        let format = MixFormat {
            rate,
            block_frames,
            local: "127.0.0.1:4030".parse().unwrap(),
        };
        (
            OutputRegistry::new(start, tx, Some(opus_tx), format),
            (rx, opus_rx),
        )
    }

    fn request(kind: OutputKind, codec: Codec, addr: &str) -> OutputRequest {
        OutputRequest {
            kind,
            codec,
            addr: addr.into(),
        }
    }

    #[test]
    fn opus_outputs_have_their_sdp() {
        let start = vec![OutputSpec::opus("127.0.0.1:5006".parse().unwrap())];
        let (r, _rings) = registry(44_100, 220, start);
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
    fn opus_outputs_go_to_the_tap_and_are_listed_with_their_codec() {
        let (r, (mut mix, mut tap)) = registry(48_000, 240, Vec::new());
        let added = r
            .add(&request(OutputKind::Rtp, Codec::Opus, "127.0.0.1:5008"))
            .unwrap();
        let spec = added.outputs[0];
        assert_eq!(spec, OutputSpec::opus("127.0.0.1:5008".parse().unwrap()));
        assert_eq!(tap.pop().unwrap(), OutputCommand::Add(spec));
        assert!(mix.pop().is_err(), "the mixing thread does not hear of it");
        let json = serde_json::to_value(r.view()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"outputs": [{"kind": "rtp", "codec": "opus", "addr": "127.0.0.1:5008"}]})
        );
        assert!(r
            .sdp(Some("127.0.0.1:5008"))
            .unwrap()
            .contains("a=rtpmap:111 opus/48000/2"));
        // One RTP output per address, whatever the codec; Opus only over RTP.
        let again = r
            .add(&request(OutputKind::Rtp, Codec::L16, "127.0.0.1:5008"))
            .unwrap_err();
        assert_eq!(again.status(), 400);
        assert_eq!(
            again.message(),
            "rtp output to 127.0.0.1:5008 exists already (opus)"
        );
        let stereo = r
            .add(&request(
                OutputKind::UdpStereo,
                Codec::Opus,
                "127.0.0.1:5010",
            ))
            .unwrap_err();
        assert_eq!(
            stereo.message(),
            "codec opus is for rtp outputs; udp-stereo carries 16-bit PCM"
        );
        // Removed by kind and address, through the tap.
        assert!(r
            .remove("rtp", "127.0.0.1:5008")
            .unwrap()
            .outputs
            .is_empty());
        assert_eq!(tap.pop().unwrap(), OutputCommand::Remove(spec));
        assert!(mix.pop().is_err());
    }

    #[test]
    fn a_node_without_an_opus_encoder_refuses_opus_outputs() {
        let (tx, _rx) = rtrb::RingBuffer::new(4);
        let format = MixFormat {
            rate: 48_000,
            block_frames: 240,
            local: "127.0.0.1:4030".parse().unwrap(),
        };
        let r = OutputRegistry::new(Vec::new(), tx, None, format);
        let e = r
            .add(&request(OutputKind::Rtp, Codec::Opus, "127.0.0.1:5008"))
            .unwrap_err();
        assert_eq!(
            (e.status(), e.message()),
            (400, "this node cannot send Opus".to_string())
        );
        assert!(r.view().outputs.is_empty());
    }

    #[test]
    fn add_list_remove_and_sdp() {
        let (r, (mut rx, mut tap)) = registry(48_000, 480, Vec::new());
        assert!(r.sdp(None).is_err());
        let added = r
            .add(&request(OutputKind::Rtp, Codec::L16, "127.0.0.1:5004"))
            .unwrap();
        assert_eq!(added.outputs.len(), 1);
        let spec = added.outputs[0];
        assert_eq!(rx.pop().unwrap(), OutputCommand::Add(spec));
        assert!(tap.pop().is_err());
        let sdp = r.sdp(None).unwrap();
        assert!(sdp.contains("m=audio 5004 RTP/AVP 96\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:96 L16/48000/2\r\n"));
        assert!(sdp.contains("a=ptime:5\r\n"));
        assert_eq!(r.sdp(Some("127.0.0.1:5004")).unwrap(), sdp);
        assert_eq!(r.sdp(Some("127.0.0.1:9")).unwrap_err().status(), 404);
        // Twice is refused; a bad address too.
        assert_eq!(
            r.add(&request(OutputKind::Rtp, Codec::L16, "127.0.0.1:5004"))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            r.add(&request(OutputKind::UdpStereo, Codec::L16, "0.0.0.0:5004"))
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
