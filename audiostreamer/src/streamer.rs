//! The run loop: read a chunk, wait for its deadline, send it over UDP and/or
//! TCP, report progress; until the source ends or the stop flag is set.
//!
//! [`Streamer::new`] does everything that can fail on user input (flags,
//! file, sockets, device) before the first datagram, so a mistake is one
//! error line and nothing is sent. Tests use the bound addresses it exposes
//! ([`Streamer::udp_local_addr`], [`Streamer::tcp_local_addr`]) and drive
//! [`Streamer::run`] with their own stop flag.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::burst::{BurstReport, ErrorBurst};
use crate::chunk::Layout;
use crate::cli::Args;
use crate::config::{Config, Input};
use crate::mic::MicSource;
use crate::pacer::Pacer;
use crate::probe_out::SendProbe;
use crate::progress::{Progress, Summary};
use crate::rtp_out::RtpOut;
use crate::source::{FileSource, SampleSource};
use crate::tcp_out::TcpOut;
use crate::udp_out::UdpOut;

/// Lateness after which the schedule is moved instead of catching up in a burst.
const MAX_LATE: Duration = Duration::from_millis(500);
/// Longest single sleep, so that Ctrl-C is noticed promptly even with long chunks.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// A configured stream, ready to run.
pub struct Streamer {
    config: Config,
    source: Box<dyn SampleSource>,
    udp: Option<UdpOut>,
    rtp: Option<RtpOut>,
    tcp: Option<TcpOut>,
    probe: Option<SendProbe>,
}

/// The sockets a configuration asks for.
struct Outputs {
    udp: Option<UdpOut>,
    rtp: Option<RtpOut>,
    tcp: Option<TcpOut>,
}

impl Streamer {
    /// Checks `args`, opens the input and binds the sockets.
    pub fn new(args: &Args) -> anyhow::Result<Self> {
        Self::from_config(Config::from_args(args)?)
    }

    /// Opens the input and binds the sockets of a checked configuration.
    pub fn from_config(config: Config) -> anyhow::Result<Self> {
        // A file is opened first (the likeliest mistake); a microphone last,
        // so that a socket error does not start and stop the device. Nothing
        // is logged until everything succeeded: a mistake stays one line.
        let (source, out): (Box<dyn SampleSource>, _) = match &config.input {
            Input::File(path) => {
                let file = FileSource::open_with_channels(
                    path,
                    config.sample_rate,
                    config.looping,
                    config.source_channels(),
                )?;
                let out = bind_outputs(&config)?;
                log_file(path, &file, config.sample_rate);
                (Box::new(file), out)
            }
            Input::Mic(device) => {
                let out = bind_outputs(&config)?;
                let mic =
                    MicSource::open(device.as_deref(), config.sample_rate, config.chunk_samples)?;
                (Box::new(mic), out)
            }
        };
        let probe = match (&config.latency_probe, &out.udp) {
            (Some(path), Some(_)) => Some(SendProbe::create(path, config.sample_rate)?),
            _ => None,
        };
        log_outputs(&config, &out);
        if let Some(warning) = config.speed_warning() {
            log::warn!("{warning}");
        }
        Ok(Self {
            config,
            source,
            udp: out.udp,
            rtp: out.rtp,
            tcp: out.tcp,
            probe,
        })
    }

    /// The checked configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The local address of the UDP socket, if sending UDP (the RTP
    /// socket with `--rtp`).
    pub fn udp_local_addr(&self) -> Option<SocketAddr> {
        match &self.rtp {
            Some(rtp) => rtp.local_addr().ok(),
            None => self.udp.as_ref().and_then(|u| u.local_addr().ok()),
        }
    }

    /// With `--rtp`: the SSRC, and the sequence number and timestamp the
    /// first packet carries (before [`Self::run`]).
    pub fn rtp_identity(&self) -> Option<(u32, u16, u32)> {
        self.rtp
            .as_ref()
            .map(|r| (r.ssrc(), r.next_seq(), r.next_timestamp()))
    }

