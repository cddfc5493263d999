//! Scenario 4: a streamer restarted mid-run, a node restarted mid-run, and
//! a recorder killed and restarted with append. Nothing panics, the event
//! log tells the story, and the recording holds exactly what was sent.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn a_restarted_streamer_is_logged_and_both_runs_are_recorded() {
    let _serial = serial();
    let dir = temp_dir("streamer-restart");
    let (wav, log) = (dir.join("rec.wav"), dir.join("node.log"));
    let recorder = start_recorder(&[wav.to_str().unwrap(), "0", "--bind", "127.0.0.1"]);
    let node = start_node(
        &log,
        &[
            "--dest",
            &recorder.local_addr().unwrap().to_string(),
            "--jitter-ms",
            JITTER_MS,
            "--timeout-ms",
            "400",
        ],
    );
    let node_addr = node.local_addr().to_string();
    let first = signal(RATE as usize * 3, 1, 7000.0);
    let second = signal(RATE as usize, 2, 7000.0);
    let (p1, p2) = (dir.join("first.wav"), dir.join("second.wav"));
    write_wav(&p1, &first);
    write_wav(&p2, &second);

    let mut run1 = StreamerRun::start(&[p1.to_str().unwrap(), &node_addr, "--bind", "127.0.0.1:0"]);
    let source = run1.udp_addr.unwrap();
    thread::sleep(Duration::from_millis(1200));
    let sent1 = run1.stop().samples as usize; // Ctrl-C mid-track
                                              // Restarted on the same address: sequence numbers begin at 0 again.
    let mut run2 = StreamerRun::start(&[
        p2.to_str().unwrap(),
        &node_addr,
        "--bind",
        &source.to_string(),
    ]);
    assert_eq!(run2.join().samples as usize, second.len());
    wait_for("the stream to be dropped", || dropped(&log, source));
    let sent = frames_sent(&node);
    wait_for("every frame recorded", || {
        recorder.stats().snapshot().recorded_frames == sent
    });
    node.stop().unwrap();
    recorder.stop().unwrap();

    let events = events_of(&log, source);
    assert!(events[0].starts_with("New stream seq=0 "), "{events:?}");
    let restart = events
        .iter()
        .find(|l| l.starts_with("Stream restarted"))
        .expect("a restart line");
    assert!(restart.starts_with("Stream restarted seq=0 "), "{restart}");
    assert_eq!(
        field(restart, "previous_highest") as usize,
        sent1.div_ceil(441) - 1
    );
    let dropped_line = events.last().unwrap();
    assert!(
        dropped_line.contains(" lost=0 ") && dropped_line.contains(" restarts=1 "),
        "{dropped_line}"
    );
    let starts = start_frames(&log, source);
    let recording = read_stereo_wav(&wav);
    let want = offline_mix(
        recording.len(),
        &[(starts[0], &first[..sent1]), (starts[1], &second)],
    );
    assert_eq!(first_difference(&recording, &want), None);
}

