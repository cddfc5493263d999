//! Scenario tests over real UDP on 127.0.0.1: client sockets → the proxy
//! (in-process) → a receiver socket. Loopback keeps order, so what the
//! receiver gets must equal the proxy's `released_seqs` exactly.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use audioimpair::{Config, ImpairmentConfig, LossModel, Proxy, ProxyHandle, SourceTruth};
use common::{client, mono, wait_for, Receiver};

const MS: Duration = Duration::from_millis(1);

fn start(forward: SocketAddr, impairment: ImpairmentConfig, seed: u64) -> ProxyHandle {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), forward);
    config.impairment = impairment;
    config.seed = seed;
    Proxy::start(config).unwrap()
}

/// Waits until the proxy has decided every one of `sent` datagrams and
/// released everything it scheduled, and the receiver has it all.
fn settle(proxy: &ProxyHandle, rx: &Receiver, sent: u64) -> Vec<SourceTruth> {
    wait_for("the proxy to release everything", || {
        let t = proxy.ground_truth();
        let received: u64 = t.sources.iter().map(|s| s.received).sum();
        let pending: u64 = t.sources.iter().map(|s| s.pending).sum();
        let forwarded: u64 = t.sources.iter().map(|s| s.forwarded).sum();
        received == sent && pending == 0 && rx.count() as u64 == forwarded
    });
    proxy.ground_truth().sources
}

/// The impairment profile of the end-to-end test of issue 7.
fn e2e_profile() -> ImpairmentConfig {
    ImpairmentConfig {
        loss: LossModel::bernoulli(0.05).unwrap(),
        reorder: 0.05,
        duplicate: 0.01,
        jitter: 10 * MS,
        ..Default::default()
    }
}

/// Sends datagrams `0..n` of `samples` samples from `socket`, one every
/// `interval` (even a "burst" is paced a little, so a small default socket
/// buffer on a loaded machine cannot drop datagrams before the proxy).
fn send_paced(
    socket: &std::net::UdpSocket,
    to: SocketAddr,
    n: u32,
    samples: usize,
    interval: Duration,
) {
    let start = Instant::now();
    for seq in 0..n {
        // Pacing only (a deadline schedule); correctness never depends on it.
        let due = start + interval * seq;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        socket.send_to(&mono(seq, samples), to).unwrap();
    }
}

#[test]
fn receiver_gets_exactly_the_released_seqs() {
    let rx = Receiver::start(false);
    let proxy = start(rx.addr, e2e_profile(), 7);
    let a = client();
    send_paced(&a, proxy.listen_addr(), 1000, 32, MS);
    let truth = settle(&proxy, &rx, 1000);
    assert_eq!(truth.len(), 1);
    let t = &truth[0];
    assert_eq!(t.client, a.local_addr().unwrap());
    assert_eq!(rx.seqs_from(t.upstream), t.released_seqs);
    assert_eq!(t.forwarded as usize, t.released_seqs.len());
    // Every datagram is accounted for, and the totals add up.
    assert_eq!(t.received + t.duplicated, t.forwarded + t.dropped);
    let mut all: Vec<u32> = t
        .released_seqs
        .iter()
        .chain(&t.dropped_seqs)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert!(t.dropped > 20 && t.dropped < 90, "{t:?}");
    assert!(t.reordered > 0 && t.duplicated > 0, "{t:?}");
    assert_eq!(t.dropped_by_rate, 0);
    // The payloads arrive intact.
    let got = rx.snapshot();
    assert!(got.iter().all(|g| g.bytes.len() == 4 + 64));
    assert_eq!(got[0].bytes, mono(t.released_seqs[0], 32));
}

#[test]
fn clients_get_distinct_upstreams_and_their_replies() {
    let rx = Receiver::start(true);
    let proxy = start(rx.addr, ImpairmentConfig::default(), 0);
    let clients: Vec<_> = (0..3).map(|_| client()).collect();
    for (i, c) in clients.iter().enumerate() {
        for seq in 0..10 {
            c.send_to(&mono(seq + 100 * i as u32, 4), proxy.listen_addr())
                .unwrap();
        }
    }
    let truth = settle(&proxy, &rx, 30);
    let upstreams: HashSet<SocketAddr> = truth.iter().map(|t| t.upstream).collect();
    assert_eq!(upstreams.len(), 3, "one upstream socket per client");
    for (i, c) in clients.iter().enumerate() {
        let t = truth
            .iter()
            .find(|t| t.client == c.local_addr().unwrap())
            .expect("client listed");
        assert_ne!(t.upstream, proxy.listen_addr());
        assert_eq!(
            t.upstream.ip(),
            rx.addr.ip(),
            "the address the receiver sees"
        );
        let want: Vec<u32> = (0..10).map(|s| s + 100 * i as u32).collect();
        assert_eq!(rx.seqs_from(t.upstream), want);
        // The echoes come back to this client, from the listen address.
        for &seq in &want {
            let mut buf = [0u8; 64];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, proxy.listen_addr());
            assert_eq!(&buf[..n], &mono(seq, 4)[..]);
        }
    }
    wait_for("replies to be counted", || {
        proxy.ground_truth().sources.iter().all(|s| s.replies == 10)
    });
}

