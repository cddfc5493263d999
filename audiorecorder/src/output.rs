//! The audio-callback side of playback: pull stereo frames from the SPSC
//! ring into the device buffer, as the backoff state machine plans, with
//! the level controller's one-frame drift corrections.
//!
//! REAL-TIME: [`OutputStage::fill`] runs on the device's callback thread. It
//! touches only the ring's consumer (lock-free, allocated before `play()`),
//! the state machine (plain fields), atomics and the monotonic clock (a
//! vDSO read). No allocation, no lock, no logging, no IO; silence fills
//! whatever the ring cannot. The one system call is `--rt-priority`'s
//! scheduling change, once, in the stream's first callback.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use cpal::{FromSample, Sample};
use rtrb::Consumer;

use crate::arrival::LastArrival;
use crate::backoff::{Backoff, BackoffCounters};
use crate::level_control::{Correction, LevelControl, LevelCounters};
use crate::probe::PlayTap;
use crate::stats::Stats;

/// Interleaved samples per ring frame: the ring always carries stereo.
pub const RING_CHANNELS: usize = 2;

/// Owned by the audio callback: the ring's consumer and the backoff logic.
pub struct OutputStage {
    consumer: Consumer<f32>,
    backoff: Backoff,
    stats: Arc<Stats>,
    device_channels: usize,
    /// When the previous callback ran (reading the clock is allocation-
    /// and lock-free: a vDSO call).
    last_callback: Option<Instant>,
    /// Backoff counters already added to the shared stats.
    published: BackoffCounters,
    /// `--latency-probe`: click onsets handed to the device, and underruns.
    probe: Option<PlayTap>,
    /// Drift compensation (off with `--no-level-control`).
    level: Option<LevelControl>,
    /// Level-control counters already added to the shared stats.
    published_level: LevelCounters,
    /// The network side's latest push, for the level control's measure.
    arrival: Option<Arc<LastArrival>>,
    /// Frames per second of the ring (the device rate).
    rate: u32,
    /// `--rt-priority` still to apply to the callback thread (first callback).
    rt_priority: Option<u8>,
}

impl OutputStage {
    /// A stage playing the stereo ring onto a device with `device_channels`
    /// interleaved channels (mono devices get the average of left and right;
    /// extra channels stay silent).
    pub fn new(
        consumer: Consumer<f32>,
        backoff: Backoff,
        stats: Arc<Stats>,
        device_channels: usize,
    ) -> Self {
        Self {
            consumer,
            backoff,
            stats,
            device_channels: device_channels.max(1),
            last_callback: None,
            published: BackoffCounters::default(),
            probe: None,
            level: None,
            published_level: LevelCounters::default(),
            arrival: None,
            rate: 0,
            rt_priority: None,
        }
    }

    /// Puts the callback thread under SCHED_FIFO at `priority` (0: leave it)
    /// in the first callback: cpal creates that thread, and only code on it
    /// can change its own policy. The outcome goes to `stats.callback_rt`
    /// for the network side to log.
    pub fn with_rt_priority(mut self, priority: u8) -> Self {
        self.rt_priority = (priority > 0).then_some(priority);
        self
    }

    /// Lets the level control see where the callback falls between two
    /// network pushes (`arrival` is stamped by the producer side) at `rate`
    /// ring frames per second. Without it every block counts as delivered.
    pub fn with_arrival(mut self, arrival: Arc<LastArrival>, rate: u32) -> Self {
        self.arrival = Some(arrival);
        self.rate = rate;
        self
    }

    /// Holds the ring's level with one-frame drops and repeats.
    pub fn with_level_control(mut self, level: Option<LevelControl>) -> Self {
        self.level = level;
        self
    }

    /// Reports click onsets and underruns to the latency probe.
    pub fn with_probe(mut self, probe: Option<PlayTap>) -> Self {
        self.probe = probe;
        self
    }

    /// Fills one device buffer; the body of the cpal data callback.
    pub fn fill<T>(&mut self, data: &mut [T])
    where
        T: Sample + FromSample<f32>,
    {
        self.fill_timed(data, None);
    }

