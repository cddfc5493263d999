//! Checked configuration: the raw command-line flags turned into values the
//! run loop can trust, with one clear error per user mistake.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::chunk::{check_udp_size, samples_per_chunk, Layout};
use crate::cli::Args;
use crate::opus_out::OpusOptions;
use crate::rtp_out::RtpOptions;

/// Slowest `--speed`: a 10 ms chunk every 10 s.
pub const MIN_SPEED: f64 = 0.001;
/// Fastest `--speed`.
pub const MAX_SPEED: f64 = 1000.0;
/// Where the stream goes without a DEST: an audionode on this machine, at
/// its default port.
pub const DEFAULT_NODE_DEST: &str = "127.0.0.1:4030";
/// Without a DEST, `--stream-to-recorder` goes to an audiorecorder on this
/// machine at the port its documentation uses.
pub const DEFAULT_RECORDER_DEST: &str = "127.0.0.1:4040";

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An audio file, or `-` for a WAV on standard input.
    File(PathBuf),
    /// A cpal input device (`None`: the default one).
    Mic(Option<String>),
}

/// Everything `Streamer` needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The sample source.
    pub input: Input,
    /// UDP destination, if any.
    pub dest: Option<SocketAddr>,
    /// Local address for the UDP socket (`None`: ephemeral, destination's family).
    pub bind: Option<SocketAddr>,
    /// TCP listen address, if any.
    pub tcp_listen: Option<String>,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// The `--chunk-ms` value (for messages).
    pub chunk_ms: f64,
    /// Samples per datagram.
    pub chunk_samples: usize,
    /// Real-time factor.
    pub speed: f64,
    /// Repeat the file forever.
    pub looping: bool,
    /// First sequence number.
    pub start_seq: u32,
    /// UDP datagram layout.
    pub layout: Layout,
    /// `--wait-for-client`: start when the first TCP client connects.
    pub wait_for_client: bool,
    /// `--latency-probe`: file for the click onsets sent.
    pub latency_probe: Option<PathBuf>,
    /// `--rtp`: send RTP instead of the original datagrams.
    pub rtp: Option<RtpOptions>,
}

