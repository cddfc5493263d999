//! TCP servers that misbehave, against the recorder's `--tcp` client on
//! 127.0.0.1: a stereo Samples message with an odd sample count followed by
//! a repeated Spec (channels must not swap), a server that flaps between
//! formats (disconnected; files capped by `--max-files`), and the original
//! Rust TCP server's pattern (Spec twice, 3 s unpaced then 1.25× real time,
//! never closing), which must be recorded exactly.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use audiorecorder::stats::Stats;
use common::*;
use proto::{Message, Spec};

const LIMIT: Duration = Duration::from_secs(20);

fn frame(message: &[u8]) -> Vec<u8> {
    proto::framing::encode_frame(message).unwrap()
}

fn spec_frame(channels: u16, rate: u32) -> Vec<u8> {
    frame(&Spec::int16(channels, rate).to_bytes())
}

fn samples_frame(samples: &[i16]) -> Vec<u8> {
    frame(&Message::Samples(samples.to_vec()).to_bytes())
}

fn start(path: &std::path::Path, addr: &str, extra: &[&str]) -> audiorecorder::Recorder {
    let mut words = vec![path.to_str().unwrap(), "--tcp", addr, "--no-playback"];
    words.extend_from_slice(extra);
    audiorecorder::start(config(&words)).unwrap()
}

#[test]
fn an_odd_sample_count_then_a_repeated_spec_keeps_the_channels() {
    let dir = temp_dir("tcp-odd");
    let path = dir.join("rec.wav");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let rec = start(&path, &listener.local_addr().unwrap().to_string(), &[]);
    let stats = rec.stats();
    let (mut conn, _) = listener.accept().unwrap();
    let signal = stereo_signal(3_000, 51);
    // 1001 samples (500.5 frames), the same Spec again, then the rest,
    // whose first sample is the right channel of frame 500.
    let mut bytes = spec_frame(2, 44_100);
    bytes.extend(samples_frame(&signal[..1001]));
    bytes.extend(spec_frame(2, 44_100));
    bytes.extend(samples_frame(&signal[1001..3001]));
    bytes.extend(samples_frame(&signal[3001..]));
    conn.write_all(&bytes).unwrap();
    wait_until("every frame", LIMIT, || {
        Stats::get(&stats.received_frames) == 3_000
    });
    let summary = rec.stop().unwrap();
    assert!(
        read_wav(&path).1 == signal,
        "channels swapped or samples lost"
    );
    assert_eq!(summary.stats.split_frames, 2);
    assert_eq!(summary.stats.dropped_samples, 0);
    assert!(!dir.join("rec-2.wav").exists());
}

/// Serves every connection a Spec flapping between two rates, with a few
/// frames of audio after each, as fast as the socket takes it.
fn flapping_server(listener: TcpListener) {
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let audio = samples_frame(&stereo_signal(4, 52));
                for i in 0..20_000u32 {
                    let rate = if i % 2 == 0 { 44_100 } else { 48_000 };
                    let mut bytes = spec_frame(2, rate);
                    bytes.extend_from_slice(&audio);
                    if conn.write_all(&bytes).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn wav_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn a_server_flapping_between_formats_is_disconnected() {
    let dir = temp_dir("tcp-flap");
    let path = dir.join("rec.wav");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    flapping_server(listener);
    let rec = start(&path, &addr, &[]);
    let stats = rec.stats();
    // Refused on the first connection and again after reconnecting: the
    // budget of 10 changes a minute is spent.
    wait_until("two refusals", LIMIT, || {
        Stats::get(&stats.format_flap_disconnects) >= 2
    });
    let summary = rec.stop().unwrap();
    assert!(summary.stats.connections >= 2);
    // The first format and 10 changes: rec.wav, rec-2.wav … rec-11.wav.
    assert_eq!(wav_files(&dir), 11);
    assert!(dir.join("rec-11.wav").exists());
    let (spec, samples) = read_wav(&dir.join("rec-11.wav"));
    assert_eq!(spec.sample_rate, 44_100);
    assert!(samples[..8] == stereo_signal(4, 52)[..]);
}

#[test]
fn max_files_stops_the_recording_with_an_error() {
    let dir = temp_dir("tcp-max-files");
    let path = dir.join("rec.wav");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    flapping_server(listener);
    let rec = start(
        &path,
        &addr,
        &["--max-files", "3", "--max-format-changes", "1000"],
    );
    wait_until("the recorder to stop", LIMIT, || rec.has_ended());
    let err = rec.wait().unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "the recording needs more than --max-files 3 files in this run (the stream changed \
         format too often); stopping"
    );
    assert_eq!(wav_files(&dir), 3);
    for name in ["rec.wav", "rec-2.wav", "rec-3.wav"] {
        assert!(
            read_wav(&dir.join(name)).1 == stereo_signal(4, 52),
            "{name}"
        );
    }
}

/// The original Rust TCP server as seen on the wire: its first client gets
/// the Spec twice, then 3 s of audio as fast as the socket takes it, then
/// the rest at 1.25× real time; at the end it keeps the connection open.
fn original_server(mut conn: TcpStream, signal: &[i16], rate: u32) {
    let spec = spec_frame(2, rate);
    conn.write_all(&spec).unwrap();
    conn.write_all(&spec).unwrap();
    // 25 ms of interleaved samples per message.
    let per = (rate as usize * 2) / 40;
    let burst = 3 * rate as usize * 2;
    let start = Instant::now();
    let mut sent = 0usize;
    for chunk in signal.chunks(per) {
        if sent >= burst {
            let due = Duration::from_secs_f64((sent - burst) as f64 / 2.0 / f64::from(rate) / 1.25);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
        conn.write_all(&samples_frame(chunk)).unwrap();
        sent += chunk.len();
    }
    // Never closes: the connection stays open until the test ends.
    thread::sleep(Duration::from_secs(3600));
}

#[test]
fn the_original_tcp_server_pattern_is_recorded_exactly() {
    let dir = temp_dir("tcp-original");
    let path = dir.join("rec.wav");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let rec = start(&path, &addr, &[]);
    let stats = rec.stats();
    let (conn, _) = listener.accept().unwrap();
    // 4.5 s: 3 s unpaced, then 1.5 s of audio in 1.2 s.
    let signal = stereo_signal(44_100 * 9 / 2, 53);
    let to_send = signal.clone();
    thread::spawn(move || original_server(conn, &to_send, 44_100));
    wait_until("every frame", LIMIT, || {
        Stats::get(&stats.received_frames) == 44_100 * 9 / 2
    });
    let summary = rec.stop().unwrap();
    assert_eq!(summary.stats.connections, 1);
    assert_eq!(summary.stats.dropped_samples, 0);
    assert!(read_wav(&path).1 == signal, "recording differs");
    assert!(!dir.join("rec-2.wav").exists());
}
