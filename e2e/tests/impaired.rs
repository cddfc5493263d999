//! Scenario 2: three streamers through `audioimpair` (5 % loss, 5 %
//! reorder, 1 % duplicates, 10 ms jitter, fixed seed) into the node. The
//! node's counters and event log agree exactly with the proxy's ground truth
//! for every source, and the recording differs from the offline mix only at
//! the packets that never arrived.

mod common;

use std::collections::HashSet;

use common::*;

const PACKET: usize = 441;

/// The event lines the node must have written for this release order:
/// `Missing packets` for every skip, `Out of order packet` for every late
/// first copy, `Repeated packet` for every second copy (in release order).
fn expected_events(truth: &audioimpair::SourceTruth) -> Vec<String> {
    let before_first: HashSet<u32> = truth.before_first_seqs.iter().copied().collect();
    let mut events = Vec::new();
    let mut released = HashSet::new();
    let mut highest: Option<u32> = None;
    for &seq in &truth.released_seqs {
        match highest {
            None => highest = Some(seq),
            Some(_) if before_first.contains(&seq) && !released.contains(&seq) => {}
            Some(h) if proto::seq_is_newer(seq, h) => {
                let missing = seq.wrapping_sub(h) - 1;
                if missing > 0 {
                    let (first, last) = (h.wrapping_add(1), seq.wrapping_sub(1));
                    events.push(format!(
                        "Missing packets count={missing} seq={first}..={last}"
                    ));
                }
                highest = Some(seq);
            }
            Some(_) if released.contains(&seq) => events.push(format!("Repeated packet seq={seq}")),
            Some(h) => events.push(format!("Out of order packet seq={seq} highest={h}")),
        }
        released.insert(seq);
    }
    events
}

#[test]
fn node_counters_and_log_match_the_proxys_ground_truth() {
    let _serial = serial();
    let dir = temp_dir("impaired");
    // The scenarios' jitter target is well above jitter + reorder holds:
    // nothing is late.
    let rig = Rig::start(&dir, "500", &[]);
    let log = rig.log.clone();
    let ProxiedRun {
        tracks,
        clients,
        truth,
        recording,
    } = stream_through_proxy(
        rig,
        &dir,
        &[
            "--loss",
            "0.05",
            "--reorder",
            "0.05",
            "--duplicate",
            "0.01",
            "--jitter",
            "10",
            "--seed",
            "7",
        ],
        10,
    );
    let mut heard_tracks = Vec::new();
    for (client, track) in clients.iter().zip(&tracks) {
        let t = truth.source(*client).expect("the proxy saw every streamer");
        assert!(
            t.dropped > 0 && t.reordered > 0,
            "the impairments happened: {t:?}"
        );
        assert_eq!(t.send_errors, 0);
        let events = events_of(&log, t.upstream);
        let dropped_line = events.last().unwrap();
        let counter = |k: &str| field(dropped_line, k);
        // Exact agreement, counter by counter.
        let released: HashSet<u32> = t.released_seqs.iter().copied().collect();
        let first = t.released_seqs[0];
        let highest = *t.released_seqs.iter().max_by(|a, b| a.cmp(b)).unwrap();
        let never_released = (first..=highest).filter(|s| !released.contains(s)).count() as u64;
        assert_eq!(counter("received"), t.forwarded, "{dropped_line}");
        assert_eq!(counter("duplicates"), t.duplicated, "{dropped_line}");
        assert_eq!(counter("reordered"), t.reordered, "{dropped_line}");
        assert_eq!(counter("lost"), never_released, "{dropped_line}");
        assert_eq!(counter("stray"), t.before_first, "{dropped_line}");
        assert_eq!(
            (counter("late"), counter("restarts"), counter("malformed")),
            (0, 0, 0),
            "{dropped_line}"
        );
        // Exact agreement, line by line.
        let logged: Vec<String> = events
            .iter()
            .filter(|l| !l.starts_with("New stream") && !l.starts_with("Dropped stream"))
            .cloned()
            .collect();
        assert_eq!(logged, expected_events(t));
        // What was heard: the track minus every packet that never played.
        let before_first: HashSet<u32> = t.before_first_seqs.iter().copied().collect();
        let mut heard = track.clone();
        for (k, chunk) in heard.chunks_mut(PACKET).enumerate() {
            let seq = k as u32;
            if !released.contains(&seq) || before_first.contains(&seq) || seq < first {
                chunk.fill(0);
            }
        }
        let start = start_frames(&log, t.upstream)[0];
        // The stream's timeline begins at its first released packet.
        heard_tracks.push((start, heard[first as usize * PACKET..].to_vec()));
    }
    let placed: Vec<(u64, &[i16])> = heard_tracks
        .iter()
        .map(|(s, t)| (*s, t.as_slice()))
        .collect();
    let want = offline_mix(recording.len(), &placed);
    assert_eq!(
        first_difference(&recording, &want),
        None,
        "the recording differs beyond the lost packets"
    );
}
