//! How fast ICE checks and nominates: the timing every Parlor peer connection gives webrtc-rs,
//! kept in one place so the tests below run the very same timing on the library's sans-IO ICE
//! agent, on simulated time.
use std::time::Duration;

use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;

/// How long a candidate pair is tried before it is given up (webrtc-rs's default, 7 × 200 ms).
const PAIR_GIVE_UP_AFTER: Duration = Duration::from_millis(1400);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IceTiming {
    /// Interval between connectivity checks (and, in webrtc-rs 0.21, between the driver's
    /// wake-ups while connecting).
    pub check_interval: Duration,
    /// Checks sent on a pair before it is given up.
    pub max_binding_requests: u16,
    /// How long after ICE starts a pair whose remote address was learned from a check (peer
    /// reflexive) may be nominated.
    pub prflx_acceptance_min_wait: Duration,
}

impl IceTiming {
    pub(crate) fn new(check_interval: Duration) -> Self {
        let attempts = PAIR_GIVE_UP_AFTER.as_millis() / check_interval.as_millis().max(1);
        IceTiming {
            // webrtc-rs sends queued DTLS/SCTP packets on its ICE ticks (200 ms by default),
            // which made setup take 200 or 400 ms. A shorter tick with proportionally more
            // attempts keeps the same time before a pair is given up; connectivity checks are
            // only sent while checking.
            check_interval,
            max_binding_requests: attempts.clamp(7, 1000) as u16,
            // The other side's first connectivity check often comes before its trickled
            // candidate (the direct path is faster than signaling), so its address is first
            // learned as peer reflexive; webrtc-rs keeps it so when the same address is
            // trickled as a host candidate, and by default nominates a peer-reflexive pair only
            // a second after ICE started. The DTLS client's first flights, sent the moment its
            // side connected, are dropped in that second, and its next retransmission came
            // ~1.9 s into the call: 6 of 20 calls we offered to Chromium. libwebrtc has no such
            // wait; a working pair is taken when found.
            prflx_acceptance_min_wait: Duration::ZERO,
        }
    }

    pub(crate) fn apply(&self, settings: SettingEngineBuilder) -> SettingEngineBuilder {
        settings
            .with_ice_connection_attempts(
                Some(self.check_interval),
                Some(self.max_binding_requests),
            )
            .with_prflx_acceptance_min_wait(Some(self.prflx_acceptance_min_wait))
    }
}

#[cfg(test)]
mod tests {
    //! Two webrtc-rs ICE agents (the library's own sans-IO `Agent`, the one inside every peer
    //! connection) joined by a simulated 1 ms link. Time only moves to the earliest thing that
    //! is due, so a few simulated seconds run instantly and every run is the same.
    use super::*;
    use crate::test_time::at;
    use rtc::ice::agent::agent_config::AgentConfig;
    use rtc::ice::agent::{Agent, Event};
    use rtc::ice::candidate::candidate_host::CandidateHostConfig;
    use rtc::ice::candidate::{CandidateConfig, CandidateType};
    use rtc::sansio::Protocol;
    use rtc::shared::{TaggedBytesMut, TransportContext};
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Instant;

    const LINK_DELAY: Duration = Duration::from_millis(1);

    /// webrtc-rs's defaults for everything but the timing under test (the same mapping as
    /// `SettingEngine` → `AgentConfig` in the `rtc` crate).
    fn agent_config(timing: IceTiming, is_controlling: bool) -> AgentConfig {
        AgentConfig {
            check_interval: timing.check_interval,
            max_binding_requests: Some(timing.max_binding_requests),
            prflx_acceptance_min_wait: Some(timing.prflx_acceptance_min_wait),
            is_controlling,
            ..Default::default()
        }
    }

    fn host(addr: SocketAddr) -> rtc::ice::candidate::Candidate {
        CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".into(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .unwrap()
    }

    struct Side {
        agent: Agent,
        addr: SocketAddr,
        /// When this side first selected a pair, and the remote candidate's type.
        selected: Option<(Instant, CandidateType)>,
    }

    /// A datagram on the simulated link: delivered to `to` (0 or 1) at `at`.
    struct InFlight {
        at: Instant,
        to: usize,
        packet: TaggedBytesMut,
    }

