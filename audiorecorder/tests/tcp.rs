//! The TCP fallback against a real `proto::TcpServer` on 127.0.0.1: the
//! recording is bit-exact, a Spec change starts `rec-2.wav`, mono is
//! recorded as mono, and a server sending garbage is disconnected and
//! reconnected to.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use audiorecorder::stats::Stats;
use common::*;
use proto::{Message, Spec, TcpServer};

const LIMIT: Duration = Duration::from_secs(10);

fn samples_msg(samples: &[i16]) -> Vec<u8> {
    Message::Samples(samples.to_vec()).to_bytes()
}

#[test]
fn tcp_stream_is_recorded_bit_exact_and_spec_change_starts_rec_2() {
    let dir = temp_dir("tcp");
    let path = dir.join("rec.wav");
    let server = TcpServer::bind("127.0.0.1:0", Default::default()).unwrap();
    let stereo = Spec::int16(2, 44_100);
    server
        .set_new_client_message(Some(&stereo.to_bytes()))
        .unwrap();
    let addr = server.local_addr().to_string();
    let rec = audiorecorder::start(config(&[
        path.to_str().unwrap(),
        "--tcp",
        &addr,
        "--no-playback",
    ]))
    .unwrap();
    let stats = rec.stats();
    wait_until("the recorder to connect", LIMIT, || {
        server.client_count() == 1
    });

    let first = stereo_signal(20_000, 21);
    // Odd-sized messages: frames split across messages must stay whole.
    for chunk in first.chunks(1001) {
        server.broadcast(&samples_msg(chunk)).unwrap();
    }
    wait_until("stereo frames", LIMIT, || {
        Stats::get(&stats.received_frames) == 20_000
    });

    let mono = Spec::int16(1, 22_050);
    server.announce(&mono.to_bytes()).unwrap();
    let second: Vec<i16> = stereo_signal(3_000, 22)[..5_000].to_vec();
    for chunk in second.chunks(700) {
        server.broadcast(&samples_msg(chunk)).unwrap();
    }
    wait_until("mono frames", LIMIT, || {
        Stats::get(&stats.received_frames) == 25_000
    });
    rec.stop().unwrap();

    let (spec, samples) = read_wav(&path);
    assert_eq!((spec.channels, spec.sample_rate), (2, 44_100));
    assert!(samples == first);
    let (spec, samples) = read_wav(&dir.join("rec-2.wav"));
    assert_eq!((spec.channels, spec.sample_rate), (1, 22_050));
    assert!(samples == second);
}

#[test]
fn reconnects_after_the_server_goes_away_and_appends_to_the_same_file() {
    let dir = temp_dir("tcp-reconnect");
    let path = dir.join("rec.wav");
    let spec = Spec::int16(2, 48_000);
    let server = TcpServer::bind("127.0.0.1:0", Default::default()).unwrap();
    server
        .set_new_client_message(Some(&spec.to_bytes()))
        .unwrap();
    let addr = server.local_addr();
    let rec = audiorecorder::start(config(&[
        path.to_str().unwrap(),
        "--tcp",
        &addr.to_string(),
        "--no-playback",
    ]))
    .unwrap();
    let stats = rec.stats();
    wait_until("connect", LIMIT, || server.client_count() == 1);
    let a = stereo_signal(1_000, 23);
    server.broadcast(&samples_msg(&a)).unwrap();
    wait_until("a", LIMIT, || Stats::get(&stats.received_frames) == 1_000);
    drop(server);

    // Same port again, same format: the recorder comes back on its own.
    let server = TcpServer::bind(addr, Default::default()).unwrap();
    server
        .set_new_client_message(Some(&spec.to_bytes()))
        .unwrap();
    wait_until("reconnect", LIMIT, || server.client_count() == 1);
    let b = stereo_signal(1_000, 24);
    server.broadcast(&samples_msg(&b)).unwrap();
    wait_until("b", LIMIT, || Stats::get(&stats.received_frames) == 2_000);
    let summary = rec.stop().unwrap();
    assert_eq!(summary.stats.connections, 2);
    let (_, samples) = read_wav(&path);
    assert!(samples[..2_000] == a[..] && samples[2_000..] == b[..]);
    assert!(!dir.join("rec-2.wav").exists());
}

#[test]
fn garbage_and_oversized_frames_disconnect_then_reconnect() {
    let dir = temp_dir("tcp-garbage");
    let path = dir.join("rec.wav");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let rec = audiorecorder::start(config(&[
        path.to_str().unwrap(),
        "--tcp",
        &addr,
        "--no-playback",
    ]))
    .unwrap();
    let stats = rec.stats();

    let garbage: [&[u8]; 3] = [
        &[0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3], // a 2 GiB frame: oversized
        &[3, 0, 0, 0, 9, 9, 9],             // a frame with an unknown message type
        &[5, 0, 0, 0, 2, 0, 0, 0, 0],       // Samples before any Spec
    ];
    for bytes in garbage {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(LIMIT)).unwrap();
        conn.write_all(bytes).unwrap();
        // The recorder hangs up: read returns end-of-stream (or a reset).
        let mut buf = [0u8; 16];
        assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)));
    }
    // A well-behaved server afterwards is recorded normally.
    let (mut conn, _) = listener.accept().unwrap();
    let spec = Spec::int16(2, 44_100);
    let good = stereo_signal(500, 25);
    for msg in [spec.to_bytes().to_vec(), samples_msg(&good)] {
        conn.write_all(&proto::framing::encode_frame(&msg).unwrap())
            .unwrap();
    }
    wait_until("good frames", LIMIT, || {
        Stats::get(&stats.received_frames) == 500
    });
    let summary = rec.stop().unwrap();
    assert_eq!(summary.stats.connections, 4);
    assert!(read_wav(&path).1 == good);
}
