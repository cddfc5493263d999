//! Simulated-clock scenarios through the whole engine: packets delivered at
//! chosen times, blocks mixed at their deadlines, output compared sample by
//! sample. No sockets, no sleeps: an hour of audio runs in seconds.

use std::net::SocketAddr;
use std::time::Duration;

use proto::udp_mono::{encode_mono, mono_datagram_len};

use super::engine::{EngineConfig, SourceControls};
use super::event::{DropReason, EventKind};
use super::sim::Sim;
use super::source::{JitterTarget, SourceParams};
use super::tracker::RESTART_RUN;
use super::ControlCommand;

pub(super) const RATE: u32 = 44_100;
pub(super) const CHUNK: usize = 441; // 10 ms
pub(super) const BLOCK: usize = 220;

pub(super) fn config(target_ms: f64) -> EngineConfig {
    EngineConfig {
        source: SourceParams {
            rate: RATE,
            block_frames: BLOCK,
            target: JitterTarget::FixedMs(target_ms),
            drift_warmup: 100,
            drift_band_ms: 3.0,
            events_per_second: 20,
            plc: proto::plc::PlcMode::Off,
        },
        timeout: Duration::from_millis(1000),
        max_sources: 4,
        max_datagram_bytes: 4 + 2 * 8192,
    }
}

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A distinctive, never-constant test signal.
pub(super) fn signal(len: usize, salt: i32) -> Vec<i16> {
    (0..len as i32)
        .map(|i| ((i.wrapping_mul(7919).wrapping_add(salt * 104_729)) % 30_000) as i16)
        .collect()
}

/// Asserts two outputs are equal, reporting only the first difference.
#[track_caller]
pub(super) fn assert_same(got: &[i16], want: &[i16]) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "first difference at sample {i}: got {}, want {}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "lengths differ");
}

pub(super) fn packet(seq: u32, samples: &[i16]) -> Vec<u8> {
    let mut buf = vec![0; mono_datagram_len(samples.len())];
    encode_mono(seq, samples, &mut buf).unwrap();
    buf
}

pub(super) fn chunk_time(k: usize) -> Duration {
    Duration::from_nanos((k * CHUNK) as u64 * 1_000_000_000 / u64::from(RATE))
}

/// Sends `samples` in chunks, packet k at k × 10 ms, in the given order of
/// packet indexes (with repeats for duplicates), each at its own send time
/// plus `extra_delay(k)`.
fn send_script(sim: &mut Sim, from: SocketAddr, samples: &[i16], first_seq: u32, order: &[usize]) {
    for &k in order {
        let chunk = &samples[k * CHUNK..((k + 1) * CHUNK).min(samples.len())];
        let seq = first_seq.wrapping_add(k as u32);
        sim.deliver(chunk_time(k), from, &packet(seq, chunk));
    }
}

/// Output expected when `samples` play from `start` with positions in
/// `silent` (sample ranges) replaced by silence.
fn expect_mono_at(out_len: usize, start: usize, samples: &[i16]) -> Vec<i16> {
    let mut want = vec![0i16; out_len];
    for (i, &s) in samples.iter().enumerate() {
        if start + i < out_len {
            want[start + i] = s;
        }
    }
    want
}

#[test]
fn single_source_is_bit_exact_at_start_frame() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(100 * CHUNK, 1);
    let order: Vec<usize> = (0..100).collect();
    send_script(&mut sim, addr(1), &samples, 0, &order);
    sim.advance_to(Duration::from_secs(3));
    let start = sim.start_frames()[0] as usize;
    assert_eq!(
        start,
        882 + BLOCK,
        "20 ms target plus one block at 44.1 kHz from an idle node"
    );
    let left = sim.left();
    let right: Vec<i16> = sim.out.iter().skip(1).step_by(2).copied().collect();
    assert_same(&left, &expect_mono_at(left.len(), start, &samples));
    assert_eq!(left, right);
    // The stream timed out and the node went silent.
    assert_eq!(sim.core.engine().active_streams(), 0);
    assert!(sim.core.engine().next_deadline().is_none());
    assert!(matches!(
        sim.events.last().unwrap().kind,
        EventKind::Dropped {
            reason: DropReason::Timeout,
            ..
        }
    ));
}

#[test]
fn reorder_goes_back_in_place_and_duplicates_are_dropped() {
    let mut sim = Sim::new(config(40.0));
    let samples = signal(20 * CHUNK, 2);
    // 3 before 2, 7 twice, 11 after 12 and 13.
    let order = [
        0, 1, 3, 2, 4, 5, 6, 7, 7, 8, 9, 10, 12, 13, 11, 14, 15, 16, 17, 18, 19,
    ];
    send_script(&mut sim, addr(1), &samples, 0, &order);
    sim.advance_to(Duration::from_secs(3));
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    assert_same(&left, &expect_mono_at(left.len(), start, &samples));
    let texts = sim.event_texts();
    assert_eq!(
        texts[..7],
        [
            "New stream seq=0 start_frame=1984 samples_per_packet=441",
            "Missing packets count=1 seq=2..=2",
            "Out of order packet seq=2 highest=3",
            "Repeated packet seq=7",
            "Missing packets count=1 seq=11..=11",
            "Out of order packet seq=11 highest=13",
            "Dropped stream reason=timeout received=21 lost=0 duplicates=1 reordered=2 late=0 malformed=0 overflow=0 restarts=0 reanchors=0 size_changes=0 stray=0 jitter_ms=0.00 drift_drops=0 drift_repeats=0 concealed_frames=0 recovered=0",
        ]
    );
}

