//! The program log (`RUST_LOG`, info by default) on a stderr that may
//! block: env_logger formats each line as usual, but instead of writing
//! stderr itself it hands the bytes to a bounded queue that a `stderr`
//! thread writes out. A log call never waits: when stderr is a pipe nobody
//! reads (a stuck log shipper, a paused terminal) and the queue is full,
//! lines are dropped and counted, and the count is written once stderr
//! drains again. So no thread of the node (nor its shutdown on SIGTERM)
//! can hang on its own log.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Lines queued for stderr before new ones are dropped.
const QUEUE_LINES: usize = 4096;

/// Installs the program logger.
pub fn init() {
    let (lines, queue) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let writer_dropped = Arc::clone(&dropped);
    // If the thread cannot start, log straight to stderr as before.
    let spawned = thread::Builder::new()
        .name("stderr".into())
        .spawn(move || write_stderr(&queue, &writer_dropped));
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if spawned.is_ok() {
        builder.target(env_logger::Target::Pipe(Box::new(QueueWriter {
            lines,
            line: Vec::new(),
            dropped,
        })));
    }
    builder.init();
}

/// env_logger's target: collects a formatted record and queues it.
struct QueueWriter {
    lines: Sender<Vec<u8>>,
    line: Vec<u8>,
    dropped: Arc<AtomicU64>,
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.lines.try_send(line)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn write_stderr(queue: &Receiver<Vec<u8>>, dropped: &AtomicU64) {
    let mut reported = 0;
    for line in queue {
        let mut err = io::stderr().lock();
        let now = dropped.load(Ordering::Relaxed);
        if now > reported {
            let _ = writeln!(
                err,
                "[audionode] {} log lines were dropped while stderr was not being read",
                now - reported
            );
            reported = now;
        }
        let _ = err.write_all(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (lines, queue) = crossbeam_channel::bounded(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut w = QueueWriter {
            lines,
            line: Vec::new(),
            dropped: Arc::clone(&dropped),
        };
        for _ in 0..3 {
            w.write_all(b"a line\n").unwrap();
            w.flush().unwrap();
        }
        assert_eq!(queue.try_recv().unwrap(), b"a line\n");
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }
}
