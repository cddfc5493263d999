//! Bad input through the real binary: each mistake gives exactly one line
//! `audiostreamer: <problem>` on stderr and exit code 1, never a panic or a
//! backtrace; a send error is logged once per burst while streaming goes on.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn run_bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args(args)
        .env_remove("RUST_LOG")
        // A panic would print its backtrace: make sure there is none to print.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// Asserts a one-line error containing `needle` and a failure exit code.
fn assert_one_line_error(args: &[&str], needle: &str) {
    let out = run_bin(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(out.status.code(), Some(1), "args {args:?}: stderr {stderr}");
    assert_eq!(
        lines.len(),
        1,
        "args {args:?}: expected one line, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("audiostreamer: "), "{}", lines[0]);
    assert!(
        lines[0].contains(needle),
        "args {args:?}: {:?} lacks {needle:?}",
        lines[0]
    );
    assert!(out.stdout.is_empty());
}

/// A RIFF/WAVE file with a 16-byte fmt chunk of the given tag and depth.
fn write_raw_wav(path: &Path, format_tag: u16, bits: u16) {
    let data = [0u8; 16];
    let block_align = bits / 8;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 24 + 8 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format_tag.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // channels
    b.extend_from_slice(&8000u32.to_le_bytes()); // rate
    b.extend_from_slice(&(8000 * u32::from(block_align)).to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(path, b).unwrap();
}

#[test]
fn file_problems() {
    let dir = TempDir::new("bad");
    let missing = dir.path("missing.wav");
    assert_one_line_error(
        &[missing.to_str().unwrap(), "127.0.0.1:4030"],
        "no such file",
    );

    let text = dir.path("text.wav");
    std::fs::write(&text, "not audio at all, just some words in a file").unwrap();
    assert_one_line_error(
        &[text.to_str().unwrap(), "127.0.0.1:4030"],
        "not a WAV file",
    );

    let empty = dir.path("empty.wav");
    write_i16(&empty, 1, 44_100, &[]);
    assert_one_line_error(
        &[empty.to_str().unwrap(), "127.0.0.1:4030"],
        "contains no samples",
    );

    let alaw = dir.path("alaw.wav");
    write_raw_wav(&alaw, 6, 8);
    assert_one_line_error(
        &[alaw.to_str().unwrap(), "127.0.0.1:4030"],
        "unsupported WAV encoding",
    );

    let f64wav = dir.path("f64.wav");
    write_raw_wav(&f64wav, 3, 64);
    assert_one_line_error(
        &[f64wav.to_str().unwrap(), "127.0.0.1:4030"],
        "unsupported WAV encoding (float samples that are not 32-bit)",
    );
}

#[test]
fn destination_and_flag_problems() {
    let dir = TempDir::new("badflags");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &test_signal(100));
    let wav = wav.to_str().unwrap();
    assert_one_line_error(
        &[wav, "127.0.0.1"],
        "cannot resolve destination '127.0.0.1'",
    );
    assert_one_line_error(&[wav, "localhost:notaport"], "cannot resolve destination");
    assert_one_line_error(
        &[wav, "no-such-host.invalid:4030"],
        "no-such-host.invalid:4030",
    );
    assert_one_line_error(
        &[wav, "127.0.0.1:4030", "--chunk-ms", "0.001"],
        "yields 0 samples",
    );
    assert_one_line_error(
        &[wav, "127.0.0.1:4030", "--chunk-ms", "0"],
        "not a positive number",
    );
    assert_one_line_error(
        &[wav, "127.0.0.1:4030", "--chunk-ms", "1000"],
        "the maximum is 32767",
    );
    assert_one_line_error(&[wav, "--rtp"], "--rtp needs a DEST");
    assert_one_line_error(&[], "no input file given");
    assert_one_line_error(
        &[wav, "127.0.0.1:4030", "--speed", "0"],
        "--speed must be a positive number",
    );
    // Once a panic in Duration::from_secs_f64 with a backtrace (at the
    // second datagram's deadline, so the file holds more than one).
    let long = dir.path("long.wav");
    write_i16(&long, 1, 44_100, &test_signal(1000));
    let long = long.to_str().unwrap();
    for speed in ["1e-300", "1e300"] {
        assert_one_line_error(
            &[long, "127.0.0.1:4030", "--speed", speed],
            &format!("--speed {speed} is out of range (0.001 to 1000 times real time)"),
        );
    }
}

#[test]
fn ports_already_in_use() {
    let dir = TempDir::new("inuse");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &test_signal(100));
    let wav = wav.to_str().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = udp.local_addr().unwrap().to_string();
    assert_one_line_error(&[wav, "127.0.0.1:4030", "--bind", &taken], "already in use");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = tcp.local_addr().unwrap().to_string();
    assert_one_line_error(&[wav, "--tcp-listen", &taken], "already in use");
}

#[test]
fn send_errors_are_logged_once_per_burst_and_streaming_continues() {
    let dir = TempDir::new("senderr");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &test_signal(44_100 / 2));
    // Sending to the broadcast address without SO_BROADCAST fails with
    // EACCES on every datagram: a deterministic burst of 50 send errors.
    let out = run_bin(&[wav.to_str().unwrap(), "255.255.255.255:9", "--speed", "20"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let failures = stderr.lines().filter(|l| l.contains("failed:")).count();
    assert_eq!(failures, 1, "one warning per burst:\n{stderr}");
    assert!(
        stderr.contains("done: 50 datagrams") && stderr.contains("50 sends failed"),
        "{stderr}"
    );
}

/// An ephemeral port with nothing listening on it (bound, then released).
fn closed_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

#[test]
fn a_closed_destination_port_is_reported_once() {
    let dir = TempDir::new("refused");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &test_signal(44_100 / 2));
    let dest = format!("127.0.0.1:{}", closed_port());
    let out = run_bin(&[wav.to_str().unwrap(), &dest, "--speed", "5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("nothing is listening"))
        .collect();
    assert_eq!(lines.len(), 1, "one line, not one per datagram:\n{stderr}");
    assert!(
        lines[0].contains(&format!(
            "nothing is listening at {dest} (ICMP port unreachable); streaming continues"
        )),
        "{}",
        lines[0]
    );
    assert!(!stderr.contains("failed:"), "{stderr}");
    assert!(!stderr.contains("listening again"), "{stderr}");
}

#[test]
fn a_destination_that_starts_listening_is_reported_once_more() {
    let dir = TempDir::new("recovered");
    let wav = dir.path("a.wav");
    // 4 s in real time: enough to see the refusal, bind, and a quiet second.
    write_i16(&wav, 1, 44_100, &test_signal(4 * 44_100));
    let port = closed_port();
    let dest = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args([wav.to_str().unwrap(), &dest])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("the refusal line").unwrap();
        let refused = line.contains("nothing is listening");
        seen.push(line);
        if refused {
            break;
        }
    }
    // Now listen there and keep the socket while the stream goes on.
    let listener = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    seen.extend(lines.map(Result::unwrap));
    assert!(child.wait().unwrap().success());
    drop(listener);
    let count = |needle: &str| seen.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("nothing is listening"), 1, "{seen:#?}");
    assert_eq!(count(&format!("{dest} is listening again")), 1, "{seen:#?}");
}
