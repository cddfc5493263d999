//! A cascade of three nodes on loopback: two sub-mix nodes, two stems
//! each, send their mixes as RTP to a master node, whose recording is
//! exactly the sum of the four stems, each where the event logs say it
//! starts (a stem's start frame in its sub-mix, plus the sub-mix's start
//! frame in the master: RTP timestamps carry the sub-mix's timeline).

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::thread;

use audionode::{Args, Config, NodeHandle};
use common::*;

fn node(dir: &Path, name: &str, args: Args) -> (NodeHandle, std::path::PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        log_file: Some(log.clone()),
        jitter_ms: Some("60".into()),
        sample_rate: RATE,
        max_sources: 8,
        timeout_ms: 500,
        http: "off".into(),
        // The recording is checked against the stems frame by frame, the
        // end of each stream silent: no concealed fade-out tails.
        plc: proto::plc::PlcMode::Off,
        ..args
    };
    (
        audionode::start(Config::from_args(&args, |_| None).unwrap()).unwrap(),
        log,
    )
}

#[test]
fn three_nodes_record_exactly_the_sum_of_four_stems() {
    let dir = temp_dir("cascade");
    let recorder = Collector::start();
    let (master, master_log) = node(
        &dir,
        "master",
        Args {
            dest: vec![recorder.addr.to_string()],
            rtp_listen: vec!["127.0.0.1:0".into()],
            ..Default::default()
        },
    );
    let master_rtp = master.rtp_listen_addrs()[0];
    let subs: Vec<_> = (0..2)
        .map(|k| {
            node(
                &dir,
                &format!("sub{k}"),
                Args {
                    rtp_dest: vec![master_rtp.to_string()],
                    ..Default::default()
                },
            )
        })
        .collect();
    // Four stems, small enough that no sum clips; 2 s each.
    let packets = 200;
    let stems: Vec<Vec<i16>> = (0..4)
        .map(|k| {
            signal(packets * CHUNK, 10 + k)
                .iter()
                .map(|s| s / 4)
                .collect()
        })
        .collect();
    let senders: Vec<_> = stems
        .iter()
        .enumerate()
        .map(|(k, stem)| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let from = socket.local_addr().unwrap();
            let to = subs[k / 2].0.local_addr();
            let stem = stem.clone();
            let order: Vec<usize> = (0..packets).collect();
            let t = thread::spawn(move || send_paced(&socket, to, &stem, 0, &order));
            (from, t)
        })
        .collect();
    let mut froms = Vec::new();
    for (from, t) in senders {
        t.join().unwrap();
        froms.push(from);
    }
    // Each sub-mix ends its stream at the timeout, then the master's.
    wait_for("the master to drop both sub-mixes", || {
        let text = std::fs::read_to_string(&master_log).unwrap_or_default();
        text.matches("Dropped stream").count() == 2
    });
    let mut sub_logs = Vec::new();
    let mut sub_addrs = Vec::new();
    for (sub, log) in subs {
        sub_addrs.push(sub.local_addr());
        let snapshot = sub.stop().unwrap();
        assert_eq!(snapshot.node.streams_started, 2);
        sub_logs.push(log);
    }
    let snapshot = master.stop().unwrap();
    assert_eq!(snapshot.node.streams_started, 2);
    let recorded = recorder.finish();
    // Where each sub-mix starts in the master: the New stream line of the
    // SSRC named after the sub-mix (its RTCP CNAME is `audionode@` and
    // its listening address).
    let master_text = std::fs::read_to_string(&master_log).unwrap();
    let start_in_master = |sub: std::net::SocketAddr| -> usize {
        let line = master_text
            .lines()
            .find(|l| l.contains(&format!(r#"Named name="audionode@{sub}""#)))
            .unwrap_or_else(|| panic!("no stream named after {sub}: {master_text}"));
        let id = line
            .split("] [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .unwrap()
            .trim();
        assert!(id.starts_with("ssrc:"), "{line}");
        start_frame(&master_log, id)
    };
    let mut want = vec![0i32; recorded.len()];
    for (k, stem) in stems.iter().enumerate() {
        let in_sub = start_frame(&sub_logs[k / 2], froms[k]);
        let in_master = start_in_master(sub_addrs[k / 2]);
        for (i, &s) in stem.iter().enumerate() {
            if let Some(w) = want.get_mut(in_master + in_sub + i) {
                *w += i32::from(s);
            }
        }
    }
    let left: Vec<i32> = recorded.iter().map(|&(l, _)| i32::from(l)).collect();
    let right: Vec<i32> = recorded.iter().map(|&(_, r)| i32::from(r)).collect();
    if let Some(i) = left.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "first difference at frame {i}: got {}, want {}",
            left[i], want[i]
        );
    }
    assert_eq!(left, right);
    assert!(want.iter().any(|&s| s != 0));
}