#[test]
fn loss_runs_become_silence_and_are_reported() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(30 * CHUNK, 3);
    let order: Vec<usize> = (0..30)
        .filter(|k| !(5..9).contains(k) && *k != 20)
        .collect();
    send_script(&mut sim, addr(1), &samples, 0, &order);
    sim.advance_to(Duration::from_secs(3));
    let start = sim.start_frames()[0] as usize;
    let mut heard = samples.clone();
    heard[5 * CHUNK..9 * CHUNK].fill(0);
    heard[20 * CHUNK..21 * CHUNK].fill(0);
    let left = sim.left();
    assert_same(&left, &expect_mono_at(left.len(), start, &heard));
    let texts = sim.event_texts();
    assert!(texts.contains(&"Missing packets count=4 seq=5..=8".to_string()));
    assert!(texts.contains(&"Missing packets count=1 seq=20..=20".to_string()));
    let snapshot_lost = texts.last().unwrap().contains("lost=5 ");
    assert!(snapshot_lost, "{}", texts.last().unwrap());
}

#[test]
fn late_packet_is_counted_and_not_mixed() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(20 * CHUNK, 4);
    let from = addr(1);
    for k in 0..20usize {
        if k == 6 {
            continue;
        }
        sim.deliver(
            chunk_time(k),
            from,
            &packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]),
        );
        if k == 12 {
            // Packet 6 arrives 60 ms after it was sent: its playout time
            // (sent + 20 ms target + one 4.99 ms block) has passed.
            sim.deliver(
                chunk_time(12),
                from,
                &packet(6, &samples[6 * CHUNK..7 * CHUNK]),
            );
        }
    }
    sim.advance_to(Duration::from_secs(3));
    let start = sim.start_frames()[0] as usize;
    let mut heard = samples.clone();
    heard[6 * CHUNK..7 * CHUNK].fill(0);
    let left = sim.left();
    assert_same(&left, &expect_mono_at(left.len(), start, &heard));
    let late: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Late { seq, late_by_ms } => Some((seq, late_by_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, 6);
    // Sent at 60 ms, played at 84.99 ms, arrived at 120 ms: 35.01 ms late.
    assert!((late[0].1 - 35.01).abs() < 0.1, "late by {} ms", late[0].1);
    assert!(sim.event_texts().last().unwrap().contains("late=1 "));
}

#[test]
fn wrap_at_2_pow_32_is_seamless() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(10 * CHUNK, 5);
    // Sequence numbers u32::MAX-4 … 4, with 0 and MAX swapped.
    let order = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9];
    send_script(&mut sim, addr(1), &samples, u32::MAX - 4, &order);
    sim.advance_to(Duration::from_secs(3));
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    assert_same(&left, &expect_mono_at(left.len(), start, &samples));
    let texts = sim.event_texts();
    assert_eq!(
        texts[1],
        "Missing packets count=1 seq=4294967295..=4294967295"
    );
    assert_eq!(texts[2], "Out of order packet seq=4294967295 highest=0");
    assert!(texts
        .last()
        .unwrap()
        .contains("lost=0 duplicates=0 reordered=1"));
}

#[test]
fn restarted_streamer_is_a_new_instance_not_a_loss_storm() {
    let mut sim = Sim::new(config(20.0));
    let from = addr(1);
    let first = signal(300 * CHUNK, 6);
    let second = signal(50 * CHUNK, 7);
    for k in 0..300 {
        sim.deliver(
            chunk_time(k),
            from,
            &packet(k as u32, &first[k * CHUNK..(k + 1) * CHUNK]),
        );
    }
    // The streamer restarts 10 ms later with sequence numbers from 0.
    for k in 0..50 {
        sim.deliver(
            chunk_time(300 + k),
            from,
            &packet(k as u32, &second[k * CHUNK..(k + 1) * CHUNK]),
        );
    }
    sim.advance_to(Duration::from_secs(6));
    let starts = sim.start_frames();
    assert_eq!(starts.len(), 2);
    let left = sim.left();
    let mut want = expect_mono_at(left.len(), starts[0] as usize, &first);
    for (i, &s) in second.iter().enumerate() {
        want[starts[1] as usize + i] = s;
    }
    assert_eq!(
        left, want,
        "both instances play in full, the second at its start_frame"
    );
    // The new instance follows the old one within one block (no gap beyond
    // the mixer's block quantisation).
    // The new instance follows the old one as soon as its run of packets
    // confirms the restart: its first packet waited for the run's last, so
    // it starts at most the run's length after the old instance's end.
    let seam = starts[1] - (starts[0] + first.len() as u64);
    assert!(
        seam < (RESTART_RUN as u64 - 1) * CHUNK as u64,
        "gap of {seam} frames between the instances"
    );
    let texts = sim.event_texts();
    assert_eq!(
        texts[1],
        format!(
            "Stream restarted seq=0 previous_highest=299 start_frame={}",
            starts[1]
        )
    );
    let dropped = texts.last().unwrap();
    assert!(dropped.contains("received=350 lost=0 "), "{dropped}");
    assert!(dropped.contains("restarts=1 "), "{dropped}");
}