    /// With `--rtp`: the local address RTCP is sent from.
    pub fn rtcp_local_addr(&self) -> Option<SocketAddr> {
        self.rtp.as_ref().and_then(|r| r.rtcp_local_addr().ok())
    }

    /// The TCP listening address, if serving TCP.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(TcpOut::local_addr)
    }

    /// TCP clients currently connected.
    pub fn tcp_client_count(&self) -> usize {
        self.tcp.as_ref().map_or(0, TcpOut::client_count)
    }

    /// Streams until the source ends or `stop` is set; returns what was sent.
    pub fn run(mut self, stop: &AtomicBool) -> anyhow::Result<Summary> {
        let rate = self.config.sample_rate;
        let channels = self.source.channels();
        let ch = usize::from(channels.max(1));
        let mut chunk = vec![0i16; self.config.chunk_samples * ch];
        let mut pacer = Pacer::new(rate, self.config.speed);
        let paced = self.source.needs_pacing();
        let mut progress = Progress::new(self.source.total_samples(), rate);
        let mut summary = Summary {
            datagrams: 0,
            samples: 0,
            sample_rate: rate,
            elapsed: Duration::ZERO,
            interrupted: false,
            send_failures: 0,
            last_lateness: None,
            max_lateness: None,
            receiver_report: None,
        };
        // Repeated resyncs (a --speed the machine cannot sustain) are
        // reported like send errors: once, then every 10 s.
        let mut resyncs = ErrorBurst::new(Duration::from_secs(10));
        if self.config.wait_for_client && !self.wait_for_client(stop) {
            summary.interrupted = true;
            return Ok(summary);
        }
        let start = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                summary.interrupted = true;
                break;
            }
            let n = self.source.read(&mut chunk, stop)?;
            if n == 0 {
                summary.interrupted = stop.load(Ordering::Relaxed);
                break;
            }
            if paced {
                if let Some(late) = pacer.resync(start.elapsed(), MAX_LATE) {
                    match resyncs.on_error(start.elapsed()) {
                        Some(BurstReport::Started) => log::warn!(
                            "fell {:.0} ms behind schedule (stalled?); continuing from now instead of bursting",
                            late.as_secs_f64() * 1e3
                        ),
                        Some(BurstReport::Ongoing { failures }) => log::warn!(
                            "fell behind schedule {failures} times so far; this machine cannot keep up \
                             (lower --speed or raise --chunk-ms)"
                        ),
                        _ => {}
                    }
                }
                if !sleep_until(start, pacer.next_deadline(), stop) {
                    summary.interrupted = true;
                    break;
                }
            }
            if let Some(probe) = &mut self.probe {
                probe.scan(&chunk[..n]);
            }
            let now = start.elapsed();
            if let Some(udp) = &mut self.udp {
                let seq = udp.next_seq();
                udp.send(&chunk[..n], now);
                if let Some(probe) = &mut self.probe {
                    // After the send returned: the samples have left.
                    probe.on_sent(seq);
                }
            }
            if let Some(rtp) = &mut self.rtp {
                rtp.send(&chunk[..n], channels, now);
            }
            if let Some(tcp) = &mut self.tcp {
                tcp.send(&chunk[..n]);
            }
            let frames = n / ch;
            if paced {
                let late = now.saturating_sub(pacer.next_deadline());
                summary.last_lateness = Some(late);
                summary.max_lateness = Some(summary.max_lateness.unwrap_or_default().max(late));
            }
            pacer.on_sent(frames);
            summary.datagrams += 1;
            summary.samples += frames as u64;
            progress.update(now, summary.datagrams, summary.samples);
            if n < chunk.len() {
                break; // the final, shorter datagram
            }
        }
        if let Some(probe) = &mut self.probe {
            probe.finish();
        }
        if let Some(tcp) = &mut self.tcp {
            tcp.finish();
        }
        summary.elapsed = start.elapsed();
        summary.send_failures = self.udp.as_ref().map_or(0, UdpOut::send_failures);
        if let Some(rtp) = &mut self.rtp {
            rtp.finish();
            summary.send_failures = rtp.send_failures();
            summary.receiver_report = rtp.last_report();
        }
        progress.finish();
        Ok(summary)
    }
}

