//! The browser as a sender: the Send page (`/send`) and its WebSocket
//! (`/ws/send`), whose stream the node mixes like any other source.
//!
//! The wire format (documented for users in `docs/control-api.md`):
//!
//! 1. the client's first frame is text, a JSON header
//!    `{"name": "…", "rate": R, "channels": 1}`, where `R` must be the
//!    node's rate (the page resamples);
//! 2. the node answers with the text frame
//!    `{"type": "ready", "id": "IP:PORT", "rate": R, "samples": N}`, where
//!    `N` = ⌊R / 100⌋ samples are 10 ms and `id` is the source's id;
//! 3. every later frame is binary, one packet: a `u32` little-endian
//!    sequence number, then exactly `N` `i16` little-endian samples.
//!
//! Anything else closes the socket with a reason (close code 1008) and is
//! counted as a malformed packet of the source; a sender over the cap is
//! closed at once with 1013. Closing the socket ends the stream
//! (`reason=closed` in the event log) once what it sent has played.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRef, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::server::MAX_WS_MESSAGE;
use crate::nodecore::ingress::WebFrameError;
use crate::web_source::{SenderSlot, WebSenders};

const SEND_HTML: &str = include_str!("../../assets/send.html");
const SEND_JS: &str = include_str!("../../assets/send.js");
const SEND_WORKLET_JS: &str = include_str!("../../assets/send-worklet.js");

/// Where the page learns the node's rate (an attribute of its `<body>`).
const RATE_PLACEHOLDER: &str = "__NODE_RATE__";
/// How long the header may take after the socket opens.
const HEADER_WAIT: Duration = Duration::from_secs(10);

/// Close code of a frame that breaks the format (RFC 6455 "policy violation").
const CLOSE_MALFORMED: u16 = 1008;
/// Close code of a frame over the size limit ("message too big").
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when every sender place is taken ("try again later").
const CLOSE_FULL: u16 = 1013;

/// The page and its scripts, served without a token like the desk's
/// (the page passes its own `?token=` on to the WebSocket).
pub(crate) fn page_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<WebSenders>: FromRef<S>,
{
    Router::new()
        .route("/send", get(page))
        .route(
            "/send.js",
            get(|| async { ([(header::CONTENT_TYPE, JS)], SEND_JS) }),
        )
        .route(
            "/send-worklet.js",
            get(|| async { ([(header::CONTENT_TYPE, JS)], SEND_WORKLET_JS) }),
        )
}

/// `/ws/send`: goes behind the token like every state change.
pub(crate) fn stream_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<WebSenders>: FromRef<S>,
{
    Router::new().route("/ws/send", get(websocket))
}

const JS: &str = "text/javascript; charset=utf-8";

async fn page(State(senders): State<Arc<WebSenders>>) -> Response {
    let html = SEND_HTML.replace(RATE_PLACEHOLDER, &senders.rate().to_string());
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn websocket(
    State(senders): State<Arc<WebSenders>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .read_buffer_size(2 * MAX_WS_MESSAGE)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_sender(socket, senders, peer))
}

/// The JSON header, the client's first frame.
#[derive(serde::Deserialize)]
struct Header {
    name: String,
    rate: u32,
    channels: u32,
}

/// Why a sender's socket is closed by the node.
struct Refusal {
    code: u16,
    reason: String,
}

impl Refusal {
    fn malformed(why: WebFrameError) -> Self {
        let code = if why == WebFrameError::TooLong {
            CLOSE_TOO_BIG
        } else {
            CLOSE_MALFORMED
        };
        Self {
            code,
            reason: why.to_string(),
        }
    }
}

async fn serve_sender(mut socket: WebSocket, senders: Arc<WebSenders>, peer: SocketAddr) {
    let Some(slot) = senders.join(peer) else {
        log::warn!(
            "browser sender {peer} refused: {} senders at most",
            senders.max()
        );
        let reason = format!(
            "too many senders ({} at most); try again later",
            senders.max()
        );
        close(&mut socket, CLOSE_FULL, reason).await;
        return;
    };
    let outcome = stream(&mut socket, &senders, slot, peer).await;
    if let Err(refusal) = outcome {
        log::warn!("browser sender {peer} closed: {}", refusal.reason);
        close(&mut socket, refusal.code, refusal.reason).await;
    }
}

