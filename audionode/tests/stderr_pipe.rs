//! A stderr nobody reads (a stuck log shipper, a paused terminal) while a
//! thousand sources come and go: the real binary keeps mixing in real time
//! and honours SIGTERM. In a file of its own: its thousand sockets and its
//! timing must not share the machine with other tests of this crate.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use proto::udp_mono::{encode_mono, mono_datagram_len};

/// Raises the soft open-file limit to the hard one (a thousand sockets).
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[test]
fn a_stderr_nobody_reads_stalls_neither_the_mix_nor_sigterm() {
    raise_fd_limit();
    let dir = temp_dir("stderr-pipe");
    let log = dir.join("events.log");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let collector = Collector::start();
    // stderr is a pipe this test never reads: once its 64 KiB are full,
    // every write to it blocks.
    let mut child = Command::new(env!("CARGO_BIN_EXE_audionode"))
        .args(["--listen", &listen, "--dest", &collector.addr.to_string()])
        .args([
            "--http",
            "off",
            "--max-sources",
            "1100",
            "--timeout-ms",
            "300",
        ])
        .args(["--log-lines-per-second", "0"])
        .arg("--log-file")
        .arg(&log)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let node: std::net::SocketAddr = listen.parse().unwrap();
    // One steady source keeps the node mixing for the whole test.
    let (_steady, steady) = constant_stream(node, 1000, 9.0);
    wait_for("the node to mix", || collector.len() > 4410);
    // 1,000 sources join (3 packets each) and time out again, twice: about
    // 4,000 lines of program log (plus debug lines), far beyond the pipe.
    let sockets: Vec<UdpSocket> = (0..1000)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut datagram = vec![0; mono_datagram_len(CHUNK)];
    let started = Instant::now();
    let frames_before = collector.len();
    for round in 0..2 {
        for seq in 0..3u32 {
            for socket in &sockets {
                encode_mono(seq, &[7; CHUNK], &mut datagram).unwrap();
                socket.send_to(&datagram, node).unwrap();
            }
            thread::sleep(Duration::from_millis(10));
        }
        if round == 0 {
            thread::sleep(Duration::from_millis(1500));
        }
    }
    thread::sleep(Duration::from_millis(2000));
    let elapsed = started.elapsed().as_secs_f64();
    let frames = (collector.len() - frames_before) as f64;
    let real_time = elapsed * f64::from(RATE);
    assert!(
        frames >= 0.99 * real_time,
        "{frames} frames in {elapsed:.2} s ({:.1} % of real time)",
        100.0 * frames / real_time
    );
    let joins = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("New stream"))
        .count();
    assert!(joins >= 2000, "{joins} joins logged");
    // SIGTERM with stderr still full: the node stops within a second.
    let stopping = Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "SIGTERM not honoured in 10 s"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let stop_time = stopping.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        stop_time < Duration::from_secs(1),
        "stopped after {stop_time:?}"
    );
    steady.join().unwrap();
    drop(collector);
}
