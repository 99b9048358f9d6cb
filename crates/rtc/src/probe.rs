//! Probing a path for room the video does not fill, so a picture made smaller on a narrow link
//! can grow again once the link widens, and a picture back at full size gets back the bitrate it
//! had before the link narrowed (`drop_recovery`).
//!
//! The estimate may only climb to 1.5 × what the path has been seen to carry (see
//! `congestion`), and a picture the ladder made smaller never fills its budget (measured:
//! 250 kbit/s at 320x240), so without probes the estimate could only creep up at 8 % a second
//! behind what was sent: after a 20 s dip to 300 kbit/s a 640x480 call took about 19 s to get
//! back to its bitrate. libwebrtc probes such an application-limited path every few seconds
//! with a short cluster of packets at twice the estimate, and takes the rate the cluster arrived
//! at as the new estimate; this does the same. webrtc-rs 0.21 can put at most four bytes of
//! padding in a packet, so a cluster is made of what libwebrtc calls payload padding: the
//! video's latest packet sent again in its RTX stream. The receiver recovers it and drops it as
//! a duplicate, and the transport-wide feedback still reports when it arrived, which is all a
//! probe is for. (A copy in the video's own stream would not do: SRTP's replay protection drops
//! it before anything is reported, which is what the first version of this measured.) Where the
//! far side takes no RTX, nothing is probed.
//!
//! RTX sequence numbers belong to this module: the NACK responder numbers its resends from 0
//! without knowing of the probes, so every packet in an RTX stream is numbered again here.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::interceptor::{
    AttributedPacket, Interceptor, Packet, PacketReport, StreamInfo, TaggedPacket,
};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;
use tokio::sync::watch;

use crate::estimate::Estimate;

/// How often a path is probed while the picture is below full size, or at full size after a
/// drop (see `drop_recovery`).
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A cluster goes at what the next picture size needs, with this margin, but at most at this
/// multiple of the estimate (libwebrtc's figure for these probes). A cluster proves no more
/// than its own rate, and asks for no more than the ladder needs: a link behind a token bucket
/// carries a short cluster at line rate whatever its rate is (measured: clusters at twice the
/// estimate on a 300 kbit/s link with a 15 kB bucket came back at 1.3 Mbit/s; the ladder
/// climbed on that and the link overflowed). A probe that only asks for the next size costs a
/// mild overshoot when it is fooled, which the delay-based half then sees.
const PROBE_MARGIN: f64 = 1.2;
const PROBE_RATE_FACTOR: f64 = 2.0;
/// A cluster is at least this many packets and lasts at least `SHORTEST_CLUSTER`, so its
/// arrival spread says something about the path rather than about one packet's timing.
const CLUSTER_PACKETS: usize = 6;
const SHORTEST_CLUSTER: Duration = Duration::from_millis(30);
const MOST_CLUSTER_PACKETS: usize = 40;
/// Smaller packets are not worth copying: a copy should carry bytes, not headers.
pub(crate) const SMALLEST_COPY: usize = 200;
/// A path losing this fraction of packets or more is not probed: a probe is for finding room,
/// and such a path has none. Random loss of a few per cent (Wi-Fi) stays under it.
const LOSSY_PATH: f64 = 0.05;
/// After the estimate falls (a backoff: the path said it is full), this long without probes.
const QUIET_AFTER_BACKOFF: Duration = Duration::from_secs(3);
/// A cluster whose feedback has not come by then is forgotten.
const FEEDBACK_WAIT: Duration = Duration::from_secs(2);

/// Whether to probe now, and when next: every `PROBE_EVERY` while wanted, the first one a
/// `PROBE_EVERY` after probing became wanted (the ladder's step down settles first).
#[derive(Debug, Default)]
pub(crate) struct ProbeSchedule {
    next: Option<Instant>,
}

impl ProbeSchedule {
    pub(crate) fn due(&mut self, now: Instant, wanted: bool) -> bool {
        if !wanted {
            self.next = None;
            return false;
        }
        let next = *self.next.get_or_insert(now + PROBE_EVERY);
        if now < next {
            return false;
        }
        self.next = Some(now + PROBE_EVERY);
        true
    }
}

