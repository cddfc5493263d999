//! Scenario tests over real UDP sockets on 127.0.0.1: what arrives, byte for
//! byte, for each input kind and output layout (fast, with `--speed`).

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::*;

#[test]
fn mono_16bit_44k_goes_out_bit_exact_with_a_short_last_datagram() {
    let dir = TempDir::new("exact");
    let wav = dir.path("a.wav");
    let samples = test_signal(2500);
    write_i16(&wav, 1, 44_100, &samples);
    let cap = Capture::start(None);
    let summary = stream(
        &[wav.to_str().unwrap(), &cap.dest(), "--speed", "20"],
        &AtomicBool::new(false),
    );
    let got = cap.finish();
    // ceil(2500 / 441) = 6 datagrams, the last with 2500 − 5×441 = 295 samples.
    assert_eq!(got.len(), 6);
    assert_eq!((summary.datagrams, summary.samples), (6, 2500));
    for (k, (r, chunk)) in got.iter().zip(samples.chunks(441)).enumerate() {
        assert_eq!(r.bytes, mono_bytes(k as u32, chunk), "datagram {k}");
    }
    assert_eq!(got[5].bytes.len(), 4 + 2 * 295);
}

#[test]
fn start_seq_wraps_at_2_pow_32() {
    let dir = TempDir::new("seq");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &test_signal(441 * 4));
    let cap = Capture::start(None);
    stream(
        &[
            wav.to_str().unwrap(),
            &cap.dest(),
            "--speed",
            "50",
            "--start-seq",
            "4294967294",
        ],
        &AtomicBool::new(false),
    );
    let seqs: Vec<u32> = decode_mono(&cap.finish())
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, vec![4_294_967_294, 4_294_967_295, 0, 1]);
}

#[test]
fn chunk_ms_sets_samples_per_datagram() {
    let dir = TempDir::new("chunk");
    let wav = dir.path("a.wav");
    let samples = test_signal(1000);
    write_i16(&wav, 1, 44_100, &samples);
    let cap = Capture::start(None);
    // round(7 × 44.1) = 309 samples: 3 full datagrams and one of 73.
    stream(
        &[
            wav.to_str().unwrap(),
            &cap.dest(),
            "--speed",
            "50",
            "--chunk-ms",
            "7",
        ],
        &AtomicBool::new(false),
    );
    let got = decode_mono(&cap.finish());
    let lens: Vec<usize> = got.iter().map(|(_, s)| s.len()).collect();
    assert_eq!(lens, vec![309, 309, 309, 73]);
    let all: Vec<i16> = got.into_iter().flat_map(|(_, s)| s).collect();
    assert_eq!(all, samples);
}

#[test]
fn stereo_48k_is_downmixed_and_resampled() {
    let dir = TempDir::new("stereo");
    let wav = dir.path("s.wav");
    // Left: a 1 kHz sine at 12 000; right: silence. Their average is the
    // sine at 6 000. Half a second at 48 kHz → 22 050 samples at 44.1 kHz.
    let left = sine(48_000, 1000.0, 12_000.0, 24_000);
    let interleaved: Vec<i16> = left.iter().flat_map(|&l| [l.round() as i16, 0]).collect();
    write_i16(&wav, 2, 48_000, &interleaved);
    let cap = Capture::start(None);
    let summary = stream(
        &[wav.to_str().unwrap(), &cap.dest(), "--speed", "20"],
        &AtomicBool::new(false),
    );
    let got = decode_mono(&cap.finish());
    assert_eq!(summary.samples, 22_050);
    assert_eq!(got.len(), 50); // 22 050 / 441
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (0..50).collect::<Vec<u32>>()
    );
    let all: Vec<i16> = got.into_iter().flat_map(|(_, s)| s).collect();
    assert_eq!(all.len(), 22_050);
    let (freq, rms) = freq_and_rms(&all[500..21_500], 44_100);
    assert!((freq - 1000.0).abs() < 5.0, "frequency {freq}");
    let expected_rms = 6000.0 / 2f64.sqrt();
    assert!(
        (rms / expected_rms - 1.0).abs() < 0.02,
        "rms {rms}, expected {expected_rms}"
    );
}

/// Writes one test file.
type WavWriter = Box<dyn Fn(&std::path::Path)>;

