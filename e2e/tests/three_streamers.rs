//! Scenario 1: three streamers → node → recorder (`--no-playback`). The WAV
//! equals the offline mix rebuilt from the event log's `start_frame`
//! values, bit-exact at default gains.

mod common;

use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn recording_equals_the_offline_mix_from_start_frames() {
    let _serial = serial();
    let dir = temp_dir("three");
    let wav = dir.join("rec.wav");
    let log = dir.join("node.log");
    let recorder = start_recorder(&[wav.to_str().unwrap(), "0", "--bind", "127.0.0.1"]);
    let rec_addr = recorder.local_addr().unwrap().to_string();
    let node = start_node(
        &log,
        &[
            "--dest",
            &rec_addr,
            "--jitter-ms",
            JITTER_MS,
            "--timeout-ms",
            "300",
        ],
    );
    let node_addr = node.local_addr().to_string();

    let tracks: Vec<Vec<i16>> = (0..3)
        .map(|i| signal(RATE as usize * 2 + 1234 * i, i as u32, 6000.0))
        .collect();
    let mut runs = Vec::new();
    for (i, track) in tracks.iter().enumerate() {
        let path = dir.join(format!("track{i}.wav"));
        write_wav(&path, track);
        runs.push(StreamerRun::start(&[
            path.to_str().unwrap(),
            &node_addr,
            "--bind",
            "127.0.0.1:0",
        ]));
        thread::sleep(Duration::from_millis(70)); // staggered starts
    }
    let sources: Vec<_> = runs.iter().map(|r| r.udp_addr.unwrap()).collect();
    for run in &mut runs {
        let summary = run.join();
        assert!(!summary.interrupted);
    }
    for &s in &sources {
        wait_for("each stream to be dropped", || dropped(&log, s));
    }
    // Idle now: everything the node will ever send has been sent.
    let sent = frames_sent(&node);
    node.stop().unwrap();
    wait_for("the recorder to receive every frame sent", || {
        recorder.stats().snapshot().recorded_frames == sent
    });
    recorder.stop().unwrap();

    let recording = read_stereo_wav(&wav);
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
