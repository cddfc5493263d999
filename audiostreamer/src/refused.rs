//! Noticing that nothing listens at the UDP destination (sans-IO).
//!
//! A host whose port is closed answers each datagram with ICMP port
//! unreachable. The kernel reports that as `ECONNREFUSED` on the next send
//! of a connected socket, and that send does not go out; the one after it
//! does, and is refused again. So a success right after a refusal proves
//! nothing: the destination counts as listening again only after
//! [`RECOVERY`] of sends without a refusal. Both changes are reported once.

use std::time::Duration;

/// Time without a refusal, while sending, after which the destination
/// counts as listening again.
pub const RECOVERY: Duration = Duration::from_secs(1);

/// A change worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The destination refused a datagram: nothing is listening there.
    NothingListening,
    /// No refusal for [`RECOVERY`]: something listens again; `refused`
    /// datagrams were refused meanwhile.
    Listening {
        /// Sends refused while nothing listened.
        refused: u64,
    },
}

/// Whether the destination is listening, from the refusals seen.
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    /// When the last refusal came, while nothing listens.
    refused_at: Option<Duration>,
    /// Refused sends in the current spell.
    spell: u64,
    /// Refused sends ever.
    total: u64,
}

impl Refusals {
    /// A send was refused (`ECONNREFUSED`) at `now`.
    pub fn on_refused(&mut self, now: Duration) -> Option<Change> {
        self.total += 1;
        self.spell += 1;
        let first = self.refused_at.is_none();
        self.refused_at = Some(now);
        first.then_some(Change::NothingListening)
    }

    /// A send succeeded at `now`.
    pub fn on_sent(&mut self, now: Duration) -> Option<Change> {
        let at = self.refused_at?;
        if now.saturating_sub(at) < RECOVERY {
            return None;
        }
        self.refused_at = None;
        Some(Change::Listening {
            refused: std::mem::take(&mut self.spell),
        })
    }

    /// Sends refused so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn alternating_refusals_are_one_spell_until_a_quiet_second() {
        let mut r = Refusals::default();
        assert_eq!(r.on_sent(ms(0)), None);
        assert_eq!(r.on_refused(ms(10)), Some(Change::NothingListening));
        // The kernel's pattern: sent, refused, sent, refused …
        for k in 1..100u64 {
            assert_eq!(r.on_sent(ms(10 + 20 * k - 10)), None);
            assert_eq!(r.on_refused(ms(10 + 20 * k)), None);
        }
        let last = ms(10 + 20 * 99);
        assert_eq!(r.on_sent(last + RECOVERY - ms(1)), None);
        assert_eq!(
            r.on_sent(last + RECOVERY),
            Some(Change::Listening { refused: 100 })
        );
        assert_eq!(r.on_sent(last + RECOVERY * 2), None);
        assert_eq!(
            r.on_refused(last + RECOVERY * 3),
            Some(Change::NothingListening)
        );
        assert_eq!(r.total(), 101);
    }
}
