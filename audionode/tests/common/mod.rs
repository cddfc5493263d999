//! Shared helpers of the node's scenario tests: a node on ephemeral ports,
//! a collecting recorder stand-in, a paced source, and event-log parsing;
//! [`signal`] for the browser tests' WAV files and alignment.
//!
//! The nodes started here run with `--plc off`: the scenarios compare the
//! mix frame by frame with the input, silent where nothing was sent (a
//! stream's end included). Concealment has its own simulated-time tests
//! (`src/nodecore/sim_tests_plc.rs`).

#![allow(dead_code)]

pub mod signal;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use audionode::{Args, Config, NodeHandle};
use proto::udp_mono::{encode_mono, mono_datagram_len};
use proto::StereoDatagram;

pub const RATE: u32 = 44_100;
pub const CHUNK: usize = 441;
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A fresh directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("audionode-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `cond` until it holds, failing after a generous deadline.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Collects every stereo frame sent to its socket, in arrival order.
pub struct Collector {
    pub addr: SocketAddr,
    frames: Arc<Mutex<Vec<(i16, i16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (Arc::clone(&frames), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 65_536];
            while !s.load(Ordering::SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let d = StereoDatagram::decode(&buf[..n]).expect("node sends valid stereo");
                    f.lock().unwrap().extend(d.frames());
                }
            }
        });
        Self {
            addr,
            frames,
            stop,
            thread: Some(thread),
        }
    }

    pub fn len(&self) -> usize {
        self.frames.lock().unwrap().len()
    }

    /// Stops collecting (after draining what already arrived) and returns the frames.
    pub fn finish(mut self) -> Vec<(i16, i16)> {
        // Whatever the node sent has arrived once the length stops changing.
        let mut last = usize::MAX;
        while self.len() != last {
            last = self.len();
            thread::sleep(Duration::from_millis(100));
        }
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.frames.lock().unwrap())
    }
}

/// Starts a node on 127.0.0.1:0 sending to `dest`, logging into `dir`.
pub fn start_node(
    dir: &Path,
    dest: SocketAddr,
    jitter_ms: &str,
    timeout_ms: u64,
) -> (NodeHandle, PathBuf) {
    let log = dir.join("audionode.log");
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![dest.to_string()],
        log_file: Some(log.clone()),
        jitter_ms: Some(jitter_ms.into()),
        sample_rate: RATE,
        max_sources: 16,
        timeout_ms,
        http: "off".into(),
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let config = Config::from_args(&args, |_| None).unwrap();
    (audionode::start(config).unwrap(), log)
}

/// A distinctive test signal.
pub fn signal(len: usize, salt: i32) -> Vec<i16> {
    (0..len as i32)
        .map(|i| ((i.wrapping_mul(7919).wrapping_add(salt * 104_729)) % 20_000) as i16)
        .collect()
}

/// Sends packet k of `samples` (seq `first_seq + k`) at `start + k × 10 ms`,
/// in the order given by `script` (an index may repeat or be missing): a
/// packet scripted after a later one (reordered, repeated) goes out right
/// after it, and a missing one leaves its time empty, as a real sender's
/// packets lost on the way would.
pub fn send_paced(
    socket: &UdpSocket,
    to: SocketAddr,
    samples: &[i16],
    first_seq: u32,
    script: &[usize],
) {
    let start = Instant::now();
    let mut buf = vec![0u8; mono_datagram_len(CHUNK)];
    let mut latest = 0;
    for &k in script {
        latest = latest.max(k);
        let due = start + Duration::from_secs_f64(latest as f64 * CHUNK as f64 / f64::from(RATE));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let chunk = &samples[k * CHUNK..((k + 1) * CHUNK).min(samples.len())];
        let n = encode_mono(first_seq.wrapping_add(k as u32), chunk, &mut buf).unwrap();
        socket.send_to(&buf[..n], to).unwrap();
    }
}

/// The event-log lines of `source`, without the time stamp and address.
pub fn events_of(log: &Path, source: impl std::fmt::Display) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tag = format!("[{:>21}] ", source.to_string());
    text.lines()
        .filter_map(|l| l.split_once(&tag).map(|(_, event)| event.to_string()))
        .collect()
}

/// The `start_frame=` value of a source's `New stream` line.
pub fn start_frame(log: &Path, source: impl std::fmt::Display) -> usize {
    let line = events_of(log, source)
        .into_iter()
        .find(|l| l.starts_with("New stream"))
        .expect("a New stream line");
    let value = line
        .split("start_frame=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    value.parse().unwrap()
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading a large body.
    let _ = stream.write_all(body.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// Starts a node with its control surface on 127.0.0.1:0.
pub fn start_node_with_http(
    dir: &Path,
    dest: SocketAddr,
    token: Option<&str>,
) -> (NodeHandle, PathBuf) {
    let log = dir.join("audionode.log");
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![dest.to_string()],
        log_file: Some(log.clone()),
        jitter_ms: Some("100".into()),
        sample_rate: RATE,
        max_sources: 16,
        timeout_ms: 300,
        http: "127.0.0.1:0".into(),
        http_token: token.map(str::to_string),
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let config = Config::from_args(&args, |_| None).unwrap();
    (audionode::start(config).unwrap(), log)
}

/// Sends a constant-valued mono stream from a new socket for `seconds`, in
/// the background; returns the socket's address.
pub fn constant_stream(to: SocketAddr, value: i16, seconds: f64) -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let packets = (seconds * 100.0) as usize;
    let samples = vec![value; packets * CHUNK];
    let thread = thread::spawn(move || {
        let script: Vec<usize> = (0..packets).collect();
        send_paced(&socket, to, &samples, 0, &script);
    });
    (addr, thread)
}

impl Collector {
    /// A copy of `len` frames starting at `from` (which must have arrived).
    pub fn snapshot_frames(&self, from: usize, len: usize) -> Vec<(i16, i16)> {
        self.frames.lock().unwrap()[from..from + len].to_vec()
    }
}