/// When to probe and at what rate, from the estimate as it moves and the ladder's next size:
/// the prober's decisions without its packets, so a simulated call (`sim::call`) makes the
/// same ones.
#[derive(Debug, Default)]
pub(crate) struct ProbePlan {
    schedule: ProbeSchedule,
    last_estimate: Option<u32>,
    quiet_until: Option<Instant>,
    recovery: crate::drop_recovery::DropRecovery,
}

impl ProbePlan {
    /// The rate of a cluster to start now, if one is due; never over one still going out
    /// (`sending`).
    pub(crate) fn due(
        &mut self,
        now: Instant,
        estimate: Option<Estimate>,
        next_size_bps: u32,
        sending: bool,
    ) -> Option<f64> {
        if let Some(estimate) = estimate {
            self.quiet_until = quiet_until(
                self.last_estimate,
                estimate.target_bps,
                now,
                self.quiet_until,
            );
            self.last_estimate = Some(estimate.target_bps);
            self.recovery.update(now, estimate.target_bps);
        }
        let quiet = self.quiet_until.is_some_and(|until| now < until);
        let rate = probe_now(next_size_bps, estimate, &self.recovery, quiet).filter(|_| !sending);
        if !self.schedule.due(now, rate.is_some()) {
            return None;
        }
        rate
    }
}

/// The rate to probe at now, unless the path has just said it is full (`quiet`): below full
/// size [`probe_rate`] for the next size; at full size what `recovery` asks for to get back the
/// rate of before a drop.
pub(crate) fn probe_now(
    next_size_bps: u32,
    estimate: Option<Estimate>,
    recovery: &crate::drop_recovery::DropRecovery,
    quiet: bool,
) -> Option<f64> {
    let estimate = estimate.filter(|_| !quiet)?;
    if next_size_bps > 0 {
        return probe_rate(next_size_bps, Some(estimate));
    }
    recovery
        .probe_rate(estimate.target_bps)
        .filter(|_| !lossy(&estimate))
}

fn lossy(estimate: &Estimate) -> bool {
    estimate.loss.is_some_and(|loss| loss >= LOSSY_PATH)
}

/// The rate to probe at, bits per second: enough for the next picture size, never more than
/// twice the estimate; `None` when there is nothing to probe for (full size, an estimate that
/// already affords the next size, no estimate yet, a lossy path).
pub(crate) fn probe_rate(next_size_bps: u32, estimate: Option<Estimate>) -> Option<f64> {
    let estimate = estimate?;
    if next_size_bps == 0
        || crate::estimate::video_share(estimate.target_bps) >= next_size_bps
        || lossy(&estimate)
    {
        return None;
    }
    let needed = f64::from(crate::estimate::estimate_for_video(next_size_bps)) * PROBE_MARGIN;
    Some(needed.min(f64::from(estimate.target_bps) * PROBE_RATE_FACTOR))
}

/// When probing is allowed again after the estimate moved from `before` to `now_bps` at `now`.
pub(crate) fn quiet_until(
    before: Option<u32>,
    now_bps: u32,
    now: Instant,
    current: Option<Instant>,
) -> Option<Instant> {
    match before {
        Some(before) if now_bps < before => Some(now + QUIET_AFTER_BACKOFF),
        _ => current,
    }
}

/// How many copies of `packet_bytes` make a cluster at `rate_bps`.
pub(crate) fn cluster_packets(rate_bps: f64, packet_bytes: usize) -> usize {
    let for_duration = (rate_bps / 8.0 * SHORTEST_CLUSTER.as_secs_f64()
        / packet_bytes.max(1) as f64)
        .ceil() as usize;
    for_duration.clamp(CLUSTER_PACKETS, MOST_CLUSTER_PACKETS)
}

/// A cluster going out or gone: the instants its first and last copies left (no last while it
/// is still going out). Every packet that left in between belongs to it (media too: it is all
/// traffic the path carried).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SentCluster {
    pub(crate) first: Instant,
    pub(crate) last: Option<Instant>,
    /// The rate it was meant to go at: the most it can prove.
    pub(crate) rate_bps: f64,
}

