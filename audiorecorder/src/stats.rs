//! Counters shared between the network thread, the audio callback and the
//! WAV writer, and the end-of-run summary built from them.
//!
//! Every counter is an atomic written with `Relaxed` ordering: they are
//! statistics, never used to synchronise data, and the audio callback may
//! touch nothing heavier.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::backoff::BackoffCounters;

/// Live counters; share it in an `Arc`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams (UDP) or Samples messages (TCP) accepted.
    pub packets: AtomicU64,
    /// Frames received from the accepted sender, in arrival order.
    pub received_frames: AtomicU64,
    /// Frames handed to the WAV writer that reached the file's buffer.
    pub recorded_frames: AtomicU64,
    /// Frames the WAV writer could not take because its queue was full.
    pub record_dropped_frames: AtomicU64,
    /// Datagrams with an odd length or a partial stereo frame (or empty).
    pub bad_datagrams: AtomicU64,
    /// Datagrams dropped because they came from another sender.
    pub foreign_datagrams: AtomicU64,
    /// Callbacks that ran dry while playing (each starts a backoff).
    pub underruns: AtomicU64,
    /// Backoffs completed: playback (re)starts.
    pub resumes: AtomicU64,
    /// Times old audio was dropped to honour `--max-latency-ms`.
    pub latency_drops: AtomicU64,
    /// Frames dropped to honour `--max-latency-ms`.
    pub latency_dropped_frames: AtomicU64,
    /// Frames skipped by the level control (drift: the ring too full).
    pub level_drops: AtomicU64,
    /// Frames repeated by the level control (drift: the ring too empty).
    pub level_repeats: AtomicU64,
    /// Frames the network side could not push because the ring was full.
    pub overrun_frames: AtomicU64,
    /// Frames taken from the ring and played (a frame the level control
    /// repeated counts once, one it skipped not at all).
    pub played_frames: AtomicU64,
    /// Frames of silence played (backoff and underruns).
    pub silence_frames: AtomicU64,
    /// Frames buffered in the ring at the last callback.
    pub buffered_frames: AtomicU64,
    /// Audio callbacks run.
    pub callbacks: AtomicU64,
    /// Longest time between two audio callbacks, in microseconds.
    pub max_callback_gap_us: AtomicU64,
    /// Errors reported by the audio output once running (xruns, a failing device).
    pub output_errors: AtomicU64,
    /// Errors reported while an output stream was starting (not logged).
    pub startup_errors: AtomicU64,
    /// Times the output stream was reopened after it stalled.
    pub output_reopens: AtomicU64,
    /// TCP connections established.
    pub connections: AtomicU64,
    /// Frames whose samples came in two messages (a datagram or Samples
    /// message that ended inside a frame), joined.
    pub split_frames: AtomicU64,
    /// Samples of an unfinished frame dropped because its rest could not
    /// follow (the sender changed, fell silent or changed the format).
    pub dropped_samples: AtomicU64,
    /// Times the UDP sender lock was released after the sender fell silent.
    pub source_releases: AtomicU64,
    /// TCP servers disconnected for changing the format too often.
    pub format_flap_disconnects: AtomicU64,
    /// RTP streams (SSRCs) followed.
    pub rtp_streams: AtomicU64,
    /// RTP packets lost: sequence numbers skipped and never received.
    pub rtp_lost_packets: AtomicU64,
    /// RTP packets that arrived after a later one.
    pub rtp_reordered: AtomicU64,
    /// RTP packets received twice (the copy is dropped).
    pub rtp_duplicates: AtomicU64,
    /// RTP packets whose place in the timeline was already given up
    /// (filled with silence) or taken: dropped.
    pub rtp_late: AtomicU64,
    /// Frames put in place of lost RTP audio (concealed or silence).
    pub rtp_concealed_frames: AtomicU64,
    /// Lost Opus packets recovered from the FEC of the packet after them.
    pub rtp_fec_recovered: AtomicU64,
    /// Of those, frames filled by packet-loss concealment (`--plc`; at
    /// most 50 ms per gap, the rest of a longer gap is silence).
    pub concealed_frames: AtomicU64,
    /// RTP packets of other streams (SSRCs or senders) than the followed one.
    pub rtp_foreign_ssrc: AtomicU64,
    /// RTP packets of a payload type that is not known L16.
    pub rtp_unknown_payload: AtomicU64,
    /// RTP packets of L16 at another rate than the recorder's.
    pub rtp_wrong_rate: AtomicU64,
    /// Timeline restarts: a confirmed sequence restart or a timestamp jump.
    pub rtp_resyncs: AtomicU64,
    /// RTCP datagrams received.
    pub rtcp_received: AtomicU64,
    /// Frames of silence recorded for gaps in the stream (`--keep-time`).
    pub gap_silence_frames: AtomicU64,
    /// Largest absolute sample received since the progress line last
    /// took it (see [`Stats::take_peak`]).
    pub recent_peak: AtomicU64,
    /// RTCP receiver reports sent.
    pub rtcp_reports_sent: AtomicU64,
    /// The audio callback thread's real-time promotion (`--rt-priority`):
    /// 0 not asked (yet), > 0 the SCHED_FIFO priority it runs at, < 0 the
    /// OS error number that refused it.
    pub callback_rt: AtomicI64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Publishes the growth of a backoff state machine's counters from
    /// `before` to `now` (callback side). Adding deltas rather than storing
    /// totals keeps the counters growing across a reopened output stream.
    pub fn add_backoff(&self, before: &BackoffCounters, now: &BackoffCounters) {
        Self::add(&self.underruns, now.underruns - before.underruns);
        Self::add(&self.resumes, now.resumes - before.resumes);
        Self::add(
            &self.latency_drops,
            now.latency_drops - before.latency_drops,
        );
        Self::add(
            &self.latency_dropped_frames,
            now.latency_dropped_frames - before.latency_dropped_frames,
        );
    }

    /// Raises the recent peak to the largest absolute sample of `samples`.
    pub fn note_peak(&self, samples: &[i16]) {
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        self.recent_peak
            .fetch_max(u64::from(peak), Ordering::Relaxed);
    }

    /// The peak since the last call, resetting it.
    pub fn take_peak(&self) -> u16 {
        self.recent_peak.swap(0, Ordering::Relaxed) as u16
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> Snapshot {
        let g = Self::get;
        Snapshot {
            packets: g(&self.packets),
            received_frames: g(&self.received_frames),
            recorded_frames: g(&self.recorded_frames),
            record_dropped_frames: g(&self.record_dropped_frames),
            bad_datagrams: g(&self.bad_datagrams),
            foreign_datagrams: g(&self.foreign_datagrams),
            underruns: g(&self.underruns),
            resumes: g(&self.resumes),
            latency_drops: g(&self.latency_drops),
            latency_dropped_frames: g(&self.latency_dropped_frames),
            level_drops: g(&self.level_drops),
            level_repeats: g(&self.level_repeats),
            overrun_frames: g(&self.overrun_frames),
            played_frames: g(&self.played_frames),
            silence_frames: g(&self.silence_frames),
            buffered_frames: g(&self.buffered_frames),
            callbacks: g(&self.callbacks),
            max_callback_gap_us: g(&self.max_callback_gap_us),
            output_errors: g(&self.output_errors),
            startup_errors: g(&self.startup_errors),
            output_reopens: g(&self.output_reopens),
            connections: g(&self.connections),
            split_frames: g(&self.split_frames),
            dropped_samples: g(&self.dropped_samples),
            source_releases: g(&self.source_releases),
            format_flap_disconnects: g(&self.format_flap_disconnects),
            rtp_streams: g(&self.rtp_streams),
            rtp_lost_packets: g(&self.rtp_lost_packets),
            rtp_reordered: g(&self.rtp_reordered),
            rtp_duplicates: g(&self.rtp_duplicates),
            rtp_late: g(&self.rtp_late),
            rtp_concealed_frames: g(&self.rtp_concealed_frames),
            rtp_fec_recovered: g(&self.rtp_fec_recovered),
            concealed_frames: g(&self.concealed_frames),
            rtp_foreign_ssrc: g(&self.rtp_foreign_ssrc),
            rtp_unknown_payload: g(&self.rtp_unknown_payload),
            rtp_wrong_rate: g(&self.rtp_wrong_rate),
            rtp_resyncs: g(&self.rtp_resyncs),
            rtcp_received: g(&self.rtcp_received),
            gap_silence_frames: g(&self.gap_silence_frames),
            rtcp_reports_sent: g(&self.rtcp_reports_sent),
        }
    }
}

