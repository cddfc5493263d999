//! RFC 2198 redundancy end to end: the streamer's RTP with one redundant
//! copy per packet (`--rtp --redundancy 1`) through the `audioimpair`
//! binary (5 % loss, fixed seeds, `--summary FILE`) into a node's
//! `--rtp-listen` port and a recorder. From the proxy's ground truth alone:
//! the node's `recovered` counter is the number of lost packets whose
//! successor arrived, its `lost` the number of the others it can know of,
//! and the recording equals the input in every frame but those of the
//! packets neither received nor recovered.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;

use audiostreamer::chunk::samples_per_chunk;
use audiostreamer::red_out::RedEncoder;
use audiostreamer::rtp_out::split_within;
use common::*;

/// Frames of the track: 300 chunks of 10 ms, then a short one of 123.
const FRAMES: usize = RATE as usize * 3 + 123;

/// Makes the streamer's first sequence number 65 393 on the wire, so the
/// 16-bit number wraps after packet 142 (65 535), in the middle of the run.
const RTP_SEED: &str = "174559";
const FIRST_SEQ: u32 = 65_393;

/// The proxy's loss decisions depend only on this seed and the packet
/// order: of the 601 packets it drops 33, among them a run of three
/// (packets 140–142: 140 and 141 are unrecoverable, 142 is restored from
/// 143, whose wire number is 0), two pairs (98–99, 238–239: the first of
/// each unrecoverable) and the final packet 600, which nothing follows, so
/// the node cannot know of it. The other 28 are recoverable.
const LOSS_SEED: &str = "42";

/// Each packet's frames in the track, in sequence order: the streamer cuts
/// the track into chunks of `--chunk-ms` (10 ms by default; the last one
/// shorter) and each chunk into as few near-equal packets as fit one
/// datagram with a copy of the packet before: 441 frames become 221 + 220.
fn packet_frames(frames: usize) -> Vec<Range<usize>> {
    let chunk = samples_per_chunk(10.0, RATE).unwrap();
    let per_packet = RedEncoder::max_frames(1, 1);
    let mut packets = Vec::new();
    let mut at = 0;
    while at < frames {
        for len in split_within(chunk.min(frames - at), per_packet) {
            packets.push(at..at + len);
            at += len;
        }
    }
    packets
}

/// Starts the proxy binary with `flags`; returns it and its listen address
/// (from its `listening on ADDR, …` log line).
fn spawn_proxy(flags: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-audioimpair"))
        .args(flags)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the proxy stopped before listening");
        };
        if let Some((_, rest)) = line.split_once("listening on ") {
            break rest.split(',').next().unwrap().to_string();
        }
    };
    // Keep draining stderr so the proxy never blocks on a full pipe.
    thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Stops the proxy like Ctrl-C would and reads the ground truth it wrote.
fn stop_proxy(mut child: Child, summary: &Path) -> (serde_json::Value, audioimpair::GroundTruth) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not
    // yet waited for, so the pid is still its own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(summary).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    (json, serde_json::from_str(&text).unwrap())
}

