//! Starting and stopping a recorder: the IO edge that wires the socket, the
//! player and the WAV writer together on a network thread.
//!
//! [`start`] does everything that can fail because of a user mistake (bind
//! the port, open the WAV) before it returns, so such errors surface at
//! once. The returned [`Recorder`] tells tests which port it got, exposes
//! the live counters and stops cleanly, finalising the WAV.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;

use crate::cli::{Config, Input};
use crate::pipeline::Pipeline;
use crate::probe::ProbeWriter;
use crate::stats::{Stats, Summary};
use crate::wav::WavFormat;
use crate::writer::{WavSink, WriterHandle};
use crate::{device, rtp, tcp, udp};

/// A running recorder.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    stats: Arc<Stats>,
    local_addr: Option<SocketAddr>,
    sample_rate: u32,
    playing: bool,
    /// `--latency-probe`'s writer, finished after the network thread.
    probe: Option<ProbeWriter>,
}

/// Starts a recorder with `config`.
pub fn start(mut config: Config) -> anyhow::Result<Recorder> {
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let udp_format = WavFormat {
        channels: 2,
        sample_rate: config.sample_rate,
    };
    let writer = match &config.wav {
        Some(path) => {
            let mut sink = WavSink::new(path, config.overwrite, Arc::clone(&stats))?
                .with_max_files(config.max_files);
            if matches!(config.input, Input::Udp { .. } | Input::Rtp(_)) {
                // Open now: a mismatching file is an error before anything runs.
                sink.set_format(udp_format)?;
            }
            Some(WriterHandle::spawn(sink, Arc::clone(&stats))?)
        }
        None => None,
    };
    if let Some(name) = config.playback.as_ref().and_then(|p| p.device.as_deref()) {
        // A misspelt --device is a user mistake: say so now. (A machine
        // without any device only gets a warning, later.)
        device::find_output_device(Some(name))?;
    }
    let probe = config
        .latency_probe
        .as_deref()
        .map(ProbeWriter::start)
        .transpose()?;
    if let (Some(p), Some(opts)) = (&probe, &mut config.playback) {
        opts.probe = Some(p.handle());
    }
    let mut pipeline = Pipeline::new(writer, config.playback.clone(), Arc::clone(&stats))
        .with_probe(probe.as_ref().map(ProbeWriter::handle))
        .with_keep_time(config.keep_time);
    let thread_stats = Arc::clone(&stats);
    let thread_stop = Arc::clone(&stop);
    let (local_addr, body): (_, Box<dyn FnOnce() -> anyhow::Result<()> + Send>) = match config.input
    {
        Input::Udp {
            bind,
            port,
            pin,
            source_timeout,
        } => {
            let socket = udp::bind(&bind, port)?;
            let local = socket
                .local_addr()
                .context("cannot read the bound address")?;
            pipeline.set_format(udp_format);
            (
                Some(local),
                Box::new(move || {
                    let result = udp::receive_loop(
                        &socket,
                        pin,
                        source_timeout,
                        &mut pipeline,
                        &thread_stats,
                        &thread_stop,
                    );
                    let finished = pipeline.finish();
                    result.and(finished)
                }),
            )
        }
        Input::Rtp(settings) => {
            let sockets = rtp::bind(&settings)?;
            let local = sockets
                .rtp
                .local_addr()
                .context("cannot read the bound address")?;
            pipeline.set_format(udp_format);
            (
                Some(local),
                Box::new(move || {
                    let result = rtp::receive_loop(
                        &sockets,
                        &settings,
                        &mut pipeline,
                        &thread_stats,
                        &thread_stop,
                    );
                    let finished = pipeline.finish();
                    result.and(finished)
                }),
            )
        }
        Input::Tcp {
            addr,
            max_format_changes,
        } => {
            let addr = tcp::resolve(&addr)?;
            (
                None,
                Box::new(move || {
                    let result = tcp::client_loop(
                        addr,
                        max_format_changes,
                        &mut pipeline,
                        &thread_stats,
                        &thread_stop,
                    );
                    let finished = pipeline.finish();
                    result.and(finished)
                }),
            )
        }
    };
    let playing = config.playback.is_some();
    let thread = std::thread::Builder::new()
        .name("network".into())
        .spawn(body)
        .context("cannot start the network thread")?;
    Ok(Recorder {
        stop,
        thread: Some(thread),
        stats,
        local_addr,
        sample_rate: config.sample_rate,
        playing,
        probe,
    })
}

impl Recorder {
    /// The bound UDP address (with the real port when bound to 0); `None` for TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Whether playback was asked for (it may still be unavailable).
    pub fn playback_requested(&self) -> bool {
        self.playing
    }

    /// The flag that stops the recorder when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Whether the recorder stopped on its own (an error, e.g. a full disk).
    pub fn has_ended(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until the recorder stops (after the stop flag was set, or on an
    /// error), finalises the WAV and returns the summary.
    pub fn wait(mut self) -> anyhow::Result<Summary> {
        let result = match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the network thread panicked"))),
            None => Ok(()),
        };
        if let Some(probe) = self.probe.take() {
            probe.finish();
        }
        result.map(|()| self.summary())
    }

    /// Stops the recorder and returns the summary.
    pub fn stop(self) -> anyhow::Result<Summary> {
        self.stop.store(true, Ordering::Relaxed);
        self.wait()
    }

    fn summary(&self) -> Summary {
        log::debug!("final counters: {:?}", self.stats.snapshot());
        Summary {
            stats: self.stats.snapshot(),
            sample_rate: self.sample_rate,
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
