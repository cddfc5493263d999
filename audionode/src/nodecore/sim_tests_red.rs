//! Simulated-clock scenarios for RFC 2198 redundancy: packets lost on a
//! seeded network are restored bit-exact from the next packet's copy and
//! counted as recovered, not lost; copies of packets that arrived are
//! dropped silently; receiver reports still tell the network's loss.

use std::collections::BTreeSet;
use std::time::Duration;

use audioimpair::impairment::ImpairmentConfig;
use audioimpair::loss::LossModel;
use proto::red::{encode_red, RedBlock};
use proto::rtp::RtpHeader;
use proto::rtp_map::PT_RED_DEFAULT;

use super::event::EventKind;
use super::sim::{Netem, Sim};
use super::sim_tests::{addr, assert_same, config, signal, RATE};
use super::stats::SourceStats;

/// Frames per packet (5 ms), what the streamer sends with redundancy.
const FRAMES: usize = 220;

/// RTP packets of `samples` (interleaved, `channels`), each carrying
/// copies of the `depth` packets before it; the L16 type is 11 (mono) or
/// 10 (stereo).
fn red_stream(samples: &[i16], channels: usize, depth: usize, seq0: u16, ts0: u32) -> Vec<Vec<u8>> {
    let pt = if channels == 1 { 11 } else { 10 };
    let per = FRAMES * channels;
    let payloads: Vec<Vec<u8>> = samples
        .chunks(per)
        .map(|c| c.iter().flat_map(|s| s.to_be_bytes()).collect())
        .collect();
    (0..payloads.len())
        .map(|k| {
            let blocks: Vec<RedBlock<'_>> = (1..=depth.min(k))
                .rev()
                .map(|back| RedBlock {
                    payload_type: pt,
                    timestamp_offset: (back * FRAMES) as u16,
                    data: &payloads[k - back],
                })
                .collect();
            let header = RtpHeader {
                marker: k == 0,
                payload_type: PT_RED_DEFAULT,
                seq: seq0.wrapping_add(k as u16),
                timestamp: ts0.wrapping_add((k * FRAMES) as u32),
                ssrc: 0x5eed,
            };
            let mut buf = vec![0u8; 3000];
            let len = encode_red(&header, &blocks, pt, &payloads[k], &mut buf).unwrap();
            buf.truncate(len);
            buf
        })
        .collect()
}

fn at(k: usize) -> Duration {
    Duration::from_nanos((k * FRAMES) as u64 * 1_000_000_000 / u64::from(RATE))
}

fn final_stats(sim: &Sim) -> SourceStats {
    sim.events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::Dropped { stats, .. } => Some(stats),
            _ => None,
        })
        .expect("the stream ended")
}

#[test]
fn five_percent_loss_is_restored_exactly_from_the_next_packet() {
    const PACKETS: usize = 4000;
    let mut sim = Sim::new(config(20.0));
    let mut net = Netem::new(
        ImpairmentConfig {
            loss: LossModel::Bernoulli { p: 0.05 },
            delay: Duration::from_millis(3),
            ..ImpairmentConfig::default()
        },
        2198,
    )
    .rtp();
    let samples = signal(PACKETS * FRAMES, 31);
    let seq0 = 65_000;
    for (k, bytes) in red_stream(&samples, 1, 1, seq0, u32::MAX - 3000)
        .iter()
        .enumerate()
    {
        net.send(&mut sim, at(k), addr(9), bytes);
    }
    net.release_until(&mut sim, Duration::from_secs(30));
    sim.advance_to(Duration::from_secs(30));
    // What the network delivered; the rest it dropped.
    let delivered: BTreeSet<usize> = net
        .delivered_rtp
        .iter()
        .map(|&s| usize::from(s.wrapping_sub(seq0)))
        .collect();
    let dropped: BTreeSet<usize> = (0..PACKETS).filter(|k| !delivered.contains(k)).collect();
    assert_eq!(net.truth().sources[0].dropped, dropped.len() as u64);
    assert!(!dropped.contains(&0), "the seed keeps the first packet");
    let last_arrived = (0..PACKETS).rev().find(|k| !dropped.contains(k)).unwrap();
    let covered: BTreeSet<usize> = dropped
        .iter()
        .copied()
        .filter(|&k| k + 1 < PACKETS && !dropped.contains(&(k + 1)))
        .collect();
    let uncovered = dropped
        .iter()
        .filter(|&&k| k < last_arrived && !covered.contains(&k))
        .count() as u64;
    let stats = final_stats(&sim);
    assert!(
        dropped.len() > 150,
        "about 5 % of {PACKETS}: {}",
        dropped.len()
    );
    assert_eq!(stats.recovered, covered.len() as u64, "{stats}");
    assert_eq!(stats.lost, uncovered, "{stats}");
    assert_eq!(
        (
            stats.duplicates,
            stats.reordered,
            stats.late,
            stats.malformed
        ),
        (0, 0, 0, 0),
        "{stats}"
    );
    let played = PACKETS as f64 - stats.lost as f64;
    assert!(played / PACKETS as f64 >= 0.995, "{stats}");
    // Every packet that arrived or was covered is in the mix, bit-exact.
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    for k in (0..PACKETS).filter(|k| !dropped.contains(k) || covered.contains(k)) {
        let at = start + k * FRAMES;
        assert_same(
            &left[at..at + FRAMES],
            &samples[k * FRAMES..(k + 1) * FRAMES],
        );
    }
}

