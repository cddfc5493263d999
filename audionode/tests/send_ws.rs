//! Browser senders' WebSocket (`/ws/send`) driven by a plain client: the
//! samples of a few known packets come out of the mix exactly, with the
//! sender's name in the API and the event log and `reason=closed` when the
//! socket closes; sequence numbers are tracked; frames that break the
//! format close the socket with a reason and are counted; a page on
//! another origin cannot open it, a token is needed when the node has
//! one, and senders past the cap are refused with a reason.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use audionode::{Args, Config, NodeHandle};
use common::*;
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// Opens `/ws/send` (with `query`, e.g. `?token=…`); no read waits
/// forever for the node.
fn open(api: SocketAddr, query: &str) -> Socket {
    let (ws, _) = tungstenite::connect(format!("ws://{api}/ws/send{query}")).unwrap();
    tcp(&ws).set_read_timeout(Some(DEADLINE)).unwrap();
    ws
}

fn tcp(ws: &Socket) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        _ => unreachable!("plain ws://"),
    }
}

fn header(name: &str, rate: u32, channels: u32) -> Message {
    let text = serde_json::json!({ "name": name, "rate": rate, "channels": channels });
    Message::text(text.to_string())
}

/// Sends the header and returns the node's `ready` message.
fn start(ws: &mut Socket, name: &str) -> Value {
    ws.send(header(name, RATE, 1)).unwrap();
    let ready = ws.read().unwrap();
    let ready: Value = serde_json::from_str(ready.to_text().unwrap()).unwrap();
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["rate"], RATE);
    assert_eq!(ready["samples"], CHUNK);
    ready
}

fn packet(seq: u32, samples: &[i16]) -> Message {
    let mut bytes = seq.to_le_bytes().to_vec();
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    Message::binary(bytes)
}

/// Sends packet k of `samples` at `start + k × 10 ms`, in `script` order
/// (as `send_paced` does for datagrams).
fn send_script(ws: &mut Socket, samples: &[i16], script: &[usize]) {
    let start = Instant::now();
    let mut latest = 0;
    for &k in script {
        latest = latest.max(k);
        let due = start + Duration::from_millis(10 * latest as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        ws.send(packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]))
            .unwrap();
    }
}