#[test]
fn same_seed_same_decisions_over_real_sockets() {
    let run = |seed: u64| {
        let rx = Receiver::start(false);
        let proxy = start(
            rx.addr,
            ImpairmentConfig {
                loss: LossModel::gilbert_elliott(0.1, 3.0).unwrap(),
                duplicate: 0.05,
                ..Default::default()
            },
            seed,
        );
        let c = client();
        // Fast: timing must not matter to the decisions.
        send_paced(&c, proxy.listen_addr(), 300, 8, MS / 10);
        let t = settle(&proxy, &rx, 300).remove(0);
        assert_eq!(rx.seqs_from(t.upstream), t.released_seqs);
        // Decisions only: where a copy (0-2 ms after its original) lands
        // among later datagrams depends on the sending speed.
        let mut dups = t.duplicated_seqs;
        dups.sort_unstable();
        (t.dropped_seqs, dups)
    };
    let first = run(11);
    assert!(!first.0.is_empty() && !first.1.is_empty());
    assert_eq!(run(11), first);
    assert_ne!(run(12).0, first.0);
}

#[test]
fn delay_holds_every_datagram() {
    let rx = Receiver::start(false);
    let proxy = start(
        rx.addr,
        ImpairmentConfig {
            delay: 80 * MS,
            ..Default::default()
        },
        0,
    );
    let c = client();
    let sent_at = Instant::now();
    for seq in 0..5 {
        c.send_to(&mono(seq, 4), proxy.listen_addr()).unwrap();
    }
    settle(&proxy, &rx, 5);
    for g in rx.snapshot() {
        assert!(g.at - sent_at >= 80 * MS, "{:?}", g.at - sent_at);
    }
}

#[test]
fn rate_limit_spreads_a_burst_and_drops_beyond_one_second() {
    let rx = Receiver::start(false);
    // 800 kbit/s = 100 kB/s; 150 datagrams of 1004 B within 30 ms is 1.5 s
    // of link.
    let proxy = start(
        rx.addr,
        ImpairmentConfig {
            rate_kbps: Some(800.0),
            ..Default::default()
        },
        0,
    );
    let c = client();
    send_paced(&c, proxy.listen_addr(), 150, 500, MS / 5);
    let t = settle(&proxy, &rx, 150).remove(0);
    assert_eq!(rx.seqs_from(t.upstream), t.released_seqs);
    // About 1 s + the bucket's 1500 B go through, the rest is dropped.
    assert!((90..=110).contains(&t.forwarded), "{t:?}");
    assert_eq!(t.dropped, t.dropped_by_rate);
    assert_eq!(t.forwarded + t.dropped, 150);
    // The queue is FIFO, and the drops come once it is full (a datagram
    // arriving a little later may fit again as the queue drains).
    assert!(t.released_seqs.windows(2).all(|w| w[0] < w[1]), "{t:?}");
    assert!(t.released_seqs[..90].iter().copied().eq(0..90), "{t:?}");
    let got = rx.snapshot();
    let span = got.last().unwrap().at - got[0].at;
    assert!(span >= 900 * MS, "{span:?}");
}

#[test]
fn stop_is_prompt_and_reports_what_was_never_sent() {
    let rx = Receiver::start(false);
    let proxy = start(
        rx.addr,
        ImpairmentConfig {
            delay: Duration::from_secs(30),
            ..Default::default()
        },
        0,
    );
    let c = client();
    for seq in 0..5 {
        c.send_to(&mono(seq, 4), proxy.listen_addr()).unwrap();
    }
    wait_for("5 datagrams", || {
        proxy
            .ground_truth()
            .sources
            .first()
            .is_some_and(|s| s.received == 5)
    });
    let stopped = Instant::now();
    let truth = proxy.stop();
    assert!(stopped.elapsed() < Duration::from_secs(2));
    let t = &truth.sources[0];
    assert_eq!((t.pending, t.forwarded), (5, 0));
    assert_eq!(rx.count(), 0);
}

#[test]
fn short_datagrams_are_forwarded_but_not_listed() {
    let rx = Receiver::start(false);
    let proxy = start(rx.addr, ImpairmentConfig::default(), 0);
    let c = client();
    c.send_to(b"hello", proxy.listen_addr()).unwrap();
    c.send_to(&mono(0, 1), proxy.listen_addr()).unwrap();
    let t = settle(&proxy, &rx, 2).remove(0);
    assert_eq!((t.received, t.forwarded), (2, 2));
    assert_eq!(t.released_seqs, vec![0]);
    assert_eq!(rx.snapshot()[0].bytes, b"hello");
}

#[test]
fn ipv6_forwarding_when_available() {
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no ::1 on this machine");
        return;
    };
    let target = probe.local_addr().unwrap();
    probe.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let mut config = Config::new("[::1]:0".parse().unwrap(), target);
    config.seed = 1;
    let proxy = Proxy::start(config).unwrap();
    let c = std::net::UdpSocket::bind("[::1]:0").unwrap();
    c.send_to(&mono(9, 2), proxy.listen_addr()).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = probe.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &mono(9, 2)[..]);
    let truth = proxy.stop();
    assert_eq!(truth.sources[0].upstream, from);
    assert_eq!(truth.sources[0].released_seqs, vec![9]);
}
