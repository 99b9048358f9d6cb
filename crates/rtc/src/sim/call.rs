//! Video calls through one shared bottleneck, each sender built from the real parts a
//! `LocalVideoTrack` uses to follow its link: Google Congestion Control as `peer` composes it
//! (`congestion::Gcc`, with its probe results), the picture-size `Ladder`, and the prober's
//! `ProbePlan`. What is modelled rather than real, and why that is enough:
//! - the encoder: each frame is as big as the estimate's video share allows, but never bigger
//!   than the picture needs ([`natural_bpp`], measured on the test pattern the shaped-link
//!   benchmarks send), and a change of size costs a keyframe ([`KEYFRAME_FRAMES`] frames);
//! - audio: a steady 40 kbit/s, as the video share leaves room for;
//! - the pacer: packets leave at the estimate, as webrtc-rs's does;
//! - transport-wide feedback: every 50 ms from each receiver, itself carried through the same
//!   bottleneck (a `tc` qdisc on `lo` shapes both directions of a loopback call); a report lost
//!   with its feedback packet is sent again in the next one.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, PacketReport};
use tokio::sync::watch;

use super::bottleneck::Bottleneck;
use crate::congestion::{Gcc, Published, MAX_BITRATE_BPS, MIN_BITRATE_BPS};
use crate::estimate::{video_share, Estimate};
use crate::ladder::{Ladder, Rung};
use crate::probe::{cluster_packets, ProbeLog, ProbePlan, SMALLEST_COPY};
use parlor_media::scale::Scale;

/// Bits per pixel the test pattern needs at each size when the link does not limit it
/// (30 fps): measured on the shaped-link benchmarks, ~37 kbit/s at 160x120 and ~120 kbit/s at
/// 320x240; 640x480 took over 800 kbit/s on a clean link. A small picture of it is
/// application-limited well under what its link could carry.
fn natural_bpp(scale: Scale) -> f64 {
    match scale {
        Scale::Full => 0.09,
        Scale::ThreeQuarters => 0.07,
        Scale::Half => 0.052,
        Scale::Quarter => 0.064,
    }
}
/// A keyframe costs this many ordinary frames.
const KEYFRAME_FRAMES: f64 = 4.0;
const PACKET: usize = 1200;
const AUDIO_PACKET: usize = 100;
const AUDIO_EVERY: Duration = Duration::from_millis(20);
const FEEDBACK_PACKET: usize = 80;
const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
const SOURCE: (usize, usize, u32) = (640, 480, 30);

/// One sender of a call, and the receiver's feedback to it.
pub(crate) struct Sender {
    estimator: Published<Gcc>,
    estimate: watch::Receiver<Option<Estimate>>,
    log: ProbeLog,
    ladder: Ladder,
    plan: ProbePlan,
    rung: Option<Rung>,
    next_frame: Duration,
    frames: u64,
    next_audio: Duration,
    /// Packets waiting in the pacer, bytes each, and whether each is video.
    pacer: VecDeque<(usize, bool)>,
    next_paced: Duration,
    /// The latest video packet worth copying into a probe.
    latest_video: Option<usize>,
    /// A probe cluster going out: copies left, spacing, when the next is due.
    cluster: Option<(usize, Duration, Duration)>,
    sent: u64,
    /// Packets whose fate the receiver knows or will know: (known at, report).
    unreported: Vec<(Duration, PacketReport)>,
    /// Feedback on its way back: (arrives at, reports).
    feedback: Vec<(Duration, Vec<PacketReport>)>,
    next_feedback: Duration,
    /// (time, picture height) every 100 ms.
    pub(crate) heights: Vec<(Duration, usize)>,
    /// (arrival, bits) of every media packet that arrived.
    pub(crate) delivered: Vec<(Duration, f64)>,
}

impl Sender {
    /// A sender whose estimate starts at `start_bps` and whose media starts at `starts`; its
    /// receiver's feedback timer runs `feedback_phase` after the first media.
    fn new(start_bps: u32, starts: Duration, feedback_phase: Duration) -> Self {
        let log = ProbeLog::default();
        let (tx, estimate) = watch::channel(None);
        let gcc = Gcc::new(start_bps, MIN_BITRATE_BPS, MAX_BITRATE_BPS).with_probes(log.clone());
        Sender {
            estimator: Published::new(gcc, tx),
            estimate,
            log,
            ladder: Ladder::starting_at(video_share(start_bps), SOURCE),
            plan: ProbePlan::default(),
            rung: None,
            next_frame: starts,
            frames: 0,
            next_audio: starts,
            pacer: VecDeque::new(),
            next_paced: Duration::ZERO,
            latest_video: None,
            cluster: None,
            sent: 0,
            unreported: Vec::new(),
            feedback: Vec::new(),
            next_feedback: starts + FEEDBACK_INTERVAL + feedback_phase,
            heights: Vec::new(),
            delivered: Vec::new(),
        }
    }

