//! Opus on RTP hops, on real sockets: the streamer's Opus through a node
//! at 44.1 kHz (decoded and resampled off the mixing thread) into a
//! recorder; ffmpeg's libopus as a third-party sender into the node; the
//! streamer's Opus straight into a recorder at 48 kHz; the node's Opus
//! output, from the start or added through the control surface while it
//! runs, into a recorder; and a lossy hop
//! through `audioimpair` whose losses the next packets' FEC recovers.
//! A lossy codec's output is close, not equal: each recording correlates
//! with the input after alignment.
//!
//! Without ffmpeg the peer test is skipped with a reason, except under
//! `CI=true`, where a missing tool is a failure.

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use clap::Parser;
use common::*;

/// The node's timeout for a silent stream: short, so it drops soon.
const TIMEOUT_MS: &str = "500";

/// The left channel of a recording.
fn left(frames: &[Frame]) -> Vec<i16> {
    frames.iter().map(|f| f.0).collect()
}

/// The node's log line of the stream it dropped last.
fn dropped_line(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.contains("Dropped stream"))
        .unwrap_or_default()
        .to_string()
}

/// Starts a rig whose node also listens for RTP; returns it and the RTP address.
fn rtp_rig(dir: &std::path::Path) -> (Rig, String) {
    let rig = Rig::start(dir, TIMEOUT_MS, &["--rtp-listen", "127.0.0.1:0"]);
    let rtp = rig.node.rtp_listen_addrs()[0].to_string();
    (rig, rtp)
}

/// Waits for the node to drop the one stream, then finishes the rig.
fn finish_after_drop(rig: Rig) -> (Vec<i16>, String) {
    let log = rig.log.clone();
    wait_for("the stream to be dropped", || {
        !dropped_line(&log).is_empty()
    });
    let recording = left(&rig.finish());
    (recording, dropped_line(&log))
}

#[test]
fn streamer_opus_through_a_44k_node_keeps_the_signal() {
    let _serial = serial();
    let dir = temp_dir("opus-node");
    let (rig, rtp) = rtp_rig(&dir);
    let input = signal(RATE as usize * 3, 3, 8000.0);
    let wav = dir.join("in.wav");
    write_wav(&wav, &input);
    let mut run = StreamerRun::start(&[wav.to_str().unwrap(), &rtp, "--rtp", "--codec", "opus"]);
    run.join();
    let (recording, line) = finish_after_drop(rig);
    let (lag, r) = best_alignment(&recording, &input);
    assert!(r >= 0.95, "correlation {r:.4} at lag {lag}");
    assert_eq!(field(&line, "lost"), 0, "{line}");
    eprintln!("Opus through the node: correlation {r:.4} at lag {lag} frames");
}

#[test]
fn streamer_opus_into_a_48k_recorder_keeps_the_signal() {
    let _serial = serial();
    let dir = temp_dir("opus-recorder");
    let out = dir.join("rec.wav");
    let recorder = opus_recorder(&out);
    let dest = recorder.local_addr().unwrap().to_string();
    // The input at 44.1 kHz: the streamer resamples it to Opus's 48 kHz.
    let input = signal(RATE as usize * 2, 4, 8000.0);
    let wav = dir.join("in.wav");
    write_wav(&wav, &input);
    let mut run = StreamerRun::start(&[
        wav.to_str().unwrap(),
        &dest,
        "--rtp",
        "--codec",
        "opus",
        "--chunk-ms",
        "20",
        "--channels",
        "2",
    ]);
    run.join();
    let stats = recorder.stats();
    wait_for("the recorder to have the stream", || {
        stats.snapshot().recorded_frames >= 2 * 48_000 - 960
    });
    thread::sleep(Duration::from_millis(300));
    recorder.stop().unwrap();
    let recording = left(&read_stereo_wav(&out));
    // The input resampled to 48 kHz by index (a close enough reference).
    let want: Vec<i16> = (0..input.len() * 48_000 / RATE as usize)
        .map(|i| input[i * RATE as usize / 48_000])
        .collect();
    let (lag, r) = best_alignment(&recording, &want);
    assert!(r >= 0.95, "correlation {r:.4} at lag {lag}");
    assert_eq!(stats.snapshot().rtp_lost_packets, 0);
}

