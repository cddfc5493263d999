//! Drives the steady engine of the benchmarks (N sources, 10 ms packets
//! arriving on time) for a number of packet periods, for counting the
//! engine's instructions with `valgrind --tool=cachegrind`: a count that,
//! unlike a time, is the same on a busy machine as on an idle one.
//!
//! ```text
//! cargo build --release -p audionode --example engine_instructions
//! valgrind --tool=cachegrind --cache-sim=no \
//!     target/release/examples/engine_instructions 1000 200
//! ```
//!
//! The count covers start-up (the pool, 200 warm-up periods) and the
//! measured periods; the difference of two runs with different period
//! counts is the steady cost. It also prints the wall time per packet.

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |default: usize| {
        args.next()
            .map(|s| s.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let (sources, periods) = (number(1000), number(200));
    let mut rig = common::Rig::new(sources);
    let start = Instant::now();
    let mut blocks = 0;
    for _ in 0..periods {
        blocks += rig.step();
    }
    let elapsed = start.elapsed();
    println!(
        "sources={sources} periods={periods} blocks={blocks} wall_us_per_packet={:.3}",
        elapsed.as_secs_f64() * 1e6 / (sources * periods) as f64
    );
}