#[test]
fn a_restarted_node_resumes_the_stream_and_the_recording_continues() {
    let _serial = serial();
    let dir = temp_dir("node-restart");
    let (wav, log) = (dir.join("rec.wav"), dir.join("node.log"));
    let recorder = start_recorder(&[wav.to_str().unwrap(), "0", "--bind", "127.0.0.1"]);
    let dest = recorder.local_addr().unwrap().to_string();
    let flags = [
        "--dest",
        &dest,
        "--jitter-ms",
        JITTER_MS,
        "--timeout-ms",
        "400",
    ];
    let track = signal(RATE as usize * 4, 3, 8000.0);
    let path = dir.join("track.wav");
    write_wav(&path, &track);

    let node_a = start_node(&log, &flags);
    let listen = node_a.local_addr();
    let mut run = StreamerRun::start(&[
        path.to_str().unwrap(),
        &listen.to_string(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let source = run.udp_addr.unwrap();
    thread::sleep(Duration::from_millis(1500));
    let sent_a = node_a.stop().unwrap().node.frames; // the node goes away mid-stream
    thread::sleep(Duration::from_millis(200)); // the streamer keeps sending into the void
    let listen_text = listen.to_string();
    let mut argv_b = flags.to_vec();
    argv_b.extend(["--listen", &listen_text]);
    let node_b = {
        use clap::Parser;
        let mut argv = vec![
            "audionode",
            "--http",
            "off",
            // As `start_node`: the recording is rebuilt offline.
            "--plc",
            "off",
            "--log-file",
            log.to_str().unwrap(),
        ];
        argv.extend_from_slice(&argv_b);
        let args = audionode::Args::parse_from(argv);
        audionode::start(audionode::Config::from_args(&args, |_| None).unwrap()).unwrap()
    };
    run.join();
    wait_for("the stream to be dropped by the new node", || {
        events_of(&log, source)
            .iter()
            .filter(|l| l.starts_with("Dropped stream"))
            .count()
            == 2
    });
    let sent_b = frames_sent(&node_b);
    wait_for("every frame recorded", || {
        recorder.stats().snapshot().recorded_frames == sent_a + sent_b
    });
    node_b.stop().unwrap();
    recorder.stop().unwrap();

    // The log: new stream, shutdown, new stream (mid-track), timeout.
    let events = events_of(&log, source);
    let kinds: Vec<&str> = events
        .iter()
        .map(|l| {
            l.split(" seq=")
                .next()
                .unwrap()
                .split(" reason=")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "New stream",
            "Dropped stream",
            "New stream",
            "Dropped stream"
        ],
        "{events:?}"
    );
    assert!(events[1].contains("reason=shutdown"));
    assert!(events[3].contains("reason=timeout"));
    let resumed_seq = field(&events[2], "seq") as usize;
    assert!(
        resumed_seq > 100,
        "the new node picks the stream up mid-track at seq {resumed_seq}"
    );

    // The recording: node A's frames, then node B's (its frame counter starts at 0).
    let recording = read_stereo_wav(&wav);
    assert_eq!(recording.len() as u64, sent_a + sent_b);
    let starts = start_frames(&log, source);
    let mut want = offline_mix(sent_a as usize, &[(starts[0], &track)]);
    want.extend(offline_mix(
        sent_b as usize,
        &[(starts[1], &track[resumed_seq * 441..])],
    ));
    assert_eq!(first_difference(&recording, &want), None);
}

/// Reads the recorder's "listening on UDP addr" line from its stderr.
fn spawn_recorder(wav: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-audiorecorder"))
        .arg(wav)
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--no-playback"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the recorder stopped before listening: {seen:?}");
        };
        seen.push(line.clone());
        assert!(!line.contains("panicked"), "{line}");
        if line.contains("listening on UDP") {
            break;
        }
    }
    // Keep draining stderr so the recorder never blocks on a full pipe.
    thread::spawn(move || for _ in lines {});
    child
}

#[test]
fn a_killed_recorder_restarted_with_append_keeps_everything_it_wrote() {
    let _serial = serial();
    let dir = temp_dir("recorder-kill");
    let (wav, log) = (dir.join("rec.wav"), dir.join("node.log"));
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut first = spawn_recorder(&wav, port);
    let node = start_node(
        &log,
        &[
            "--dest",
            &format!("127.0.0.1:{port}"),
            "--jitter-ms",
            JITTER_MS,
            "--timeout-ms",
            "400",
        ],
    );
    let track = signal(RATE as usize * 4, 4, 8000.0);
    let path = dir.join("track.wav");
    write_wav(&path, &track);
    let mut run = StreamerRun::start(&[
        path.to_str().unwrap(),
        &node.local_addr().to_string(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let source = run.udp_addr.unwrap();
    // Kill the recorder once it has written well over a second of audio.
    wait_for("a second and a half on disk", || {
        std::fs::metadata(&wav).map(|m| m.len()).unwrap_or(0) > 44 + 4 * 66_150
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    first.wait().unwrap();
    let mut second = spawn_recorder(&wav, port);
    run.join();
    wait_for("the stream to be dropped", || dropped(&log, source));
    let sent = frames_sent(&node);
    node.stop().unwrap();
    thread::sleep(Duration::from_millis(300)); // the last datagrams reach the recorder
                                               // SAFETY: signalling our own child.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    assert!(second.wait().unwrap().success());

    // The recording is the node's output with one gap: the frames sent while
    // no recorder was listening. Everything written before the kill is kept.
    let recording = read_stereo_wav(&wav);
    let start = start_frames(&log, source)[0];
    let output = offline_mix(sent as usize, &[(start, &track)]);
    let prefix = recording
        .iter()
        .zip(&output)
        .take_while(|(a, b)| a == b)
        .count();
    let gap = output.len() - recording.len();
    assert_eq!(
        &recording[prefix..],
        &output[prefix + gap..],
        "after the gap the recording continues exactly"
    );
    assert!(
        prefix as u64 > u64::from(RATE),
        "the first recorder's audio was kept ({prefix} frames)"
    );
    eprintln!("recorder restart: kept {prefix} frames, gap {gap} frames");
    assert!(
        gap < RATE as usize / 2,
        "gap of {gap} frames: only the restart's downtime is missing"
    );
}
