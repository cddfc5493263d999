//! A byte token bucket in front of a FIFO queue: the `--rate` bottleneck.
//!
//! Sans-IO: because the queue is FIFO and the bucket refills at a known
//! rate, the moment a datagram leaves the queue is known when it arrives.
//! [`TokenBucket::admit`] returns that moment (or a drop when the wait would
//! exceed the backlog limit), so nothing has to be re-examined later.

use std::time::Duration;

/// Longest a datagram may wait in the queue; beyond it the datagram is dropped.
pub const MAX_BACKLOG: Duration = Duration::from_secs(1);

/// Bucket depth: the larger of this many bytes and [`BURST_TIME`] worth of
/// rate, so a single full-size datagram never waits on an idle link.
pub const MIN_BUCKET_BYTES: f64 = 1500.0;

/// Bucket depth in time at the configured rate (see [`MIN_BUCKET_BYTES`]).
pub const BURST_TIME: Duration = Duration::from_millis(10);

/// Token bucket on bytes, refilled continuously at a fixed rate.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Refill rate, bytes per second.
    bytes_per_sec: f64,
    /// Bucket depth in bytes.
    capacity: f64,
    /// Tokens in the bucket at `as_of`.
    tokens: f64,
    /// Departure time of the last admitted datagram (the queue is empty
    /// after it), and the time `tokens` refers to.
    as_of: Duration,
}

impl TokenBucket {
    /// A full bucket refilling at `kbps` kilobits (1000 bits) per second.
    ///
    /// # Panics
    /// If `kbps` is not a positive finite number (the config validates it).
    pub fn new(kbps: f64) -> Self {
        assert!(kbps.is_finite() && kbps > 0.0, "rate must be positive");
        let bytes_per_sec = kbps * 1000.0 / 8.0;
        let capacity = MIN_BUCKET_BYTES.max(bytes_per_sec * BURST_TIME.as_secs_f64());
        Self {
            bytes_per_sec,
            capacity,
            tokens: capacity,
            as_of: Duration::ZERO,
        }
    }

    /// Bucket depth in bytes.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// Queues a datagram of `len` bytes arriving at `now`: returns when it
    /// leaves the queue, or `None` (and changes nothing) when it would wait
    /// longer than [`MAX_BACKLOG`].
    pub fn admit(&mut self, now: Duration, len: usize) -> Option<Duration> {
        // It can start competing for tokens once it is at the queue's head.
        let start = now.max(self.as_of);
        let refill = (start - self.as_of).as_secs_f64() * self.bytes_per_sec;
        let tokens = (self.tokens + refill).min(self.capacity);
        let need = len as f64;
        let (depart, left) = if tokens >= need {
            (start, tokens - need)
        } else {
            let wait = Duration::from_secs_f64((need - tokens) / self.bytes_per_sec);
            (start + wait, 0.0)
        };
        if depart - now > MAX_BACKLOG {
            return None;
        }
        self.tokens = left;
        self.as_of = depart;
        Some(depart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(1)
    }

    #[test]
    fn idle_link_passes_at_once() {
        // 80 kbit/s = 10 000 B/s; bucket = max(1500, 100) = 1500 B.
        let mut b = TokenBucket::new(80.0);
        assert_eq!(b.capacity(), 1500.0);
        assert_eq!(b.admit(Duration::ZERO, 1000), Some(Duration::ZERO));
        // 1 s later the bucket is full again.
        assert_eq!(b.admit(1000 * MS, 1000), Some(1000 * MS));
    }

    #[test]
    fn a_burst_is_spread_at_the_rate() {
        let mut b = TokenBucket::new(80.0);
        let departs: Vec<Duration> = (0..4)
            .map(|_| b.admit(Duration::ZERO, 1000).unwrap())
            .collect();
        // 1500 tokens: #0 at 0 (500 left), #1 needs 500 more = 50 ms,
        // then every 1000 B takes 100 ms.
        let want = [0, 50, 150, 250].map(|ms| ms * MS);
        for (d, w) in departs.iter().zip(want) {
            assert!(close(*d, w), "{departs:?}");
        }
    }

    #[test]
    fn steady_traffic_under_the_rate_never_waits() {
        // 100 datagrams/s of 500 B = 400 kbit/s through a 500 kbit/s bucket.
        let mut b = TokenBucket::new(500.0);
        for i in 0..1000u32 {
            let now = 10 * MS * i;
            assert_eq!(b.admit(now, 500), Some(now));
        }
    }

    #[test]
    fn overload_builds_a_queue_then_drops_beyond_one_second() {
        // 10 000 B/s offered 20 000 B/s: the backlog grows 0.5 s per second.
        let mut b = TokenBucket::new(80.0);
        let mut dropped = Vec::new();
        let mut last_depart = Duration::ZERO;
        for i in 0..400u32 {
            let now = 50 * MS * i; // 1000 B every 50 ms
            match b.admit(now, 1000) {
                Some(d) => {
                    assert!(d >= now && d - now <= MAX_BACKLOG);
                    assert!(d >= last_depart, "FIFO");
                    last_depart = d;
                }
                None => dropped.push(i),
            }
        }
        // Datagram k leaves at 0.1·k − 0.05 s and arrived at 0.05·k s: its
        // wait exceeds 1 s from k = 22 on.
        assert_eq!(dropped[0], 22, "{dropped:?}");
        // Then about half the datagrams are dropped; the link runs at 10 kB/s.
        let late = dropped.iter().filter(|&&i| i >= 100).count();
        assert!((140..=160).contains(&late), "{late}");
    }

    #[test]
    fn a_dropped_datagram_costs_nothing() {
        let mut b = TokenBucket::new(8.0); // 1000 B/s, bucket 1500
        assert_eq!(b.admit(Duration::ZERO, 1500), Some(Duration::ZERO));
        // 1100 B needs 1.1 s of refill: dropped, state unchanged.
        assert_eq!(b.admit(Duration::ZERO, 1100), None);
        let d = b.admit(Duration::ZERO, 900).unwrap();
        assert!(close(d, 900 * MS), "{d:?}");
    }

    #[test]
    fn bucket_depth_grows_with_rate() {
        // 10 Mbit/s = 1.25 MB/s; 10 ms of it = 12 500 B.
        assert_eq!(TokenBucket::new(10_000.0).capacity(), 12_500.0);
    }
}
