//! Per-source sequence tracking in the style of an RFC 3550 receiver:
//! sequence extension across the 2^32 wrap, duplicate/reorder/loss counting,
//! interarrival jitter and restart detection. Sans-IO: arrival times are
//! passed in, in sample periods of the node's clock.
//!
//! Packets restored from a redundant copy (RFC 2198) count as received
//! for the loss counter (a packet is lost only when neither it nor a copy
//! of it arrived in time) and are counted as `recovered`; a copy of a
//! packet already here, or the packet itself arriving after its copy, is
//! not a duplicate.

use proto::{seq_diff, SeqExtender};

/// Packets remembered for duplicate detection (a bitmap behind the highest).
const HISTORY: u64 = 1024;

/// Consecutive packets far from the stream that confirm a restart. Two
/// were once enough, and two spoofed or replayed packets re-anchored a live
/// stream; a genuine restart sends a steady run, so asking for four costs a
/// restarted sender nothing (its packets are held, then placed exactly),
/// and any packet of the current instance in between breaks the run.
pub const RESTART_RUN: u32 = 4;

/// Limits that decide when a sequence number is too far off to belong to
/// the current stream instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerLimits {
    /// A packet this many or more packets behind the highest starts a
    /// restart probation instead of counting as reordered (at most 1024).
    pub max_misorder: u64,
    /// A packet this many or more packets ahead of the highest starts a
    /// restart probation instead of counting thousands of packets as lost.
    pub max_dropout: u64,
}

impl Default for TrackerLimits {
    fn default() -> Self {
        Self {
            max_misorder: 100,
            max_dropout: 3000,
        }
    }
}

/// What one packet was, relative to the stream so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first packet of the source's first instance.
    First,
    /// Newer than every packet before it; `missing` packets were skipped
    /// (their sequence numbers start at `missing_from`).
    InOrder {
        /// Packets skipped between the previous highest and this one.
        missing: u64,
        /// Sequence number of the first skipped packet.
        missing_from: u32,
    },
    /// Older than the highest seen, not seen before: put back in place.
    Reordered {
        /// The highest sequence number seen when it arrived.
        highest: u32,
    },
    /// Seen before: drop it.
    Duplicate,
    /// Its audio was already restored from a redundant copy: drop it
    /// without counting a duplicate.
    AlreadyRecovered,
    /// Too far from the stream to place; held as packet `held − 1` of a
    /// possible restart's run (`held == 1`: a new run begins and any packets
    /// held before are strays).
    Probation {
        /// Packets of the run so far, this one included.
        held: u32,
    },
    /// Completes a run of [`RESTART_RUN`] consecutive packets: the run's
    /// first packet begins a new stream instance.
    Restart,
}

/// A packet's classification and where it sits in its stream instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// What the packet was.
    pub arrival: Arrival,
    /// Packet index within the current instance (extended seq − first seq);
    /// for `Probation`, the packet's index in the restart's run;
    /// meaningless for `Duplicate`.
    pub index: u64,
}

/// Cumulative counters of one source, over all its stream instances.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrackerCounters {
    /// Packets received, including duplicates and late ones.
    pub received: u64,
    /// Packets expected but never received (expected − unique received).
    pub lost: u64,
    /// Packets received more than once.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Packets not received but restored from a redundant copy.
    pub recovered: u64,
    /// Stream restarts detected.
    pub restarts: u64,
    /// RFC 3550 interarrival jitter, in sample periods.
    pub jitter_samples: f64,
}

/// Sequence tracker of one source.
#[derive(Debug, Clone)]
pub struct SourceTracker {
    limits: TrackerLimits,
    extender: SeqExtender,
    /// Extended number of the instance's first packet.
    base: u64,
    /// Highest extended number seen in this instance.
    highest: u64,
    /// Bit i of word (e / 64) % 16 set when extended number e was received.
    seen: [u64; (HISTORY / 64) as usize],
    /// The same bit set when that packet was restored from a copy.
    recovered: [u64; (HISTORY / 64) as usize],
    unique_in_instance: u64,
    lost_in_past_instances: u64,
    /// Sequence number that would continue a restart's run, and the run's
    /// length so far.
    probation_next: Option<(u32, u32)>,
    /// Transit time of the previous packet (arrival − position), for jitter.
    last_transit: Option<f64>,
    counters: TrackerCounters,
    started: bool,
}

