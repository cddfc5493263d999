//! Ctrl-C through the real binary: a looping stream stops cleanly on SIGINT
//! with exit code 0 and the one-line summary (datagrams, samples, duration).

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn sigint_stops_with_a_one_line_summary() {
    let dir = TempDir::new("sigint");
    let wav = dir.path("a.wav");
    write_i16(&wav, 1, 44_100, &test_signal(4410));
    let cap = Capture::start(None);
    let child = Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args([wav.to_str().unwrap(), &cap.dest(), "--loop", "--speed", "4"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the stream is flowing.
    assert!(cap.wait_for(5), "the stream never started");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: Vec<&str> = stderr.lines().filter(|l| l.contains("stopped:")).collect();
    assert_eq!(summary.len(), 1, "{stderr}");
    let got = cap.finish();
    assert!(!got.is_empty());
    assert!(
        summary[0].contains(&format!("stopped: {} datagrams", got.len())),
        "{} vs {} received",
        summary[0],
        got.len()
    );
}