/// A recorder of RTP at 48 kHz into `out`, on a port of its own.
fn opus_recorder(out: &std::path::Path) -> audiorecorder::Recorder {
    start_recorder(&[
        out.to_str().unwrap(),
        "--rtp",
        "0",
        "--bind",
        "127.0.0.1",
        "--sample-rate",
        "48000",
    ])
}

/// Streams 2 s of a signal (`salt`) in the original format to `node` at
/// its 44.1 kHz and waits for the node to drop the stream; the signal.
fn stream_one_source(
    dir: &std::path::Path,
    node: &audionode::NodeHandle,
    log: &std::path::Path,
    salt: u32,
) -> Vec<i16> {
    let input = signal(RATE as usize * 2, salt, 8000.0);
    let wav = dir.join("in.wav");
    write_wav(&wav, &input);
    let node_addr = node.local_addr().to_string();
    let mut run = StreamerRun::start(&[wav.to_str().unwrap(), &node_addr]);
    run.join();
    wait_for("the stream to be dropped", || !dropped_line(log).is_empty());
    thread::sleep(Duration::from_millis(300));
    input
}

/// Stops `recorder` and checks that `out` holds `input` (at 44.1 kHz),
/// resampled to 48 kHz through Opus: correlation ≥ 0.95, one RTP stream.
fn assert_recorded_at_48k(recorder: audiorecorder::Recorder, out: &std::path::Path, input: &[i16]) {
    let stats = recorder.stats();
    recorder.stop().unwrap();
    let recording = left(&read_stereo_wav(out));
    let want: Vec<i16> = (0..input.len() * 48_000 / RATE as usize)
        .map(|i| input[i * RATE as usize / 48_000])
        .collect();
    let (lag, r) = best_alignment(&recording, &want);
    assert!(r >= 0.95, "correlation {r:.4} at lag {lag}");
    assert_eq!(stats.snapshot().rtp_streams, 1);
}

#[test]
fn the_nodes_opus_output_into_a_48k_recorder_keeps_the_signal() {
    let _serial = serial();
    let dir = temp_dir("opus-output");
    let out = dir.join("rec.wav");
    let recorder = opus_recorder(&out);
    let dest = recorder.local_addr().unwrap().to_string();
    let log = dir.join("node.log");
    let sdp = dir.join("mix.sdp");
    let node = start_node(
        &log,
        &[
            "--rtp-dest",
            &dest,
            "--rtp-codec",
            "opus",
            "--sdp-file",
            sdp.to_str().unwrap(),
            "--jitter-ms",
            JITTER_MS,
            "--timeout-ms",
            TIMEOUT_MS,
        ],
    );
    let text = std::fs::read_to_string(&sdp).unwrap();
    assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"), "{text}");
    let input = stream_one_source(&dir, &node, &log, 7);
    node.stop().unwrap();
    assert_recorded_at_48k(recorder, &out, &input);
}

/// One HTTP/1.1 request to the node's control surface on loopback (no
/// token needed there): the status and the body.
fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