/// Plain copy of [`Stats`] (field meanings are the same).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Snapshot {
    pub packets: u64,
    pub received_frames: u64,
    pub recorded_frames: u64,
    pub record_dropped_frames: u64,
    pub bad_datagrams: u64,
    pub foreign_datagrams: u64,
    pub underruns: u64,
    pub resumes: u64,
    pub latency_drops: u64,
    pub latency_dropped_frames: u64,
    pub level_drops: u64,
    pub level_repeats: u64,
    pub overrun_frames: u64,
    pub played_frames: u64,
    pub silence_frames: u64,
    pub buffered_frames: u64,
    pub callbacks: u64,
    pub max_callback_gap_us: u64,
    pub output_errors: u64,
    pub startup_errors: u64,
    pub output_reopens: u64,
    pub connections: u64,
    pub split_frames: u64,
    pub dropped_samples: u64,
    pub source_releases: u64,
    pub format_flap_disconnects: u64,
    pub rtp_streams: u64,
    pub rtp_lost_packets: u64,
    pub rtp_reordered: u64,
    pub rtp_duplicates: u64,
    pub rtp_late: u64,
    pub rtp_concealed_frames: u64,
    pub rtp_fec_recovered: u64,
    pub concealed_frames: u64,
    pub rtp_foreign_ssrc: u64,
    pub rtp_unknown_payload: u64,
    pub rtp_wrong_rate: u64,
    pub rtp_resyncs: u64,
    pub rtcp_received: u64,
    pub rtcp_reports_sent: u64,
    pub gap_silence_frames: u64,
}

