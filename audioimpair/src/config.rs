//! Checked configuration, built from [`Args`] or directly by library users.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Args;
use crate::impairment::ImpairmentConfig;
use crate::loss::{LossError, LossModel};

/// Longest `--delay`, `--jitter` or `--reorder-ms` accepted (a typo guard).
pub const MAX_LATENCY_MS: u64 = 60_000;

/// A proxy's complete, checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where clients send to.
    pub listen: SocketAddr,
    /// Where datagrams are forwarded.
    pub forward: SocketAddr,
    /// What to do to each client's datagrams.
    pub impairment: ImpairmentConfig,
    /// Seed of all random decisions.
    pub seed: u64,
    /// Ground-truth destination for the binary (`None`: standard output).
    /// The library's [`crate::Proxy`] ignores it.
    pub summary: Option<PathBuf>,
}

/// A configuration problem, phrased for the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// An address that does not resolve.
    #[error("cannot resolve {flag} address {addr:?}: {reason}")]
    Resolve {
        /// The flag, e.g. `--forward`.
        flag: &'static str,
        /// What was given.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// A forward address with port 0.
    #[error("--forward address {0} needs a non-zero port")]
    ForwardPortZero(SocketAddr),
    /// A probability outside [0, 1].
    #[error("{flag} {value} is not a probability between 0 and 1")]
    Probability {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: f64,
    },
    /// Bad loss-model parameters.
    #[error("{0}")]
    Loss(#[from] LossError),
    /// A latency beyond [`MAX_LATENCY_MS`].
    #[error("{flag} {value} ms is more than the {max} ms allowed")]
    Latency {
        /// The flag.
        flag: &'static str,
        /// What was given, in ms.
        value: u128,
        /// The limit, in ms.
        max: u64,
    },
    /// A rate that is not a positive number.
    #[error("--rate {0} must be a positive number of kilobits per second")]
    Rate(f64),
}

impl Config {
    /// A configuration with no impairment, seed 0.
    pub fn new(listen: SocketAddr, forward: SocketAddr) -> Self {
        Self {
            listen,
            forward,
            impairment: ImpairmentConfig::default(),
            seed: 0,
            summary: None,
        }
    }

    /// Checks and converts command-line flags.
    pub fn from_args(args: &Args) -> Result<Self, ConfigError> {
        check_probability("--loss", args.loss)?;
        let loss = if args.burst_loss {
            LossModel::gilbert_elliott(args.loss, args.burst_len)?
        } else {
            LossModel::bernoulli(args.loss)?
        };
        let config = Self {
            listen: resolve("--listen", &args.listen)?,
            forward: resolve("--forward", &args.forward)?,
            impairment: ImpairmentConfig {
                loss,
                reorder: args.reorder,
                reorder_hold: Duration::from_millis(args.reorder_ms),
                duplicate: args.duplicate,
                delay: Duration::from_millis(args.delay),
                jitter: Duration::from_millis(args.jitter),
                rate_kbps: args.rate,
            },
            seed: args.seed,
            summary: args.summary.clone().filter(|p| p.as_os_str() != "-"),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks values a library user may have set directly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.forward.port() == 0 {
            return Err(ConfigError::ForwardPortZero(self.forward));
        }
        let i = &self.impairment;
        match i.loss {
            LossModel::Bernoulli { p } => check_probability("--loss", p)?,
            LossModel::GilbertElliott {
                enter_bad,
                leave_bad,
            } => {
                check_probability("Gilbert-Elliott enter_bad", enter_bad)?;
                check_probability("Gilbert-Elliott leave_bad", leave_bad)?;
            }
        }
        check_probability("--reorder", i.reorder)?;
        check_probability("--duplicate", i.duplicate)?;
        for (flag, d) in [
            ("--delay", i.delay),
            ("--jitter", i.jitter),
            ("--reorder-ms", i.reorder_hold),
        ] {
            if d > Duration::from_millis(MAX_LATENCY_MS) {
                return Err(ConfigError::Latency {
                    flag,
                    value: d.as_millis(),
                    max: MAX_LATENCY_MS,
                });
            }
        }
        if let Some(r) = i.rate_kbps {
            if !(r.is_finite() && r > 0.0) {
                return Err(ConfigError::Rate(r));
            }
        }
        Ok(())
    }
}

fn check_probability(flag: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Probability { flag, value })
    }
}

