//! The UDP sender lock over real sockets on 127.0.0.1: a datagram that does
//! not decode (an empty one, a stray byte) takes no lock, so the stream that
//! follows is recorded whole; and a locked sender that falls silent for
//! `--source-timeout-ms` is released, so the next sender is recorded.

mod common;

use std::time::Duration;

use audiorecorder::stats::Stats;
use common::*;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn datagrams_that_do_not_decode_take_no_lock() {
    let dir = temp_dir("hijack");
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
    // From another port, before the stream: empty, odd-length, and a lone
    // sample (half a frame: no audio to lock on).
    let hijacker = sender();
    for bad in [&[][..], &[7u8; 3], &[1, 2]] {
        hijacker.send_to(bad, addr).unwrap();
    }
    wait_until("the stray datagrams", LIMIT, || {
        Stats::get(&stats.bad_datagrams) == 3
    });
    let signal = stereo_signal(44_100, 31);
    send_stereo(&sender(), addr, &signal, 441, None);
    wait_until("every frame", LIMIT, || {
        Stats::get(&stats.received_frames) == 44_100
    });
    let summary = rec.stop().unwrap();
    assert_eq!(summary.stats.foreign_datagrams, 0);
    assert_eq!(summary.stats.packets, 100);
    assert!(read_wav(&path).1 == signal, "recording differs");
}

#[test]
fn a_silent_sender_is_released_and_the_next_one_recorded() {
    let dir = temp_dir("release");
    let path = dir.join("rec.wav");
    let rec = audiorecorder::start(config(&[
        path.to_str().unwrap(),
        "0",
        "--bind",
        "127.0.0.1",
        "--no-playback",
        "--source-timeout-ms",
        "300",
    ]))
    .unwrap();
    let addr = rec.local_addr().unwrap();
    let stats = rec.stats();
    let first = stereo_signal(8_000, 32);
    send_stereo(&sender(), addr, &first, 400, None);
    wait_until("the first sender's frames", LIMIT, || {
        Stats::get(&stats.received_frames) == 8_000
    });
    wait_until("the lock to be released", LIMIT, || {
        Stats::get(&stats.source_releases) == 1
    });
    // A new sender (a restarted streamer gets a new port).
    let second = stereo_signal(6_000, 33);
    send_stereo(&sender(), addr, &second, 400, None);
    wait_until("the second sender's frames", LIMIT, || {
        Stats::get(&stats.received_frames) == 14_000
    });
    let summary = rec.stop().unwrap();
    assert_eq!(summary.stats.foreign_datagrams, 0);
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len(), first.len() + second.len());
    assert!(samples[..first.len()] == first[..]);
    assert!(samples[first.len()..] == second[..]);
}