impl Streamer {
    /// `--wait-for-client`: blocks until a TCP client is connected (it has
    /// been sent the Spec, so it will get every Samples message); false if
    /// `stop` was set first.
    fn wait_for_client(&self, stop: &AtomicBool) -> bool {
        let Some(tcp) = &self.tcp else { return true };
        log::info!(
            "waiting for the first TCP client on {} before starting",
            tcp.local_addr()
        );
        while tcp.client_count() == 0 {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        log::info!("a TCP client connected; starting");
        true
    }
}

/// Binds the UDP (or RTP) socket and the TCP listener the configuration asks for.
fn bind_outputs(config: &Config) -> anyhow::Result<Outputs> {
    let rtp = match (&config.rtp, config.dest) {
        (Some(opts), Some(dest)) => {
            Some(RtpOut::bind(dest, config.bind, config.sample_rate, opts)?)
        }
        _ => None,
    };
    let udp = config
        .dest
        .filter(|_| rtp.is_none())
        .map(|dest| {
            UdpOut::bind(
                dest,
                config.bind,
                config.layout,
                config.chunk_samples,
                config.start_seq,
            )
        })
        .transpose()?;
    let tcp = config
        .tcp_listen
        .as_deref()
        .map(|addr| TcpOut::bind(addr, config.sample_rate))
        .transpose()?;
    Ok(Outputs { udp, rtp, tcp })
}

fn log_file(path: &std::path::Path, file: &FileSource, out_rate: u32) {
    let i = file.info();
    let resampling = if file.is_resampling() {
        format!("; resampling to {out_rate} Hz")
    } else {
        String::new()
    };
    let encoding = if i.encoding.is_empty() {
        String::new()
    } else {
        format!(", {}", i.encoding)
    };
    let duration = i
        .duration_secs()
        .map_or_else(|| ", length unknown".to_string(), |s| format!(", {s:.2} s"));
    log::info!(
        "{}: {}, {} ch, {} Hz{encoding}{duration}{resampling}",
        path.display(),
        i.format,
        i.channels,
        i.sample_rate,
    );
}

fn log_outputs(config: &Config, out: &Outputs) {
    if let Some(rtp) = &out.rtp {
        log::info!(
            "sending RTP {} {} Hz {} (payload type {}, SSRC {:08x}) to {} from {}, RTCP from {}, \
             {} frames per chunk",
            if rtp.is_opus() { "Opus" } else { "L16" },
            config.sample_rate,
            if rtp.channels() == 2 {
                "stereo"
            } else {
                "mono"
            },
            rtp.payload_type(),
            rtp.ssrc(),
            config.dest.map(|d| d.to_string()).unwrap_or_default(),
            rtp.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            rtp.rtcp_local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            config.chunk_samples,
        );
    }
    if let Some(udp) = &out.udp {
        let what = match config.layout {
            Layout::MonoSeq => format!("mono with sequence numbers from {}", config.start_seq),
            Layout::Stereo => "stereo without sequence numbers".to_string(),
        };
        log::info!(
            "sending UDP {what} to {} from {}, {} samples per datagram",
            config.dest.map(|d| d.to_string()).unwrap_or_default(),
            udp.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            config.chunk_samples,
        );
    }
    if let Some(tcp) = &out.tcp {
        log::info!(
            "serving TCP Spec/Samples (mono, {} Hz, 16-bit) on {}",
            config.sample_rate,
            tcp.local_addr()
        );
    }
}

/// Sleeps until `start + deadline` (in slices of at most [`MAX_SLEEP`]);
/// returns false if `stop` was set meanwhile. Never spins: each step is a
/// real sleep, whose overshoot (tens of µs on Linux) does not accumulate
/// because the next deadline is computed from the sample count.
fn sleep_until(start: Instant, deadline: Duration, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let remaining = deadline.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            return true;
        }
        std::thread::sleep(remaining.min(MAX_SLEEP));
    }
}
