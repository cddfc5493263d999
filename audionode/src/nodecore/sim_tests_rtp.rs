//! Simulated-clock scenarios for RTP sources: placement by timestamp,
//! stereo mixing, SSRC identity across ports, 16-bit sequence wrap, RTCP
//! names, BYE and receiver reports, refused formats. Output compared
//! sample by sample.

use std::time::Duration;

use proto::rtp::{encode_l16, RtpHeader};

use super::engine::SourceControls;
use super::event::{DropReason, EventKind};
use super::name::SourceName;
use super::sim::Sim;
use super::sim_tests::{addr, assert_same, config, signal, BLOCK, CHUNK, RATE};
use super::source_id::SourceId;
use super::{ControlCommand, RtcpInput, REPORT_INTERVAL};

fn rtp(pt: u8, ssrc: u32, seq: u16, timestamp: u32, samples: &[i16]) -> Vec<u8> {
    let mut buf = vec![0; 12 + 2 * samples.len()];
    let header = RtpHeader {
        marker: false,
        payload_type: pt,
        seq,
        timestamp,
        ssrc,
    };
    encode_l16(&header, samples, &mut buf).unwrap();
    buf
}

fn at(frames: usize) -> Duration {
    Duration::from_nanos(frames as u64 * 1_000_000_000 / u64::from(RATE))
}

fn placed(out_len: usize, start: usize, samples: &[i16]) -> Vec<i16> {
    let mut want = vec![0i16; out_len];
    for (i, &s) in samples.iter().enumerate() {
        if start + i < out_len {
            want[start + i] = s;
        }
    }
    want
}

#[test]
fn mono_rtp_is_placed_by_timestamp_not_by_sequence() {
    // Packets of varying size, reordered, with a timestamp gap (the sender
    // sent nothing for 300 frames: silence there) and random initial
    // sequence number and timestamp near their wraps.
    let mut sim = Sim::new(config(20.0));
    let samples = signal(40 * CHUNK, 3);
    let sizes = [441, 300, 582, 441, 100, 782];
    let (mut cuts, mut pos) = (Vec::new(), 0);
    let mut k = 0;
    while pos < samples.len() {
        let len = sizes[k % sizes.len()].min(samples.len() - pos);
        cuts.push((pos, len));
        pos += len;
        k += 1;
    }
    let ts0: u32 = u32::MAX - 5000;
    let seq0: u16 = 65_530;
    let gap_after = 10; // packets after the 10th start 300 frames later
    let mut order: Vec<usize> = (0..cuts.len()).collect();
    order.swap(4, 5);
    order.swap(20, 21);
    for &i in &order {
        let (p, len) = cuts[i];
        let shift = if i > gap_after { 300 } else { 0 };
        let ts = ts0.wrapping_add((p + shift) as u32);
        let bytes = rtp(
            11,
            0xabc,
            seq0.wrapping_add(i as u16),
            ts,
            &samples[p..p + len],
        );
        sim.deliver_rtp(at(p + shift), addr(7000), &bytes);
    }
    sim.advance_to(Duration::from_secs(3));
    let start = sim.start_frames()[0] as usize;
    let mut timeline = samples.clone();
    let (gap_at, _) = cuts[gap_after + 1];
    timeline.splice(gap_at..gap_at, std::iter::repeat_n(0, 300));
    let left = sim.left();
    assert_same(&left, &placed(left.len(), start, &timeline));
    assert_eq!(left, sim.right(), "mono is centred");
    let dropped = sim
        .events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::Dropped { stats, .. } => Some(stats),
            _ => None,
        })
        .unwrap();
    // Sequence numbers wrapped at 2^16 without a loss or a restart.
    assert_eq!(
        (
            dropped.lost,
            dropped.reordered,
            dropped.restarts,
            dropped.late
        ),
        (0, 2, 0, 0),
        "{dropped}"
    );
    assert_eq!(dropped.received, cuts.len() as u64);
    assert_eq!(sim.events[0].source, SourceId::Ssrc(0xabc));
    assert!(sim.event_texts()[0].ends_with("channels=1 from=127.0.0.1:7000"));
}

