//! Packet-loss concealment end to end: three streamers through
//! `audioimpair` (5 % loss, 10 ms jitter, fixed seed) into a node with
//! `--plc predict`. The recording differs from the offline mix of what
//! arrived (lost packets silent) only inside the frames the event log's
//! `Concealed frames` lines name, and each source's `concealed_frames`
//! counter is the sum of its lines.

mod common;

use std::collections::HashSet;

use common::*;

const PACKET: usize = 441;

#[test]
fn only_the_frames_the_log_names_as_concealed_differ() {
    let _serial = serial();
    let dir = temp_dir("impaired-plc");
    let rig = Rig::start(&dir, "500", &["--plc", "predict"]);
    let log = rig.log.clone();
    let ProxiedRun {
        tracks,
        clients,
        truth,
        recording,
    } = stream_through_proxy(
        rig,
        &dir,
        &["--loss", "0.05", "--jitter", "10", "--seed", "11"],
        20,
    );
    let mut heard_tracks = Vec::new();
    let mut concealed: Vec<(u64, u64)> = Vec::new();
    for (client, track) in clients.iter().zip(&tracks) {
        let t = truth.source(*client).expect("the proxy saw every streamer");
        assert!(t.dropped > 0, "the impairments happened: {t:?}");
        let events = events_of(&log, t.upstream);
        let lines: Vec<(u64, u64)> = events
            .iter()
            .filter(|l| l.starts_with("Concealed frames"))
            .map(|l| (field(l, "first_frame"), field(l, "frames")))
            .collect();
        let dropped_line = events.last().unwrap();
        assert_eq!(
            field(dropped_line, "concealed_frames"),
            lines.iter().map(|l| l.1).sum::<u64>(),
            "{dropped_line}"
        );
        // Every gap inside the stream, and its end.
        assert!(lines.len() >= 2, "{events:?}");
        assert_eq!(field(dropped_line, "late"), 0, "{dropped_line}");
        concealed.extend(lines);
        // What arrived: the track minus every packet that never played.
        let released: HashSet<u32> = t.released_seqs.iter().copied().collect();
        let before_first: HashSet<u32> = t.before_first_seqs.iter().copied().collect();
        let first = t.released_seqs[0];
        let mut heard = track.clone();
        for (k, chunk) in heard.chunks_mut(PACKET).enumerate() {
            let seq = k as u32;
            if !released.contains(&seq) || before_first.contains(&seq) || seq < first {
                chunk.fill(0);
            }
        }
        let start = start_frames(&log, t.upstream)[0];
        heard_tracks.push((start, heard[first as usize * PACKET..].to_vec()));
    }
    let placed: Vec<(u64, &[i16])> = heard_tracks
        .iter()
        .map(|(s, t)| (*s, t.as_slice()))
        .collect();
    let want = offline_mix(recording.len(), &placed);
    let inside = |i: usize| {
        concealed
            .iter()
            .any(|&(f, n)| (f..f + n).contains(&(i as u64)))
    };
    let mut differing = 0;
    for (i, (got, want)) in recording.iter().zip(&want).enumerate() {
        if got != want {
            assert!(
                inside(i),
                "frame {i} differs outside every concealed gap: {got:?} vs {want:?}"
            );
            differing += 1;
        }
    }
    // The concealment is audible: most concealed frames are not silence.
    let total: u64 = concealed.iter().map(|c| c.1).sum();
    assert!(
        differing as u64 > total / 2,
        "{differing} of {total} concealed frames differ"
    );
}
