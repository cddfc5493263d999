//! Scenario 1: three streamers → node → recorder (`--no-playback`). The WAV
//! equals the offline mix rebuilt from the event log's `start_frame`
//! values, bit-exact at default gains.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn recording_equals_the_offline_mix_from_start_frames() {
    let _serial = serial();
    let dir = temp_dir("three");
    let rig = Rig::start(&dir, "300", &[]);
    let log = rig.log.clone();
    let tracks: Vec<Vec<i16>> = (0..3)
        .map(|i| signal(RATE as usize * 2 + 1234 * i, i as u32, 6000.0))
        .collect();
    let mut runs = stream_tracks(&dir, &tracks, &rig.node_addr(), Duration::from_millis(70));
    let sources: Vec<_> = runs.iter().map(|r| r.udp_addr.unwrap()).collect();
    for run in &mut runs {
        assert!(!run.join().interrupted);
    }
    for &s in &sources {
        wait_for("each stream to be dropped", || dropped(&log, s));
    }
    let recording = rig.finish();
    let placed: Vec<(u64, &[i16])> = sources
        .iter()
        .zip(&tracks)
        .map(|(&s, t)| (start_frames(&log, s)[0], t.as_slice()))
        .collect();
    let want = offline_mix(recording.len(), &placed);
    let last_end = placed
        .iter()
        .map(|(s, t)| *s as usize + t.len())
        .max()
        .unwrap();
    assert!(
        recording.len() >= last_end,
        "recording of {} frames ends before the last track ({last_end})",
        recording.len()
    );
    assert_eq!(
        first_difference(&recording, &want),
        None,
        "recording differs from the offline mix"
    );
    for &s in &sources {
        let events = events_of(&log, s);
        assert_eq!(
            events.len(),
            2,
            "no loss, reorder or lateness on loopback: {events:?}"
        );
        assert!(
            events[1].contains(" lost=0 duplicates=0 reordered=0 late=0 "),
            "{}",
            events[1]
        );
    }
}
