//! When a decoded video frame is shown.
//!
//! Frames leave the jitter buffer unevenly: one that waited for a retransmission comes a repair
//! late, and the frames held behind it come at once after it. Shown the moment they are decoded,
//! every such wait is a stall on screen, however well the packet was repaired: measured on a
//! 600 kbit/s link with 3 % loss, repairs taking 200-250 ms while a queue stood on the link made
//! one or two freezes a call where Chromium, on the same link, had none. libwebrtc shows each
//! frame at its capture time plus a target delay that covers the delays frames have been
//! meeting (its jitter estimate, and a round trip while it repairs by retransmission); this
//! does the same from the delays measured here:
//!
//! - A frame's *transit* is its arrival (complete, in order) less its RTP timestamp; the least
//!   transit of the last [`BASE_WINDOW`] is the path's own, and how far a frame's exceeds it is
//!   the frame's *delay*: about 0 on a steady link, a repair's time for a repaired frame. The
//!   base window is short so that a queue standing on the link becomes part of the path: frames
//!   coming steadily late are no stall, and covering them cost 50-100 ms of latency on a
//!   600 kbit/s link for nothing; what stalls the picture is a frame late against its
//!   neighbours.
//! - The *target* covers all but the rarest delays of the last [`WINDOW`] ([`COVERED`]), at
//!   most [`MAX_TARGET`]: it rises at once and falls by at most [`FALL_PER_SECOND`] (playback a
//!   few per cent faster than real time), so a quiet spell gives the latency back unnoticed.
//! - A frame is shown `target - delay` after it arrived; one later than the target at once.
//!
//! So a clean link keeps its latency (delays near 0, target near 0) and a lossy one trades a
//! repair's worth of it for a picture that keeps moving. Pure: times are passed in.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// RTP's clock for video.
pub(crate) const VIDEO_CLOCK_RATE: u32 = 90_000;

/// The span of frames the target is taken from.
const WINDOW: Duration = Duration::from_secs(10);
/// The span of frames the path's own transit is taken from: about ten frames, longer than a
/// repair and the burst behind it, shorter than a queue's build-up (on a 600 kbit/s link sent
/// 100 kbit/s over, 5 ms a frame).
const BASE_WINDOW: Duration = Duration::from_millis(300);
/// The share of recent frames the target lets arrive in time.
const COVERED: f64 = 0.97;
/// Lateness not covered: a frame this late against its neighbours shows as a hitch of
/// `TOLERATED_LATENESS` + a frame, short of a freeze by getStats' rule (the average interval +
/// 150 ms), and covering it would hold every frame back by as much.
const TOLERATED_LATENESS: Duration = Duration::from_millis(100);
/// The most a frame is held back: past this, smoothness costs more in conversation than it
/// gives.
pub(crate) const MAX_TARGET: Duration = Duration::from_millis(400);
/// How fast the target falls (libwebrtc's limit on its own target's change).
const FALL_PER_SECOND: Duration = Duration::from_millis(100);
/// A frame this much later than the path's own transit means the sender's clock jumped (a new
/// encoder, a restarted stream), not a slow frame: timing starts again.
const RESTART_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub(crate) struct RenderTiming {
    clock_rate: f64,
    /// The first frame's arrival and timestamp: transits are counted from them.
    origin: Option<(Instant, i64)>,
    /// The last timestamp, extended past the 32-bit wrap.
    last_timestamp: i64,
    /// (capture time in seconds since the origin, transit in seconds), transits increasing: the
    /// least of the window in front. By capture time, not arrival: a frame that stalled longer
    /// than the window is still measured against the frames captured just before it.
    transits: VecDeque<(f64, f64)>,
    /// (arrival, delay) of the frames of the window.
    delays: VecDeque<(Instant, Duration)>,
    target: Duration,
    updated: Option<Instant>,
}

impl RenderTiming {
    pub(crate) fn new(clock_rate: u32) -> Self {
        RenderTiming {
            clock_rate: f64::from(clock_rate),
            origin: None,
            last_timestamp: 0,
            transits: VecDeque::new(),
            delays: VecDeque::new(),
            target: Duration::ZERO,
            updated: None,
        }
    }

    /// How long frames are being held back at most.
    pub(crate) fn target(&self) -> Duration {
        self.target
    }

