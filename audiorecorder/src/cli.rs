//! Command-line flags of audiorecorder (clap derive); `--help` is the reference.

use std::path::PathBuf;

use clap::Parser;

/// Plays a UDP stereo stream through the sound card with a jitter backoff and
/// appends every received frame to a WAV file.
#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  \
        audiorecorder rec.wav 4040\n  \
        audiorecorder --rtp 5004 rec.wav\n  \
        audiorecorder --rtp 5004 --rtp-map 97=L16/48000/2 --sample-rate 48000 rec.wav\n  \
        audiorecorder --sdp stream.sdp rec.wav\n  \
        audiorecorder --tcp 127.0.0.1:4031 rec.wav"
)]
pub struct Args {
    /// WAV file to append to (created if missing; omit with --no-record).
    pub wav: Option<PathBuf>,

    /// Where to receive the stereo stream: a UDP PORT (on --bind) or
    /// ADDR:PORT (e.g. 127.0.0.1:4040, [::1]:4040). Port 0 picks a free
    /// port, which is printed on stderr.
    #[arg(value_name = "PORT|ADDR:PORT")]
    pub port: Option<String>,

    /// Local address to bind a bare PORT (or --rtp PORT) on [default: 0.0.0.0].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,

    /// Accept datagrams only from this sender, IP or IP:PORT (default: lock
    /// onto the first sender whose datagram decodes).
    #[arg(long, value_name = "ADDR")]
    pub source: Option<String>,

    /// Release the lock on a UDP sender after this many milliseconds of
    /// silence from it, so the next sender (e.g. one restarted on another
    /// port) is heard.
    #[arg(long, value_name = "MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub source_timeout_ms: u32,

    /// Milliseconds of audio to buffer before playback starts, and again
    /// whenever the buffer runs dry.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub jitter_backoff: u32,

    /// Drop the oldest audio when buffered playback exceeds this
    /// (default: 4 × backoff, at least 200).
    #[arg(long, value_name = "MS")]
    pub max_latency_ms: Option<u32>,

    /// Sample rate of the incoming UDP stream (TCP takes it from the Spec).
    #[arg(long, value_name = "HZ", default_value_t = 44_100)]
    pub sample_rate: u32,

    /// Output device: its id (see --list-devices) or part of its name
    /// (default: the system default output).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,

    /// Open the output device at this rate and resample the stream to it
    /// (default: --sample-rate when the device supports it, else the
    /// device's own rate).
    #[arg(long, value_name = "HZ")]
    pub device_rate: Option<u32>,

    /// Audio device period in milliseconds; the device buffers two periods
    /// (0: the device's default, which for the ALSA pulse plugin means
    /// seconds of buffering).
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub period_ms: u32,

    /// Do not compensate drift: let the ring's level wander from the
    /// backoff as the device's clock differs from the sender's (only an
    /// underrun or the latency bound then resets it).
    #[arg(long)]
    pub no_level_control: bool,

    /// Real-time (SCHED_FIFO) priority of the audio callback thread, 1-99,
    /// or 0 for normal scheduling. Needs root, CAP_SYS_NICE or
    /// RLIMIT_RTPRIO; when not permitted the recorder says so once and
    /// plays at normal priority.
    #[arg(long, value_name = "PRIORITY", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(0..=99))]
    pub rt_priority: u8,

    /// List audio output devices and exit.
    #[arg(long)]
    pub list_devices: bool,

    /// Record only; do not open an audio device.
    #[arg(long)]
    pub no_playback: bool,

    /// Play only; do not write a WAV file.
    #[arg(long)]
    pub no_record: bool,

    /// Start a fresh WAV instead of appending to an existing one.
    #[arg(long)]
    pub overwrite: bool,

