//! The TCP-only path through the node over real sockets: a Spec/Samples
//! server as the source (`--tcp-source`), the mix served to a TCP client
//! (`--tcp-listen`), both checked sample by sample.

mod common;

use std::time::{Duration, Instant};

use common::*;
use proto::message::encode_samples;
use proto::{Message, Spec, TcpClient, TcpServer};

#[test]
fn tcp_source_to_tcp_listener_is_bit_exact() {
    let dir = temp_dir("tcp-path");
    // The "streamer": a Spec/Samples server announcing mono 44.1 kHz.
    let upstream = TcpServer::bind("127.0.0.1:0", Default::default()).unwrap();
    upstream
        .set_new_client_message(Some(&Spec::int16(1, RATE).to_bytes()))
        .unwrap();
    let collector = Collector::start();
    let log = dir.join("audionode.log");
    let args = audionode::Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![collector.addr.to_string()],
        log_file: Some(log.clone()),
        jitter_ms: Some("100".into()),
        sample_rate: RATE,
        max_sources: 4,
        timeout_ms: 300,
        http: "off".into(),
        tcp_source: vec![upstream.local_addr().to_string()],
        tcp_listen: Some("127.0.0.1:0".into()),
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let node = audionode::start(audionode::Config::from_args(&args, |_| None).unwrap()).unwrap();
    wait_for("the node to connect to the source", || {
        upstream.client_count() == 1
    });

    // A recorder-like TCP client of the node: the Spec comes first.
    let mut client = TcpClient::connect(node.tcp_listen_addr().unwrap()).unwrap();
    client.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(
        client.recv_message().unwrap(),
        Some(Message::Spec(Spec::int16(2, RATE)))
    );

    // 1 s of audio plus a partial packet, paced like a streamer.
    let samples = signal(100 * CHUNK + 200, 21);
    let start = Instant::now();
    for (k, chunk) in samples.chunks(CHUNK).enumerate() {
        let due = start + Duration::from_secs_f64(k as f64 * 0.01);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut msg = Vec::new();
        encode_samples(chunk, &mut msg);
        upstream.broadcast(&msg).unwrap();
    }
    drop(upstream); // the server goes away: the node flushes the partial packet
    let source = {
        let text = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_for("the stream to be dropped", || {
            text().contains("Dropped stream")
        });
        let line = text()
            .lines()
            .find(|l| l.contains("New stream"))
            .unwrap()
            .to_string();
        line.split("] [")
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    node.stop().unwrap();
    let udp = collector.finish();

    // Everything the node sent over TCP, in order.
    let mut tcp = Vec::new();
    while let Some(message) = client.recv_message().unwrap() {
        match message {
            Message::Samples(s) => tcp.extend(s.chunks_exact(2).map(|f| (f[0], f[1]))),
            Message::Spec(spec) => panic!("unexpected second Spec {spec:?}"),
        }
    }
    assert_eq!(tcp, udp, "the TCP mix equals the UDP mix");
    let start_frame = start_frame(&log, source);
    for (i, &(l, r)) in tcp.iter().enumerate() {
        let want = i
            .checked_sub(start_frame)
            .and_then(|k| samples.get(k))
            .copied()
            .unwrap_or(0);
        assert_eq!((l, r), (want, want), "frame {i}");
    }
    assert!(tcp.len() >= start_frame + samples.len());
}