    fn target(&self) -> f64 {
        self.estimator.target_bitrate()
    }

    /// Encodes what is due by `now` into the pacer.
    fn encode(&mut self, epoch: Instant, now: Duration) {
        while self.next_frame <= now {
            let at = self.next_frame;
            self.next_frame += Duration::from_secs(1) / SOURCE.2;
            let video_bps = video_share(self.target() as u32);
            let rung = self.ladder.follow(epoch + at, video_bps, SOURCE);
            self.frames += 1;
            if !self.frames.is_multiple_of(u64::from(rung.frame_interval)) {
                continue;
            }
            let (width, height) = parlor_media::scale::scaled_size(SOURCE.0, SOURCE.1, rung.scale);
            let fps = f64::from(SOURCE.2) / f64::from(rung.frame_interval);
            let natural = natural_bpp(rung.scale) * (width * height) as f64 * fps;
            let mut bits = f64::from(video_bps).min(natural) / fps;
            if self.rung != Some(rung) {
                bits *= KEYFRAME_FRAMES;
                self.rung = Some(rung);
            }
            let mut bytes = (bits / 8.0).ceil() as usize;
            while bytes > 0 {
                let packet = bytes.min(PACKET);
                self.pacer.push_back((packet.max(50), true));
                bytes -= packet;
            }
        }
        while self.next_audio <= now {
            self.next_audio += AUDIO_EVERY;
            self.pacer.push_back((AUDIO_PACKET, false));
        }
    }

    /// The packets that leave by `now` (paced media, then probe copies), in the order they
    /// leave: (departure, bytes).
    fn send_due(&mut self, epoch: Instant, now: Duration) -> Vec<(Duration, usize)> {
        let mut out = Vec::new();
        // Not before the last millisecond: the bottleneck takes packets in the order they left.
        self.next_paced = self
            .next_paced
            .max(now.saturating_sub(Duration::from_millis(1)));
        while self.next_paced <= now {
            let Some((bytes, video)) = self.pacer.pop_front() else {
                break;
            };
            let at = self.next_paced;
            self.next_paced += Duration::from_secs_f64(bytes as f64 * 8.0 / self.target());
            out.push((at, bytes));
            if video {
                if bytes >= SMALLEST_COPY {
                    self.latest_video = Some(bytes);
                }
                self.consider_probe(epoch, at);
            }
        }
        if let Some((left, spacing, next)) = &mut self.cluster {
            while *left > 0 && *next <= now {
                out.push((*next, self.latest_video.unwrap_or(PACKET)));
                *left -= 1;
                *next += *spacing;
            }
            if *left == 0 {
                self.log.finished(epoch + *next - *spacing);
                self.cluster = None;
            }
        }
        out.sort_by_key(|(at, _)| *at);
        out
    }

    fn consider_probe(&mut self, epoch: Instant, at: Duration) {
        let next_size = self.ladder.next_size_bps(SOURCE).unwrap_or(0);
        let estimate = *self.estimate.borrow();
        let Some(rate) = self
            .plan
            .due(epoch + at, estimate, next_size, self.cluster.is_some())
        else {
            return;
        };
        let Some(size) = self.latest_video else {
            return;
        };
        self.log.started(epoch + at, rate);
        let spacing = Duration::from_secs_f64(size as f64 * 8.0 / rate);
        self.cluster = Some((cluster_packets(rate, size), spacing, at));
    }

    /// The packet sent at `at` met `carried` at the bottleneck.
    fn record(
        &mut self,
        epoch: Instant,
        at: Duration,
        bytes: usize,
        carried: super::bottleneck::Carried,
    ) {
        let id = self.sent;
        self.sent += 1;
        if let Some(arrival) = carried.arrival {
            self.delivered.push((arrival, bytes as f64 * 8.0));
        }
        let report = super::report(id, bytes, epoch + at, carried.arrival);
        self.unreported.push((carried.known_at, report));
    }

