//! Microphone scenario: capture from a real cpal input device (under the
//! headless PulseAudio of `scripts/headless-audio.sh` the null sink's monitor
//! is one) and check that paced, full, contiguous datagrams arrive. Where no
//! input device works, the test prints why and returns (skipped).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

/// Opens the default input device the way the streamer will and waits for
/// audio to flow; returns why not if it cannot.
fn probe_input_device() -> Result<String, String> {
    let host = cpal::default_host();
    let device = host
        .default_input_device()
        .ok_or("no default input device")?;
    let config = device
        .default_input_config()
        .map_err(|e| format!("no input configuration: {e}"))?;
    let frames = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&frames);
    let stream = device
        .build_input_stream_raw(
            config.config(),
            config.sample_format(),
            move |data, _| {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            },
            |_| {},
            None,
        )
        .map_err(|e| format!("cannot open input stream: {e}"))?;
    stream
        .play()
        .map_err(|e| format!("cannot start input stream: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while frames.load(Ordering::Relaxed) == 0 {
        if Instant::now() > deadline {
            return Err("the input device delivered no audio within 5 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(format!("{device} ({} Hz)", config.sample_rate()))
}

#[test]
fn mic_streams_live_datagrams_when_an_input_device_exists() {
    let device = match probe_input_device() {
        Ok(d) => d,
        Err(reason) => {
            println!("SKIPPED mic test: {reason} (run scripts/headless-audio.sh for a PulseAudio null source)");
            return;
        }
    };
    println!("mic test uses input device {device}");
    let stop = Arc::new(AtomicBool::new(false));
    let cap = Capture::start(Some((30, Arc::clone(&stop))));
    // Watchdog: a stuck device must fail the test, not hang it.
    let watchdog_stop = Arc::clone(&stop);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        watchdog_stop.store(true, Ordering::SeqCst);
    });
    let started = Instant::now();
    let summary = stream(&["--mic", &cap.dest(), "--sample-rate", "44100"], &stop);
    let elapsed = started.elapsed();
    let got = decode_mono(&cap.finish());
    assert!(
        got.len() >= 30,
        "only {} datagrams in {elapsed:?}",
        got.len()
    );
    assert!(summary.interrupted);
    for (k, (seq, samples)) in got.iter().enumerate() {
        assert_eq!(*seq, k as u32);
        assert_eq!(samples.len(), 441);
    }
    // 30 datagrams are 300 ms of audio; a live device cannot deliver them
    // much faster than real time.
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
}
