//! `--keep-time`: a sender that pauses leaves silence in the file, so the
//! file's length follows the wall clock. Bounds are loose where timing is
//! involved (a shared, noisy machine); the audio around the gap is exact.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_gap_in_the_stream_is_recorded_as_silence() {
    let dir = temp_dir("keeptime");
    let path = dir.join("rec.wav");
    let p = path.to_str().unwrap();
    let recorder =
        audiorecorder::start(config(&[p, "127.0.0.1:0", "--no-playback", "--keep-time"])).unwrap();
    let addr = recorder.local_addr().unwrap();
    let first = stereo_signal(22_050, 1); // 0.5 s each
    let second = stereo_signal(22_050, 2);
    let socket = sender();
    let t0 = Instant::now();
    send_stereo(&socket, addr, &first, 441, Some(44_100));
    std::thread::sleep(Duration::from_secs(1));
    send_stereo(&socket, addr, &second, 441, Some(44_100));
    let span = t0.elapsed();
    let stats = recorder.stats();
    wait_until("both signals received", Duration::from_secs(10), || {
        audiorecorder::stats::Stats::get(&stats.received_frames) == 44_100
    });
    let summary = recorder.stop().unwrap();
    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.channels, 2);
    let frames = samples.len() / 2;
    let filled = summary.stats.gap_silence_frames as usize;
    // The gap is filled: at least most of its second, at most the span.
    assert!(
        frames >= 44_100 + 33_075,
        "{frames} frames for 1 s of audio with a 1 s gap"
    );
    let span_frames = (span.as_secs_f64() * 44_100.0) as usize;
    assert!(
        frames <= span_frames + 22_050,
        "{frames} frames, longer than the {span:?} span"
    );
    assert_eq!(frames, 44_100 + filled);
    // The first signal, then silence, then the second signal, exactly.
    assert!(samples[..first.len()] == first[..]);
    assert!(samples[first.len()..first.len() + 2 * filled]
        .iter()
        .all(|&s| s == 0));
    assert!(samples[first.len() + 2 * filled..] == second[..]);
    assert!(summary.to_string().contains(&format!(
        "{filled} frames of silence recorded for gaps (--keep-time)"
    )));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_keep_time_the_gap_is_not_recorded() {
    let dir = temp_dir("nokeeptime");
    let path = dir.join("rec.wav");
    let p = path.to_str().unwrap();
    let recorder = audiorecorder::start(config(&[p, "127.0.0.1:0", "--no-playback"])).unwrap();
    let addr = recorder.local_addr().unwrap();
    let signal = stereo_signal(4_410, 3);
    let socket = sender();
    send_stereo(&socket, addr, &signal[..4_410], 441, Some(44_100));
    std::thread::sleep(Duration::from_millis(600));
    send_stereo(&socket, addr, &signal[4_410..], 441, Some(44_100));
    let stats = recorder.stats();
    wait_until("the signal received", Duration::from_secs(10), || {
        audiorecorder::stats::Stats::get(&stats.received_frames) == 4_410
    });
    recorder.stop().unwrap();
    assert!(read_wav(&path).1 == signal);
    let _ = std::fs::remove_dir_all(&dir);
}
