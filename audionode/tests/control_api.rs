//! The control surface over real sockets: every REST endpoint (valid and
//! invalid input), token rules, the WebSocket's publish-subscribe, metrics,
//! and the effect of controls on the node's actual UDP output.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn source_ids(http_addr: SocketAddr) -> Vec<String> {
    let (status, body) = http(http_addr, "GET", "/api/state", None, &[]);
    assert_eq!(status, 200, "{body}");
    json(&body)["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rest_endpoints_change_state_and_refuse_bad_input() {
    let dir = temp_dir("api-rest");
    let collector = Collector::start();
    let (node, _log) = start_node_with_http(&dir, collector.addr, None);
    let api = node.http_addr().unwrap();

    let (status, body) = http(api, "GET", "/api/state", None, &[]);
    assert_eq!(status, 200, "{body}");
    let empty = json(&body);
    assert_eq!(empty["master"], 1.0, "{empty}");
    assert_eq!(empty["sources"], serde_json::json!([]), "{empty}");
    assert_eq!(empty["listen"], node.local_addr().to_string(), "{empty}");
    assert_eq!(empty["node"]["streams"], 0, "{empty}");

    let (source, sender) = constant_stream(node.local_addr(), 1000, 3.0);
    let id = source.to_string();
    wait_for("the stream to appear in the state", || {
        source_ids(api) == vec![id.clone()]
    });

    // Valid changes.
    let (status, body) = http(api, "PUT", "/api/master", Some(r#"{"volume":0.5}"#), &[]);
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"type":"master","volume":0.5}"#)
    );
    let path = format!("/api/sources/{id}");
    let (status, body) = http(
        api,
        "PUT",
        &path,
        Some(r#"{"volume":0.25,"balance":-0.5}"#),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["volume"], 0.25);
    let (status, body) = http(api, "PUT", &path, Some(r#"{"mute":true,"solo":true}"#), &[]);
    assert_eq!(status, 200, "{body}");
    let state = json(&http(api, "GET", "/api/state", None, &[]).1);
    assert_eq!(state["master"], 0.5);
    let s = &state["sources"][0];
    assert_eq!(
        (s["volume"].as_f64(), s["balance"].as_f64()),
        (Some(0.25), Some(-0.5))
    );
    assert_eq!(
        (s["mute"].as_bool(), s["solo"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(s["stats"]["received"].as_u64().unwrap() > 0);

    // Invalid input: a clear message, and nothing changes.
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        (
            "PUT",
            "/api/master",
            Some(r#"{"volume":3}"#),
            400,
            "volume 3 is outside 0 ..= 2",
        ),
        (
            "PUT",
            "/api/master",
            Some(r#"{"volume":-1}"#),
            400,
            "outside",
        ),
        (
            "PUT",
            "/api/master",
            Some("{volume:"),
            400,
            "malformed JSON",
        ),
        (
            "PUT",
            "/api/master",
            Some(r#"{"volume":1,"extra":1}"#),
            400,
            "unknown field",
        ),
        (
            "PUT",
            &path,
            Some(r#"{"balance":2}"#),
            400,
            "balance 2 is outside -1 ..= 1",
        ),
        (
            "PUT",
            &path,
            Some(r#"{"volume":"loud"}"#),
            400,
            "malformed JSON",
        ),
        ("PUT", &path, Some("{}"), 400, "nothing to change"),
        (
            "PUT",
            "/api/sources/127.0.0.1:1",
            Some(r#"{"mute":true}"#),
            404,
            "no active source 127.0.0.1:1",
        ),
        (
            "PUT",
            "/api/sources/nonsense",
            Some(r#"{"mute":true}"#),
            404,
            "no active source nonsense",
        ),
        (
            "PUT",
            &path,
            Some(r#"{"volume":0.5,"volume_db":-6}"#),
            400,
            "not both",
        ),
        (
            "PUT",
            &path,
            Some(r#"{"volume_db":7}"#),
            400,
            "volume_db 7 is above 6.02",
        ),
        (
            "PUT",
            "/api/master",
            Some(r#"{"volume_db":"-inf"}"#),
            400,
            "malformed JSON",
        ),
        ("PUT", "/api/master", Some("{}"), 400, "nothing to change"),
        (
            "GET",
            "/api/sources/127.0.0.1:1",
            None,
            404,
            "no active source",
        ),
        (
            "GET",
            "/api/sources/ssrc:1a2b3c4d",
            None,
            404,
            "no active source",
        ),
        ("GET", "/api/nothing", None, 404, "no such endpoint"),
    ];
    for &(method, path, body, want_status, want_text) in cases {
        let (status, reply) = http(api, method, path, body, &[]);
        assert_eq!(status, want_status, "{method} {path} {body:?}: {reply}");
        assert!(
            reply.contains(want_text),
            "{method} {path} {body:?}: {reply}"
        );
        assert!(reply.starts_with(r#"{"error":"#), "{reply}");
    }
    // An empty body (the helper sends no Content-Type without one).
    let (status, reply) = http(
        api,
        "PUT",
        "/api/master",
        None,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("malformed JSON"), "{reply}");
    let (status, reply) = http(
        api,
        "DELETE",
        "/api/master",
        None,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(
        (status, reply.as_str()),
        (405, r#"{"error":"method not allowed here"}"#)
    );
    let huge = format!(r#"{{"volume":1{}}}"#, " ".repeat(20_000));
    let (status, _) = http(api, "PUT", "/api/master", Some(&huge), &[]);
    assert_eq!(status, 413, "oversized request");
    let after = json(&http(api, "GET", "/api/state", None, &[]).1);
    assert_eq!(after["master"], 0.5, "refused requests changed nothing");
    assert_eq!(after["sources"][0]["volume"], 0.25);

    // The page and its assets are served from the binary.
    let (status, page) = http(api, "GET", "/", None, &[]);
    assert_eq!(status, 200);
    assert!(page.contains("<title>audionode mixing desk</title>"));
    assert_eq!(http(api, "GET", "/app.js", None, &[]).0, 200);
    assert_eq!(http(api, "GET", "/style.css", None, &[]).0, 200);

    // Metrics with per-source labels.
    let (status, metrics) = http(api, "GET", "/metrics", None, &[]);
    assert_eq!(status, 200);
    assert!(metrics.contains("audionode_packets_total "), "{metrics}");
    assert!(metrics.contains("audionode_deadline_misses_total "));
    assert!(metrics.contains("audionode_clipped_samples_total "));
    assert!(
        metrics.contains(&format!(
            r#"audionode_source_received_total{{source="{id}",name=""}}"#
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        r#"audionode_source_jitter_seconds{{source="{id}",name=""}}"#
    )));

    sender.join().unwrap();
    wait_for("the stream to leave the state", || {
        source_ids(api).is_empty()
    });
    node.stop().unwrap();
}

#[test]
fn a_token_guards_the_api_websocket_and_metrics_but_not_the_page() {
    let dir = temp_dir("api-token");
    let collector = Collector::start();
    let (node, _log) = start_node_with_http(&dir, collector.addr, Some("s3cret"));
    let api = node.http_addr().unwrap();
    for path in ["/api/state", "/api/master", "/metrics"] {
        let (status, body) = http(api, "GET", path, None, &[]);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("missing or wrong token"));
        assert_eq!(
            http(api, "GET", path, None, &[("Authorization", "Bearer wrong")]).0,
            401
        );
        assert_eq!(
            http(
                api,
                "GET",
                path,
                None,
                &[("Authorization", "Bearer s3cret")]
            )
            .0,
            200
        );
        assert_eq!(
            http(api, "GET", &format!("{path}?token=s3cret"), None, &[]).0,
            200
        );
    }
    let (status, _) = http(api, "PUT", "/api/master", Some(r#"{"volume":0.1}"#), &[]);
    assert_eq!(status, 401);
    let (status, _) = http(api, "GET", "/api/sources/127.0.0.1:9", None, &[]);
    assert_eq!(status, 401, "a source's state needs the token");
    let (status, _) = http(
        api,
        "GET",
        "/api/sources/127.0.0.1:9?token=s3cret",
        None,
        &[],
    );
    assert_eq!(status, 404, "with the token: no such source");
    assert_eq!(
        http(api, "GET", "/", None, &[]).0,
        200,
        "the page itself needs no token"
    );
    assert!(
        tungstenite::connect(format!("ws://{api}/ws")).is_err(),
        "WebSocket without token refused"
    );
    let (mut ws, _) = tungstenite::connect(format!("ws://{api}/ws?token=s3cret")).unwrap();
    let first = ws.read().unwrap().into_text().unwrap();
    assert!(first.starts_with(r#"{"type":"state""#));
    node.stop().unwrap();
}

#[test]
fn websocket_clients_see_each_others_changes_and_stream_arrivals() {
    let dir = temp_dir("api-ws");
    let collector = Collector::start();
    let (node, _log) = start_node_with_http(&dir, collector.addr, None);
    let api = node.http_addr().unwrap();
    let connect = || {
        let (mut ws, _) = tungstenite::connect(format!("ws://{api}/ws")).unwrap();
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(DEADLINE)).unwrap();
        }
        let state = json(&ws.read().unwrap().into_text().unwrap());
        assert_eq!(state["type"], "state");
        ws
    };
    let mut a = connect();
    let mut b = connect();
    // Reads messages until one satisfies `pred` (skipping meters and others).
    let next = |ws: &mut tungstenite::WebSocket<_>, pred: &dyn Fn(&Value) -> bool| -> Value {
        loop {
            let msg = json(&ws.read().unwrap().into_text().unwrap());
            if pred(&msg) {
                return msg;
            }
        }
    };

    let (source, sender) = constant_stream(node.local_addr(), 1000, 2.0);
    let id = source.to_string();
    let joined = next(&mut b, &|m| m["type"] == "joined");
    assert_eq!(joined["source"]["id"], id.as_str());
    next(&mut a, &|m| m["type"] == "joined");

    // A change from client A reaches B (and A), and the REST state.
    a.send(tungstenite::Message::text(format!(
        r#"{{"type":"set_source","id":"{id}","volume":0.5}}"#
    )))
    .unwrap();
    let change = next(&mut b, &|m| m["type"] == "source");
    assert_eq!(
        (change["id"].as_str(), change["volume"].as_f64()),
        (Some(id.as_str()), Some(0.5))
    );
    next(&mut a, &|m| m["type"] == "source");
    let state = json(&http(api, "GET", "/api/state", None, &[]).1);
    assert_eq!(state["sources"][0]["volume"], 0.5);
    // A REST change reaches both.
    http(api, "PUT", "/api/master", Some(r#"{"volume":0.75}"#), &[]);
    assert_eq!(next(&mut a, &|m| m["type"] == "master")["volume"], 0.75);
    assert_eq!(next(&mut b, &|m| m["type"] == "master")["volume"], 0.75);
    // Meters with stats arrive at ~20 Hz.
    let meters = next(&mut a, &|m| {
        m["type"] == "meters" && !m["sources"].as_array().unwrap().is_empty()
    });
    assert!(meters["sources"][0]["stats"]["received"].as_u64().unwrap() > 0);
    // Bad messages get an error back to the sender alone; nothing changes.
    a.send(tungstenite::Message::text(
        r#"{"type":"set_master","volume":7}"#,
    ))
    .unwrap();
    let error = next(&mut a, &|m| m["type"] == "error");
    assert_eq!(error["status"], 400);
    a.send(tungstenite::Message::text("not json")).unwrap();
    assert!(next(&mut a, &|m| m["type"] == "error")["message"]
        .as_str()
        .unwrap()
        .contains("malformed message"));
    // An oversized message closes the connection.
    let _ = a.send(tungstenite::Message::text("x".repeat(10_000)));
    let closed = (0..1000).any(|_| a.read().is_err());
    assert!(closed, "oversized WebSocket message refused");

    sender.join().unwrap();
    let left = next(&mut b, &|m| m["type"] == "left");
    assert_eq!(left["id"], id.as_str());
    node.stop().unwrap();
}

#[test]
fn one_source_the_master_and_gains_in_db() {
    let dir = temp_dir("api-db");
    let collector = Collector::start();
    let (node, log) = start_node_with_http(&dir, collector.addr, None);
    let api = node.http_addr().unwrap();
    let (source, sender) = constant_stream(node.local_addr(), 8000, 3.0);
    let id = source.to_string();
    wait_for("the stream to appear", || {
        source_ids(api) == vec![id.clone()]
    });
    // The id percent-encoded, as a client should send an opaque id.
    let encoded = format!("/api/sources/{}", id.replace(':', "%3A"));
    let (status, body) = http(api, "PUT", &encoded, Some(r#"{"volume_db":-6}"#), &[]);
    assert_eq!(status, 200, "{body}");
    let v = json(&body)["volume"].as_f64().unwrap();
    assert!((v - 0.501_187).abs() < 1e-5, "{body}");
    // Muted: the post-fader peak is silent, the pre-fader peak is not.
    let (status, body) = http(api, "PUT", &encoded, Some(r#"{"mute":true}"#), &[]);
    assert_eq!(status, 200, "{body}");
    let mut one = Value::Null;
    wait_for("a silent post-fader and a live pre-fader peak", || {
        let (status, body) = http(api, "GET", &encoded, None, &[]);
        assert_eq!(status, 200, "{body}");
        one = json(&body);
        one["peak"] == 0.0 && (one["input_peak"].as_f64().unwrap() - 8000.0 / 32768.0).abs() < 1e-3
    });
    assert_eq!(one["id"], id.as_str());
    assert_eq!(one["health"]["level"], "good", "{one}");
    for counter in [
        "received",
        "lost",
        "recovered",
        "duplicates",
        "reordered",
        "late",
        "malformed",
        "overflow",
        "restarts",
        "reanchors",
        "size_changes",
        "stray",
        "jitter_ms",
        "buffered_ms",
        "target_ms",
        "drift_drops",
        "drift_repeats",
    ] {
        assert!(one["stats"][counter].is_number(), "{counter} in {one}");
    }
    let state = json(&http(api, "GET", "/api/state", None, &[]).1);
    assert!(
        state["sources"][0]["input_peak"].as_f64().unwrap() > 0.2,
        "{state}"
    );

    // The master in dB; null is silence.
    let (status, body) = http(api, "PUT", "/api/master", Some(r#"{"volume_db":-12}"#), &[]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(api, "GET", "/api/master", None, &[]);
    assert_eq!(status, 200, "{body}");
    let master = json(&body);
    assert_eq!(master["volume_db"], -12.0, "{master}");
    assert!(master["node"]["packets"].as_u64().unwrap() > 0, "{master}");
    assert_eq!(master["node"]["streams"], 1, "{master}");
    http(
        api,
        "PUT",
        "/api/master",
        Some(r#"{"volume_db":null}"#),
        &[],
    );
    let master = json(&http(api, "GET", "/api/master", None, &[]).1);
    assert_eq!(
        (&master["volume"], &master["volume_db"]),
        (&serde_json::json!(0.0), &Value::Null),
        "{master}"
    );
    // The event log names each change and who made it: the mute at once
    // (with the level it applies to), the master once it has settled,
    // after its two moves, as one line.
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    let master_line = "[                 node] Master volume=0 (-inf dB) by=127.0.0.1:";
    wait_for("the master change in the event log", || {
        lines().contains(master_line)
    });
    sender.join().unwrap();
    node.stop().unwrap();
    let text = lines();
    let changes: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("] Controls ") || l.contains("] Master "))
        .map(|l| &l[15..])
        .collect();
    assert_eq!(changes.len(), 2, "{text}");
    assert!(
        changes[0].starts_with(&format!(
            "[{id:>21}] Controls volume=0.501 (-6.0 dB) balance=0.00 mute=on solo=off by=127.0.0.1:"
        )),
        "{text}"
    );
    assert!(changes[1].starts_with(master_line), "{text}");
}

/// Mean level of the left channel over frames whose value is stable.
fn steady_level(frames: &[(i16, i16)], from: usize, len: usize) -> (i16, i16) {
    let window = &frames[from..from + len];
    assert!(
        window.windows(2).all(|w| w[0] == w[1]),
        "level steady in the window"
    );
    window[0]
}

#[test]
fn controls_change_the_udp_output_by_the_expected_ratio() {
    let dir = temp_dir("api-output");
    let collector = Collector::start();
    let (node, _log) = start_node_with_http(&dir, collector.addr, None);
    let api = node.http_addr().unwrap();
    let (source, sender) = constant_stream(node.local_addr(), 8000, 3.0);
    let id = source.to_string();
    wait_for("audio at full level", || collector.len() > 44_100 / 2);
    http(
        api,
        "PUT",
        &format!("/api/sources/{id}"),
        Some(r#"{"volume":0.5,"balance":0.5}"#),
        &[],
    );
    let changed_at = collector.len();
    std::thread::sleep(Duration::from_millis(400));
    http(
        api,
        "PUT",
        &format!("/api/sources/{id}"),
        Some(r#"{"mute":true}"#),
        &[],
    );
    let muted_at = collector.len();
    sender.join().unwrap();
    node.stop().unwrap();
    let frames = collector.finish();
    assert_eq!(steady_level(&frames, changed_at - 2000, 1000), (8000, 8000));
    // Volume 0.5 with balance +0.5: left × 0.5 × 0.5, right × 0.5.
    assert_eq!(steady_level(&frames, changed_at + 4000, 4000), (2000, 4000));
    assert_eq!(steady_level(&frames, muted_at + 4000, 4000), (0, 0));
}

#[test]
fn an_occupied_http_port_is_a_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = temp_dir("api-occupied");
    let args = audionode::Args {
        listen: Some("127.0.0.1:0".into()),
        log_file: Some(dir.join("x.log")),
        http: addr.to_string(),
        sample_rate: RATE,
        max_sources: 1,
        timeout_ms: 1000,
        ..Default::default()
    };
    let config = audionode::Config::from_args(&args, |_| None).unwrap();
    let err = audionode::start(config).err().unwrap();
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!("cannot serve the control surface on {addr}")),
        "{text}"
    );
}