    /// A frame with RTP timestamp `timestamp` became complete at `arrival`: when to show it.
    pub(crate) fn show_at(&mut self, arrival: Instant, timestamp: u32) -> Instant {
        let delay = self.delay_of(arrival, timestamp);
        let delay = if delay > RESTART_AFTER {
            *self = RenderTiming {
                clock_rate: self.clock_rate,
                ..RenderTiming::new(0)
            };
            self.delay_of(arrival, timestamp)
        } else {
            delay
        };
        while self
            .delays
            .front()
            .is_some_and(|&(at, _)| arrival.saturating_duration_since(at) > WINDOW)
        {
            self.delays.pop_front();
        }
        self.delays.push_back((arrival, delay));
        let before = self.target;
        self.retarget(arrival);
        // Only a frame late by more than is tolerated: one that may stall the picture (with a
        // target of 0, every frame a millisecond late would be logged).
        if delay > before + TOLERATED_LATENESS {
            tracing::debug!(
                delay_ms = delay.as_millis() as u64,
                target_ms = before.as_millis() as u64,
                "a frame came later than the target and the tolerated lateness"
            );
        }
        arrival + self.target.saturating_sub(delay)
    }

    /// The frame's delay over the least transit of the window (which it joins).
    fn delay_of(&mut self, arrival: Instant, timestamp: u32) -> Duration {
        let (origin_at, origin_timestamp) = match self.origin {
            Some(origin) => origin,
            None => {
                self.last_timestamp = i64::from(timestamp);
                *self.origin.insert((arrival, i64::from(timestamp)))
            }
        };
        // Timestamps wrap at 2^32; extend them from the last one (frames come in order).
        let step = timestamp.wrapping_sub(self.last_timestamp as u32) as i32;
        self.last_timestamp += i64::from(step);
        let media = (self.last_timestamp - origin_timestamp) as f64 / self.clock_rate;
        let transit = arrival.saturating_duration_since(origin_at).as_secs_f64() - media;
        while self.transits.back().is_some_and(|&(_, t)| t >= transit) {
            self.transits.pop_back();
        }
        self.transits.push_back((media, transit));
        while self
            .transits
            .front()
            .is_some_and(|&(captured, _)| media - captured > BASE_WINDOW.as_secs_f64())
        {
            self.transits.pop_front();
        }
        let least = self.transits.front().map_or(transit, |&(_, t)| t);
        Duration::from_secs_f64((transit - least).max(0.0))
    }