/// Takes the header and the packets until the client closes (`Ok`) or
/// breaks the format; the stream ends either way.
async fn stream(
    socket: &mut WebSocket,
    senders: &WebSenders,
    mut slot: SenderSlot,
    peer: SocketAddr,
) -> Result<(), Refusal> {
    let first = match tokio::time::timeout(HEADER_WAIT, socket.recv()).await {
        Ok(Some(Ok(message))) => message,
        Ok(Some(Err(e))) if too_long(&e) => {
            slot.malformed(MAX_WS_MESSAGE + 1, WebFrameError::TooLong);
            slot.close().await;
            return Err(Refusal::malformed(WebFrameError::TooLong));
        }
        // Gone before saying anything: no stream began.
        Ok(None | Some(Err(_))) => return Ok(()),
        Err(_) => {
            return Err(Refusal {
                code: CLOSE_MALFORMED,
                reason: "no header within 10 s".into(),
            })
        }
    };
    if let Err(why) = check_header(&first, senders.rate(), &mut slot) {
        slot.malformed(message_len(&first), why);
        slot.close().await;
        return Err(Refusal::malformed(why));
    }
    let ready = serde_json::json!({
        "type": "ready",
        "id": peer.to_string(),
        "rate": senders.rate(),
        "samples": senders.packet_samples(),
    });
    if socket
        .send(Message::Text(ready.to_string().into()))
        .await
        .is_err()
    {
        slot.close().await;
        return Ok(());
    }
    log::info!("browser sender {peer} connected");
    let mut samples = vec![0i16; senders.packet_samples()];
    let mut dropped = 0u64;
    let result = loop {
        let message = match socket.recv().await {
            Some(Ok(message)) => message,
            Some(Err(e)) if too_long(&e) => {
                slot.malformed(MAX_WS_MESSAGE + 1, WebFrameError::TooLong);
                break Err(Refusal::malformed(WebFrameError::TooLong));
            }
            Some(Err(_)) | None => break Ok(()),
        };
        let why = match &message {
            Message::Binary(bytes) => match parse_packet(bytes, &mut samples) {
                Ok(seq) => {
                    if !slot.packet(seq, &samples) {
                        dropped += 1;
                        if dropped == 1 {
                            log::warn!(
                                "browser sender {peer}: the mixer is behind; packets are dropped"
                            );
                        }
                    }
                    continue;
                }
                Err(why) => why,
            },
            Message::Text(_) => WebFrameError::Text,
            Message::Close(_) => break Ok(()),
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        slot.malformed(message_len(&message), why);
        break Err(Refusal::malformed(why));
    };
    slot.close().await;
    log::info!("browser sender {peer} ended its stream");
    result
}

/// Checks the header frame and takes the sender's name from it.
fn check_header(message: &Message, rate: u32, slot: &mut SenderSlot) -> Result<(), WebFrameError> {
    let Message::Text(text) = message else {
        return Err(WebFrameError::Header);
    };
    let header: Header = serde_json::from_str(text.as_str()).map_err(|_| WebFrameError::Header)?;
    if header.rate != rate {
        return Err(WebFrameError::Rate {
            rate: header.rate,
            node: rate,
        });
    }
    if header.channels != 1 {
        return Err(WebFrameError::Channels(header.channels));
    }
    slot.set_name(&header.name);
    Ok(())
}

/// A binary frame's sequence number, its samples decoded into `samples`
/// (whose length is the one packet size accepted).
pub(crate) fn parse_packet(bytes: &[u8], samples: &mut [i16]) -> Result<u32, WebFrameError> {
    let expected = 4 + 2 * samples.len();
    if bytes.len() != expected {
        return Err(WebFrameError::Size {
            len: bytes.len(),
            expected,
        });
    }
    let (seq, body) = bytes.split_at(4);
    for (sample, pair) in samples.iter_mut().zip(body.chunks_exact(2)) {
        *sample = i16::from_le_bytes([pair[0], pair[1]]);
    }
    Ok(u32::from_le_bytes([seq[0], seq[1], seq[2], seq[3]]))
}

fn message_len(message: &Message) -> usize {
    match message {
        Message::Text(t) => t.as_str().len(),
        Message::Binary(b) => b.len(),
        Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) => 0,
    }
}

/// Whether a receive failed on the size limit (tungstenite's capacity
/// error), rather than on the connection.
fn too_long(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("too long") || text.contains("Space limit")
}

async fn close(socket: &mut WebSocket, code: u16, reason: String) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
    // Wait (briefly) for the client's close, so the reason reaches it
    // before the connection goes.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_decode_little_endian_and_need_the_exact_size() {
        let mut samples = [0i16; 2];
        let bytes = [0x01, 0x02, 0x00, 0x00, 0x34, 0x12, 0xff, 0xff];
        assert_eq!(parse_packet(&bytes, &mut samples), Ok(0x0201));
        assert_eq!(samples, [0x1234, -1]);
        assert_eq!(
            parse_packet(&bytes[..7], &mut samples),
            Err(WebFrameError::Size {
                len: 7,
                expected: 8
            })
        );
        assert!(parse_packet(&[], &mut samples).is_err());
    }
}
