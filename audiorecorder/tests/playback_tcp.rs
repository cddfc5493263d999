//! TCP fallback playback under the headless PulseAudio set-up: a mono Spec
//! is played on both channels (and recorded as mono), with the same
//! backoff as UDP.

mod common;

use std::time::{Duration, Instant};

use audiorecorder::stats::Stats;
use common::audio::*;
use common::*;
use proto::{Message, Spec, TcpServer};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn mono_tcp_stream_plays_on_both_channels() {
    let Some(env) = audio_or_skip() else { return };
    let capture = Capture::start(&env);
    wait_until("parec to deliver audio", LIMIT, || {
        capture.frames() > PERIOD
    });

    let dir = temp_dir("playback-tcp");
    let path = dir.join("rec.wav");
    let server = TcpServer::bind("127.0.0.1:0", Default::default()).unwrap();
    server
        .set_new_client_message(Some(&Spec::int16(1, RATE as u32).to_bytes()))
        .unwrap();
    let addr = server.local_addr().to_string();
    let rec = audiorecorder::start(config(&[
        path.to_str().unwrap(),
        "--tcp",
        &addr,
        // The tone is located by correlation: no drift corrections
        // shifting it by a frame (the level control has its own tests).
        "--no-level-control",
    ]))
    .unwrap();
    let stats = rec.stats();
    wait_until("connect", LIMIT, || server.client_count() == 1);
    wait_until("the audio callback to run", LIMIT, || {
        Stats::get(&stats.callbacks) >= 30
    });

    let tone: Vec<i16> = (0..RATE / 2)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / RATE as f64).sin()) as i16
        })
        .collect();
    let start = Instant::now();
    for (k, chunk) in tone.chunks(PERIOD).enumerate() {
        server
            .broadcast(&Message::Samples(chunk.to_vec()).to_bytes())
            .unwrap();
        let due = start + Duration::from_millis(10 * (k as u64 + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    wait_until("the tone to be played", LIMIT, || {
        Stats::get(&stats.played_frames) >= tone.len() as u64
    });
    let at = capture.frames();
    wait_until("the capture to pass the end", LIMIT, || {
        capture.frames() > at + RATE / 4
    });
    let summary = rec.stop().unwrap();
    let (left, right) = capture.finish_stereo();

    assert_eq!(summary.stats.resumes, 1, "{:?}", summary.stats);
    let (off, corr) = locate(
        &left,
        &tone.iter().map(|&s| f64::from(s)).collect::<Vec<_>>(),
        0,
    );
    assert!(corr > 0.99, "tone not found on the left (corr {corr})");
    let same = left[off..off + tone.len()]
        .iter()
        .zip(&right[off..off + tone.len()])
        .all(|(l, r)| l == r);
    assert!(same, "mono must play identically on both channels");
    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.channels, 1);
    assert!(samples == tone);
}
