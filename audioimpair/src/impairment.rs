//! The per-client impairment state machine: what happens to each datagram.
//!
//! Sans-IO: [`Impairment::decide`] takes the arrival time and the datagram's
//! length and returns its [`Fate`] — lost, dropped by the rate queue, or
//! forwarded at a release time (plus an optional duplicate). The stages, in
//! order: loss model → rate queue → fixed delay + jitter + reorder hold →
//! duplication. Every datagram consumes exactly [`DRAWS_PER_DATAGRAM`]
//! random numbers whatever the flags, so the n-th decision of one kind
//! depends only on the seed, the client index and n: adding `--jitter` to a
//! run does not change which datagrams are lost.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::loss::{LossModel, LossState};
use crate::rate::TokenBucket;

/// A duplicate is released up to this long after its original (uniform).
pub const DUPLICATE_GAP_MAX: Duration = Duration::from_millis(2);

/// Default longest extra hold of a reordered datagram (`--reorder-ms`).
pub const DEFAULT_REORDER_HOLD: Duration = Duration::from_millis(30);

/// Uniform random numbers drawn per datagram (see the module doc).
pub const DRAWS_PER_DATAGRAM: usize = 7;

/// What to do to the datagrams of one client. `Default` is "no impairment".
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairmentConfig {
    /// Loss model (independent or Gilbert-Elliott bursts).
    pub loss: LossModel,
    /// Probability that a datagram is held back so later ones overtake it.
    pub reorder: f64,
    /// Longest extra hold of a reordered datagram; the hold is uniform in
    /// [`reorder_hold / 2`, `reorder_hold`].
    pub reorder_hold: Duration,
    /// Probability that a forwarded datagram is also sent a second time.
    pub duplicate: f64,
    /// Fixed latency added to every datagram.
    pub delay: Duration,
    /// Extra latency, uniform in [0, `jitter`), drawn per datagram.
    pub jitter: Duration,
    /// Token-bucket rate limit in kilobits per second (`None`: unlimited).
    pub rate_kbps: Option<f64>,
}

impl Default for ImpairmentConfig {
    fn default() -> Self {
        Self {
            loss: LossModel::default(),
            reorder: 0.0,
            reorder_hold: DEFAULT_REORDER_HOLD,
            duplicate: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_kbps: None,
        }
    }
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    /// Lost by the loss model.
    Lost,
    /// Dropped because the rate queue already held more than 1 s of backlog.
    RateDropped,
    /// Sent upstream at `release`, and a second time at `copy` if duplicated.
    Forward {
        /// When the datagram is sent upstream (time since the proxy started).
        release: Duration,
        /// When its duplicate is sent (at or after `release`), if any.
        copy: Option<Duration>,
        /// Whether it was given a reorder hold.
        held: bool,
    },
}

/// The random numbers of one datagram, one per decision.
struct Draws {
    state: f64,
    loss: f64,
    reorder: f64,
    hold: f64,
    jitter: f64,
    duplicate: f64,
    gap: f64,
}

impl Draws {
    fn take(rng: &mut ChaCha8Rng) -> Self {
        // Field order is the draw order: keep it stable, runs depend on it.
        Self {
            state: rng.random(),
            loss: rng.random(),
            reorder: rng.random(),
            hold: rng.random(),
            jitter: rng.random(),
            duplicate: rng.random(),
            gap: rng.random(),
        }
    }
}

/// The impairment state of one client: its RNG, loss state and rate queue.
#[derive(Debug, Clone)]
pub struct Impairment {
    config: ImpairmentConfig,
    rng: ChaCha8Rng,
    loss: LossState,
    bucket: Option<TokenBucket>,
}

impl Impairment {
    /// The state of the client that sent its first datagram `client_index`-th
    /// (0-based) in a run with `seed`. Its RNG is ChaCha8 seeded with `seed`
    /// on stream `client_index`, so clients never share random numbers.
    ///
    /// `config` must be valid (see `Config::validate`).
    pub fn new(config: &ImpairmentConfig, seed: u64, client_index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(client_index);
        Self {
            config: config.clone(),
            rng,
            loss: LossState::new(config.loss),
            bucket: config.rate_kbps.map(TokenBucket::new),
        }
    }

    /// Decides the fate of a datagram of `len` bytes that arrived at `now`.
    /// Call in arrival order.
    pub fn decide(&mut self, now: Duration, len: usize) -> Fate {
        let d = Draws::take(&mut self.rng);
        if self.loss.next_lost(d.state, d.loss) {
            return Fate::Lost;
        }
        let depart = match &mut self.bucket {
            Some(bucket) => match bucket.admit(now, len) {
                Some(t) => t,
                None => return Fate::RateDropped,
            },
            None => now,
        };
        let c = &self.config;
        let mut release = depart + c.delay + c.jitter.mul_f64(d.jitter);
        let held = d.reorder < c.reorder;
        if held {
            let min = c.reorder_hold / 2;
            release += min + (c.reorder_hold - min).mul_f64(d.hold);
        }
        let copy = (d.duplicate < c.duplicate).then(|| release + DUPLICATE_GAP_MAX.mul_f64(d.gap));
        Fate::Forward {
            release,
            copy,
            held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Fates of `n` 100-byte datagrams arriving every 10 ms.
    fn fates(config: &ImpairmentConfig, seed: u64, client: u64, n: u32) -> Vec<Fate> {
        let mut imp = Impairment::new(config, seed, client);
        (0..n).map(|i| imp.decide(10 * MS * i, 100)).collect()
    }

    fn share(fates: &[Fate], f: impl Fn(&Fate) -> bool) -> f64 {
        fates.iter().filter(|x| f(x)).count() as f64 / fates.len() as f64
    }

    #[test]
    fn no_impairment_forwards_everything_at_once() {
        for (i, f) in fates(&ImpairmentConfig::default(), 0, 0, 1000)
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                f,
                Fate::Forward {
                    release: 10 * MS * i as u32,
                    copy: None,
                    held: false
                }
            );
        }
    }

