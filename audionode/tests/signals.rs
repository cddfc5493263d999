//! SIGTERM stops the real binary cleanly: every stream is logged as dropped
//! with its final counters and the process exits 0.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn sigterm_logs_final_counters_and_exits_cleanly() {
    let dir = temp_dir("sigterm");
    let log = dir.join("events.log");
    // Find a free port for the node by binding and releasing one.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let collector = Collector::start();
    let child = Command::new(env!("CARGO_BIN_EXE_audionode"))
        .args([
            "--listen",
            &listen,
            "--dest",
            &collector.addr.to_string(),
            "--http",
            "off",
        ])
        .arg("--log-file")
        .arg(&log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let samples = signal(20 * CHUNK, 5);
    let addr = source.local_addr().unwrap();
    // Keep sending until the node has admitted the stream (it may still be starting).
    wait_for("the node to admit the stream", || {
        send_paced(&source, listen.parse().unwrap(), &samples, 0, &[0]);
        events_of(&log, addr)
            .iter()
            .any(|l| l.starts_with("New stream"))
    });
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let events = events_of(&log, addr);
    let last = events.last().unwrap();
    assert!(
        last.starts_with("Dropped stream reason=shutdown received="),
        "{events:?}"
    );
    drop(collector);
}
