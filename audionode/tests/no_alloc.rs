//! The mixing thread allocates nothing in steady state: 256 steady sources
//! through the whole path the `mix` thread runs (ingress decoding, the
//! core, every output into the outbox: stats frames into the triple
//! buffer, blocks into the TCP fan-out's ring, receiver reports for the
//! RTP sources), counted by a global allocator over 1,000 blocks. A
//! quarter of the sources are RTP streams: most stereo L16, every eighth
//! source mono with RFC 2198 redundancy that loses every tenth packet (so
//! packets are restored from copies while counting); in the measured
//! blocks every other source loses one packet in 29, which concealment
//! fills. A second test does the same for Opus sources: the mixing
//! thread's side of their path (handing the payload to the decode thread's
//! ring, taking the decoded samples back into the core) allocates nothing
//! either; the decode thread itself is not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use audionode::engine::EngineConfig;
use audionode::nodecore::ingress;
use audionode::nodecore::{CoreConfig, Input, NodeCore, Output};
use audionode::opus_source;
use audionode::outbox;
use audionode::source::{JitterTarget, SourceParams};
use proto::red::{encode_red, RedBlock};
use proto::rtp::{encode_l16, RtpHeader};
use proto::rtp_map::RtpMap;
use proto::udp_mono::{encode_mono, mono_datagram_len};

/// Counts allocations made on a thread while its flag is set.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's pointer and layouts.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const SOURCES: usize = 256;
const RATE: u32 = 44_100;
const CHUNK: usize = 441;
const BLOCK: usize = 220;

fn core_config(sources: usize) -> CoreConfig {
    CoreConfig {
        engine: EngineConfig {
            source: SourceParams {
                rate: RATE,
                block_frames: BLOCK,
                target: JitterTarget::FixedMs(20.0),
                drift_warmup: 100,
                drift_band_ms: 3.0,
                events_per_second: 20,
                plc: proto::plc::PlcMode::Predict,
            },
            timeout: Duration::from_secs(1),
            max_sources: sources,
            max_datagram_bytes: 4 + 2 * 8192,
        },
        log_lines_per_second: 200,
        idle_wait: Duration::from_millis(50),
    }
}

/// What one round's outputs were.
#[derive(Default)]
struct Pumped {
    blocks: u64,
    events: u64,
    stats_frames: u64,
}

/// Pumps `core` at every block deadline from `t` until `next`, as the run
/// loop does (each wake-up having `received` datagrams), handing its
/// outputs to `outbox`.
fn pump(
    core: &mut NodeCore,
    outbox: &mut outbox::Outbox,
    received: usize,
    t: Duration,
    next: Duration,
) -> Pumped {
    let mut out = Pumped::default();
    let mut now = t;
    while now < next {
        core.handle_input(Input::Timeout {
            now,
            received,
            batch_full: false,
        });
        let wake = loop {
            match core.poll_output() {
                Output::Block(block) => {
                    out.blocks += 1;
                    outbox.push_block(block);
                }
                Output::Event(event) => {
                    out.events += 1;
                    outbox.push_event(event);
                }
                Output::Stats => {
                    out.stats_frames += 1;
                    outbox.publish_stats(core)
                }
                Output::Report(_) => out.events += 1,
                Output::Timeout(wake) => break wake,
            }
        };
        now = wake.at.max(now + Duration::from_micros(100));
    }
    out
}

fn chunk_time(k: u64) -> Duration {
    Duration::from_nanos(k * CHUNK as u64 * 1_000_000_000 / u64::from(RATE))
}

