//! A `TcpServer` dropped right before its process exits still delivers
//! every queued frame to every client. The server runs in a child process
//! (this test binary run again): it waits for 50 clients, broadcasts the
//! whole stream as fast as it can queue it, drops the server and calls
//! `exit` at once, as a program does when its track has ended. The parent's
//! clients must each read every frame, then the end of the stream.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use proto::message::encode_samples;
use proto::{Message, Spec, TcpClient, TcpServer, TcpServerConfig};

const CHILD: &str = "PROTO_TCP_DRAIN_CHILD";
const CLIENTS: usize = 50;
const FRAMES: usize = 200;
/// Samples per frame: a 10 ms stereo message at 44.1 kHz.
const SAMPLES: usize = 882;

fn sample(frame: usize, i: usize) -> i16 {
    (frame * 7919 + i * 31) as i16
}

/// The child: serve (telling the parent the port through the file named
/// by the environment), broadcast, drop, exit. Never returns.
fn serve_and_exit(port_file: &std::ffi::OsStr) -> ! {
    let server = TcpServer::bind("127.0.0.1:0", TcpServerConfig::default()).unwrap();
    server
        .set_new_client_message(Some(&Spec::int16(2, 44_100).to_bytes()))
        .unwrap();
    let tmp = std::path::PathBuf::from(port_file).with_extension("tmp");
    std::fs::write(&tmp, server.local_addr().port().to_string()).unwrap();
    std::fs::rename(&tmp, port_file).unwrap();
    let start = Instant::now();
    while server.client_count() < CLIENTS {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "clients never came"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let mut message = Vec::new();
    for f in 0..FRAMES {
        let samples: Vec<i16> = (0..SAMPLES).map(|i| sample(f, i)).collect();
        message.clear();
        encode_samples(&samples, &mut message);
        assert_eq!(server.broadcast(&message).unwrap(), CLIENTS);
    }
    drop(server);
    std::process::exit(0);
}

#[test]
fn every_client_gets_every_frame_when_the_process_exits_after_drop() {
    if let Some(port_file) = std::env::var_os(CHILD) {
        serve_and_exit(&port_file);
    }
    let port_file = std::env::temp_dir().join(format!("proto-tcp-drain-{}", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "every_client_gets_every_frame_when_the_process_exits_after_drop",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &port_file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let port: u16 = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.parse().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the child never served"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&port_file);
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let mut client = TcpClient::from_stream(stream, 1 << 20).unwrap();
                let mut frames = Vec::new();
                loop {
                    match client.recv_message() {
                        Ok(Some(Message::Samples(s))) => frames.push(s),
                        Ok(Some(Message::Spec(_))) => {}
                        // The end of the stream, or a reset after it.
                        Ok(None) | Err(_) => return frames,
                    }
                }
            })
        })
        .collect();
    let mut short = Vec::new();
    for (n, reader) in readers.into_iter().enumerate() {
        let frames = reader.join().unwrap();
        if frames.len() != FRAMES {
            short.push((n, frames.len()));
            continue;
        }
        for (f, samples) in frames.iter().enumerate() {
            assert!(
                samples.iter().enumerate().all(|(i, &s)| s == sample(f, i)),
                "client {n}, frame {f} differs"
            );
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(
        short.is_empty(),
        "clients that missed frames (client, frames received of {FRAMES}): {short:?}"
    );
}
