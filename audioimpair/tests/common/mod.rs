//! Helpers of the scenario tests: mono datagrams, a receiver that records
//! what arrives, and polling with a deadline instead of fixed sleeps.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Generous: these tests run beside others' builds and test suites.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A mono datagram with sequence number `seq` and `samples` samples.
pub fn mono(seq: u32, samples: usize) -> Vec<u8> {
    let pcm: Vec<i16> = (0..samples).map(|i| i as i16).collect();
    let mut buf = vec![0u8; proto::mono_datagram_len(samples)];
    let n = proto::encode_mono(seq, &pcm, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Waits until `cond` holds; panics with `what` after [`DEADLINE`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A datagram as the receiver got it.
#[derive(Debug, Clone)]
pub struct Got {
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
    pub at: Instant,
}

/// A socket on 127.0.0.1 that records every datagram on a thread and can
/// answer each one.
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts receiving; with `echo`, sends every datagram back to its sender.
    pub fn start(echo: bool) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        if echo {
                            socket.send_to(&buf[..n], from).unwrap();
                        }
                        got.lock().unwrap().push(Got {
                            from,
                            bytes: buf[..n].to_vec(),
                            at: Instant::now(),
                        });
                    }
                }
            })
        };
        Self {
            addr,
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// Datagrams received so far.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Everything received so far.
    pub fn snapshot(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Sequence numbers received from `from`, in arrival order.
    pub fn seqs_from(&self, from: SocketAddr) -> Vec<u32> {
        self.snapshot()
            .iter()
            .filter(|g| g.from == from)
            .map(|g| u32::from_be_bytes(g.bytes[..4].try_into().unwrap()))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client socket on 127.0.0.1 (ephemeral port).
pub fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}