#[test]
fn steady_state_allocates_nothing_over_1000_blocks() {
    let mut core = NodeCore::new(core_config(SOURCES));
    let (mut outbox, mut readers) = outbox::outbox(SOURCES, 2 * RATE as usize);
    let addrs: Vec<SocketAddr> = (0..SOURCES)
        .map(|k| SocketAddr::from(([10, 0, (k / 250) as u8, (k % 250) as u8 + 1], 5000)))
        .collect();
    let samples: Vec<i16> = (0..CHUNK as i32).map(|i| (i * 37 % 2000) as i16).collect();
    let stereo: Vec<i16> = samples.iter().flat_map(|&s| [s, -s]).collect();
    let is_rtp = |k: usize| k % 4 == 3;
    let is_red = |k: usize| k % 8 == 7;
    let copy: Vec<u8> = samples.iter().flat_map(|s| s.to_be_bytes()).collect();
    let rtp_map = RtpMap::defaults_for(RATE);
    let mut datagrams: Vec<Vec<u8>> = (0..SOURCES)
        .map(|k| {
            let mut d = vec![0; mono_datagram_len(2 * CHUNK) + 12 + 8];
            if !is_rtp(k) {
                d.truncate(mono_datagram_len(CHUNK));
                encode_mono(0, &samples, &mut d).unwrap();
            }
            d
        })
        .collect();
    // Round k: the packets of time k, then every block until round k + 1;
    // returns the blocks, events and stats frames it produced.
    let mut run = |core: &mut NodeCore, k: u64, counting: bool| {
        let (blocks, events, stats_frames);
        let t = chunk_time(k);
        COUNTING.with(|c| c.set(counting));
        for (i, (d, &from)) in datagrams.iter_mut().zip(&addrs).enumerate() {
            if counting && k > 0 && !is_red(i) && (k as usize + i) % 29 == 0 {
                // Lost: the node conceals it.
                continue;
            }
            let packet = if is_red(i) {
                if k % 10 == 5 {
                    continue;
                }
                let header = RtpHeader {
                    marker: false,
                    payload_type: proto::rtp_map::PT_RED_DEFAULT,
                    seq: k as u16,
                    timestamp: (k as u32).wrapping_mul(CHUNK as u32),
                    ssrc: i as u32,
                };
                let block = RedBlock {
                    payload_type: 11,
                    timestamp_offset: CHUNK as u16,
                    data: &copy,
                };
                let blocks: &[RedBlock<'_>] = if k == 0 { &[] } else { &[block] };
                let len = encode_red(&header, blocks, 11, &copy, d).unwrap();
                ingress::decode_rtp(&d[..len], &rtp_map, RATE, 4 + 2 * 8192, 0).unwrap()
            } else if is_rtp(i) {
                let header = RtpHeader {
                    marker: false,
                    payload_type: 10,
                    seq: k as u16,
                    timestamp: (k as u32).wrapping_mul(CHUNK as u32),
                    ssrc: i as u32,
                };
                encode_l16(&header, &stereo, d).unwrap();
                ingress::decode_rtp(d, &rtp_map, RATE, 4 + 2 * 8192, 0).unwrap()
            } else {
                d[..4].copy_from_slice(&(k as u32).to_be_bytes());
                ingress::decode_mono(d, 4 + 2 * 8192).unwrap()
            };
            core.handle_input(Input::Packet {
                arrived: t,
                read_at: t,
                from,
                packet,
            });
        }
        // Pump at every block deadline until the next packets arrive, as
        // the run loop does.
        let out = pump(core, &mut outbox, SOURCES, t, chunk_time(k + 1));
        (blocks, events, stats_frames) = (out.blocks, out.events, out.stats_frames);
        COUNTING.with(|c| c.set(false));
        // The consumers, off the mixing thread, keep the rings from filling.
        while readers.events.pop().is_ok() {}
        if let Some(ring) = readers.blocks.as_mut() {
            let n = ring.slots();
            if let Ok(chunk) = ring.read_chunk(n) {
                chunk.commit_all();
            }
        }
        (blocks, events, stats_frames)
    };
    // All 256 sources join in the first round: their memory was pooled
    // when the core was made, so joining allocates nothing either.
    run(&mut core, 0, true);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "joining allocated");
    // Warm-up: the drift controllers settle.
    for k in 1..300 {
        run(&mut core, k, false);
    }
    ALLOCATIONS.store(0, Ordering::SeqCst);
    let (mut blocks, mut events, mut stats_frames) = (0, 0, 0);
    let mut k = 300;
    while blocks < 1000 {
        let (b, e, s) = run(&mut core, k, true);
        blocks += b;
        events += e;
        stats_frames += s;
        k += 1;
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {blocks} blocks ({events} events, {stats_frames} stats frames)"
    );
    assert!(
        stats_frames >= 200,
        "stats frames were published: {stats_frames}"
    );
    let c = core.engine().counters();
    assert_eq!(core.engine().active_streams(), SOURCES);
    assert_eq!((c.deadline_misses, c.skipped_blocks), (0, 0));
    readers.stats.read(|frame| {
        assert_eq!(frame.sources().len(), SOURCES);
        // Every source without redundancy lost (and concealed) packets
        // while counting.
        assert!(frame
            .sources()
            .iter()
            .filter(|row| !matches!(row.id, audionode::nodecore::source_id::SourceId::Ssrc(s) if is_red(s as usize)))
            .all(|row| row.stats.concealed_frames >= 10 * CHUNK as u64));
    });
    // The redundant sources lost a tenth of their packets and got every
    // one back (the last stats frame may be up to one round old).
    let snapshot = readers.stats.read(|frame| frame.snapshot());
    let red: Vec<_> = snapshot
        .sources
        .iter()
        .filter(|(id, _)| matches!(id, audionode::nodecore::source_id::SourceId::Ssrc(s) if is_red(*s as usize)))
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(red.len(), SOURCES / 8);
    assert!(
        red.iter().all(|s| s.lost == 0 && s.recovered >= k / 10 - 1),
        "{:?}",
        red[0]
    );
}