#[test]
fn three_sources_mix_to_the_sum_at_their_start_frames() {
    let mut sim = Sim::new(config(20.0));
    let tracks: Vec<Vec<i16>> = (0..3)
        .map(|i| signal(50 * CHUNK, 10 + i).iter().map(|s| s / 4).collect())
        .collect();
    // Source i starts 37 ms × i after the first; interleave deliveries in time order.
    let mut deliveries = Vec::new();
    for i in 0..tracks.len() {
        for k in 0..50 {
            let t = chunk_time(k) + Duration::from_millis(37 * i as u64);
            deliveries.push((t, i, k));
        }
    }
    deliveries.sort();
    for (t, i, k) in deliveries {
        let chunk = &tracks[i][k * CHUNK..(k + 1) * CHUNK];
        sim.deliver(t, addr(100 + i as u16), &packet(k as u32, chunk));
    }
    sim.advance_to(Duration::from_secs(4));
    let starts = sim.start_frames();
    let left = sim.left();
    let mut want = vec![0i32; left.len()];
    for (track, &start) in tracks.iter().zip(&starts) {
        for (i, &s) in track.iter().enumerate() {
            want[start as usize + i] += i32::from(s);
        }
    }
    let want: Vec<i16> = want.into_iter().map(|s| s as i16).collect();
    assert_same(&left, &want);
}

#[test]
fn gains_balance_mute_and_solo_apply_after_a_one_block_ramp() {
    let mut sim = Sim::new(config(20.0));
    let a = vec![1000i16; 40 * CHUNK];
    let b = vec![100i16; 40 * CHUNK];
    for k in 0..40 {
        let t = chunk_time(k);
        sim.deliver(
            t,
            addr(1),
            &packet(k as u32, &a[k * CHUNK..(k + 1) * CHUNK]),
        );
        sim.deliver(
            t,
            addr(2),
            &packet(k as u32, &b[k * CHUNK..(k + 1) * CHUNK]),
        );
        if k == 10 {
            sim.command(ControlCommand::Master(0.5));
            sim.command(ControlCommand::Source(
                addr(1).into(),
                SourceControls {
                    volume: 1.0,
                    balance: -0.5,
                    ..Default::default()
                },
            ));
            sim.command(ControlCommand::Source(
                addr(2).into(),
                SourceControls {
                    mute: true,
                    ..Default::default()
                },
            ));
        }
        if k == 25 {
            sim.command(ControlCommand::Source(
                addr(2).into(),
                SourceControls {
                    solo: true,
                    ..Default::default()
                },
            ));
        }
    }
    sim.advance_to(Duration::from_secs(3));
    // Check two steady frames: one while the first settings hold, one after solo.
    let frame = |sim: &Sim, f: usize| (sim.out[2 * f], sim.out[2 * f + 1]);
    let settled = (chunk_time(18).as_secs_f64() * f64::from(RATE)) as usize + 882;
    // a: master 0.5, balance −0.5 → left 500, right 250; b muted.
    assert_eq!(frame(&sim, settled), (500, 250));
    let solo = (chunk_time(33).as_secs_f64() * f64::from(RATE)) as usize + 882;
    // Only b (soloed) is heard: 100 × master 0.5.
    assert_eq!(frame(&sim, solo), (50, 50));
    // The ramp: no jump from 1100 to 500 between two consecutive frames.
    let left = sim.left();
    // Between both sources' onsets and the first one's end only gains change.
    let playing = &left[1200..882 + 40 * CHUNK - 10];
    let max_step = playing
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .max()
        .unwrap();
    assert!(
        max_step < 20,
        "gain change ramped (largest step {max_step})"
    );
}

#[test]
fn extra_sources_are_refused_and_admitted_ones_unaffected() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(20 * CHUNK, 8);
    for k in 0..20 {
        let chunk = &samples[k * CHUNK..(k + 1) * CHUNK];
        for port in 1..=6 {
            sim.deliver(chunk_time(k), addr(port), &packet(k as u32, chunk));
        }
    }
    assert_eq!(sim.core.engine().active_streams(), 4);
    assert_eq!(sim.core.engine().counters().refused, 2 * 20);
    sim.advance_to(Duration::from_secs(3));
    // The admitted four mix exactly at their start frames (saturating);
    // the refused two add nothing.
    let starts = sim.start_frames();
    assert_eq!(starts.len(), 4);
    let left = sim.left();
    let mut want = vec![0i32; left.len()];
    for &start in &starts {
        for (i, &s) in samples.iter().enumerate() {
            want[start as usize + i] += i32::from(s);
        }
    }
    let want: Vec<i16> = want
        .into_iter()
        .map(|s| s.clamp(-32768, 32767) as i16)
        .collect();
    assert_same(&left, &want);
}

