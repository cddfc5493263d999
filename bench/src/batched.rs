//! The batched bare receive-and-mix loop: the fair floor for the node's
//! cost per packet. Under load the node does not wake per datagram: it
//! sleeps about a millisecond and then drains its socket with non-blocking
//! `recvmmsg` calls. This loop does the same with nothing else around it:
//! non-blocking `recvmmsg` of up to [`BATCH`] datagrams at a time (the
//! node's own [`BatchReceiver`] with `wait = None`, i.e. `MSG_DONTWAIT`),
//! decode each mono datagram with proto, add its samples into one f32
//! block, send that block as one stereo datagram every 10 ms on a deadline
//! schedule, and sleep 1 ms whenever a call leaves the socket empty.
//!
//! [`crate::bare`] is the other baseline: it blocks (`ppoll`) before every
//! batch, so under load it wakes for almost every datagram and pays a
//! context switch each time, which makes any batching node look cheap
//! next to it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audionode::batch_recv::BatchReceiver;
use proto::MonoDatagram;

use crate::bare::BareCounters;

/// Datagrams taken per `recvmmsg` call.
pub const BATCH: usize = 256;

/// Frames per output block: 10 ms at 44.1 kHz.
pub const BLOCK_FRAMES: usize = 441;

/// How long the loop sleeps when it finds the socket empty.
pub const IDLE_SLEEP: Duration = Duration::from_millis(1);

/// Largest datagram the loop accepts: the node's default limit, plus one
/// byte so an oversized datagram shows by its length (as in the node).
const SLOT_LEN: usize = audionode::config::MAX_DATAGRAM_BYTES + 1;

/// Runs the loop on `socket` until `stop` is set, sending each 10 ms block
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
    let block = Duration::from_nanos(BLOCK_FRAMES as u64 * 1_000_000_000 / 44_100);
    let mut rx = BatchReceiver::new(BATCH, SLOT_LEN);
    let mut acc = vec![0f32; BLOCK_FRAMES];
    let mut out = vec![0u8; 4 * BLOCK_FRAMES];
    let start = Instant::now();
    let mut blocks: u32 = 1;
    while !stop.load(Ordering::Relaxed) {
        // `None`: no ppoll, just recvmmsg with MSG_DONTWAIT.
        let n = rx.recv(&socket, None)?;
        for i in 0..n {
            let (_, bytes) = rx.get(i);
            if let Ok(d) = MonoDatagram::decode(bytes) {
                for (a, s) in acc.iter_mut().zip(d.samples()) {
                    *a += f32::from(s);
                }
            }
        }
        counters.packets.fetch_add(n as u64, Ordering::Relaxed);
        // Deadlines come from the block count, so a late block does not
        // shift the later ones.
        let deadline = block * blocks;
        let now = start.elapsed();
        if now >= deadline {
            blocks += 1;
            render(&mut acc, &mut out);
            let _ = socket.send_to(&out, dest);
        }
        // A batch that did not fill every slot emptied the socket (the
        // node's rule too: a full batch means "receive again at once").
        if n < BATCH {
            let until = (block * blocks).saturating_sub(start.elapsed());
            std::thread::sleep(IDLE_SLEEP.min(until));
        }
    }
    Ok(())
}

/// Renders the accumulator to big-endian stereo i16 (both channels the
/// same) in `out` and clears it for the next block.
fn render(acc: &mut [f32], out: &mut [u8]) {
    for (o, a) in out.chunks_exact_mut(4).zip(acc.iter_mut()) {
        let s = (a.round().clamp(-32768.0, 32767.0) as i16).to_be_bytes();
        o[..2].copy_from_slice(&s);
        o[2..].copy_from_slice(&s);
        *a = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::udp_mono::encode_mono;

    #[test]
    fn render_saturates_duplicates_and_clears() {
        let mut acc = vec![1.4, -2.6, 40_000.0, -40_000.0];
        let mut out = vec![0u8; 16];
        render(&mut acc, &mut out);
        let got: Vec<i16> = out
            .chunks_exact(2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(got, [1, 1, -3, -3, 32767, 32767, -32768, -32768]);
        assert!(acc.iter().all(|&a| a == 0.0));
    }

    #[test]
    fn sums_every_datagram_into_the_next_block() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(BareCounters::default());
        let thread = {
            let (stop, counters, dest) = (
                Arc::clone(&stop),
                Arc::clone(&counters),
                sink.local_addr().unwrap(),
            );
            std::thread::spawn(move || run(socket, dest, stop, counters))
        };
        // Three sources of constant 100 each, one packet each.
        let mut buf = vec![0u8; 4 + 2 * BLOCK_FRAMES];
        let len = encode_mono(0, &[100; BLOCK_FRAMES], &mut buf).unwrap();
        for _ in 0..3 {
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            tx.send_to(&buf[..len], to).unwrap();
        }
        // The three packets may straddle blocks; summed over the blocks
        // every sample is 300, and no block holds part of a packet.
        let mut block = [0u8; 4 * BLOCK_FRAMES + 1];
        let mut total = 0i32;
        for _ in 0..100 {
            let n = sink.recv(&mut block).unwrap();
            assert_eq!(n, 4 * BLOCK_FRAMES, "one stereo datagram per block");
            let samples: Vec<i16> = block[..n]
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .collect();
            assert!(samples.iter().all(|&s| s == samples[0]), "{samples:?}");
            total += i32::from(samples[0]);
            if total == 300 {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap().unwrap();
        assert_eq!(total, 300);
        assert_eq!(counters.packets.load(Ordering::Relaxed), 3);
    }
}