    /// Packet-loss concealment of lost RTP audio (--rtp, --sdp): "predict"
    /// repeats the last pitch period, "repeat" the last packet, both
    /// fading to silence over 50 ms; "off" records silence. Received
    /// frames are never changed.
    #[arg(
        long,
        value_name = "off|repeat|predict",
        default_value = "predict",
        env = "AUDIORECORDER_PLC"
    )]
    pub plc: proto::plc::PlcMode,

    /// Keep wall-clock time in the file: from the first frame on, record
    /// silence while no stream arrives (after 250 ms without audio), so a
    /// paused sender leaves a gap of silence instead of nothing.
    #[arg(long)]
    pub keep_time: bool,

    /// Write a line to FILE for every click onset (see `audiolatency`) that
    /// arrives (network thread) and that the audio callback hands to the
    /// device (callback time from CLOCK_MONOTONIC, frame offset in the
    /// device buffer, cpal's device-delay estimate), and for every underrun.
    #[arg(long, value_name = "FILE")]
    pub latency_probe: Option<PathBuf>,

    /// Most WAV files to write in one run (the first, each format change's
    /// next numbered file, each continuation past 4 GiB); the recorder
    /// stops with an error when one more would be needed.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_files: u32,

    /// Disconnect from a TCP server that changes the stream format more
    /// than N times within a minute (each change starts a new file).
    #[arg(long, value_name = "N", default_value_t = crate::flap::DEFAULT_MAX_CHANGES,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_format_changes: u32,

    /// Receive from a TCP Spec/Samples server at HOST:PORT instead of UDP
    /// (reconnects when it goes away).
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,

    /// Receive RTP with L16 payloads on PORT (with --bind) or ADDR:PORT
    /// instead of the original stereo datagrams, and RTCP on the next
    /// port. Mono streams are recorded as stereo with equal channels.
    #[arg(long, value_name = "PORT|ADDR:PORT", conflicts_with_all = ["tcp", "sdp"])]
    pub rtp: Option<String>,

    /// Receive the RTP stream an SDP file describes: its c= and m= lines
    /// give the address and port, its a=rtpmap the format.
    #[arg(long, value_name = "FILE", conflicts_with = "tcp")]
    pub sdp: Option<PathBuf>,

    /// With --rtp: the format of a dynamic payload type, PT=L16/RATE/CHANNELS
    /// or PT=opus/48000/2 (repeatable; 96 and 97 are stereo and mono at
    /// --sample-rate and 111 is Opus unless declared otherwise). Opus needs
    /// --sample-rate 48000.
    #[arg(long, value_name = "PT=L16/RATE/CHANNELS")]
    pub rtp_map: Vec<proto::rtp_map::Declaration>,

    /// With --rtp or --sdp: the nominal interval of RTCP receiver reports in
    /// seconds (RFC 3550: 5); each interval is randomised around it.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub rtcp_interval: f64,
}

/// Where the audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// UDP stereo datagrams on `bind:port`.
    Udp {
        /// Local address to bind.
        bind: String,
        /// Port (0: any free port).
        port: u16,
        /// `--source`, parsed.
        pin: Option<crate::source::Pin>,
        /// `--source-timeout-ms`: silence that releases the sender lock.
        source_timeout: std::time::Duration,
    },
    /// RTP with L16 payloads.
    Rtp(Box<crate::rtp::RtpSettings>),
    /// A TCP Spec/Samples server at this `HOST:PORT`.
    Tcp {
        /// `HOST:PORT`.
        addr: String,
        /// `--max-format-changes`: format changes allowed per minute.
        max_format_changes: u32,
    },
}

/// The checked configuration a recorder runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// WAV file to record into (`None`: `--no-record`).
    pub wav: Option<PathBuf>,
    /// Where audio comes from.
    pub input: Input,
    /// Playback settings (`None`: `--no-playback`).
    pub playback: Option<crate::player::PlaybackOptions>,
    /// `--overwrite`.
    pub overwrite: bool,
    /// `--max-files`: WAV files one run may write.
    pub max_files: u32,
    /// `--sample-rate`: the UDP stream's rate.
    pub sample_rate: u32,
    /// `--latency-probe`: file for click onsets and underruns.
    pub latency_probe: Option<PathBuf>,
    /// `--keep-time`: fill gaps in the stream with silence in the file.
    pub keep_time: bool,
}

