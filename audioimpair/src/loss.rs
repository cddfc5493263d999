//! Loss models: independent (Bernoulli) loss and Gilbert-Elliott burst loss.
//!
//! Sans-IO and RNG-free: the caller draws the uniform numbers and passes
//! them in, so the impairment can draw a fixed set of numbers per datagram
//! whatever the model (turning on one impairment never shifts the random
//! stream of another).

/// Default mean burst length (datagrams) of the Gilbert-Elliott model.
pub const DEFAULT_BURST_LEN: f64 = 4.0;

/// How datagrams are lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossModel {
    /// Every datagram is lost independently with probability `p`.
    Bernoulli {
        /// Loss probability in [0, 1].
        p: f64,
    },
    /// Two-state Gilbert-Elliott chain: the good state loses nothing, the
    /// bad state loses every datagram. Losses therefore come in bursts whose
    /// length is geometric with mean `1 / leave_bad`, and the long-run loss
    /// rate is `enter_bad / (enter_bad + leave_bad)`.
    GilbertElliott {
        /// Probability of moving good → bad before a datagram.
        enter_bad: f64,
        /// Probability of moving bad → good before a datagram.
        leave_bad: f64,
    },
}

/// Why loss parameters cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// The loss probability is not a number in [0, 1].
    #[error("loss probability {0} is not between 0 and 1")]
    Probability(f64),
    /// The mean burst length is below one datagram (or not finite).
    #[error("mean burst length {0} must be a number of at least 1")]
    BurstLen(f64),
    /// No two-state chain with that burst length reaches that loss rate.
    #[error(
        "a mean loss of {loss} is impossible with a mean burst length of {burst_len} \
         (at most {max:.3}; raise --burst-len)"
    )]
    Unreachable {
        /// Requested mean loss rate.
        loss: f64,
        /// Requested mean burst length.
        burst_len: f64,
        /// Highest loss rate reachable with that burst length.
        max: f64,
    },
}

impl LossModel {
    /// Independent loss with probability `p`.
    pub fn bernoulli(p: f64) -> Result<Self, LossError> {
        check_probability(p)?;
        Ok(Self::Bernoulli { p })
    }

    /// A Gilbert-Elliott chain whose mean loss rate is `loss` and whose
    /// loss bursts last `burst_len` datagrams on average.
    ///
    /// The bad state is left with probability `r = 1 / burst_len`; the good
    /// state is left with `p = loss · r / (1 − loss)`, which puts the chain in
    /// the bad state a fraction `p / (p + r) = loss` of the time. `p` must
    /// stay ≤ 1, so `loss ≤ burst_len / (burst_len + 1)`.
    pub fn gilbert_elliott(loss: f64, burst_len: f64) -> Result<Self, LossError> {
        check_probability(loss)?;
        if !burst_len.is_finite() || burst_len < 1.0 {
            return Err(LossError::BurstLen(burst_len));
        }
        let leave_bad = 1.0 / burst_len;
        let max = burst_len / (burst_len + 1.0);
        if loss > max {
            return Err(LossError::Unreachable {
                loss,
                burst_len,
                max,
            });
        }
        let enter_bad = (loss * leave_bad / (1.0 - loss)).min(1.0);
        Ok(Self::GilbertElliott {
            enter_bad,
            leave_bad,
        })
    }

    /// Long-run fraction of datagrams lost.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            Self::Bernoulli { p } => p,
            Self::GilbertElliott {
                enter_bad,
                leave_bad,
            } => {
                if enter_bad == 0.0 {
                    0.0
                } else {
                    enter_bad / (enter_bad + leave_bad)
                }
            }
        }
    }
}

impl Default for LossModel {
    fn default() -> Self {
        Self::Bernoulli { p: 0.0 }
    }
}

fn check_probability(p: f64) -> Result<(), LossError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(LossError::Probability(p))
    }
}

/// The running state of a loss model for one stream.
#[derive(Debug, Clone)]
pub struct LossState {
    model: LossModel,
    /// Gilbert-Elliott: in the bad state. Starts good.
    bad: bool,
}

impl LossState {
    /// A fresh state (Gilbert-Elliott starts in the good state).
    pub fn new(model: LossModel) -> Self {
        Self { model, bad: false }
    }