/// The first line of the node's log containing `what`.
fn log_line(log: &Path, what: &str) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn redundancy_restores_exactly_the_losses_whose_successor_arrived() {
    let _serial = serial();
    let dir = temp_dir("impaired-red");
    let rig = Rig::start(&dir, "500", &["--rtp-listen", "127.0.0.1:0"]);
    let log = rig.log.clone();
    let rtp = rig.node.rtp_listen_addrs()[0].to_string();
    let summary = dir.join("truth.json");
    let (proxy, proxy_addr) = spawn_proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &rtp,
        "--loss",
        "0.05",
        "--seed",
        LOSS_SEED,
        "--summary",
        summary.to_str().unwrap(),
    ]);
    let track = signal(FRAMES, 30, 5000.0);
    let wav = dir.join("in.wav");
    write_wav(&wav, &track);
    StreamerRun::start(&[
        wav.to_str().unwrap(),
        &proxy_addr,
        "--rtp",
        "--redundancy",
        "1",
        "--rtp-seed",
        RTP_SEED,
        "--bind",
        "127.0.0.1:0",
    ])
    .join();
    wait_for("the stream to be dropped", || {
        !log_line(&log, "Dropped stream").is_empty()
    });
    // Nothing is delayed: every packet left the proxy long ago.
    let (json, truth) = stop_proxy(proxy, &summary);
    let recording = rig.finish();

    // The truth lists the RTP stream's numbers, extended past 65 535.
    assert_eq!(json["sources"][0]["rtp"], true, "{json}");
    let t = &truth.sources[0];
    let packets = packet_frames(FRAMES);
    assert_eq!(packets.len(), 601);
    assert_eq!(t.received, packets.len() as u64, "{t:?}");
    assert_eq!(
        (
            t.pending,
            t.send_errors,
            t.duplicated,
            t.reordered,
            t.before_first
        ),
        (0, 0, 0, 0, 0),
        "{t:?}"
    );
    // Packet k is number FIRST_SEQ + k: extended, so k + 1 is its successor
    // across the wire's wrap too.
    let lowest = t.released_seqs.iter().chain(&t.dropped_seqs).min();
    assert_eq!(lowest, Some(&FIRST_SEQ), "the streamer's first number");
    let index = |seq: u32| (seq - FIRST_SEQ) as usize;
    let released: HashSet<usize> = t.released_seqs.iter().map(|&s| index(s)).collect();
    let dropped: Vec<usize> = t.dropped_seqs.iter().map(|&s| index(s)).collect();
    assert_eq!(released.len() + dropped.len(), packets.len(), "{t:?}");
    assert!(t.released_seqs.iter().any(|&s| s > 0xffff), "{t:?}");

    // What the node can know: its stream begins at the first packet it
    // receives and ends at the last; a lost packet in between is restored
    // when the packet after it (which carries its copy) arrived, and lost
    // otherwise. Lost packets before the first or after the last (the
    // final packet here) it never hears of.
    let first = *released.iter().min().unwrap();
    let last = *released.iter().max().unwrap();
    let (recoverable, unrecoverable): (Vec<usize>, Vec<usize>) = dropped
        .iter()
        .partition(|&&k| k > first && released.contains(&(k + 1)));
    let known_lost = unrecoverable
        .iter()
        .filter(|&&k| first < k && k < last)
        .count() as u64;
    // The seed's promise (see LOSS_SEED): both branches, and an end the
    // node cannot see.
    assert_eq!(
        (recoverable.len(), unrecoverable.as_slice()),
        (28, [98, 140, 141, 238, 600].as_slice()),
        "{dropped:?}"
    );
    assert_eq!(known_lost, 4);

    let line = log_line(&log, "Dropped stream");
    assert_eq!(
        field(&line, "recovered"),
        recoverable.len() as u64,
        "{line}"
    );
    assert_eq!(field(&line, "lost"), known_lost, "{line}");
    assert_eq!(field(&line, "received"), t.forwarded, "{line}");
    for counter in ["duplicates", "reordered", "late", "malformed", "restarts"] {
        assert_eq!(field(&line, counter), 0, "{counter}: {line}");
    }

    // The recording, frame by frame: the input from the first packet the
    // node received on, placed at its start frame; silent (no concealment)
    // exactly in the frames of the unrecoverable packets.
    let start = field(&log_line(&log, "New stream"), "start_frame") as usize;
    let offset = packets[first].start;
    let at = |frame: usize| start + frame - offset;
    let heard = |frame: usize| recording.get(at(frame)).map_or(0, |f| f.0);
    assert!(recording.iter().all(|f| f.0 == f.1), "mono is centred");
    let silent: HashSet<usize> = unrecoverable.iter().copied().collect();
    for (k, frames) in packets.iter().enumerate().skip(first) {
        let missing = silent.contains(&k);
        for frame in frames.clone() {
            let want = if missing { 0 } else { track[frame] };
            assert_eq!(
                heard(frame),
                want,
                "frame {frame} of packet {k} (missing: {missing})"
            );
        }
        // A missing packet really differs from the input, not by chance.
        if missing {
            assert!(frames.clone().any(|f| track[f] != 0), "packet {k}");
        }
    }
    eprintln!(
        "{} of {} packets dropped: {} recovered, {known_lost} lost, {} unknown to the node",
        dropped.len(),
        packets.len(),
        recoverable.len(),
        unrecoverable.len() as u64 - known_lost
    );
    // Nothing else is heard: silence before the stream and after it.
    let end = at(packets[last].end).min(recording.len());
    assert!(
        recording[..start].iter().all(|f| f.0 == 0) && recording[end..].iter().all(|f| f.0 == 0),
        "sound outside the stream"
    );
}