impl SourceTracker {
    /// A tracker that has seen nothing yet.
    pub fn new(limits: TrackerLimits) -> Self {
        Self {
            limits: TrackerLimits {
                max_misorder: limits.max_misorder.clamp(1, HISTORY),
                ..limits
            },
            extender: SeqExtender::new(),
            base: 0,
            highest: 0,
            seen: [0; (HISTORY / 64) as usize],
            recovered: [0; (HISTORY / 64) as usize],
            unique_in_instance: 0,
            lost_in_past_instances: 0,
            probation_next: None,
            last_transit: None,
            counters: TrackerCounters::default(),
            started: false,
        }
    }

    /// Classifies packet `seq`. Jitter is updated separately with
    /// [`SourceTracker::update_jitter`] once the packet's position is known.
    pub fn on_packet(&mut self, seq: u32) -> Classified {
        self.counters.received += 1;
        if !self.started {
            self.start_instance(seq);
            return Classified {
                arrival: Arrival::First,
                index: 0,
            };
        }
        let highest_seq = self.highest as u32;
        let delta = i64::from(seq_diff(seq, highest_seq));
        let before_origin = self.extender.peek(seq).is_none_or(|e| e < self.base);
        let too_far = before_origin
            || delta <= -(self.limits.max_misorder as i64)
            || delta >= self.limits.max_dropout as i64;
        if too_far {
            let held = match self.probation_next {
                Some((next, run)) if next == seq => run + 1,
                _ => 1,
            };
            if held >= RESTART_RUN {
                // The run's first packet begins the new instance.
                self.restart(seq.wrapping_sub(held - 1));
                for k in (0..held).rev() {
                    let ext = self
                        .extender
                        .extend(seq.wrapping_sub(k))
                        .expect("after a fresh anchor");
                    self.highest = ext;
                    self.mark(ext);
                }
                return Classified {
                    arrival: Arrival::Restart,
                    index: self.highest - self.base,
                };
            }
            self.probation_next = Some((seq.wrapping_add(1), held));
            return Classified {
                arrival: Arrival::Probation { held },
                index: u64::from(held - 1),
            };
        }
        self.probation_next = None;
        let ext = self.extender.extend(seq).expect("checked above");
        let arrival = if ext > self.highest {
            let missing = ext - self.highest - 1;
            self.advance_history(ext);
            self.highest = ext;
            self.mark(ext);
            Arrival::InOrder {
                missing,
                missing_from: highest_seq.wrapping_add(1),
            }
        } else if self.is_recovered(ext) {
            let (word, bit) = Self::slot(ext);
            self.recovered[word] &= !(1 << bit);
            Arrival::AlreadyRecovered
        } else if self.is_marked(ext) {
            self.counters.duplicates += 1;
            Arrival::Duplicate
        } else {
            self.mark(ext);
            self.counters.reordered += 1;
            Arrival::Reordered {
                highest: highest_seq,
            }
        };
        Classified {
            arrival,
            index: ext - self.base,
        }
    }

    /// Whether a redundant copy of packet `seq` would restore a packet of
    /// the current instance that has not arrived: one not seen, behind the
    /// highest by less than the reorder limit or ahead of it by less than
    /// the dropout limit, and not before the instance's first packet.
    pub fn wants_copy(&self, seq: u32) -> bool {
        let Some(ext) = self.extender.peek(seq).filter(|_| self.started) else {
            return false;
        };
        if ext < self.base {
            return false;
        }
        if ext > self.highest {
            return ext - self.highest < self.limits.max_dropout;
        }
        self.highest - ext < self.limits.max_misorder && !self.is_marked(ext)
    }