    /// The outlier's scenario: we offer (controlling) and the browser answers (controlled). The
    /// browser has our candidate from the offer and starts checking at once; its own candidate
    /// is still on its way through the server when its first check reaches us, so we learn its
    /// address only from that check. Returns when each side first selected a pair, in
    /// simulated milliseconds after ICE started.
    fn offer_to_a_peer_whose_candidate_lags(
        config: impl Fn(bool) -> AgentConfig,
    ) -> [(u128, CandidateType); 2] {
        let start = Instant::now();
        let provider = rtc::crypto::default_provider().unwrap();
        let ours: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let theirs: SocketAddr = "127.0.0.2:60000".parse().unwrap();
        let new_side = |addr, controlling| Side {
            agent: Agent::new(start, Arc::new(config(controlling)), provider.clone()).unwrap(),
            addr,
            selected: None,
        };
        let mut sides = [new_side(ours, true), new_side(theirs, false)];
        for side in &mut sides {
            let local = host(side.addr);
            side.agent.add_local_candidate(local).unwrap();
        }
        sides[1].agent.add_remote_candidate(host(ours)).unwrap();
        let credentials = sides
            .each_ref()
            .map(|s| s.agent.get_local_credentials().clone());
        for (index, side) in sides.iter_mut().enumerate() {
            let remote = &credentials[1 - index];
            let controlling = index == 0;
            side.agent
                .start_connectivity_checks(
                    start,
                    controlling,
                    remote.ufrag.clone(),
                    remote.pwd.clone(),
                )
                .unwrap();
        }

        let mut link: VecDeque<InFlight> = VecDeque::new();
        let mut now = start;
        // Bounded in simulated time and in steps; the agents give up long before either.
        for _ in 0..100_000 {
            for (index, side) in sides.iter_mut().enumerate() {
                while let Some(sent) = side.agent.poll_write() {
                    link.push_back(InFlight {
                        at: now + LINK_DELAY,
                        to: 1 - index,
                        packet: sent,
                    });
                }
                while let Some(tagged) = side.agent.poll_event() {
                    if let Event::SelectedCandidatePairChange(_, remote) = tagged.event {
                        side.selected
                            .get_or_insert((tagged.now, remote.candidate_type()));
                    }
                }
            }
            if sides.iter().all(|s| s.selected.is_some()) || now > at(start, 5_000) {
                break;
            }
            // Advance to the earliest thing that is due: a delivery or an agent's timer.
            let next_delivery = link.iter().map(|p| p.at).min();
            let timers = sides.iter_mut().filter_map(|s| s.agent.poll_timeout());
            let Some(next) = next_delivery.into_iter().chain(timers).min() else {
                break;
            };
            now = now.max(next);
            while let Some(i) = link.iter().position(|p| p.at <= now) {
                let InFlight { to, packet, .. } = link.remove(i).unwrap();
                let receiver = &mut sides[to];
                // A datagram addressed to the receiver, as its socket would hand it over.
                let delivered = TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: receiver.addr,
                        peer_addr: packet.transport.local_addr,
                        ..packet.transport
                    },
                    message: packet.message,
                };
                let _ = receiver.agent.handle_read(delivered);
            }
            for side in &mut sides {
                side.agent.handle_timeout(now).unwrap();
            }
        }
        sides.map(|side| {
            let (when, kind) = side.selected.expect("ICE selected no pair in 5 s");
            (when.duration_since(start).as_millis(), kind)
        })
    }

    #[test]
    fn we_take_a_working_peer_reflexive_pair_at_once_when_we_offer() {
        let timing = IceTiming::new(Duration::from_millis(20));
        let [ours, theirs] =
            offer_to_a_peer_whose_candidate_lags(|controlling| agent_config(timing, controlling));
        // We learned their address from their check alone; the scenario is the one we meant.
        assert_eq!(ours.1, CandidateType::PeerReflexive);
        // A check and its answer cross the 1 ms link, then ours is nominated: a few ms, not the
        // library's second, so their DTLS flights are not dropped meanwhile.
        assert!(ours.0 < 100, "we selected a pair only after {} ms", ours.0);
        assert!(
            theirs.0 < 100,
            "they saw our nomination only after {} ms",
            theirs.0
        );
    }

    #[test]
    fn the_library_default_waits_a_second_before_nominating_a_peer_reflexive_pair() {
        // What the timing above changes: with webrtc-rs's default wait, the same scenario
        // nominates only a second after ICE started (what made 6 of 20 calls we offered to
        // Chromium take ~1.9 s to connect).
        let timing = IceTiming::new(Duration::from_millis(20));
        let [ours, theirs] = offer_to_a_peer_whose_candidate_lags(|controlling| AgentConfig {
            prflx_acceptance_min_wait: None,
            ..agent_config(timing, controlling)
        });
        assert_eq!(ours.1, CandidateType::PeerReflexive);
        assert!(ours.0 >= 1000, "we selected a pair at {} ms", ours.0);
        assert!(
            theirs.0 >= 1000,
            "they saw our nomination at {} ms",
            theirs.0
        );
    }

    #[test]
    fn attempts_keep_the_libraries_give_up_time_whatever_the_check_interval() {
        assert_eq!(
            IceTiming::new(Duration::from_millis(20)).max_binding_requests,
            70
        );
        assert_eq!(
            IceTiming::new(Duration::from_millis(200)).max_binding_requests,
            7
        );
        // Never fewer than the library's 7 attempts, never unbounded.
        assert_eq!(
            IceTiming::new(Duration::from_secs(1)).max_binding_requests,
            7
        );
        assert_eq!(IceTiming::new(Duration::ZERO).max_binding_requests, 1000);
    }
}