#[test]
fn an_opus_output_added_while_the_node_runs_reaches_a_recorder() {
    let _serial = serial();
    let dir = temp_dir("opus-output-added");
    let out = dir.join("rec.wav");
    let recorder = opus_recorder(&out);
    let dest = recorder.local_addr().unwrap().to_string();
    let log = dir.join("node.log");
    let args = audionode::Args::parse_from([
        "audionode",
        "--listen",
        "127.0.0.1:0",
        "--dest",
        "127.0.0.1:9",
        "--http",
        "127.0.0.1:0",
        "--log-file",
        log.to_str().unwrap(),
        "--plc",
        "off",
        "--jitter-ms",
        JITTER_MS,
        "--timeout-ms",
        TIMEOUT_MS,
    ]);
    let node = audionode::start(audionode::Config::from_args(&args, |_| None).unwrap()).unwrap();
    let api = node.http_addr().unwrap();
    let body = format!(r#"{{"kind":"rtp","codec":"opus","addr":"{dest}"}}"#);
    let (status, listed) = http(api, "POST", "/api/outputs", &body);
    assert_eq!(status, 201, "{listed}");
    assert_eq!(
        listed,
        format!(
            r#"{{"outputs":[{{"kind":"udp-stereo","codec":"l16","addr":"127.0.0.1:9"}},{{"kind":"rtp","codec":"opus","addr":"{dest}"}}]}}"#
        )
    );
    let (status, sdp) = http(api, "GET", &format!("/mix.sdp?dest={dest}"), "");
    assert_eq!(status, 200, "{sdp}");
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"), "{sdp}");
    let input = stream_one_source(&dir, &node, &log, 11);
    let path = format!("/api/outputs/rtp/{dest}");
    let (status, listed) = http(api, "DELETE", &path, "");
    assert_eq!(
        (status, listed.as_str()),
        (
            200,
            r#"{"outputs":[{"kind":"udp-stereo","codec":"l16","addr":"127.0.0.1:9"}]}"#
        )
    );
    node.stop().unwrap();
    assert_recorded_at_48k(recorder, &out, &input);
}

#[test]
fn ffmpeg_libopus_feeds_the_node() {
    if !have("ffmpeg") {
        return;
    }
    let _serial = serial();
    let dir = temp_dir("opus-ffmpeg");
    let (rig, rtp) = rtp_rig(&dir);
    let input = signal(RATE as usize * 2, 5, 8000.0);
    let wav = dir.join("in.wav");
    write_wav(&wav, &input);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .arg("-i")
        .arg(&wav)
        .args(["-c:a", "libopus", "-b:a", "64k", "-payload_type", "111"])
        .args(["-f", "rtp"])
        .arg(format!("rtp://{rtp}"))
        .stdout(Stdio::null())
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let (recording, line) = finish_after_drop(rig);
    // ffmpeg reads its input in bursts, so the node's drift control drops
    // and repeats frames now and then: each piece is found where it
    // belongs give or take those.
    let (lag, whole) = best_alignment(&recording, &input);
    let r = piecewise_correlation(&recording, &input, lag);
    assert!(
        r >= 0.95,
        "median piece correlation {r:.4} (whole {whole:.4} at lag {lag}); {line}"
    );
    eprintln!("ffmpeg's Opus through the node: median piece correlation {r:.4}; {line}");
}

#[test]
fn losses_on_the_way_are_recovered_from_fec() {
    let _serial = serial();
    let dir = temp_dir("opus-loss");
    let (rig, rtp) = rtp_rig(&dir);
    let args = audioimpair::Args::parse_from([
        "audioimpair",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &rtp,
        "--loss",
        "0.05",
        "--seed",
        "11",
    ]);
    let proxy = audioimpair::Proxy::start(audioimpair::Config::from_args(&args).unwrap()).unwrap();
    let input = signal(RATE as usize * 3, 6, 8000.0);
    let wav = dir.join("in.wav");
    write_wav(&wav, &input);
    let to = proxy.listen_addr().to_string();
    let mut run = StreamerRun::start(&[wav.to_str().unwrap(), &to, "--rtp", "--codec", "opus"]);
    run.join();
    let truth = proxy.stop();
    let (recording, line) = finish_after_drop(rig);
    let dropped = truth.sources[0].dropped;
    assert!(dropped > 0, "the proxy lost packets");
    let recovered = field(&line, "recovered");
    // A lone loss is recovered from the packet after it; only the first
    // of two losses in a row is not (and none at the very end).
    assert!(
        recovered > 0 && recovered <= dropped,
        "{dropped} dropped; {line}"
    );
    let (lag, r) = best_alignment(&recording, &input);
    assert!(r >= 0.9, "correlation {r:.4} at lag {lag}");
    eprintln!("{dropped} packets lost, {recovered} recovered by FEC, correlation {r:.4}");
}

/// Whether `tool` runs; under CI its absence fails the test.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        let why = format!("{tool} is missing (scripts/setup.sh installs it)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED Opus peer test: {why}");
    }
    ok
}
