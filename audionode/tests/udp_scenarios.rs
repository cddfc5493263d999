//! Scenario tests over real UDP sockets on 127.0.0.1 (ephemeral ports):
//! sources → node → a collecting listener, checked sample by sample.

mod common;

use std::net::UdpSocket;
use std::thread;

use common::*;

#[test]
fn one_source_at_default_gains_is_bit_exact_on_both_channels() {
    let dir = temp_dir("single");
    let collector = Collector::start();
    let (node, log) = start_node(&dir, collector.addr, "100", 300);
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let samples = signal(60 * CHUNK + 123, 1); // the last packet is short
    let script: Vec<usize> = (0..61).collect();
    send_paced(&source, node.local_addr(), &samples, 0, &script);
    let addr = source.local_addr().unwrap();
    wait_for("the stream to time out", || {
        events_of(&log, addr)
            .iter()
            .any(|l| l.starts_with("Dropped stream"))
    });
    node.stop().unwrap();
    let frames = collector.finish();

    let start = start_frame(&log, addr);
    // The 100 ms target plus one 220-frame block (see first_playout_frame).
    assert_eq!(
        start,
        4410 + 220,
        "100 ms target and a block from an idle node"
    );
    assert!(frames.len() >= start + samples.len());
    for (i, &(l, r)) in frames.iter().enumerate() {
        let want = i
            .checked_sub(start)
            .and_then(|k| samples.get(k))
            .copied()
            .unwrap_or(0);
        assert_eq!((l, r), (want, want), "frame {i}");
    }
    let events = events_of(&log, addr);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[1].starts_with("Dropped stream reason=timeout received=61 lost=0 duplicates=0 reordered=0 late=0 malformed=0"));
}

#[test]
fn three_sources_match_the_offline_mix_from_start_frames() {
    let dir = temp_dir("three");
    let collector = Collector::start();
    let (node, log) = start_node(&dir, collector.addr, "100", 300);
    let node_addr = node.local_addr();
    let tracks: Vec<Vec<i16>> = (0..3).map(|i| signal(80 * CHUNK, 10 + i)).collect();
    let sockets: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    thread::scope(|s| {
        for (i, (socket, track)) in sockets.iter().zip(&tracks).enumerate() {
            s.spawn(move || {
                thread::sleep(std::time::Duration::from_millis(30 * i as u64));
                let script: Vec<usize> = (0..80).collect();
                send_paced(socket, node_addr, track, 1000 * i as u32, &script);
            });
        }
    });
    for socket in &sockets {
        let addr = socket.local_addr().unwrap();
        wait_for("each stream to time out", || {
            events_of(&log, addr)
                .iter()
                .any(|l| l.starts_with("Dropped stream"))
        });
    }
    node.stop().unwrap();
    let frames = collector.finish();

    let mut mix = vec![0i32; frames.len()];
    for (socket, track) in sockets.iter().zip(&tracks) {
        let start = start_frame(&log, socket.local_addr().unwrap());
        for (k, &s) in track.iter().enumerate() {
            mix[start + k] += i32::from(s);
        }
    }
    for (i, (&(l, r), &m)) in frames.iter().zip(&mix).enumerate() {
        let want = m.clamp(-32768, 32767) as i16;
        assert_eq!((l, r), (want, want), "frame {i}");
    }
}

