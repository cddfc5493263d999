//! Packet-loss concealment in the recorder with real sockets: an RTP L16
//! stereo tone whose datagrams are lost on the way (one, two, and eight in
//! a row, never sent) is recorded with every received frame exact, every
//! lost one filled and fading to silence after 50 ms, and the counters
//! exact; `--plc off` records the same gaps as silence.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use audiorecorder::stats::Stats;
use common::*;
use proto::plc::PlcMode;
use proto::rtp::{encode_l16, RtpHeader};

const RATE: usize = 44_100;
const FRAMES: usize = 441; // 10 ms per packet
const PACKETS: usize = 100;
const FADE: usize = RATE / 20;
const LOST: [usize; 11] = [10, 30, 31, 50, 51, 52, 53, 54, 55, 56, 57];

/// 440 Hz on the left, 660 Hz on the right, interleaved.
fn tone(frames: usize) -> Vec<i16> {
    (0..frames)
        .flat_map(|i| {
            let t = i as f64 / RATE as f64;
            let s =
                |hz: f64| (9_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()).round() as i16;
            [s(440.0), s(660.0)]
        })
        .collect()
}

/// Sends the tone minus the lost packets to a recorder with `--plc mode`;
/// returns the recording and the counters.
fn record(mode: PlcMode) -> (Vec<i16>, audiorecorder::stats::Snapshot, Vec<i16>) {
    let dir = temp_dir(&format!("rtp-plc-{mode}"));
    let rec = dir.join("rec.wav");
    let plc = mode.to_string();
    let words = [
        rec.to_str().unwrap(),
        "--no-playback",
        "--rtp",
        "127.0.0.1:0",
        "--plc",
        &plc,
    ];
    let r = audiorecorder::start(config(&words)).unwrap();
    let to = r.local_addr().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let signal = tone(PACKETS * FRAMES);
    for k in (0..PACKETS).filter(|k| !LOST.contains(k)) {
        let header = RtpHeader {
            marker: false,
            payload_type: 10, // L16/44100/2
            seq: k as u16,
            timestamp: (k * FRAMES) as u32,
            ssrc: 0x5151_5151,
        };
        let mut buf = vec![0u8; 12 + 4 * FRAMES];
        let n = encode_l16(
            &header,
            &signal[2 * k * FRAMES..2 * (k + 1) * FRAMES],
            &mut buf,
        )
        .unwrap();
        socket.send_to(&buf[..n], to).unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
    let stats = r.stats();
    wait_until("all frames placed", Duration::from_secs(15), || {
        Stats::get(&stats.received_frames) >= (PACKETS * FRAMES) as u64
    });
    let s = r.stop().unwrap().stats;
    let (_, got) = read_wav(&rec);
    (got, s, signal)
}

fn peak(s: &[i16]) -> i16 {
    s.iter().map(|x| x.saturating_abs()).max().unwrap_or(0)
}

#[test]
fn lost_datagrams_are_concealed_and_received_frames_stay_exact() {
    for mode in [PlcMode::Predict, PlcMode::Repeat] {
        let (got, s, signal) = record(mode);
        assert_eq!(got.len(), signal.len(), "{mode}");
        let packet = |v: &[i16], k: usize| v[2 * k * FRAMES..2 * (k + 1) * FRAMES].to_vec();
        for k in (0..PACKETS).filter(|k| !LOST.contains(k)) {
            assert!(
                packet(&got, k) == packet(&signal, k),
                "{mode}: packet {k} differs"
            );
        }
        // Gaps (first packet, length): filled for 50 ms, quieter packet by
        // packet, then silent; both channels.
        for (first, n) in [(10, 1), (30, 2), (50, 8)] {
            let mut before = i16::MAX;
            for j in 0..n {
                let at = (first + j) * FRAMES;
                let filled = ((j + 1) * FRAMES).min(FADE).saturating_sub(j * FRAMES);
                let frames = &got[2 * at..2 * (at + FRAMES)];
                let (head, tail) = frames.split_at(2 * filled);
                if filled > 0 {
                    let left: Vec<i16> = head.iter().step_by(2).copied().collect();
                    let right: Vec<i16> = head.iter().skip(1).step_by(2).copied().collect();
                    assert!(
                        peak(&left) > 1_000 && peak(&right) > 1_000,
                        "{mode}: {first}+{j}"
                    );
                    assert!(peak(head) <= before, "{mode}: {first}+{j} fades");
                    before = peak(head);
                }
                assert!(tail.iter().all(|&x| x == 0), "{mode}: {first}+{j} silent");
            }
        }
        assert_eq!(s.rtp_lost_packets, LOST.len() as u64);
        assert_eq!(s.rtp_concealed_frames, (LOST.len() * FRAMES) as u64);
        assert_eq!(s.concealed_frames, (FRAMES + 2 * FRAMES + FADE) as u64);
    }
}

#[test]
fn plc_off_records_lost_datagrams_as_silence() {
    let (got, s, signal) = record(PlcMode::Off);
    let mut want = signal;
    for k in LOST {
        want[2 * k * FRAMES..2 * (k + 1) * FRAMES].fill(0);
    }
    assert!(got == want, "the recording differs");
    assert_eq!(s.rtp_concealed_frames, (LOST.len() * FRAMES) as u64);
    assert_eq!(s.concealed_frames, 0);
}
