//! `--rtp`: the packets and RTCP on the wire (headers, payload limit,
//! seeded identity, SR/SDES/BYE, receiver reports read back), and a real
//! third-party receiver: GStreamer's `udpsrc ! rtpjitterbuffer !
//! rtpL16depay` writes exactly the samples of the WAV, mono and stereo;
//! `--redundancy` packets on the wire (RED type, copies of the packets
//! before, within one datagram),
//! and with `rtpreddec` in front it decodes our RFC 2198 redundancy
//! (`--redundancy`) to the same samples.
//!
//! The GStreamer tests print `SKIPPED` when gst-launch-1.0 is missing,
//! except under `CI=true`, where that fails them.

mod common;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;
use proto::rtcp::{Compound, ReportBlock, RtcpPacket, RtcpWriter, SDES_CNAME, SDES_NAME};
use proto::rtp::{RtpPacket, MAX_L16_PAYLOAD};

/// Whether `tool` runs; `false` (after saying so loudly) outside CI.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but {tool} is not installed (scripts/setup.sh installs it)");
        }
        println!("SKIPPED: {tool} is not installed (scripts/setup.sh installs it)");
    }
    ok
}

/// A UDP port that is free now (and its neighbour, for RTCP).
fn free_port() -> u16 {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        if p < u16::MAX && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
fn packets_and_rtcp_on_the_wire() {
    let dir = TempDir::new("rtp-wire");
    let wav = dir.path("s.wav");
    // 0.25 s of stereo: 10 ms chunks of 441 frames go as 221 + 220 frames.
    let frames = 11_025;
    let signal = test_signal(2 * frames);
    write_i16(&wav, 2, 44_100, &signal);
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rtp.local_addr().unwrap().port();
    let rtcp = UdpSocket::bind(("127.0.0.1", port + 1)).unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    rtcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let dest = format!("127.0.0.1:{port}");
    let line = [
        wav.to_str().unwrap(),
        &dest,
        "--rtp",
        "--channels",
        "2",
        "--name",
        "bass",
        "--rtp-seed",
        "42",
        "--speed",
        "2",
    ];
    let probe = audiostreamer::Streamer::new(&args(&line)).unwrap();
    let (ssrc, seq0, ts0) = probe.rtp_identity().unwrap();
    assert_eq!(
        probe.rtcp_local_addr().unwrap().port(),
        probe.udp_local_addr().unwrap().port() + 1
    );
    drop(probe);
    // The seed fixes the identity: the streamer that runs has the same.
    let owned: Vec<String> = line.iter().map(|s| s.to_string()).collect();
    let run = std::thread::spawn(move || {
        let line: Vec<&str> = owned.iter().map(String::as_str).collect();
        let streamer = audiostreamer::Streamer::new(&args(&line)).unwrap();
        assert_eq!(streamer.rtp_identity(), Some((ssrc, seq0, ts0)));
        streamer.run(&AtomicBool::new(false)).unwrap()
    });

    // The first SR + SDES arrives after the first packet; answer it with a
    // receiver report, which must show up in the summary.
    let mut buf = [0u8; 2048];
    let (len, from) = rtcp.recv_from(&mut buf).unwrap();
    let packets: Vec<_> = Compound::new(&buf[..len]).map(Result::unwrap).collect();
    let RtcpPacket::SenderReport(info, _) = packets[0] else {
        panic!("{packets:?}")
    };
    assert_eq!(info.ssrc, ssrc);
    let RtcpPacket::Sdes(items) = packets[1] else {
        panic!("{packets:?}")
    };
    let items: Vec<_> = items.collect();
    assert!(items.iter().all(|i| i.ssrc == ssrc));
    assert!(items
        .iter()
        .any(|i| i.kind == SDES_CNAME && i.text.contains(&b'@')));
    assert!(items
        .iter()
        .any(|i| i.kind == SDES_NAME && i.text == b"bass"));
    let block = ReportBlock {
        ssrc,
        fraction_lost: 128,
        cumulative_lost: 3,
        highest_seq: 77,
        jitter: 441,
        last_sr: info.ntp_middle(),
        delay_since_last_sr: 0,
    };
    let mut out = [0u8; 64];
    let mut w = RtcpWriter::new(&mut out);
    w.receiver_report(0xfeed, &[block]).unwrap();
    let n = w.finish();
    rtcp.send_to(&out[..n], from).unwrap();

    // All RTP packets.
    let mut got = Vec::new();
    let mut seq = seq0;
    let mut ts = ts0;
    let mut first = true;
    while got.len() < signal.len() {
        let (len, rtp_from) = rtp.recv_from(&mut buf).unwrap();
        // RTCP leaves from the RTP port + 1.
        assert_eq!(rtp_from.port() + 1, from.port());
        let p = RtpPacket::decode(&buf[..len]).unwrap();
        assert_eq!(
            (p.ssrc, p.payload_type, p.seq, p.timestamp),
            (ssrc, 10, seq, ts)
        );
        assert_eq!(p.marker, first);
        assert!(p.payload.len() <= MAX_L16_PAYLOAD);
        assert!(
            [220, 221].contains(&(p.payload.len() / 4)),
            "{}",
            p.payload.len()
        );
        first = false;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add((p.payload.len() / 4) as u32);
        got.extend(
            p.payload
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]])),
        );
    }
    assert!(got == signal, "the payloads differ from the WAV's samples");
    let summary = run.join().unwrap();
    assert_eq!(summary.samples, frames as u64);
    let report = summary.receiver_report.expect("the receiver report");
    assert_eq!(report.reporter, 0xfeed);
    assert_eq!(
        (
            report.fraction_lost,
            report.cumulative_lost,
            report.highest_seq
        ),
        (0.5, 3, 77)
    );
    assert_eq!(report.jitter_ms, 10.0);
    assert!(report.round_trip.is_some());
    assert!(summary.to_string().contains("3 lost in all"), "{summary}");

    // The end: SR, SDES, BYE (after any periodic reports).
    loop {
        let (len, _) = rtcp.recv_from(&mut buf).unwrap();
        let packets: Vec<_> = Compound::new(&buf[..len]).map(Result::unwrap).collect();
        if let Some(RtcpPacket::Bye(ssrcs)) = packets.last() {
            assert_eq!(ssrcs.collect::<Vec<_>>(), vec![ssrc]);
            let RtcpPacket::SenderReport(info, _) = packets[0] else {
                panic!("{packets:?}")
            };
            assert_eq!(info.packets, seq.wrapping_sub(seq0) as u32);
            assert_eq!(info.octets as usize, 2 * signal.len());
            break;
        }
    }
}

