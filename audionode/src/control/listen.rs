//! Listeners of the live mix (`GET /ws/listen`): the mix as 16-bit PCM
//! over WebSocket, for the Listen page and any other client.
//!
//! The tap thread ([`crate::tap`]) hands every mixed block to
//! [`Listeners::publish`], which cuts the stream into messages of a fixed
//! number of frames and offers each to every listener's bounded queue
//! without waiting. A listener whose queue is full has fallen behind: it
//! is dropped at once (its connection closed, the drop counted and logged
//! once), so a slow listener never holds up the others, the TCP fan-out or
//! the mixing thread, which only ever sees the tap's lock-free ring.
//!
//! Wire format (documented in `docs/control-api.md`): one JSON text
//! message ([`Listeners::header`]), then binary messages of
//! `frames_per_message` interleaved stereo frames, signed 16-bit little
//! endian, left first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// The Listen page and its scripts (the desk shares the player and worklet).
pub(crate) const LISTEN_HTML: &str = include_str!("../../assets/listen.html");
pub(crate) const LISTEN_JS: &str = include_str!("../../assets/listen.js");
pub(crate) const PLAYER_JS: &str = include_str!("../../assets/player.js");
pub(crate) const WORKLET_JS: &str = include_str!("../../assets/listen-worklet.js");

/// Default cap on concurrent listeners (`--max-listeners`).
pub const DEFAULT_MAX_LISTENERS: usize = 100;
/// Audio in one binary message: 10 ms, short enough for a low-latency
/// player, long enough that 100 listeners cost 10 000 messages a second.
const MESSAGE_MS: u32 = 10;
/// A listener's kernel send buffer (doubled by the kernel: about 0.35 s
/// at 48 kHz), so that one that stops reading is found out within a
/// second rather than after megabytes of autotuned buffer.
pub(crate) const SEND_BUFFER: usize = 32 * 1024;
/// Messages a listener's queue holds (half a second) before it counts as
/// fallen behind. The kernel's socket buffers come on top of this.
const QUEUE_MESSAGES: usize = 50;

/// What `/api/state` and `/metrics` say about listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenCounts {
    /// Listeners connected now.
    pub listeners: usize,
    /// Listeners dropped since start because they fell behind.
    pub dropped: u64,
}

/// The listeners of one node: the cap, the queues the tap fills, counters.
pub struct Listeners {
    rate: u32,
    frames_per_message: usize,
    max: usize,
    slots: Arc<Semaphore>,
    dropped: AtomicU64,
    inner: Mutex<Inner>,
}

/// What the tap thread and new listeners share under the lock.
struct Inner {
    /// Bytes of the message being cut (little-endian samples).
    pending: Vec<u8>,
    queues: Vec<Queue>,
}

/// One listener as the tap sees it.
struct Queue {
    peer: SocketAddr,
    frames: mpsc::Sender<Bytes>,
    /// Fired when the listener is dropped, to close its connection even
    /// while a send to it is stuck.
    kick: Option<oneshot::Sender<()>>,
}

/// A listener's place under the cap, taken before the upgrade and given
/// back when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Why a listener was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full {
    /// The cap that was reached.
    pub max: usize,
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many listeners ({} at most, --max-listeners); try again later",
            self.max
        )
    }
}

