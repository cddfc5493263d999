//! Start-up problems are one clear line and a non-zero exit, never a panic.

use std::net::UdpSocket;
use std::process::Command;

fn node(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audionode"))
        .args(args)
        .env_remove("LISTEN_PORT")
        .env_remove("DEST")
        .env_remove("LOGFILE")
        .env_remove("BUFFER_SIZE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("audionode:"))
        .collect()
}

#[test]
fn occupied_port_is_a_clear_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let log = std::env::temp_dir().join(format!("audionode-occupied-{}.log", std::process::id()));
    let (code, stderr) = node(&[
        "--listen",
        &listen,
        "--log-file",
        log.to_str().unwrap(),
        "--http",
        "off",
    ]);
    assert_eq!(code, 1);
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!("cannot listen on {listen}")),
        "{stderr}"
    );
    assert!(lines[0].contains("in use"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn unwritable_log_file_is_a_clear_error() {
    let (code, stderr) = node(&[
        "--listen",
        "127.0.0.1:0",
        "--log-file",
        "/nonexistent-dir/x.log",
        "--http",
        "off",
    ]);
    assert_eq!(code, 1);
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("cannot write event log /nonexistent-dir/x.log"),
        "{stderr}"
    );
}

#[test]
fn bad_flag_values_are_clear_errors() {
    let (code, stderr) = node(&["--jitter-ms", "soon", "--http", "off"]);
    assert_eq!(code, 1);
    assert!(
        error_lines(&stderr)[0].contains("jitter target \"soon\""),
        "{stderr}"
    );
}