    /// The reports the receiver can give at `now`, if its feedback is due.
    fn feedback_due(&mut self, now: Duration) -> Option<Vec<PacketReport>> {
        if now < self.next_feedback {
            return None;
        }
        self.next_feedback += FEEDBACK_INTERVAL;
        let (due, later): (Vec<_>, Vec<_>) =
            self.unreported.drain(..).partition(|(at, _)| *at <= now);
        self.unreported = later;
        let mut reports: Vec<PacketReport> = due.into_iter().map(|(_, r)| r).collect();
        reports.sort_by_key(|r| r.id);
        (!reports.is_empty()).then_some(reports)
    }

    /// Feedback that reached the sender by `now`, in the order it arrived.
    fn take_feedback(&mut self, epoch: Instant, now: Duration) {
        self.feedback.sort_by_key(|(at, _)| *at);
        while self.feedback.first().is_some_and(|(at, _)| *at <= now) {
            let (at, reports) = self.feedback.remove(0);
            self.estimator.on_reports(epoch + at, &reports);
        }
    }

    /// The mean rate its media arrived at between `from` and `to`, bits per second.
    pub(crate) fn received_bps(&self, from: Duration, to: Duration) -> f64 {
        let bits: f64 = self
            .delivered
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, bits)| bits)
            .sum();
        bits / (to - from).as_secs_f64()
    }

    /// The picture height it sent for the most time between `from` and `to`.
    pub(crate) fn usual_height(&self, from: Duration, to: Duration) -> usize {
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for (_, height) in self
            .heights
            .iter()
            .filter(|(at, ..)| *at >= from && *at < to)
        {
            match counts.iter_mut().find(|(h, _)| h == height) {
                Some((_, n)) => *n += 1,
                None => counts.push((*height, 1)),
            }
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map_or(0, |(h, _)| h)
    }
}

/// A two-way call: two senders through one bottleneck (both directions share it).
pub(crate) struct TwoWayCall {
    pub(crate) bottleneck: Bottleneck,
    pub(crate) sides: [Sender; 2],
    epoch: Instant,
    pub(crate) now: Duration,
}

impl TwoWayCall {
    /// A call whose answering side starts sending `answer_after` the offering side, each
    /// side's estimate starting at `start_bps`; the answering side's receiver sends its
    /// feedback `feedback_phase` after the offering side's (two processes' timers are not in
    /// step).
    pub(crate) fn new(
        bottleneck: Bottleneck,
        answer_after: Duration,
        feedback_phase: Duration,
        start_bps: u32,
    ) -> Self {
        TwoWayCall {
            bottleneck,
            sides: [
                Sender::new(start_bps, Duration::ZERO, Duration::ZERO),
                Sender::new(start_bps, answer_after, feedback_phase),
            ],
            epoch: Instant::now(),
            now: Duration::ZERO,
        }
    }

