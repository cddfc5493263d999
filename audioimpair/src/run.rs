//! The binary's body: start the proxy, wait for Ctrl-C or SIGTERM, write
//! the ground truth.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::proxy::Proxy;

/// How often the main thread checks that the IO thread is still alive
/// while it waits for a signal.
const LIVENESS_CHECK: Duration = Duration::from_millis(250);

/// Runs the proxy until SIGINT/SIGTERM, then writes the ground truth as
/// JSON to `config.summary` (standard output when `None`).
pub fn run(config: Config) -> anyhow::Result<()> {
    // Open the summary file first: a run whose truth cannot be written is
    // worth refusing before it starts. It is truncated only at the end, so
    // a run that fails to start leaves an earlier summary intact.
    let file = match &config.summary {
        Some(path) => Some(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("cannot write summary file {}", path.display()))?,
        ),
        None => None,
    };
    let summary = config.summary.clone();
    let handle = Proxy::start(config)?;
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("cannot install the signal handler")?;
    loop {
        match rx.recv_timeout(LIVENESS_CHECK) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if !handle.is_running() => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let truth = handle.stop();
    let mut out: Box<dyn Write> = match file {
        Some(f) => {
            f.set_len(0).context("cannot truncate the summary file")?;
            Box::new(BufWriter::new(f))
        }
        None => Box::new(io::stdout().lock()),
    };
    serde_json::to_writer(&mut out, &truth).context("cannot encode the ground truth")?;
    writeln!(out)
        .and_then(|()| out.flush())
        .context("cannot write the ground truth")?;
    if let Some(path) = summary {
        log::info!("ground truth written to {}", path.display());
    }
    Ok(())
}