#[test]
fn stereo_rtp_stays_stereo_and_balance_is_a_stereo_balance() {
    let mut sim = Sim::new(config(20.0));
    let frames = 20 * CHUNK;
    let left_in = signal(frames, 1);
    let right_in = signal(frames, 2);
    let interleaved: Vec<i16> = left_in
        .iter()
        .zip(&right_in)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let send = |sim: &mut Sim, range: std::ops::Range<usize>| {
        for k in range {
            let bytes = rtp(
                10,
                0x5,
                k as u16,
                (k * CHUNK) as u32,
                &interleaved[2 * k * CHUNK..2 * (k + 1) * CHUNK],
            );
            sim.deliver_rtp(at(k * CHUNK), addr(7001), &bytes);
        }
    };
    send(&mut sim, 0..10);
    let start = sim.start_frames()[0] as usize;
    // Balance hard left from frame 10 × CHUNK on (set before those
    // packets play): the right channel goes silent, the left keeps the
    // source's left channel at full gain.
    sim.advance_to(at(10 * CHUNK));
    let switch_frame = sim.core.engine().frames_mixed() as usize;
    sim.command(ControlCommand::Source(
        SourceId::Ssrc(5),
        SourceControls {
            balance: -1.0,
            ..SourceControls::default()
        },
    ));
    send(&mut sim, 10..20);
    sim.advance_to(Duration::from_secs(2));
    let (left, right) = (sim.left(), sim.right());
    let want_left = placed(left.len(), start, &left_in);
    let want_right = placed(right.len(), start, &right_in);
    assert_same(&left, &want_left);
    // The right channel: exact before the change, ramped down over the
    // block after it (never louder than the source), silent from then on.
    assert_same(&right[..switch_frame], &want_right[..switch_frame]);
    for i in switch_frame..switch_frame + BLOCK {
        assert!(
            right[i].unsigned_abs() <= want_right[i].unsigned_abs(),
            "frame {i}"
        );
    }
    assert!(right[switch_frame + BLOCK..].iter().all(|&r| r == 0));
    assert!(want_right[switch_frame + BLOCK..start + frames]
        .iter()
        .any(|&r| r != 0));
}

#[test]
fn an_ssrc_keeps_its_identity_when_the_sender_changes_port() {
    let mut sim = Sim::new(config(20.0));
    let samples = signal(30 * CHUNK, 9);
    for k in 0..30 {
        let from = if k < 15 { addr(7100) } else { addr(7200) };
        let bytes = rtp(
            97,
            0x77,
            k as u16,
            (k * CHUNK) as u32,
            &samples[k * CHUNK..(k + 1) * CHUNK],
        );
        // 97 is L16/<rate>/1 by default.
        sim.deliver_rtp(at(k * CHUNK), from, &bytes);
    }
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.sources.len(), 1, "one source, not two");
    assert_eq!(snapshot.sources[0].0, SourceId::Ssrc(0x77));
    assert_eq!(snapshot.sources[0].1.received, 30);
    assert_eq!(sim.stats().sources()[0].from, addr(7200));
    sim.advance_to(Duration::from_secs(3));
    let start = sim.start_frames()[0] as usize;
    let left = sim.left();
    assert_same(&left, &placed(left.len(), start, &samples));
}

