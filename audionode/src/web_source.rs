//! Browser senders (the Send page, `/ws/send`) on their way to the mixing
//! thread: one lock-free ring, allocated when the node starts, that every
//! sender's WebSocket task pushes into and the mixing thread pops from.
//!
//! The WebSocket tasks run on the control surface's tokio thread, so the
//! ring's producer sits behind a `Mutex` there, held only for one push;
//! the mixing thread owns the consumer alone and never waits on it. A
//! packet travels as native samples with the name its sender gave and the
//! time it arrived, so the core times it like a datagram; a frame that is
//! not a packet and the end of a stream travel the same way, in order,
//! after the packets before them. A ring that is full (the mixing thread
//! is behind) drops the packet: it is then missing from the stream, and
//! counted as lost like a datagram lost on the way.
//!
//! A sender is its browser's TCP address ([`SourceId::Addr`]): unique
//! while its socket is open, shown like any other address in the event
//! log, the API and `/metrics`, and no id a UDP or RTP source could take
//! over while the stream is live.
//!
//! [`SourceId::Addr`]: crate::nodecore::source_id::SourceId::Addr

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::nodecore::ingress::{Malformed, Samples, SourcePacket, WebFrameError};
use crate::nodecore::name::SourceName;
use crate::nodecore::{Input, NodeCore};
use crate::tcp_source::MAX_TCP_PACKET;

/// Most browser senders at once (fewer when the node mixes fewer sources).
pub const MAX_SENDERS: usize = 64;
/// Largest packet in samples: 10 ms at 192 kHz.
pub(crate) const MAX_WEB_PACKET: usize = MAX_TCP_PACKET;
/// Items the ring holds: 80 ms of every one of [`MAX_SENDERS`] senders,
/// far more than the mixing thread (which drains it at least every 5 ms
/// while anyone sends) lets pile up.
const RING_ITEMS: usize = 512;
/// How long the end of a stream waits for room in a full ring; past it,
/// the source ends at its timeout instead.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What a browser sender's task hands the mixing thread.
// Inline, not boxed: a box would be allocated on the control thread and
// freed on the mixing thread, which must not touch the allocator.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum WebInput {
    /// One packet of samples.
    Packet {
        from: SocketAddr,
        arrived: Duration,
        seq: u32,
        name: SourceName,
        len: u16,
        samples: [i16; MAX_WEB_PACKET],
    },
    /// A frame that is not a packet (the socket is being closed).
    Malformed {
        from: SocketAddr,
        arrived: Duration,
        len: usize,
        why: WebFrameError,
    },
    /// The stream ended.
    Closed { from: SocketAddr, arrived: Duration },
}

/// The producer side, shared by every sender's task.
#[derive(Debug)]
pub struct WebSenders {
    ring: Mutex<rtrb::Producer<WebInput>>,
    epoch: Instant,
    rate: u32,
    max: usize,
    active: AtomicUsize,
}

impl WebSenders {
    /// The ring for a node mixing at `rate` with room for `max_sources`
    /// sources, whose time zero is `epoch`; the consumer goes to the
    /// mixing thread.
    pub(crate) fn new(
        rate: u32,
        max_sources: usize,
        epoch: Instant,
    ) -> (Arc<Self>, rtrb::Consumer<WebInput>) {
        let (producer, consumer) = rtrb::RingBuffer::new(RING_ITEMS);
        let senders = Self {
            ring: Mutex::new(producer),
            epoch,
            rate,
            max: MAX_SENDERS.min(max_sources).max(1),
            active: AtomicUsize::new(0),
        };
        (Arc::new(senders), consumer)
    }

    /// The node's sample rate, which every sender must send at.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples in one packet: 10 ms at the node's rate.
    pub(crate) fn packet_samples(&self) -> usize {
        (self.rate as usize / 100).clamp(1, MAX_WEB_PACKET)
    }

    /// Most senders at once.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Senders connected now (read by the mixing thread: one atomic load).
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// A place for the sender at `from`, or `None` when [`Self::max`]
    /// senders are connected.
    pub(crate) fn join(self: &Arc<Self>, from: SocketAddr) -> Option<SenderSlot> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(SenderSlot {
            senders: Arc::clone(self),
            from,
            name: SourceName::EMPTY,
            closed: false,
        })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn push(&self, input: WebInput) -> bool {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.push(input).is_ok()
    }
}

/// One connected sender: its place among [`WebSenders::max`] and its way
/// into the ring. Dropping it frees the place and ends the stream.
#[derive(Debug)]
pub(crate) struct SenderSlot {
    senders: Arc<WebSenders>,
    from: SocketAddr,
    name: SourceName,
    closed: bool,
}

impl SenderSlot {
    /// The name its packets carry (cut and cleaned as every name is).
    pub(crate) fn set_name(&mut self, name: &str) {
        self.name = SourceName::new(name);
    }