#[test]
fn mono_source_on_a_stereo_stream_is_duplicated_and_48k_is_dynamic() {
    let dir = TempDir::new("rtp-dup");
    let wav = dir.path("m.wav");
    let signal = test_signal(4_800);
    write_i16(&wav, 1, 48_000, &signal);
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let dest = rtp.local_addr().unwrap().to_string();
    let common = [
        wav.to_str().unwrap(),
        &dest,
        "--rtp",
        "--sample-rate",
        "48000",
    ];
    for (channels, pt) in [("2", 96), ("1", 97)] {
        let mut line = common.to_vec();
        line.extend(["--channels", channels, "--speed", "10"]);
        let summary = stream(&line, &AtomicBool::new(false));
        assert_eq!(summary.samples, 4_800);
        let ch: usize = channels.parse().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < ch * signal.len() {
            let (len, _) = rtp.recv_from(&mut buf).unwrap();
            let p = RtpPacket::decode(&buf[..len]).unwrap();
            assert_eq!(p.payload_type, pt);
            got.extend(
                p.payload
                    .chunks_exact(2)
                    .map(|b| i16::from_be_bytes([b[0], b[1]])),
            );
        }
        let want: Vec<i16> = signal
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s, ch))
            .collect();
        assert!(got == want, "{channels} channel(s): payloads differ");
    }
}

#[test]
fn redundant_packets_carry_the_ones_before_them() {
    let dir = TempDir::new("rtp-red");
    let wav = dir.path("s.wav");
    let signal = test_signal(4_410);
    write_i16(&wav, 1, 44_100, &signal);
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let dest = rtp.local_addr().unwrap().to_string();
    let line = [
        wav.to_str().unwrap(),
        &dest,
        "--rtp",
        "--redundancy",
        "2",
        "--speed",
        "4",
    ];
    let owned: Vec<String> = line.iter().map(|s| s.to_string()).collect();
    let run = std::thread::spawn(move || {
        let line: Vec<&str> = owned.iter().map(String::as_str).collect();
        audiostreamer::Streamer::new(&args(&line))
            .unwrap()
            .run(&AtomicBool::new(false))
            .unwrap()
    });
    // (timestamp, primary bytes) of every packet, and each packet's copies.
    let mut primaries: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 2048];
    let mut samples = Vec::new();
    while samples.len() < signal.len() {
        let n = rtp.recv(&mut buf).expect("a packet");
        assert!(n <= proto::MAX_UNFRAGMENTED_PAYLOAD, "{n} bytes fragment");
        let p = RtpPacket::decode(&buf[..n]).unwrap();
        assert_eq!(p.payload_type, 100);
        let red = proto::red::RedPayload::decode(p.payload).unwrap();
        assert_eq!(red.primary_type, 11);
        let copies = red.redundant();
        assert_eq!(copies.len(), primaries.len().min(2));
        for (copy, (ts, bytes)) in copies
            .iter()
            .zip(&primaries[primaries.len() - copies.len()..])
        {
            assert_eq!(copy.payload_type, 11);
            assert_eq!(
                p.timestamp.wrapping_sub(u32::from(copy.timestamp_offset)),
                *ts
            );
            assert_eq!(copy.data, &bytes[..]);
        }
        samples.extend(
            red.primary
                .chunks(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]])),
        );
        primaries.push((p.timestamp, red.primary.to_vec()));
    }
    run.join().unwrap();
    assert!(samples == signal, "the primaries are the WAV");
    // 10 ms chunks of 441 frames go as 221 + 220 with two copies.
    assert_eq!(primaries[0].1.len(), 2 * 221);
    assert_eq!(primaries.len(), 20);
}

