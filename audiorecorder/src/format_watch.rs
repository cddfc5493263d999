//! Notices a stream that is not the stereo stream: datagrams that do not
//! decode (odd lengths, empty), or the node's *input* format, mono with a
//! sequence number (`[seq u32 BE][i16 BE] × n`, what `audiostreamer`
//! sends without `--stream-to-recorder`). Those have even lengths and
//! would pass as stereo noise; what gives them away is the first four
//! bytes counting up by one from datagram to datagram, which audio does
//! not do.
//!
//! After [`WARN_AFTER`] of nothing but such datagrams, one warning says
//! what arrives and what to do, instead of only the final summary's
//! count. Sans-IO: the caller passes each datagram and `now`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long only wrong datagrams must arrive before the warning.
pub const WARN_AFTER: Duration = Duration::from_secs(1);

/// What the wrong datagrams look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Mono with a counting sequence number.
    MonoSeq,
    /// Not decodable as stereo samples.
    Malformed,
}

/// Watches the datagrams of one receiver.
#[derive(Debug, Default)]
pub struct FormatWatch {
    /// When the current run of wrong datagrams began.
    since: Option<Instant>,
    /// Wrong datagrams in the current run, and what the latest was.
    count: u64,
    latest: Option<(Kind, usize, SocketAddr)>,
    /// The last datagram's first four bytes as a sequence number, and who sent it.
    last_seq: Option<(SocketAddr, u32)>,
    /// Warned for the current run already.
    warned: bool,
}

impl FormatWatch {
    /// A watch that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one datagram (`decodes`: whether it decodes as stereo
    /// samples); returns the warning when it is due.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        decodes: bool,
    ) -> Option<String> {
        let counts_up = self.counts_up(from, bytes);
        let kind = match (decodes, counts_up) {
            (false, _) => Kind::Malformed,
            (true, true) => Kind::MonoSeq,
            (true, false) => {
                self.since = None;
                self.count = 0;
                self.warned = false;
                return None;
            }
        };
        let since = *self.since.get_or_insert(now);
        self.count += 1;
        self.latest = Some((kind, bytes.len(), from));
        if self.warned || now.saturating_duration_since(since) < WARN_AFTER {
            return None;
        }
        self.warned = true;
        Some(self.message(now.saturating_duration_since(since)))
    }

    /// Whether `bytes` continue the last datagram's sequence number (from
    /// the same sender), and remembers this one's.
    fn counts_up(&mut self, from: SocketAddr, bytes: &[u8]) -> bool {
        let Some(head) = bytes.get(..4) else {
            self.last_seq = None;
            return false;
        };
        let seq = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let continues = self.last_seq == Some((from, seq.wrapping_sub(1)));
        self.last_seq = Some((from, seq));
        continues
    }

    fn message(&self, span: Duration) -> String {
        let Some((kind, len, from)) = self.latest else {
            return String::new();
        };
        let secs = span.as_secs_f64();
        match kind {
            Kind::MonoSeq => format!(
                "for {secs:.1} s every datagram (latest {len} bytes from {from}) looked like \
                 audionode's input format, mono with a sequence number, not the stereo stream \
                 (it is recorded as noise): send audionode's output here (audionode --dest), or \
                 stream a file with audiostreamer --stream-to-recorder"
            ),
            Kind::Malformed => format!(
                "for {secs:.1} s every datagram was malformed ({} so far, latest {len} bytes \
                 from {from}; the stereo stream is [L i16 BE][R i16 BE] × n): check what sends \
                 to this port",
                self.count
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mono(seq: u32) -> Vec<u8> {
        let mut b = seq.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x12, 0x34].repeat(441));
        b
    }

    #[test]
    fn mono_with_sequence_numbers_warns_once_after_a_second() {
        let t0 = Instant::now();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut w = FormatWatch::new();
        let mut warnings = Vec::new();
        for i in 0..300u32 {
            let at = t0 + Duration::from_millis(10 * u64::from(i));
            if let Some(m) = w.on_datagram(at, from, &mono(7 + i), true) {
                warnings.push((i, m));
            }
        }
        // The run starts at the second datagram (the first has nothing to
        // count up from); 1 s later is datagram 101.
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].0, 101);
        assert_eq!(
            warnings[0].1,
            "for 1.0 s every datagram (latest 886 bytes from 127.0.0.1:5000) looked like \
             audionode's input format, mono with a sequence number, not the stereo stream (it is \
             recorded as noise): send audionode's output here (audionode --dest), or stream a \
             file with audiostreamer --stream-to-recorder"
        );
    }

    #[test]
    fn stereo_audio_and_mixed_streams_do_not_warn() {
        let t0 = Instant::now();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut w = FormatWatch::new();
        for i in 0..300u64 {
            let at = t0 + Duration::from_millis(10 * i);
            // Silence, then a constant: the first bytes do not count up.
            let bytes = vec![(i / 100) as u8; 1764];
            assert_eq!(w.on_datagram(at, from, &bytes, true), None);
            // Every other datagram odd-length: never a whole second of them.
            assert_eq!(w.on_datagram(at, from, &[1, 2, 3], false), None);
        }
    }

    #[test]
    fn malformed_datagrams_warn_with_their_count() {
        let t0 = Instant::now();
        let from: SocketAddr = "[::1]:9".parse().unwrap();
        let mut w = FormatWatch::new();
        let mut out = None;
        for i in 0..=20u64 {
            out = out.or(w.on_datagram(t0 + Duration::from_millis(50 * i), from, &[0; 5], false));
        }
        assert_eq!(
            out.as_deref(),
            Some(
                "for 1.0 s every datagram was malformed (21 so far, latest 5 bytes from [::1]:9; \
                 the stereo stream is [L i16 BE][R i16 BE] × n): check what sends to this port"
            )
        );
    }
}
