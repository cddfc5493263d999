//! What Opus costs per packet on this machine, and which mode libopus
//! picks (only SILK and hybrid packets carry in-band FEC):
//! `cargo run --release -p proto --example opus_cost [BITRATE] [LOSS%]`.

use std::time::Instant;

use proto::opus::{may_carry_fec, Decoder, Encoder, MAX_FRAMES, MAX_PACKET};

fn main() {
    let mut args = std::env::args().skip(1);
    let bitrate: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64_000);
    let loss: u8 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    // Ten seconds of a music-like signal: three partials and a little noise.
    let frames = 480;
    let packets = 1000;
    let mut seed = 1u32;
    let pcm: Vec<i16> = (0..frames * packets)
        .map(|n| {
            let t = n as f64 / 48_000.0;
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = f64::from(seed >> 16) / 65536.0 - 0.5;
            let x = 0.3 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 0.2 * (2.0 * std::f64::consts::PI * 330.0 * t).sin()
                + 0.1 * (2.0 * std::f64::consts::PI * 1760.0 * t).sin()
                + 0.02 * noise;
            (x * 20_000.0) as i16
        })
        .collect();
    let mut enc = Encoder::new(1, bitrate, loss).expect("encoder");
    let mut buf = [0u8; MAX_PACKET];
    let start = Instant::now();
    let encoded: Vec<Vec<u8>> = pcm
        .chunks_exact(frames)
        .map(|f| {
            let n = enc.encode(f, &mut buf).expect("encode");
            buf[..n].to_vec()
        })
        .collect();
    let enc_us = start.elapsed().as_secs_f64() * 1e6 / packets as f64;
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let fec = encoded.iter().filter(|p| may_carry_fec(p)).count();
    let mut dec = Decoder::new(1).expect("decoder");
    let mut out = vec![0i16; MAX_FRAMES];
    let start = Instant::now();
    for p in &encoded {
        dec.decode(p, &mut out).expect("decode");
    }
    let dec_us = start.elapsed().as_secs_f64() * 1e6 / packets as f64;
    println!(
        "{bitrate} bit/s, loss hint {loss}%: 10 ms mono packets of {:.0} bytes on average \
         ({:.1} kbit/s of payload), {fec} of {packets} in a FEC-capable mode; \
         encode {enc_us:.1} µs/packet, decode {dec_us:.1} µs/packet",
        bytes as f64 / packets as f64,
        bytes as f64 * 8.0 / (packets as f64 * 0.01) / 1000.0
    );
}
