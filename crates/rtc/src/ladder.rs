//! Which picture size and frame rate to send at a given bitrate.
//!
//! Below some bits per pixel an encoder can only hold its bitrate by making a mush of every
//! frame, skipping frames, and producing keyframes that take seconds to cross the link: a
//! smaller picture at the same bitrate looks better and recovers faster. The ladder steps down
//! (to three quarters of the width and height, a half, a quarter, then half the frame rate)
//! when the target falls below what the current size needs, and back up once the next size up
//! has been affordable for a while; the gap between the two thresholds and the wait keep it
//! from flapping on a sawing estimate.
//!
//! A climb can still fail: below full size the estimate comes from probes (`probe`), and a link
//! behind a token bucket carries a short probe at line rate whatever its rate. Measured on a
//! steady 300 kbit/s link (15 kB bucket): every ~10 s a probe came back at the next size's need,
//! the ladder climbed from 320x240 to 640x480, sent a keyframe the link could not carry, and
//! stepped down again a second or two later. A probe cannot tell such a link from one that
//! widened, so each climb stepped back down soon after doubles the wait before the next, up to
//! a bound that keeps the climb after a real widening within seconds.
use std::time::{Duration, Instant};

use parlor_media::scale::Scale;

/// What to send: the source at `scale` of its size, every `frame_interval`-th frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rung {
    pub(crate) scale: Scale,
    pub(crate) frame_interval: u32,
}

/// Three quarters before a half, as libwebrtc steps (720p → 540p → 360p → 180p): each step
/// then costs less sharpness, and a link between two halvings' needs (measured: 300 kbit/s,
/// where 640x480 was too big and 320x240 used 120 kbit/s of it) gets the size between.
const RUNGS: [Rung; 5] = [
    Rung {
        scale: Scale::Full,
        frame_interval: 1,
    },
    Rung {
        scale: Scale::ThreeQuarters,
        frame_interval: 1,
    },
    Rung {
        scale: Scale::Half,
        frame_interval: 1,
    },
    Rung {
        scale: Scale::Quarter,
        frame_interval: 1,
    },
    Rung {
        scale: Scale::Quarter,
        frame_interval: 2,
    },
];

/// Below this many bits per pixel (per second, so bits / (pixels × fps)) a size is too big.
/// About what libwebrtc gives each simulcast layer as its minimum (600 kbit/s for 720p30).
const STEP_DOWN_BPP: f64 = 0.022;
/// A bigger size is taken back once it would get this much.
const STEP_UP_BPP: f64 = 0.035;
/// How long the bigger size must have been affordable before the ladder climbs.
const STEP_UP_AFTER: Duration = Duration::from_secs(3);
/// A climb stepped back down within this long failed; one that held this long resets the wait.
const CLIMB_HELD: Duration = Duration::from_secs(10);
/// The longest the wait to climb grows to after climbs that failed in a row: `drop300` asks
/// for the bitrate of before a 20 s dip back within 15 s of the link widening, and climbs that
/// failed during the dip must not delay that by more than this.
const LONGEST_STEP_UP_WAIT: Duration = Duration::from_secs(12);
/// How long a size is kept at least before the next step down: the encoder needs a moment at
/// its new bitrate before its output says anything.
const STEP_DOWN_AFTER: Duration = Duration::from_secs(1);
/// Smallest height worth sending; rungs that would go below it are skipped.
const MIN_HEIGHT: usize = 90;
/// Halving the frame rate is only worth it from a source at least this fast.
const MIN_FPS_TO_HALVE: u32 = 20;

#[derive(Debug, Default)]
pub(crate) struct Ladder {
    rung: usize,
    changed_at: Option<Instant>,
    /// Since when the rung above has been affordable.
    affordable_since: Option<Instant>,
    /// When the ladder last climbed, until the climb has held for [`CLIMB_HELD`].
    climbed_at: Option<Instant>,
    /// Climbs in a row that were stepped back down within [`CLIMB_HELD`].
    failed_climbs: u32,
}