    fn retarget(&mut self, now: Instant) {
        let mut delays: Vec<Duration> = self.delays.iter().map(|&(_, d)| d).collect();
        let rank = ((delays.len() as f64 * COVERED).ceil() as usize).clamp(1, delays.len()) - 1;
        let (_, &mut covering, _) = delays.select_nth_unstable(rank);
        let covering = covering.saturating_sub(TOLERATED_LATENESS).min(MAX_TARGET);
        let since = self
            .updated
            .replace(now)
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let lowest = self
            .target
            .saturating_sub(FALL_PER_SECOND.mul_f64(since.as_secs_f64()));
        self.target = covering.max(lowest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_micros(33_333);
    const TICKS_PER_FRAME: u32 = 3000;

    /// Frames at 30 fps from `first`, each arriving `extra(i)` after its steady time; returns
    /// the intervals between the times they are shown.
    fn shown(
        timing: &mut RenderTiming,
        start: Instant,
        frames: std::ops::Range<u32>,
        extra: impl Fn(u32) -> Duration,
    ) -> Vec<(Instant, Instant)> {
        frames
            .map(|i| {
                let arrival = start + FRAME * i + extra(i);
                (
                    arrival,
                    timing.show_at(arrival, i.wrapping_mul(TICKS_PER_FRAME)),
                )
            })
            .collect()
    }

    fn longest_gap(times: &[(Instant, Instant)]) -> Duration {
        times
            .windows(2)
            .map(|w| w[1].1.saturating_duration_since(w[0].1))
            .max()
            .unwrap_or_default()
    }

    #[test]
    fn a_steady_stream_is_shown_as_it_comes() {
        let mut timing = RenderTiming::new(VIDEO_CLOCK_RATE);
        let start = Instant::now();
        let times = shown(&mut timing, start, 0..300, |_| Duration::ZERO);
        assert!(times.iter().all(|&(arrival, show)| show == arrival));
        assert_eq!(timing.target(), Duration::ZERO);
    }

    #[test]
    fn repaired_frames_stop_stalling_the_picture_once_repairs_have_been_seen() {
        let mut timing = RenderTiming::new(VIDEO_CLOCK_RATE);
        let start = Instant::now();
        // Every 10th frame waits 250 ms for a retransmission; those behind it come with it.
        let repair = |i: u32| {
            let stall = Duration::from_millis(250);
            stall.saturating_sub(FRAME * (i % 10).wrapping_sub(5).min(100))
        };
        // Shown as they come, each repair is a 283 ms gap (a freeze, by getStats' rule).
        let first = shown(&mut timing, start, 0..20, repair);
        assert!(longest_gap(&first) >= Duration::from_millis(280));
        // After the first repairs the target covers them but for the tolerated lateness: a
        // hitch of at most that much remains, no freeze.
        let later = shown(&mut timing, start, 20..300, repair);
        assert!(longest_gap(&later) <= FRAME + TOLERATED_LATENESS + Duration::from_millis(1));
        let target = timing.target();
        let expected = Duration::from_millis(250) - TOLERATED_LATENESS;
        assert!(
            target.abs_diff(expected) < Duration::from_millis(1),
            "{target:?}"
        );
        assert!(later
            .iter()
            .all(|&(arrival, show)| show - arrival <= target));
    }

    #[test]
    fn a_queue_building_on_the_link_is_no_delay_to_cover() {
        let mut timing = RenderTiming::new(VIDEO_CLOCK_RATE);
        let start = Instant::now();
        // Each frame 5 ms later than the one before, for 3 s (a 450 ms queue at the end).
        let times = shown(&mut timing, start, 0..90, |i| Duration::from_millis(5) * i);
        assert!(
            timing.target() <= Duration::from_millis(50),
            "{:?}",
            timing.target()
        );
        // Shown as they come: each a little later than the last, never a stall.
        assert!(longest_gap(&times) <= FRAME + Duration::from_millis(10));
    }

    #[test]
    fn the_target_falls_slowly_once_repairs_stop_and_never_passes_the_bound() {
        let mut timing = RenderTiming::new(VIDEO_CLOCK_RATE);
        let start = Instant::now();
        let slow = |i: u32| {
            if i % 10 == 5 {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            }
        };
        shown(&mut timing, start, 0..100, slow);
        assert_eq!(timing.target(), MAX_TARGET);
        // Repairs stop: after the window has passed, the target falls at 100 ms a second,
        // never by a jump.
        let mut previous = timing.target();
        for i in 100..(100 + 30 * 20) {
            timing.show_at(start + FRAME * i, i * TICKS_PER_FRAME);
            let now = timing.target();
            assert!(previous.saturating_sub(now) <= Duration::from_millis(4));
            previous = now;
        }
        assert_eq!(timing.target(), Duration::ZERO);
    }

    #[test]
    fn a_jump_in_the_senders_clock_starts_timing_again() {
        let mut timing = RenderTiming::new(VIDEO_CLOCK_RATE);
        let start = Instant::now();
        shown(&mut timing, start, 0..30, |_| Duration::ZERO);
        // The stream starts again 20 s back on the sender's clock: every frame would be 20 s
        // late against the old timing.
        let restarted = start + FRAME * 30;
        let timestamp = (29 * TICKS_PER_FRAME).wrapping_sub(20 * VIDEO_CLOCK_RATE);
        assert_eq!(timing.show_at(restarted, timestamp), restarted);
        assert_eq!(timing.target(), Duration::ZERO);
        let next = restarted + FRAME;
        let timestamp = timestamp.wrapping_add(TICKS_PER_FRAME);
        assert_eq!(timing.show_at(next, timestamp), next);
    }

    #[test]
    fn timestamps_wrap() {
        let mut timing = RenderTiming::new(VIDEO_CLOCK_RATE);
        let start = Instant::now();
        let near_wrap = u32::MAX - TICKS_PER_FRAME;
        for i in 0..4u32 {
            let arrival = start + FRAME * i;
            let timestamp = near_wrap.wrapping_add(i * TICKS_PER_FRAME);
            assert_eq!(timing.show_at(arrival, timestamp), arrival);
        }
    }
}
