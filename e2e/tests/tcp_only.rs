//! Scenario 3: the TCP-only path, streamer `--tcp-listen` → node
//! `--tcp-source` → node `--tcp-listen` → recorder `--tcp`, records the
//! file bit-exact.

mod common;

use common::*;

#[test]
fn tcp_only_path_records_bit_exact() {
    let _serial = serial();
    let dir = temp_dir("tcp-only");
    let wav = dir.join("rec.wav");
    let log = dir.join("node.log");
    let track = signal(RATE as usize * 2 + 300, 7, 9000.0);
    let path = dir.join("track.wav");
    write_wav(&path, &track);

    // The streamer's TCP server exists before anyone connects; it starts
    // sending once the node is connected.
    let streamer = prepare(&[path.to_str().unwrap(), "--tcp-listen", "127.0.0.1:0"]);
    let streamer_addr = streamer.tcp_local_addr().unwrap();
    let node = start_node(
        &log,
        &[
            "--tcp-source",
            &streamer_addr.to_string(),
            "--tcp-listen",
            "127.0.0.1:0",
            "--dest",
            "127.0.0.1:9", // UDP output unused here
            "--jitter-ms",
            JITTER_MS,
            "--timeout-ms",
            "300",
        ],
    );
    wait_for("the node to connect to the streamer", || {
        streamer.tcp_client_count() == 1
    });
    let recorder = start_recorder(&[
        wav.to_str().unwrap(),
        "--tcp",
        &node.tcp_listen_addr().unwrap().to_string(),
    ]);
    wait_for("the recorder to connect to the node", || {
        recorder.stats().snapshot().connections >= 1
    });
    let summary = streamer
        .run(&std::sync::atomic::AtomicBool::new(false))
        .unwrap();
    assert_eq!(summary.samples, track.len() as u64);
    wait_for("the stream to be dropped", || dropped(&log, streamer_addr));
    let sent = frames_sent(&node);
    wait_for("the recorder to record every frame sent", || {
        recorder.stats().snapshot().recorded_frames == sent
    });
    node.stop().unwrap();
    recorder.stop().unwrap();

    let recording = read_stereo_wav(&wav);
    let start = start_frames(&log, streamer_addr)[0];
    let want = offline_mix(recording.len(), &[(start, &track)]);
    assert!(recording.len() as u64 >= start + track.len() as u64);
    assert_eq!(first_difference(&recording, &want), None);
}
