//! Release scheduler: datagrams waiting for their release time.
//!
//! A min-heap on (release time, insertion number): datagrams due at the same
//! moment leave in the order they were scheduled, so an original always
//! precedes a duplicate released at the same instant, and a run without
//! delay keeps the arrival order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

/// A datagram waiting to be sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// When to send it (time since the proxy started).
    pub release: Duration,
    /// Index of the client it came from.
    pub client: usize,
    /// The sequence number the ground truth lists it under, given at
    /// arrival (so a copy has its original's).
    pub seq: Option<u32>,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// Tie-breaker: insertion order.
    order: u64,
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (other.release, other.order).cmp(&(self.release, self.order))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Datagrams ordered by release time.
#[derive(Debug, Default)]
pub struct Scheduler {
    heap: BinaryHeap<Scheduled>,
    next_order: u64,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `payload` from `client`, numbered `seq`, for `release`.
    pub fn push(&mut self, release: Duration, client: usize, seq: Option<u32>, payload: Vec<u8>) {
        let order = self.next_order;
        self.next_order += 1;
        self.heap.push(Scheduled {
            release,
            client,
            seq,
            payload,
            order,
        });
    }

    /// The earliest release time waiting, if any.
    pub fn next_release(&self) -> Option<Duration> {
        self.heap.peek().map(|s| s.release)
    }

    /// Removes and returns the earliest datagram if it is due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<Scheduled> {
        if self.heap.peek()?.release <= now {
            self.heap.pop()
        } else {
            None
        }
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Datagrams waiting, per client (index = client).
    pub fn pending_per_client(&self, clients: usize) -> Vec<u64> {
        let mut out = vec![0; clients];
        for s in &self.heap {
            if let Some(n) = out.get_mut(s.client) {
                *n += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn releases_in_time_order_ties_in_insertion_order() {
        let mut s = Scheduler::new();
        s.push(30 * MS, 0, None, vec![1]);
        s.push(10 * MS, 0, None, vec![2]);
        s.push(10 * MS, 1, None, vec![3]);
        s.push(20 * MS, 0, None, vec![4]);
        s.push(10 * MS, 0, None, vec![5]);
        assert_eq!(s.len(), 5);
        assert_eq!(s.next_release(), Some(10 * MS));
        assert_eq!(s.pop_due(9 * MS), None);
        let due: Vec<u8> = std::iter::from_fn(|| s.pop_due(20 * MS))
            .map(|d| d.payload[0])
            .collect();
        assert_eq!(due, vec![2, 3, 5, 4]);
        assert_eq!(s.pending_per_client(2), vec![1, 0]);
        assert_eq!(s.pop_due(Duration::MAX).unwrap().payload, vec![1]);
        assert!(s.is_empty());
        assert_eq!(s.next_release(), None);
    }
}
