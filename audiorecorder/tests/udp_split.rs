//! Datagrams that end inside a stereo frame, over a real socket: the
//! original `--stream-to-recorder` sender cuts its interleaved samples into
//! 25 ms chunks of 2205 samples (4410 bytes, 1102.5 frames), so every other
//! datagram ends with a left sample whose right one opens the next. The
//! recording must hold exactly the sent samples, with the joins counted;
//! 10 ms datagrams (1764 bytes) stay whole-frame and join nothing.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use audiorecorder::stats::Stats;
use common::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Sends `interleaved` as the original sender does: big-endian samples,
/// `per` samples per datagram whatever the frame boundaries, the remainder
/// last.
fn send_samples(socket: &UdpSocket, to: SocketAddr, interleaved: &[i16], per: usize) -> usize {
    let mut sent = 0;
    for (i, chunk) in interleaved.chunks(per).enumerate() {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_be_bytes()).collect();
        socket.send_to(&bytes, to).unwrap();
        sent += 1;
        if i % 16 == 15 {
            // A breather so a loaded machine's receive buffer keeps up.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sent
}

fn record_in_datagrams_of(name: &str, per: usize, frames: usize) -> (Vec<i16>, Vec<i16>, u64) {
    let dir = temp_dir(name);
    let path = dir.join("rec.wav");
    let rec = audiorecorder::start(config(&[
        path.to_str().unwrap(),
        "0",
        "--bind",
        "127.0.0.1",
        "--no-playback",
    ]))
    .unwrap();
    let addr = rec.local_addr().unwrap();
    let stats = rec.stats();
    let signal = stereo_signal(frames, 41);
    let datagrams = send_samples(&sender(), addr, &signal, per);
    wait_until("every frame", LIMIT, || {
        Stats::get(&stats.received_frames) == frames as u64
    });
    let summary = rec.stop().unwrap();
    assert_eq!(summary.stats.packets, datagrams as u64);
    assert_eq!(summary.stats.bad_datagrams, 0);
    assert_eq!(summary.stats.recorded_frames, frames as u64);
    (signal, read_wav(&path).1, summary.stats.split_frames)
}

#[test]
fn original_25_ms_datagrams_of_4410_bytes_are_recorded_exactly() {
    // 100 000 frames = 200 000 samples: 90 datagrams of 2205 samples and
    // one of 1550. Datagrams 1, 3, …, 89 end inside a frame: 45 joins.
    let (sent, recorded, split) = record_in_datagrams_of("split4410", 2205, 100_000);
    assert_eq!(2 * 2205, 4410);
    assert_eq!(recorded.len(), sent.len());
    assert!(recorded == sent, "recording differs from the sent samples");
    assert_eq!(split, 45);
}

#[test]
fn ten_ms_datagrams_of_1764_bytes_stay_exact() {
    let (sent, recorded, split) = record_in_datagrams_of("whole1764", 882, 44_100);
    assert!(recorded == sent, "recording differs from the sent samples");
    assert_eq!(split, 0);
}