/// The one-line summary printed when the recorder stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The counters at the end.
    pub stats: Snapshot,
    /// Sample rate the received frames are counted at (for the duration).
    pub sample_rate: u32,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let secs = s.received_frames as f64 / f64::from(self.sample_rate.max(1));
        write!(
            f,
            "received {:.2} s ({} frames), recorded {} frames, underruns {}, \
             backoffs {}, latency drops {} ({} frames), \
             level control {} frames dropped / {} repeated, overruns {} frames, \
             {} frames joined across messages (split_frames), \
             dropped: {} from other senders, {} malformed datagrams, {} frames the writer could not keep up with, \
             {} samples of unfinished frames",
            secs,
            s.received_frames,
            s.recorded_frames,
            s.underruns,
            s.resumes,
            s.latency_drops,
            s.latency_dropped_frames,
            s.level_drops,
            s.level_repeats,
            s.overrun_frames,
            s.split_frames,
            s.foreign_datagrams,
            s.bad_datagrams,
            s.record_dropped_frames,
            s.dropped_samples,
        )?;
        if s.gap_silence_frames > 0 {
            write!(
                f,
                ", {} frames of silence recorded for gaps (--keep-time)",
                s.gap_silence_frames
            )?;
        }
        let rtp_seen = s.rtp_streams
            + s.rtp_foreign_ssrc
            + s.rtp_unknown_payload
            + s.rtp_wrong_rate
            + s.rtcp_received;
        if rtp_seen > 0 {
            let recovered = if s.rtp_fec_recovered > 0 {
                format!("{} recovered by Opus FEC, ", s.rtp_fec_recovered)
            } else {
                String::new()
            };
            write!(
                f,
                "; RTP: {} stream(s) followed, {} packets lost ({recovered}{} frames in their place, {} of \
                 them concealed), {} reordered, {} duplicate, {} too late, {} timeline restarts, \
                 dropped {} of other streams, {} of unknown payload type, {} at another rate; \
                 RTCP: {} received, {} receiver reports sent",
                s.rtp_streams,
                s.rtp_lost_packets,
                s.rtp_concealed_frames,
                s.concealed_frames,
                s.rtp_reordered,
                s.rtp_duplicates,
                s.rtp_late,
                s.rtp_resyncs,
                s.rtp_foreign_ssrc,
                s.rtp_unknown_payload,
                s.rtp_wrong_rate,
                s.rtcp_received,
                s.rtcp_reports_sent,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_names_duration_frames_underruns_and_drops() {
        let stats = Stats::default();
        Stats::add(&stats.received_frames, 88_200);
        Stats::add(&stats.foreign_datagrams, 3);
        Stats::add(&stats.level_repeats, 5);
        stats.add_backoff(
            &BackoffCounters::default(),
            &BackoffCounters {
                underruns: 2,
                resumes: 3,
                latency_drops: 0,
                latency_dropped_frames: 0,
            },
        );
        let line = Summary {
            stats: stats.snapshot(),
            sample_rate: 44_100,
        }
        .to_string();
        assert!(line.starts_with("received 2.00 s (88200 frames)"), "{line}");
        assert!(line.contains("underruns 2"), "{line}");
        assert!(line.contains("3 from other senders"), "{line}");
        assert!(
            line.contains("level control 0 frames dropped / 5 repeated"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