#[test]
fn malformed_datagrams_are_counted_per_source() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(CHUNK, 9);
    sim.deliver(Duration::ZERO, addr(1), &packet(0, &samples));
    sim.deliver(Duration::from_millis(1), addr(1), &[0, 0, 0, 1, 2]); // odd payload
    sim.deliver(Duration::from_millis(2), addr(1), &[0, 0]); // too short
    sim.deliver(Duration::from_millis(3), addr(9), &[1, 2, 3]); // unknown sender
    let snapshot = sim.snapshot();
    let stats = snapshot.source(addr(1)).unwrap();
    assert_eq!((stats.malformed, stats.received), (2, 3));
    assert_eq!(snapshot.node.malformed_unknown, 1);
    assert_eq!(
        sim.core.engine().active_streams(),
        1,
        "garbage does not create a source"
    );
}

/// A source whose clock runs `ppm` fast (positive) or slow against the node's,
/// for one hour of simulated time.
fn drift_for_an_hour(ppm: f64) {
    let mut sim = Sim::new(config(20.0));
    sim.keep_output = false;
    let from = addr(1);
    let chunk = signal(CHUNK, 11);
    let packets = 3600 * 100;
    let period = CHUNK as f64 / f64::from(RATE) / (1.0 + ppm * 1e-6);
    let (mut min_buffered, mut max_buffered) = (f64::MAX, 0.0f64);
    let mut snapshot;
    for k in 0..packets {
        let t = Duration::from_secs_f64(k as f64 * period);
        sim.deliver(t, from, &packet(k as u32, &chunk));
        if k > 1000 && k % 97 == 0 {
            snapshot = sim.snapshot();
            let b = snapshot.source(from).unwrap().buffered_ms;
            min_buffered = min_buffered.min(b);
            max_buffered = max_buffered.max(b);
        }
        sim.events.clear();
    }
    snapshot = sim.snapshot();
    let stats = *snapshot.source(from).unwrap();
    // 200 ppm of an hour at 44.1 kHz is 31752 samples to absorb.
    let expected = (ppm.abs() * 1e-6 * 3600.0 * f64::from(RATE)) as u64;
    let corrections = if ppm > 0.0 {
        stats.drift_drops
    } else {
        stats.drift_repeats
    };
    assert!(
        corrections.abs_diff(expected) < expected / 20,
        "{ppm} ppm: {corrections} corrections, expected about {expected}"
    );
    assert_eq!(stats.late + stats.overflow, 0, "{stats}");
    // Bounded: the buffered delay stays within target + packet + band.
    assert!(
        min_buffered > 5.0 && max_buffered < 40.0,
        "buffered {min_buffered:.1}..{max_buffered:.1} ms"
    );
}

#[test]
fn fast_source_clock_200_ppm_for_an_hour_stays_bounded() {
    drift_for_an_hour(200.0);
}

#[test]
fn slow_source_clock_200_ppm_for_an_hour_stays_bounded() {
    drift_for_an_hour(-200.0);
}

#[test]
fn auto_target_grows_with_measured_jitter_until_nothing_is_late() {
    let mut cfg = config(20.0);
    cfg.source.target = JitterTarget::Auto;
    let mut sim = Sim::new(cfg);
    sim.keep_output = false;
    let from = addr(1);
    let chunk = signal(CHUNK, 12);
    // Each packet is delayed by a pseudo-random 0..30 ms (an LCG: reproducible).
    let mut lcg = 12345u64;
    let mut delayed: Vec<(Duration, u32)> = (0..3000u32)
        .map(|k| {
            lcg = lcg
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let delay = Duration::from_micros((lcg >> 33) % 30_000);
            (chunk_time(k as usize) + delay, k)
        })
        .collect();
    delayed.sort();
    let mut snapshot;
    let mut late_at_20s = None;
    for (t, k) in delayed {
        sim.deliver(t, from, &packet(k, &chunk));
        if late_at_20s.is_none() && t >= Duration::from_secs(20) {
            snapshot = sim.snapshot();
            late_at_20s = Some(snapshot.source(from).unwrap().late);
        }
    }
    snapshot = sim.snapshot();
    let stats = *snapshot.source(from).unwrap();
    // Jitter of a uniform 0..30 ms delay is about 10 ms: the target follows
    // (four times the jitter plus a packet), and after adapting nothing is late.
    assert!((7.0..13.0).contains(&stats.jitter_ms), "{stats}");
    assert!(
        (35.0..65.0).contains(&stats.target_ms),
        "target {} ms",
        stats.target_ms
    );
    assert!(
        stats.late > 0,
        "the initial 20 ms target was too small for this network"
    );
    assert_eq!(
        Some(stats.late),
        late_at_20s,
        "no late packets once adapted: {stats}"
    );
    assert!(
        stats.drift_repeats > 0,
        "the delay was lengthened by repeating samples"
    );
}

