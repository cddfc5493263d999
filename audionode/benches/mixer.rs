//! Micro-benchmarks of the mixing path (criterion, `harness = false`).
//!
//! - `mixer/{unity,gain,ramp}/N`: one 220-frame block of the real
//!   [`audionode::mixer::Mixer`] (`begin`, `add` × N, `render`) for N = 16,
//!   256 and 2048 sources. Throughput is reported in source-samples
//!   (N × 220 per block), so criterion's "elem/s" is directly the issue-8
//!   figure of source-samples mixed per second per core (bar: 4 × 10^9).
//! - `engine_block/N`: one due block of the real [`audionode::engine::Engine`]
//!   with N sources, driven the way `src/sim_tests.rs` drives it (packets fed
//!   through `on_datagram`, the block taken with `mix_due` at its deadline):
//!   jitter-buffer reads, gains, peak meters, mixing and rendering; the
//!   packets that keep every buffer at its target are delivered untimed.
//! - `engine_10ms/N`: 10 ms of traffic through the engine: one 441-sample
//!   packet per source through `on_datagram` (decode, tracking, jitter
//!   buffer) plus the two blocks due meanwhile. Throughput is in packets, so
//!   1 / (elem/s) is the engine's cost per packet, mixing included.
//!
//! Run: `cargo bench -p audionode --bench mixer` (see docs/performance.md).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use audionode::engine::{Engine, EngineConfig};
use audionode::event::Events;
use audionode::mixer::{Mixer, StereoGain};
use audionode::nodecore::ingress;
use audionode::source::{JitterTarget, SourceParams};
use proto::udp_mono::{encode_mono, mono_datagram_len};

const RATE: u32 = 44_100;
const BLOCK: usize = 220;
const CHUNK: usize = 441; // 10 ms packets, the streamer's default
const SOURCE_COUNTS: [usize; 3] = [16, 256, 2048];

/// A small, never-constant test signal for source `k` (no clipping even
/// when 2048 are summed at unity).
fn signal(len: usize, k: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + k * 104_729) % 31) as f32) - 15.0)
        .collect()
}

fn bench_mixer(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixer");
    for &n in &SOURCE_COUNTS {
        let inputs: Vec<Vec<f32>> = (0..n).map(|k| signal(BLOCK, k)).collect();
        let mut out = vec![0i16; 2 * BLOCK];
        let mut mixer = Mixer::new(BLOCK);
        group.throughput(Throughput::Elements((n * BLOCK) as u64));
        let half = StereoGain::from_controls(0.7, 0.3, 0.9);
        let cases: [(&str, StereoGain, StereoGain); 3] = [
            ("unity", StereoGain::UNITY, StereoGain::UNITY),
            ("gain", half, half),
            ("ramp", StereoGain::UNITY, half),
        ];
        for (name, from, to) in cases {
            group.bench_function(format!("{name}/{n}"), |b| {
                b.iter(|| {
                    mixer.begin(BLOCK);
                    for x in &inputs {
                        mixer.add(black_box(x), from, to);
                    }
                    black_box(mixer.render(&mut out))
                })
            });
        }
    }
    group.finish();
}

fn config(max_sources: usize) -> EngineConfig {
    EngineConfig {
        source: SourceParams {
            rate: RATE,
            block_frames: BLOCK,
            target: JitterTarget::FixedMs(20.0),
            drift_warmup: 100,
            drift_band_ms: 3.0,
            events_per_second: 20,
            plc: proto::plc::PlcMode::Predict,
        },
        timeout: Duration::from_secs(3600),
        max_sources,
        max_datagram_bytes: 4 + 2 * 8192,
    }
}

fn addr(k: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + k as u16))
}

fn chunk_time(seq: u64) -> Duration {
    Duration::from_nanos(seq * CHUNK as u64 * 1_000_000_000 / u64::from(RATE))
}

/// An engine with `n` sources whose packets arrive exactly on time, plus
/// the encoded packet of each source (its seq rewritten per delivery).
struct Rig {
    engine: Engine,
    packets: Vec<Vec<u8>>,
    next_seq: u32,
    events: Events,
}

impl Rig {
    fn new(n: usize) -> Self {
        let packets: Vec<Vec<u8>> = (0..n)
            .map(|k| {
                let samples: Vec<i16> = signal(CHUNK, k).iter().map(|&x| x as i16).collect();
                let mut buf = vec![0; mono_datagram_len(CHUNK)];
                encode_mono(0, &samples, &mut buf).expect("sized");
                buf
            })
            .collect();
        let mut rig = Self {
            engine: Engine::new(config(n)),
            packets,
            next_seq: 0,
            events: Events::with_capacity(65_536),
        };
        // Warm up past the start-up and drift warm-up (200 packets = 2 s).
        for _ in 0..200 {
            rig.step();
        }
        rig
    }

    /// Delivers one packet per source at its arrival time, then mixes every
    /// block due before the next packet; returns the blocks mixed.
    fn step(&mut self) -> usize {
        let t = chunk_time(u64::from(self.next_seq));
        self.deliver(t);
        self.mix_until(chunk_time(u64::from(self.next_seq)))
    }

    fn deliver(&mut self, t: Duration) {
        let seq = self.next_seq.to_be_bytes();
        for (k, p) in self.packets.iter_mut().enumerate() {
            p[..4].copy_from_slice(&seq);
            let packet = ingress::decode_mono(p, usize::MAX).expect("valid");
            self.engine.on_packet(t, addr(k), &packet, &mut self.events);
        }
        self.next_seq += 1;
        while self.events.pop().is_some() {}
    }

    fn mix_until(&mut self, t: Duration) -> usize {
        let mut blocks = 0;
        while let Some(deadline) = self.engine.next_deadline() {
            if deadline > t {
                break;
            }
            black_box(self.engine.mix_due(deadline, &mut self.events));
            blocks += 1;
        }
        blocks
    }
}

fn bench_engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_block");
    for &n in &SOURCE_COUNTS {
        // Exactly one block of 220 frames for n sources is timed; packets
        // keeping every buffer at its target are delivered outside the timing.
        group.throughput(Throughput::Elements((n * BLOCK) as u64));
        // Built once: criterion calls the closure once per sample.
        let mut rig = Rig::new(n);
        group.bench_function(format!("{n}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // Untimed: deliver the next packets once the next block
                    // would reach past them, as the real arrival order does.
                    let next_packet = chunk_time(u64::from(rig.next_seq));
                    let deadline = rig.engine.next_deadline().expect("active");
                    if deadline >= next_packet {
                        rig.deliver(next_packet);
                    }
                    let deadline = rig.engine.next_deadline().expect("active");
                    let start = Instant::now();
                    black_box(rig.engine.mix_due(deadline, &mut rig.events));
                    timed += start.elapsed();
                }
                timed
            })
        });
    }
    group.finish();

    // The receive side: one datagram through decode, tracking, jitter
    // buffer (and, once per 441 frames, two blocks' mixing), per packet.
    let mut group = c.benchmark_group("engine_10ms");
    for &n in &SOURCE_COUNTS {
        group.throughput(Throughput::Elements(n as u64));
        let mut rig = Rig::new(n);
        group.bench_function(format!("{n}"), |b| b.iter(|| black_box(rig.step())));
    }
    group.finish();
}

criterion_group!(benches, bench_mixer, bench_engine);
criterion_main!(benches);