    #[test]
    fn duplicate_and_reorder_probabilities() {
        let config = ImpairmentConfig {
            reorder: 0.05,
            duplicate: 0.01,
            ..Default::default()
        };
        let f = fates(&config, 5, 0, 100_000);
        let dup = share(&f, |f| matches!(f, Fate::Forward { copy: Some(_), .. }));
        let held = share(&f, |f| matches!(f, Fate::Forward { held: true, .. }));
        assert!((dup - 0.01).abs() < 0.002, "{dup}");
        assert!((held - 0.05).abs() < 0.004, "{held}");
    }

    #[test]
    fn delay_jitter_hold_and_copy_bounds() {
        let config = ImpairmentConfig {
            reorder: 0.2,
            duplicate: 0.2,
            delay: 40 * MS,
            jitter: 10 * MS,
            ..Default::default()
        };
        let mut extra_min = Duration::MAX;
        let mut extra_max = Duration::ZERO;
        for (i, f) in fates(&config, 6, 0, 20_000).into_iter().enumerate() {
            let Fate::Forward {
                release,
                copy,
                held,
            } = f
            else {
                panic!("nothing is lost");
            };
            let extra = release - 10 * MS * i as u32 - 40 * MS;
            if held {
                assert!(extra >= 15 * MS && extra < 40 * MS, "{extra:?}");
            } else {
                assert!(extra < 10 * MS, "{extra:?}");
                extra_min = extra_min.min(extra);
                extra_max = extra_max.max(extra);
            }
            if let Some(c) = copy {
                assert!(c >= release && c - release < DUPLICATE_GAP_MAX);
            }
        }
        // Jitter spans its whole range.
        assert!(
            extra_min < MS / 10 && extra_max > 9 * MS,
            "{extra_min:?} {extra_max:?}"
        );
    }

    #[test]
    fn same_seed_same_decisions_other_seed_or_client_differs() {
        let config = ImpairmentConfig {
            loss: LossModel::gilbert_elliott(0.1, 3.0).unwrap(),
            reorder: 0.1,
            duplicate: 0.1,
            jitter: 10 * MS,
            ..Default::default()
        };
        let a = fates(&config, 42, 0, 2000);
        assert_eq!(a, fates(&config, 42, 0, 2000));
        assert_ne!(a, fates(&config, 43, 0, 2000));
        assert_ne!(a, fates(&config, 42, 1, 2000));
    }

    #[test]
    fn adding_jitter_does_not_change_which_datagrams_are_lost() {
        let lossy = ImpairmentConfig {
            loss: LossModel::bernoulli(0.1).unwrap(),
            ..Default::default()
        };
        let with_jitter = ImpairmentConfig {
            jitter: 20 * MS,
            duplicate: 0.3,
            ..lossy.clone()
        };
        let lost = |f: &Vec<Fate>| -> Vec<bool> { f.iter().map(|f| *f == Fate::Lost).collect() };
        assert_eq!(
            lost(&fates(&lossy, 9, 0, 5000)),
            lost(&fates(&with_jitter, 9, 0, 5000))
        );
    }

    #[test]
    fn losses_happen_before_the_rate_queue() {
        // 8 kbit/s = 1000 B/s; 100 B every 10 ms is 10 000 B/s: the queue
        // fills, and lost datagrams must not take a place in it.
        let config = ImpairmentConfig {
            loss: LossModel::bernoulli(1.0).unwrap(),
            rate_kbps: Some(8.0),
            ..Default::default()
        };
        assert!(fates(&config, 0, 0, 500).iter().all(|f| *f == Fate::Lost));
        let config = ImpairmentConfig {
            rate_kbps: Some(8.0),
            delay: 5 * MS,
            ..Default::default()
        };
        let f = fates(&config, 0, 0, 500);
        let dropped = share(&f, |f| *f == Fate::RateDropped);
        // The link carries 1 of every 10 offered once the queue is full.
        assert!((0.8..0.92).contains(&dropped), "{dropped}");
        // Released datagrams leave 100 ms apart (+ the fixed delay).
        let releases: Vec<Duration> = f
            .iter()
            .filter_map(|f| match f {
                Fate::Forward { release, .. } => Some(*release),
                _ => None,
            })
            .collect();
        assert_eq!(releases[0], 5 * MS);
        for w in releases[16..].windows(2) {
            assert!(w[1] - w[0] >= 99 * MS, "{w:?}");
        }
    }
}
