//! The steady engine the benchmarks drive: N sources whose 10 ms packets
//! arrive exactly on time, fed through ingress decoding into the real
//! [`Engine`], blocks mixed at their deadlines. Shared by the criterion
//! bench (`benches/mixer.rs`) and the instruction-count driver
//! (`examples/engine_instructions.rs`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use audionode::engine::{Engine, EngineConfig};
use audionode::event::Events;
use audionode::nodecore::ingress;
use audionode::source::{JitterTarget, SourceParams};
use proto::udp_mono::{encode_mono, mono_datagram_len};

pub const RATE: u32 = 44_100;
pub const BLOCK: usize = 220;
/// 10 ms packets, the streamer's default.
pub const CHUNK: usize = 441;

/// A small, never-constant test signal for source `k` (no clipping even
/// when 2048 are summed at unity).
pub fn signal(len: usize, k: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + k * 104_729) % 31) as f32) - 15.0)
        .collect()
}

pub fn config(max_sources: usize) -> EngineConfig {
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

pub fn addr(k: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + k as u16))
}

pub fn chunk_time(seq: u64) -> Duration {
    Duration::from_nanos(seq * CHUNK as u64 * 1_000_000_000 / u64::from(RATE))
}

/// An engine with `n` sources whose packets arrive exactly on time, plus
/// the encoded packet of each source (its seq rewritten per delivery).
pub struct Rig {
    pub engine: Engine,
    packets: Vec<Vec<u8>>,
    pub next_seq: u32,
    pub events: Events,
}

impl Rig {
    pub fn new(n: usize) -> Self {
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
    pub fn step(&mut self) -> usize {
        let t = chunk_time(u64::from(self.next_seq));
        self.deliver(t);
        self.mix_until(chunk_time(u64::from(self.next_seq)))
    }

    pub fn deliver(&mut self, t: Duration) {
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