#[test]
fn other_encodings_reach_the_wire_as_i16() {
    let dir = TempDir::new("enc");
    let cases: Vec<(&str, WavWriter, Vec<i16>)> = vec![
        (
            "u8",
            Box::new(|p| write_int(p, 1, 44_100, 8, &[-128, -1, 0, 64, 127])),
            vec![-32768, -256, 0, 16384, 32512],
        ),
        (
            "i24",
            Box::new(|p| write_int(p, 1, 44_100, 24, &[0x12_3456, -0x80_0000, 0x7F_FFFF, 128])),
            vec![4660, -32768, 32767, 1],
        ),
        (
            "i32",
            Box::new(|p| write_int(p, 1, 44_100, 32, &[i32::MIN, 65_536 * 100, i32::MAX])),
            vec![-32768, 100, 32767],
        ),
        (
            "f32",
            Box::new(|p| write_f32(p, 1, 44_100, &[0.5, -0.25, 1.0, -1.0, 0.0])),
            vec![16384, -8192, 32767, -32768, 0],
        ),
        // Three channels averaged: (300 + 600 + 0) / 3 = 300.
        (
            "3ch",
            Box::new(|p| write_i16(p, 3, 44_100, &[300, 600, 0, -3, -3, -3])),
            vec![300, -3],
        ),
    ];
    for (name, write, expected) in cases {
        let wav = dir.path(&format!("{name}.wav"));
        write(&wav);
        let cap = Capture::start(None);
        stream(
            &[wav.to_str().unwrap(), &cap.dest(), "--speed", "50"],
            &AtomicBool::new(false),
        );
        let got = decode_mono(&cap.finish());
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].1, expected, "{name}");
    }
}

#[test]
fn stream_to_recorder_sends_stereo_without_seq() {
    let dir = TempDir::new("rec");
    let wav = dir.path("a.wav");
    let samples = test_signal(1000);
    write_i16(&wav, 1, 44_100, &samples);
    let cap = Capture::start(None);
    stream(
        &[
            wav.to_str().unwrap(),
            &cap.dest(),
            "--speed",
            "50",
            "--stream-to-recorder",
            "--chunk-ms",
            "5",
        ],
        &AtomicBool::new(false),
    );
    let got = cap.finish();
    // round(5 × 44.1) = 221 frames: 4 full datagrams of 884 bytes and one of 116 frames.
    let lens: Vec<usize> = got.iter().map(|r| r.bytes.len()).collect();
    assert_eq!(lens, vec![884, 884, 884, 884, 464]);
    let expected: Vec<u8> = samples
        .iter()
        .flat_map(|s| {
            let b = s.to_be_bytes();
            [b[0], b[1], b[0], b[1]]
        })
        .collect();
    assert_eq!(
        got.iter()
            .flat_map(|r| r.bytes.clone())
            .collect::<Vec<u8>>(),
        expected
    );
}

#[test]
fn loop_repeats_the_track_with_continuing_seq() {
    let dir = TempDir::new("loop");
    let wav = dir.path("a.wav");
    let samples = test_signal(1000); // not a multiple of 441: passes straddle datagrams
    write_i16(&wav, 1, 44_100, &samples);
    let stop = Arc::new(AtomicBool::new(false));
    let cap = Capture::start(Some((12, Arc::clone(&stop))));
    let summary = stream(
        &[
            wav.to_str().unwrap(),
            &cap.dest(),
            "--speed",
            "50",
            "--loop",
        ],
        &stop,
    );
    assert!(summary.interrupted);
    let got = decode_mono(&cap.finish());
    assert!(got.len() >= 12, "{} datagrams", got.len());
    for (k, (seq, s)) in got.iter().enumerate() {
        assert_eq!(*seq, k as u32);
        assert_eq!(s.len(), 441, "every datagram is full while looping");
    }
    let all: Vec<i16> = got.into_iter().flat_map(|(_, s)| s).collect();
    for (i, pass) in all.chunks(1000).enumerate() {
        assert_eq!(pass, &samples[..pass.len()], "pass {i}");
    }
}

#[test]
fn bind_sets_the_source_address() {
    let dir = TempDir::new("bind");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &test_signal(441));
    // Find a free port by binding and releasing it (the only way to name one).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let cap = Capture::start(None);
    let streamer = audiostreamer::Streamer::new(&args(&[
        wav.to_str().unwrap(),
        &cap.dest(),
        "--bind",
        &bind,
        "--speed",
        "50",
    ]))
    .unwrap();
    assert_eq!(streamer.udp_local_addr().unwrap().to_string(), bind);
    streamer.run(&AtomicBool::new(false)).unwrap();
    assert_eq!(cap.finish().len(), 1);
}

#[test]
fn ipv6_destination_gets_an_ipv6_source() {
    let Ok(rx) = std::net::UdpSocket::bind("[::1]:0") else {
        println!("SKIPPED: no IPv6 loopback on this machine");
        return;
    };
    rx.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let dir = TempDir::new("v6");
    let wav = dir.path("a.wav");
    let samples = test_signal(441);
    write_i16(&wav, 1, 44_100, &samples);
    let dest = rx.local_addr().unwrap().to_string();
    let streamer = audiostreamer::Streamer::new(&args(&[wav.to_str().unwrap(), &dest])).unwrap();
    assert!(streamer.udp_local_addr().unwrap().is_ipv6());
    streamer.run(&AtomicBool::new(false)).unwrap();
    let mut buf = [0u8; 2000];
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], mono_bytes(0, &samples).as_slice());
}
