//! The event log: a writer thread takes events from the outbox's ring,
//! appends one line per event to the log file and mirrors the important
//! ones (joins, restarts, drops, stalls) to the program log. It polls the
//! ring (the mixing thread never wakes it), flushes once per batch, and
//! writing a slow disk or a stuck stderr never stalls receiving or mixing:
//! the ring fills and further events are counted as dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::nodecore::event::{Event, Mirror};

/// How often the writer looks at the ring.
const POLL: Duration = Duration::from_millis(10);

/// Handle to the event-log writer thread.
pub struct EventLog {
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<io::Result<()>>>,
    path: PathBuf,
}

/// Opens (creating or appending to) `path` for [`EventLog::start`]; fails
/// at once if the file cannot be opened for writing.
pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl EventLog {
    /// Starts the writer thread on `file` (opened by [`open`]), reading
    /// `events`.
    pub fn start(file: File, path: &Path, events: rtrb::Consumer<Event>) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let writer_path = path.to_path_buf();
        let writer_stop = Arc::clone(&stop);
        let writer = thread::Builder::new()
            .name("event-log".into())
            .spawn(move || write_loop(file, events, &writer_path, &writer_stop))?;
        Ok(Self {
            stop,
            writer: Some(writer),
            path: path.to_path_buf(),
        })
    }

    /// Writes everything queued, flushes and stops the writer.
    pub fn close(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
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

fn write_loop(
    file: File,
    mut events: rtrb::Consumer<Event>,
    path: &Path,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut out = BufWriter::new(file);
    let mut failed = false;
    loop {
        // Read the flag first: everything pushed before it was set is in
        // the ring when the ring is drained below.
        let stopping = stop.load(Ordering::SeqCst);
        let mut result = Ok(());
        let mut wrote = false;
        while let Ok(event) = events.pop() {
            mirror(&event);
            if matches!(event.kind.mirror(), Mirror::DebugOnly | Mirror::WarnOnly) {
                continue;
            }
            result = result.and_then(|()| writeln!(out, "{event}"));
            wrote = true;
        }
        if wrote {
            // Once per batch: prompt, but not a syscall per line under bursts.
            result = result.and_then(|()| out.flush());
        }
        if let Err(e) = result {
            if !failed {
                log::error!("cannot write event log {}: {e}", path.display());
                failed = true;
            }
        }
        if stopping {
            return out.flush();
        }
        thread::sleep(POLL);
    }
}

/// The program log's copy of an event.
fn mirror(event: &Event) {
    match event.kind.mirror() {
        Mirror::Info => log::info!("{} {}", event.source, event.kind),
        Mirror::Warn | Mirror::WarnOnly => log::warn!("{} {}", event.source, event.kind),
        Mirror::FileOnly | Mirror::DebugOnly => log::debug!("{} {}", event.source, event.kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodecore::event::{EventKind, NODE};

    #[test]
    fn appends_formatted_lines_but_not_program_log_only_ones() {
        let path =
            std::env::temp_dir().join(format!("audionode-eventlog-{}.log", std::process::id()));
        std::fs::write(&path, "earlier line\n").unwrap();
        let (mut tx, rx) = rtrb::RingBuffer::new(8);
        let log = EventLog::start(open(&path).unwrap(), &path, rx).unwrap();
        tx.push(Event {
            at: Duration::from_millis(42),
            source: "10.0.0.1:4000".parse().unwrap(),
            kind: EventKind::Repeated { seq: 3 },
        })
        .unwrap();
        tx.push(Event {
            at: Duration::from_millis(43),
            source: NODE,
            kind: EventKind::Refused { max_sources: 1 },
        })
        .unwrap();
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
        let err = open(Path::new("/nonexistent-dir/audionode.log"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
