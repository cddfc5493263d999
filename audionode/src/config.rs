//! The checked configuration of a node: flags, then the original
//! environment variables as fallbacks, then defaults; every value validated
//! with a clear message.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Args;
use crate::control::HttpLimits;
use crate::engine::EngineConfig;
use crate::source::{JitterTarget, SourceParams};

/// Default receive address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:4030";
/// Default recorder address.
pub const DEFAULT_DEST: &str = "127.0.0.1:4040";
/// Default event-log path.
pub const DEFAULT_LOG_FILE: &str = "audionode.log";
/// Longest mixing block.
pub const MAX_BLOCK_MS: f64 = 5.0;
/// Largest datagram accepted: a sequence number and 8192 samples.
pub const MAX_DATAGRAM_BYTES: usize = 4 + 2 * 8192;
/// The environment variable that can hold the control surface's token.
pub const HTTP_TOKEN_ENV: &str = "AUDIONODE_HTTP_TOKEN";

/// Everything the node needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to receive source datagrams on.
    pub listen: SocketAddr,
    /// Recorders to send the mix to (the original stereo format).
    pub dests: Vec<SocketAddr>,
    /// Where RTP sources are received (`--rtp-listen`).
    pub rtp_listen: Vec<SocketAddr>,
    /// The RTP payload types sources may use.
    pub rtp_map: proto::rtp_map::RtpMap,
    /// Where the mix goes as RTP (`--rtp-dest`).
    pub rtp_dests: Vec<SocketAddr>,
    /// `--rtp-codec opus`: the `--rtp-dest` streams are Opus (at
    /// `opus_bitrate`), not L16.
    pub rtp_opus: bool,
    /// The bitrate of every Opus output (`--rtp-bitrate`), those added
    /// through the control surface too.
    pub opus_bitrate: u32,
    /// Where the first RTP output's SDP is written.
    pub sdp_file: Option<PathBuf>,
    /// Event log path.
    pub log_file: PathBuf,
    /// Engine settings.
    pub engine: EngineConfig,
    /// The control surface, unless `--http off`.
    pub http: Option<HttpSettings>,
    /// TCP Spec/Samples servers to pull sources from.
    pub tcp_sources: Vec<String>,
    /// Where to serve the mix over TCP Spec/Samples.
    pub tcp_listen: Option<SocketAddr>,
    /// SCHED_FIFO priority for the mixing thread (`None`: normal scheduling).
    pub rt_priority: Option<u8>,
    /// Event-log lines per second for the whole node (0: unlimited).
    pub log_lines_per_second: u32,
}

/// Where and how the control surface is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Token every API and WebSocket request must carry, if any.
    pub token: Option<String>,
    /// Host names (or addresses) accepted in Host besides loopback and the
    /// bound address, normalised (`--http-allow-host`).
    pub allowed_hosts: Vec<String>,
    /// Connection caps and timeouts.
    pub limits: HttpLimits,
}