impl Ladder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A ladder that starts at the biggest size `target_bps` affords (what the ladder would
    /// climb to): a new encoder for a link already known to be thin starts small, rather than
    /// stepping down a rung a second, and its first keyframe, made before its rate control has
    /// the target, is one the link can carry.
    pub(crate) fn starting_at(target_bps: u32, source: (usize, usize, u32)) -> Self {
        let mut ladder = Self::new();
        let usable = |index: usize| ladder_usable(index, source);
        ladder.rung = (0..RUNGS.len())
            .filter(|&index| usable(index))
            .find(|&index| f64::from(target_bps) / pixels_per_second(index, source) >= STEP_UP_BPP)
            .unwrap_or_else(|| (0..RUNGS.len()).rev().find(|&i| usable(i)).unwrap_or(0));
        ladder
    }

    pub(crate) fn rung(&self) -> Rung {
        RUNGS[self.rung]
    }

    fn step_to(&mut self, rung: usize, now: Instant) {
        if rung < self.rung {
            self.climbed_at = Some(now);
        } else if self.climbed_at.take().is_some() {
            self.failed_climbs += 1;
        }
        self.rung = rung;
        self.changed_at = Some(now);
        self.affordable_since = None;
    }

    /// How long the next size up must have been affordable before the ladder climbs to it.
    fn step_up_wait(&self) -> Duration {
        STEP_UP_AFTER
            .saturating_mul(1 << self.failed_climbs.min(8))
            .min(LONGEST_STEP_UP_WAIT)
    }

    /// The rung to send at now, given the video's share of the estimate and the source.
    pub(crate) fn follow(
        &mut self,
        now: Instant,
        target_bps: u32,
        (width, height, fps): (usize, usize, u32),
    ) -> Rung {
        let usable = |index: usize| ladder_usable(index, (width, height, fps));
        let bpp = |index: usize| target_bps as f64 / pixels_per_second(index, (width, height, fps));
        // A source that shrank (a new camera) may have made the current rung unusable.
        while self.rung > 0 && !usable(self.rung) {
            self.rung -= 1;
        }
        if self
            .climbed_at
            .is_some_and(|at| now.duration_since(at) >= CLIMB_HELD)
        {
            self.climbed_at = None;
            self.failed_climbs = 0;
        }
        let settled = self
            .changed_at
            .is_none_or(|at| now.duration_since(at) >= STEP_DOWN_AFTER);
        let below = self.rung + 1;
        if below < RUNGS.len() && usable(below) && bpp(self.rung) < STEP_DOWN_BPP && settled {
            self.step_to(below, now);
        } else if self.rung > 0 && bpp(self.rung - 1) >= STEP_UP_BPP {
            let since = *self.affordable_since.get_or_insert(now);
            if now.duration_since(since) >= self.step_up_wait() {
                self.step_to(self.rung - 1, now);
            }
        } else {
            self.affordable_since = None;
        }
        self.rung()
    }

    /// The video bitrate at which the next size up becomes affordable, or `None` at full size:
    /// what a probe must show the path can carry before the ladder can climb.
    pub(crate) fn next_size_bps(&self, source: (usize, usize, u32)) -> Option<u32> {
        let above = self.rung.checked_sub(1)?;
        Some(affordable_at_bps(above, source))
    }

    /// The video bitrate at which `source` is sent at full size.
    pub(crate) fn full_size_bps(source: (usize, usize, u32)) -> u32 {
        affordable_at_bps(0, source)
    }
}

/// The video bitrate from which `RUNGS[index]` of `source` is affordable.
fn affordable_at_bps(index: usize, source: (usize, usize, u32)) -> u32 {
    (STEP_UP_BPP * pixels_per_second(index, source)).ceil() as u32
}

/// Whether `RUNGS[index]` is worth sending of a `(width, height, fps)` source: not below the
/// smallest useful height, and not at half the frame rate of an already slow source.
fn ladder_usable(index: usize, (width, height, fps): (usize, usize, u32)) -> bool {
    let rung = RUNGS[index];
    let (_, h) = parlor_media::scale::scaled_size(width, height, rung.scale);
    index == 0 || (h >= MIN_HEIGHT && (rung.frame_interval == 1 || fps >= MIN_FPS_TO_HALVE))
}