impl Config {
    /// Checks `args`; the error names the offending flag or value.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        if args.duration.is_some() {
            // clap drops `requires` when a conflicting input is present.
            bail!("--duration only applies with --generate DIR");
        }
        // With --mic the first positional argument is the destination.
        let (input, dest) = if args.mic {
            if args.dest.is_some() {
                bail!("with --mic give only a destination, not a WAV file");
            }
            let dest = args
                .input
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned());
            (Input::Mic(args.device.clone()), dest)
        } else {
            if args.device.is_some() {
                bail!("--device only applies with --mic");
            }
            let Some(path) = &args.input else {
                bail!("no input file given (or use --mic to stream a microphone; see --help)");
            };
            if path.as_os_str() == crate::decoder::STDIN && args.looping {
                bail!("--loop needs a file: standard input cannot be read twice");
            }
            (Input::File(path.clone()), args.dest.clone())
        };
        // Without DEST the stream goes to this machine's node (or recorder);
        // with --tcp-listen alone it is served over TCP only. RTP has no
        // conventional local receiver, so it keeps needing a DEST.
        let dest = match dest {
            Some(d) => Some(d),
            None if args.tcp_listen.is_some() || args.rtp => None,
            None if args.stream_to_recorder => Some(DEFAULT_RECORDER_DEST.to_string()),
            None => Some(DEFAULT_NODE_DEST.to_string()),
        };
        if args.sample_rate == 0 {
            bail!("--sample-rate must be above 0 Hz");
        }
        if !(args.speed.is_finite() && args.speed > 0.0) {
            bail!("--speed must be a positive number, not {}", args.speed);
        }
        if !(MIN_SPEED..=MAX_SPEED).contains(&args.speed) {
            // 1e-300 as written, not as three hundred zeros.
            let speed = if (1e-4..1e15).contains(&args.speed) {
                args.speed.to_string()
            } else {
                format!("{:e}", args.speed)
            };
            bail!("--speed {speed} is out of range ({MIN_SPEED} to {MAX_SPEED} times real time)");
        }
        if args.wait_for_client && args.tcp_listen.is_none() {
            bail!("--wait-for-client needs --tcp-listen");
        }
        if matches!(input, Input::Mic(_)) {
            if args.looping {
                bail!("--loop only applies to a WAV file, not --mic");
            }
            if args.speed != 1.0 {
                bail!("--speed only applies to a WAV file; a microphone runs in real time");
            }
        }
        let layout = if args.stream_to_recorder {
            Layout::Stereo
        } else {
            Layout::MonoSeq
        };
        let opus = (args.rtp && args.codec == "opus")
            .then(|| opus_options(args))
            .transpose()?;
        if !(args.rtp && args.codec == "opus") && args.bitrate != "64k" {
            bail!("--bitrate applies to --codec opus");
        }
        // Opus has one clock on RTP, 48 kHz (RFC 7587).
        let sample_rate = if opus.is_some() {
            proto::opus::OPUS_RATE
        } else {
            args.sample_rate
        };
        let rtp = if args.rtp {
            if args.start_seq != 0 {
                bail!("--start-seq applies to the original format; with --rtp use --rtp-seed");
            }
            if args.latency_probe.is_some() {
                bail!("--latency-probe times the original datagrams, not --rtp");
            }
            if !(args.rtcp_interval.is_finite() && (0.1..=3600.0).contains(&args.rtcp_interval)) {
                bail!(
                    "--rtcp-interval {} is out of range (0.1 to 3600 seconds)",
                    args.rtcp_interval
                );
            }
            if dest.is_none() {
                bail!("--rtp needs a DEST (HOST:PORT)");
            }
            let l16 = proto::rtp_map::payload_type_for(proto::rtp_map::RtpFormat {
                rate: args.sample_rate,
                channels: args.channels,
            });
            if args.redundancy > 0 && args.red_pt == l16 {
                bail!(
                    "--red-pt {} is the stream's L16 payload type; choose another (e.g. 100)",
                    args.red_pt
                );
            }
            Some(RtpOptions {
                channels: args.channels,
                name: args.name.clone(),
                seed: args.rtp_seed,
                rtcp_interval: std::time::Duration::from_secs_f64(args.rtcp_interval),
                redundancy: usize::from(args.redundancy),
                red_payload_type: args.red_pt,
                opus,
            })
        } else {
            None
        };
        let chunk_samples = samples_per_chunk(args.chunk_ms, sample_rate)?;
        let dest = dest.as_deref().map(resolve_dest).transpose()?;
        if rtp.is_some() && dest.is_some_and(|d| d.port() == u16::MAX) {
            bail!("with --rtp the destination port must leave port + 1 for RTCP (not 65535)");
        }
        // RTP splits chunks into packets that never fragment.
        if rtp.is_none() && dest.is_some() && check_udp_size(args.chunk_ms, chunk_samples, layout)?
        {
            log::warn!(
                "{}-byte datagrams exceed {} bytes and will be fragmented on an Ethernet path; \
                 lower --chunk-ms",
                layout.datagram_len(chunk_samples),
                proto::MAX_UNFRAGMENTED_PAYLOAD
            );
        }
        if args.latency_probe.is_some() && dest.is_none() {
            bail!("--latency-probe times UDP datagrams; give a DEST too");
        }
        let bind = match (&args.bind, dest) {
            (None, _) => None,
            (Some(_), None) => bail!("--bind applies to UDP; give a DEST too"),
            (Some(b), Some(d)) => Some(resolve_bind(b, d)?),
        };
        Ok(Self {
            input,
            dest,
            bind,
            tcp_listen: args.tcp_listen.clone(),
            sample_rate,
            chunk_ms: args.chunk_ms,
            chunk_samples,
            speed: args.speed,
            looping: args.looping,
            start_seq: args.start_seq,
            layout,
            wait_for_client: args.wait_for_client,
            latency_probe: args.latency_probe.clone(),
            rtp,
        })
    }

    /// The warning for a `--speed` other than 1 towards a receiver that
    /// plays in real time: an audionode (mono datagrams) or an RTP
    /// receiver takes a faster stream into a jitter buffer that holds a
    /// few datagrams and discards the rest. Recorders (`--stream-to-recorder`
    /// records every datagram) and TCP clients take any speed.
    pub fn speed_warning(&self) -> Option<String> {
        if self.speed == 1.0 || self.dest.is_none() {
            return None;
        }
        let what = match (&self.rtp, self.layout) {
            (Some(_), _) => "RTP",
            (None, Layout::MonoSeq) => "UDP to an audionode",
            (None, Layout::Stereo) => return None,
        };
        Some(format!(
            "--speed {} sends {what} {} real time: a node's (or RTP receiver's) jitter buffer \
             will discard most of it; --speed is for recorders (--stream-to-recorder) and TCP tests",
            self.speed,
            if self.speed > 1.0 { "faster than" } else { "slower than" }
        ))
    }

    /// Samples per frame the source delivers: 2 for `--rtp --channels 2`
    /// from a file, else 1 (a microphone is mono; a stereo stream
    /// duplicates it).
    pub fn source_channels(&self) -> u16 {
        match (&self.rtp, &self.input) {
            (Some(rtp), Input::File(_)) => rtp.channels,
            _ => 1,
        }
    }
}