impl Config {
    /// Resolves `args`, with `env` (e.g. `|k| std::env::var(k).ok()`) for fallbacks.
    pub fn from_args(args: &Args, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let listen = match (&args.listen, env("LISTEN_PORT")) {
            (Some(addr), _) => resolve_listen(addr, "--listen")?,
            (None, Some(port)) => {
                let port: u16 = port
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("LISTEN_PORT={port:?} is not a port number"))?;
                SocketAddr::from(([0, 0, 0, 0], port))
            }
            (None, None) => resolve(DEFAULT_LISTEN, "--listen")?,
        };
        let dest_texts: Vec<String> = if !args.dest.is_empty() {
            args.dest.clone()
        } else if let Some(dest) = env("DEST") {
            dest.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        } else if !args.rtp_dest.is_empty() {
            // Only RTP outputs asked for: no original-format default.
            Vec::new()
        } else {
            vec![DEFAULT_DEST.to_string()]
        };
        let dests = dest_texts
            .iter()
            .map(|d| resolve(d, "--dest"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rtp_dests = args
            .rtp_dest
            .iter()
            .map(|d| resolve(d, "--rtp-dest"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if dests.is_empty() && rtp_dests.is_empty() {
            anyhow::bail!("no destination: give --dest HOST:PORT or --rtp-dest HOST:PORT");
        }
        let rtp_listen = args
            .rtp_listen
            .iter()
            .map(|a| resolve_listen(a, "--rtp-listen"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if rtp_listen.len() > MAX_RTP_LISTENERS {
            anyhow::bail!("at most {MAX_RTP_LISTENERS} --rtp-listen addresses");
        }
        let mut rtp_map = proto::rtp_map::RtpMap::defaults_for(args.sample_rate);
        for text in &args.rtp_map {
            let declaration: proto::rtp_map::Declaration = text
                .parse()
                .map_err(|e| anyhow::anyhow!("--rtp-map {text:?}: {e}"))?;
            rtp_map.apply(declaration);
        }
        let log_file = args
            .log_file
            .clone()
            .or_else(|| env("LOGFILE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_FILE));
        let jitter_text = args
            .jitter_ms
            .clone()
            .or_else(|| env("BUFFER_SIZE"))
            .unwrap_or_else(|| "20".to_string());
        let target = parse_jitter(&jitter_text)?;
        let rate = args.sample_rate;
        if !(8_000..=192_000).contains(&rate) {
            anyhow::bail!("--sample-rate {rate} is outside 8000..=192000");
        }
        if args.max_sources == 0 {
            anyhow::bail!("--max-sources must be at least 1");
        }
        if args.timeout_ms < 10 {
            anyhow::bail!("--timeout-ms {} is below 10 ms", args.timeout_ms);
        }
        let http = parse_http(args, &env)?;
        for server in &args.tcp_source {
            // Checked now for a clear error; resolved again at each (re)connect.
            resolve(server, "--tcp-source")?;
        }
        let tcp_listen = args
            .tcp_listen
            .as_deref()
            .map(|a| resolve(a, "--tcp-listen"))
            .transpose()?;
        let block_frames = (f64::from(rate) * MAX_BLOCK_MS / 1000.0).floor() as usize;
        // clap's defaults are "" in a Default-built Args (tests).
        let opus_bitrate = match args.rtp_bitrate.as_str() {
            "" => proto::opus::DEFAULT_BITRATE,
            text => proto::opus::parse_bitrate(text)
                .map_err(|e| anyhow::anyhow!("--rtp-bitrate {e}"))?,
        };
        let rtp_opus = args.rtp_codec == "opus";
        if !rtp_opus && http.is_none() && !matches!(args.rtp_bitrate.as_str(), "" | "64k") {
            anyhow::bail!(
                "--rtp-bitrate applies to Opus outputs: --rtp-codec opus, or those added through --http"
            );
        }
        if rtp_opus && rtp_dests.is_empty() {
            anyhow::bail!("--rtp-codec opus applies to --rtp-dest; give one");
        }
        Ok(Config {
            listen,
            dests,
            rtp_listen,
            rtp_map,
            rtp_dests,
            rtp_opus,
            opus_bitrate,
            sdp_file: args.sdp_file.clone(),
            log_file,
            engine: EngineConfig {
                source: SourceParams {
                    rate,
                    block_frames,
                    target,
                    drift_warmup: 25,
                    drift_band_ms: 3.0,
                    events_per_second: 20,
                    plc: args.plc,
                },
                timeout: Duration::from_millis(args.timeout_ms),
                max_sources: args.max_sources,
                max_datagram_bytes: MAX_DATAGRAM_BYTES,
            },
            http,
            tcp_sources: args.tcp_source.clone(),
            tcp_listen,
            rt_priority: (args.rt_priority > 0).then_some(args.rt_priority),
            log_lines_per_second: args.log_lines_per_second,
        })
    }
}

fn parse_http(
    args: &Args,
    env: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<HttpSettings>> {
    let text = args.http.trim();
    if text.eq_ignore_ascii_case("off") {
        if args.http_token.is_some() || args.http_token_file.is_some() {
            anyhow::bail!("a control surface token given with --http off");
        }
        return Ok(None);
    }
    let addr = resolve(text, "--http")?;
    let token = http_token(args, env)?;
    if !addr.ip().is_loopback() && token.is_none() && !args.http_insecure {
        anyhow::bail!(
            "refusing to serve the control surface on {addr} (not loopback) without a token: give --http-token-file PATH or {HTTP_TOKEN_ENV} (or --http-insecure)"
        );
    }
    let allowed_hosts = args
        .http_allow_host
        .iter()
        .map(|h| crate::control::check_allow_host(h).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut limits = HttpLimits::default();
    if let Some(n) = args.http_max_connections {
        if n == 0 {
            anyhow::bail!("--http-max-connections must be at least 1");
        }
        limits.max_connections = n;
    }
    if let Some(n) = args.http_max_ws_clients {
        if n == 0 {
            anyhow::bail!("--http-max-ws-clients must be at least 1");
        }
        limits.max_ws_clients = n;
    }
    if let Some(n) = args.max_listeners {
        if n == 0 {
            anyhow::bail!("--max-listeners must be at least 1");
        }
        limits.max_listeners = n;
    }
    Ok(Some(HttpSettings {
        addr,
        token,
        allowed_hosts,
        limits,
    }))
}

/// The token from `--http-token-file`, else `--http-token` (with a warning:
/// a command line is public), else the environment.
fn http_token(
    args: &Args,
    env: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<String>> {
    let token = match (&args.http_token_file, &args.http_token) {
        (Some(_), Some(_)) => anyhow::bail!("give --http-token-file or --http-token, not both"),
        (Some(path), None) => Some(read_token_file(path)?),
        (None, Some(token)) => {
            log::warn!(
                "--http-token is visible to every user of this machine (ps, /proc); use --http-token-file PATH or {HTTP_TOKEN_ENV} instead"
            );
            if token.is_empty() {
                anyhow::bail!("--http-token must not be empty");
            }
            Some(token.clone())
        }
        (None, None) => match env(HTTP_TOKEN_ENV) {
            Some(token) if token.trim().is_empty() => {
                anyhow::bail!("{HTTP_TOKEN_ENV} is set but empty")
            }
            other => other,
        },
    };
    Ok(token)
}

fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read --http-token-file {shown}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("--http-token-file {shown} is empty");
    }
    if token.contains(['\n', '\r']) {
        anyhow::bail!("--http-token-file {shown} holds more than one line");
    }
    warn_if_world_readable(path);
    Ok(token.to_string())
}

/// A token file others can read is no secret; say so, but start anyway
/// (the operator may have reasons, e.g. a group-managed secret mount).
fn warn_if_world_readable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            log::warn!(
                "--http-token-file {} is readable by every user (chmod 600 it)",
                path.display()
            );
        }
    }
}

fn parse_jitter(text: &str) -> anyhow::Result<JitterTarget> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(JitterTarget::Auto);
    }
    match text.parse::<f64>() {
        Ok(ms) if ms > 0.0 && ms <= 1000.0 => Ok(JitterTarget::FixedMs(ms)),
        _ => anyhow::bail!("jitter target {text:?} must be \"auto\" or milliseconds in (0, 1000]"),
    }
}

/// Most `--rtp-listen` sockets.
pub const MAX_RTP_LISTENERS: usize = 8;

/// A listening address: `ADDR:PORT`, or a bare port (on every interface).
fn resolve_listen(text: &str, what: &str) -> anyhow::Result<SocketAddr> {
    match text.trim().parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([0, 0, 0, 0], port))),
        Err(_) => resolve(text, what),
    }
}

