//! Ground truth: what the proxy did to each client's datagrams, classified
//! the way the node's tracker (`audionode::tracker`) will see them.
//!
//! Classification happens at release, in the real send order, so it matches
//! what a receiver sees over a path that keeps order (loopback), in the
//! node's order of checks ([`crate::window`]):
//! - one numbered before the client's first released datagram is listed
//!   in `before_first` (the node takes it for a possible restart);
//! - a released datagram whose sequence number was released before is a
//!   **duplicate**;
//! - otherwise, one released after a datagram with a higher sequence number
//!   (serial arithmetic, [`proto::seq_is_newer`]) is **reordered**.
//!
//! Sequence numbers are the mono datagrams' own, or RTP's extended to 32
//! bits (`numbering.rs`), so an RTP stream's wrap from 65 535 to 0 is
//! neither reordering nor duplication here. Datagrams without one (neither
//! kind, or RTCP) are counted in `received`/`forwarded`/`dropped` but
//! listed nowhere.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::window::{ReleaseWindow, Seen};

/// The ground truth of a whole run: written as JSON on exit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The `--seed` of the run.
    pub seed: u64,
    /// One entry per client, in order of first datagram (= RNG stream index).
    pub sources: Vec<SourceTruth>,
}

impl GroundTruth {
    /// The entry of the client whose source address is `client`.
    pub fn source(&self, client: SocketAddr) -> Option<&SourceTruth> {
        self.sources.iter().find(|s| s.client == client)
    }
}

/// What happened to the datagrams of one client.
///
/// When nothing is pending and no send failed:
/// `received + duplicated = forwarded + dropped` (for a source that never
/// sends the same sequence number twice itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceTruth {
    /// The client's source address (where the datagrams came from).
    pub client: SocketAddr,
    /// Local address of the client's upstream socket: the source address
    /// the receiver sees for this client.
    pub upstream: SocketAddr,
    /// Whether the client sends RTP: its `*_seqs` are then RTP sequence
    /// numbers extended to 32 bits (the first as on the wire, 65 535 is
    /// followed by 65 536; the wire number is the listed one mod 65 536),
    /// else the mono datagrams' own. Only written when true, so a mono
    /// client's JSON is what it always was.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rtp: bool,
    /// Datagrams received from the client.
    pub received: u64,
    /// Datagrams sent upstream, duplicates included.
    pub forwarded: u64,
    /// Datagrams dropped: by the loss model or by the rate queue.
    pub dropped: u64,
    /// The part of `dropped` due to the rate queue's 1 s backlog limit.
    pub dropped_by_rate: u64,
    /// Released datagrams whose sequence number had been released before.
    pub duplicated: u64,
    /// Released datagrams, first of their sequence number, released after a
    /// datagram with a higher sequence number.
    pub reordered: u64,
    /// Released datagrams numbered before the first one released (it
    /// overtook them): the node puts these on restart probation, so they
    /// are neither reordered nor duplicates.
    pub before_first: u64,
    /// Datagrams scheduled but not yet released (at exit: never sent).
    pub pending: u64,
    /// Releases whose send failed (not in `forwarded` nor `released_seqs`).
    pub send_errors: u64,
    /// Datagrams that came back on the upstream socket and were relayed to
    /// the client (not impaired).
    pub replies: u64,
    /// Sequence numbers of the dropped datagrams, in arrival order.
    pub dropped_seqs: Vec<u32>,
    /// Sequence numbers of the duplicates, in release order.
    pub duplicated_seqs: Vec<u32>,
    /// Sequence numbers of the reordered datagrams, in release order.
    pub reordered_seqs: Vec<u32>,
    /// Sequence numbers counted in `before_first`, in release order.
    pub before_first_seqs: Vec<u32>,
    /// Every datagram sent upstream, in release order, duplicates included.
    pub released_seqs: Vec<u32>,
}

/// Records one client's truth as datagrams are decided and released.
#[derive(Debug, Clone)]
pub struct SourceRecorder {
    truth: SourceTruth,
    /// Sequence numbers released so far, for the classification.
    window: ReleaseWindow,
}