impl Config {
    /// Checks the raw flags and builds the configuration; every mistake is
    /// a one-line error.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        let mut wav = args.wav.clone();
        let mut listen = args.port.as_deref().map(parse_listen).transpose()?;
        // `audiorecorder --no-record 4040`: the only positional is the port.
        if args.no_record && listen.is_none() {
            if let Some(l) = wav
                .as_ref()
                .and_then(|w| w.to_str())
                .and_then(|w| parse_listen(w).ok())
            {
                listen = Some(l);
                wav = None;
            }
        }
        let port = listen.as_ref().map(|l| l.port);
        if args.no_record && args.no_playback {
            anyhow::bail!("--no-record and --no-playback together leave nothing to do");
        }
        if args.no_record && args.keep_time {
            anyhow::bail!("--keep-time applies to the recording, not with --no-record");
        }
        if args.no_record {
            wav = None;
        } else if wav.is_none() {
            anyhow::bail!("missing the WAV file to record to (or pass --no-record)");
        }
        if !(1..=768_000).contains(&args.sample_rate) {
            anyhow::bail!(
                "--sample-rate {} is out of range (1..=768000)",
                args.sample_rate
            );
        }
        if let Some(rate) = args.device_rate {
            if !(1..=768_000).contains(&rate) {
                anyhow::bail!("--device-rate {rate} is out of range (1..=768000)");
            }
        }
        let max_latency_ms = args
            .max_latency_ms
            .unwrap_or_else(|| args.jitter_backoff.saturating_mul(4).max(200));
        if max_latency_ms < args.jitter_backoff {
            anyhow::bail!(
                "--max-latency-ms {max_latency_ms} is below --jitter-backoff {}",
                args.jitter_backoff
            );
        }
        let rtp_wanted = args.rtp.is_some() || args.sdp.is_some();
        if !rtp_wanted && !args.rtp_map.is_empty() {
            anyhow::bail!("--rtp-map applies with --rtp only");
        }
        if rtp_wanted {
            if let Some(p) = port {
                anyhow::bail!("give either a UDP port ({p}) or --rtp/--sdp, not both");
            }
        }
        let input = match (&args.tcp, port) {
            _ if rtp_wanted => Input::Rtp(Box::new(rtp_settings(args)?)),
            (Some(addr), None) => {
                if args.source.is_some() {
                    anyhow::bail!("--source applies to UDP only, not with --tcp");
                }
                Input::Tcp {
                    addr: addr.clone(),
                    max_format_changes: args.max_format_changes,
                }
            }
            (Some(_), Some(p)) => anyhow::bail!("give either a UDP port ({p}) or --tcp, not both"),
            (None, Some(port)) => Input::Udp {
                bind: match (listen.and_then(|l| l.host), &args.bind) {
                    (Some(host), None) => host,
                    (None, bind) => bind.clone().unwrap_or_else(|| DEFAULT_BIND.to_string()),
                    (Some(host), Some(bind)) => anyhow::bail!(
                        "the listening address {host} and --bind {bind} contradict each other; \
                         give one"
                    ),
                },
                port,
                pin: args
                    .source
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                source_timeout: std::time::Duration::from_millis(u64::from(args.source_timeout_ms)),
            },
            (None, None) => anyhow::bail!(
                "missing the UDP port to listen on (or --rtp PORT, --sdp FILE, --tcp HOST:PORT)"
            ),
        };
        let playback = (!args.no_playback).then(|| crate::player::PlaybackOptions {
            device: args.device.clone(),
            stream_rate: args.sample_rate,
            device_rate: args.device_rate,
            backoff_ms: args.jitter_backoff,
            max_latency_ms,
            period_ms: args.period_ms,
            level_control: !args.no_level_control,
            rt_priority: args.rt_priority,
            probe: None,
        });
        Ok(Self {
            wav,
            input,
            playback,
            overwrite: args.overwrite,
            max_files: args.max_files,
            sample_rate: args.sample_rate,
            latency_probe: args.latency_probe.clone(),
            keep_time: args.keep_time,
        })
    }
}

/// The address a bare PORT (and `--rtp PORT`) is bound on without `--bind`.
pub const DEFAULT_BIND: &str = "0.0.0.0";

