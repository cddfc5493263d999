//! The one timing assertion: a real stream at `--speed 1` spans the track's
//! duration within 2 %. In its own test binary so that the other scenario
//! tests (which resample and stream at high speed) do not share its process.

mod common;

use std::sync::atomic::AtomicBool;

use common::*;

#[test]
fn paced_at_speed_1_span_within_2_percent_of_track() {
    let dir = TempDir::new("pace");
    let wav = dir.path("a.wav");
    let track_secs = 1.5;
    write_i16(
        &wav,
        1,
        44_100,
        &test_signal((44_100.0 * track_secs) as usize),
    );
    let cap = Capture::start(None);
    let summary = stream(
        &[wav.to_str().unwrap(), &cap.dest()],
        &AtomicBool::new(false),
    );
    let got = cap.finish();
    assert_eq!(got.len(), 150);
    let span = (got[149].at - got[0].at).as_secs_f64();
    // The last datagram is due 149 × 10 ms after the first; both that and
    // the track duration must be within 2 % of the track duration.
    let tolerance = 0.02 * track_secs;
    assert!(
        (span - 1.49).abs() < tolerance,
        "span {span:.4} s vs ideal 1.49 s"
    );
    assert!(
        (span - track_secs).abs() < tolerance,
        "span {span:.4} s vs track {track_secs} s"
    );
    println!("span {span:.4} s; {summary}");
}