/// The `--codec opus` settings, checked: no `--redundancy` (Opus has its
/// own FEC), a `--chunk-ms` that is an Opus frame duration, a bitrate
/// libopus takes.
fn opus_options(args: &Args) -> anyhow::Result<OpusOptions> {
    if args.redundancy > 0 {
        bail!("--codec opus carries its own FEC; drop --redundancy (RFC 2198 is for L16)");
    }
    if args.sample_rate != 44_100 && args.sample_rate != proto::opus::OPUS_RATE {
        bail!("--codec opus always sends 48 kHz (RFC 7587); drop --sample-rate");
    }
    let frame = (args.chunk_ms * f64::from(proto::opus::OPUS_RATE) / 1000.0).round();
    if !(args.chunk_ms.is_finite() && proto::opus::is_frame_duration(frame as usize)) {
        bail!(
            "--chunk-ms {} is not an Opus frame duration (2.5, 5, 10, 20, 40 or 60)",
            args.chunk_ms
        );
    }
    let bitrate =
        proto::opus::parse_bitrate(&args.bitrate).map_err(|e| anyhow::anyhow!("--bitrate {e}"))?;
    if args.opus_pt == args.red_pt && args.redundancy > 0 {
        bail!("--opus-pt {} is the RED payload type", args.opus_pt);
    }
    Ok(OpusOptions {
        bitrate,
        payload_type: args.opus_pt,
        frame: frame as usize,
    })
}

/// Resolves `HOST:PORT` (a name or an IPv4/IPv6 literal) to one address.
pub fn resolve_dest(dest: &str) -> anyhow::Result<SocketAddr> {
    let addr = first_addr(dest)
        .with_context(|| format!("cannot resolve destination '{dest}' (expected HOST:PORT)"))?;
    if addr.port() == 0 {
        bail!("destination '{dest}' has port 0");
    }
    Ok(addr)
}

/// Resolves `--bind`, preferring an address of the destination's family.
fn resolve_bind(bind: &str, dest: SocketAddr) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = bind
        .to_socket_addrs()
        .with_context(|| format!("--bind '{bind}' is not a valid ADDR:PORT"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() == dest.is_ipv4())
        .copied()
        .with_context(|| {
            let family = if dest.is_ipv4() { "IPv4" } else { "IPv6" };
            format!("--bind '{bind}' has no {family} address to match destination {dest}")
        })
}

