//! The TCP fallback: a client of the original Spec/Samples protocol.
//!
//! It connects, expects a Spec before any Samples, and feeds the pipeline;
//! a new Spec that changes the format starts the next numbered WAV file. A
//! server that goes away is reconnected to with exponential backoff; a
//! server that sends garbage, an oversized frame or an unsupported format is
//! disconnected with a clear message (and retried the same way), and so is
//! a server that changes the format more than `--max-format-changes` times
//! a minute (each change would start another file).
//!
//! A Samples message may end inside a frame (an odd sample count in
//! stereo): the pipeline keeps the half frame for the next message, also
//! across a repeated identical Spec, so channels never swap. A connection
//! that ends drops its unfinished frame (counted), since the next one
//! starts on a frame boundary.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto::{Message, SampleFormat, Spec, TcpClient};

use crate::flap::FormatChangeLimit;
use crate::pipeline::Pipeline;
use crate::stats::Stats;
use crate::wav::WavFormat;

/// Largest frame accepted from a server: about 24 s of 44.1 kHz stereo.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// How long a receive call waits before the stop flag is checked again.
const POLL: Duration = Duration::from_millis(100);

/// First and largest wait between reconnection attempts.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why a connection ended.
enum Ended {
    /// Stop requested.
    Stopped,
    /// The server went away or misbehaved (already logged).
    Lost,
}

/// Checks a Spec: 16-bit integer samples with 1 to 32 channels.
pub fn check_spec(spec: &Spec) -> Result<WavFormat, String> {
    if spec.sample_format != SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(format!(
            "unsupported Spec: {}-bit {:?} samples (only 16-bit integer is supported)",
            spec.bits_per_sample, spec.sample_format
        ));
    }
    if !(1..=32).contains(&spec.channels) {
        return Err(format!("unsupported Spec: {} channels", spec.channels));
    }
    if !(1..=768_000).contains(&spec.sample_rate) {
        return Err(format!(
            "unsupported Spec: sample rate {} Hz",
            spec.sample_rate
        ));
    }
    Ok(WavFormat {
        channels: spec.channels,
        sample_rate: spec.sample_rate,
    })
}

/// Resolves `HOST:PORT` once up front, so a typo is a one-line error.
pub fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("--tcp {addr:?} is not a usable HOST:PORT: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--tcp {addr:?} resolves to no address"))
}

/// Connects, receives and reconnects until `stop` is set or the writer fails.
pub fn client_loop(
    addr: SocketAddr,
    max_format_changes: u32,
    pipeline: &mut Pipeline,
    stats: &Stats,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut retry = RETRY_MIN;
    let mut failures = 0u32;
    // Kept across connections: reconnecting does not reset the budget.
    let mut limit = FormatChangeLimit::new(max_format_changes);
    while !stop.load(Ordering::Relaxed) && !pipeline.writer_failed() {
        match TcpClient::connect_timeout(&addr, Duration::from_secs(2), MAX_FRAME_LEN) {
            Ok(client) => {
                log::info!("connected to TCP server {addr}");
                Stats::add(&stats.connections, 1);
                failures = 0;
                let started = Instant::now();
                let ended = receive(client, pipeline, &mut limit, stats, stop);
                pipeline.drop_partial_frame();
                match ended {
                    Ended::Stopped => return Ok(()),
                    Ended::Lost => {
                        // A connection that lasted resets the backoff.
                        if started.elapsed() > RETRY_MAX {
                            retry = RETRY_MIN;
                        }
                    }
                }
            }
            Err(e) => {
                failures += 1;
                // Say it the first time and then every tenth try, not at every retry.
                if failures == 1 || failures % 10 == 0 {
                    log::warn!("cannot connect to TCP server {addr}: {e}; retrying");
                }
            }
        }
        sleep_unless_stopped(retry, stop);
        retry = (retry * 2).min(RETRY_MAX);
    }
    Ok(())
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let end = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn receive(
    mut client: TcpClient,
    pipeline: &mut Pipeline,
    limit: &mut FormatChangeLimit,
    stats: &Stats,
    stop: &AtomicBool,
) -> Ended {
    let peer = client.peer_addr();
    if let Err(e) = client.set_read_timeout(Some(POLL)) {
        log::warn!("TCP server {peer}: {e}; reconnecting");
        return Ended::Lost;
    }
    let mut have_spec = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ended::Stopped;
        }
        if pipeline.writer_failed() {
            return Ended::Lost;
        }
        pipeline.report();
        match client.recv_message() {
            Ok(Some(Message::Spec(spec))) => {
                match check_spec(&spec) {
                    Ok(format) => {
                        let changes = pipeline.format().is_some_and(|f| f != format);
                        if changes && !limit.allow(Instant::now()) {
                            Stats::add(&stats.format_flap_disconnects, 1);
                            log::warn!(
                            "disconnecting from TCP server {peer}: it changed the stream format \
                             more than {} times within a minute (--max-format-changes); staying \
                             with {}",
                            limit.max(),
                            pipeline.format().map_or_else(String::new, |f| f.to_string())
                        );
                            return Ended::Lost;
                        }
                        pipeline.set_format(format);
                        have_spec = true;
                    }
                    Err(why) => {
                        log::warn!("disconnecting from TCP server {peer}: {why}");
                        return Ended::Lost;
                    }
                }
            }
            Ok(Some(Message::Samples(samples))) => {
                if !have_spec {
                    log::warn!("disconnecting from TCP server {peer}: Samples before any Spec");
                    return Ended::Lost;
                }
                Stats::add(&stats.packets, 1);
                pipeline.push(samples);
            }
            Ok(None) => {
                log::warn!("TCP server {peer} closed the connection; reconnecting");
                return Ended::Lost;
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => {
                log::warn!("disconnecting from TCP server {peer}: {e}");
                return Ended::Lost;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_checks() {
        assert_eq!(
            check_spec(&Spec::int16(1, 22_050)),
            Ok(WavFormat {
                channels: 1,
                sample_rate: 22_050
            })
        );
        let float = Spec {
            sample_format: SampleFormat::Float,
            bits_per_sample: 32,
            ..Spec::int16(2, 44_100)
        };
        assert!(check_spec(&float).unwrap_err().contains("32-bit Float"));
        assert!(check_spec(&Spec::int16(0, 44_100)).is_err());
        assert!(check_spec(&Spec::int16(2, 0)).is_err());
    }
}