#[test]
fn two_copies_restore_a_burst_and_late_originals_are_not_duplicates() {
    let mut sim = Sim::new(config(30.0));
    let frames = 40 * FRAMES;
    let stereo: Vec<i16> = signal(frames, 5)
        .into_iter()
        .zip(signal(frames, 6))
        .flat_map(|(l, r)| [l, r])
        .collect();
    let packets = red_stream(&stereo, 2, 2, 10, 77);
    // 5 and 6 lost in a row (7 carries both); 12 and 13 lost with 14
    // (14 carries 12 and 13, 15 carries 13 again); 20 arrives after 21
    // (whose copy restored it first); 30 lost alone.
    let lost = [5, 6, 12, 13, 30];
    let mut order: Vec<usize> = (0..packets.len()).filter(|k| !lost.contains(k)).collect();
    let i = order.iter().position(|&k| k == 20).unwrap();
    order.swap(i, i + 1);
    for &k in &order {
        // Sent on time, except the swapped pair arrives together.
        let t = at(k.max(if k == 20 { 21 } else { 0 }));
        sim.deliver_rtp(t, addr(5), &packets[k]);
    }
    sim.advance_to(Duration::from_secs(3));
    let stats = final_stats(&sim);
    assert_eq!(
        (
            stats.recovered,
            stats.lost,
            stats.duplicates,
            stats.reordered
        ),
        (5 + 1, 0, 0, 0),
        "{stats}"
    );
    let start = sim.start_frames()[0] as usize;
    let (left, right) = (sim.left(), sim.right());
    let want_left: Vec<i16> = stereo.iter().step_by(2).copied().collect();
    let want_right: Vec<i16> = stereo.iter().skip(1).step_by(2).copied().collect();
    assert_same(&left[start..start + frames], &want_left);
    assert_same(&right[start..start + frames], &want_right);
    // No "missing" or "repeated" lines about a stream that lost nothing.
    assert!(sim.events.iter().all(|e| !matches!(
        e.kind,
        EventKind::Missing { .. } | EventKind::Repeated { .. }
    )));
}

#[test]
fn receiver_reports_tell_the_network_loss() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(2000 * FRAMES, 8);
    let packets = red_stream(&samples, 1, 1, 0, 0);
    for (k, bytes) in packets.iter().enumerate() {
        // Every 10th packet lost, each restored by its successor.
        if k % 10 != 5 {
            sim.deliver_rtp(at(k), addr(6), bytes);
        }
    }
    let report = sim.reports.last().expect("a report within 10 s").block;
    let highest = report.highest_seq as usize;
    let lost_before = (0..highest).filter(|k| k % 10 == 5).count() as i32;
    assert_eq!(report.cumulative_lost, lost_before);
    assert!((20..=30).contains(&report.fraction_lost), "{report:?}");
    let stats = sim.snapshot().sources[0].1;
    assert_eq!((stats.lost, stats.recovered), (0, 200), "{stats}");
}