#[test]
fn a_name_sent_before_the_first_packet_names_the_stream_when_it_joins() {
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(CHUNK, 1);
    // The sender's SDES (NAME, then its CNAME again) is read before its
    // first RTP packet; another stream's name never gets a stream.
    for (ssrc, name, cname) in [
        (9, "bass", false),
        (9, "user@host", true),
        (4, "drums", false),
    ] {
        sim.rtcp(
            Duration::ZERO,
            addr(7301),
            RtcpInput::Name {
                ssrc,
                name: SourceName::new(name),
                cname,
            },
        );
    }
    sim.deliver_rtp(at(10), addr(7300), &rtp(11, 9, 0, 0, &chunk));
    assert_eq!(sim.stats().sources()[0].name.as_str(), "bass");
    assert!(sim
        .event_texts()
        .contains(&r#"Named name="bass" by=rtcp"#.to_string()));
    // A name kept too long is not given to a stream that starts later.
    sim.advance_to(at(11 * 44_100));
    sim.deliver_rtp(at(11 * 44_100), addr(7310), &rtp(11, 4, 0, 0, &chunk));
    let sources = sim.stats().sources().to_vec();
    let late = sources.iter().find(|s| s.id == SourceId::Ssrc(4)).unwrap();
    assert_eq!(late.name.as_str(), "");
}

#[test]
fn names_from_rtcp_and_the_operator_and_bye_ends_the_stream() {
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(CHUNK, 1);
    sim.deliver_rtp(Duration::ZERO, addr(7300), &rtp(11, 9, 0, 0, &chunk));
    sim.rtcp(
        at(10),
        addr(7301),
        RtcpInput::Name {
            ssrc: 9,
            name: SourceName::new("user@host"),
            cname: true,
        },
    );
    assert_eq!(sim.stats().sources()[0].name.as_str(), "user@host");
    sim.rtcp(
        at(20),
        addr(7301),
        RtcpInput::Name {
            ssrc: 9,
            name: SourceName::new("bass"),
            cname: false,
        },
    );
    // A later CNAME does not replace the NAME.
    sim.rtcp(
        at(30),
        addr(7301),
        RtcpInput::Name {
            ssrc: 9,
            name: SourceName::new("user@host"),
            cname: true,
        },
    );
    assert_eq!(sim.stats().sources()[0].name.as_str(), "bass");
    let operator = addr(9999);
    sim.command(ControlCommand::Name {
        id: SourceId::Ssrc(9),
        name: SourceName::new("Bass DI"),
        by: operator,
    });
    // The operator's name sticks against the sender's.
    sim.rtcp(
        at(40),
        addr(7301),
        RtcpInput::Name {
            ssrc: 9,
            name: SourceName::new("bass"),
            cname: false,
        },
    );
    assert_eq!(sim.stats().sources()[0].name.as_str(), "Bass DI");
    let texts = sim.event_texts();
    assert!(texts.contains(&r#"Named name="user@host" by=rtcp"#.to_string()));
    assert!(texts.contains(&r#"Named name="bass" by=rtcp"#.to_string()));
    assert!(texts.contains(&r#"Named name="Bass DI" by=127.0.0.1:9999"#.to_string()));
    sim.rtcp(at(100), addr(7301), RtcpInput::Bye { ssrc: 9 });
    // What it sent plays out first (a target and a block: 1102 frames).
    assert_eq!(sim.core.engine().active_streams(), 1);
    sim.advance_to(at(1200));
    assert_eq!(sim.core.engine().active_streams(), 1);
    sim.advance_to(at(CHUNK + 1102 + 2 * BLOCK));
    assert_eq!(sim.core.engine().active_streams(), 0);
    assert!(matches!(
        sim.events.last().unwrap().kind,
        EventKind::Dropped {
            reason: DropReason::Closed,
            ..
        }
    ));
    // It comes back under its name.
    sim.deliver_rtp(at(3000), addr(7300), &rtp(11, 9, 1, 441, &chunk));
    assert_eq!(sim.stats().sources()[0].name.as_str(), "Bass DI");
}

#[test]
fn receiver_reports_say_what_the_node_saw() {
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(CHUNK, 4);
    let sender_rtcp = addr(7401);
    // 1000 packets (10 s), every 10th lost; a sender report after 1 s.
    for k in 0..1000usize {
        if k == 100 {
            sim.rtcp(
                at(k * CHUNK),
                sender_rtcp,
                RtcpInput::SenderReport {
                    ssrc: 0x42,
                    ntp_middle: 0x1234_5678,
                },
            );
        }
        if k % 10 == 5 {
            continue;
        }
        let bytes = rtp(11, 0x42, k as u16, (k * CHUNK) as u32, &chunk);
        sim.deliver_rtp(at(k * CHUNK), addr(7400), &bytes);
    }
    let reports = &sim.reports;
    // One report per interval (the first 0.5-1.5 intervals in).
    assert!(
        (1..=2).contains(&reports.len()),
        "{} reports in 10 s at {REPORT_INTERVAL:?}",
        reports.len()
    );
    let last = reports.last().unwrap();
    assert_eq!(last.to, sender_rtcp, "to where its RTCP comes from");
    assert_eq!(last.block.ssrc, 0x42);
    // 10 % lost: 25.6 of 256.
    assert!((24..=27).contains(&last.block.fraction_lost), "{last:?}");
    assert!(last.block.cumulative_lost > 0);
    assert_eq!(last.block.last_sr, 0x1234_5678);
    assert!(last.block.delay_since_last_sr > 0);
    assert!(last.block.highest_seq >= 400);
}

#[test]
fn rtp_at_another_rate_is_refused_once_per_stream() {
    let mut sim = Sim::new(config(20.0));
    let chunk = signal(480, 1);
    // PT 96/97 are the node's rate; 98 is not declared.
    for k in 0..50u16 {
        sim.deliver_rtp(
            at(usize::from(k) * 480),
            addr(7500),
            &rtp(98, 1, k, u32::from(k) * 480, &chunk),
        );
    }
    assert_eq!(sim.core.engine().active_streams(), 0);
    let refused: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RtpRefused { .. }))
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", sim.event_texts());
    assert_eq!(refused[0].source, SourceId::Ssrc(1));
    assert!(refused[0].kind.to_string().contains("--rtp-map 98="));
    assert_eq!(sim.snapshot().node.malformed_unknown, 50);
}

#[test]
fn a_browser_sender_is_named_by_itself_below_the_operator_and_closes() {
    use super::ingress::{Samples, SourcePacket};
    use super::Input;
    let mut sim = Sim::new(config(20.0));
    let from = addr(7501);
    let chunk = signal(CHUNK, 5);
    let name = |text| Input::SenderName {
        arrived: at(0),
        from,
        name: SourceName::new(text),
    };
    // A name before the first packet names nothing (no such source yet).
    sim.input(at(0), name("early"));
    for k in 0..3u32 {
        let t = at(k as usize * CHUNK);
        let packet = SourcePacket::mono(k, Samples::Native(&chunk));
        sim.input(
            t,
            Input::Packet {
                arrived: t,
                read_at: t,
                from,
                packet,
            },
        );
        sim.input(t, name("Cello"));
    }
    assert_eq!(sim.stats().sources()[0].name.as_str(), "Cello");
    let texts = sim.event_texts();
    assert_eq!(
        texts.iter().filter(|t| t.starts_with("Named")).count(),
        1,
        "one line for an unchanged name: {texts:?}"
    );
    assert!(texts.contains(&r#"Named name="Cello" by=browser"#.to_string()));
    sim.command(ControlCommand::Name {
        id: SourceId::Addr(from),
        name: SourceName::new("Cello 2"),
        by: addr(9999),
    });
    sim.input(at(3 * CHUNK), name("Cello"));
    assert_eq!(sim.stats().sources()[0].name.as_str(), "Cello 2");
    sim.input(
        at(3 * CHUNK),
        Input::Closed {
            arrived: at(3 * CHUNK),
            from,
        },
    );
    // What it sent plays out first, then it is dropped as closed.
    assert_eq!(sim.core.engine().active_streams(), 1);
    sim.advance_to(at(3 * CHUNK + 1102 + 2 * BLOCK));
    assert_eq!(sim.core.engine().active_streams(), 0);
    assert!(matches!(
        sim.events.last().unwrap().kind,
        EventKind::Dropped {
            reason: DropReason::Closed,
            ..
        }
    ));
}
