//! Through the binary: without DEST the stream goes to 127.0.0.1:4030 (a
//! local audionode), and a `--speed` other than 1 towards a node prints one
//! warning line. Port 4030 is a real, fixed port: when something else on
//! this machine holds it, the test prints SKIPPED.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn without_dest_it_sends_to_the_local_node_port_and_warns_about_speed() {
    let socket = match UdpSocket::bind("127.0.0.1:4030") {
        Ok(s) => s,
        Err(e) => {
            println!("SKIPPED: 127.0.0.1:4030 is taken on this machine ({e})");
            return;
        }
    };
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let dir = TempDir::new("defaults");
    let wav = dir.path("a.wav");
    let samples = test_signal(441 * 5);
    write_i16(&wav, 1, 44_100, &samples);
    let out = Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args([wav.to_str().unwrap(), "--speed", "10"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut got = Vec::new();
    let mut buf = [0u8; 2000];
    while let Ok(n) = socket.recv(&mut buf) {
        let d = proto::MonoDatagram::decode(&buf[..n]).unwrap();
        got.extend(d.samples());
        if got.len() >= samples.len() {
            break;
        }
    }
    assert_eq!(got, samples);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains(
            "--speed 10 sends UDP to an audionode faster than real time: a node's (or RTP \
             receiver's) jitter buffer will discard most of it"
        ),
        "{stderr}"
    );
}
