//! The receive side's reorder buffer: RTP packets in, in any order and with retransmissions
//! arriving late, the same packets out in sequence order. A missing packet is waited for a
//! bounded time (the NACK generator in webrtc's interceptor chain asks the sender to resend it
//! meanwhile); only when that time is up is it given up as lost. Without this every loss and
//! every reordered packet spoiled a frame and cost a keyframe.
//!
//! Pure: time is passed in, and [`JitterBuffer::deadline`] says when to look again, so the
//! tests run on simulated time.
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How many times one missing packet is asked for, and how often. webrtc-rs asks every 100 ms
/// for ever by default: on a link narrowed under the sender's rate, requests for packets still
/// queued in the sender's pacer brought their retransmissions into the same queue, which grew
/// by seconds, which made more packets late, which were asked for again. And a first request up
/// to 100 ms after the gap held the frame behind it long enough to count as a freeze (3 % loss:
/// 5 freezes in 30 s; Chromium asks at once and had none).
///
/// The generator asks only on its ticks, so its first request leaves up to an interval after
/// the gap; the receiver asks itself the moment a gap shows ([`JitterBuffer::push`] returns
/// what went missing), as libwebrtc's NACK module does, and the generator twice more, 40 ms
/// apart: three requests in all, as before the first one moved. (Measured with 3 % loss on a
/// plain loopback: repairs waited for the tick, up to 40 ms where the round trip is 1 ms. And
/// four requests in all resent each lost packet four times on a 600 kbit/s link whose queue
/// made the round trip longer than the three rounds.) The receiver waits for all of them
/// (`wait_for_rtt`).
pub(crate) const MAX_NACKS_PER_PACKET: u16 = 2;
pub(crate) const NACK_INTERVAL: Duration = Duration::from_millis(40);

/// Packets held at most while waiting for a missing one (a bound on memory and on delay at high
/// bitrates: about 0.7 MB of 1,200-byte packets).
const MAX_HELD: usize = 600;

/// How long to wait for a retransmission before giving a packet up, by round-trip time: every
/// NACK round the generator makes (it asks again each interval, `MAX_NACKS_PER_PACKET`
/// times), then a round trip for the last request to reach the sender and the packet to come
/// back, plus slack for the pacer and for a queue, within bounds. A wait shorter than the
/// second round gave up packets whose second retransmission was on its way: a keyframe each, a
/// freeze each.
///
/// The slack is generous because giving up is dearer than waiting: a packet given up costs a
/// keyframe request's round trip plus the keyframe's own transmission (on a 600 kbit/s link,
/// 400-700 ms of frozen picture), while a repair that is on its way costs only its lateness,
/// which `render_timing` absorbs up to its target. And the round-trip time comes from ICE checks
/// every few seconds, which miss a queue building between them: measured with 3 % loss on a
/// 600 kbit/s link, repairs given up after 170 ms arrived at 230 and 400 ms.
pub(crate) fn wait_for_rtt(rtt: Option<Duration>) -> Duration {
    let rtt = rtt.unwrap_or(Duration::from_millis(50));
    let rounds = NACK_INTERVAL * u32::from(MAX_NACKS_PER_PACKET);
    (rounds + rtt * 2 + WAIT_SLACK).clamp(SHORTEST_WAIT, LONGEST_WAIT)
}

/// Time for the pacer and a queue on top of the round trips.
const WAIT_SLACK: Duration = Duration::from_millis(150);
/// The shortest a missing packet is waited for.
const SHORTEST_WAIT: Duration = Duration::from_millis(250);