fn resolve(text: &str, what: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("{what} {text:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| anyhow::anyhow!("{what} {text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The arguments as clap gives them with no flags.
    fn cli_defaults() -> Args {
        use clap::Parser;
        Args::parse_from(["audionode"])
    }

    #[test]
    fn defaults() {
        let c = Config::from_args(&cli_defaults(), no_env).unwrap();
        assert_eq!(c.listen, "0.0.0.0:4030".parse().unwrap());
        assert_eq!(c.dests, vec!["127.0.0.1:4040".parse().unwrap()]);
        assert_eq!(c.log_file, PathBuf::from("audionode.log"));
        assert_eq!(c.engine.source.target, JitterTarget::FixedMs(20.0));
        assert_eq!(c.rt_priority, Some(10));
        assert_eq!(c.engine.source.block_frames, 220);
        assert_eq!(
            c.http,
            Some(HttpSettings {
                addr: "127.0.0.1:8080".parse().unwrap(),
                token: None,
                allowed_hosts: vec![],
                limits: HttpLimits::default(),
            })
        );
    }

    #[test]
    fn control_surface_off_loopback_needs_a_token() {
        let base = cli_defaults();
        let open = Args {
            http: "0.0.0.0:8080".into(),
            ..base.clone()
        };
        let err = Config::from_args(&open, no_env).unwrap_err().to_string();
        assert!(err.contains("without a token"), "{err}");
        let with_token = Args {
            http_token: Some("s3cret".into()),
            ..open.clone()
        };
        assert_eq!(
            Config::from_args(&with_token, no_env)
                .unwrap()
                .http
                .unwrap()
                .token
                .as_deref(),
            Some("s3cret")
        );
        let insecure = Args {
            http_insecure: true,
            ..open
        };
        assert!(Config::from_args(&insecure, no_env)
            .unwrap()
            .http
            .unwrap()
            .token
            .is_none());
        let off = Args {
            http: "off".into(),
            ..base
        };
        assert!(Config::from_args(&off, no_env).unwrap().http.is_none());
    }

    #[test]
    fn the_token_comes_from_a_file_the_environment_or_the_flag() {
        let dir = std::env::temp_dir().join(format!("audionode-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = |k: &str| (k == HTTP_TOKEN_ENV).then(|| "from-env".to_string());
        let token = |args: &Args, env: &dyn Fn(&str) -> Option<String>| {
            Config::from_args(args, env).map(|c| c.http.unwrap().token)
        };
        let base = cli_defaults();
        let with_file = Args {
            http_token_file: Some(file.clone()),
            ..base.clone()
        };
        assert_eq!(
            token(&with_file, &no_env).unwrap().as_deref(),
            Some("from-file")
        );
        assert_eq!(token(&base, &env).unwrap().as_deref(), Some("from-env"));
        // An explicit flag wins over the environment.
        assert_eq!(
            token(&with_file, &env).unwrap().as_deref(),
            Some("from-file")
        );
        let with_flag = Args {
            http_token: Some("from-flag".into()),
            ..base.clone()
        };
        assert_eq!(
            token(&with_flag, &env).unwrap().as_deref(),
            Some("from-flag")
        );
        let both = Args {
            http_token: Some("x".into()),
            ..with_file.clone()
        };
        assert!(token(&both, &no_env)
            .unwrap_err()
            .to_string()
            .contains("not both"));
        // An environment token counts off loopback.
        let open = Args {
            http: "0.0.0.0:8080".into(),
            ..base.clone()
        };
        assert_eq!(token(&open, &env).unwrap().as_deref(), Some("from-env"));
        let empty_env = |k: &str| (k == HTTP_TOKEN_ENV).then(String::new);
        assert!(token(&base, &empty_env)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        std::fs::write(&file, "one\ntwo\n").unwrap();
        assert!(token(&with_file, &no_env)
            .unwrap_err()
            .to_string()
            .contains("more than one line"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn http_limits_and_allowed_hosts() {
        let base = cli_defaults();
        let args = Args {
            http_allow_host: vec!["Desk.Example".into(), "10.0.0.7".into()],
            http_max_connections: Some(100),
            http_max_ws_clients: Some(10),
            ..base.clone()
        };
        let http = Config::from_args(&args, no_env).unwrap().http.unwrap();
        assert_eq!(http.allowed_hosts, vec!["desk.example", "10.0.0.7"]);
        assert_eq!(
            (http.limits.max_connections, http.limits.max_ws_clients),
            (100, 10)
        );
        let err = |args: Args| Config::from_args(&args, no_env).unwrap_err().to_string();
        assert!(err(Args {
            http_allow_host: vec!["desk.example:80".into()],
            ..base.clone()
        })
        .contains("without a port"));
        assert!(err(Args {
            http_max_connections: Some(0),
            ..base.clone()
        })
        .contains("--http-max-connections"));
        assert!(err(Args {
            http_max_ws_clients: Some(0),
            ..base
        })
        .contains("--http-max-ws-clients"));
    }

    #[test]
    fn environment_fallbacks_and_flag_precedence() {
        let env = |k: &str| match k {
            "LISTEN_PORT" => Some("5000".to_string()),
            "DEST" => Some("127.0.0.1:1,127.0.0.1:2".to_string()),
            "LOGFILE" => Some("/tmp/x.log".to_string()),
            "BUFFER_SIZE" => Some("auto".to_string()),
            _ => None,
        };
        let args = cli_defaults();
        let c = Config::from_args(&args, env).unwrap();
        assert_eq!(c.listen, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(c.dests.len(), 2);
        assert_eq!(c.log_file, PathBuf::from("/tmp/x.log"));
        assert_eq!(c.engine.source.target, JitterTarget::Auto);
        let args = Args {
            listen: Some("127.0.0.1:7".into()),
            jitter_ms: Some("35".into()),
            ..args
        };
        let c = Config::from_args(&args, env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7".parse().unwrap());
        assert_eq!(c.engine.source.target, JitterTarget::FixedMs(35.0));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let base = cli_defaults();
        let err = |args: Args| Config::from_args(&args, no_env).unwrap_err().to_string();
        assert!(err(Args {
            jitter_ms: Some("-3".into()),
            ..base.clone()
        })
        .contains("jitter target"));
        assert!(err(Args {
            dest: vec!["nonsense".into()],
            ..base.clone()
        })
        .contains("--dest \"nonsense\""));
        assert!(err(Args {
            sample_rate: 5,
            ..base.clone()
        })
        .contains("--sample-rate"));
        let port_err = Config::from_args(&base, |k| (k == "LISTEN_PORT").then(|| "x".to_string()))
            .unwrap_err();
        assert!(port_err.to_string().contains("LISTEN_PORT"));
        assert!(err(Args {
            max_listeners: Some(0),
            ..base.clone()
        })
        .contains("--max-listeners must be at least 1"));
    }

    #[test]
    fn max_listeners_flag_and_environment() {
        use clap::Parser;
        let c = Config::from_args(&cli_defaults(), no_env).unwrap();
        assert_eq!(c.http.unwrap().limits.max_listeners, 100);
        let args = Args::parse_from(["audionode", "--max-listeners", "7"]);
        let c = Config::from_args(&args, no_env).unwrap();
        assert_eq!(c.http.unwrap().limits.max_listeners, 7);
        assert!(Args::try_parse_from(["audionode", "--max-listeners", "many"]).is_err());
    }
}