    /// [`Self::fill`], telling the latency probe the device's own estimate of
    /// its buffer delay (cpal's playback − callback timestamps), if any.
    pub fn fill_timed<T>(&mut self, data: &mut [T], device_delay_ns: Option<u64>)
    where
        T: Sample + FromSample<f32>,
    {
        if let Some(tap) = &mut self.probe {
            tap.begin(device_delay_ns);
        }
        if let Some(priority) = self.rt_priority.take() {
            // One system call, once per stream.
            let outcome = match proto::realtime::promote_current_thread(priority) {
                Ok(()) => i64::from(priority),
                // No OS error number (not Linux): report it as EPERM (1).
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(1)),
            };
            self.stats.callback_rt.store(outcome, Ordering::Relaxed);
        }
        let channels = self.device_channels;
        let requested = data.len() / channels;
        let available = self.consumer.slots() / RING_CHANNELS;
        let resumes = self.backoff.counters().resumes;
        let plan = self.backoff.plan(available, requested);
        let restarted = self.backoff.counters().resumes > resumes;
        let correction = match &mut self.level {
            Some(level) => {
                // The part of the latest block a continuous stream would
                // not have delivered yet (see level_control).
                let pending = match &self.arrival {
                    Some(a) => a
                        .since(Instant::now())
                        .map_or(0, |a| a.pending_frames(self.rate)),
                    None => 0,
                };
                let correction = level.on_plan(available, pending, requested, &plan, restarted);
                if let Some(tap) = &mut self.probe {
                    if level.is_steady(&plan, requested, restarted) {
                        tap.level(available, pending, correction);
                    }
                }
                correction
            }
            None => Correction::None,
        };

        if plan.drop > 0 {
            // Dropping the oldest audio happens here, on the consumer side,
            // so the producer never has to touch the read position.
            if let Ok(chunk) = self.consumer.read_chunk(plan.drop * RING_CHANNELS) {
                chunk.commit_all();
            }
        }
        // Silence before the audio when playback starts inside this buffer.
        let lead = plan.lead.min(requested);
        for sample in &mut data[..lead * channels] {
            *sample = T::EQUILIBRIUM;
        }
        if let Some(tap) = &mut self.probe {
            tap.silence(lead);
        }
        let mut played = 0;
        // A correction only comes with a whole buffer played from the ring
        // (the controller checks that the ring holds one frame more for a
        // drop, and that the buffer has two frames for a repeat): it is
        // applied in the middle of the buffer.
        let (take, at) = match correction {
            Correction::None => (plan.play, usize::MAX),
            Correction::Drop => (plan.play + 1, plan.play / 2),
            Correction::Repeat => (plan.play - 1, plan.play / 2),
        };
        if plan.play > 0 {
            if let Ok(chunk) = self.consumer.read_chunk(take * RING_CHANNELS) {
                let (a, b) = chunk.as_slices();
                let mut frames = a
                    .chunks_exact(RING_CHANNELS)
                    .chain(b.chunks_exact(RING_CHANNELS));
                let outs =
                    data[lead * channels..(lead + plan.play) * channels].chunks_exact_mut(channels);
                let mut previous = [0.0f32; RING_CHANNELS];
                for (i, out) in outs.enumerate() {
                    let lr = if i == at && correction == Correction::Repeat {
                        // Hold the previous frame one extra output frame.
                        previous
                    } else {
                        if i == at {
                            // Drop: skip one frame.
                            frames.next();
                        }
                        match frames.next() {
                            Some(lr) => [lr[0], lr[1]],
                            None => break,
                        }
                    };
                    write_frame(out, lr[0], lr[1]);
                    if let Some(tap) = &mut self.probe {
                        tap.frame(lead + i, lr[0]);
                    }
                    previous = lr;
                }
                chunk.commit_all();
                played = plan.play;
            }
        }
        for sample in &mut data[(lead + played) * channels..] {
            *sample = T::EQUILIBRIUM;
        }
        let counters = self.backoff.counters();
        if let Some(tap) = &mut self.probe {
            tap.silence(requested - lead - played);
            if counters.underruns > self.published.underruns {
                tap.underrun(counters.underruns);
            }
        }

        let stats = &*self.stats;
        let now = Instant::now();
        if let Some(last) = self.last_callback {
            let gap = now.saturating_duration_since(last).as_micros() as u64;
            stats.max_callback_gap_us.fetch_max(gap, Ordering::Relaxed);
        }
        self.last_callback = Some(now);
        stats.add_backoff(&self.published, &counters);
        self.published = counters;
        if let Some(level) = &self.level {
            let now = level.counters();
            Stats::add(&stats.level_drops, now.drops - self.published_level.drops);
            Stats::add(
                &stats.level_repeats,
                now.repeats - self.published_level.repeats,
            );
            self.published_level = now;
        }
        // Frames taken from the ring and played: a repeated frame counts
        // once, a skipped one not at all (it is in `level_drops`).
        let repeated = usize::from(played > 0 && correction == Correction::Repeat);
        Stats::add(&stats.played_frames, (played - repeated) as u64);
        Stats::add(&stats.silence_frames, (requested - played) as u64);
        Stats::add(&stats.callbacks, 1);
        stats.buffered_frames.store(
            (self.consumer.slots() / RING_CHANNELS) as u64,
            Ordering::Relaxed,
        );
    }
}

