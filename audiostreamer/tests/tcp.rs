//! Scenario tests of the TCP Spec/Samples fallback with `proto::TcpClient`:
//! Spec first, then every sample of the file; late joiners get the Spec
//! before any Samples; UDP and TCP at once.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use proto::{Message, Spec, TcpClient};

/// Reads messages until the server closes the connection.
fn read_all(client: TcpClient) -> Vec<Message> {
    read_all_signalling(client, usize::MAX, mpsc::channel().0)
}

/// Reads messages until the server closes; sends on `tell` after `after` messages.
fn read_all_signalling(
    mut client: TcpClient,
    after: usize,
    tell: mpsc::Sender<()>,
) -> Vec<Message> {
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = client.recv_message().expect("message") {
        got.push(m);
        if got.len() == after {
            let _ = tell.send(());
        }
    }
    got
}

fn wait_for_clients(streamer: &audiostreamer::Streamer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while streamer.tcp_client_count() < n {
        assert!(Instant::now() < deadline, "TCP client never registered");
        thread::sleep(Duration::from_millis(2));
    }
}

fn samples_of(messages: &[Message]) -> Vec<Vec<i16>> {
    messages
        .iter()
        .map(|m| match m {
            Message::Samples(s) => s.clone(),
            other => panic!("expected Samples, got {other:?}"),
        })
        .collect()
}

#[test]
fn tcp_only_serves_spec_then_all_samples() {
    let dir = TempDir::new("tcp");
    let wav = dir.path("a.wav");
    let samples = test_signal(5000);
    write_i16(&wav, 1, 44_100, &samples);
    let streamer = audiostreamer::Streamer::new(&args(&[
        wav.to_str().unwrap(),
        "--tcp-listen",
        "127.0.0.1:0",
        "--speed",
        "20",
    ]))
    .unwrap();
    assert!(streamer.udp_local_addr().is_none());
    let client = TcpClient::connect(streamer.tcp_local_addr().unwrap()).unwrap();
    wait_for_clients(&streamer, 1);
    let reader = thread::spawn(move || read_all(client));
    let summary = streamer.run(&AtomicBool::new(false)).unwrap();
    assert_eq!((summary.datagrams, summary.samples), (12, 5000));
    let got = reader.join().unwrap();
    assert_eq!(got[0], Message::Spec(Spec::int16(1, 44_100)));
    let chunks = samples_of(&got[1..]);
    // ceil(5000 / 441) = 12 messages, the last with 5000 − 11×441 = 149.
    assert_eq!(chunks.len(), 12);
    assert!(chunks[..11].iter().all(|c| c.len() == 441));
    assert_eq!(chunks[11].len(), 149);
    assert_eq!(chunks.concat(), samples);
}

#[test]
fn udp_and_tcp_at_once_and_late_joiner_gets_spec_first() {
    let dir = TempDir::new("tcp2");
    let wav = dir.path("a.wav");
    let samples = test_signal(44_100);
    write_i16(&wav, 2, 22_050, &samples); // stereo 22.05 kHz: downmix + resample
    let cap = Capture::start(None);
    let streamer = audiostreamer::Streamer::new(&args(&[
        wav.to_str().unwrap(),
        &cap.dest(),
        "--tcp-listen",
        "127.0.0.1:0",
        "--speed",
        "4",
        "--sample-rate",
        "48000",
    ]))
    .unwrap();
    let addr = streamer.tcp_local_addr().unwrap();
    let early = TcpClient::connect(addr).unwrap();
    wait_for_clients(&streamer, 1);
    // The late client joins once the early one has 10 messages (of 101 in
    // a 250 ms stream), so it surely misses the start and not the end.
    let (tell, joined) = mpsc::channel();
    let early_reader = thread::spawn(move || read_all_signalling(early, 10, tell));
    let late_reader = thread::spawn(move || {
        joined.recv().unwrap();
        read_all(TcpClient::connect(addr).unwrap())
    });
    let summary = streamer.run(&AtomicBool::new(false)).unwrap();
    let early = early_reader.join().unwrap();
    let late = late_reader.join().unwrap();
    let udp = decode_mono(&cap.finish());

    // 22 050 frames at 22.05 kHz → 48 000 samples at 48 kHz, 480 per chunk.
    assert_eq!(summary.samples, 48_000);
    assert_eq!(early[0], Message::Spec(Spec::int16(1, 48_000)));
    let tcp_samples = samples_of(&early[1..]).concat();
    assert_eq!(tcp_samples.len(), 48_000);
    assert_eq!(udp.len(), 100);
    let udp_samples: Vec<i16> = udp.into_iter().flat_map(|(_, s)| s).collect();
    assert_eq!(
        udp_samples, tcp_samples,
        "UDP and TCP carry the same samples"
    );

    assert_eq!(late[0], Message::Spec(Spec::int16(1, 48_000)));
    let late_samples = samples_of(&late[1..]).concat();
    assert!(!late_samples.is_empty() && late_samples.len() < 48_000);
    assert!(
        tcp_samples.ends_with(&late_samples),
        "late joiner gets a suffix"
    );
}

#[test]
fn wait_for_client_starts_the_track_when_the_first_client_connects() {
    let dir = TempDir::new("tcp-wait");
    let wav = dir.path("a.wav");
    let samples = test_signal(10_000);
    write_i16(&wav, 1, 44_100, &samples);
    let wav_arg = wav.to_str().unwrap().to_owned();
    let (addr_tx, addr_rx) = mpsc::channel();
    // The streamer owns a non-Send source: build it on its own thread.
    let runner = thread::spawn(move || {
        let streamer = audiostreamer::Streamer::new(&args(&[
            &wav_arg,
            "--tcp-listen",
            "127.0.0.1:0",
            "--wait-for-client",
            "--speed",
            "20",
        ]))
        .unwrap();
        addr_tx.send(streamer.tcp_local_addr().unwrap()).unwrap();
        streamer.run(&AtomicBool::new(false)).unwrap()
    });
    let addr = addr_rx.recv().unwrap();
    // Late: without the wait, the whole 23 ms track (at 20×) would be gone.
    thread::sleep(Duration::from_millis(300));
    let got = read_all(TcpClient::connect(addr).unwrap());
    let summary = runner.join().unwrap();
    assert_eq!(summary.samples, 10_000);
    assert_eq!(got[0], Message::Spec(Spec::int16(1, 44_100)));
    assert_eq!(
        samples_of(&got[1..]).concat(),
        samples,
        "the late client gets the track from sample 0"
    );
}
