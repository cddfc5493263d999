//! The jitter-backoff and latency-bound state machine of the playback side.
//!
//! Sans-IO: the audio callback asks [`Backoff::plan`] what to do with the
//! frames the ring holds now and the frames the device wants now, and gets
//! back how many frames to drop, play and fill with silence. No clock, no
//! ring, no device: unit tests drive it with a simulated callback.
//!
//! Rules (all counts in frames, never interleaved samples):
//! - It starts in backoff: silence until `backoff_frames` are buffered.
//!   Playback starts inside the callback during which the backoff fills:
//!   when `available + requested >= backoff_frames` (and the backoff is at
//!   least one device buffer), the buffer starts with `backoff − available`
//!   frames of silence and then plays audio. The first frame thus reaches
//!   the device a backoff after it arrived (in a steady stream), not up to
//!   one device period later as when starting only at a callback that
//!   already finds the whole backoff: that quantisation added 0 to 1 period
//!   (20 ms by default) of latency, different at every start.
//! - When the ring runs dry while playing, that callback plays what there is,
//!   pads with silence, counts an underrun and goes back into backoff.
//! - When more than `max_latency_frames` are buffered, the oldest audio is
//!   dropped back to `backoff_frames`, bounding the latency.

/// Counters kept by the state machine (the callback copies them to atomics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackoffCounters {
    /// Callbacks that found fewer frames than requested while playing.
    pub underruns: u64,
    /// Backoffs completed: playback (re)started after buffering, the first start included.
    pub resumes: u64,
    /// Times the buffer exceeded the latency bound and old audio was dropped.
    pub latency_drops: u64,
    /// Frames dropped to honour the latency bound.
    pub latency_dropped_frames: u64,
}

/// What the callback must do now: `lead` frames of silence, then `play`
/// frames from the ring, then `silence` frames of silence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Oldest frames to discard from the ring before playing.
    pub drop: usize,
    /// Frames of silence before the audio (only in the callback in which
    /// playback starts).
    pub lead: usize,
    /// Frames to take from the ring and play.
    pub play: usize,
    /// Frames of silence to play after them.
    pub silence: usize,
}

/// Whether the callback is waiting for the backoff to fill or playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Playing silence until the backoff level is buffered.
    Buffering,
    /// Playing buffered audio.
    Playing,
}

/// The backoff/latency state machine; see the module documentation.
#[derive(Debug, Clone)]
pub struct Backoff {
    backoff_frames: usize,
    max_latency_frames: usize,
    phase: Phase,
    counters: BackoffCounters,
}

impl Backoff {
    /// A state machine that resumes at `backoff_frames` buffered and trims
    /// back to that level above `max_latency_frames` (raised to at least
    /// `backoff_frames`, and the backoff to at least one frame).
    pub fn new(backoff_frames: usize, max_latency_frames: usize) -> Self {
        let backoff_frames = backoff_frames.max(1);
        Self {
            backoff_frames,
            max_latency_frames: max_latency_frames.max(backoff_frames),
            phase: Phase::Buffering,
            counters: BackoffCounters::default(),
        }
    }

