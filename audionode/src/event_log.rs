//! The event log: a writer thread takes events from the outbox's ring,
//! appends one line per event to the log file and mirrors the important
//! ones (joins, restarts, drops, stalls) to the program log. It polls the
//! ring (the mixing thread never wakes it), flushes once per batch, and
//! writing a slow disk or a stuck stderr never stalls receiving or mixing:
//! the ring fills and further events are counted as dropped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::nodecore::event::{Event, EventKind, Mirror};
use crate::nodecore::name::SourceName;
use crate::nodecore::source_id::SourceId;

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

/// The line each start of the node begins with in the event log: node
/// time 0 is this wall-clock time (UTC), so the log's millisecond stamps
/// can be placed in the day, and an appended log shows where each run of
/// the node begins.
pub fn start_line(wall_clock: std::time::SystemTime, details: &str) -> String {
    format!(
        "[{:>12}] [{:>21}] Node started version={} wall_clock={} {details}",
        0,
        "node",
        env!("CARGO_PKG_VERSION"),
        utc(wall_clock)
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let c = proto::civil::UtcTime::from_unix_secs(since.as_secs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        since.subsec_millis()
    )
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
    // Named sources' lines end with `name="…"`.
    let mut names: HashMap<SourceId, SourceName> = HashMap::new();
    loop {
        // Read the flag first: everything pushed before it was set is in
        // the ring when the ring is drained below.
        let stopping = stop.load(Ordering::SeqCst);
        let mut result = Ok(());
        let mut wrote = false;
        while let Ok(event) = events.pop() {
            let name = match event.kind {
                EventKind::Named { name, .. } => {
                    if name.is_empty() {
                        names.remove(&event.source);
                    } else {
                        names.insert(event.source, name);
                    }
                    // Its own line says the name already.
                    None
                }
                _ => names.get(&event.source).copied(),
            };
            mirror(&event, name);
            if matches!(event.kind, EventKind::Dropped { .. }) {
                names.remove(&event.source);
            }
            if matches!(event.kind.mirror(), Mirror::DebugOnly | Mirror::WarnOnly) {
                continue;
            }
            result = result.and_then(|()| match name {
                Some(name) => writeln!(out, "{event} name=\"{}\"", name.escaped()),
                None => writeln!(out, "{event}"),
            });
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
fn mirror(event: &Event, name: Option<SourceName>) {
    let who = Who(event.source, name);
    match event.kind.mirror() {
        Mirror::Info => log::info!("{who} {}", event.kind),
        Mirror::Warn | Mirror::WarnOnly => log::warn!("{who} {}", event.kind),
        Mirror::FileOnly | Mirror::DebugOnly => log::debug!("{who} {}", event.kind),
    }
}

/// A source as the program log names it: its id and, if named, its name.
struct Who(SourceId, Option<SourceName>);

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(name) => write!(f, "{} (\"{}\")", self.0, name.escaped()),
            None => write!(f, "{}", self.0),
        }
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
    fn a_named_sources_lines_carry_its_name_until_it_leaves() {
        let path = std::env::temp_dir().join(format!(
            "audionode-eventlog-names-{}.log",
            std::process::id()
        ));
        let (mut tx, rx) = rtrb::RingBuffer::new(8);
        let log = EventLog::start(open(&path).unwrap(), &path, rx).unwrap();
        let id = SourceId::Ssrc(0xbeef);
        let at = Duration::from_millis(5);
        for kind in [
            EventKind::Named {
                name: SourceName::new(r#"bass "DI""#),
                by: crate::nodecore::event::NamedBy::Rtcp,
            },
            EventKind::Repeated { seq: 1 },
            EventKind::Dropped {
                reason: crate::nodecore::event::DropReason::Closed,
                stats: Default::default(),
            },
            EventKind::Repeated { seq: 2 },
        ] {
            tx.push(Event {
                at,
                source: id,
                kind,
            })
            .unwrap();
        }
        log.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"[           5] [        ssrc:0000beef] Named name="bass \"DI\"" by=rtcp"#
        );
        assert_eq!(
            lines[1],
            r#"[           5] [        ssrc:0000beef] Repeated packet seq=1 name="bass \"DI\"""#
        );
        assert!(lines[2]
            .starts_with("[           5] [        ssrc:0000beef] Dropped stream reason=closed"));
        assert!(lines[2].ends_with(r#" name="bass \"DI\"""#));
        assert_eq!(
            lines[3],
            "[           5] [        ssrc:0000beef] Repeated packet seq=2"
        );
    }

    #[test]
    fn the_start_line_says_when_node_time_zero_is() {
        let t = std::time::UNIX_EPOCH + Duration::from_millis(1_796_131_512_345);
        assert_eq!(utc(t), "2026-12-01T13:25:12.345Z");
        assert_eq!(utc(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&utc(leap)[..10], "2000-02-29");
        let line = start_line(t, "listen=127.0.0.1:4030");
        assert!(line.starts_with("[           0] [                 node] Node started version="));
        assert!(line.ends_with("wall_clock=2026-12-01T13:25:12.345Z listen=127.0.0.1:4030"));
    }

    #[test]
    fn unwritable_path_fails_at_open() {
        let err = open(Path::new("/nonexistent-dir/audionode.log"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
