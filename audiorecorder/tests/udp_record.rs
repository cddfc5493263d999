//! Recording over UDP with real sockets on 127.0.0.1 (no playback): the WAV
//! holds the sent signal bit-exact, appends in order, refuses mismatches,
//! and bad or foreign datagrams are counted and dropped.

mod common;

use std::time::Duration;

use audiorecorder::stats::Stats;
use common::*;

const LIMIT: Duration = Duration::from_secs(10);

fn record(path: &std::path::Path, signal: &[i16], extra: &[&str]) -> audiorecorder::stats::Summary {
    let path = path.to_str().unwrap();
    let mut words = vec![path, "0", "--bind", "127.0.0.1", "--no-playback"];
    words.extend_from_slice(extra);
    let rec = audiorecorder::start(config(&words)).unwrap();
    let addr = rec.local_addr().unwrap();
    send_stereo(&sender(), addr, signal, 256, None);
    let stats = rec.stats();
    let want = (signal.len() / 2) as u64;
    wait_until("all frames received", LIMIT, || {
        Stats::get(&stats.received_frames) >= want
    });
    rec.stop().unwrap()
}

#[test]
fn known_signal_is_recorded_bit_exact() {
    let dir = temp_dir("bitexact");
    let path = dir.join("rec.wav");
    let signal = stereo_signal(44_100, 1);
    let summary = record(&path, &signal, &[]);
    assert_eq!(summary.stats.received_frames, 44_100);
    assert_eq!(summary.stats.recorded_frames, 44_100);
    let (spec, samples) = read_wav(&path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 44_100, 16)
    );
    assert!(samples == signal, "recording differs from the sent signal");
}

#[test]
fn appending_twice_keeps_both_recordings_in_order() {
    let dir = temp_dir("append");
    let path = dir.join("rec.wav");
    let first = stereo_signal(10_000, 2);
    let second = stereo_signal(7_000, 3);
    record(&path, &first, &[]);
    record(&path, &second, &[]);
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len(), first.len() + second.len());
    assert!(samples[..first.len()] == first[..]);
    assert!(samples[first.len()..] == second[..]);
    // --overwrite starts fresh.
    record(&path, &second, &["--overwrite"]);
    assert!(read_wav(&path).1 == second);
}

#[test]
fn mismatching_file_is_a_clear_error() {
    let dir = temp_dir("mismatch");
    let path = dir.join("rec.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    hound::WavWriter::create(&path, spec)
        .unwrap()
        .finalize()
        .unwrap();
    let words = [
        path.to_str().unwrap(),
        "0",
        "--bind",
        "127.0.0.1",
        "--no-playback",
    ];
    let err = audiorecorder::start(config(&words))
        .err()
        .expect("mismatch must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("1 ch, 44100 Hz, 16-bit integer"), "{msg}");
    assert!(msg.contains("--overwrite"), "{msg}");
    // Same file, other rate: also refused.
    let stereo48 = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        ..spec
    };
    hound::WavWriter::create(&path, stereo48)
        .unwrap()
        .finalize()
        .unwrap();
    assert!(audiorecorder::start(config(&words)).is_err());
}

#[test]
fn missing_directory_and_busy_port_are_one_line_errors() {
    let dir = temp_dir("errors");
    let path = dir.join("no/such/dir/rec.wav");
    let err = audiorecorder::start(config(&[path.to_str().unwrap(), "0", "--no-playback"]))
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");

    // A full disk: /dev/full takes the open but refuses every byte.
    let err = audiorecorder::start(config(&["/dev/full", "0", "--no-playback"]))
        .err()
        .unwrap();
    assert_eq!(
        format!("{err:#}"),
        "cannot write /dev/full: No space left on device (os error 28)"
    );
    // A path that cannot be a file.
    let err = audiorecorder::start(config(&[dir.to_str().unwrap(), "0", "--no-playback"]))
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("Is a directory"), "{err:#}");

    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let path = dir.join("rec.wav");
    let words = [
        path.to_str().unwrap(),
        port.as_str(),
        "--bind",
        "127.0.0.1",
        "--no-playback",
    ];
    let err = audiorecorder::start(config(&words)).err().unwrap();
    assert_eq!(
        format!("{err:#}"),
        format!("UDP port {port} on 127.0.0.1 is already in use")
    );
}

#[test]
fn bad_and_foreign_datagrams_are_counted_and_dropped() {
    let dir = temp_dir("bad");
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
    let main = sender();
    let good = stereo_signal(100, 4);
    send_stereo(&main, addr, &good[..20], 10, None); // locks onto `main`
    wait_until("lock", LIMIT, || Stats::get(&stats.received_frames) == 10);
    for bad in [&[1u8, 2, 3][..], &[0; 5], &[0; 1], &[]] {
        main.send_to(bad, addr).unwrap();
    }
    let other = sender();
    send_stereo(&other, addr, &stereo_signal(10, 5), 10, None);
    send_stereo(&other, addr, &stereo_signal(10, 6), 10, None);
    send_stereo(&main, addr, &good[20..], 10, None);
    wait_until("rest", LIMIT, || Stats::get(&stats.received_frames) == 100);
    wait_until("counters", LIMIT, || {
        Stats::get(&stats.bad_datagrams) == 4 && Stats::get(&stats.foreign_datagrams) == 2
    });
    let summary = rec.stop().unwrap();
    assert_eq!(summary.stats.packets, 10);
    assert!(read_wav(&path).1 == good);
}

#[test]
fn pinned_source_ignores_the_first_sender() {
    let dir = temp_dir("pinned");
    let path = dir.join("rec.wav");
    let wanted = sender();
    let pin = wanted.local_addr().unwrap().to_string();
    let rec = audiorecorder::start(config(&[
        path.to_str().unwrap(),
        "0",
        "--bind",
        "127.0.0.1",
        "--no-playback",
        "--source",
        &pin,
    ]))
    .unwrap();
    let addr = rec.local_addr().unwrap();
    let stats = rec.stats();
    send_stereo(&sender(), addr, &stereo_signal(50, 7), 50, None);
    let good = stereo_signal(50, 8);
    send_stereo(&wanted, addr, &good, 25, None);
    wait_until("pinned frames", LIMIT, || {
        Stats::get(&stats.received_frames) == 50
    });
    wait_until("foreign", LIMIT, || {
        Stats::get(&stats.foreign_datagrams) == 1
    });
    rec.stop().unwrap();
    assert!(read_wav(&path).1 == good);
}
