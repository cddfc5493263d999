//! The blocking bare receive-and-mix loop (`audiocapacity --bare
//! blocking`). It drains a socket with the node's own recvmmsg batcher
//! ([`audionode::batch_recv::BatchReceiver`], 64 per call), decodes each
//! datagram with proto, adds its samples into a planar f32 accumulator, and
//! every 5 ms renders the accumulator to i16 and sends it (one datagram) to
//! a destination. No per-source state, no jitter buffer, no event log, no
//! control surface. Before every batch it blocks (`ppoll`) until a datagram
//! or the next deadline, so under load it wakes for almost every datagram;
//! a node that batches its receives looks cheap next to it. The fair floor
//! is [`crate::batched`], which batches the way the node does.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audionode::batch_recv::BatchReceiver;
use proto::MonoDatagram;

/// Counters the bare loop publishes while it runs.
#[derive(Debug, Default)]
pub struct BareCounters {
    /// Datagrams received.
    pub packets: AtomicU64,
    /// The loop's thread id (for `/proc/self/task/TID/stat`), once started.
    pub tid: AtomicU64,
}

/// Runs the loop on `socket` until `stop` is set, sending each 5 ms block
/// to `dest`.
pub fn run(
    socket: UdpSocket,
    dest: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<BareCounters>,
) -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    counters.tid.store(tid as u64, Ordering::SeqCst);
    let block = Duration::from_nanos(220 * 1_000_000_000 / 44_100);
    let mut rx = BatchReceiver::new(64, 4 + 2 * 8192 + 1);
    let mut acc = vec![0f32; 8192];
    let mut out = vec![0u8; 4 * 220];
    let start = Instant::now();
    let mut blocks: u32 = 1;
    while !stop.load(Ordering::Relaxed) {
        let deadline = block * blocks;
        let now = start.elapsed();
        let wait = deadline.checked_sub(now).filter(|w| !w.is_zero());
        let n = rx.recv(&socket, wait.map(|w| w.min(Duration::from_millis(50))))?;
        for i in 0..n {
            let (_, bytes) = rx.get(i);
            if let Ok(d) = MonoDatagram::decode(bytes) {
                for (a, s) in acc.iter_mut().zip(d.samples()) {
                    *a += f32::from(s);
                }
            }
        }
        counters.packets.fetch_add(n as u64, Ordering::Relaxed);
        if start.elapsed() >= deadline {
            blocks += 1;
            for (o, a) in out.chunks_exact_mut(4).zip(acc.iter_mut()) {
                let s = (a.round().clamp(-32768.0, 32767.0) as i16).to_be_bytes();
                o[..2].copy_from_slice(&s);
                o[2..].copy_from_slice(&s);
                *a = 0.0;
            }
            let _ = socket.send_to(&out, dest);
        }
    }
    Ok(())
}
