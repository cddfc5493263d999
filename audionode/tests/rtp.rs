//! RTP on real sockets: a stereo RTP sender with an RTCP NAME is mixed in
//! stereo, named on the desk and in /metrics, and the node's RTP output is
//! exactly its original-format output; outputs added and removed while it
//! runs; /mix.sdp; and the third-party peers: ffmpeg and GStreamer send
//! RTP L16 to the node and receive its mix from its SDP, sample for sample;
//! GStreamer's RFC 2198 encoder (`rtpredenc`), losing packets, feeds the
//! node, which restores them from the copies.
//!
//! Without ffmpeg/gst-launch-1.0 the peer tests are skipped with a reason,
//! except under `CI=true`, where a missing tool is a failure.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use audionode::{Args, Config};
use common::*;
use proto::rtcp::{RtcpWriter, SenderInfo, SDES_CNAME, SDES_NAME};
use proto::rtp::{encode_l16, RtpHeader, RtpPacket};

/// An RTP receiver that places samples by timestamp (relative to the
/// first packet) and remembers what RTCP arrived on its port + 1.
struct RtpCollector {
    addr: SocketAddr,
    samples: Arc<Mutex<Vec<i16>>>,
    rtcp_packets: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RtpCollector {
    fn start() -> Self {
        let (socket, rtcp) = loop {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = socket.local_addr().unwrap().port();
            if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
                break (socket, rtcp);
            }
        };
        let addr = socket.local_addr().unwrap();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let rtcp_packets = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (samples, stop) = (Arc::clone(&samples), Arc::clone(&stop));
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            threads.push(thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut first_ts = None;
                while !stop.load(Ordering::SeqCst) {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let p = RtpPacket::decode(&buf[..n]).expect("valid RTP from the node");
                    assert_eq!(p.payload_type, 10, "L16/44100/2");
                    let ts0 = *first_ts.get_or_insert(p.timestamp);
                    let at = 2 * p.timestamp.wrapping_sub(ts0) as usize;
                    let mut s = samples.lock().unwrap();
                    let end = at + p.payload.len() / 2;
                    if s.len() < end {
                        s.resize(end, 0);
                    }
                    for (k, b) in p.payload.chunks(2).enumerate() {
                        s[at + k] = i16::from_be_bytes([b[0], b[1]]);
                    }
                }
            }));
        }
        {
            let (count, stop) = (Arc::clone(&rtcp_packets), Arc::clone(&stop));
            rtcp.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            threads.push(thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(n) = rtcp.recv(&mut buf) {
                        assert!(proto::rtp::is_rtcp(&buf[..n]));
                        *count.lock().unwrap() += 1;
                    }
                }
            }));
        }
        Self {
            addr,
            samples,
            rtcp_packets,
            stop,
            threads,
        }
    }

    fn finish(mut self) -> (Vec<i16>, usize) {
        thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let samples = std::mem::take(&mut *self.samples.lock().unwrap());
        let rtcp = *self.rtcp_packets.lock().unwrap();
        (samples, rtcp)
    }
}