    /// Runs `length` more simulated time, a millisecond at a time.
    pub(crate) fn run(&mut self, length: Duration) {
        let end = self.now + length;
        let epoch = self.epoch;
        while self.now < end {
            self.now += Duration::from_millis(1);
            let now = self.now;
            // Everything that reaches the bottleneck this millisecond, in the order it does:
            // (departure, side, bytes, feedback for that side).
            let mut wire: Vec<(Duration, usize, usize, Option<Vec<PacketReport>>)> = Vec::new();
            for (index, side) in self.sides.iter_mut().enumerate() {
                let _side =
                    tracing::debug_span!("side", index, ms = now.as_millis() as u64).entered();
                side.encode(epoch, now);
                for (at, bytes) in side.send_due(epoch, now) {
                    wire.push((at, index, bytes, None));
                }
                // The receiver of `side` sends its feedback from the other end.
                if let Some(reports) = side.feedback_due(now) {
                    wire.push((now, index, FEEDBACK_PACKET, Some(reports)));
                }
            }
            wire.sort_by_key(|(at, ..)| *at);
            for (at, index, bytes, reports) in wire {
                let carried = self.bottleneck.carry(at, bytes);
                let side = &mut self.sides[index];
                match reports {
                    None => side.record(epoch, at, bytes, carried),
                    Some(reports) => match carried.arrival {
                        Some(arrival) => side.feedback.push((arrival, reports)),
                        // Lost: its reports go in the next feedback.
                        None => side
                            .unreported
                            .extend(reports.into_iter().map(|r| (Duration::ZERO, r))),
                    },
                }
            }
            for (index, side) in self.sides.iter_mut().enumerate() {
                let _side =
                    tracing::debug_span!("side", index, ms = now.as_millis() as u64).entered();
                side.take_feedback(epoch, now);
                if now.as_millis().is_multiple_of(100) {
                    let height = side.rung.map_or(0, |rung| {
                        parlor_media::scale::scaled_size(SOURCE.0, SOURCE.1, rung.scale).1
                    });
                    side.heights.push((now, height));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::start_bps;

    /// One finished call: what each side's media arrived at over its last 20 s, and the picture
    /// height each side sent for most of that time.
    struct Split {
        loss: f64,
        answer_after: Duration,
        feedback_phase: Duration,
        received: [f64; 2],
        heights: [usize; 2],
    }

    impl Split {
        /// The side with less over the side with more.
        fn ratio(&self) -> f64 {
            self.received[0].min(self.received[1]) / self.received[0].max(self.received[1])
        }
    }

    /// Two-way calls on `scripts/shaped-link.sh`'s cap600 (600 kbit/s, 15 kB bucket, 300 ms
    /// queue, both directions through it) and cap600-loss3 (3 % random loss as well), the
    /// answering side's media starting 0 to 1.5 s after the offering side's, as it does between
    /// two real processes, and its feedback timer at four phases to the other's; 30 s each.
    /// (Which side backs off first turns on timings this fine: with one phase, 16 calls, the
    /// calls leaving a side far behind went from 4 to 1 to 0 as the start moved from 426 to
    /// 460 to 500 kbit/s.)
    fn calls(start_bps: u32) -> (Vec<Split>, String) {
        let from = Duration::from_secs(10);
        let mut calls = Vec::new();
        for loss in [0.0, 0.03] {
            for (offset_ms, phase_ms) in [0, 50, 150, 300, 500, 700, 1000, 1500]
                .into_iter()
                .flat_map(|offset| [0, 11, 23, 37].map(|phase| (offset, phase)))
            {
                let link = Bottleneck::new(600_000.0, loss, PACKET).with_bucket(15_000.0);
                let answer_after = Duration::from_millis(offset_ms);
                let phase = Duration::from_millis(phase_ms);
                let mut call = TwoWayCall::new(link, answer_after, phase, start_bps);
                call.run(Duration::from_secs(30));
                let side = |i: usize| &call.sides[i];
                calls.push(Split {
                    loss,
                    answer_after,
                    feedback_phase: phase,
                    received: [0, 1].map(|i| side(i).received_bps(from, call.now)),
                    heights: [0, 1].map(|i| side(i).usual_height(from, call.now)),
                });
            }
        }
        let table = calls
            .iter()
            .map(|c| {
                format!(
                    "\n  loss {}, answer {:?} later, feedback {:?} later: \
                     {:.0} kbit/s at {}p / {:.0} at {}p, split {:.2}",
                    c.loss,
                    c.answer_after,
                    c.feedback_phase,
                    c.received[0] / 1000.0,
                    c.heights[0],
                    c.received[1] / 1000.0,
                    c.heights[1],
                    c.ratio()
                )
            })
            .collect();
        (calls, table)
    }

    /// Two callers together fill the link (at least 450 kbit/s of its 600 in every call), and
    /// each gets a fair part of it: on average the side with less gets at least 0.8 of what
    /// the other gets, and at most one call in eight leaves a side under 0.6 of the other.
    /// Measured from the 640x480 start (521 kbit/s): 0.94 and 0 of 64. From 700 kbit/s: 0.93
    /// and 3. From exactly what 640x480 needs (426 kbit/s): 0.79 and 16, the side that backed
    /// off first left at 160x120 on the clean link, its probes for a bigger picture held back
    /// by the backoffs the other side's climbs caused. From the 1 Mbit/s start calls had
    /// before (one phase, 16 calls), 0.66 and 7: both sides overfill the queue at once, the
    /// later one takes that queue for the path's own delay and backs off furthest, and a
    /// picture made small (160x120 or 320x240) sends too little to prove the path has more
    /// for it. The two-way runs on a real shaped link showed the same, before and after
    /// (README).
    #[test]
    fn two_callers_on_a_shared_narrow_link_fill_it_and_split_it() {
        let (calls, table) = calls(start_bps(SOURCE));
        eprintln!("{table}");
        for call in &calls {
            let together = call.received[0] + call.received[1];
            assert!(
                together >= 450_000.0,
                "together {together:.0} bit/s:{table}"
            );
        }
        let mean = calls.iter().map(Split::ratio).sum::<f64>() / calls.len() as f64;
        let trapped = calls.iter().filter(|c| c.ratio() < 0.6).count();
        assert!(
            mean >= 0.8 && trapped * 8 <= calls.len(),
            "mean split {mean:.2}, {trapped} calls under 0.6:{table}"
        );
    }
}