/// The clusters sent and not yet measured, shared by the prober (which sends them) and the
/// congestion controller (which reads their feedback). A cluster is logged as it starts: on a
/// path of a few milliseconds, feedback on its first packets comes back before its last leave.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeLog(Arc<Mutex<VecDeque<SentCluster>>>);

impl ProbeLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<SentCluster>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn started(&self, first: Instant, rate_bps: f64) {
        self.lock().push_back(SentCluster {
            first,
            last: None,
            rate_bps,
        });
    }

    /// The cluster started last has gone out whole.
    pub(crate) fn finished(&self, last: Instant) {
        if let Some(cluster) = self.lock().back_mut() {
            cluster.last.get_or_insert(last);
        }
    }
}

/// What one cluster's feedback says, added up report by report.
#[derive(Debug, Default)]
struct Measure {
    sent_bytes: usize,
    first_departure: Option<Instant>,
    last_departure: Option<Instant>,
    last_sent_size: usize,
    sent: usize,
    arrived: usize,
    arrived_bytes: usize,
    first_arrival: Option<(Duration, usize)>,
    last_arrival: Option<Duration>,
}

impl Measure {
    fn add(&mut self, report: &PacketReport) {
        self.sent += 1;
        self.sent_bytes += report.size;
        self.last_sent_size = report.size;
        self.first_departure.get_or_insert(report.departure);
        self.last_departure = Some(report.departure);
        if let (true, Some(arrival)) = (report.arrived, report.arrival) {
            self.arrived += 1;
            self.arrived_bytes += report.size;
            match self.first_arrival {
                Some((first, _)) if first <= arrival => {}
                _ => self.first_arrival = Some((arrival, report.size)),
            }
            if self.last_arrival.is_none_or(|last| arrival > last) {
                self.last_arrival = Some(arrival);
            }
        }
    }

    /// The rate the path carried the cluster at, bits per second: the lesser of the rate it was
    /// sent at and the rate it arrived at (each over the spread of its packets, the edge packet
    /// left out), or `None` when too few arrived to say.
    fn result(&self) -> Option<f64> {
        if self.arrived < CLUSTER_PACKETS.min(self.sent) || self.arrived * 5 < self.sent * 4 {
            return None;
        }
        let send_span = self
            .last_departure?
            .saturating_duration_since(self.first_departure?);
        let (first_arrival, first_size) = self.first_arrival?;
        let receive_span = self.last_arrival?.saturating_sub(first_arrival);
        if send_span.is_zero() || receive_span.is_zero() {
            return None;
        }
        let send_rate =
            (self.sent_bytes - self.last_sent_size) as f64 * 8.0 / send_span.as_secs_f64();
        let receive_rate =
            (self.arrived_bytes - first_size) as f64 * 8.0 / receive_span.as_secs_f64();
        Some(send_rate.min(receive_rate))
    }
}

/// The controller's side: feedback in, a measured rate out for each cluster it completes.
#[derive(Debug, Default)]
pub(crate) struct ProbeResults {
    log: ProbeLog,
    /// What the feedback says of the oldest cluster in the log.
    measure: Measure,
}

impl ProbeResults {
    pub(crate) fn new(log: ProbeLog) -> Self {
        ProbeResults {
            log,
            measure: Measure::default(),
        }
    }

    /// Folds in one feedback batch (in send order); returns the highest rate a cluster completed
    /// in it was carried at.
    pub(crate) fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) -> Option<f64> {
        let mut best: Option<f64> = None;
        let log = self.log.clone();
        let mut log = log.lock();
        for report in reports {
            loop {
                // A cluster whose feedback never came (or that never finished) is forgotten.
                while log.front().is_some_and(|c| {
                    now.saturating_duration_since(c.last.unwrap_or(c.first)) > FEEDBACK_WAIT
                }) {
                    log.pop_front();
                    self.measure = Measure::default();
                }
                let Some(cluster) = log.front() else {
                    break;
                };
                if report.departure < cluster.first {
                    break;
                }
                if cluster.last.is_none_or(|last| report.departure <= last) {
                    self.measure.add(report);
                    break;
                }
                // A packet that left after the cluster: all of the cluster has been reported.
                let measure = std::mem::take(&mut self.measure);
                tracing::debug!("probe feedback: {measure:?}");
                if let Some(rate) = measure.result().map(|rate| rate.min(cluster.rate_bps)) {
                    best = Some(best.map_or(rate, |b: f64| b.max(rate)));
                }
                log.pop_front();
                // The same report may belong to the next cluster.
            }
        }
        best
    }
}