fn first_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = s.to_socket_addrs()?;
    addrs.next().context("the name resolves to no address")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(line: &str) -> anyhow::Result<Config> {
        let args =
            Args::try_parse_from(std::iter::once("audiostreamer").chain(line.split_whitespace()))?;
        Config::from_args(&args)
    }

    fn err(line: &str) -> String {
        format!("{:#}", cfg(line).unwrap_err())
    }

    #[test]
    fn defaults() {
        let c = cfg("a.wav 127.0.0.1:4030").unwrap();
        assert_eq!(c.input, Input::File("a.wav".into()));
        assert_eq!(c.dest, Some("127.0.0.1:4030".parse().unwrap()));
        assert_eq!(c.chunk_samples, 441);
        assert_eq!(c.layout, Layout::MonoSeq);
        assert_eq!(
            (c.speed, c.looping, c.start_seq, c.bind),
            (1.0, false, 0, None)
        );
    }

    #[test]
    fn without_dest_the_local_node_or_recorder() {
        let node = Some("127.0.0.1:4030".parse().unwrap());
        assert_eq!(cfg("a.wav").unwrap().dest, node);
        assert_eq!(cfg("--mic").unwrap().dest, node);
        assert_eq!(
            cfg("a.wav --stream-to-recorder").unwrap().dest,
            Some("127.0.0.1:4040".parse().unwrap())
        );
        assert_eq!(cfg("a.wav --tcp-listen 127.0.0.1:0").unwrap().dest, None);
        assert!(err("a.wav --rtp").contains("--rtp needs a DEST"));
    }

    #[test]
    fn speed_warning_only_towards_real_time_receivers() {
        let warn = |line: &str| cfg(line).unwrap().speed_warning();
        assert_eq!(warn("a.wav 127.0.0.1:1"), None);
        assert_eq!(
            warn("a.wav 127.0.0.1:1 --speed 20").as_deref(),
            Some(
                "--speed 20 sends UDP to an audionode faster than real time: a node's (or RTP \
                 receiver's) jitter buffer will discard most of it; --speed is for recorders \
                 (--stream-to-recorder) and TCP tests"
            )
        );
        assert!(warn("a.wav 127.0.0.1:1 --rtp --speed 0.5")
            .unwrap()
            .starts_with("--speed 0.5 sends RTP slower than real time"));
        assert_eq!(
            warn("a.wav 127.0.0.1:1 --stream-to-recorder --speed 20"),
            None
        );
        assert_eq!(warn("a.wav --tcp-listen 127.0.0.1:0 --speed 20"), None);
    }

    #[test]
    fn mic_takes_dest_as_first_positional() {
        let c = cfg("--mic --device pulse [::1]:9000").unwrap();
        assert_eq!(c.input, Input::Mic(Some("pulse".into())));
        assert_eq!(c.dest, Some("[::1]:9000".parse().unwrap()));
        assert!(err("--mic a.wav 127.0.0.1:1").contains("only a destination"));
        assert!(err("--mic --loop 127.0.0.1:1").contains("--loop"));
    }

    #[test]
    fn tcp_only_and_bind() {
        let c = cfg("a.wav --tcp-listen 127.0.0.1:0").unwrap();
        assert_eq!(c.dest, None);
        let c = cfg("a.wav [::1]:5 --bind [::]:0").unwrap();
        assert!(c.bind.unwrap().is_ipv6());
        assert!(err("a.wav 127.0.0.1:5 --bind [::]:0").contains("no IPv4 address"));
        assert!(err("a.wav --tcp-listen 127.0.0.1:0 --bind 0.0.0.0:0").contains("--bind"));
    }

    #[test]
    fn rtp_options() {
        let c = cfg("a.wav 127.0.0.1:5004 --rtp").unwrap();
        let rtp = c.rtp.clone().unwrap();
        assert_eq!((rtp.channels, rtp.seed, rtp.name), (1, None, None));
        assert_eq!(rtp.rtcp_interval, std::time::Duration::from_secs(5));
        assert_eq!(c.source_channels(), 1);
        let c = cfg("a.wav 127.0.0.1:5004 --rtp --channels 2 --name bass --rtp-seed 3").unwrap();
        let rtp = c.rtp.clone().unwrap();
        assert_eq!(
            (rtp.channels, rtp.seed, rtp.name.as_deref()),
            (2, Some(3), Some("bass"))
        );
        assert_eq!(c.source_channels(), 2);
        assert!(cfg("a.wav 127.0.0.1:5004 --channels 2").is_err());
        assert!(cfg("a.wav 127.0.0.1:5004 --name x").is_err());
        assert!(cfg("a.wav 127.0.0.1:5004 --rtp --channels 3").is_err());
        let c = cfg("a.wav 127.0.0.1:5004 --rtp --redundancy 2").unwrap();
        let rtp = c.rtp.clone().unwrap();
        assert_eq!((rtp.redundancy, rtp.red_payload_type), (2, 100));
        assert_eq!(
            cfg("a.wav 127.0.0.1:5004 --rtp")
                .unwrap()
                .rtp
                .unwrap()
                .redundancy,
            0
        );
        assert!(cfg("a.wav 127.0.0.1:5004 --rtp --redundancy 3").is_err());
        assert!(cfg("a.wav 127.0.0.1:5004 --redundancy 1").is_err());
        // 97 is the mono stream's own type at 48 kHz.
        assert!(
            cfg("a.wav 127.0.0.1:5004 --rtp --sample-rate 48000 --redundancy 1 --red-pt 97")
                .is_err()
        );
        assert!(cfg("a.wav 127.0.0.1:5004 --rtp --stream-to-recorder").is_err());
        assert!(err("a.wav 127.0.0.1:5004 --rtp --start-seq 5").contains("--rtp-seed"));
        assert!(err("a.wav 127.0.0.1:65535 --rtp").contains("RTCP"));
        assert!(err("a.wav 127.0.0.1:5004 --rtp --rtcp-interval 0").contains("--rtcp-interval"));
        assert!(err("a.wav 127.0.0.1:5004 --rtp --latency-probe p").contains("--rtp"));
        // Large chunks are split, not refused: no 65507-byte limit.
        assert!(cfg("a.wav 127.0.0.1:1 --rtp --chunk-ms 743").is_ok());
    }

    #[test]
    fn opus_options() {
        let c = cfg("a.wav 127.0.0.1:5004 --rtp --codec opus").unwrap();
        assert_eq!((c.sample_rate, c.chunk_samples), (48_000, 480));
        let opus = c.rtp.clone().unwrap().opus.unwrap();
        assert_eq!(
            (opus.bitrate, opus.payload_type, opus.frame),
            (64_000, 111, 480)
        );
        let c = cfg(
            "a.wav 127.0.0.1:5004 --rtp --codec opus --chunk-ms 20 --bitrate 32000 \
                     --opus-pt 120 --channels 2",
        )
        .unwrap();
        let opus = c.rtp.clone().unwrap().opus.unwrap();
        assert_eq!(
            (opus.bitrate, opus.payload_type, opus.frame),
            (32_000, 120, 960)
        );
        assert!(cfg("a.wav 127.0.0.1:5004 --rtp")
            .unwrap()
            .rtp
            .unwrap()
            .opus
            .is_none());
        assert!(
            err("a.wav 127.0.0.1:5004 --rtp --codec opus --chunk-ms 8").contains("frame duration")
        );
        assert!(err("a.wav 127.0.0.1:5004 --rtp --codec opus --redundancy 1").contains("own FEC"));
        assert!(err("a.wav 127.0.0.1:5004 --rtp --codec opus --bitrate 2k").contains("--bitrate"));
        assert!(err("a.wav 127.0.0.1:5004 --rtp --bitrate 32k").contains("--codec opus"));
        assert!(
            err("a.wav 127.0.0.1:5004 --rtp --codec opus --sample-rate 16000").contains("48 kHz")
        );
        assert!(cfg("a.wav 127.0.0.1:5004 --codec opus").is_err());
    }

    #[test]
    fn user_mistakes_are_named() {
        assert!(err("").contains("no input file"));
        assert!(err("- 127.0.0.1:1 --loop").contains("standard input"));
        assert_eq!(cfg("- 127.0.0.1:1").unwrap().input, Input::File("-".into()));
        assert!(err("a.wav 127.0.0.1")
            .contains("cannot resolve destination '127.0.0.1' (expected HOST:PORT)"));
        assert!(err("a.wav no-such-host.invalid:4030").contains("no-such-host.invalid"));
        assert!(err("a.wav 127.0.0.1:0").contains("port 0"));
        assert!(err("a.wav 127.0.0.1:1 --chunk-ms 0.001").contains("0 samples"));
        assert!(err("a.wav 127.0.0.1:1 --chunk-ms 1000").contains("maximum is 32767"));
        assert!(err("a.wav 127.0.0.1:1 --speed 0").contains("--speed"));
        assert_eq!(
            err("a.wav 127.0.0.1:1 --speed 1e-300"),
            "--speed 1e-300 is out of range (0.001 to 1000 times real time)"
        );
        assert!(err("a.wav 127.0.0.1:1 --speed 1e9").contains("out of range"));
        assert!(err("a.wav 127.0.0.1:1 --wait-for-client").contains("--tcp-listen"));
        assert!(
            cfg("a.wav --tcp-listen 127.0.0.1:0 --wait-for-client")
                .unwrap()
                .wait_for_client
        );
        assert!(err("a.wav 127.0.0.1:1 --sample-rate 0").contains("--sample-rate"));
        assert!(err("a.wav 127.0.0.1:1 --chunk-ms 743").contains("65507"));
        assert!(err("a.wav 127.0.0.1:1 --device x").contains("--device"));
        assert!(err("a.wav 127.0.0.1:1 --duration 9").contains("--generate"));
    }
}
