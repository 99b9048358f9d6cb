//! Keeping retransmissions to what the link can carry and the receiver can still use.
//!
//! webrtc-rs's NACK responder resends every packet asked for, at once, into the pacer. When a
//! link narrows suddenly (measured: 2 Mbit/s to 300 kbit/s), a second of overshoot loses a
//! hundred packets; each is asked for twice, and the 1.6 Mbit of resends queue in the pacer
//! behind the new, lower rate for six seconds, while every new frame waits behind them and the
//! picture freezes. libwebrtc limits retransmissions to a rate and skips packets too old to
//! help; this interceptor does the same between the responder and the pacer.
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{Interceptor, Packet, TaggedPacket};
use rtc::shared::marshal::MarshalSize;
use tokio::sync::watch;

use crate::estimate::Estimate;
use crate::jitter::LONGEST_WAIT;
use crate::packet_hook::PacketHook;
use crate::rtx::RepairStreams;

/// A resend later than this after the original is past the receiver's wait for it (measured
/// from the gap, which is noticed a little after the original was sent).
const USEFUL_FOR: Duration = Duration::from_millis(LONGEST_WAIT.as_millis() as u64 + 200);
/// Resends may use at most this share of the estimate, over the last second.
const SHARE_OF_ESTIMATE: f64 = 0.3;
const WINDOW: Duration = Duration::from_secs(1);
/// First sends remembered per stream: a second of 720p at 2 Mbit/s is about 200 packets.
const REMEMBERED: usize = 1024;

/// The decision, without the interceptor plumbing.
#[derive(Debug, Default)]
pub(crate) struct RetransmissionBudget {
    /// Per SSRC, when each recent sequence number first went out (slot = seq % REMEMBERED).
    first_sent: HashMap<u32, Vec<Option<(u16, Instant)>>>,
    /// Resends let through in the last window: (when, bits).
    recent: VecDeque<(Instant, f64)>,
    skipped: u64,
}

impl RetransmissionBudget {
    /// Whether the packet may go out; first sends always may.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence_number: u16,
        bits: f64,
        estimate_bps: Option<u32>,
    ) -> bool {
        let slots = self
            .first_sent
            .entry(ssrc)
            .or_insert_with(|| vec![None; REMEMBERED]);
        let slot = &mut slots[sequence_number as usize % REMEMBERED];
        let first = match *slot {
            Some((seq, at)) if seq == sequence_number => at,
            _ => {
                *slot = Some((sequence_number, now));
                return true;
            }
        };
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= WINDOW)
        {
            self.recent.pop_front();
        }
        let spent: f64 = self.recent.iter().map(|(_, bits)| bits).sum();
        let allowance = estimate_bps.map_or(f64::INFINITY, |bps| {
            f64::from(bps) * SHARE_OF_ESTIMATE * WINDOW.as_secs_f64()
        });
        let useful = now.saturating_duration_since(first) <= USEFUL_FOR;
        let age_ms = now.saturating_duration_since(first).as_millis() as u64;
        if useful && spent + bits <= allowance {
            tracing::trace!(ssrc, sequence_number, age_ms, "resend");
            self.recent.push_back((now, bits));
            true
        } else {
            tracing::debug!(
                ssrc,
                sequence_number,
                age_ms,
                useful,
                spent,
                allowance,
                "resend skipped"
            );
            self.skipped += 1;
            false
        }
    }
}

/// The limiter, as an interceptor for the chain: application-ward of the pacer and wire-ward of
/// the NACK responder.
pub(crate) fn retransmission_limiter(
    estimate: watch::Receiver<Option<Estimate>>,
) -> impl Interceptor {
    let mut budget = RetransmissionBudget::default();
    // A resend in an RTX stream names its original in its payload.
    let streams = RepairStreams::default();
    let originals = streams.clone();
    PacketHook::new(
        |_: &TaggedPacket| {},
        move |msg: &TaggedPacket| match &msg.message.packet {
            Packet::Rtp(packet) => {
                let Some((ssrc, sequence_number)) = originals.original(packet) else {
                    return true;
                };
                let target = estimate.borrow().map(|e| e.target_bps);
                let bits = packet.marshal_size() as f64 * 8.0;
                budget.admit(msg.now, ssrc, sequence_number, bits, target)
            }
            _ => true,
        },
    )
    .with_repair_streams(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    const PACKET_BITS: f64 = 8000.0;

    #[test]
    fn first_sends_always_pass_and_a_resend_within_budget_passes() {
        let mut budget = RetransmissionBudget::default();
        let start = Instant::now();
        for seq in 0..100u16 {
            assert!(budget.admit(start, 1, seq, PACKET_BITS, Some(100_000)));
        }
        assert!(budget.admit(at(start, 100), 1, 7, PACKET_BITS, Some(100_000)));
        assert_eq!(budget.skipped, 0);
    }

    #[test]
    fn resends_are_held_to_a_share_of_the_estimate() {
        let mut budget = RetransmissionBudget::default();
        let start = Instant::now();
        for seq in 0..100u16 {
            budget.admit(start, 1, seq, PACKET_BITS, Some(300_000));
        }
        // 30 % of 300 kbit/s is 90 kbit in a second: eleven 8-kbit resends.
        let passed = (0..100u16)
            .filter(|&seq| budget.admit(at(start, 200), 1, seq, PACKET_BITS, Some(300_000)))
            .count();
        assert_eq!(passed, 11);
        assert_eq!(budget.skipped, 89);
        // A second later the budget is back, for packets sent since.
        for seq in 100..120u16 {
            budget.admit(at(start, 1000), 1, seq, PACKET_BITS, Some(300_000));
        }
        assert!(budget.admit(at(start, 1250), 1, 110, PACKET_BITS, Some(300_000)));
    }

    #[test]
    fn a_resend_too_late_to_help_is_skipped() {
        let mut budget = RetransmissionBudget::default();
        let start = Instant::now();
        budget.admit(start, 1, 9, PACKET_BITS, None);
        assert!(!budget.admit(at(start, 900), 1, 9, PACKET_BITS, None));
        assert!(
            budget.admit(at(start, 900), 2, 9, PACKET_BITS, None),
            "another stream"
        );
    }

    #[test]
    fn a_wrapped_sequence_number_is_a_first_send() {
        let mut budget = RetransmissionBudget::default();
        let start = Instant::now();
        budget.admit(start, 1, 5, PACKET_BITS, None);
        // 5 + 1024 lands in the same slot: a new packet, not a resend of 5.
        assert!(budget.admit(at(start, 2000), 1, 5 + 1024, PACKET_BITS, Some(1)));
        assert_eq!(budget.skipped, 0);
    }
}
