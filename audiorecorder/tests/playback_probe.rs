//! `--latency-probe` with real playback (ALSA → the headless PulseAudio null
//! sink): stereo datagrams carrying clicks 0..6 give exactly those ids, in
//! order, both as `arrive` (network thread) and as `play` (audio callback)
//! events. No timing is asserted; waits are condition waits.

mod common;

use std::time::Duration;

use audiorecorder::stats::Stats;
use common::audio::*;
use common::*;
use proto::probe::{click_amplitude, parse_probe_file, ProbeKind};

const LIMIT: Duration = Duration::from_secs(20);
const CLICKS: u32 = 6;

#[test]
fn probe_lists_every_click_played_in_order() {
    let Some(_env) = audio_or_skip() else { return };
    let dir = temp_dir("probe");
    let probe = dir.join("rec.probe");
    let rec = audiorecorder::start(config(&[
        "--no-record",
        "0",
        "--bind",
        "127.0.0.1",
        "--sample-rate",
        "48000",
        "--jitter-backoff",
        "50",
        // Never drop audio to bound the latency (a sound server stall must
        // not cost a click); the ring then holds 10.5 s.
        "--max-latency-ms",
        "5000",
        "--latency-probe",
        probe.to_str().unwrap(),
    ]))
    .unwrap();
    let stats = rec.stats();
    let addr = rec.local_addr().unwrap();
    let tx = sender();
    wait_until("the audio callback to run", LIMIT, || {
        send_stereo(&tx, addr, &[0; 2 * PERIOD], PERIOD, None);
        std::thread::sleep(Duration::from_millis(10));
        Stats::get(&stats.callbacks) >= 30
    });
    // 100 ms per click: 4800 frames of silence with the click (left =
    // right) on frame 4799 (the last of a 480-frame datagram); then
    // silence until every click was handed to the device.
    let mut signal = vec![0i16; 2 * 4800 * CLICKS as usize];
    for id in 0..CLICKS {
        let at = 2 * (4800 * id as usize + 4799);
        let a = click_amplitude(id).unwrap();
        signal[at] = a;
        signal[at + 1] = a;
    }
    send_stereo(&tx, addr, &signal, PERIOD, Some(RATE as u32));
    let silence = vec![0i16; 2 * PERIOD * 10];
    wait_until("all clicks played", LIMIT, || {
        send_stereo(&tx, addr, &silence, PERIOD, Some(RATE as u32));
        let text = std::fs::read_to_string(&probe).unwrap_or_default();
        text.lines().filter(|l| l.starts_with("play ")).count() >= CLICKS as usize
    });
    rec.stop().unwrap();
    let events = parse_probe_file(&std::fs::read_to_string(&probe).unwrap()).unwrap();
    let ids = |kind| -> Vec<u32> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.click)
            .collect()
    };
    let all: Vec<u32> = (0..CLICKS).collect();
    assert_eq!(ids(ProbeKind::Arrive), all);
    assert_eq!(ids(ProbeKind::Play), all);
    for e in events.iter().filter(|e| e.kind == ProbeKind::Arrive) {
        assert_eq!((e.offset, e.rate), (PERIOD as u32 - 1, 48_000));
    }
    for e in events.iter().filter(|e| e.kind == ProbeKind::Play) {
        assert_eq!(e.rate, 48_000);
    }
}