    /// Decides whether the next datagram is lost, from two uniform numbers
    /// in [0, 1): `u_state` drives the state transition, `u_loss` the
    /// Bernoulli draw. Both are always consumed by the caller.
    pub fn next_lost(&mut self, u_state: f64, u_loss: f64) -> bool {
        match self.model {
            LossModel::Bernoulli { p } => u_loss < p,
            LossModel::GilbertElliott {
                enter_bad,
                leave_bad,
            } => {
                let flip = if self.bad { leave_bad } else { enter_bad };
                if u_state < flip {
                    self.bad = !self.bad;
                }
                self.bad
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Runs `n` datagrams through `model`; returns the loss flags.
    fn run(model: LossModel, n: usize, seed: u64) -> Vec<bool> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut state = LossState::new(model);
        (0..n)
            .map(|_| state.next_lost(rng.random(), rng.random()))
            .collect()
    }

    /// Lengths of the runs of consecutive losses.
    fn bursts(lost: &[bool]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut run = 0;
        for &l in lost {
            if l {
                run += 1;
            } else if run > 0 {
                out.push(run);
                run = 0;
            }
        }
        if run > 0 {
            out.push(run);
        }
        out
    }

    fn rate(lost: &[bool]) -> f64 {
        lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64
    }

    #[test]
    fn bernoulli_rate_within_tolerance() {
        let lost = run(LossModel::bernoulli(0.05).unwrap(), 200_000, 1);
        // σ = sqrt(0.05·0.95/200000) ≈ 0.0005; allow 6σ.
        assert!((rate(&lost) - 0.05).abs() < 0.003, "{}", rate(&lost));
        // Independent losses: mean burst ≈ 1 / (1 − p) ≈ 1.05.
        let b = bursts(&lost);
        let mean = b.iter().sum::<usize>() as f64 / b.len() as f64;
        assert!(mean < 1.1, "{mean}");
    }

    #[test]
    fn zero_and_one_are_exact() {
        assert!(run(LossModel::bernoulli(0.0).unwrap(), 10_000, 2)
            .iter()
            .all(|&l| !l));
        assert!(run(LossModel::bernoulli(1.0).unwrap(), 10_000, 2)
            .iter()
            .all(|&l| l));
        assert!(
            run(LossModel::gilbert_elliott(0.0, 4.0).unwrap(), 10_000, 2)
                .iter()
                .all(|&l| !l)
        );
    }

    #[test]
    fn gilbert_elliott_parameters() {
        let m = LossModel::gilbert_elliott(0.05, 4.0).unwrap();
        let LossModel::GilbertElliott {
            enter_bad,
            leave_bad,
        } = m
        else {
            panic!("{m:?}");
        };
        assert_eq!(leave_bad, 0.25);
        assert!((enter_bad - 0.05 * 0.25 / 0.95).abs() < 1e-12);
        assert!((m.mean_loss() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn gilbert_elliott_rate_and_burstiness() {
        let lost = run(LossModel::gilbert_elliott(0.05, 4.0).unwrap(), 400_000, 3);
        // Bursty losses converge slower than independent ones: allow ±0.006.
        assert!((rate(&lost) - 0.05).abs() < 0.006, "{}", rate(&lost));
        let b = bursts(&lost);
        let mean = b.iter().sum::<usize>() as f64 / b.len() as f64;
        assert!((mean - 4.0).abs() < 0.3, "mean burst {mean}");
        // Geometric bursts: about 1/4 of them are single losses, some ≥ 10.
        let singles = b.iter().filter(|&&l| l == 1).count() as f64 / b.len() as f64;
        assert!((singles - 0.25).abs() < 0.04, "{singles}");
        assert!(b.iter().any(|&l| l >= 10));
    }

    #[test]
    fn burst_len_one_behaves_like_independent_losses_in_bursts() {
        let lost = run(LossModel::gilbert_elliott(0.2, 1.0).unwrap(), 200_000, 4);
        assert!((rate(&lost) - 0.2).abs() < 0.01);
        let b = bursts(&lost);
        assert!(
            b.iter().all(|&l| l == 1),
            "r = 1 leaves the bad state at once"
        );
    }

    #[test]
    fn invalid_parameters() {
        assert_eq!(LossModel::bernoulli(1.5), Err(LossError::Probability(1.5)));
        assert!(LossModel::bernoulli(f64::NAN).is_err());
        assert!(LossModel::bernoulli(-0.1).is_err());
        assert_eq!(
            LossModel::gilbert_elliott(0.1, 0.5),
            Err(LossError::BurstLen(0.5))
        );
        assert!(LossModel::gilbert_elliott(0.1, f64::INFINITY).is_err());
        assert!(matches!(
            LossModel::gilbert_elliott(0.9, 4.0),
            Err(LossError::Unreachable { .. })
        ));
        // The boundary itself works: p = 1 (good is left at once).
        let m = LossModel::gilbert_elliott(0.8, 4.0).unwrap();
        assert!((m.mean_loss() - 0.8).abs() < 1e-12);
    }
}
