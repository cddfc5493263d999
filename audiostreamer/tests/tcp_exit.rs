//! The real binary serving TCP to many clients until its track ends: every
//! client must receive the track up to its very last sample before the
//! process exits. The streamer waits for the first client
//! (`--wait-for-client`); the others connect right after, so each gets a
//! suffix of the track that must end with the track's end.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;
use proto::{Message, TcpClient};

const CLIENTS: usize = 40;

#[test]
fn every_tcp_client_gets_the_end_of_the_track_before_exit() {
    let dir = TempDir::new("tcp-exit");
    let wav = dir.path("a.wav");
    // 1 s at --speed 2: long enough for every client to connect.
    let track = test_signal(44_100);
    write_i16(&wav, 1, 44_100, &track);
    let mut child = Command::new(env!("CARGO_BIN_EXE_audiostreamer"))
        .args([
            wav.to_str().unwrap(),
            "--tcp-listen",
            "127.0.0.1:0",
            "--wait-for-client",
            "--speed",
            "2",
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the serving line").unwrap();
        if let Some((_, addr)) = line.split_once("16-bit) on ") {
            break addr.trim().to_owned();
        }
    };
    // Keep reading the log so the child never blocks on a full pipe.
    let log = thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stream = TcpStream::connect(&addr).unwrap();
            thread::spawn(move || {
                let mut client = TcpClient::from_stream(stream, 1 << 20).unwrap();
                client
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let mut samples = Vec::new();
                while let Ok(Some(message)) = client.recv_message() {
                    if let Message::Samples(s) = message {
                        samples.extend(s);
                    }
                }
                samples
            })
        })
        .collect();
    let got: Vec<Vec<i16>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(child.wait().unwrap().success());
    let log = log.join().unwrap();
    let short: Vec<(usize, usize)> = got
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_empty() || !track.ends_with(s))
        .map(|(n, s)| (n, s.len()))
        .collect();
    assert!(
        short.is_empty(),
        "clients without the end of the track (client, samples): {short:?}\n{log:#?}"
    );
    // The first client (the one waited for) has all of it.
    assert!(got.contains(&track));
}