#[test]
fn a_returning_source_gets_its_settings_back_within_ten_minutes() {
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(CHUNK, 13);
    let custom = SourceControls {
        volume: 0.25,
        balance: 0.5,
        mute: false,
        solo: true,
    };
    sim.deliver(Duration::ZERO, addr(1), &packet(0, &chunk));
    sim.command(ControlCommand::Source(addr(1).into(), custom));
    // Dropped after the timeout, back 9 minutes later: settings restored.
    sim.advance_to(Duration::from_secs(2));
    assert_eq!(sim.core.engine().active_streams(), 0);
    let back = Duration::from_secs(9 * 60);
    sim.deliver(back, addr(1), &packet(0, &chunk));
    assert_eq!(sim.core.engine().controls(addr(1).into()), Some(custom));
    // Dropped again, back after 11 minutes: defaults.
    sim.advance_to(back + Duration::from_secs(2));
    sim.deliver(
        back + Duration::from_secs(11 * 60),
        addr(1),
        &packet(0, &chunk),
    );
    assert_eq!(
        sim.core.engine().controls(addr(1).into()),
        Some(SourceControls::default())
    );
}

#[test]
fn meters_report_post_fader_and_output_peaks() {
    let mut sim = Sim::new(config(20.0));
    let loud = vec![16384i16; CHUNK];
    sim.deliver(Duration::ZERO, addr(1), &packet(0, &loud));
    // Half volume before the first sample plays (the ramp is over by then).
    sim.command(ControlCommand::Source(
        addr(1).into(),
        SourceControls {
            volume: 0.5,
            ..Default::default()
        },
    ));
    for k in 1..20 {
        sim.deliver(chunk_time(k), addr(1), &packet(k as u32, &loud));
    }
    let meters = sim.meters();
    assert_eq!(
        (meters.left, meters.right, meters.clipped),
        (0.25, 0.25, false)
    );
    assert_eq!(meters.sources, vec![(addr(1).into(), 0.25)]);
    sim.command(ControlCommand::Master(4.0));
    sim.command(ControlCommand::Source(
        addr(1).into(),
        SourceControls::default(),
    ));
    for k in 20..30 {
        sim.deliver(chunk_time(k), addr(1), &packet(k as u32, &loud));
    }
    let meters = sim.meters();
    assert!(meters.clipped);
    assert!(meters.left >= 1.0 - 1e-4 && meters.sources[0].1 >= 1.0);
    // Meters hold the peaks of the last three stats frames only.
    sim.advance_to(chunk_time(30) + Duration::from_millis(200));
    let meters = sim.meters();
    assert_eq!((meters.left, meters.clipped), (0.0, false));
    assert_eq!(meters.sources, vec![(addr(1).into(), 0.0)]);
}

#[test]
fn an_unconfirmed_stray_packet_is_counted_once_superseded() {
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(CHUNK, 14);
    // The stream's first packet overtook packet 3: 3 lies before the origin.
    for (i, seq) in [4u32, 3, 5, 6].into_iter().enumerate() {
        sim.deliver(chunk_time(i), addr(1), &packet(seq, &chunk));
    }
    let snapshot = sim.snapshot();
    let stats = snapshot.source(addr(1)).unwrap();
    assert_eq!(
        (stats.stray, stats.restarts, stats.reordered, stats.lost),
        (1, 0, 0, 0)
    );
}

#[test]
fn streams_arriving_together_start_together() {
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(CHUNK, 15);
    // The first stream starts the mixer (one block is mixed at once); the
    // second arrives 1 ms later, the third 3 ms later.
    for (port, ms) in [(1, 0), (2, 1), (3, 3)] {
        sim.deliver(Duration::from_millis(ms), addr(port), &packet(0, &chunk));
    }
    // Each plays the 20 ms target plus one block (882 + 220 frames) after
    // its own arrival.
    let delay = 882 + BLOCK as u64;
    assert_eq!(sim.start_frames(), vec![delay, delay + 45, delay + 133]);
}

#[test]
fn a_restart_placed_after_the_old_tail_is_not_drift_corrected() {
    let mut sim = Sim::new(config(20.0));
    let from = addr(1);
    let first = signal(300 * CHUNK, 16);
    let second = signal(300 * CHUNK, 17);
    for k in 0..300 {
        sim.deliver(
            chunk_time(k),
            from,
            &packet(k as u32, &first[k * CHUNK..(k + 1) * CHUNK]),
        );
    }
    // Restarted at once (5 ms after the last packet): the new instance must
    // wait for the old one's buffered tail, i.e. it waits longer than the
    // old instance did. That is its timing now, not drift.
    let restart = chunk_time(300) - Duration::from_millis(5);
    for k in 0..300 {
        let t = restart + chunk_time(k);
        sim.deliver(
            t,
            from,
            &packet(k as u32, &second[k * CHUNK..(k + 1) * CHUNK]),
        );
    }
    sim.advance_to(Duration::from_secs(8));
    let starts = sim.start_frames();
    let left = sim.left();
    let mut want = expect_mono_at(left.len(), starts[0] as usize, &first);
    for (i, &s) in second.iter().enumerate() {
        want[starts[1] as usize + i] = s;
    }
    assert_same(&left, &want);
    let dropped = sim.event_texts().pop().unwrap();
    assert!(
        dropped.contains("drift_drops=0 drift_repeats=0"),
        "{dropped}"
    );
}