/// The longest a missing packet is waited for.
pub(crate) const LONGEST_WAIT: Duration = Duration::from_millis(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Released {
    Packet {
        marker: bool,
        /// The RTP timestamp (the frame's capture time on the sender's media clock).
        timestamp: u32,
        payload: Bytes,
    },
    /// `count` packets before the next one were given up.
    Lost { count: u64 },
}

#[derive(Debug)]
struct Held {
    marker: bool,
    timestamp: u32,
    payload: Bytes,
    arrived: Instant,
}

#[derive(Debug)]
pub(crate) struct JitterBuffer {
    /// By extended sequence number, with when each arrived.
    held: BTreeMap<u64, Held>,
    /// The extended sequence number released next.
    next: Option<u64>,
    /// The highest extended sequence number seen (the reference for unwrapping).
    highest: u64,
    max_wait: Duration,
    /// How long the last repairs took, from the arrival that showed a packet missing to the
    /// packet's own (late ones included): what the wait has to cover, measured.
    repairs: VecDeque<Duration>,
    /// The most recent runs of sequence numbers given up, `start..end`, and when the packet
    /// after them arrived, to tell a packet that came too late from a second copy of one
    /// already released, and to learn how late it was.
    given_up: VecDeque<(u64, u64, Instant)>,
    /// Packets that came after their place was given up: too late to be used.
    pub late: u64,
    /// Second copies of packets already held or released: a retransmission that crossed the
    /// original, or a sender's probe (`probe`: the latest packet sent again). Harmless.
    pub duplicates: u64,
}

/// A gap wider than this is not asked for at once (it is a stall or a restart, not a loss; the
/// generator and, failing it, a keyframe repair it).
const ASK_AT_ONCE_AT_MOST: u64 = 64;

/// Runs of given-up sequence numbers remembered (a packet later than that many losses ago is
/// counted as a duplicate instead of as late).
const GIVEN_UP_REMEMBERED: usize = 64;

/// Repairs remembered: at 3 % loss and 60 packets a second, the last 15 s or so.
const REPAIRS_REMEMBERED: usize = 32;

/// The wait covers the slowest recent repair by this much.
const REPAIR_MARGIN: f64 = 1.25;

impl JitterBuffer {
    pub fn new(max_wait: Duration) -> Self {
        JitterBuffer {
            held: BTreeMap::new(),
            next: None,
            highest: 0,
            max_wait,
            repairs: VecDeque::new(),
            given_up: VecDeque::new(),
            late: 0,
            duplicates: 0,
        }
    }

    pub fn set_max_wait(&mut self, max_wait: Duration) {
        self.max_wait = max_wait;
    }

    /// How long a missing packet is waited for: what the round-trip time calls for, or longer
    /// when repairs have been seen to take longer. The round-trip time comes from ICE checks
    /// every few seconds and misses a queue that builds between them: measured on a 600 kbit/s
    /// link, retransmissions arriving after their packet was given up, each given up for a
    /// keyframe that then waited behind the same queue.
    fn wait(&self) -> Duration {
        let slowest = self.repairs.iter().max().copied().unwrap_or_default();
        self.max_wait
            .max(slowest.mul_f64(REPAIR_MARGIN))
            .min(LONGEST_WAIT.max(self.max_wait))
    }

    fn repaired(&mut self, took: Duration) {
        if self.repairs.len() == REPAIRS_REMEMBERED {
            self.repairs.pop_front();
        }
        self.repairs.push_back(took);
    }

    /// Sequence numbers wrap at 2^16; extend them relative to the highest one seen.
    fn extend(&self, sequence: u16) -> u64 {
        if self.next.is_none() {
            return (1 << 16) + sequence as u64; // room below for reordered early packets
        }
        let delta = sequence.wrapping_sub(self.highest as u16) as i16 as i64;
        (self.highest as i64 + delta).max(0) as u64
    }

    /// Takes a packet; returns the sequence numbers it showed missing (those between the
    /// highest so far and it), to be asked for at once.
    pub fn push(
        &mut self,
        now: Instant,
        sequence: u16,
        marker: bool,
        timestamp: u32,
        payload: Bytes,
    ) -> Vec<u16> {
        let extended = self.extend(sequence);
        let next = *self.next.get_or_insert(extended);
        if extended < next || self.held.contains_key(&extended) {
            let given_up = self
                .given_up
                .iter()
                .find(|(start, end, _)| (*start..*end).contains(&extended))
                .map(|&(_, _, noticed)| noticed);
            if let Some(noticed) = given_up {
                tracing::debug!(
                    sequence,
                    after_ms = now.saturating_duration_since(noticed).as_millis() as u64,
                    "a packet came after it was given up"
                );
                self.late += 1;
                self.repaired(now.saturating_duration_since(noticed));
            } else {
                self.duplicates += 1;
            }
            return Vec::new();
        }
        // A packet filling a gap: its repair took since the first packet after it arrived.
        if let Some((_, later)) = self.held.range(extended + 1..).next() {
            self.repaired(now.saturating_duration_since(later.arrived));
        }
        // The first packet shows nothing missing; later ones, what lies between the highest
        // so far and them.
        let first_missing = self.highest + 1;
        let missing =
            if self.highest == 0 || extended.saturating_sub(first_missing) > ASK_AT_ONCE_AT_MOST {
                Vec::new()
            } else {
                (first_missing..extended).map(|s| s as u16).collect()
            };
        self.highest = self.highest.max(extended);
        self.held.insert(
            extended,
            Held {
                marker,
                timestamp,
                payload,
                arrived: now,
            },
        );
        missing
    }

    /// The next packet in order, a loss that has waited long enough, or nothing for now.
    ///
    /// A missing packet is waited for from the moment a later one showed it missing (that one's
    /// arrival), not from when it reached the head: on a lossy link gaps come every few
    /// packets, and waits that began only at the head would add up, gap after gap, to seconds.
    pub fn pop(&mut self, now: Instant) -> Option<Released> {
        let next = self.next?;
        if let Some(held) = self.held.remove(&next) {
            self.next = Some(next + 1);
            return Some(Released::Packet {
                marker: held.marker,
                timestamp: held.timestamp,
                payload: held.payload,
            });
        }
        let (
            &first,
            &Held {
                arrived: noticed, ..
            },
        ) = self.held.first_key_value()?;
        if now.saturating_duration_since(noticed) >= self.wait() || self.held.len() > MAX_HELD {
            self.next = Some(first);
            if self.given_up.len() == GIVEN_UP_REMEMBERED {
                self.given_up.pop_front();
            }
            self.given_up.push_back((next, first, noticed));
            tracing::debug!(
                count = first - next,
                from = next as u16,
                waited_ms = now.saturating_duration_since(noticed).as_millis() as u64,
                held = self.held.len(),
                "missing packets given up"
            );
            return Some(Released::Lost {
                count: first - next,
            });
        }
        None
    }

    /// When a missing packet will be given up (call [`JitterBuffer::pop`] then).
    pub fn deadline(&self) -> Option<Instant> {
        let next = self.next?;
        if self.held.contains_key(&next) {
            return None;
        }
        let (_, first) = self.held.first_key_value()?;
        Some(first.arrived + self.wait())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(buffer: &mut JitterBuffer, now: Instant) -> Vec<Released> {
        std::iter::from_fn(|| buffer.pop(now)).collect()
    }

    fn packet(n: u8) -> Released {
        Released::Packet {
            marker: false,
            timestamp: 0,
            payload: Bytes::from(vec![n]),
        }
    }

    #[test]
    fn in_order_packets_pass_straight_through() {
        let now = Instant::now();
        let mut b = JitterBuffer::new(Duration::from_millis(100));
        for s in 0..3u16 {
            b.push(now, s, false, 0, Bytes::from(vec![s as u8]));
            assert_eq!(drain(&mut b, now), vec![packet(s as u8)]);
        }
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn a_reordered_or_retransmitted_packet_is_released_in_its_place() {
        let t0 = Instant::now();
        let mut b = JitterBuffer::new(Duration::from_millis(100));
        b.push(t0, 10, false, 0, Bytes::from(vec![10]));
        assert_eq!(drain(&mut b, t0), vec![packet(10)]);
        // 11 is missing: 12 and 13 wait for it.
        b.push(t0, 12, false, 0, Bytes::from(vec![12]));
        b.push(t0, 13, false, 0, Bytes::from(vec![13]));
        assert_eq!(drain(&mut b, t0), vec![]);
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(100)));
        // The retransmission arrives 60 ms later, before the deadline: nothing is lost.
        let t1 = t0 + Duration::from_millis(60);
        assert_eq!(drain(&mut b, t1), vec![]);
        b.push(t1, 11, false, 0, Bytes::from(vec![11]));
        assert_eq!(drain(&mut b, t1), vec![packet(11), packet(12), packet(13)]);
        assert_eq!(b.deadline(), None);
        // A second copy of 11 (a duplicate retransmission) is dropped, counted as a duplicate.
        b.push(t1, 11, false, 0, Bytes::from(vec![11]));
        assert_eq!(drain(&mut b, t1), vec![]);
        assert_eq!((b.late, b.duplicates), (0, 1));
        // So is a second copy of one still held.
        b.push(t1, 15, false, 0, Bytes::from(vec![15]));
        b.push(t1, 15, false, 0, Bytes::from(vec![15]));
        assert_eq!((b.late, b.duplicates), (0, 2));
    }

    #[test]
    fn a_packet_that_never_comes_is_given_up_at_the_deadline() {
        let t0 = Instant::now();
        let mut b = JitterBuffer::new(Duration::from_millis(80));
        b.push(t0, 1, false, 0, Bytes::from(vec![1]));
        b.push(t0, 4, true, 0, Bytes::from(vec![4]));
        assert_eq!(drain(&mut b, t0), vec![packet(1)]);
        assert_eq!(drain(&mut b, t0 + Duration::from_millis(79)), vec![]);
        assert_eq!(
            drain(&mut b, t0 + Duration::from_millis(80)),
            vec![
                Released::Lost { count: 2 },
                Released::Packet {
                    marker: true,
                    timestamp: 0,
                    payload: Bytes::from(vec![4])
                }
            ]
        );
        // 2 arriving after it was given up is late, not a new start.
        b.push(
            t0 + Duration::from_millis(90),
            2,
            false,
            0,
            Bytes::from(vec![2]),
        );
        assert_eq!(drain(&mut b, t0 + Duration::from_millis(90)), vec![]);
        assert_eq!((b.late, b.duplicates), (1, 0));
    }

    #[test]
    fn a_retransmission_that_came_too_late_lengthens_the_wait() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = JitterBuffer::new(Duration::from_millis(150));
        b.push(t0, 1, false, 0, Bytes::from(vec![1]));
        b.push(t0, 3, false, 0, Bytes::from(vec![3]));
        drain(&mut b, ms(150));
        // 2 comes 250 ms after 3 showed it missing: too late, and the wait is now known short.
        b.push(ms(250), 2, false, 0, Bytes::from(vec![2]));
        assert_eq!(b.late, 1);
        b.push(ms(300), 5, false, 0, Bytes::from(vec![5]));
        assert_eq!(
            b.deadline(),
            Some(ms(300) + Duration::from_millis(312) + Duration::from_micros(500))
        );
        assert_eq!(drain(&mut b, ms(500)), vec![]);
        b.push(ms(520), 4, false, 0, Bytes::from(vec![4]));
        assert_eq!(drain(&mut b, ms(520)), vec![packet(4), packet(5)]);
    }

    #[test]
    fn slow_repairs_lengthen_the_wait_before_any_comes_too_late_and_never_past_the_bound() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = JitterBuffer::new(Duration::from_millis(150));
        b.push(t0, 1, false, 0, Bytes::new());
        b.push(t0, 3, false, 0, Bytes::new());
        b.push(ms(140), 2, false, 0, Bytes::new());
        drain(&mut b, ms(140));
        b.push(ms(200), 5, false, 0, Bytes::new());
        assert_eq!(
            b.deadline(),
            Some(ms(200 + 175)),
            "1.25 x the 140 ms repair"
        );
        b.push(ms(2_000), 4, false, 0, Bytes::new());
        drain(&mut b, ms(2_000));
        b.push(ms(2_100), 7, false, 0, Bytes::new());
        assert_eq!(b.deadline(), Some(ms(2_100) + LONGEST_WAIT));
    }

    #[test]
    fn sequence_numbers_wrap_and_an_early_reorder_is_kept() {
        let now = Instant::now();
        let mut b = JitterBuffer::new(Duration::from_millis(100));
        b.push(now, u16::MAX - 1, false, 0, Bytes::from(vec![1]));
        b.push(now, 0, false, 0, Bytes::from(vec![3]));
        b.push(now, u16::MAX, false, 0, Bytes::from(vec![2]));
        assert_eq!(drain(&mut b, now), vec![packet(1), packet(2), packet(3)]);
    }

    #[test]
    fn too_many_held_packets_end_the_wait_at_once() {
        let now = Instant::now();
        let mut b = JitterBuffer::new(Duration::from_secs(60));
        b.push(now, 0, false, 0, Bytes::new());
        drain(&mut b, now);
        for s in 2..(MAX_HELD as u16 + 3) {
            b.push(now, s, false, 0, Bytes::new());
        }
        let released = drain(&mut b, now);
        assert_eq!(released[0], Released::Lost { count: 1 });
        assert_eq!(released.len(), MAX_HELD + 2);
    }

    #[test]
    fn gaps_close_together_are_waited_for_together_not_one_after_another() {
        // 20 % loss at 100 packets a second: a gap every 50 ms. Each is given up 150 ms after
        // the packet that revealed it, so nothing is held much longer than the wait.
        let t0 = Instant::now();
        let wait = Duration::from_millis(150);
        let mut b = JitterBuffer::new(wait);
        let mut released_at = Vec::new();
        for n in 0..200u16 {
            let now = t0 + Duration::from_millis(10 * n as u64);
            if n % 5 != 1 {
                b.push(now, n, false, 0, Bytes::from(vec![n as u8]));
            }
            for r in drain(&mut b, now) {
                if let Released::Packet { payload, .. } = r {
                    released_at.push((payload[0], now));
                }
            }
        }
        let worst = released_at
            .iter()
            .map(|&(n, at)| {
                let sent = t0 + Duration::from_millis(10 * n as u64);
                at.duration_since(sent)
            })
            .max()
            .unwrap();
        assert!(
            worst <= wait + Duration::from_millis(10),
            "held up to {worst:?}"
        );
        // All 160 that came, but those of the last 150 ms, still waiting on a gap.
        assert!(released_at.len() >= 145, "{} released", released_at.len());
    }

    #[test]
    fn a_gap_is_reported_once_when_it_shows_and_a_wide_one_not_at_all() {
        let now = Instant::now();
        let mut b = JitterBuffer::new(Duration::from_millis(100));
        assert!(b.push(now, 10, false, 0, Bytes::new()).is_empty());
        assert!(b.push(now, 11, false, 0, Bytes::new()).is_empty());
        assert_eq!(b.push(now, 14, false, 0, Bytes::new()), vec![12, 13]);
        // The repairs and a reordered packet show nothing new missing.
        assert!(b.push(now, 13, false, 0, Bytes::new()).is_empty());
        assert!(b.push(now, 12, false, 0, Bytes::new()).is_empty());
        assert!(b.push(now, 15, false, 0, Bytes::new()).is_empty());
        // Across the wrap.
        let mut b = JitterBuffer::new(Duration::from_millis(100));
        b.push(now, u16::MAX - 1, false, 0, Bytes::new());
        assert_eq!(b.push(now, 1, false, 0, Bytes::new()), vec![u16::MAX, 0]);
        // A stall of hundreds of packets is left to the generator and a keyframe.
        assert!(b.push(now, 500, false, 0, Bytes::new()).is_empty());
    }

    #[test]
    fn the_wait_follows_the_round_trip_time_within_bounds() {
        let ms = Duration::from_millis;
        // The generator's two NACK rounds of 40 ms, two round trips, 150 ms of slack, at least
        // 250 ms.
        assert_eq!(wait_for_rtt(None), ms(330));
        assert_eq!(wait_for_rtt(Some(ms(1))), ms(250));
        assert_eq!(wait_for_rtt(Some(ms(20))), ms(270));
        assert_eq!(wait_for_rtt(Some(ms(100))), ms(430));
        assert_eq!(wait_for_rtt(Some(Duration::from_secs(2))), ms(600));
    }
}
