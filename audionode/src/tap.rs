//! The tap: the one thread that reads the mixing thread's block ring and
//! hands the mix to everyone else who consumes it as a stream of samples:
//! the TCP clients of `--tcp-listen` and the WebSocket listeners of the
//! control surface ([`Listeners`]), and the Opus RTP outputs
//! ([`OpusOut`], encoded here rather than on the mixing thread).
//!
//! It polls the ring once a block, so the mixing thread never wakes it
//! with a system call (while nobody consumes the mix, every
//! [`IDLE_INTERVAL`], discarding what it takes); it never waits on a
//! consumer either (the TCP server
//! disconnects a client that falls behind, listeners are dropped), so the
//! ring drains at the mix's pace whatever the consumers do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use proto::message::encode_samples;
use proto::TcpServer;

use crate::control::listen::Listeners;
use crate::opus_out::OpusOut;
use crate::outputs::OutputCommand;

/// How often the tap polls while no TCP client or listener is connected:
/// a block's poll costs little, but 200 of them a second were a tenth of
/// an idle node's CPU. Well inside the half second the block ring holds.
pub const IDLE_INTERVAL: Duration = Duration::from_millis(100);

/// Who the tap hands the mix to.
pub struct TapSinks {
    /// The TCP clients, with `--tcp-listen`: one Samples message per poll.
    pub tcp: Option<TcpServer>,
    /// The WebSocket listeners, with the control surface.
    pub listeners: Option<Arc<Listeners>>,
    /// The Opus outputs (`--rtp-dest` with `--rtp-codec opus`, and those
    /// added through the control surface), and the changes to their set.
    pub opus: Option<(OpusOut, rtrb::Consumer<OutputCommand>)>,
}

impl TapSinks {
    /// Whether any TCP client or listener is connected.
    fn anyone(&self) -> bool {
        self.opus.as_ref().is_some_and(|(o, _)| o.has_dests())
            || self.tcp.as_ref().is_some_and(|s| s.client_count() > 0)
            || self
                .listeners
                .as_ref()
                .is_some_and(|l| l.counts().listeners > 0)
    }
}

/// Starts the tap thread: every `interval` (every [`IDLE_INTERVAL`] while
/// `sinks` have nobody) it takes what the block ring holds and hands it to
/// `sinks`. It ends when `stop` is set and the ring is empty.
pub fn spawn(
    mut blocks: rtrb::Consumer<i16>,
    mut sinks: TapSinks,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new().name("tap".into()).spawn(move || {
        let mut samples: Vec<i16> = Vec::with_capacity(blocks.buffer().capacity());
        let mut message = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if let Some((opus, commands)) = sinks.opus.as_mut() {
                while let Ok(command) = commands.pop() {
                    opus.apply(command);
                }
            }
            // Whole stereo frames only: a block is always pushed whole.
            let n = blocks.slots() & !1;
            if n > 0 {
                if let Ok(chunk) = blocks.read_chunk(n) {
                    samples.clear();
                    samples.extend(chunk);
                    if let Some(server) = &sinks.tcp {
                        message.clear();
                        encode_samples(&samples, &mut message);
                        // Never blocks: a client that falls behind is disconnected.
                        let _ = server.broadcast(&message);
                    }
                    if let Some(listeners) = &sinks.listeners {
                        listeners.publish(&samples);
                    }
                    if let Some((opus, _)) = sinks.opus.as_mut() {
                        opus.push(&samples);
                    }
                }
            } else if stopping {
                if let Some((opus, _)) = sinks.opus.as_mut() {
                    opus.close();
                }
                break;
            }
            thread::sleep(if sinks.anyone() {
                interval
            } else {
                IDLE_INTERVAL
            });
        }
    })
}