/// Delivers packets of the given sizes (consecutive seqs from `first_seq`),
/// each at its own real-time send time from `t0`, cut from `samples`.
fn send_sized(
    sim: &mut Sim,
    from: SocketAddr,
    samples: &[i16],
    sizes: &[usize],
    first_seq: u32,
    t0: Duration,
) {
    let mut pos = 0;
    for (k, &size) in sizes.iter().enumerate() {
        let t = t0 + Duration::from_nanos(pos as u64 * 1_000_000_000 / u64::from(RATE));
        let seq = first_seq.wrapping_add(k as u32);
        sim.deliver(t, from, &packet(seq, &samples[pos..pos + size]));
        pos += size;
    }
}

#[test]
fn two_injected_old_packets_change_nothing() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(400 * CHUNK, 21);
    let junk = vec![9_999i16; CHUNK];
    for k in 0..400 {
        sim.deliver(
            chunk_time(k),
            addr(1),
            &packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]),
        );
        if k == 300 {
            // Two consecutive sequence numbers 250 packets old, spoofed
            // from the stream's own address between two genuine packets
            // (they once re-anchored the stream there, and every genuine
            // packet after them overflowed: silence for good).
            let t = chunk_time(k) + Duration::from_millis(1);
            sim.deliver(t, addr(1), &packet(50, &junk));
            sim.deliver(t, addr(1), &packet(51, &junk));
        }
    }
    sim.advance_to(Duration::from_secs(6));
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    assert_same(&left, &expect_mono_at(left.len(), start, &samples));
    let stats = final_stats(&sim);
    assert_eq!(
        (
            stats.stray,
            stats.restarts,
            stats.reanchors,
            stats.overflow,
            stats.late
        ),
        (2, 0, 0, 0, 0)
    );
}

/// The counters in the stream's `Dropped` event.
pub(super) fn final_stats(sim: &Sim) -> crate::stats::SourceStats {
    sim.events
        .iter()
        .rev()
        .find_map(|e| match e.kind {
            EventKind::Dropped { stats, .. } => Some(stats),
            _ => None,
        })
        .expect("the stream was dropped")
}

#[test]
fn a_burst_of_replayed_packets_silences_at_most_the_target_plus_the_burst() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(500 * CHUNK, 22);
    for k in 0..500 {
        let t = chunk_time(k);
        sim.deliver(
            t,
            addr(1),
            &packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]),
        );
        if k == 200 {
            // 100 of the stream's own packets from 1000 packets ago,
            // replayed in one burst right after packet 200.
            for j in 0..100 {
                let old = 100 + j;
                sim.deliver(
                    t + Duration::from_micros(500),
                    addr(1),
                    &packet(old as u32, &samples[old * CHUNK..(old + 1) * CHUNK]),
                );
            }
        }
    }
    sim.advance_to(Duration::from_secs(7));
    let starts = sim.start_frames();
    let left = sim.left();
    // Until the burst arrived (its output position then) the stream is
    // exact; after that the restart it forced resets the drift controller,
    // whose corrections may touch the buffered tail.
    let burst_frame = (chunk_time(200).as_secs_f64() * f64::from(RATE)) as usize;
    let want = expect_mono_at(left.len(), starts[0] as usize, &samples);
    assert_same(&left[..burst_frame], &want[..burst_frame]);
    // The genuine stream is heard again, exactly, from the packet it was
    // re-anchored to; the last start frame is that packet's.
    let Some((seq, start)) = sim.events.iter().rev().find_map(|e| match e.kind {
        EventKind::Reanchored {
            seq, start_frame, ..
        } => Some((seq as usize, start_frame as usize)),
        _ => None,
    }) else {
        panic!("not re-anchored: {:?}", sim.event_texts());
    };
    let resumed = &samples[seq * CHUNK..];
    assert_same(&left[start..start + resumed.len()], resumed);
    // How long the genuine stream was disturbed: from the burst's arrival
    // to the first genuine sample played again. The property to hold is
    // "at most about the target plus the 100 injected packets"; re-anchoring
    // after the target makes it the target, a block and a few packets.
    let out_of_place = start - burst_frame;
    let bound = (20 * RATE as usize / 1000) + BLOCK + 4 * CHUNK;
    assert!(
        out_of_place <= bound,
        "the stream was disturbed for {out_of_place} frames (bound {bound})"
    );
    let stats = final_stats(&sim);
    assert!(stats.reanchors >= 1, "{stats}");
}

#[test]
fn a_restart_with_another_packet_size_is_mixed_exactly() {
    let mut sim = Sim::new(config(20.0));
    let first = signal(200 * CHUNK, 23);
    let second = signal(400 * 220, 24);
    send_sized(&mut sim, addr(1), &first, &[CHUNK; 200], 0, Duration::ZERO);
    // Restarted on the same port with --chunk-ms 5: 220-sample packets.
    send_sized(&mut sim, addr(1), &second, &[220; 400], 0, chunk_time(200));
    sim.advance_to(Duration::from_secs(6));
    let starts = sim.start_frames();
    assert_eq!(starts.len(), 2, "{:?}", sim.event_texts());
    let left = sim.left();
    let mut want = expect_mono_at(left.len(), starts[0] as usize, &first);
    want[starts[1] as usize..starts[1] as usize + second.len()].copy_from_slice(&second);
    assert_same(&left, &want);
    let stats = final_stats(&sim);
    assert_eq!(
        (
            stats.restarts,
            stats.overflow,
            stats.late,
            stats.lost,
            stats.size_changes
        ),
        (1, 0, 0, 0, 0)
    );
}