/// Reads until the node's close frame: (code, reason).
fn close_frame(ws: &mut Socket) -> (u16, String) {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Ok(Message::Close(None)) => return (0, String::new()),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

/// Closes from the client side and waits for the node's answer.
fn hang_up(mut ws: Socket) {
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
}

fn state(api: SocketAddr) -> Value {
    let (status, body) = http(api, "GET", "/api/state", None, &[]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_dropped(log: &std::path::Path, id: &str) -> String {
    let mut line = String::new();
    wait_for("the stream to be dropped", || {
        match events_of(log, id)
            .into_iter()
            .find(|l| l.starts_with("Dropped stream"))
        {
            Some(l) => {
                line = l;
                true
            }
            None => false,
        }
    });
    line
}

#[test]
fn a_sender_is_mixed_exactly_named_and_closed() {
    let dir = temp_dir("send-exact");
    let collector = Collector::start();
    let (node, log) = start_node_with_http(&dir, collector.addr, None);
    let api = node.http_addr().unwrap();
    let mut ws = open(api, "");
    let ready = start(&mut ws, "  Alto \"sax\"\n");
    let id = ready["id"].as_str().unwrap().to_string();
    let client = tcp(&ws).local_addr().unwrap().to_string();
    assert_eq!(id, client, "the id is the sender's address");

    let samples = signal(40 * CHUNK, 5);
    let script: Vec<usize> = (0..40).collect();
    // The name is in the API while the stream plays.
    let watcher = {
        let id = id.clone();
        thread::spawn(move || {
            let mut seen = Value::Null;
            wait_for("the sender in /api/state", || {
                seen = state(api)["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["id"] == id.as_str())
                    .map(|s| s["name"].clone())
                    .unwrap_or(Value::Null);
                !seen.is_null()
            });
            seen
        })
    };
    send_script(&mut ws, &samples, &script);
    let closed_at = Instant::now();
    hang_up(ws);
    assert_eq!(watcher.join().unwrap(), "Alto \"sax\"");
    let dropped = wait_dropped(&log, &id);
    // Closed once its 100 ms buffer played, long before the 300 ms timeout
    // would have said `timeout`.
    assert!(
        dropped.starts_with(
            "Dropped stream reason=closed received=40 lost=0 duplicates=0 reordered=0 late=0 malformed=0"
        ),
        "{dropped}"
    );
    assert!(closed_at.elapsed() < Duration::from_secs(5));
    node.stop().unwrap();
    let frames = collector.finish();

    let start = start_frame(&log, &id);
    assert!(frames.len() >= start + samples.len());
    for (i, &(l, r)) in frames.iter().enumerate() {
        let want = i
            .checked_sub(start)
            .and_then(|k| samples.get(k))
            .copied()
            .unwrap_or(0);
        assert_eq!((l, r), (want, want), "frame {i}");
    }
    let events = events_of(&log, &id);
    assert!(
        events
            .iter()
            .any(|l| l == r#"Named name="Alto \"sax\"" by=browser"#),
        "{events:?}"
    );
}

#[test]
fn sequence_numbers_are_tracked() {
    let dir = temp_dir("send-seq");
    let collector = Collector::start();
    let (node, log) = start_node_with_http(&dir, collector.addr, None);
    let mut ws = open(node.http_addr().unwrap(), "");
    let id = start(&mut ws, "drums")["id"].as_str().unwrap().to_string();
    let samples = signal(20 * CHUNK, 6);
    // 4 before 3, 7 twice, 10 missing.
    let script = [
        0, 1, 2, 4, 3, 5, 6, 7, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    ];
    send_script(&mut ws, &samples, &script);
    hang_up(ws);
    let dropped = wait_dropped(&log, &id);
    assert!(
        dropped.starts_with(
            "Dropped stream reason=closed received=20 lost=1 duplicates=1 reordered=1"
        ),
        "{dropped}"
    );
    node.stop().unwrap();
}

#[test]
fn frames_that_break_the_format_close_the_socket_and_are_counted() {
    let dir = temp_dir("send-malformed");
    let (node, log) = start_node_with_http(&dir, "127.0.0.1:9".parse().unwrap(), None);
    let api = node.http_addr().unwrap();
    let good = signal(CHUNK, 7);
    let cases: Vec<(Vec<Message>, u16, &str)> = vec![
        (
            vec![Message::binary(vec![0u8; 886])],
            1008,
            "the first frame must be the JSON header",
        ),
        (
            vec![Message::text("{\"name\": 5}")],
            1008,
            "the first frame must be the JSON header",
        ),
        (
            vec![header("x", 48_000, 1)],
            1008,
            "rate 48000 Hz is not the node's 44100 Hz",
        ),
        (vec![header("x", RATE, 2)], 1008, "2 channels; only mono"),
        (
            vec![header("x", RATE, 1), Message::binary(vec![0u8; 100])],
            1008,
            "binary frame of 100 bytes; a packet is 886 bytes",
        ),
        (
            vec![header("x", RATE, 1), Message::binary(vec![0u8; 5000])],
            1009,
            "longer than the node accepts",
        ),
    ];
    for (k, (frames, code, reason)) in cases.into_iter().enumerate() {
        let mut ws = open(api, "");
        for frame in frames {
            ws.send(frame).unwrap();
        }
        let (got_code, got_reason) = close_frame(&mut ws);
        assert_eq!(got_code, code, "{reason}: {got_reason}");
        assert!(got_reason.contains(reason), "{reason}: {got_reason}");
        // Counted before any packet made it a source: from an unknown sender.
        wait_for("the malformed frame to be counted", || {
            state(api)["node"]["malformed_unknown"] == k + 1
        });
    }
    // A text frame in the middle of a stream: counted against the source,
    // which ends as a closed stream.
    let mut ws = open(api, "");
    let id = start(&mut ws, "bass")["id"].as_str().unwrap().to_string();
    ws.send(packet(0, &good)).unwrap();
    ws.send(Message::text("hello")).unwrap();
    let (code, reason) = close_frame(&mut ws);
    assert_eq!(
        (code, reason.as_str()),
        (1008, "a text frame after the header")
    );
    let dropped = wait_dropped(&log, &id);
    assert!(
        dropped.starts_with("Dropped stream reason=closed received=2 lost=0 duplicates=0 reordered=0 late=0 malformed=1"),
        "{dropped}"
    );
    node.stop().unwrap();
}

#[test]
fn another_origin_cannot_send_and_a_token_is_needed() {
    let dir = temp_dir("send-origin");
    let (node, _log) = start_node_with_http(&dir, "127.0.0.1:9".parse().unwrap(), Some("s3cret"));
    let api = node.http_addr().unwrap();
    let refused = |origin: Option<&str>, query: &str| {
        let mut request = format!("ws://{api}/ws/send{query}")
            .into_client_request()
            .unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
        }
        match tungstenite::connect(request) {
            Ok(_) => None,
            Err(tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
            Err(e) => panic!("{e}"),
        }
    };
    // A hostile page, even one that knows the token, is refused.
    assert_eq!(
        refused(Some("http://evil.example"), "?token=s3cret"),
        Some(403)
    );
    assert_eq!(
        refused(
            Some(&format!("http://127.0.0.1:{}", api.port() + 1)),
            "?token=s3cret"
        ),
        Some(403)
    );
    assert_eq!(refused(None, ""), Some(401));
    assert_eq!(refused(None, "?token=wrong"), Some(401));
    // The page's own origin with the token is let in.
    let origin = format!("http://127.0.0.1:{}", api.port());
    assert_eq!(refused(Some(&origin), "?token=s3cret"), None);
    // The page itself needs no token (it carries its own on to the socket).
    let (status, body) = http(api, "GET", "/send", None, &[]);
    assert_eq!(status, 200);
    assert!(body.contains(&format!("data-rate=\"{RATE}\"")), "{body}");
    node.stop().unwrap();
}

#[test]
fn senders_past_the_cap_are_refused_with_a_reason() {
    let dir = temp_dir("send-cap");
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec!["127.0.0.1:9".into()],
        log_file: Some(dir.join("audionode.log")),
        sample_rate: RATE,
        max_sources: 2,
        timeout_ms: 1000,
        http: "127.0.0.1:0".into(),
        rt_priority: 0,
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let node: NodeHandle = audionode::start(Config::from_args(&args, |_| None).unwrap()).unwrap();
    let api = node.http_addr().unwrap();
    let mut a = open(api, "");
    start(&mut a, "a");
    let mut b = open(api, "");
    start(&mut b, "b");
    let mut c = open(api, "");
    let (code, reason) = close_frame(&mut c);
    assert_eq!(code, 1013);
    assert_eq!(reason, "too many senders (2 at most); try again later");
    // A place freed is a place taken.
    hang_up(a);
    let mut d = None;
    wait_for("a freed place", || {
        let mut ws = open(api, "");
        ws.send(header("d", RATE, 1)).unwrap();
        match ws.read() {
            Ok(Message::Text(_)) => {
                d = Some(ws);
                true
            }
            _ => false,
        }
    });
    hang_up(d.unwrap());
    hang_up(b);
    node.stop().unwrap();
}