fn resolve(flag: &'static str, addr: &str) -> Result<SocketAddr, ConfigError> {
    let err = |reason: String| ConfigError::Resolve {
        flag,
        addr: addr.to_owned(),
        reason,
    };
    addr.to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec![
            "audioimpair",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:9",
        ];
        argv.extend_from_slice(extra);
        Config::from_args(&Args::try_parse_from(argv).unwrap())
    }

    #[test]
    fn defaults_are_no_impairment() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.impairment, ImpairmentConfig::default());
        assert_eq!(c.seed, 0);
        assert_eq!(c.summary, None);
        assert_eq!(c.forward, "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn all_flags() {
        let c = parse(&[
            "--loss",
            "0.1",
            "--burst-loss",
            "--burst-len",
            "5",
            "--reorder",
            "0.05",
            "--reorder-ms",
            "40",
            "--duplicate",
            "0.01",
            "--delay",
            "20",
            "--jitter",
            "10",
            "--rate",
            "512",
            "--seed",
            "9",
            "--summary",
            "/tmp/x.json",
        ])
        .unwrap();
        let i = &c.impairment;
        assert_eq!(i.loss, LossModel::gilbert_elliott(0.1, 5.0).unwrap());
        assert_eq!((i.reorder, i.duplicate), (0.05, 0.01));
        assert_eq!(i.reorder_hold, Duration::from_millis(40));
        assert_eq!(
            (i.delay, i.jitter),
            (Duration::from_millis(20), Duration::from_millis(10))
        );
        assert_eq!(i.rate_kbps, Some(512.0));
        assert_eq!(c.seed, 9);
        assert_eq!(c.summary, Some(PathBuf::from("/tmp/x.json")));
        assert_eq!(parse(&["--summary", "-"]).unwrap().summary, None);
    }

    #[test]
    fn bad_values_are_named() {
        let msg = |extra: &[&str]| parse(extra).unwrap_err().to_string();
        assert_eq!(
            msg(&["--loss", "1.5"]),
            "--loss 1.5 is not a probability between 0 and 1"
        );
        assert!(msg(&["--reorder", "-0.1"]).starts_with("--reorder -0.1"));
        assert!(msg(&["--duplicate", "NaN"]).starts_with("--duplicate NaN"));
        assert!(msg(&["--loss", "0.9", "--burst-loss"]).contains("raise --burst-len"));
        assert!(msg(&["--burst-loss", "--burst-len", "0.5"]).contains("at least 1"));
        assert!(msg(&["--rate", "0"]).starts_with("--rate 0"));
        assert!(msg(&["--jitter", "100000"]).starts_with("--jitter 100000 ms"));
    }

    #[test]
    fn addresses() {
        let e = Config::from_args(
            &Args::try_parse_from(["x", "--listen", "127.0.0.1:0", "--forward", "nonsense"])
                .unwrap(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot resolve --forward address \"nonsense\""),
            "{e}"
        );
        let e = Config::from_args(
            &Args::try_parse_from(["x", "--listen", "127.0.0.1:0", "--forward", "127.0.0.1:0"])
                .unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            ConfigError::ForwardPortZero("127.0.0.1:0".parse().unwrap())
        );
        // Names resolve.
        let c = Config::from_args(
            &Args::try_parse_from(["x", "--listen", "localhost:0", "--forward", "localhost:7"])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(c.forward.port(), 7);
    }

    #[test]
    fn burst_len_needs_burst_loss() {
        assert!(Args::try_parse_from([
            "x",
            "--listen",
            "a:1",
            "--forward",
            "b:2",
            "--burst-len",
            "3"
        ])
        .is_err());
    }
}