    /// Converts milliseconds at `rate` frames per second into frames.
    pub fn ms_to_frames(ms: u32, rate: u32) -> usize {
        (u64::from(ms) * u64::from(rate) / 1000) as usize
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The counters so far.
    pub fn counters(&self) -> BackoffCounters {
        self.counters
    }

    /// Frames buffered before playback starts or resumes.
    pub fn backoff_frames(&self) -> usize {
        self.backoff_frames
    }

    /// Buffered frames above which old audio is dropped.
    pub fn max_latency_frames(&self) -> usize {
        self.max_latency_frames
    }

    /// Decides one callback: `available` frames are in the ring, the device
    /// wants `requested` frames. `drop + play <= available` and
    /// `lead + play + silence == requested` always hold.
    pub fn plan(&mut self, available: usize, requested: usize) -> Plan {
        let mut plan = Plan::default();
        let mut available = available;
        if available > self.max_latency_frames {
            plan.drop = available - self.backoff_frames;
            available = self.backoff_frames;
            self.counters.latency_drops += 1;
            self.counters.latency_dropped_frames += plan.drop as u64;
        }
        if self.phase == Phase::Buffering {
            if available < self.backoff_frames {
                let short = self.backoff_frames - available;
                // The backoff fills during this buffer: play from the frame
                // where it is full. `backoff >= requested` means the ring
                // holds the rest of this buffer (available >= requested − short).
                if short < requested && self.backoff_frames >= requested {
                    self.phase = Phase::Playing;
                    self.counters.resumes += 1;
                    plan.lead = short;
                    plan.play = requested - short;
                    return plan;
                }
                plan.silence = requested;
                return plan;
            }
            self.phase = Phase::Playing;
            self.counters.resumes += 1;
        }
        plan.play = available.min(requested);
        plan.silence = requested - plan.play;
        if plan.silence > 0 {
            // The ring ran dry: play what there is, then back off again.
            self.counters.underruns += 1;
            self.phase = Phase::Buffering;
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated device pulling `period` frames per callback from a ring
    /// that a simulated network fills; returns the plans.
    struct Sim {
        backoff: Backoff,
        buffered: usize,
        played: Vec<bool>, // per frame: audio (true) or silence (false)
    }

    impl Sim {
        fn new(backoff: usize, max: usize) -> Self {
            Self {
                backoff: Backoff::new(backoff, max),
                buffered: 0,
                played: Vec::new(),
            }
        }
        fn arrive(&mut self, frames: usize) {
            self.buffered += frames;
        }
        fn callback(&mut self, period: usize) -> Plan {
            let plan = self.backoff.plan(self.buffered, period);
            assert!(plan.drop + plan.play <= self.buffered);
            assert_eq!(plan.lead + plan.play + plan.silence, period);
            self.buffered -= plan.drop + plan.play;
            self.played.extend(std::iter::repeat_n(false, plan.lead));
            self.played.extend(std::iter::repeat_n(true, plan.play));
            self.played.extend(std::iter::repeat_n(false, plan.silence));
            plan
        }
    }

    #[test]
    fn ms_to_frames_counts_frames_not_samples() {
        assert_eq!(Backoff::ms_to_frames(50, 44_100), 2205);
        assert_eq!(Backoff::ms_to_frames(50, 48_000), 2400);
        assert_eq!(Backoff::ms_to_frames(0, 48_000), 0);
    }

    #[test]
    fn starts_in_backoff_and_resumes_exactly_at_the_backoff_level() {
        let mut sim = Sim::new(100, 400);
        assert_eq!(sim.backoff.phase(), Phase::Buffering);
        sim.arrive(68);
        assert_eq!(
            sim.callback(32),
            Plan {
                silence: 32,
                ..Plan::default()
            }
        );
        assert_eq!(sim.backoff.counters().resumes, 0);
        sim.arrive(32);
        assert_eq!(
            sim.callback(32),
            Plan {
                play: 32,
                ..Plan::default()
            }
        );
        assert_eq!(sim.backoff.phase(), Phase::Playing);
        assert_eq!(sim.backoff.counters().resumes, 1);
        assert_eq!(sim.backoff.counters().underruns, 0);
    }

    #[test]
    fn starts_inside_the_buffer_in_which_the_backoff_fills() {
        // 90 of 100 frames buffered, the device wants 32: 10 frames of
        // silence, then audio from the frame at which 100 would have been
        // buffered had the stream kept arriving.
        let mut sim = Sim::new(100, 400);
        sim.arrive(90);
        assert_eq!(
            sim.callback(32),
            Plan {
                lead: 10,
                play: 22,
                ..Plan::default()
            }
        );
        assert_eq!(sim.backoff.phase(), Phase::Playing);
        assert_eq!(sim.buffered, 68); // backoff − one buffer, as after a start at exactly 100
                                      // A steady stream from here never runs dry.
        for _ in 0..100 {
            sim.arrive(32);
            assert_eq!(sim.callback(32).play, 32);
        }
        assert_eq!(sim.backoff.counters().underruns, 0);
        // Exactly at a buffer's distance from the backoff it waits.
        let mut sim = Sim::new(100, 400);
        sim.arrive(68);
        assert_eq!(sim.callback(32).silence, 32);
        // A backoff shorter than the device buffer cannot start mid-buffer
        // without running dry: it starts only once it is full.
        let mut sim = Sim::new(20, 400);
        sim.arrive(19);
        assert_eq!(sim.callback(32).silence, 32);
        sim.arrive(1);
        assert_eq!(sim.callback(32).play, 20);
    }

    #[test]
    fn steady_stream_plays_without_underruns() {
        let mut sim = Sim::new(64, 256);
        sim.arrive(64);
        for _ in 0..1000 {
            sim.callback(32);
            sim.arrive(32);
        }
        let c = sim.backoff.counters();
        assert_eq!((c.underruns, c.resumes, c.latency_drops), (0, 1, 0));
        assert!(sim.played.iter().all(|&a| a));
    }

    #[test]
    fn running_dry_pads_with_silence_and_backs_off_again() {
        let mut sim = Sim::new(100, 400);
        sim.arrive(100);
        sim.callback(64); // 36 left
        assert_eq!(
            sim.callback(64),
            Plan {
                play: 36,
                silence: 28,
                ..Plan::default()
            }
        );
        assert_eq!(sim.backoff.phase(), Phase::Buffering);
        assert_eq!(sim.backoff.counters().underruns, 1);
        // A gap: nothing arrives; only silence, no further underruns counted.
        for _ in 0..10 {
            assert_eq!(sim.callback(64).silence, 64);
        }
        assert_eq!(sim.backoff.counters().underruns, 1);
        // Input resumes in small pieces: silence until 100 frames are
        // buffered, or would be within the buffer (30 + 64 < 100 < 70 + 64).
        sim.arrive(30);
        assert_eq!(sim.callback(64).silence, 64);
        sim.arrive(40);
        let plan = sim.callback(64);
        assert_eq!((plan.lead, plan.play), (30, 34));
        let c = sim.backoff.counters();
        assert_eq!((c.underruns, c.resumes), (1, 2));
    }

    #[test]
    fn exactly_draining_the_ring_is_not_an_underrun() {
        let mut sim = Sim::new(64, 256);
        sim.arrive(64);
        assert_eq!(sim.callback(64).play, 64);
        assert_eq!(sim.backoff.counters().underruns, 0);
        assert_eq!(sim.callback(64).silence, 64);
        assert_eq!(sim.backoff.counters().underruns, 1);
    }

    #[test]
    fn latency_bound_drops_oldest_back_to_backoff_level() {
        let mut sim = Sim::new(100, 400);
        sim.arrive(100);
        sim.callback(50); // playing, 50 left
        sim.arrive(351); // 401 > 400
        let plan = sim.callback(50);
        assert_eq!(
            plan,
            Plan {
                drop: 301,
                play: 50,
                ..Plan::default()
            }
        );
        assert_eq!(sim.buffered, 50);
        let c = sim.backoff.counters();
        assert_eq!((c.latency_drops, c.latency_dropped_frames), (1, 301));
        // Exactly at the bound nothing is dropped.
        sim.arrive(350);
        assert_eq!(sim.callback(10).drop, 0);
    }

    #[test]
    fn latency_bound_applies_while_buffering_too() {
        // A device that stalled at start: a burst far above the bound arrives.
        let mut sim = Sim::new(100, 400);
        sim.arrive(1000);
        assert_eq!(
            sim.callback(10),
            Plan {
                drop: 900,
                play: 10,
                ..Plan::default()
            }
        );
        assert_eq!(sim.backoff.counters().resumes, 1);
    }

    #[test]
    fn degenerate_settings_are_clamped() {
        let b = Backoff::new(0, 0);
        assert_eq!((b.backoff_frames(), b.max_latency_frames()), (1, 1));
        let b = Backoff::new(500, 100);
        assert_eq!(b.max_latency_frames(), 500);
    }
}
