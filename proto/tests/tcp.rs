//! Scenario tests of the TCP transport over real sockets on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use proto::message::encode_samples;
use proto::{FrameError, Message, RecvError, Spec, TcpClient, TcpServer, TcpServerConfig};

const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or the generous deadline passes.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn server(config: TcpServerConfig) -> TcpServer {
    TcpServer::bind("127.0.0.1:0", config).expect("bind ephemeral port")
}

fn samples_msg(samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_samples(samples, &mut out);
    out
}

#[test]
fn new_client_gets_spec_frame_bytes_first() {
    let server = server(TcpServerConfig::default());
    server
        .set_new_client_message(Some(&Spec::int16(2, 44_100).to_bytes()))
        .unwrap();
    let mut raw = TcpStream::connect(server.local_addr()).unwrap();
    wait_for("client admitted", || server.client_count() == 1);
    server.broadcast(&samples_msg(&[1, -2])).unwrap();

    let mut got = [0u8; 14 + 13];
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    raw.read_exact(&mut got).unwrap();
    assert_eq!(
        got,
        [
            // frame 1: length 10, Spec(2 ch, 44100 Hz, 16 bit, int)
            0x0A, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x44, 0xAC, 0x00, 0x00, 0x10, 0x00, 0x02,
            // frame 2: length 9, Samples(count 2: 1, -2)
            0x09, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0xFE, 0xFF,
        ]
    );
}

#[test]
fn late_joiner_receives_spec_before_samples() {
    let server = server(TcpServerConfig::default());
    let spec = Spec::int16(1, 48_000);
    server
        .set_new_client_message(Some(&spec.to_bytes()))
        .unwrap();

    let mut early = TcpClient::connect(server.local_addr()).unwrap();
    early.set_read_timeout(Some(DEADLINE)).unwrap();
    wait_for("early client admitted", || server.client_count() == 1);
    for i in 0..50i16 {
        server.broadcast(&samples_msg(&[i, i])).unwrap();
    }
    let mut late = TcpClient::connect(server.local_addr()).unwrap();
    late.set_read_timeout(Some(DEADLINE)).unwrap();
    wait_for("late client admitted", || server.client_count() == 2);
    for i in 50..60i16 {
        server.broadcast(&samples_msg(&[i, i])).unwrap();
    }

    assert_eq!(early.recv_message().unwrap(), Some(Message::Spec(spec)));
    for i in 0..60i16 {
        assert_eq!(
            early.recv_message().unwrap(),
            Some(Message::Samples(vec![i, i]))
        );
    }
    // The late joiner sees the Spec first, then exactly the Samples sent after it joined.
    assert_eq!(late.recv_message().unwrap(), Some(Message::Spec(spec)));
    for i in 50..60i16 {
        assert_eq!(
            late.recv_message().unwrap(),
            Some(Message::Samples(vec![i, i]))
        );
    }
}

#[test]
fn announce_reaches_current_and_future_clients_once() {
    let server = server(TcpServerConfig::default());
    let first = Spec::int16(1, 44_100);
    let second = Spec::int16(2, 48_000);
    server
        .set_new_client_message(Some(&first.to_bytes()))
        .unwrap();
    let mut a = TcpClient::connect(server.local_addr()).unwrap();
    a.set_read_timeout(Some(DEADLINE)).unwrap();
    wait_for("client a admitted", || server.client_count() == 1);
    server.announce(&second.to_bytes()).unwrap();
    let mut b = TcpClient::connect(server.local_addr()).unwrap();
    b.set_read_timeout(Some(DEADLINE)).unwrap();
    wait_for("client b admitted", || server.client_count() == 2);
    server.broadcast(&samples_msg(&[7])).unwrap();

    assert_eq!(a.recv_message().unwrap(), Some(Message::Spec(first)));
    assert_eq!(a.recv_message().unwrap(), Some(Message::Spec(second)));
    assert_eq!(a.recv_message().unwrap(), Some(Message::Samples(vec![7])));
    assert_eq!(b.recv_message().unwrap(), Some(Message::Spec(second)));
    assert_eq!(b.recv_message().unwrap(), Some(Message::Samples(vec![7])));
}