#[test]
fn a_source_changing_packet_size_is_placed_exactly() {
    let mut sim = Sim::new(config(20.0));
    let mut sizes = vec![441; 100];
    sizes.extend([882; 50]);
    sizes.extend([220; 200]);
    let total: usize = sizes.iter().sum();
    let samples = signal(total, 25);
    send_sized(&mut sim, addr(1), &samples, &sizes, 7, Duration::ZERO);
    sim.advance_to(Duration::from_secs(6));
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    assert_same(&left, &expect_mono_at(left.len(), start, &samples));
    let stats = final_stats(&sim);
    assert_eq!(
        (stats.size_changes, stats.overflow, stats.late, stats.lost),
        (2, 0, 0, 0)
    );
    let texts = sim.event_texts();
    assert!(texts.contains(&"Packet size changed seq=107 samples_per_packet=441->882".to_string()));
    assert!(texts.contains(&"Packet size changed seq=157 samples_per_packet=882->220".to_string()));
}

#[test]
fn a_stalled_mixer_skips_forward_instead_of_bursting() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(100 * CHUNK, 26);
    for k in 0..50 {
        sim.deliver(
            chunk_time(k),
            addr(1),
            &packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]),
        );
    }
    let blocks_before = sim.core.engine().counters().blocks;
    // Held off the CPU for 100 ms: 20 blocks were due meanwhile.
    let stalled = chunk_time(50) + Duration::from_millis(100);
    sim.stall_until(stalled);
    let c = sim.core.engine().counters();
    assert_eq!(c.blocks - blocks_before, 1, "one block, not a burst");
    assert!(c.skipped_blocks >= 19 && c.skipped_blocks <= 21, "{c:?}");
    assert!(sim
        .event_texts()
        .iter()
        .any(|t| t.starts_with("Mixing stalled behind_ms=")));
    // The output clock stays in step with real time: frames mixed plus
    // skipped cover the time since the start.
    let frames = (c.blocks + c.skipped_blocks) * BLOCK as u64;
    let elapsed = (stalled.as_secs_f64() * f64::from(RATE)) as u64;
    assert!(frames <= elapsed + BLOCK as u64 && frames + BLOCK as u64 >= elapsed);
}

#[test]
fn the_event_budget_caps_the_whole_node_and_summarises() {
    let mut cfg = config(20.0);
    cfg.max_sources = 64;
    let mut sim = Sim::with_budget(cfg, 50);
    let chunk = signal(CHUNK, 27);
    // 64 sources, each sending every packet twice: 64 × 20 duplicate lines
    // a second after their own throttles, far over 50 for the node.
    for k in 0..150 {
        for s in 0..64 {
            let p = packet(k as u32, &chunk);
            sim.deliver(chunk_time(k as usize), addr(100 + s), &p);
            sim.deliver(chunk_time(k as usize), addr(100 + s), &p);
        }
    }
    sim.advance_to(chunk_time(150));
    let per_second = |from: u64| {
        sim.events
            .iter()
            .filter(|e| e.at >= Duration::from_secs(from) && e.at < Duration::from_secs(from + 1))
            .count()
    };
    // The window's own lines plus at most one summary.
    assert!(per_second(0) <= 51, "{}", per_second(0));
    let summary = sim
        .event_texts()
        .into_iter()
        .find(|t| t.starts_with("Event log over budget"))
        .expect("a summary");
    assert!(summary.contains("repeated="), "{summary}");
    assert!(sim.stats().node.events_over_budget > 0);
}

#[test]
fn seeded_network_loss_matches_the_ground_truth() {
    use super::sim::Netem;
    use audioimpair::impairment::ImpairmentConfig;
    use audioimpair::loss::LossModel;
    let mut sim = Sim::new(config(40.0));
    let mut net = Netem::new(
        ImpairmentConfig {
            loss: LossModel::Bernoulli { p: 0.05 },
            jitter: Duration::from_millis(5),
            ..ImpairmentConfig::default()
        },
        7,
    );
    let samples = signal(1000 * CHUNK, 28);
    for k in 0..1000 {
        net.send(
            &mut sim,
            chunk_time(k),
            addr(1),
            &packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]),
        );
    }
    net.release_until(&mut sim, Duration::from_secs(20));
    sim.advance_to(Duration::from_secs(20));
    let truth = &net.truth().sources[0];
    let stats = final_stats(&sim);
    let dropped: std::collections::BTreeSet<u32> = truth.dropped_seqs.iter().copied().collect();
    // Lost packets at the end of the stream are never known to be missing.
    let last_sent = (0..1000u32).rev().find(|s| !dropped.contains(s)).unwrap();
    let lost_known = dropped.iter().filter(|&&s| s < last_sent).count() as u64;
    assert_eq!(stats.lost, lost_known);
    assert_eq!((stats.late, stats.overflow), (0, 0));
    // Every packet that arrived is in the mix, exactly.
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    for k in 0..1000usize {
        let at = start + k * CHUNK;
        let got = &left[at..at + CHUNK];
        if dropped.contains(&(k as u32)) {
            assert!(got.iter().all(|&s| s == 0), "lost packet {k} is silence");
        } else {
            assert_same(got, &samples[k * CHUNK..(k + 1) * CHUNK]);
        }
    }
}