impl SourceRecorder {
    /// A recorder for `client`, whose upstream socket is bound to `upstream`.
    pub fn new(client: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            truth: SourceTruth {
                client,
                upstream,
                // Filled in by the engine's snapshot: it numbers the
                // datagrams, and so knows the client's format.
                rtp: false,
                received: 0,
                forwarded: 0,
                dropped: 0,
                dropped_by_rate: 0,
                duplicated: 0,
                reordered: 0,
                before_first: 0,
                pending: 0,
                send_errors: 0,
                replies: 0,
                dropped_seqs: Vec::new(),
                duplicated_seqs: Vec::new(),
                reordered_seqs: Vec::new(),
                before_first_seqs: Vec::new(),
                released_seqs: Vec::new(),
            },
            window: ReleaseWindow::new(),
        }
    }

    /// A datagram arrived.
    pub fn on_received(&mut self) {
        self.truth.received += 1;
    }

    /// A datagram (sequence number `seq`, if it has one) was dropped.
    pub fn on_dropped(&mut self, seq: Option<u32>, by_rate: bool) {
        self.truth.dropped += 1;
        if by_rate {
            self.truth.dropped_by_rate += 1;
        }
        self.truth.dropped_seqs.extend(seq);
    }

    /// A datagram was sent upstream: classify it.
    pub fn on_released(&mut self, seq: Option<u32>) {
        self.truth.forwarded += 1;
        let Some(seq) = seq else { return };
        self.truth.released_seqs.push(seq);
        match self.window.release(seq) {
            Seen::Again => {
                self.truth.duplicated += 1;
                self.truth.duplicated_seqs.push(seq);
            }
            Seen::Late => {
                self.truth.reordered += 1;
                self.truth.reordered_seqs.push(seq);
            }
            Seen::BeforeFirst => {
                self.truth.before_first += 1;
                self.truth.before_first_seqs.push(seq);
            }
            Seen::InOrder => {}
        }
    }

    /// Sending a released datagram failed.
    pub fn on_send_error(&mut self) {
        self.truth.send_errors += 1;
    }

    /// A reply was relayed back to the client.
    pub fn on_reply(&mut self) {
        self.truth.replies += 1;
    }

    /// The truth so far, with `pending` datagrams still scheduled.
    pub fn snapshot(&self, pending: u64) -> SourceTruth {
        SourceTruth {
            pending,
            ..self.truth.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> SourceRecorder {
        SourceRecorder::new(
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
        )
    }

    fn release(r: &mut SourceRecorder, seqs: &[u32]) -> SourceTruth {
        for &s in seqs {
            r.on_released(Some(s));
        }
        r.snapshot(0)
    }

    #[test]
    fn same_cases_as_the_node_tracker() {
        // audionode::tracker's reorder_duplicate_and_loss: 0 1 3 2 2 6 7 gives
        // one reordered (2) and one duplicate (the second 2).
        let t = release(&mut recorder(), &[0, 1, 3, 2, 2, 6, 7]);
        assert_eq!((t.forwarded, t.reordered, t.duplicated), (7, 1, 1));
        assert_eq!(t.reordered_seqs, vec![2]);
        assert_eq!(t.duplicated_seqs, vec![2]);
        assert_eq!(t.released_seqs, vec![0, 1, 3, 2, 2, 6, 7]);
        // late_filled_gap_reduces_loss: 0 3 1 2 → both late ones reordered.
        let t = release(&mut recorder(), &[0, 3, 1, 2]);
        assert_eq!(t.reordered_seqs, vec![1, 2]);
    }

    #[test]
    fn duplicate_of_a_late_datagram_is_a_duplicate_not_reordered() {
        // 5 is held, 6 overtakes it, then 5 and its copy arrive.
        let t = release(&mut recorder(), &[4, 6, 5, 5, 7]);
        assert_eq!(t.reordered_seqs, vec![5]);
        assert_eq!(t.duplicated_seqs, vec![5]);
        // A copy released before its original's reordered twin: the first
        // release is the one that counts.
        let t = release(&mut recorder(), &[1, 2, 2, 1, 3]);
        assert_eq!(t.duplicated_seqs, vec![2, 1]);
        assert_eq!(t.reordered_seqs, Vec::<u32>::new());
        let t = release(&mut recorder(), &[1, 3, 3, 2, 2]);
        assert_eq!(t.duplicated_seqs, vec![3, 2]);
        assert_eq!(t.reordered_seqs, vec![2]);
    }

    #[test]
    fn overtaken_first_datagram_is_set_aside() {
        // 0 was held and 1, 2 overtook it: the node anchors at 1.
        let t = release(&mut recorder(), &[1, 2, 0, 0, 3]);
        assert_eq!(t.before_first_seqs, vec![0, 0]);
        assert_eq!((t.reordered, t.duplicated, t.before_first), (0, 0, 2));
    }

    #[test]
    fn duplicate_of_the_highest_is_not_reordered() {
        let t = release(&mut recorder(), &[0, 1, 1, 2]);
        assert_eq!((t.reordered, t.duplicated), (0, 1));
    }

    #[test]
    fn serial_arithmetic_across_the_wrap() {
        let m = u32::MAX;
        // Same shape as the tracker's wrap_at_2_pow_32 test.
        let t = release(&mut recorder(), &[m - 2, m - 1, m, 1, 0, 2]);
        assert_eq!(t.reordered_seqs, vec![0]);
        assert_eq!(t.duplicated, 0);
    }

    #[test]
    fn drops_and_unnumbered_datagrams() {
        let mut r = recorder();
        for _ in 0..5 {
            r.on_received();
        }
        r.on_dropped(Some(3), false);
        r.on_dropped(Some(4), true);
        r.on_dropped(None, false);
        r.on_released(None);
        r.on_released(Some(0));
        r.on_send_error();
        r.on_reply();
        let t = r.snapshot(2);
        assert_eq!(t.received, 5);
        assert_eq!((t.dropped, t.dropped_by_rate), (3, 1));
        assert_eq!(t.dropped_seqs, vec![3, 4]);
        assert_eq!(t.forwarded, 2);
        assert_eq!(t.released_seqs, vec![0]);
        assert_eq!((t.pending, t.send_errors, t.replies), (2, 1, 1));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let mut r = recorder();
        r.on_received();
        r.on_released(Some(0));
        let g = GroundTruth {
            seed: 7,
            sources: vec![r.snapshot(0)],
        };
        let v: serde_json::Value = serde_json::to_value(&g).unwrap();
        assert_eq!(v["seed"], 7);
        let s = &v["sources"][0];
        assert_eq!(s["client"], "127.0.0.1:4000");
        assert_eq!(s["upstream"], "127.0.0.1:5000");
        for key in [
            "received",
            "forwarded",
            "dropped",
            "dropped_by_rate",
            "duplicated",
            "reordered",
        ] {
            assert!(s[key].is_u64(), "{key}");
        }
        assert_eq!(s["released_seqs"], serde_json::json!([0]));
        assert!(s.get("rtp").is_none(), "only RTP clients say so");
        let back: GroundTruth = serde_json::from_value(v).unwrap();
        assert_eq!(back, g);
        assert_eq!(
            back.source("127.0.0.1:4000".parse().unwrap())
                .unwrap()
                .forwarded,
            1
        );
    }
}
