//! Real playback through cpal (ALSA → PulseAudio null sink), captured from
//! the sink's monitor with `parec`: the sent signal is found in what was
//! played (cross-correlation), and after a 300 ms input gap playback
//! resumes only once the backoff (50 ms) is buffered again.
//!
//! The headless audio stack comes from `scripts/headless-audio.sh`, which
//! this test runs itself (it is idempotent). Without PulseAudio the test is
//! skipped with a printed reason, except under `CI=true`, where it fails.

mod common;

use std::time::Duration;

use audiorecorder::stats::Stats;
use common::audio::*;
use common::*;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn plays_the_stream_and_resumes_only_after_the_backoff() {
    let Some(env) = audio_or_skip() else { return };

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
        "48000",
        "--jitter-backoff",
        "50",
        // Exact frame counts and contiguous correlation below: no drift
        // corrections (their own test is in level_control and output).
        "--no-level-control",
    ]))
    .unwrap();
    let stats = rec.stats();
    let addr = rec.local_addr().unwrap();
    // The PulseAudio stream takes up to ~1.5 s to start after an idle spell;
    // send only once callbacks run regularly.
    wait_until("the audio callback to run", LIMIT, || {
        Stats::get(&stats.callbacks) >= 30
    });

    let a = stereo_signal(RATE / 2, 31)
        .iter()
        .map(|s| s / 4)
        .collect::<Vec<_>>();
    let b = stereo_signal(RATE / 2, 32)
        .iter()
        .map(|s| s / 4)
        .collect::<Vec<_>>();
    let head = 960; // 20 ms: less than the 50 ms backoff
    let tx = sender();
    send_stereo(&tx, addr, &a, PERIOD, Some(RATE as u32));
    // The input gap. Then a head shorter than the backoff, and a pause:
    // the head must not be played on its own.
    std::thread::sleep(Duration::from_millis(300));
    send_stereo(&tx, addr, &b[..head * 2], PERIOD, None);
    std::thread::sleep(Duration::from_millis(200));
    let played_before_rest = Stats::get(&stats.played_frames);
    let underruns_after_gap = Stats::get(&stats.underruns);
    send_stereo(&tx, addr, &b[head * 2..], PERIOD, Some(RATE as u32));

    let total = ((a.len() + b.len()) / 2) as u64;
    wait_until("everything played", LIMIT, || {
        Stats::get(&stats.played_frames) >= total
    });
    let played_at = capture.frames();
    wait_until("the capture to pass the end", LIMIT, || {
        capture.frames() > played_at + RATE / 2
    });
    let summary = rec.stop().unwrap();
    let captured = capture.finish();

    // Exact: A was played in full, then nothing of B's 20 ms head until
    // the backoff filled; one underrun ended A.
    assert_eq!(
        played_before_rest,
        (a.len() / 2) as u64,
        "the head was played before the backoff filled"
    );
    assert_eq!(underruns_after_gap, 1);
    assert_eq!(summary.stats.resumes, 2, "{:?}", summary.stats);

    let (a_sig, b_sig) = (left(&a), left(&b));
    let (off_a, corr_a) = locate(&captured, &a_sig, 0);
    let (off_b, corr_b) = locate(&captured, &b_sig, off_a + a_sig.len());
    let gap_ms = (off_b - (off_a + a_sig.len())) as f64 * 1000.0 / RATE as f64;
    eprintln!(
        "playback: A at {off_a} (corr {corr_a:.4}), B at {off_b} (corr {corr_b:.4}), \
         silence between them {gap_ms:.1} ms; counters {:?}",
        summary.stats
    );
    assert!(corr_a > 0.99, "A not found in the capture (corr {corr_a})");
    // B, head included, plays as one contiguous piece.
    assert!(
        corr_b > 0.99,
        "B not contiguous in the capture (corr {corr_b})"
    );
    // A's end is followed by its ~50 ms of buffer; B starts once 50 ms are
    // buffered, 30 ms after the rest began arriving 500 ms after A ended:
    // about 480 ms of silence. Resuming without the backoff would give ~250.
    assert!(
        (430.0..=560.0).contains(&gap_ms),
        "silence of {gap_ms:.1} ms between A and B"
    );
}