#[test]
fn opus_sources_cost_the_mixing_thread_no_allocation() {
    const OPUS_SOURCES: usize = 16;
    /// 10 ms at 48 kHz: one Opus packet.
    const FRAME: usize = 480;
    let mut core = NodeCore::new(core_config(OPUS_SOURCES));
    let (mut outbox, mut readers) = outbox::outbox(OPUS_SOURCES, 2 * RATE as usize);
    let stop = Arc::new(AtomicBool::new(false));
    let (mut opus_in, decoder) = opus_source::spawn(RATE, Arc::clone(&stop), None).unwrap();
    let map = RtpMap::defaults_for(RATE);
    let from = SocketAddr::from(([10, 0, 0, 1], 5004));
    // A second of packets per source, encoded before anything is counted
    // and sent round after round with fresh headers.
    let mut encoder = proto::opus::Encoder::new(1, 64_000, 10).unwrap();
    let payloads: Vec<Vec<u8>> = (0..100)
        .map(|p| {
            let pcm: Vec<i16> = (0..FRAME)
                .map(|i| {
                    let t = (p * FRAME + i) as f32 / 48_000.0;
                    (8000.0 * (t * 440.0 * std::f32::consts::TAU).sin()) as i16
                })
                .collect();
            let mut out = vec![0; proto::opus::MAX_PACKET];
            let n = encoder.encode(&pcm, &mut out).unwrap();
            out.truncate(n);
            out
        })
        .collect();
    let mut datagram = vec![0u8; 12 + proto::opus::MAX_PACKET];
    let mut run = |core: &mut NodeCore, k: u64, counting: bool| {
        let t = chunk_time(k);
        COUNTING.with(|c| c.set(counting));
        let payload = &payloads[k as usize % payloads.len()];
        for source in 0..OPUS_SOURCES {
            let header = RtpHeader {
                marker: false,
                payload_type: proto::opus::PT_OPUS_DEFAULT,
                seq: k as u16,
                timestamp: (k as u32).wrapping_mul(FRAME as u32),
                ssrc: 0x0b05_0000 + source as u32,
            };
            let n = header.write(&mut datagram).unwrap();
            datagram[n..n + payload.len()].copy_from_slice(payload);
            let offered = opus_in.offer(&datagram[..n + payload.len()], &map, from, t, 0);
            assert!(matches!(offered, Some(Ok(()))), "offered: {offered:?}");
        }
        // The decode thread answers in its own time: take back every
        // packet of this round (waiting is not timed), as the run loop's
        // drain does.
        let mut back = 0;
        while back < OPUS_SOURCES {
            match opus_in.decoded.pop() {
                Ok(decoded) => {
                    back += 1;
                    let packet = decoded.input().expect("decoded");
                    core.handle_input(Input::Packet {
                        arrived: decoded.arrived,
                        read_at: t,
                        from: decoded.from,
                        packet,
                    });
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        let blocks = pump(core, &mut outbox, OPUS_SOURCES, t, chunk_time(k + 1)).blocks;
        COUNTING.with(|c| c.set(false));
        while readers.events.pop().is_ok() {}
        if let Some(ring) = readers.blocks.as_mut() {
            let n = ring.slots();
            if let Ok(chunk) = ring.read_chunk(n) {
                chunk.commit_all();
            }
        }
        blocks
    };
    // Warm-up: the streams join (their decoders are made on the decode
    // thread) and the drift controllers settle.
    for k in 0..300 {
        run(&mut core, k, false);
    }
    ALLOCATIONS.store(0, Ordering::SeqCst);
    let (mut blocks, mut k) = (0, 300);
    while blocks < 1000 {
        blocks += run(&mut core, k, true);
        k += 1;
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {blocks} blocks"
    );
    assert_eq!(core.engine().active_streams(), OPUS_SOURCES);
    stop.store(true, Ordering::Relaxed);
    decoder.join().unwrap();
}