    /// Packet `seq`, which [`SourceTracker::wants_copy`] wanted, was
    /// restored from a copy; returns its index in the instance.
    pub fn on_recovered(&mut self, seq: u32) -> u64 {
        let Some(ext) = self.extender.extend(seq) else {
            return 0;
        };
        if ext > self.highest {
            self.advance_history(ext);
            self.highest = ext;
        }
        self.mark(ext);
        let (word, bit) = Self::slot(ext);
        self.recovered[word] |= 1 << bit;
        self.counters.recovered += 1;
        ext - self.base
    }

    /// Feeds one packet's arrival time and timeline position (both in sample
    /// periods) into the RFC 3550 interarrival jitter estimate.
    pub fn update_jitter(&mut self, arrival: f64, position: f64) {
        let transit = arrival - position;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            self.counters.jitter_samples += (d - self.counters.jitter_samples) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Counters so far, with loss computed for the current instance.
    pub fn counters(&self) -> TrackerCounters {
        TrackerCounters {
            lost: self.lost_in_past_instances + self.lost_in_instance(),
            ..self.counters
        }
    }

    /// Highest sequence number seen in the current instance.
    pub fn highest_seq(&self) -> u32 {
        self.highest as u32
    }

    fn lost_in_instance(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.highest - self.base + 1).saturating_sub(self.unique_in_instance)
    }

    fn start_instance(&mut self, first_seq: u32) {
        self.started = true;
        self.extender.reset();
        let ext = self.extender.extend(first_seq).expect("fresh extender");
        self.base = ext;
        self.highest = ext;
        self.seen = [0; (HISTORY / 64) as usize];
        self.recovered = [0; (HISTORY / 64) as usize];
        self.unique_in_instance = 0;
        self.probation_next = None;
        self.last_transit = None;
        self.mark(ext);
    }

    fn restart(&mut self, first_seq: u32) {
        self.counters.restarts += 1;
        self.begin_new_instance(first_seq);
    }

    /// Starts a new instance at `seq` without counting a restart (the
    /// source re-anchors a stream whose packets persistently miss the
    /// buffer); `seq` is packet 0 of the new instance.
    pub fn reanchor(&mut self, seq: u32) {
        self.begin_new_instance(seq);
    }

    fn begin_new_instance(&mut self, first_seq: u32) {
        self.lost_in_past_instances += self.lost_in_instance();
        self.start_instance(first_seq);
    }

    fn advance_history(&mut self, new_highest: u64) {
        // Clear the bits of numbers that enter the window ahead of us.
        let steps = (new_highest - self.highest).min(HISTORY);
        for e in (new_highest - steps + 1)..=new_highest {
            let (word, bit) = Self::slot(e);
            self.seen[word] &= !(1 << bit);
            self.recovered[word] &= !(1 << bit);
        }
    }

    fn slot(ext: u64) -> (usize, u32) {
        (((ext / 64) % (HISTORY / 64)) as usize, (ext % 64) as u32)
    }

    fn is_marked(&self, ext: u64) -> bool {
        if self.highest - ext >= HISTORY {
            // Older than our memory: treat as already seen.
            return true;
        }
        let (word, bit) = Self::slot(ext);
        self.seen[word] & (1 << bit) != 0
    }

    fn is_recovered(&self, ext: u64) -> bool {
        if self.highest - ext >= HISTORY {
            return false;
        }
        let (word, bit) = Self::slot(ext);
        self.recovered[word] & (1 << bit) != 0
    }

