//! Keeping retransmissions to what the link can carry and the receiver can still use.
//!
//! webrtc-rs's NACK responder resends every packet asked for, at once, into the pacer. When a
//! link narrows suddenly (measured: 2 Mbit/s to 300 kbit/s), a second of overshoot loses a
//! hundred packets; each is asked for twice, and the 1.6 Mbit of resends queue in the pacer
//! behind the new, lower rate for six seconds, while every new frame waits behind them and the
//! picture freezes. libwebrtc limits retransmissions to a rate and skips packets too old to
//! help; this interceptor does the same between the responder and the pacer.
//!
//! A packet asked for too late to resend is a frame the receiver cannot decode, and it will not
//! decode another until it has a keyframe: the limiter asks the encoder for one at once (at most
//! every [`KEYFRAME_INSTEAD_EVERY`]) instead of leaving the receiver to find out. Chromium, as a
//! receiver, goes on asking for the packet and asks for a keyframe only after 3 s without a
//! decodable frame: measured on a link narrowed from 2 Mbit/s to 300 kbit/s (a second and more
//! of queue), 3-4 s without a frame after every skipped resend.
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{Interceptor, Packet, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::shared::marshal::MarshalSize;
use tokio::sync::{broadcast, watch};

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

/// At most one keyframe asked for instead of resends this often, per stream (the encoder's
/// own gate spaces keyframes further on a thin link).
const KEYFRAME_INSTEAD_EVERY: Duration = Duration::from_millis(300);

/// What becomes of a packet on its way to the pacer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// A first send, or a resend within the budget: it goes.
    Send,
    /// A resend past the budget: dropped (the receiver asks again).
    OverBudget,
    /// A resend too late to help: dropped, and the stream needs a keyframe.
    TooLate,
}

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
    ) -> Resend {
        let slots = self
            .first_sent
            .entry(ssrc)
            .or_insert_with(|| vec![None; REMEMBERED]);
        let slot = &mut slots[sequence_number as usize % REMEMBERED];
        let first = match *slot {
            Some((seq, at)) if seq == sequence_number => at,
            _ => {
                *slot = Some((sequence_number, now));
                return Resend::Send;
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
        if !useful {
            tracing::debug!(ssrc, sequence_number, age_ms, "resend too late");
            self.skipped += 1;
            Resend::TooLate
        } else if spent + bits > allowance {
            tracing::debug!(
                ssrc,
                sequence_number,
                spent,
                allowance,
                "resend over budget"
            );
            self.skipped += 1;
            Resend::OverBudget
        } else {
            tracing::trace!(ssrc, sequence_number, age_ms, "resend");
            self.recent.push_back((now, bits));
            Resend::Send
        }
    }
}

/// When to ask for a keyframe instead of resends, per stream.
#[derive(Debug, Default)]
pub(crate) struct KeyframesInstead {
    last: HashMap<u32, Instant>,
}

impl KeyframesInstead {
    /// A resend for `ssrc` came too late: whether to ask for a keyframe now.
    pub(crate) fn ask(&mut self, now: Instant, ssrc: u32) -> bool {
        match self.last.get(&ssrc) {
            Some(&at) if now.saturating_duration_since(at) < KEYFRAME_INSTEAD_EVERY => false,
            _ => {
                self.last.insert(ssrc, now);
                true
            }
        }
    }
}

/// The limiter, as an interceptor for the chain: application-ward of the pacer and wire-ward of
/// the NACK responder. Keyframes it asks for go where the receivers' requests go.
pub(crate) fn retransmission_limiter(
    estimate: watch::Receiver<Option<Estimate>>,
    keyframe_requests: broadcast::Sender<u32>,
    stats: std::sync::Arc<crate::stats::StatsRegistry>,
) -> impl Interceptor {
    let mut budget = RetransmissionBudget::default();
    let mut instead = KeyframesInstead::default();
    // A resend in an RTX stream names its original in its payload.
    let streams = RepairStreams::default();
    let originals = streams.clone();
    PacketHook::new(
        // Wire-ward of the NACK responder, NACKs pass here before it takes them.
        move |msg: &TaggedPacket| {
            if let Packet::Rtcp(packets) = &msg.message.packet {
                for packet in packets {
                    if let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() {
                        stats.nack_received(nack.media_ssrc);
                    }
                }
            }
        },
        move |msg: &TaggedPacket| match &msg.message.packet {
            Packet::Rtp(packet) => {
                let Some((ssrc, sequence_number)) = originals.original(packet) else {
                    return true;
                };
                let target = estimate.borrow().map(|e| e.target_bps);
                let bits = packet.marshal_size() as f64 * 8.0;
                match budget.admit(msg.now, ssrc, sequence_number, bits, target) {
                    Resend::Send => true,
                    Resend::OverBudget => false,
                    Resend::TooLate => {
                        if instead.ask(msg.now, ssrc) {
                            let _ = keyframe_requests.send(ssrc);
                        }
                        false
                    }
                }
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
            assert_eq!(
                budget.admit(start, 1, seq, PACKET_BITS, Some(100_000)),
                Resend::Send
            );
        }
        assert_eq!(
            budget.admit(at(start, 100), 1, 7, PACKET_BITS, Some(100_000)),
            Resend::Send
        );
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
            .filter(|&seq| {
                budget.admit(at(start, 200), 1, seq, PACKET_BITS, Some(300_000)) == Resend::Send
            })
            .count();
        assert_eq!(passed, 11);
        assert_eq!(budget.skipped, 89);
        // A second later the budget is back, for packets sent since.
        for seq in 100..120u16 {
            budget.admit(at(start, 1000), 1, seq, PACKET_BITS, Some(300_000));
        }
        assert_eq!(
            budget.admit(at(start, 1250), 1, 110, PACKET_BITS, Some(300_000)),
            Resend::Send
        );
    }

    #[test]
    fn a_resend_too_late_to_help_is_skipped() {
        let mut budget = RetransmissionBudget::default();
        let start = Instant::now();
        budget.admit(start, 1, 9, PACKET_BITS, None);
        assert_eq!(
            budget.admit(at(start, 900), 1, 9, PACKET_BITS, None),
            Resend::TooLate
        );
        assert_eq!(
            budget.admit(at(start, 900), 2, 9, PACKET_BITS, None),
            Resend::Send,
            "another stream"
        );
    }

    #[test]
    fn a_wrapped_sequence_number_is_a_first_send() {
        let mut budget = RetransmissionBudget::default();
        let start = Instant::now();
        budget.admit(start, 1, 5, PACKET_BITS, None);
        // 5 + 1024 lands in the same slot: a new packet, not a resend of 5.
        assert_eq!(
            budget.admit(at(start, 2000), 1, 5 + 1024, PACKET_BITS, Some(1)),
            Resend::Send
        );
        assert_eq!(budget.skipped, 0);
    }

    #[test]
    fn resends_too_late_ask_for_one_keyframe_per_interval_and_stream() {
        let mut instead = KeyframesInstead::default();
        let start = Instant::now();
        assert!(instead.ask(start, 1));
        // The rest of the frame's packets, asked for in the same breath: one keyframe.
        assert!(!instead.ask(at(start, 5), 1));
        assert!(!instead.ask(at(start, 299), 1));
        assert!(instead.ask(at(start, 5), 2), "another stream");
        assert!(instead.ask(at(start, 300), 1));
    }
}
