//! The original TCP Spec/Samples server's sending pattern through
//! `--tcp-source`, over real sockets: a 3 s burst, then 1.25× real time,
//! the Spec twice, a connection that never closes.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use proto::framing::write_frame;
use proto::message::encode_samples;
use proto::Spec;

#[test]
fn the_original_tcp_servers_pattern_is_mixed_exactly() {
    let dir = temp_dir("original-tcp");
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    // 6 s of audio, as the original server sends it: Spec twice to its
    // first client, 3 s unpaced, then 1.25× real time, never closing.
    let samples = signal(6 * RATE as usize + 123, 31);
    let to_send = samples.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let sender = thread::spawn(move || {
        let (mut stream, _) = server.accept().unwrap();
        let spec = Spec::int16(1, RATE).to_bytes();
        write_frame(&mut stream, &spec).unwrap();
        write_frame(&mut stream, &spec).unwrap();
        let per_message = 1024;
        let burst = 3 * RATE as usize;
        let start = Instant::now();
        let mut message = Vec::new();
        for (k, chunk) in to_send.chunks(per_message).enumerate() {
            let offset = k * per_message;
            if offset >= burst {
                let due =
                    Duration::from_secs_f64((offset - burst) as f64 / (1.25 * f64::from(RATE)));
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    thread::sleep(wait);
                }
            }
            message.clear();
            encode_samples(chunk, &mut message);
            // Blocks when the node stops reading: TCP flow control.
            write_frame(&mut stream, &message).unwrap();
        }
        stream.flush().unwrap();
        // Never closes: holds the connection until the test is done.
        let _ = done_rx.recv();
    });
    let collector = Collector::start();
    let log = dir.join("audionode.log");
    let args = audionode::Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![collector.addr.to_string()],
        log_file: Some(log.clone()),
        sample_rate: RATE,
        max_sources: 4,
        timeout_ms: 1000,
        log_lines_per_second: 200,
        http: "off".into(),
        tcp_source: vec![server_addr.to_string()],
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let node = audionode::start(audionode::Config::from_args(&args, |_| None).unwrap()).unwrap();
    // The stream plays in real time: 6 s, then the tail is flushed.
    wait_for("the whole stream to be mixed", || {
        node.snapshot()
            .sources
            .first()
            .is_some_and(|(_, s)| s.received as usize * CHUNK > samples.len())
    });
    let source = node.snapshot().sources[0].0;
    thread::sleep(Duration::from_millis(300));
    let stats = *node.snapshot().source(source).unwrap();
    node.stop().unwrap();
    let frames = collector.finish();
    done_tx.send(()).unwrap();
    sender.join().unwrap();
    assert_eq!(
        (
            stats.late,
            stats.overflow,
            stats.lost,
            stats.drift_drops,
            stats.drift_repeats
        ),
        (0, 0, 0, 0, 0),
        "{stats}"
    );
    let start = start_frame(&log, source);
    assert!(frames.len() >= start + samples.len());
    for (i, &(l, r)) in frames.iter().enumerate() {
        let want = i
            .checked_sub(start)
            .and_then(|k| samples.get(k))
            .copied()
            .unwrap_or(0);
        assert_eq!((l, r), (want, want), "frame {i}");
    }
}
