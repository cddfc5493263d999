//! `--latency-probe`: a click WAV streamed to a UDP socket on 127.0.0.1
//! gives exactly one `send` line per click, with its id, its offset in the
//! datagram and the datagram's sequence number.

mod common;

use std::sync::atomic::AtomicBool;

use common::*;
use proto::probe::{click_amplitude, parse_probe_file, ProbeKind};

#[test]
fn probe_lists_every_click_with_offset_and_seq() {
    let dir = TempDir::new("probe");
    let wav = dir.path("clicks.wav");
    let probe = dir.path("send.probe");
    // 15 datagrams of 441 samples; clicks on the last sample of datagrams
    // 2, 5 and 9, and one mid-datagram (offset 100 of datagram 12). A loud
    // but ordinary sample (not a click amplitude) in datagram 7 is ignored.
    let mut samples = vec![0i16; 441 * 15];
    let clicks = [
        (0u32, 2usize, 440usize),
        (1, 5, 440),
        (2, 9, 440),
        (3, 12, 100),
    ];
    for &(id, datagram, offset) in &clicks {
        samples[datagram * 441 + offset] = click_amplitude(id).unwrap();
    }
    samples[7 * 441 + 3] = -20_000;
    write_i16(&wav, 1, 44_100, &samples);
    let cap = Capture::start(None);
    let summary = stream(
        &[
            wav.to_str().unwrap(),
            &cap.dest(),
            "--speed",
            "20",
            "--latency-probe",
            probe.to_str().unwrap(),
        ],
        &AtomicBool::new(false),
    );
    assert_eq!(cap.finish().len(), 15);
    assert_eq!(summary.datagrams, 15);
    let text = std::fs::read_to_string(&probe).unwrap();
    let events = parse_probe_file(&text).unwrap();
    let got: Vec<(u32, u32, Option<u64>)> = events
        .iter()
        .map(|e| (e.click, e.offset, e.extra))
        .collect();
    let want: Vec<(u32, u32, Option<u64>)> = clicks
        .iter()
        .map(|&(id, d, o)| (id, o as u32, Some(d as u64)))
        .collect();
    assert_eq!(got, want);
    assert!(events
        .iter()
        .all(|e| e.kind == ProbeKind::Send && e.rate == 44_100));
    assert!(events.windows(2).all(|w| w[0].mono_ns < w[1].mono_ns));
}

#[test]
fn probe_needs_a_udp_destination() {
    let dir = TempDir::new("probe-tcp");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &[0; 441]);
    let line = [
        wav.to_str().unwrap(),
        "--tcp-listen",
        "127.0.0.1:0",
        "--latency-probe",
        "/dev/null",
    ];
    let err = audiostreamer::Streamer::new(&args(&line)).err().unwrap();
    assert!(err.to_string().contains("--latency-probe"), "{err}");
}
