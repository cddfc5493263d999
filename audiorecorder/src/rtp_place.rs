//! Placing RTP audio by its timestamps: frames come out in timeline order,
//! a packet that arrives out of order within the reorder window is put
//! where it belongs, and a gap in the timestamps that no packet filled in
//! time (lost audio) comes out as a gap of the same length (filled by
//! [`crate::plc`]), so the recording and the playback keep the sender's
//! timeline.
//!
//! Sans-IO and counted in frames (stereo, interleaved, after the mono →
//! stereo step). Held audio waits only while a gap is open: the frames
//! after the gap are released once more than the window's worth has
//! arrived behind it (or on [`Placer::flush`], when the stream falls
//! silent or ends). A timestamp jump beyond `max_fill` (a sender that
//! restarted its clock, or a bogus packet) is not filled: the timeline
//! starts again there.

use std::collections::BTreeMap;

/// What the placer hands on, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Received frames (interleaved stereo).
    Audio(Vec<i16>),
    /// Frames of lost audio, to be filled (concealed, or silence).
    Silence(usize),
}

/// What happened to one pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Taken (maybe held until a gap before it closes).
    Taken,
    /// Its frames were already placed or are held: a duplicate, or a packet
    /// later than the window (dropped).
    Late,
    /// Its timestamp jumped more than `max_fill` from the timeline: held
    /// audio was flushed and the timeline restarts at this packet.
    Resync,
}

/// The timestamp placer; see the module documentation.
#[derive(Debug)]
pub struct Placer {
    window: u64,
    max_fill: u64,
    /// RTP timestamp of the next frame to hand on, and its position on the
    /// extended (unwrapped) timeline.
    next: Option<(u32, i64)>,
    /// Held packets by extended position.
    held: BTreeMap<i64, Vec<i16>>,
}

impl Placer {
    /// A placer that holds audio behind a gap for up to `window` frames and
    /// fills gaps of up to `max_fill` frames with silence.
    pub fn new(window: usize, max_fill: usize) -> Self {
        Self {
            window: window as u64,
            max_fill: max_fill.max(1) as u64,
            next: None,
            held: BTreeMap::new(),
        }
    }

    /// Frames held behind a gap.
    pub fn held_frames(&self) -> usize {
        self.held.values().map(|v| v.len() / 2).sum()
    }

    /// Takes a packet of interleaved stereo `frames` whose first frame has
    /// RTP timestamp `ts`; whatever can be placed now is passed to `out`.
    pub fn push(&mut self, ts: u32, frames: Vec<i16>, out: &mut impl FnMut(Placed)) -> Pushed {
        let len = (frames.len() / 2) as i64;
        if len == 0 {
            return Pushed::Late;
        }
        let Some((next_ts, next_pos)) = self.next else {
            self.next = Some((ts.wrapping_add(len as u32), len));
            out(Placed::Audio(frames));
            return Pushed::Taken;
        };
        let pos = next_pos + i64::from(ts.wrapping_sub(next_ts) as i32);
        let end = pos + len;
        let far = self.max_fill as i64;
        if pos - next_pos > far || next_pos - end > far {
            self.flush(out);
            self.next = Some((ts.wrapping_add(len as u32), len));
            out(Placed::Audio(frames));
            return Pushed::Resync;
        }
        if end <= next_pos {
            return Pushed::Late;
        }
        let (pos, frames) = if pos < next_pos {
            // Partly placed already: keep the rest.
            let skip = (next_pos - pos) as usize;
            (next_pos, frames[2 * skip..].to_vec())
        } else {
            (pos, frames)
        };
        if self.held.contains_key(&pos) {
            return Pushed::Late;
        }
        self.held.insert(pos, frames);
        self.release(false, out);
        Pushed::Taken
    }

    /// Hands on all held audio, gaps as silence (the stream fell silent,
    /// changed or ended).
    pub fn flush(&mut self, out: &mut impl FnMut(Placed)) {
        self.release(true, out);
    }

    /// Forgets the timeline (a new stream follows).
    pub fn reset(&mut self) {
        self.next = None;
        self.held.clear();
    }