#[test]
fn stalled_client_is_dropped_while_others_keep_receiving() {
    let server = server(TcpServerConfig {
        queue_frames: 8,
        write_timeout: Duration::from_secs(30),
    });
    // A client that connects and never reads.
    let stalled = TcpStream::connect(server.local_addr()).unwrap();
    wait_for("stalled client admitted", || server.client_count() == 1);

    // A client that reads everything and reports each frame's index.
    let mut reader = TcpClient::connect(server.local_addr()).unwrap();
    reader.set_read_timeout(Some(DEADLINE)).unwrap();
    wait_for("reader admitted", || server.client_count() == 2);
    let (progress, received) = mpsc::channel::<u32>();
    let reader_thread = thread::spawn(move || {
        while let Some(frame) = reader.recv_frame().expect("reader keeps receiving") {
            let index = u32::from_le_bytes(frame[..4].try_into().unwrap());
            if progress.send(index).is_err() {
                break;
            }
        }
    });

    // Broadcast 64 KiB frames, never more than 4 ahead of the reader, until
    // the stalled client has filled its socket buffers and its queue.
    let payload_len = 64 * 1024;
    let mut next_expected = 0u32;
    let mut sent = 0u32;
    let broadcast = |index: u32| {
        let mut msg = vec![0u8; payload_len];
        msg[..4].copy_from_slice(&index.to_le_bytes());
        server.broadcast(&msg).unwrap()
    };
    let wait_reader = |upto: u32, next_expected: &mut u32| {
        while *next_expected < upto {
            let index = received.recv_timeout(DEADLINE).expect("reader progresses");
            assert_eq!(index, *next_expected, "reader sees every frame in order");
            *next_expected += 1;
        }
    };
    while server.client_count() == 2 {
        assert!(
            sent < 4000,
            "stalled client never dropped after {sent} frames"
        );
        broadcast(sent);
        sent += 1;
        wait_reader(sent.saturating_sub(4), &mut next_expected);
    }
    // The reader is still served after the stalled client went away.
    for _ in 0..20 {
        assert_eq!(broadcast(sent), 1);
        sent += 1;
        wait_reader(sent.saturating_sub(4), &mut next_expected);
    }
    wait_reader(sent, &mut next_expected);
    assert_eq!(server.client_count(), 1);

    // The stalled client's connection was closed by the server: draining it ends.
    let mut stalled = stalled;
    stalled.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match stalled.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(server);
    reader_thread.join().unwrap();
}

#[test]
fn disconnected_client_leaves_the_broadcast_set() {
    let server = server(TcpServerConfig::default());
    let client = TcpStream::connect(server.local_addr()).unwrap();
    wait_for("client admitted", || server.client_count() == 1);
    drop(client);
    // The server notices when a write fails; keep sending until it does.
    wait_for("closed client removed", || {
        let _ = server.broadcast(&samples_msg(&[0; 256]));
        server.client_count() == 0
    });
}

fn serve_raw(bytes: Vec<u8>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = s.write_all(&bytes);
    });
    addr
}

#[test]
fn client_rejects_oversized_frame_without_allocating_it() {
    let addr = serve_raw(vec![0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]);
    let mut client = TcpClient::connect(addr).unwrap();
    client.set_read_timeout(Some(DEADLINE)).unwrap();
    match client.recv_message() {
        Err(RecvError::Frame(FrameError::TooLarge { len, max })) => {
            assert_eq!(len, 0x7FFF_FFFF);
            assert_eq!(max, 16 * 1024 * 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn client_reports_garbage_message_and_truncation() {
    let mut bytes = vec![3, 0, 0, 0, 9, 9, 9]; // unknown type 9
    bytes.extend_from_slice(&[20, 0, 0, 0, 2, 1]); // truncated frame
    let addr = serve_raw(bytes);
    let mut client = TcpClient::connect(addr).unwrap();
    client.set_read_timeout(Some(DEADLINE)).unwrap();
    assert!(matches!(
        client.recv_message(),
        Err(RecvError::Message(proto::MessageError::UnknownType(9)))
    ));
    assert!(matches!(
        client.recv_message(),
        Err(RecvError::Frame(FrameError::Truncated {
            expected: 24,
            got: 6
        }))
    ));
}