/// The prober, as an interceptor: wire-ward of the pacer, whose rate is the estimate and which
/// would spread a cluster out to exactly the rate it is meant to exceed, and application-ward
/// of the transport-wide numbering, so every copy is reported on like any other packet.
pub(crate) struct Prober {
    /// The next picture size's need, from the sending video track's ladder (0: full size).
    next_size: watch::Receiver<u32>,
    estimate: watch::Receiver<Option<Estimate>>,
    log: ProbeLog,
    /// The video streams with an RTX stream, by SSRC.
    video: HashMap<u32, RtxStream>,
    plan: ProbePlan,
    /// The latest video packet worth copying, and the transport it left on.
    latest: Option<(rtc::rtp::Packet, rtc::shared::TransportContext)>,
    /// The cluster going out: the packet copied, when the next copy is due, the spacing, how
    /// many are left, and when the first left.
    cluster: Option<Cluster>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

#[derive(Debug, Clone, Copy)]
struct RtxStream {
    ssrc: u32,
    payload_type: u8,
    /// The next sequence number in it.
    next_sequence: u16,
}

impl RtxStream {
    fn next(&mut self) -> u16 {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        sequence
    }
}

/// `original` sent again in `rtx` (RFC 4588: the original sequence number, then its payload).
fn resend_in(rtx: &mut RtxStream, original: &rtc::rtp::Packet) -> rtc::rtp::Packet {
    let mut payload = Vec::with_capacity(2 + original.payload.len());
    payload.extend_from_slice(&original.header.sequence_number.to_be_bytes());
    payload.extend_from_slice(&original.payload);
    let mut header = original.header.clone();
    header.ssrc = rtx.ssrc;
    header.payload_type = rtx.payload_type;
    header.sequence_number = rtx.next();
    header.padding = false;
    rtc::rtp::Packet {
        header,
        payload: payload.into(),
    }
}

struct Cluster {
    /// The video stream whose latest packet is sent again.
    video_ssrc: u32,
    copy: rtc::rtp::Packet,
    transport: rtc::shared::TransportContext,
    next: Instant,
    spacing: Duration,
    left: usize,
}

impl Prober {
    pub(crate) fn new(
        next_size: watch::Receiver<u32>,
        estimate: watch::Receiver<Option<Estimate>>,
        log: ProbeLog,
    ) -> Self {
        Prober {
            next_size,
            estimate,
            log,
            video: HashMap::new(),
            plan: ProbePlan::default(),
            latest: None,
            cluster: None,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// Starts a cluster if one is due.
    fn consider(&mut self, now: Instant) {
        let estimate = *self.estimate.borrow();
        let next_size = *self.next_size.borrow();
        let Some(rate) = self
            .plan
            .due(now, estimate, next_size, self.cluster.is_some())
        else {
            return;
        };
        let Some((packet, transport)) = &self.latest else {
            return;
        };
        let size = packet.marshal_size() + 2;
        tracing::debug!("probing at {:.0} kbit/s", rate / 1000.0);
        self.log.started(now, rate);
        self.cluster = Some(Cluster {
            video_ssrc: packet.header.ssrc,
            copy: packet.clone(),
            transport: *transport,
            next: now,
            spacing: Duration::from_secs_f64(size as f64 * 8.0 / rate),
            left: cluster_packets(rate, size),
        });
        self.send_due(now);
    }

    /// Sends the copies due by `now`.
    fn send_due(&mut self, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let Some(rtx) = self.video.get_mut(&cluster.video_ssrc) else {
            self.cluster = None;
            return;
        };
        while cluster.left > 0 && cluster.next <= now {
            self.write.push_back(TaggedPacket {
                now,
                transport: cluster.transport,
                message: AttributedPacket::new(Packet::Rtp(resend_in(rtx, &cluster.copy))),
            });
            cluster.left -= 1;
            cluster.next += cluster.spacing;
        }
        if cluster.left == 0 {
            self.log.finished(now);
            self.cluster = None;
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for Prober {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let now = msg.now;
        // Copies due are sent before anything else leaves, whether or not the timer woke us.
        self.send_due(now);
        let mut video = false;
        if let Packet::Rtp(packet) = &mut msg.message.packet {
            if self.video.contains_key(&packet.header.ssrc) {
                video = true;
                if packet.marshal_size() >= SMALLEST_COPY {
                    self.latest = Some((packet.clone(), msg.transport));
                }
            } else if let Some(rtx) = self
                .video
                .values_mut()
                .find(|rtx| rtx.ssrc == packet.header.ssrc)
            {
                // A resend from the NACK responder: numbered in turn with the probes.
                packet.header.sequence_number = rtx.next();
            }
        }
        self.write.push_back(msg);
        if video {
            self.consider(now);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.send_due(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.cluster.as_ref().map(|cluster| cluster.next)
    }
}

impl Interceptor for Prober {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let (true, Some(ssrc), Some(payload_type)) = (
            info.mime_type.to_ascii_lowercase().starts_with("video/"),
            info.ssrc_rtx,
            info.payload_type_rtx,
        ) {
            let rtx = RtxStream {
                ssrc,
                payload_type,
                next_sequence: rand::random(),
            };
            self.video.insert(info.ssrc, rtx);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.video.remove(&info.ssrc);
        if self.video.is_empty() {
            self.latest = None;
            self.cluster = None;
        }
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    fn estimate(target_bps: u32, loss: Option<f64>) -> Estimate {
        Estimate {
            target_bps,
            delay_based_bps: None,
            loss_based_bps: None,
            loss,
        }
    }

    #[test]
    fn a_resend_in_rtx_carries_the_original_and_a_sequence_number_of_its_own() {
        let mut rtx = RtxStream {
            ssrc: 9,
            payload_type: 103,
            next_sequence: u16::MAX,
        };
        let mut original = rtc::rtp::Packet::default();
        original.header.ssrc = 1;
        original.header.payload_type = 102;
        original.header.sequence_number = 0x1234;
        original.header.timestamp = 90_000;
        original.header.marker = true;
        original.payload = vec![0x65, 1, 2, 3].into();
        let first = resend_in(&mut rtx, &original);
        let second = resend_in(&mut rtx, &original);
        assert_eq!(first.header.ssrc, 9);
        assert_eq!(first.header.payload_type, 103);
        assert_eq!(first.header.timestamp, 90_000);
        assert!(first.header.marker);
        assert_eq!(&first.payload[..], &[0x12, 0x34, 0x65, 1, 2, 3]);
        assert_eq!(first.header.sequence_number, u16::MAX);
        assert_eq!(second.header.sequence_number, 0, "wraps");
    }

    #[test]
    fn probes_go_every_interval_while_wanted_and_start_over_when_not() {
        let mut schedule = ProbeSchedule::default();
        let start = Instant::now();
        let due = |schedule: &mut ProbeSchedule, ms, wanted| schedule.due(at(start, ms), wanted);
        assert!(!due(&mut schedule, 0, true), "the step down settles first");
        assert!(!due(&mut schedule, 1999, true));
        assert!(due(&mut schedule, 2000, true));
        assert!(!due(&mut schedule, 2500, true));
        assert!(due(&mut schedule, 4000, true));
        assert!(!due(&mut schedule, 4100, false), "back at full size");
        assert!(
            !due(&mut schedule, 6000, true),
            "wanted again: a fresh wait"
        );
        assert!(due(&mut schedule, 8000, true));
    }

    #[test]
    fn only_a_degraded_picture_on_a_clean_path_is_probed() {
        let no_drop = crate::drop_recovery::DropRecovery::default();
        let probe = |next_size, estimate, quiet| probe_now(next_size, estimate, &no_drop, quiet);
        let clean = Some(estimate(300_000, Some(0.0)));
        assert!(probe(322_000, clean, false).is_some());
        assert!(probe(0, clean, false).is_none(), "full size");
        assert!(probe(322_000, None, false).is_none(), "no estimate yet");
        assert!(probe(322_000, clean, true).is_none(), "just backed off");
        assert!(
            probe(322_000, Some(estimate(300_000, Some(0.08))), false).is_none(),
            "lossy"
        );
        assert!(
            probe(322_000, Some(estimate(300_000, Some(0.03))), false).is_some(),
            "Wi-Fi"
        );
        let enough = crate::estimate::estimate_for_video(322_000);
        assert!(
            probe(322_000, Some(estimate(enough, Some(0.0))), false).is_none(),
            "the estimate already affords the next size"
        );
    }

    #[test]
    fn at_full_size_only_what_a_drop_took_is_probed_for() {
        let start = Instant::now();
        let mut recovery = crate::drop_recovery::DropRecovery::default();
        for ms in (0..8_000).step_by(100) {
            recovery.update(at(start, ms), 1_500_000);
        }
        recovery.update(at(start, 8_000), 500_000);
        let after_drop = Some(estimate(500_000, Some(0.0)));
        assert_eq!(
            probe_now(0, after_drop, &recovery, false),
            Some(1_000_000.0)
        );
        assert_eq!(probe_now(0, after_drop, &recovery, true), None, "quiet");
        assert_eq!(
            probe_now(0, Some(estimate(500_000, Some(0.08))), &recovery, false),
            None,
            "lossy"
        );
        let below_full_size = probe_now(322_000, after_drop, &recovery, false);
        assert_eq!(
            below_full_size, None,
            "below full size the next size is what is probed for, and 500 kbit/s affords it"
        );
    }

    #[test]
    fn a_probe_asks_for_the_next_size_but_at_most_twice_the_estimate() {
        // 640x480 at 30 fps needs 322 kbit/s of video: an estimate of 426 kbit/s.
        let needed = f64::from(crate::estimate::estimate_for_video(322_000));
        assert!((needed - 425_883.0).abs() < 2.0, "{needed}");
        let rate = probe_rate(322_000, Some(estimate(300_000, None))).unwrap();
        assert!((rate - needed * PROBE_MARGIN).abs() < 1.0, "{rate}");
        let rate = probe_rate(322_000, Some(estimate(150_000, None))).unwrap();
        assert_eq!(rate, 300_000.0, "twice a low estimate");
    }

    #[test]
    fn a_backoff_quiets_the_prober_for_a_while() {
        let start = Instant::now();
        assert_eq!(quiet_until(None, 300_000, start, None), None);
        assert_eq!(
            quiet_until(Some(300_000), 320_000, start, None),
            None,
            "a climb"
        );
        let quiet = quiet_until(Some(320_000), 270_000, start, None);
        assert_eq!(quiet, Some(start + QUIET_AFTER_BACKOFF));
        // A climb afterwards does not cut the quiet short.
        assert_eq!(
            quiet_until(Some(270_000), 290_000, at(start, 100), quiet),
            quiet
        );
    }

    #[test]
    fn a_cluster_is_long_enough_to_measure_and_bounded() {
        // 600 kbit/s, 1000-byte copies: 30 ms is 2.25 copies, so the packet floor rules.
        assert_eq!(cluster_packets(600_000.0, 1000), CLUSTER_PACKETS);
        // 4 Mbit/s: 30 ms is 15 copies.
        assert_eq!(cluster_packets(4_000_000.0, 1000), 15);
        assert_eq!(cluster_packets(100_000_000.0, 200), MOST_CLUSTER_PACKETS);
    }

    /// Reports for `count` packets of `size` bytes leaving every `send_gap` from `first`, and
    /// arriving every `arrival_gap` (packets whose index is in `lost` never arrive).
    fn reports(
        first: Instant,
        count: usize,
        size: usize,
        send_gap: Duration,
        arrival_gap: Duration,
        lost: &[usize],
    ) -> Vec<PacketReport> {
        (0..count)
            .map(|i| PacketReport {
                ssrc: 1,
                id: i as u64,
                rtp_sequence_number: i as u16,
                is_twcc: true,
                twcc_sequence_number: i as u16,
                size,
                arrived: !lost.contains(&i),
                departure: first + send_gap * i as u32,
                arrival: (!lost.contains(&i))
                    .then(|| Duration::from_secs(5) + arrival_gap * i as u32),
                ecn: Default::default(),
            })
            .collect()
    }

    #[test]
    fn a_cluster_measures_the_rate_the_path_carried_it_at() {
        let start = Instant::now();
        let log = ProbeLog::default();
        let mut results = ProbeResults::new(log.clone());
        // Eight 1000-byte packets sent 5 ms apart (1.6 Mbit/s) and arriving 10 ms apart
        // (a path of 800 kbit/s); then a media packet after the cluster.
        log.started(start, 10_000_000.0);
        let mut batch = reports(
            start,
            8,
            1000,
            Duration::from_millis(5),
            Duration::from_millis(10),
            &[],
        );
        let after = reports(at(start, 100), 1, 1000, Duration::ZERO, Duration::ZERO, &[]);
        // On a short path, feedback on the first packets comes back while the cluster is still
        // going out; and feedback may split a cluster: nothing until a packet after it is
        // reported.
        let rest = batch.split_off(5);
        assert_eq!(results.on_reports(at(start, 30), &batch), None);
        log.finished(at(start, 35));
        assert_eq!(results.on_reports(at(start, 80), &rest), None);
        let rate = results
            .on_reports(at(start, 150), &after)
            .expect("a measured cluster");
        assert!((rate - 800_000.0).abs() < 1.0, "{rate}");
    }

    /// The rate measured for a cluster meant for `rate_bps` of eight 1000-byte packets sent 5 ms
    /// apart (1.6 Mbit/s) and arriving `arrival_gap` apart (those in `lost` never), all in one
    /// feedback batch with a packet sent after it.
    fn measured(rate_bps: f64, arrival_gap: Duration, lost: &[usize]) -> Option<f64> {
        let start = Instant::now();
        let log = ProbeLog::default();
        let mut results = ProbeResults::new(log.clone());
        log.started(start, rate_bps);
        log.finished(at(start, 35));
        let gap = Duration::from_millis(5);
        let mut batch = reports(start, 8, 1000, gap, arrival_gap, lost);
        batch.extend(reports(at(start, 50), 1, 1000, gap, gap, &[]));
        results.on_reports(at(start, 100), &batch)
    }

    #[test]
    fn a_path_wider_than_the_cluster_measures_the_cluster() {
        let rate = measured(10_000_000.0, Duration::from_millis(2), &[]).expect("measured");
        assert!((rate - 1_600_000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn a_cluster_proves_no_more_than_the_rate_it_was_sent_for() {
        // A token bucket lets a short cluster through at line rate.
        let rate = measured(500_000.0, Duration::from_millis(1), &[]);
        assert_eq!(rate, Some(500_000.0));
    }

    #[test]
    fn a_cluster_that_mostly_did_not_arrive_says_nothing() {
        let rate = measured(10_000_000.0, Duration::from_millis(5), &[2, 5]);
        assert_eq!(rate, None);
        let rate = measured(10_000_000.0, Duration::from_millis(5), &[2]);
        assert!(rate.is_some(), "one in eight lost is still a measure");
    }

    #[test]
    fn feedback_that_never_came_does_not_hold_up_the_next_cluster() {
        let start = Instant::now();
        let log = ProbeLog::default();
        let mut results = ProbeResults::new(log.clone());
        log.started(start, 10_000_000.0);
        log.finished(at(start, 35));
        let later = at(start, 5000);
        log.started(later, 10_000_000.0);
        log.finished(later + Duration::from_millis(35));
        let mut batch = reports(
            later,
            8,
            1000,
            Duration::from_millis(5),
            Duration::from_millis(10),
            &[],
        );
        batch.extend(reports(
            at(start, 5100),
            1,
            1000,
            Duration::ZERO,
            Duration::ZERO,
            &[],
        ));
        let rate = results
            .on_reports(at(start, 5200), &batch)
            .expect("measured");
        assert!((rate - 800_000.0).abs() < 1.0, "{rate}");
    }
}
