//! Packet-loss concealment through the whole engine in simulated time: a
//! tone with known losses, every received packet exact in the mix, every
//! lost one filled and fading, the counter and the `Concealed` lines exact,
//! and `--plc off` playing the same gaps as silence.

use std::collections::BTreeSet;
use std::time::Duration;

use proto::plc::PlcMode;

use super::event::EventKind;
use super::sim::{Netem, Sim};
use super::sim_tests::{addr, assert_same, chunk_time, config, final_stats, packet, CHUNK, RATE};

/// 50 ms: the longest stretch of a gap that is concealed.
const FADE: usize = RATE as usize / 20;

/// A 440 Hz tone at a third of full scale.
fn tone(len: usize) -> Vec<i16> {
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            (10_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()).round() as i16
        })
        .collect()
}

fn peak(s: &[i16]) -> i16 {
    s.iter().map(|x| x.saturating_abs()).max().unwrap_or(0)
}

/// The runs of consecutive lost packets, as (first, count).
fn runs(lost: &BTreeSet<usize>) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &k in lost {
        match runs.last_mut() {
            Some((first, n)) if *first + *n == k => *n += 1,
            _ => runs.push((k, 1)),
        }
    }
    runs
}

/// Plays `packets` of the tone with `lost` missing through a node with
/// `mode`; checks every packet and returns the sim.
fn play(mode: PlcMode, packets: usize, lost: &BTreeSet<usize>) -> Sim {
    let mut cfg = config(40.0);
    cfg.source.plc = mode;
    let mut sim = Sim::new(cfg);
    let samples = tone(packets * CHUNK);
    for k in (0..packets).filter(|k| !lost.contains(k)) {
        let chunk = &samples[k * CHUNK..(k + 1) * CHUNK];
        sim.deliver(chunk_time(k), addr(1), &packet(k as u32, chunk));
    }
    sim.advance_to(chunk_time(packets) + Duration::from_secs(2));
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    for k in 0..packets {
        let at = start + k * CHUNK;
        let got = &left[at..at + CHUNK];
        if !lost.contains(&k) {
            assert_same(got, &samples[k * CHUNK..(k + 1) * CHUNK]);
        }
    }
    for (first, n) in runs(lost) {
        let gap = &left[start + first * CHUNK..start + (first + n) * CHUNK];
        if mode == PlcMode::Off {
            assert!(gap.iter().all(|&s| s == 0), "gap at {first} is silence");
            continue;
        }
        // Each lost packet inside the first 50 ms is filled with audio,
        // each later one is quieter than the one before, and after 50 ms
        // the gap is silent.
        let mut before = i16::MAX;
        for (j, packet) in gap.chunks(CHUNK).enumerate() {
            let concealed = (j * CHUNK).min(FADE)..((j + 1) * CHUNK).min(FADE);
            let filled = &packet[..concealed.len()];
            if !filled.is_empty() {
                assert!(peak(filled) > 1_000, "gap at {first}, packet {j} is filled");
                assert!(peak(filled) <= before, "gap at {first}, packet {j} fades");
                before = peak(filled);
            }
            assert!(packet[concealed.len()..].iter().all(|&s| s == 0));
        }
    }
    sim
}

#[test]
fn lost_packets_are_concealed_and_received_ones_stay_exact() {
    // One packet, two, and eight (80 ms: longer than the fade).
    let lost: BTreeSet<usize> = [10, 30, 31, 50, 51, 52, 53, 54, 55, 56, 57].into();
    for mode in [PlcMode::Predict, PlcMode::Repeat] {
        let sim = play(mode, 100, &lost);
        let start = sim.start_frames()[0];
        // The end of the stream fades out as a gap too.
        let concealed = [(10, CHUNK), (30, 2 * CHUNK), (50, FADE), (100, FADE)];
        let lines: Vec<String> = sim
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Concealed { .. }))
            .map(|e| e.kind.to_string())
            .collect();
        let want: Vec<String> = concealed
            .iter()
            .map(|&(k, n)| {
                format!(
                    "Concealed frames first_frame={} frames={n} plc={mode}",
                    start + (k * CHUNK) as u64
                )
            })
            .collect();
        assert_eq!(lines, want);
        let total: usize = concealed.iter().map(|c| c.1).sum();
        assert_eq!(final_stats(&sim).concealed_frames, total as u64);
    }
}

#[test]
fn plc_off_plays_lost_packets_as_silence() {
    let lost: BTreeSet<usize> = [10, 30, 31].into();
    let sim = play(PlcMode::Off, 50, &lost);
    assert_eq!(final_stats(&sim).concealed_frames, 0);
    assert!(!sim
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Concealed { .. })));
}

#[test]
fn seeded_loss_is_concealed_exactly() {
    use audioimpair::impairment::ImpairmentConfig;
    use audioimpair::loss::LossModel;
    let mut cfg = config(40.0);
    cfg.source.plc = PlcMode::Predict;
    let mut sim = Sim::new(cfg);
    let mut net = Netem::new(
        ImpairmentConfig {
            loss: LossModel::Bernoulli { p: 0.08 },
            jitter: Duration::from_millis(5),
            ..ImpairmentConfig::default()
        },
        11,
    );
    let packets = 600;
    let samples = tone(packets * CHUNK);
    for k in 0..packets {
        let chunk = &samples[k * CHUNK..(k + 1) * CHUNK];
        net.send(&mut sim, chunk_time(k), addr(1), &packet(k as u32, chunk));
    }
    net.release_until(&mut sim, Duration::from_secs(20));
    sim.advance_to(Duration::from_secs(20));
    let dropped: BTreeSet<usize> = net.truth().sources[0]
        .dropped_seqs
        .iter()
        .map(|&s| s as usize)
        .collect();
    assert!(dropped.len() > 20, "the seed loses packets");
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    for k in (0..packets).filter(|k| !dropped.contains(k)) {
        let at = start + k * CHUNK;
        assert_same(&left[at..at + CHUNK], &samples[k * CHUNK..(k + 1) * CHUNK]);
    }
    // Lost packets at the very end are part of the end-of-stream fade.
    let mut end = packets;
    while dropped.contains(&(end - 1)) {
        end -= 1;
    }
    let want: usize = runs(&dropped)
        .iter()
        .filter(|(first, _)| *first < end)
        .map(|&(_, n)| (n * CHUNK).min(FADE))
        .sum::<usize>()
        + FADE;
    assert_eq!(final_stats(&sim).concealed_frames, want as u64);
}