    /// Hands one packet of mono samples to the mixing thread; `false` when
    /// the ring was full and it was dropped.
    pub(crate) fn packet(&self, seq: u32, samples: &[i16]) -> bool {
        let len = samples.len().min(MAX_WEB_PACKET);
        let mut input = WebInput::Packet {
            from: self.from,
            arrived: Duration::ZERO,
            seq,
            name: self.name,
            len: len as u16,
            samples: [0; MAX_WEB_PACKET],
        };
        if let WebInput::Packet {
            arrived,
            samples: buf,
            ..
        } = &mut input
        {
            buf[..len].copy_from_slice(&samples[..len]);
            *arrived = self.senders.now();
        }
        self.senders.push(input)
    }

    /// Counts a frame of `len` bytes that is not a packet.
    pub(crate) fn malformed(&self, len: usize, why: WebFrameError) {
        self.senders.push(WebInput::Malformed {
            from: self.from,
            arrived: self.senders.now(),
            len,
            why,
        });
    }

    /// Ends the stream: the source is dropped with `reason=closed` once
    /// what it sent has played. Waits a little for room in a full ring.
    pub(crate) async fn close(mut self) {
        let start = Instant::now();
        while !self.try_close() && start.elapsed() < CLOSE_WAIT {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Dropping `self` frees the place (and tries no second close).
    }

    fn try_close(&mut self) -> bool {
        if !self.closed {
            self.closed = self.senders.push(WebInput::Closed {
                from: self.from,
                arrived: self.senders.now(),
            });
        }
        self.closed
    }
}

impl Drop for SenderSlot {
    fn drop(&mut self) {
        // A task that ended without `close` (the runtime stopping) still
        // ends its stream if there is room.
        self.try_close();
        self.senders.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Feeds everything queued in `ring` to `core`, read at `now`. Runs on the
/// mixing thread: it only pops the ring (no lock, no allocation).
pub(crate) fn drain(ring: &mut rtrb::Consumer<WebInput>, core: &mut NodeCore, now: Duration) {
    while let Ok(input) = ring.pop() {
        match input {
            WebInput::Packet {
                from,
                arrived,
                seq,
                name,
                len,
                samples,
            } => {
                let samples = &samples[..usize::from(len)];
                core.handle_input(Input::Packet {
                    arrived,
                    read_at: now,
                    from,
                    packet: SourcePacket::mono(seq, Samples::Native(samples)),
                });
                // With every packet, so a source the node could only admit
                // later, or whose operator's name was removed, has it too;
                // an unchanged name costs one comparison and logs nothing.
                core.handle_input(Input::SenderName {
                    arrived,
                    from,
                    name,
                });
            }
            WebInput::Malformed {
                from,
                arrived,
                len,
                why,
            } => core.handle_input(Input::Malformed {
                arrived,
                from,
                len,
                why: Malformed::WebFrame(why),
            }),
            WebInput::Closed { from, arrived } => {
                core.handle_input(Input::Closed { arrived, from })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_and_freed() {
        let (senders, _rx) = WebSenders::new(48_000, 2, Instant::now());
        assert_eq!((senders.max(), senders.packet_samples()), (2, 480));
        let a = senders.join(SocketAddr::from(([127, 0, 0, 1], 1))).unwrap();
        let b = senders.join(SocketAddr::from(([127, 0, 0, 1], 2))).unwrap();
        assert!(senders
            .join(SocketAddr::from(([127, 0, 0, 1], 3)))
            .is_none());
        assert_eq!(senders.active(), 2);
        drop(a);
        assert_eq!(senders.active(), 1);
        assert!(senders
            .join(SocketAddr::from(([127, 0, 0, 1], 3)))
            .is_some());
        drop(b);
    }

    #[test]
    fn packets_then_the_end_arrive_in_order() {
        let (senders, mut rx) = WebSenders::new(44_100, 64, Instant::now());
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut slot = senders.join(from).unwrap();
        slot.set_name(" voice\n");
        assert!(slot.packet(7, &[1, -2, 3]));
        drop(slot);
        match rx.pop().unwrap() {
            WebInput::Packet {
                seq,
                name,
                len,
                samples,
                ..
            } => {
                assert_eq!((seq, name.as_str()), (7, "voice"));
                assert_eq!(&samples[..usize::from(len)], &[1, -2, 3]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(rx.pop(), Ok(WebInput::Closed { from: f, .. }) if f == from));
        assert!(rx.pop().is_err());
    }

    #[test]
    fn a_full_ring_drops_packets_but_not_the_end() {
        let (senders, mut rx) = WebSenders::new(44_100, 64, Instant::now());
        let slot = senders.join(SocketAddr::from(([127, 0, 0, 1], 9))).unwrap();
        let mut pushed = 0;
        while slot.packet(pushed, &[0; 441]) {
            pushed += 1;
        }
        assert_eq!(pushed as usize, RING_ITEMS);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // The end waits for room: the mixing thread frees one slot.
        let close = std::thread::spawn(move || runtime.block_on(slot.close()));
        std::thread::sleep(Duration::from_millis(20));
        assert!(rx.pop().is_ok());
        close.join().unwrap();
        let last = (0..RING_ITEMS).filter_map(|_| rx.pop().ok()).last();
        assert!(matches!(last, Some(WebInput::Closed { .. })));
        assert_eq!(senders.active(), 0);
    }
}
