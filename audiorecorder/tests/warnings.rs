//! Warnings of the real binary: the node's mono input format (or malformed
//! datagrams) sent to the recorder is named after a second, while the
//! stream goes on; alsa-lib's own diagnostics never reach stderr.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Starts the binary recording to `wav` on an ephemeral port; returns it,
/// its address and its stderr lines (collected in the background).
fn spawn(wav: &std::path::Path) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_audiorecorder"))
        .args([wav.to_str().unwrap(), "127.0.0.1:0", "--no-playback"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let collected = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("audiorecorder: listening on UDP ") {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
            collected.lock().unwrap().push(line);
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (child, addr, lines)
}

#[test]
fn the_nodes_mono_format_is_named_after_a_second() {
    let dir = temp_dir("monowarn");
    let (mut child, addr, lines) = spawn(&dir.join("rec.wav"));
    let socket = sender();
    let mut buf = vec![0u8; 4 + 2 * 441];
    let samples: Vec<i16> = (0..441).map(|i| (i * 50) as i16).collect();
    let start = Instant::now();
    let warned = |lines: &Arc<Mutex<Vec<String>>>| {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("looked like audionode's input format"))
            .count()
    };
    // Mono datagrams with sequence numbers, 10 ms apart, until the warning
    // (or 10 s: then the test fails).
    let mut seq = 0u32;
    while warned(&lines) == 0 && start.elapsed() < Duration::from_secs(10) {
        let n = proto::encode_mono(seq, &samples, &mut buf).unwrap();
        socket.send_to(&buf[..n], addr).unwrap();
        seq += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    // Not before a second of them (the first does not count: nothing to
    // count up from), and not never.
    assert!(warned(&lines) == 1, "no warning after {seq} datagrams");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // Once, not once per datagram.
    for s in seq..seq + 50 {
        let n = proto::encode_mono(s, &samples, &mut buf).unwrap();
        socket.send_to(&buf[..n], addr).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(warned_lines(&lines), 1, "{lines:#?}");
    let line = lines.iter().find(|l| l.contains("looked like")).unwrap();
    assert!(
        line.contains("audiostreamer --stream-to-recorder"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn warned_lines(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("looked like audionode's input format"))
        .count()
}

/// alsa-lib's configuration without a sound card: every device probe
/// fails inside alsa-lib, which would print "ALSA lib …" lines.
const SYSTEM_ALSA_CONF: &str = "/usr/share/alsa/alsa.conf";

fn list_devices(rust_log: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_audiorecorder"))
        .arg("--list-devices")
        .env("ALSA_CONFIG_PATH", SYSTEM_ALSA_CONF)
        .env("RUST_LOG", rust_log)
        .env_remove("PULSE_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn alsa_lib_diagnostics_go_to_the_debug_log_not_stderr() {
    if !std::path::Path::new(SYSTEM_ALSA_CONF).exists() {
        println!("SKIPPED: no {SYSTEM_ALSA_CONF}");
        return;
    }
    let debug = list_devices("alsa=debug");
    let raw = |text: &str| text.lines().filter(|l| l.contains("ALSA lib")).count();
    let routed = debug.lines().filter(|l| l.contains(" DEBUG alsa]")).count();
    if raw(&debug) + routed == 0 {
        // A machine whose sound cards all open: alsa-lib has nothing to say.
        println!("SKIPPED: alsa-lib reported no errors on this machine");
        return;
    }
    // alsa-lib's messages arrive in the log, one line each, never raw.
    assert_eq!(raw(&debug), 0, "{debug}");
    assert!(routed > 0, "{debug}");
    let quiet = list_devices("info");
    assert_eq!(raw(&quiet), 0, "{quiet}");
    assert!(!quiet.contains("alsa]"), "{quiet}");
}