/// `gst-launch-1.0 -e` receiving RTP L16 on `port` into a raw S16LE file;
/// with `red`, RED packets of that payload type go through `rtpreddec`.
fn gst_receiver(port: u16, channels: u16, pt: u8, red: Option<u8>, out: &std::path::Path) -> Child {
    let caps = format!(
        "caps=application/x-rtp,media=audio,clock-rate=44100,encoding-name=L16,channels={channels},payload={pt}"
    );
    let mut command = Command::new("gst-launch-1.0");
    command.args(["-q", "-e", "udpsrc", &format!("port={port}"), &caps]);
    if let Some(red) = red {
        command.args(["!", "rtpreddec", &format!("pt={red}")]);
    }
    let child = command
        .args([
            "!",
            "rtpjitterbuffer",
            "!",
            "rtpL16depay",
            "!",
            "audioconvert",
            "!",
        ])
        .arg(format!("audio/x-raw,format=S16LE,channels={channels}"))
        // Unbuffered, so the file's length shows what has left the
        // jitter buffer.
        .args(["!", "filesink", "buffer-mode=unbuffered"])
        .arg(format!("location={}", out.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 starts");
    // Ready once udpsrc holds the port (it binds with SO_REUSEADDR, which
    // a plain bind of ours does not share).
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(("0.0.0.0", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "gst-launch-1.0 did not bind {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// SIGINT makes `gst-launch-1.0 -e` send EOS, which drains the jitter
/// buffer into the file before it exits.
fn finish_gst(mut child: Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "gst-launch-1.0 failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gst-launch-1.0 did not stop after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `path` holds at least `bytes` bytes or `limit` has passed;
/// the caller's assertions then report what was missing.
fn wait_for_length(path: &std::path::Path, bytes: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len >= bytes as u64 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_s16le(path: &std::path::Path) -> Vec<i16> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn gstreamer_receives(channels: u16, pt: u8, redundancy: u8) {
    if !have("gst-launch-1.0") {
        return;
    }
    let dir = TempDir::new("rtp-gst");
    let wav = dir.path("in.wav");
    let out = dir.path("out.raw");
    // 0.5 s; a stereo file for --channels 2, a mono one for the default.
    let signal = test_signal(22_050 * usize::from(channels));
    write_i16(&wav, channels, 44_100, &signal);
    let port = free_port();
    let red = (redundancy > 0).then_some(100);
    let gst = gst_receiver(port, channels, pt, red, &out);
    let dest = format!("127.0.0.1:{port}");
    let ch = channels.to_string();
    let depth = redundancy.to_string();
    let summary = stream(
        &[
            wav.to_str().unwrap(),
            &dest,
            "--rtp",
            "--channels",
            &ch,
            "--redundancy",
            &depth,
            "--speed",
            "2",
        ],
        &AtomicBool::new(false),
    );
    assert_eq!(summary.samples, 22_050);
    // EOS discards whatever udpsrc has not read yet, so wait until the
    // whole signal has left the jitter buffer (or a generous deadline on a
    // loaded machine) before sending it.
    wait_for_length(&out, signal.len() * 2, Duration::from_secs(10));
    finish_gst(gst);
    let got = read_s16le(&out);
    assert_eq!(
        got.len(),
        signal.len(),
        "GStreamer wrote a different length"
    );
    assert!(got == signal, "GStreamer's samples differ from the WAV's");
}

#[test]
fn gstreamer_receives_mono() {
    gstreamer_receives(1, 11, 0);
}

#[test]
fn gstreamer_receives_stereo() {
    gstreamer_receives(2, 10, 0);
}

#[test]
fn gstreamer_decodes_our_redundancy() {
    gstreamer_receives(1, 11, 1);
    gstreamer_receives(2, 10, 2);
}