/// Sends `interleaved` stereo as RTP (PT 10) from `socket` to `to`, 10 ms
/// packets paced in real time, with a sender report and SDES NAME from
/// `rtcp` to `rtcp_to` first and a BYE at the end.
fn send_rtp_stereo(
    socket: &UdpSocket,
    rtcp: &UdpSocket,
    to: SocketAddr,
    rtcp_to: SocketAddr,
    ssrc: u32,
    interleaved: &[i16],
) {
    let mut buf = [0u8; 1500];
    let mut w = RtcpWriter::new(&mut buf);
    w.sender_report(
        &SenderInfo {
            ssrc,
            ntp: proto::rtcp::ntp_time(std::time::SystemTime::now()),
            rtp_timestamp: 1000,
            packets: 0,
            octets: 0,
        },
        &[],
    )
    .unwrap();
    w.sdes(ssrc, &[(SDES_CNAME, "test@localhost"), (SDES_NAME, "bass")])
        .unwrap();
    let len = w.finish();
    rtcp.send_to(&buf[..len], rtcp_to).unwrap();
    let start = Instant::now();
    let frames = interleaved.len() / 2;
    // 5 ms packets: 10 ms of stereo would not fit one Ethernet datagram.
    let packet = CHUNK / 2;
    for (k, first) in (0..frames).step_by(packet).enumerate() {
        let due = start + Duration::from_secs_f64(first as f64 / f64::from(RATE));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let last = (first + packet).min(frames);
        let header = RtpHeader {
            marker: k == 0,
            payload_type: 10,
            seq: 65_000u16.wrapping_add(k as u16),
            timestamp: 1000 + first as u32,
            ssrc,
        };
        let n = encode_l16(&header, &interleaved[2 * first..2 * last], &mut buf).unwrap();
        socket.send_to(&buf[..n], to).unwrap();
    }
    let mut w = RtcpWriter::new(&mut buf);
    w.bye(ssrc).unwrap();
    let len = w.finish();
    rtcp.send_to(&buf[..len], rtcp_to).unwrap();
}

fn rtcp_addr(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port() + 1)
}

