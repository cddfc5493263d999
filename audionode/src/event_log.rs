//! The event log: a writer thread appends one line per event to the log
//! file, fed by a bounded channel so a slow disk never stalls receiving or
//! mixing. Lines are flushed as soon as the channel is drained.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::event::{Event, EventKind};

/// Events queued before new ones are dropped (and counted).
const QUEUE: usize = 65_536;

/// Handle to the event-log writer thread.
pub struct EventLog {
    queue: Option<Sender<Event>>,
    writer: Option<JoinHandle<io::Result<()>>>,
    dropped: Arc<AtomicU64>,
    path: PathBuf,
}

impl EventLog {
    /// Opens (creating or appending to) `path` and starts the writer thread.
    /// Fails at once if the file cannot be opened for writing.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (queue, events) = crossbeam_channel::bounded(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer_path = path.to_path_buf();
        let writer = thread::Builder::new()
            .name("event-log".into())
            .spawn(move || write_loop(file, events, &writer_path))?;
        Ok(Self {
            queue: Some(queue),
            writer: Some(writer),
            dropped,
            path: path.to_path_buf(),
        })
    }

    /// Queues one event; never blocks. Also mirrors stream arrivals and
    /// departures to the program log.
    pub fn log(&self, event: Event) {
        match event.kind {
            EventKind::NewStream { .. }
            | EventKind::Restarted { .. }
            | EventKind::Dropped { .. } => {
                log::info!("{} {}", event.source, event.kind)
            }
            _ => log::debug!("{} {}", event.source, event.kind),
        }
        if let Some(queue) = &self.queue {
            if let Err(TrySendError::Full(_)) = queue.try_send(event) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything queued, flushes and stops the writer.
    pub fn close(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.queue.take();
        match self.writer.take() {
            Some(writer) => writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("event-log writer panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            log::error!("event log {}: {e}", self.path.display());
        }
    }
}

fn write_loop(file: File, events: Receiver<Event>, path: &Path) -> io::Result<()> {
    let mut out = BufWriter::new(file);
    let mut failed = false;
    while let Ok(first) = events.recv() {
        let mut result = writeln!(out, "{first}");
        // Drain whatever else is queued, then flush once: prompt but not
        // a syscall per line under bursts.
        while let Ok(event) = events.try_recv() {
            result = result.and_then(|()| writeln!(out, "{event}"));
        }
        result = result.and_then(|()| out.flush());
        if let Err(e) = result {
            if !failed {
                log::error!("cannot write event log {}: {e}", path.display());
                failed = true;
            }
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn appends_formatted_lines() {
        let path =
            std::env::temp_dir().join(format!("audionode-eventlog-{}.log", std::process::id()));
        std::fs::write(&path, "earlier line\n").unwrap();
        let log = EventLog::open(&path).unwrap();
        log.log(Event {
            at: Duration::from_millis(42),
            source: "10.0.0.1:4000".parse().unwrap(),
            kind: EventKind::Repeated { seq: 3 },
        });
        log.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            text,
            "earlier line\n[          42] [        10.0.0.1:4000] Repeated packet seq=3\n"
        );
    }

    #[test]
    fn unwritable_path_fails_at_open() {
        let err = EventLog::open(Path::new("/nonexistent-dir/audionode.log"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
