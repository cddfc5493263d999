//! The outbox: everything that leaves the mixing thread other than a plain
//! `sendto`, through memory allocated before the first packet.
//!
//! - events: an SPSC ring (rtrb) to the event-log thread, which writes the
//!   file and mirrors the important lines to the program log;
//! - blocks: an SPSC ring of interleaved samples to the tap thread
//!   ([`crate::tap`]), which hands the mix to the TCP clients
//!   (`--tcp-listen`) and the WebSocket listeners;
//! - stats: a triple-buffered [`StatsFrame`] that the control surface and
//!   [`crate::NodeHandle::snapshot`] read whenever they like.
//!
//! The mixing thread never waits on any of them: when a ring is full the
//! newest item is dropped and counted (`events_dropped`, `blocks_dropped`
//! in the stats), and nothing here can wake another thread with a system
//! call; the consumers poll.

use std::sync::{Arc, Mutex};

use crate::nodecore::event::Event;
use crate::nodecore::stats::StatsFrame;
use crate::nodecore::NodeCore;

/// Events the ring to the event-log thread holds.
pub const EVENT_RING: usize = 16_384;

/// The mixing thread's ends.
pub struct Outbox {
    events: rtrb::Producer<Event>,
    blocks: Option<rtrb::Producer<i16>>,
    stats: triple_buffer::Input<StatsFrame>,
    events_dropped: u64,
    blocks_dropped: u64,
}

/// The other ends, for the threads that consume them.
pub struct OutboxReaders {
    /// Events, for the event-log thread.
    pub events: rtrb::Consumer<Event>,
    /// Mixed samples, for the tap (with `--tcp-listen` or the control
    /// surface).
    pub blocks: Option<rtrb::Consumer<i16>>,
    /// The latest stats frame.
    pub stats: StatsReader,
}

/// Makes the outbox: stats frames with room for `max_sources` rows, and,
/// with `block_ring` > 0, a block ring of that many samples.
pub fn outbox(max_sources: usize, block_ring: usize) -> (Outbox, OutboxReaders) {
    let (events, events_rx) = rtrb::RingBuffer::new(EVENT_RING);
    let (blocks, blocks_rx) = if block_ring > 0 {
        let (tx, rx) = rtrb::RingBuffer::new(block_ring);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (stats, stats_rx) = triple_buffer::triple_buffer(&StatsFrame::new(max_sources));
    (
        Outbox {
            events,
            blocks,
            stats,
            events_dropped: 0,
            blocks_dropped: 0,
        },
        OutboxReaders {
            events: events_rx,
            blocks: blocks_rx,
            stats: StatsReader(Arc::new(Mutex::new(stats_rx))),
        },
    )
}

impl Outbox {
    /// Queues an event for the event-log thread (dropped and counted when
    /// its ring is full).
    pub fn push_event(&mut self, event: Event) {
        if self.events.push(event).is_err() {
            self.events_dropped += 1;
        }
    }

    /// Queues a mixed block for the tap, whole or not at all.
    pub fn push_block(&mut self, block: &[i16]) {
        let Some(ring) = self.blocks.as_mut() else {
            return;
        };
        match ring.write_chunk_uninit(block.len()) {
            Ok(chunk) => {
                chunk.fill_from_iter(block.iter().copied());
            }
            Err(_) => self.blocks_dropped += 1,
        }
    }

    /// Writes the core's stats into the next frame and publishes it.
    pub fn publish_stats(&mut self, core: &mut NodeCore) {
        let frame = self.stats.input_buffer_mut();
        core.write_stats(frame);
        frame.node.events_dropped += self.events_dropped;
        frame.node.blocks_dropped = self.blocks_dropped;
        self.stats.publish();
    }
}

/// Reads the latest stats frame; cheap to clone, shared by every reader.
#[derive(Clone)]
pub struct StatsReader(Arc<Mutex<triple_buffer::Output<StatsFrame>>>);

impl StatsReader {
    /// Calls `f` with the latest published frame.
    pub fn read<R>(&self, f: impl FnOnce(&StatsFrame) -> R) -> R {
        let mut output = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(output.read())
    }
}