/// Where to listen, from a `PORT` or `ADDR:PORT` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listen {
    /// The address part (`None`: a bare port, bound on `--bind`).
    host: Option<String>,
    port: u16,
}

/// Parses `4040`, `127.0.0.1:4040`, `[::1]:4040` or `localhost:4040`.
fn parse_listen(s: &str) -> anyhow::Result<Listen> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(Listen { host: None, port });
    }
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Ok(Listen {
            host: Some(addr.ip().to_string()),
            port: addr.port(),
        });
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(Listen {
                host: Some(host.to_string()),
                port: port.parse()?,
            })
        }
        _ => anyhow::bail!("{s:?} is not a PORT or ADDR:PORT to listen on"),
    }
}

/// The RTP receiver's settings from `--rtp`/`--sdp` and the flags around them.
fn rtp_settings(args: &Args) -> anyhow::Result<crate::rtp::RtpSettings> {
    use proto::rtp_map::{Encoding, RtpMap};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    if !(args.rtcp_interval.is_finite() && (0.1..=3600.0).contains(&args.rtcp_interval)) {
        anyhow::bail!(
            "--rtcp-interval {} is out of range (0.1 to 3600 seconds)",
            args.rtcp_interval
        );
    }
    let rate = args.sample_rate;
    let bind = args.bind.as_deref().unwrap_or(DEFAULT_BIND);
    let bind_ip = |what: &str| -> anyhow::Result<IpAddr> {
        bind.parse()
            .map_err(|_| anyhow::anyhow!("--bind {bind:?} is not an IP address (with {what})"))
    };
    let mut map = RtpMap::defaults_for(rate);
    let (bind, group) = match (&args.rtp, &args.sdp) {
        (Some(spec), _) => {
            let bind = match spec.parse::<SocketAddr>() {
                Ok(_) if args.bind.is_some() => anyhow::bail!(
                    "--rtp {spec} already names the address; --bind applies to a bare port"
                ),
                Ok(addr) => addr,
                Err(_) => match spec.parse::<u16>() {
                    Ok(port) => SocketAddr::new(bind_ip("--rtp")?, port),
                    Err(_) => anyhow::bail!("--rtp {spec:?} is not a PORT or ADDR:PORT"),
                },
            };
            (bind, None)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read --sdp {}: {e}", path.display()))?;
            let session = proto::sdp::AudioSession::parse(&text)
                .map_err(|e| anyhow::anyhow!("--sdp {}: {e}", path.display()))?;
            let what = match session.encoding {
                Encoding::Opus => "Opus",
                _ => "L16",
            };
            if session.format.rate != rate {
                anyhow::bail!(
                    "--sdp {} describes {what} at {} Hz, but the recorder runs at {rate} Hz \
                     (add --sample-rate {})",
                    path.display(),
                    session.format.rate,
                    session.format.rate
                );
            }
            if session.payload_type >= proto::rtp_map::PT_DYNAMIC_MIN {
                map.apply(proto::rtp_map::Declaration {
                    payload_type: session.payload_type,
                    encoding: session.encoding,
                    format: session.format,
                });
            }
            let ip = session.dest.ip();
            // A unicast c= address is this host (or 0.0.0.0): bind --bind
            // on its port; a multicast group is joined.
            let bind = if ip.is_multicast() {
                SocketAddr::new(
                    if ip.is_ipv4() {
                        Ipv4Addr::UNSPECIFIED.into()
                    } else {
                        std::net::Ipv6Addr::UNSPECIFIED.into()
                    },
                    session.dest.port(),
                )
            } else {
                SocketAddr::new(bind_ip("--sdp")?, session.dest.port())
            };
            (bind, ip.is_multicast().then_some(ip))
        }
        (None, None) => unreachable!("rtp_settings is called with --rtp or --sdp"),
    };
    for entry in &args.rtp_map {
        let what = match entry.encoding {
            Encoding::L16 => "L16",
            Encoding::Opus => "opus",
            Encoding::Red => anyhow::bail!(
                "--rtp-map {}=red/…: the recorder does not take RFC 2198 redundancy (declare \
                 L16 or opus)",
                entry.payload_type
            ),
        };
        if entry.format.rate != rate {
            anyhow::bail!(
                "--rtp-map {}={what}/{}/{} is at {} Hz, but the recorder runs at {rate} Hz (add \
                 --sample-rate {})",
                entry.payload_type,
                entry.format.rate,
                entry.format.channels,
                entry.format.rate,
                entry.format.rate
            );
        }
        map.apply(*entry);
    }
    let pin = args
        .source
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    Ok(crate::rtp::RtpSettings {
        bind,
        group,
        map,
        pin,
        source_timeout: std::time::Duration::from_millis(u64::from(args.source_timeout_ms)),
        rtcp_interval: std::time::Duration::from_secs_f64(args.rtcp_interval),
        reorder_frames: (u64::from(args.jitter_backoff) * u64::from(rate) / 1000) as usize,
        sample_rate: rate,
        plc: args.plc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> anyhow::Result<Config> {
        let args =
            Args::try_parse_from(std::iter::once("audiorecorder").chain(args.iter().copied()))?;
        Config::from_args(&args)
    }

    #[test]
    fn common_command_lines() {
        let c = config(&["rec.wav", "4040", "--jitter-backoff", "50"]).unwrap();
        assert_eq!(c.wav.as_deref(), Some(std::path::Path::new("rec.wav")));
        assert!(matches!(c.input, Input::Udp { port: 4040, .. }));
        let playback = c.playback.unwrap();
        assert_eq!(playback.max_latency_ms, 200);
        assert_eq!(playback.rt_priority, 10);
        let c = config(&["--no-record", "1", "--rt-priority", "0"]).unwrap();
        assert_eq!(c.playback.unwrap().rt_priority, 0);

        let c = config(&["rec.wav", "1", "--jitter-backoff", "80"]).unwrap();
        assert_eq!(c.playback.unwrap().max_latency_ms, 320);

        let c = config(&["--no-record", "4040"]).unwrap();
        assert!(c.wav.is_none());
        assert!(matches!(c.input, Input::Udp { port: 4040, .. }));

        let c = config(&["rec.wav", "--tcp", "host:9000", "--no-playback"]).unwrap();
        assert_eq!(
            c.input,
            Input::Tcp {
                addr: "host:9000".into(),
                max_format_changes: 10
            }
        );
        assert_eq!(c.max_files, 100);
        assert!(c.playback.is_none());
        let c = config(&["rec.wav", "1"]).unwrap();
        assert!(matches!(
            c.input,
            Input::Udp { source_timeout, .. } if source_timeout == std::time::Duration::from_secs(2)
        ));
    }

    #[test]
    fn listen_on_port_or_address() {
        let udp = |args: &[&str]| match config(args).unwrap().input {
            Input::Udp { bind, port, .. } => (bind, port),
            other => panic!("{other:?}"),
        };
        assert_eq!(udp(&["rec.wav", "4040"]), ("0.0.0.0".into(), 4040));
        assert_eq!(
            udp(&["rec.wav", "127.0.0.1:4040"]),
            ("127.0.0.1".into(), 4040)
        );
        assert_eq!(udp(&["rec.wav", "[::1]:0"]), ("::1".into(), 0));
        assert_eq!(udp(&["rec.wav", "localhost:9"]), ("localhost".into(), 9));
        assert_eq!(
            udp(&["rec.wav", "4040", "--bind", "127.0.0.1"]),
            ("127.0.0.1".into(), 4040)
        );
        assert_eq!(
            udp(&["--no-record", "127.0.0.1:4041"]),
            ("127.0.0.1".into(), 4041)
        );
        let err = |args: &[&str]| format!("{:#}", config(args).unwrap_err());
        assert_eq!(
            err(&["rec.wav", "127.0.0.1:4040", "--bind", "0.0.0.0"]),
            "the listening address 127.0.0.1 and --bind 0.0.0.0 contradict each other; give one"
        );
        assert_eq!(
            err(&["rec.wav", "4o4o"]),
            "\"4o4o\" is not a PORT or ADDR:PORT to listen on"
        );
        assert_eq!(
            err(&["rec.wav", "127.0.0.1:70000"]),
            "\"127.0.0.1:70000\" is not a PORT or ADDR:PORT to listen on"
        );
        // --rtp takes the same two forms.
        let rtp = |args: &[&str]| match config(args).unwrap().input {
            Input::Rtp(r) => r.bind,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            rtp(&["--rtp", "5004", "--bind", "127.0.0.1", "r.wav"]),
            "127.0.0.1:5004".parse().unwrap()
        );
        assert_eq!(
            rtp(&["--rtp", "[::1]:5004", "r.wav"]),
            "[::1]:5004".parse().unwrap()
        );
        assert!(err(&["--rtp", "127.0.0.1:5004", "--bind", "::", "r.wav"]).contains("bare port"));
    }

    #[test]
    fn rtp_command_lines() {
        let c = config(&["--rtp", "5004", "rec.wav"]).unwrap();
        assert_eq!(c.wav.as_deref(), Some(std::path::Path::new("rec.wav")));
        let Input::Rtp(r) = c.input else { panic!() };
        assert_eq!(r.bind, "0.0.0.0:5004".parse().unwrap());
        assert_eq!(r.map.get(96).unwrap().channels, 2);
        assert_eq!(r.map.get(97).unwrap().rate, 44_100);
        // 50 ms of 44.1 kHz held for reordering.
        assert_eq!(r.reorder_frames, 2205);
        let c = config(&[
            "--no-record",
            "--rtp",
            "127.0.0.1:6000",
            "--sample-rate",
            "48000",
            "--rtp-map",
            "97=L16/48000/2",
        ])
        .unwrap();
        let Input::Rtp(r) = c.input else { panic!() };
        assert_eq!(r.bind, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(r.map.get(97).unwrap().channels, 2);
        // The static types stay 44.1 kHz (and are refused at 48 kHz later).
        assert_eq!(r.map.get(10).unwrap().rate, 44_100);
    }

    #[test]
    fn sdp_gives_port_and_format() {
        let dir = std::env::temp_dir().join(format!("audiorecorder-sdp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sdp");
        std::fs::write(
            &path,
            "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\n\
             m=audio 5006 RTP/AVP 97\na=rtpmap:97 L16/48000/2\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = config(&["--sdp", p, "--sample-rate", "48000", "r.wav"]).unwrap();
        let Input::Rtp(r) = c.input else { panic!() };
        assert_eq!(r.bind.port(), 5006);
        assert_eq!(r.map.get(97).unwrap().channels, 2);
        let e = format!("{:#}", config(&["--sdp", p, "r.wav"]).unwrap_err());
        assert!(
            e.contains("48000 Hz") && e.contains("--sample-rate 48000"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mistakes_are_errors() {
        for bad in [
            &["rec.wav"][..],
            &["4040", "--no-record", "--no-playback"],
            &["--tcp", "h:1"],
            &["rec.wav", "1", "--tcp", "h:1"],
            &["rec.wav", "1", "--source", "nonsense"],
            &[
                "rec.wav",
                "1",
                "--jitter-backoff",
                "100",
                "--max-latency-ms",
                "50",
            ],
            &["rec.wav", "1", "--sample-rate", "0"],
            &["rec.wav", "1", "--rt-priority", "100"],
            &["rec.wav", "1", "--source-timeout-ms", "0"],
            &["rec.wav", "1", "--max-files", "0"],
            &["rec.wav", "1", "--rtp", "5004"],
            &["rec.wav", "--rtp", "5004", "--tcp", "h:1"],
            &["rec.wav", "--rtp", "x"],
            &["rec.wav", "--rtp", "5004", "--rtp-map", "95=L16/44100/2"],
            &["rec.wav", "--rtp", "5004", "--rtp-map", "96=L16/48000/2"],
            &["rec.wav", "--rtp", "5004", "--rtcp-interval", "0"],
            &["rec.wav", "1", "--rtp-map", "96=L16/44100/2"],
            &["rec.wav", "--sdp", "/nonexistent.sdp"],
            &["--no-record", "1", "--keep-time"],
        ] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }
}