impl Listeners {
    /// Listeners of a mix at `rate` Hz, at most `max` at once.
    pub fn new(rate: u32, max: usize) -> Arc<Self> {
        let frames_per_message = (rate * MESSAGE_MS / 1000).max(1) as usize;
        Arc::new(Self {
            rate,
            frames_per_message,
            max,
            slots: Arc::new(Semaphore::new(max)),
            dropped: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                pending: Vec::with_capacity(4 * frames_per_message),
                queues: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stereo frames in each binary message.
    pub fn frames_per_message(&self) -> usize {
        self.frames_per_message
    }

    /// The JSON text message every listener gets first.
    pub fn header(&self) -> String {
        serde_json::json!({
            "format": "s16le",
            "rate": self.rate,
            "channels": 2,
            "frames_per_message": self.frames_per_message,
        })
        .to_string()
    }

    /// Listeners now and dropped so far.
    pub fn counts(&self) -> ListenCounts {
        ListenCounts {
            listeners: self.max - self.slots.available_permits(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// A place for one more listener, or the reason there is none.
    pub(crate) fn try_slot(&self) -> Result<Slot, Full> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .map(|permit| Slot { _permit: permit })
            .map_err(|_| Full { max: self.max })
    }

    /// Takes interleaved stereo samples from the tap thread: whole messages
    /// go to every listener's queue; the rest waits for the next call.
    pub fn publish(&self, samples: &[i16]) {
        let mut inner = self.lock();
        if inner.queues.is_empty() {
            // Nobody listens: nothing to cut. A new listener starts with
            // the next block, which is as good a start as any.
            inner.pending.clear();
            return;
        }
        let message_bytes = 4 * self.frames_per_message;
        inner
            .pending
            .extend(samples.iter().flat_map(|s| s.to_le_bytes()));
        let mut start = 0;
        while inner.pending.len() - start >= message_bytes {
            let message = Bytes::copy_from_slice(&inner.pending[start..start + message_bytes]);
            start += message_bytes;
            self.offer(&mut inner.queues, &message);
        }
        inner.pending.drain(..start);
    }

    /// Offers one message to every queue; drops the listeners that are full.
    fn offer(&self, queues: &mut Vec<Queue>, message: &Bytes) {
        queues.retain_mut(|queue| match queue.frames.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "listener {} dropped: it fell more than {} ms behind the mix",
                    queue.peer,
                    QUEUE_MESSAGES as u32 * MESSAGE_MS
                );
                if let Some(kick) = queue.kick.take() {
                    let _ = kick.send(());
                }
                false
            }
            // The listener left on its own.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Registers a listener: its queue of messages and its kick.
    fn register(&self, peer: SocketAddr) -> (mpsc::Receiver<Bytes>, oneshot::Receiver<()>) {
        let (frames, queue) = mpsc::channel(QUEUE_MESSAGES);
        let (kick, kicked) = oneshot::channel();
        self.lock().queues.push(Queue {
            peer,
            frames,
            kick: Some(kick),
        });
        (queue, kicked)
    }

    /// Serves one upgraded listener until it leaves or is dropped; `slot`
    /// is held until then.
    pub(crate) async fn serve(self: Arc<Self>, socket: WebSocket, peer: SocketAddr, slot: Slot) {
        let (mut tx, mut rx) = socket.split();
        if tx.send(Message::Text(self.header().into())).await.is_err() {
            return;
        }
        let (mut queue, mut kicked) = self.register(peer);
        log::debug!("listener {peer} joined");
        loop {
            let message = tokio::select! {
                _ = &mut kicked => break,
                message = queue.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
                incoming = rx.next() => match incoming {
                    // A listener has nothing to say; only its leaving counts.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                },
            };
            // A send stuck on a full socket is abandoned when the tap
            // gives up on this listener.
            tokio::select! {
                _ = &mut kicked => break,
                sent = tx.send(Message::Binary(message)) => if sent.is_err() { break },
            }
        }
        log::debug!("listener {peer} left");
        drop(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn cuts_whole_messages_in_order_and_keeps_the_rest() {
        let listeners = Listeners::new(1000, 4);
        assert_eq!(listeners.frames_per_message(), 10);
        let (mut queue, _kicked) = listeners.register(peer());
        let samples: Vec<i16> = (0..50).map(|i| i * 257 - 3000).collect();
        listeners.publish(&samples[..15]);
        assert!(queue.try_recv().is_err(), "7.5 frames are not a message");
        listeners.publish(&samples[15..]);
        let mut got = Vec::new();
        while let Ok(message) = queue.try_recv() {
            assert_eq!(message.len(), 40);
            got.extend(
                message
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            );
        }
        assert_eq!(got, samples[..40]);
    }

    #[test]
    fn a_full_queue_drops_that_listener_only() {
        let listeners = Listeners::new(1000, 4);
        let (_slow, mut slow_kicked) = listeners.register(peer());
        let (mut fast, _fast_kicked) = listeners.register(peer());
        let message = vec![0i16; 20];
        for _ in 0..QUEUE_MESSAGES {
            listeners.publish(&message);
            assert!(fast.try_recv().is_ok());
        }
        assert_eq!(listeners.counts().dropped, 0);
        listeners.publish(&message);
        assert_eq!(listeners.counts().dropped, 1);
        assert!(slow_kicked.try_recv().is_ok(), "the slow one is kicked");
        assert!(
            fast.try_recv().is_ok(),
            "the other still gets every message"
        );
        listeners.publish(&message);
        assert_eq!(listeners.counts().dropped, 1, "counted once");
    }

    #[test]
    fn the_cap_refuses_with_its_reason_and_frees_on_leave() {
        let listeners = Listeners::new(48_000, 2);
        let a = listeners.try_slot().unwrap();
        let _b = listeners.try_slot().unwrap();
        assert_eq!(listeners.counts().listeners, 2);
        let refused = listeners.try_slot().err().unwrap();
        assert!(refused.to_string().contains("2 at most"), "{refused}");
        drop(a);
        assert!(listeners.try_slot().is_ok());
    }

    #[test]
    fn header_names_the_format() {
        let header: serde_json::Value =
            serde_json::from_str(&Listeners::new(48_000, 1).header()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"format": "s16le", "rate": 48000, "channels": 2, "frames_per_message": 480})
        );
    }
}