    fn mark(&mut self, ext: u64) {
        let (word, bit) = Self::slot(ext);
        if self.seen[word] & (1 << bit) == 0 {
            self.unique_in_instance += 1;
        }
        self.seen[word] |= 1 << bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> SourceTracker {
        SourceTracker::new(TrackerLimits::default())
    }

    fn feed(t: &mut SourceTracker, seqs: &[u32]) -> Vec<Arrival> {
        seqs.iter().map(|&s| t.on_packet(s).arrival).collect()
    }

    #[test]
    fn in_order_stream_counts_nothing_odd() {
        let mut t = tracker();
        let arrivals = feed(&mut t, &[0, 1, 2, 3]);
        assert_eq!(arrivals[0], Arrival::First);
        assert!(arrivals[1..]
            .iter()
            .all(|a| matches!(a, Arrival::InOrder { missing: 0, .. })));
        let c = t.counters();
        assert_eq!(
            (c.received, c.lost, c.duplicates, c.reordered),
            (4, 0, 0, 0)
        );
    }

    #[test]
    fn reorder_duplicate_and_loss() {
        let mut t = tracker();
        // 0 1 3 2 2 6 7: 3 before 2 (reordered 2), 2 again (duplicate), 4-5 lost.
        let arrivals = feed(&mut t, &[0, 1, 3, 2, 2, 6, 7]);
        assert_eq!(
            arrivals,
            vec![
                Arrival::First,
                Arrival::InOrder {
                    missing: 0,
                    missing_from: 1
                },
                Arrival::InOrder {
                    missing: 1,
                    missing_from: 2
                },
                Arrival::Reordered { highest: 3 },
                Arrival::Duplicate,
                Arrival::InOrder {
                    missing: 2,
                    missing_from: 4
                },
                Arrival::InOrder {
                    missing: 0,
                    missing_from: 7
                },
            ]
        );
        let c = t.counters();
        assert_eq!(
            (c.received, c.lost, c.duplicates, c.reordered),
            (7, 2, 1, 1)
        );
    }

    #[test]
    fn late_filled_gap_reduces_loss() {
        let mut t = tracker();
        feed(&mut t, &[0, 3]);
        assert_eq!(t.counters().lost, 2);
        feed(&mut t, &[1, 2]);
        assert_eq!(t.counters().lost, 0);
        assert_eq!(t.counters().reordered, 2);
    }

    #[test]
    fn copies_fill_gaps_without_counting_loss_or_duplicates() {
        let mut t = tracker();
        feed(&mut t, &[0, 1]);
        // 2 is lost; 3 carries a copy of it.
        assert!(t.wants_copy(2));
        assert_eq!(t.on_recovered(2), 2);
        assert_eq!(
            t.on_packet(3).arrival,
            Arrival::InOrder {
                missing: 0,
                missing_from: 3
            }
        );
        // 3 arrived: a later copy of it is not wanted, nor one of 1, nor
        // one from before the stream began.
        assert!(!t.wants_copy(3) && !t.wants_copy(1) && !t.wants_copy(u32::MAX));
        // 2 itself, late: neither a duplicate nor a reorder.
        assert_eq!(t.on_packet(2).arrival, Arrival::AlreadyRecovered);
        // Once more: now a plain duplicate.
        assert_eq!(t.on_packet(2).arrival, Arrival::Duplicate);
        // 5 lost without a copy, 7 recovered ahead of the highest.
        feed(&mut t, &[4, 6]);
        assert!(t.wants_copy(7));
        t.on_recovered(7);
        assert_eq!(
            t.on_packet(8).arrival,
            Arrival::InOrder {
                missing: 0,
                missing_from: 8
            }
        );
        let c = t.counters();
        assert_eq!(
            (c.received, c.lost, c.recovered, c.duplicates, c.reordered),
            (8, 1, 2, 1, 0)
        );
        // Far ahead: a restart's business, not a copy's.
        assert!(!t.wants_copy(8 + 3000));
    }

    #[test]
    fn indices_are_relative_to_the_first_packet() {
        let mut t = tracker();
        assert_eq!(t.on_packet(500).index, 0);
        assert_eq!(t.on_packet(502).index, 2);
        assert_eq!(t.on_packet(501).index, 1);
    }

    #[test]
    fn wrap_at_2_pow_32() {
        let mut t = tracker();
        let start = u32::MAX - 2;
        let seqs = [start, start + 1, start + 2, 1, 0, 2];
        let classified: Vec<_> = seqs.iter().map(|&s| t.on_packet(s)).collect();
        let indices: Vec<u64> = classified.iter().map(|c| c.index).collect();
        assert_eq!(indices, vec![0, 1, 2, 4, 3, 5]);
        assert_eq!(
            classified[3].arrival,
            Arrival::InOrder {
                missing: 1,
                missing_from: 0
            }
        );
        assert_eq!(classified[4].arrival, Arrival::Reordered { highest: 1 });
        let c = t.counters();
        assert_eq!((c.lost, c.reordered, c.duplicates), (0, 1, 0));
    }

    #[test]
    fn restart_needs_a_run_of_consecutive_packets() {
        let mut t = tracker();
        for s in 0..5000 {
            t.on_packet(s);
        }
        // A restarted streamer: 0, 1, 2 … far behind 4999.
        for (s, held) in (0..3).zip(1..) {
            assert_eq!(t.on_packet(s).arrival, Arrival::Probation { held });
        }
        let c = t.on_packet(3);
        assert_eq!(c.arrival, Arrival::Restart);
        assert_eq!(c.index, 3);
        assert_eq!(
            t.on_packet(4),
            Classified {
                arrival: Arrival::InOrder {
                    missing: 0,
                    missing_from: 4
                },
                index: 4
            }
        );
        let counters = t.counters();
        assert_eq!(counters.restarts, 1);
        assert_eq!(counters.lost, 0, "no millions of missing packets");
        assert_eq!(counters.received, 5005);
    }

    #[test]
    fn stray_packets_do_not_restart() {
        let mut t = tracker();
        for s in 0..5000 {
            t.on_packet(s);
        }
        // Three consecutive injected packets, then the stream goes on.
        for (s, held) in (10..13).zip(1..) {
            assert_eq!(t.on_packet(s).arrival, Arrival::Probation { held });
        }
        assert!(matches!(
            t.on_packet(5000).arrival,
            Arrival::InOrder { missing: 0, .. }
        ));
        // The run is broken: the next injected packet starts again.
        assert_eq!(t.on_packet(13).arrival, Arrival::Probation { held: 1 });
        assert_eq!(t.counters().restarts, 0);
    }

    #[test]
    fn huge_jump_forward_is_a_restart_not_loss() {
        let mut t = tracker();
        feed(&mut t, &[0, 1, 2]);
        let arrivals = feed(&mut t, &[1_000_000, 1_000_001, 1_000_002, 1_000_003]);
        assert_eq!(arrivals[3], Arrival::Restart);
        assert_eq!(t.counters().lost, 0);
    }

    #[test]
    fn restart_at_start_before_origin() {
        let mut t = tracker();
        feed(&mut t, &[5, 6]);
        // 1 lies before the first packet (5): it cannot be reordered, it is
        // a new instance if a run follows.
        let arrivals = feed(&mut t, &[1, 2, 3, 4]);
        assert_eq!(arrivals[3], Arrival::Restart);
        assert_eq!(t.counters().restarts, 1);
    }

    #[test]
    fn reanchor_starts_an_instance_without_counting_a_restart() {
        let mut t = tracker();
        feed(&mut t, &[0, 1, 2, 3]);
        t.reanchor(900);
        assert_eq!(
            t.on_packet(901),
            Classified {
                arrival: Arrival::InOrder {
                    missing: 0,
                    missing_from: 901
                },
                index: 1
            }
        );
        assert_eq!(t.counters().restarts, 0);
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut t = tracker();
        // Packets 441 samples apart; the second arrives 100 samples late.
        t.update_jitter(0.0, 0.0);
        t.update_jitter(541.0, 441.0);
        assert!((t.counters().jitter_samples - 100.0 / 16.0).abs() < 1e-9);
        t.update_jitter(882.0, 882.0);
        let want = 100.0 / 16.0 + (100.0 - 100.0 / 16.0) / 16.0;
        assert!((t.counters().jitter_samples - want).abs() < 1e-9);
    }
}