    fn release(&mut self, all: bool, out: &mut impl FnMut(Placed)) {
        let Some((mut next_ts, mut next_pos)) = self.next else {
            return;
        };
        while let Some(entry) = self.held.first_entry() {
            let pos = *entry.key();
            let frames_len = (entry.get().len() / 2) as i64;
            let end = pos + frames_len;
            if end <= next_pos {
                // Overlapped by what was placed meanwhile.
                entry.remove();
                continue;
            }
            if pos > next_pos {
                // A gap: close it only when the window is exceeded.
                let newest = self
                    .held
                    .last_key_value()
                    .map_or(end, |(p, f)| p + (f.len() / 2) as i64);
                if !all && ((newest - pos) as u64) <= self.window {
                    break;
                }
                let gap = (pos - next_pos) as usize;
                out(Placed::Silence(gap));
                next_ts = next_ts.wrapping_add(gap as u32);
                next_pos = pos;
                continue;
            }
            let mut frames = self.held.pop_first().map(|(_, f)| f).unwrap_or_default();
            if pos < next_pos {
                frames.drain(..2 * (next_pos - pos) as usize);
            }
            let n = (frames.len() / 2) as i64;
            out(Placed::Audio(frames));
            next_ts = next_ts.wrapping_add(n as u32);
            next_pos += n;
        }
        self.next = Some((next_ts, next_pos));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `a..b` of a ramp whose left sample is the frame number.
    fn ramp(a: i16, b: i16) -> Vec<i16> {
        (a..b).flat_map(|i| [i, -i]).collect()
    }

    fn run(p: &mut Placer, packets: &[(u32, Vec<i16>)]) -> (Vec<i16>, Vec<Pushed>) {
        let mut got = Vec::new();
        let mut pushed = Vec::new();
        for (ts, f) in packets {
            pushed.push(p.push(*ts, f.clone(), &mut |x| place(&mut got, x)));
        }
        p.flush(&mut |x| place(&mut got, x));
        (got, pushed)
    }

    fn place(got: &mut Vec<i16>, x: Placed) {
        match x {
            Placed::Audio(f) => got.extend(f),
            Placed::Silence(n) => got.extend(std::iter::repeat_n(0, 2 * n)),
        }
    }

    #[test]
    fn in_order_passes_straight_through() {
        let mut p = Placer::new(100, 10_000);
        let base = u32::MAX - 15; // across the timestamp wrap
        let mut got = Vec::new();
        for k in 0..4u32 {
            let f = ramp((k * 10) as i16, (k * 10 + 10) as i16);
            p.push(base.wrapping_add(k * 10), f, &mut |x| place(&mut got, x));
            assert_eq!(got.len(), 2 * 10 * (k as usize + 1));
        }
        assert_eq!(got, ramp(0, 40));
    }

    #[test]
    fn reordered_within_the_window_is_placed() {
        let mut p = Placer::new(25, 10_000);
        let (got, pushed) = run(
            &mut p,
            &[
                (1000, ramp(0, 10)),
                (1020, ramp(20, 30)),
                (1010, ramp(10, 20)),
                (1030, ramp(30, 40)),
            ],
        );
        assert_eq!(got, ramp(0, 40));
        assert!(pushed.iter().all(|&x| x == Pushed::Taken));
    }

    #[test]
    fn a_lost_packet_becomes_silence_of_its_length() {
        let mut p = Placer::new(15, 10_000);
        let mut got = Vec::new();
        p.push(0, ramp(0, 10), &mut |x| place(&mut got, x));
        // 10..20 lost: 20..30 is held (10 frames behind the gap ≤ 15).
        p.push(20, ramp(20, 30), &mut |x| place(&mut got, x));
        assert_eq!(got.len(), 20);
        assert_eq!(p.held_frames(), 10);
        // 30..40 makes 20 frames behind the gap: the gap is given up.
        p.push(30, ramp(30, 40), &mut |x| place(&mut got, x));
        let mut want = ramp(0, 10);
        want.extend(vec![0; 20]);
        want.extend(ramp(20, 40));
        assert_eq!(got, want);
        // The lost packet arriving now is too late.
        assert_eq!(
            p.push(10, ramp(10, 20), &mut |x| place(&mut got, x)),
            Pushed::Late
        );
    }

    #[test]
    fn duplicates_and_overlaps_are_dropped() {
        let mut p = Placer::new(100, 10_000);
        let (got, pushed) = run(
            &mut p,
            &[
                (0, ramp(0, 10)),
                (0, ramp(0, 10)),
                (5, ramp(5, 15)), // half new
                (20, ramp(20, 25)),
                (20, ramp(20, 25)), // held duplicate
            ],
        );
        let mut want = ramp(0, 15);
        want.extend(vec![0; 10]);
        want.extend(ramp(20, 25));
        assert_eq!(got, want);
        assert_eq!(
            pushed,
            vec![
                Pushed::Taken,
                Pushed::Late,
                Pushed::Taken,
                Pushed::Taken,
                Pushed::Late
            ]
        );
    }

    #[test]
    fn a_far_jump_restarts_the_timeline_without_filling() {
        let mut p = Placer::new(100, 1000);
        let (got, pushed) = run(&mut p, &[(0, ramp(0, 10)), (500_000, ramp(10, 20))]);
        assert_eq!(got, ramp(0, 20));
        assert_eq!(pushed[1], Pushed::Resync);
        let (got, pushed) = run(&mut p, &[(400_000, ramp(0, 5)), (400_005, ramp(5, 8))]);
        assert_eq!(got, ramp(0, 8));
        assert_eq!(pushed[0], Pushed::Resync);
    }
}
