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

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use audionode::mixer::{Mixer, StereoGain};
use common::{chunk_time, signal, Rig, BLOCK};

const SOURCE_COUNTS: [usize; 3] = [16, 256, 2048];

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