/// Writes one stereo frame into one device frame of any channel count.
fn write_frame<T: Sample + FromSample<f32>>(out: &mut [T], left: f32, right: f32) {
    match out {
        [mono] => *mono = T::from_sample((left + right) * 0.5),
        [l, r, rest @ ..] => {
            *l = T::from_sample(left);
            *r = T::from_sample(right);
            for s in rest {
                *s = T::EQUILIBRIUM;
            }
        }
        [] => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    fn make_stage(
        backoff: usize,
        max: usize,
        channels: usize,
    ) -> (rtrb::Producer<f32>, OutputStage, Arc<Stats>) {
        let (producer, consumer) = rtrb::RingBuffer::new(1024);
        let stats = Arc::new(Stats::default());
        let stage = OutputStage::new(
            consumer,
            Backoff::new(backoff, max),
            Arc::clone(&stats),
            channels,
        );
        (producer, stage, stats)
    }

    fn push_frames(p: &mut rtrb::Producer<f32>, frames: &[(f32, f32)]) {
        for &(l, r) in frames {
            p.push(l).unwrap();
            p.push(r).unwrap();
        }
    }

    #[test]
    fn silence_until_backoff_then_frames_in_order() {
        let (mut p, mut stage, stats) = make_stage(4, 16, 2);
        push_frames(&mut p, &[(0.5, -0.5), (0.25, -0.25)]);
        let mut out = [1.0f32; 4];
        stage.fill(&mut out);
        assert_eq!(out, [0.0; 4]);
        push_frames(&mut p, &[(0.125, 0.0), (1.0, -1.0)]);
        let mut out = [9.0f32; 6];
        stage.fill(&mut out);
        assert_eq!(out, [0.5, -0.5, 0.25, -0.25, 0.125, 0.0]);
        let s = stats.snapshot();
        assert_eq!(
            (s.played_frames, s.silence_frames, s.buffered_frames),
            (3, 2, 1)
        );
    }

    #[test]
    fn playback_starts_inside_the_buffer_in_which_the_backoff_fills() {
        // Backoff 4 frames, 3 buffered, the device wants 2: one frame of
        // silence, then the oldest frame.
        let (mut p, mut stage, stats) = make_stage(4, 16, 2);
        push_frames(&mut p, &[(0.5, -0.5), (0.25, -0.25), (0.125, 0.0)]);
        let mut out = [9.0f32; 4];
        stage.fill(&mut out);
        assert_eq!(out, [0.0, 0.0, 0.5, -0.5]);
        let s = stats.snapshot();
        assert_eq!((s.played_frames, s.silence_frames), (1, 1));
    }

    #[test]
    fn underrun_pads_with_silence_and_counts() {
        let (mut p, mut stage, stats) = make_stage(2, 16, 2);
        push_frames(&mut p, &[(0.5, 0.5), (0.5, 0.5)]);
        let mut out = [7i16; 8];
        stage.fill(&mut out);
        assert_eq!(out[..4], [16384; 4]);
        assert_eq!(out[4..], [0; 4]);
        assert_eq!(stats.snapshot().underruns, 1);
    }

    #[test]
    fn mono_and_multichannel_devices() {
        let (mut p, mut stage, _) = make_stage(1, 16, 1);
        push_frames(&mut p, &[(0.5, 0.0)]);
        let mut out = [1.0f32; 1];
        stage.fill(&mut out);
        assert_eq!(out, [0.25]);

        let (mut p, mut stage, _) = make_stage(1, 16, 4);
        push_frames(&mut p, &[(0.5, -0.5)]);
        let mut out = [1.0f32; 4];
        stage.fill(&mut out);
        assert_eq!(out, [0.5, -0.5, 0.0, 0.0]);
    }

    #[test]
    fn latency_bound_drops_oldest_in_the_callback() {
        let (mut p, mut stage, stats) = make_stage(2, 4, 2);
        let frames: Vec<(f32, f32)> = (0..6).map(|i| (i as f32 / 8.0, 0.0)).collect();
        push_frames(&mut p, &frames);
        let mut out = [0.0f32; 2];
        stage.fill(&mut out);
        // 6 > 4 buffered: the 4 oldest go, frame 4 plays.
        assert_eq!(out, [0.5, 0.0]);
        assert_eq!(stats.snapshot().latency_dropped_frames, 4);
    }

    /// A stage with level control holding `floor` (band 1, one-frame
    /// buckets, no spacing) and frames `i / 32` for `i` in `0..n` queued.
    fn level_stage(floor: usize, n: usize) -> (OutputStage, Arc<Stats>) {
        let (mut p, stage, stats) = make_stage(4, 64, 2);
        let stage = stage.with_level_control(Some(LevelControl::with_params(floor, 1, 1, 0)));
        let frames: Vec<(f32, f32)> = (0..n)
            .map(|i| (i as f32 / 32.0, -(i as f32) / 32.0))
            .collect();
        push_frames(&mut p, &frames);
        (stage, stats)
    }

    fn lefts(out: &[f32]) -> Vec<f32> {
        out.chunks_exact(2).map(|f| f[0] * 32.0).collect()
    }

    #[test]
    fn the_first_callback_tries_real_time_priority_once_and_reports_it() {
        // On a thread of its own, so the test harness keeps its policy.
        std::thread::spawn(|| {
            let (_p, stage, stats) = make_stage(4, 16, 2);
            let mut stage = stage.with_rt_priority(5);
            assert_eq!(stats.callback_rt.load(Ordering::Relaxed), 0);
            let mut out = [0.0f32; 4];
            stage.fill(&mut out);
            let outcome = stats.callback_rt.load(Ordering::Relaxed);
            // Permitted (root, CAP_SYS_NICE): priority 5; else EPERM (1).
            assert!(outcome == 5 || outcome == -1, "{outcome}");
            stats.callback_rt.store(0, Ordering::Relaxed);
            stage.fill(&mut out);
            assert_eq!(stats.callback_rt.load(Ordering::Relaxed), 0, "only once");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn level_control_does_not_count_a_block_that_is_not_due_yet() {
        // Target 14. After the start 18 frames are buffered: too full by
        // themselves. But the last 8 arrived in one push just now (at 1
        // frame/s none of it is due within the test): the level is 10, too
        // empty, so a frame repeats. Without the stamp the same ring drops.
        for (stamped, want) in [(true, (0, 1)), (false, (1, 0))] {
            let (mut p, stage, stats) = make_stage(4, 64, 2);
            let arrival = Arc::new(LastArrival::new());
            let mut stage = stage
                .with_level_control(Some(LevelControl::with_params(14, 1, 1, 0)))
                .with_arrival(Arc::clone(&arrival), 1);
            let frames: Vec<(f32, f32)> = (0..20).map(|i| (i as f32 / 32.0, 0.0)).collect();
            push_frames(&mut p, &frames);
            let mut out = [0.0f32; 4];
            stage.fill(&mut out); // the start: never corrected; 18 left
            if stamped {
                arrival.record(8, Instant::now());
            }
            stage.fill(&mut out);
            let s = stats.snapshot();
            assert_eq!((s.level_drops, s.level_repeats), want, "stamped {stamped}");
        }
    }

    #[test]
    fn level_control_drops_one_frame_in_the_middle_when_too_full() {
        let (mut stage, stats) = level_stage(4, 20);
        let mut out = [9.0f32; 8];
        stage.fill(&mut out); // the start: never corrected
        assert_eq!(lefts(&out), [0.0, 1.0, 2.0, 3.0]);
        stage.fill(&mut out); // 16 buffered, far above 4 + 2: frame 6 is skipped
        assert_eq!(lefts(&out), [4.0, 5.0, 7.0, 8.0]);
        assert_eq!(out[1], -4.0 / 32.0);
        let s = stats.snapshot();
        assert_eq!((s.level_drops, s.level_repeats), (1, 0));
        assert_eq!((s.played_frames, s.buffered_frames), (8, 11));
        assert_eq!((s.underruns, s.latency_drops), (0, 0));
    }

    #[test]
    fn level_control_repeats_one_frame_in_the_middle_when_too_empty() {
        let (mut stage, stats) = level_stage(100, 20);
        let mut out = [9.0f32; 8];
        stage.fill(&mut out);
        assert_eq!(lefts(&out), [0.0, 1.0, 2.0, 3.0]);
        stage.fill(&mut out); // 16 buffered, below the floor of 100: frame 5 is held
        assert_eq!(lefts(&out), [4.0, 5.0, 5.0, 6.0]);
        let s = stats.snapshot();
        assert_eq!((s.level_drops, s.level_repeats), (0, 1));
        assert_eq!((s.played_frames, s.buffered_frames), (7, 13));
    }

    #[test]
    fn without_level_control_nothing_is_corrected() {
        let (mut p, mut stage, stats) = make_stage(4, 64, 2);
        let frames: Vec<(f32, f32)> = (0..20).map(|i| (i as f32 / 32.0, 0.0)).collect();
        push_frames(&mut p, &frames);
        let mut out = [9.0f32; 8];
        stage.fill(&mut out);
        stage.fill(&mut out);
        assert_eq!(lefts(&out), [4.0, 5.0, 6.0, 7.0]);
        let s = stats.snapshot();
        assert_eq!(
            (s.level_drops, s.level_repeats, s.buffered_frames),
            (0, 0, 12)
        );
    }
}
