//! The binary: user mistakes are one `audioimpair:` line and exit code 1;
//! SIGTERM/SIGINT write the ground truth and exit 0.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use audioimpair::{Fate, GroundTruth, Impairment, ImpairmentConfig, LossModel};
use common::{mono, wait_for, Receiver, DEADLINE};

fn impair(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audioimpair"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts one error line starting `audioimpair:` containing `want`, exit 1.
fn assert_one_error(args: &[&str], want: &str) {
    let (code, stderr) = impair(args);
    assert_eq!(code, 1, "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(lines[0].starts_with("audioimpair: "), "{stderr}");
    assert!(lines[0].contains(want), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"));
}

const BASE: [&str; 4] = ["--listen", "127.0.0.1:0", "--forward", "127.0.0.1:9"];

fn with_base(extra: &[&'static str]) -> Vec<&'static str> {
    BASE.iter().chain(extra).copied().collect()
}

#[test]
fn bad_flags_are_one_clear_line() {
    for (extra, want) in [
        (&["--loss", "1.5"][..], "--loss 1.5 is not a probability"),
        (&["--loss", "-0.1"], "--loss -0.1 is not a probability"),
        (&["--reorder", "x"], "invalid value 'x' for '--reorder <P>'"),
        (&["--duplicate", "2"], "--duplicate 2 is not a probability"),
        (&["--loss", "0.9", "--burst-loss"], "raise --burst-len"),
        (&["--burst-len", "3"], "--burst-loss"),
        (&["--rate", "0"], "--rate 0 must be a positive number"),
        (
            &["--jitter", "-5"],
            "invalid value '-5' for '--jitter <MS>'",
        ),
        (&["--delay", "999999"], "--delay 999999 ms"),
        (&["--nonsense"], "unexpected argument '--nonsense'"),
        (
            &["--summary", "/nonexistent-dir/t.json"],
            "cannot write summary file",
        ),
    ] {
        assert_one_error(&with_base(extra), want);
    }
    assert_one_error(&["--listen", "127.0.0.1:0"], "--forward <ADDR>");
    assert_one_error(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "no-such-host.invalid:9",
        ],
        "cannot resolve --forward address",
    );
    assert_one_error(
        &["--listen", "127.0.0.1:0", "--forward", "127.0.0.1:0"],
        "needs a non-zero port",
    );
}

#[test]
fn occupied_port_is_one_clear_line() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_one_error(
        &["--listen", &addr, "--forward", "127.0.0.1:9"],
        &format!("cannot listen on {addr}"),
    );
    let (_, stderr) = impair(&["--listen", &addr, "--forward", "127.0.0.1:9"]);
    assert!(stderr.contains("in use"), "{stderr}");
}

#[test]
fn help_and_version_succeed() {
    let (code, _) = impair(&["--help"]);
    assert_eq!(code, 0);
    let (code, _) = impair(&["--version"]);
    assert_eq!(code, 0);
}

/// Starts the binary; returns it and its listen address, read from the log.
fn spawn(args: &[&str]) -> (Child, SocketAddr, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_audioimpair"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let listen = loop {
        let line = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no listening line in {seen:?}"));
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split(',').next().unwrap().parse().unwrap();
        }
        seen.push(line);
    };
    (child, listen, rx)
}

fn terminate(child: &mut Child, signal: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: sending a signal to a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

fn wait_exit(child: &mut Child) -> i32 {
    let mut code = None;
    wait_for("the proxy to exit", || {
        code = child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
        code.is_some()
    });
    code.unwrap()
}

#[test]
fn sigterm_writes_the_ground_truth_file() {
    let rx = Receiver::start(false);
    let dir = std::env::temp_dir().join(format!("audioimpair-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let summary = dir.join("truth.json");
    std::fs::write(
        &summary,
        "stale content that must disappear, longer than the json",
    )
    .ok();
    let forward = rx.addr.to_string();
    let (mut child, listen, log) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &forward,
        "--loss",
        "0.2",
        "--seed",
        "3",
        "--summary",
        summary.to_str().unwrap(),
    ]);
    let c = common::client();
    for seq in 0..50 {
        c.send_to(&mono(seq, 4), listen).unwrap();
    }
    // The seed fixes the decisions: the library predicts what the binary
    // forwards, so the test knows when everything has arrived.
    let config = ImpairmentConfig {
        loss: LossModel::bernoulli(0.2).unwrap(),
        ..Default::default()
    };
    let mut model = Impairment::new(&config, 3, 0);
    let expected = (0..50)
        .filter(|_| model.decide(Duration::ZERO, 12) != Fate::Lost)
        .count();
    assert!(expected < 48, "the seed loses some");
    wait_for("the forwarded datagrams", || rx.count() == expected);
    terminate(&mut child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child), 0);
    let truth: GroundTruth =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(truth.seed, 3);
    let t = &truth.sources[0];
    assert_eq!(t.client, c.local_addr().unwrap());
    assert_eq!(t.received, 50);
    assert_eq!(t.forwarded + t.dropped, 50);
    assert_eq!(rx.seqs_from(t.upstream), t.released_seqs);
    let lines: Vec<String> = log.iter().collect(); // ends at the child's EOF
    assert!(
        lines.iter().any(|l| l.contains("1 client(s): received 50")),
        "{lines:?}"
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(stdout.is_empty(), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigint_writes_the_ground_truth_to_stdout() {
    let rx = Receiver::start(false);
    let forward = rx.addr.to_string();
    let (mut child, listen, _log) = spawn(&["--listen", "127.0.0.1:0", "--forward", &forward]);
    let c = common::client();
    for seq in 0..10 {
        c.send_to(&mono(seq, 4), listen).unwrap();
    }
    wait_for("10 datagrams", || rx.count() == 10);
    terminate(&mut child, libc::SIGINT);
    assert_eq!(wait_exit(&mut child), 0);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let truth: GroundTruth = serde_json::from_str(&stdout).unwrap();
    assert_eq!(truth.sources[0].released_seqs, (0..10).collect::<Vec<_>>());
}