#[test]
fn a_sender_two_percent_slow_is_held_without_late_packets() {
    // The original streamer sleeps 25 ms after each 1102-sample send: on a
    // busy machine it runs at about 43 300 Hz, 1.8 % slow.
    let mut cfg = config(20.0);
    cfg.source.drift_warmup = 25;
    let mut sim = Sim::new(cfg);
    let per = 1102;
    let samples = signal(600 * per, 29);
    for k in 0..600 {
        let t = Duration::from_secs_f64(k as f64 * per as f64 / 43_300.0);
        sim.deliver(
            t,
            addr(1),
            &packet(k as u32, &samples[k * per..(k + 1) * per]),
        );
    }
    sim.advance_to(Duration::from_secs(20));
    let stats = final_stats(&sim);
    assert_eq!(
        (stats.late, stats.reanchors, stats.lost),
        (0, 0, 0),
        "{stats}"
    );
    assert!(stats.drift_repeats > 4000, "{stats}");
}

#[test]
fn a_sender_at_another_rate_is_named_but_a_slow_streamer_is_not() {
    // 48 kHz audio into a 44.1 kHz node: 480 samples every 10 ms.
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(480, 1);
    for k in 0..1000u32 {
        let t = Duration::from_millis(u64::from(k) * 10);
        sim.deliver(t, addr(1), &packet(k, &chunk));
    }
    let texts = sim.event_texts();
    let mismatch: Vec<_> = texts
        .iter()
        .filter(|t| t.starts_with("Rate mismatch"))
        .collect();
    assert_eq!(
        mismatch,
        vec!["Rate mismatch: sender runs at ~48000 Hz, node at 44100 Hz (set the same --sample-rate on both)"],
        "{texts:?}"
    );
    assert_eq!(sim.snapshot().sources[0].1.rate_mismatch_hz, 48_000);
    // The original streamer runs up to 3 % slow: not a mismatch.
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(CHUNK, 2);
    for k in 0..1000u32 {
        let t = Duration::from_micros(u64::from(k) * 10_300);
        sim.deliver(t, addr(2), &packet(k, &chunk));
    }
    assert!(!sim.event_texts().iter().any(|t| t.starts_with("Rate")));
    assert_eq!(sim.snapshot().sources[0].1.rate_mismatch_hz, 0);
}

#[test]
fn a_stereo_stream_without_sequence_numbers_is_named_once() {
    // The recorder's format sent to the node: each datagram's first left
    // and right samples read as a sequence number.
    let mut sim = Sim::new(config(20.0));
    let audio = signal(40 * CHUNK * 2, 3);
    for k in 0..40usize {
        let frames = &audio[k * 2 * CHUNK..(k + 1) * 2 * CHUNK];
        let mut bytes = vec![0u8; 4 * CHUNK];
        proto::encode_stereo(frames, &mut bytes).unwrap();
        sim.deliver(chunk_time(k), addr(1), &bytes);
    }
    let texts = sim.event_texts();
    let said: Vec<_> = texts
        .iter()
        .filter(|t| t.starts_with("No sequence numbers"))
        .collect();
    assert_eq!(said.len(), 1, "{texts:?}");
    // A real stream, even one that starts with a restart-like jump, is not.
    let mut sim = Sim::new(config(20.0));
    let samples = signal(40 * CHUNK, 4);
    let order: Vec<usize> = (0..40).collect();
    send_script(&mut sim, addr(2), &samples, u32::MAX - 5, &order);
    assert!(!sim
        .event_texts()
        .iter()
        .any(|t| t.starts_with("No sequence")));
}

#[test]
fn packets_that_waited_for_a_starting_node_are_not_skipped() {
    // A node started while a streamer already sends: its first packets
    // waited 40 ms in the socket before the node read them. The mixing
    // clock starts when the node can mix; nothing is skipped.
    let mut sim = Sim::new(config(20.0));
    let samples = signal(60 * CHUNK, 7);
    let read_at = chunk_time(4);
    for k in 0..5 {
        let bytes = packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]);
        let packet = super::ingress::decode_mono(&bytes, 1 << 16).unwrap();
        sim.core.handle_input(super::Input::Packet {
            arrived: chunk_time(k),
            read_at,
            from: addr(1),
            packet,
        });
    }
    for k in 5..60 {
        let bytes = packet(k as u32, &samples[k * CHUNK..(k + 1) * CHUNK]);
        sim.deliver(chunk_time(k), addr(1), &bytes);
    }
    sim.advance_to(Duration::from_secs(3));
    assert!(
        !sim.event_texts()
            .iter()
            .any(|t| t.starts_with("Mixing stalled")),
        "{:?}",
        sim.event_texts()
    );
    assert_eq!(sim.snapshot().node.skipped_blocks, 0);
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    assert_same(&left, &expect_mono_at(left.len(), start, &samples));
}
