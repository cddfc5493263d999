//! When the run loop next looks at its socket: sans-IO, so the policy is
//! tested without sockets or clocks.
//!
//! While no stream is active the loop blocks on the socket, so the first
//! datagram of a stream wakes it. Once streams are active it never wakes
//! per datagram: each wake-up is a context switch (tens of microseconds on
//! a virtual machine, more than handling the datagram), and a real-time
//! mixing thread's wake-up also preempts whatever else runs on that CPU
//! (measured: 61 000 switches/s at 2000 sources; at 16 sources, waking per
//! datagram cost the mixing thread 6.5 % of a core, waking per block
//! under 1 %). Under light load the loop sleeps until the next block is
//! due and takes everything queued in one receive right before mixing it;
//! once a block's worth of traffic no longer fits comfortably in one
//! receive batch, it drains about once a millisecond instead, so a block's
//! deadline never waits for thousands of datagrams at once. The kernel
//! timestamps each datagram on arrival ([`crate::batch_recv`]), so the wait
//! in the socket does not count as network jitter, and the socket is always
//! drained right before a block is mixed, so no datagram that arrived in
//! time misses its block.

use std::time::Duration;

/// Datagrams per mixed block from which the load counts as heavy: three
/// quarters of the run loop's receive batch of 64 (48 per 5 ms block:
/// about 96 sources at 10 ms packets).
pub const BUSY_PACKETS_PER_BLOCK: usize = 48;

/// How often a heavily loaded loop drains its socket.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// What the loop does before its next receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Receive at once, without waiting (more is queued, or a block is due).
    Now,
    /// Sleep this long, then take whatever is queued.
    Sleep(Duration),
    /// Block on the socket for at most this long (wake on a datagram).
    Socket(Duration),
}

/// Chooses between waking per datagram and draining at intervals.
#[derive(Debug, Clone, Default)]
pub struct WakePlanner {
    packets_this_block: usize,
    busy: bool,
}

impl WakePlanner {
    /// Counts a received batch.
    pub fn on_batch(&mut self, datagrams: usize) {
        self.packets_this_block += datagrams;
    }

    /// A block was mixed: the traffic since the previous one sets the mode.
    pub fn on_block(&mut self) {
        self.busy = self.packets_this_block >= BUSY_PACKETS_PER_BLOCK;
        self.packets_this_block = 0;
    }

    /// Whether the loop currently drains at intervals.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// The next wait. `batch_was_full`: the last receive filled every
    /// slot (more may be queued); `until_deadline`: time to the next block
    /// (`None` while no stream is active); `idle_wait`: the longest wait.
    pub fn plan(
        &self,
        batch_was_full: bool,
        until_deadline: Option<Duration>,
        idle_wait: Duration,
    ) -> Wait {
        if batch_was_full {
            return Wait::Now;
        }
        match until_deadline {
            None => Wait::Socket(idle_wait),
            Some(d) if d.is_zero() => Wait::Now,
            Some(d) if self.busy => Wait::Sleep(d.min(POLL_INTERVAL).min(idle_wait)),
            Some(d) => Wait::Sleep(d.min(idle_wait)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_millis(50);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn light_load_sleeps_until_the_deadline_and_idle_waits_on_the_socket() {
        let mut p = WakePlanner::default();
        p.on_batch(3);
        p.on_block();
        assert!(!p.is_busy());
        assert_eq!(p.plan(false, Some(ms(4)), IDLE), Wait::Sleep(ms(4)));
        assert_eq!(p.plan(false, Some(ms(80)), IDLE), Wait::Sleep(IDLE));
        assert_eq!(p.plan(false, None, IDLE), Wait::Socket(IDLE));
    }

    #[test]
    fn heavy_load_sleeps_and_drains_every_millisecond() {
        let mut p = WakePlanner::default();
        p.on_batch(40);
        p.on_batch(8);
        p.on_block();
        assert!(p.is_busy());
        assert_eq!(p.plan(false, Some(ms(4)), IDLE), Wait::Sleep(POLL_INTERVAL));
        // Never past the deadline.
        let d = Duration::from_micros(300);
        assert_eq!(p.plan(false, Some(d), IDLE), Wait::Sleep(d));
        // Idle again (every stream gone): back to the socket.
        assert_eq!(p.plan(false, None, IDLE), Wait::Socket(IDLE));
    }

    #[test]
    fn a_full_batch_or_a_due_block_means_now() {
        let mut p = WakePlanner::default();
        assert_eq!(p.plan(true, Some(ms(4)), IDLE), Wait::Now);
        assert_eq!(p.plan(false, Some(Duration::ZERO), IDLE), Wait::Now);
        p.on_batch(100);
        p.on_block();
        assert_eq!(p.plan(true, None, IDLE), Wait::Now);
    }

    #[test]
    fn the_mode_follows_the_last_block_only() {
        let mut p = WakePlanner::default();
        p.on_batch(BUSY_PACKETS_PER_BLOCK);
        p.on_block();
        assert!(p.is_busy());
        p.on_batch(BUSY_PACKETS_PER_BLOCK - 1);
        p.on_block();
        assert!(!p.is_busy());
    }
}