/// Pixels a second that `RUNGS[index]` sends of a `(width, height, fps)` source.
fn pixels_per_second(index: usize, (width, height, fps): (usize, usize, u32)) -> f64 {
    let rung = RUNGS[index];
    let (w, h) = parlor_media::scale::scaled_size(width, height, rung.scale);
    let frames = (fps.max(1) as f64 / rung.frame_interval as f64).max(1.0);
    (w * h).max(1) as f64 * frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    const VGA: (usize, usize, u32) = (640, 480, 30);
    const HD: (usize, usize, u32) = (1280, 720, 30);

    #[test]
    fn a_generous_target_sends_the_source_as_it_is() {
        let mut ladder = Ladder::new();
        let now = Instant::now();
        assert_eq!(ladder.follow(now, 2_000_000, HD), RUNGS[0]);
        assert_eq!(
            ladder.follow(now, 700_000, HD),
            RUNGS[0],
            "720p keeps to 600k"
        );
    }

    #[test]
    fn a_falling_target_steps_down_one_rung_per_second_to_half_the_frame_rate() {
        let mut ladder = Ladder::new();
        let start = Instant::now();
        let rungs: Vec<Rung> = (0..6)
            .map(|second| ladder.follow(at(start, second * 1000), 10_000, VGA))
            .collect();
        assert_eq!(
            rungs,
            vec![RUNGS[1], RUNGS[2], RUNGS[3], RUNGS[4], RUNGS[4], RUNGS[4]]
        );
        // Nothing happens in between: each step waits for the last to take effect.
        let mut ladder = Ladder::new();
        ladder.follow(start, 10_000, VGA);
        assert_eq!(ladder.follow(at(start, 500), 10_000, VGA), RUNGS[1]);
    }

    #[test]
    fn it_climbs_back_only_after_the_bigger_size_was_affordable_for_a_while() {
        let mut ladder = Ladder::new();
        let start = Instant::now();
        ladder.follow(start, 150_000, VGA);
        assert_eq!(ladder.rung(), RUNGS[1], "640x480 at 150k is too little");
        // 330k would give 640x480 0.036 bpp: affordable, but not yet for 3 s.
        assert_eq!(ladder.follow(at(start, 2000), 330_000, VGA), RUNGS[1]);
        assert_eq!(ladder.follow(at(start, 4000), 330_000, VGA), RUNGS[1]);
        assert_eq!(ladder.follow(at(start, 5000), 330_000, VGA), RUNGS[0]);
    }

    #[test]
    fn each_climb_stepped_back_down_soon_doubles_the_wait_before_the_next() {
        let mut ladder = Ladder::new();
        let start = Instant::now();
        ladder.follow(start, 150_000, VGA);
        assert_eq!(ladder.rung(), RUNGS[1]);
        // A probe says 640x480 is affordable; the link then says it was not: a climb after the
        // usual 3 s, and a step down a second later.
        let mut now = 1_000;
        let mut waits = Vec::new();
        for _ in 0..4 {
            let affordable_from = now;
            while ladder.follow(at(start, now), 400_000, VGA) != RUNGS[0] {
                now += 500;
                assert!(now < affordable_from + 60_000, "never climbed");
            }
            waits.push(now - affordable_from);
            now += 1_000;
            assert_eq!(ladder.follow(at(start, now), 150_000, VGA), RUNGS[1]);
            now += 1_000;
        }
        assert_eq!(waits, vec![3_000, 6_000, 12_000, 12_000]);
        // A climb that holds makes the next wait the usual one again.
        ladder.follow(at(start, now), 400_000, VGA);
        now += 12_000;
        assert_eq!(ladder.follow(at(start, now), 400_000, VGA), RUNGS[0]);
        now += 10_000;
        assert_eq!(ladder.follow(at(start, now), 400_000, VGA), RUNGS[0]);
        now += 1_000;
        assert_eq!(ladder.follow(at(start, now), 150_000, VGA), RUNGS[1]);
        ladder.follow(at(start, now + 1_000), 400_000, VGA);
        assert_eq!(
            ladder.follow(at(start, now + 4_000), 400_000, VGA),
            RUNGS[0]
        );
    }

    #[test]
    fn below_full_size_it_says_what_the_next_size_up_needs() {
        let mut ladder = Ladder::new();
        let start = Instant::now();
        assert_eq!(ladder.next_size_bps(VGA), None, "full size");
        ladder.follow(start, 150_000, VGA);
        // 640x480 at 30 fps and 0.035 bits per pixel.
        let needed = ladder.next_size_bps(VGA).expect("below full size");
        assert!(needed.abs_diff(322_560) <= 1, "{needed}");
        // And that figure is what makes the ladder climb (after its wait).
        ladder.follow(at(start, 1000), needed, VGA);
        assert_eq!(ladder.follow(at(start, 4000), needed, VGA), RUNGS[0]);
        ladder.follow(at(start, 5000), 10_000, VGA);
        ladder.follow(at(start, 6000), 10_000, VGA);
        assert_eq!(ladder.rung(), RUNGS[2]);
        // 480x360 at 30 fps (rounded up: a figure just under would not climb).
        let needed = ladder.next_size_bps(VGA).expect("below full size");
        assert!(needed.abs_diff(181_440) <= 1, "{needed}");
    }

    #[test]
    fn a_target_between_the_thresholds_stays_where_it_is() {
        let mut ladder = Ladder::new();
        let start = Instant::now();
        ladder.follow(start, 150_000, VGA);
        // 250k: enough for 480x360 to stay, not enough to climb to 640x480 (0.027 bpp).
        for second in 1..30 {
            assert_eq!(
                ladder.follow(at(start, second * 1000), 250_000, VGA),
                RUNGS[1]
            );
        }
        // A dip interrupts the wait to climb.
        let mut ladder = Ladder::new();
        ladder.follow(start, 150_000, VGA);
        ladder.follow(at(start, 1000), 400_000, VGA);
        ladder.follow(at(start, 3000), 250_000, VGA);
        assert_eq!(ladder.follow(at(start, 4500), 400_000, VGA), RUNGS[1]);
    }

    #[test]
    fn a_ladder_for_a_thin_link_starts_at_the_size_it_can_keep() {
        assert_eq!(Ladder::starting_at(2_000_000, VGA).rung(), RUNGS[0]);
        // 640x480 at 30 fps is affordable from 323k (0.035 bpp); 480x360 182k, 320x240 81k,
        // 160x120 20k.
        assert_eq!(Ladder::starting_at(330_000, VGA).rung(), RUNGS[0]);
        assert_eq!(Ladder::starting_at(300_000, VGA).rung(), RUNGS[1]);
        assert_eq!(Ladder::starting_at(150_000, VGA).rung(), RUNGS[2]);
        assert_eq!(Ladder::starting_at(40_000, VGA).rung(), RUNGS[3]);
        assert_eq!(Ladder::starting_at(15_000, VGA).rung(), RUNGS[4]);
        // A 320x240 source never goes below 160x120.
        assert_eq!(
            Ladder::starting_at(1_000, (320, 240, 30)).rung().scale,
            Scale::Half
        );
        // And it climbs from there as any ladder does, a rung at a time.
        let mut ladder = Ladder::starting_at(150_000, VGA);
        let start = Instant::now();
        ladder.follow(start, 400_000, VGA);
        assert_eq!(ladder.follow(at(start, 3000), 400_000, VGA), RUNGS[1]);
        ladder.follow(at(start, 4000), 400_000, VGA);
        assert_eq!(ladder.follow(at(start, 7000), 400_000, VGA), RUNGS[0]);
    }

    #[test]
    fn small_or_slow_sources_keep_their_size_or_frame_rate() {
        let mut ladder = Ladder::new();
        let start = Instant::now();
        // 320x240: a half (160x120) is the last size of at least 90 rows.
        let rungs: Vec<Rung> = (0..4)
            .map(|second| ladder.follow(at(start, second * 1000), 1_000, (320, 240, 30)))
            .collect();
        assert_eq!(rungs, vec![RUNGS[1], RUNGS[2], RUNGS[2], RUNGS[2]]);
        let mut ladder = Ladder::new();
        for second in 0..6 {
            ladder.follow(at(start, second * 1000), 1_000, (640, 480, 15));
        }
        assert_eq!(
            ladder.rung(),
            RUNGS[3],
            "a 15 fps source keeps its frame rate"
        );
    }
}