#[test]
fn scripted_reorder_duplicate_and_loss_give_exact_log_lines_and_counters() {
    let dir = temp_dir("script");
    let collector = Collector::start();
    let (node, log) = start_node(&dir, collector.addr, "100", 300);
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let samples = signal(40 * CHUNK, 3);
    // 5 before 4; 9 twice; 15..=17 lost; 22 after 23 and 24; 30 lost.
    let mut script: Vec<usize> = Vec::new();
    for k in 0..40 {
        match k {
            4 => {}
            5 => script.extend([5, 4]),
            9 => script.extend([9, 9]),
            15..=17 | 30 => {}
            22 => {}
            24 => script.extend([24, 22]),
            k => script.push(k),
        }
    }
    send_paced(&source, node.local_addr(), &samples, 7, &script);
    let addr = source.local_addr().unwrap();
    wait_for("the stream to time out", || {
        events_of(&log, addr)
            .iter()
            .any(|l| l.starts_with("Dropped stream"))
    });
    // The counters are published a moment after the event is logged.
    wait_for("the snapshot to count the drop", || {
        node.snapshot().node.streams_dropped == 1
    });
    let snapshot_before_stop = node.snapshot();
    node.stop().unwrap();
    let frames = collector.finish();

    let events = events_of(&log, addr);
    assert_eq!(
        events[1..],
        [
            "Missing packets count=1 seq=11..=11",
            "Out of order packet seq=11 highest=12",
            "Repeated packet seq=16",
            "Missing packets count=3 seq=22..=24",
            "Missing packets count=1 seq=29..=29",
            "Out of order packet seq=29 highest=31",
            "Missing packets count=1 seq=37..=37",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once(events.last().unwrap().clone()))
        .collect::<Vec<_>>()[..]
    );
    assert!(events[0].starts_with("New stream seq=7 start_frame=4630 samples_per_packet=441"));
    let dropped = events.last().unwrap();
    assert!(
        dropped.starts_with("Dropped stream reason=timeout received=37 lost=4 duplicates=1 reordered=2 late=0 malformed=0 overflow=0 restarts=0"),
        "{dropped}"
    );
    assert_eq!(snapshot_before_stop.node.streams_dropped, 1);

    // The audio: everything in place except the four lost packets.
    let start = start_frame(&log, addr);
    let mut heard = samples.clone();
    for k in [15, 16, 17, 30] {
        heard[k * CHUNK..(k + 1) * CHUNK].fill(0);
    }
    for (i, &(l, r)) in frames.iter().enumerate() {
        let want = i
            .checked_sub(start)
            .and_then(|k| heard.get(k))
            .copied()
            .unwrap_or(0);
        assert_eq!((l, r), (want, want), "frame {i}");
    }
}

#[test]
fn garbage_datagrams_are_counted_and_do_not_disturb_the_stream() {
    let dir = temp_dir("garbage");
    let collector = Collector::start();
    let (node, log) = start_node(&dir, collector.addr, "100", 300);
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let samples = signal(30 * CHUNK, 4);
    let to = node.local_addr();
    send_paced(&source, to, &samples, 0, &[0, 1, 2]);
    source.send_to(&[1, 2, 3], to).unwrap(); // too short
    source.send_to(&[0, 0, 0, 9, 1, 2, 3], to).unwrap(); // odd payload
    source.send_to(&vec![0u8; 20_000], to).unwrap(); // larger than the maximum
    stranger.send_to(&[0; 5], to).unwrap(); // not a source yet
                                            // The rest of the stream, paced, continuing the sequence numbers.
    let rest: Vec<usize> = (0..27).collect();
    send_paced(&source, to, &samples[3 * CHUNK..], 3, &rest);
    let addr = source.local_addr().unwrap();
    wait_for("the stream to time out", || {
        events_of(&log, addr)
            .iter()
            .any(|l| l.starts_with("Dropped stream"))
    });
    let snapshot = node.snapshot();
    node.stop().unwrap();
    let frames = collector.finish();
    let dropped = events_of(&log, addr).pop().unwrap();
    assert!(
        dropped.contains(" lost=0 ") && dropped.contains(" malformed=3 "),
        "{dropped}"
    );
    assert_eq!(snapshot.node.malformed_unknown, 1);
    assert!(events_of(&log, stranger.local_addr().unwrap()).is_empty());
    let start = start_frame(&log, addr);
    for (k, &s) in samples.iter().enumerate() {
        assert_eq!(frames[start + k], (s, s), "sample {k}");
    }
}

#[test]
fn every_destination_receives_the_same_mix() {
    let dir = temp_dir("two-dests");
    let (first, second) = (Collector::start(), Collector::start());
    let log = dir.join("audionode.log");
    let args = audionode::Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![first.addr.to_string(), second.addr.to_string()],
        log_file: Some(log.clone()),
        jitter_ms: Some("100".into()),
        sample_rate: RATE,
        max_sources: 4,
        timeout_ms: 300,
        http: "off".into(),
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let node = audionode::start(audionode::Config::from_args(&args, |_| None).unwrap()).unwrap();
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let samples = signal(30 * CHUNK, 6);
    send_paced(
        &source,
        node.local_addr(),
        &samples,
        0,
        &(0..30).collect::<Vec<_>>(),
    );
    let addr = source.local_addr().unwrap();
    wait_for("the stream to time out", || {
        events_of(&log, addr)
            .iter()
            .any(|l| l.starts_with("Dropped stream"))
    });
    let sent = node.stop().unwrap().node.frames;
    let (a, b) = (first.finish(), second.finish());
    assert_eq!(a.len() as u64, sent);
    assert_eq!(a, b, "both recorders get the identical mix");
    let start = start_frame(&log, addr);
    assert_eq!(a[start], (samples[0], samples[0]));
}
