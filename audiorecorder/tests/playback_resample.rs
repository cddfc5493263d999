//! Playback when the device runs at another rate than the stream: a
//! 44.1 kHz stream is resampled (rubato) to a device opened at 48 kHz. The
//! captured tone must have the sent pitch, which it would not if the
//! samples were played unconverted (1 kHz would come out at 1088 Hz). The
//! device is picked by name (`--device pulse`).

mod common;

use std::time::Duration;

use audiorecorder::stats::Stats;
use common::audio::*;
use common::*;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn stream_rate_is_converted_to_the_device_rate() {
    let Some(env) = audio_or_skip() else { return };
    // A misspelt --device is an error at start, not a silent fallback.
    let err = audiorecorder::start(config(&["--no-record", "0", "--device", "no-such-device"]))
        .err()
        .expect("unknown device");
    assert!(
        format!("{err:#}").contains("no audio output device matches"),
        "{err:#}"
    );

    let capture = Capture::start(&env);
    wait_until("parec to deliver audio", LIMIT, || {
        capture.frames() > PERIOD
    });

    let rec = audiorecorder::start(config(&[
        "--no-record",
        "0",
        "--bind",
        "127.0.0.1",
        "--sample-rate",
        "44100",
        "--device-rate",
        "48000",
        // By id: the ALSA `pulse` device (the default sink is the null sink).
        "--device",
        "pulse",
    ]))
    .unwrap();
    let stats = rec.stats();
    wait_until("the audio callback to run", LIMIT, || {
        Stats::get(&stats.callbacks) >= 30
    });
    let tone: Vec<i16> = (0..44_100)
        .flat_map(|i| {
            let v =
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 44_100.0).sin()) as i16;
            [v, v]
        })
        .collect();
    send_stereo(
        &sender(),
        rec.local_addr().unwrap(),
        &tone,
        441,
        Some(44_100),
    );
    wait_until("the tone to be played", LIMIT, || {
        Stats::get(&stats.played_frames) >= 47_000
    });
    let at = capture.frames();
    wait_until("the capture to pass the end", LIMIT, || {
        capture.frames() > at + RATE / 4
    });
    let summary = rec.stop().unwrap();
    let captured = capture.finish();

    // About 48000 frames played for 44100 sent (the last chunk may wait).
    assert!(
        (47_000..=48_000).contains(&summary.stats.played_frames),
        "{:?}",
        summary.stats
    );
    let loud: Vec<f64> = captured
        .iter()
        .copied()
        .skip_while(|s| s.abs() < 1000.0)
        .collect();
    let body = &loud[RATE / 10..RATE / 2];
    let f = frequency(body, RATE);
    eprintln!("resampled tone measured at {f:.1} Hz");
    assert!((f - 1000.0).abs() < 5.0, "tone at {f} Hz");
}