#[test]
fn a_stereo_rtp_source_is_mixed_named_and_sent_as_rtp_exactly() {
    let dir = temp_dir("rtp-loopback");
    let collector = Collector::start();
    let rtp_out = RtpCollector::start();
    let log = dir.join("audionode.log");
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![collector.addr.to_string()],
        rtp_listen: vec!["127.0.0.1:0".into()],
        rtp_dest: vec![rtp_out.addr.to_string()],
        log_file: Some(log.clone()),
        jitter_ms: Some("60".into()),
        sample_rate: RATE,
        max_sources: 4,
        timeout_ms: 1000,
        http: "127.0.0.1:0".into(),
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let node = audionode::start(Config::from_args(&args, |_| None).unwrap()).unwrap();
    let http_addr = node.http_addr().unwrap();
    let node_rtp = node.rtp_listen_addrs()[0];
    let frames = 150 * CHUNK;
    let left = signal(frames, 1);
    let right = signal(frames, 2);
    let interleaved: Vec<i16> = left
        .iter()
        .zip(&right)
        .flat_map(|(&l, &r)| [l, r])
        .collect();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender_rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ssrc = 0x00c0_ffee;
    let feeder = {
        let interleaved = interleaved.clone();
        thread::spawn(move || {
            send_rtp_stereo(
                &sender,
                &sender_rtcp,
                node_rtp,
                rtcp_addr(node_rtp),
                ssrc,
                &interleaved,
            )
        })
    };
    // While it plays: named on the desk and in /metrics, an output added.
    wait_for("the source to be named", || {
        http(http_addr, "GET", "/api/state", None, &[])
            .1
            .contains(r#""name":"bass""#)
    });
    let state = http(http_addr, "GET", "/api/state", None, &[]).1;
    assert!(state.contains(r#""id":"ssrc:00c0ffee""#), "{state}");
    assert!(state.contains(r#""channels":2"#), "{state}");
    let metrics = http(http_addr, "GET", "/metrics", None, &[]).1;
    assert!(
        metrics.contains(r#"audionode_source_received_total{source="ssrc:00c0ffee",name="bass"}"#),
        "{metrics}"
    );
    let sdp = http(http_addr, "GET", "/mix.sdp", None, &[]).1;
    assert!(
        sdp.contains(&format!("m=audio {} RTP/AVP 10\r\n", rtp_out.addr.port())),
        "{sdp}"
    );
    assert!(sdp.contains("a=rtpmap:10 L16/44100/2\r\n"), "{sdp}");
    let second = Collector::start();
    let body = format!(r#"{{"kind":"udp-stereo","addr":"{}"}}"#, second.addr);
    let (status, listed) = http(http_addr, "POST", "/api/outputs", Some(&body), &[]);
    assert_eq!(status, 201, "{listed}");
    assert!(listed.contains(&second.addr.to_string()));
    wait_for("the added output to receive", || second.len() > 4410);
    let path = format!("/api/outputs/udp-stereo/{}", second.addr);
    let json = [("Content-Type", "application/json")];
    assert_eq!(http(http_addr, "DELETE", &path, None, &json).0, 200);
    let after_removal = second.finish().len();
    feeder.join().unwrap();
    // The BYE ended the stream (reason=closed) without waiting for the timeout.
    wait_for("the BYE to end the stream", || {
        events_of(&log, "ssrc:00c0ffee")
            .iter()
            .any(|l| l.starts_with("Dropped stream reason=closed"))
    });
    let snapshot = node.stop().unwrap();
    assert_eq!(snapshot.node.streams_started, 1);
    let mixed = collector.finish();
    let (rtp_samples, rtcp_packets) = rtp_out.finish();
    assert!(after_removal > 4410);
    // The original-format output: the source's channels, at its start frame.
    let start = start_frame(&log, "ssrc:00c0ffee");
    let lines = events_of(&log, "ssrc:00c0ffee");
    assert!(lines[0].contains("channels=2"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.ends_with(r#"name="bass""#)),
        "{lines:?}"
    );
    for (i, &(l, r)) in mixed.iter().enumerate() {
        let want = i
            .checked_sub(start)
            .filter(|&k| k < frames)
            .map_or((0, 0), |k| (left[k], right[k]));
        assert_eq!((l, r), want, "frame {i} (start {start})");
    }
    assert!(mixed.len() >= start + frames);
    // The RTP output is the same mix, sample for sample.
    let flat: Vec<i16> = mixed.iter().flat_map(|&(l, r)| [l, r]).collect();
    assert_eq!(rtp_samples.len(), flat.len());
    assert!(rtp_samples == flat, "RTP output differs from the mix");
    assert!(rtcp_packets >= 1, "a sender report, then a BYE");
}

/// Whether `tool` runs; under CI its absence fails the test.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        let why = format!("{tool} is missing (scripts/setup.sh installs it)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED RTP peer test: {why}");
    }
    ok
}

fn write_wav(path: &Path, channels: u16, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn read_wav(path: &Path) -> (u16, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let channels = r.spec().channels;
    (channels, r.samples::<i16>().map(Result::unwrap).collect())
}

/// Stops a recording child gracefully (SIGINT: ffmpeg and gst-launch -e
/// finish their files) and waits for it.
fn interrupt(mut child: Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the recorder did not stop on SIGINT");
}

/// Waits (a while) for a child that stops by itself.
fn wait_exit(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the recorder did not stop");
}

/// The mix as recorded, without the silence before the stream: the first
/// frame whose left sample is not 0 onwards, `len` frames.
fn trimmed(samples: &[i16], channels: usize, len: usize) -> Vec<i16> {
    let first = samples
        .chunks(channels)
        .position(|f| f[0] != 0)
        .expect("the recording has the stream");
    samples[first * channels..]
        .iter()
        .copied()
        .take(len * channels)
        .collect()
}

fn start_rtp_node(
    dir: &Path,
    rtp_dest: SocketAddr,
    rtp_map: &[&str],
) -> (audionode::NodeHandle, SocketAddr) {
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        rtp_listen: vec!["127.0.0.1:0".into()],
        rtp_map: rtp_map.iter().map(|m| m.to_string()).collect(),
        rtp_dest: vec![rtp_dest.to_string()],
        sdp_file: Some(dir.join("mix.sdp")),
        log_file: Some(dir.join("audionode.log")),
        jitter_ms: Some("60".into()),
        sample_rate: RATE,
        max_sources: 4,
        timeout_ms: 500,
        http: "off".into(),
        // Checked frame by frame, silent where nothing was sent.
        plc: proto::plc::PlcMode::Off,
        ..Default::default()
    };
    let node = audionode::start(Config::from_args(&args, |_| None).unwrap()).unwrap();
    let rtp = node.rtp_listen_addrs()[0];
    (node, rtp)
}

/// A free even port whose + 1 is free too (the receiver binds both).
fn free_port_pair() -> SocketAddr {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port % 2 == 0 && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return a.local_addr().unwrap();
        }
    }
}

/// The input: a mono signal that starts with a non-zero sample.
fn test_input(frames: usize) -> Vec<i16> {
    let mut s = signal(frames, 5);
    s[0] = 1234;
    s
}

#[test]
fn ffmpeg_feeds_the_node_and_plays_its_sdp() {
    if !have("ffmpeg") {
        return;
    }
    let dir = temp_dir("rtp-ffmpeg");
    let input = test_input(RATE as usize * 3 / 2);
    let in_wav = dir.join("in.wav");
    write_wav(&in_wav, 1, &input);
    let out_wav = dir.join("out.wav");
    let dest = free_port_pair();
    let (node, node_rtp) = start_rtp_node(&dir, dest, &[]);
    // The receiver reads the node's SDP (binds its port, plays L16/44100/2;
    // the SDP says the format, so no probing), and stops by itself after
    // the input's length and a little more of the mix.
    let seconds = input.len() as f64 / f64::from(RATE) + 0.25;
    let receiver = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-protocol_whitelist", "file,udp,rtp"])
        .args(["-probesize", "32", "-analyzeduration", "0"])
        .arg("-i")
        .arg(dir.join("mix.sdp"))
        .args(["-t", &format!("{seconds:.3}"), "-c:a", "pcm_s16le"])
        .arg(&out_wav)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg receiver");
    thread::sleep(Duration::from_millis(500));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .arg("-i")
        .arg(&in_wav)
        .args(["-c:a", "pcm_s16be", "-f", "rtp"])
        .arg(format!("rtp://{node_rtp}"))
        .stdout(Stdio::null())
        .status()
        .expect("run ffmpeg sender");
    assert!(status.success());
    wait_exit(receiver);
    let snapshot = node.stop().unwrap();
    assert_eq!(snapshot.node.streams_started, 1, "{snapshot:?}");
    let (channels, recorded) = read_wav(&out_wav);
    assert_eq!(channels, 2);
    let got = trimmed(&recorded, 2, input.len());
    let want: Vec<i16> = input.iter().flat_map(|&s| [s, s]).collect();
    assert_eq!(got.len(), want.len(), "the whole input was recorded");
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "ffmpeg's recording differs from the input at sample {i}: {:?} vs {:?}",
            &got[i..(i + 8).min(got.len())],
            &want[i..i + 8]
        );
    }
}

/// GStreamer sends the input to the node as RTP (`sender`: the elements
/// between `rtpL16pay` and `udpsink`, and the payloader's settings) and
/// records the node's mix from RTP; returns the recording (trimmed to the
/// input's length) and the node's event log.
fn gstreamer_through_the_node(
    name: &str,
    rtp_map: &[&str],
    payloader: &[&str],
    sender: &[&str],
) -> (Vec<i16>, Vec<i16>, String) {
    let dir = temp_dir(name);
    let input = test_input(RATE as usize * 3 / 2);
    let in_wav = dir.join("in.wav");
    write_wav(&in_wav, 1, &input);
    let out_raw = dir.join("out.raw");
    let dest = free_port_pair();
    let (node, node_rtp) = start_rtp_node(&dir, dest, rtp_map);
    let receiver = Command::new("gst-launch-1.0")
        .args(["-q", "-e", "udpsrc"])
        .arg(format!("port={}", dest.port()))
        .arg("address=127.0.0.1")
        // Not shared (udpsrc's default is SO_REUSEADDR): two tests that
        // picked the same free port must not split each other's packets.
        .arg("reuse=false")
        .arg("caps=application/x-rtp,media=audio,clock-rate=44100,encoding-name=L16,channels=2,payload=10")
        .args(["!", "rtpjitterbuffer", "latency=100", "!", "rtpL16depay", "!"])
        .args(["audioconvert", "!", "audio/x-raw,format=S16LE,channels=2", "!", "filesink"])
        .arg(format!("location={}", out_raw.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("start gst-launch receiver");
    thread::sleep(Duration::from_millis(700));
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", in_wav.display()))
        .args(["!", "wavparse", "!", "audioconvert", "!"])
        .arg("audio/x-raw,format=S16BE,channels=1,rate=44100")
        .args(["!", "rtpL16pay"])
        .args(payloader)
        .args(sender)
        .args(["!", "udpsink", "host=127.0.0.1"])
        .arg(format!("port={}", node_rtp.port()))
        .arg("sync=true")
        .stdout(Stdio::null())
        .status()
        .expect("run gst-launch sender");
    assert!(status.success());
    thread::sleep(Duration::from_millis(700));
    let snapshot = node.stop().unwrap();
    thread::sleep(Duration::from_millis(300));
    interrupt(receiver);
    assert_eq!(snapshot.node.streams_started, 1, "{snapshot:?}");
    let bytes = std::fs::read(&out_raw).unwrap();
    let recorded: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let got = trimmed(&recorded, 2, input.len());
    let want: Vec<i16> = input.iter().flat_map(|&s| [s, s]).collect();
    assert_eq!(got.len(), want.len(), "the whole input was recorded");
    let log = std::fs::read_to_string(dir.join("audionode.log")).unwrap();
    (got, want, log)
}

#[test]
fn gstreamer_feeds_the_node_and_receives_its_mix() {
    if !have("gst-launch-1.0") {
        return;
    }
    // rtpL16pay sends mono as dynamic type 96, which the node takes as
    // stereo unless told.
    let (got, want, _) = gstreamer_through_the_node("rtp-gstreamer", &["96=L16/44100/1"], &[], &[]);
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "GStreamer's recording differs from the input at sample {i}: {:?} vs {:?}",
            &got[i..(i + 8).min(got.len())],
            &want[i..i + 8]
        );
    }
}

/// A counter of the `Dropped stream` line in the event log.
fn dropped_counter(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("Dropped stream"))
        .unwrap_or_else(|| panic!("no Dropped stream line in {log}"));
    let key = format!(" {name}=");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + key.len();
    line[at..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad {name} in {line}"))
}

#[test]
fn gstreamer_redundancy_restores_what_its_network_lost() {
    if !have("gst-launch-1.0") {
        return;
    }
    // 5 ms packets of type 97 (the node's mono default), each with a copy
    // of the one before (type 100, the node's RED default), 8 % of them
    // dropped at random before they leave.
    let (got, want, log) = gstreamer_through_the_node(
        "rtp-gstreamer-red",
        &[],
        &["pt=97", "max-ptime=5000000"],
        &[
            "!",
            "rtpredenc",
            "pt=100",
            "distance=1",
            "!",
            "identity",
            "drop-probability=0.08",
        ],
    );
    let recovered = dropped_counter(&log, "recovered");
    let lost = dropped_counter(&log, "lost");
    assert_eq!(dropped_counter(&log, "malformed"), 0, "{log}");
    assert_eq!(dropped_counter(&log, "duplicates"), 0, "{log}");
    // About 25 of 300 packets dropped: some are restored (the chance that
    // none is, is below 1e-9), and only the ones lost with their successor
    // can differ from the input: at most 220 frames each.
    assert!(recovered >= 1, "{log}");
    let differing = got
        .chunks(2)
        .zip(want.chunks(2))
        .filter(|(a, b)| a != b)
        .count() as u64;
    assert!(
        differing <= lost * 220,
        "{differing} frames differ with {lost} packets lost, {recovered} recovered"
    );
}
