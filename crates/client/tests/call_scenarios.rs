//! Calls between several clients on simulated time: the real server hub and the real call
//! machines, with a modelled network and modelled peer connections (see `sim`). Each scenario
//! runs under several seeds (message delays differ, so events interleave differently) and
//! takes milliseconds however many simulated minutes it covers.
mod sim;

use std::time::Duration;

use parlor_client::call::{CallEvent, EndReason};
use parlor_protocol::{RoomId, UserId};
use parlor_rtc::ConnectionState;
use sim::World;

/// Users 1 to 7.
const GROUP: RoomId = 10;
/// Users 1 and 2, a 1:1 conversation.
const DIRECT: RoomId = 20;
/// Users 2 and 3.
const OTHER: RoomId = 30;

const SEEDS: u64 = 12;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn world(seed: u64) -> World {
    let mut w = World::new(seed);
    w.room(GROUP, &[1, 2, 3, 4, 5, 6, 7], false);
    w.room(DIRECT, &[1, 2], true);
    w.room(OTHER, &[2, 3], false);
    w.run_for(secs(1.0));
    w
}

/// `users` start (or join) `room`'s call one after another, `gap` apart, and all connect.
fn call(w: &mut World, room: RoomId, users: &[UserId], gap: Duration) {
    for &u in users {
        w.start_call(u, room);
        w.run_for(gap);
    }
    let all = users.to_vec();
    assert!(
        w.run_until(secs(5.0), |w| w.mesh_connected(&all)),
        "{users:?} did not all connect"
    );
}

fn link_events(w: &World, user: UserId, state: ConnectionState) -> usize {
    w.client(user)
        .events
        .iter()
        .filter(|(_, e)| matches!(e, CallEvent::Link { state: s, .. } if *s == state))
        .count()
}

#[test]
fn a_one_to_one_call_rings_is_answered_connects_and_ends_when_the_other_hangs_up() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        w.start_call(1, DIRECT);
        assert!(w.run_until(secs(1.0), |w| w
            .client(2)
            .events
            .iter()
            .any(|(_, e)| matches!(e, CallEvent::Ringing { by: 1, .. }))));
        w.run_for(secs(3.0));
        w.start_call(2, DIRECT);
        assert!(w.run_until(secs(2.0), |w| w.connected(1, 2)), "seed {seed}");
        assert!(w.client(2).saw(&CallEvent::RingStopped {
            room_id: DIRECT,
            missed: false
        }));
        assert!(w
            .client(1)
            .saw(&CallEvent::ParticipantJoined { user_id: 2 }));
        w.run_for(secs(60.0));
        assert!(w.connected(1, 2), "no ring timeout once answered");
        w.hang_up(2);
        assert!(w.run_until(secs(1.0), |w| w.client(1).ended().is_some()));
        assert_eq!(w.client(1).ended(), Some(EndReason::OtherLeft));
        assert_eq!(w.client(2).ended(), Some(EndReason::HungUp));
        w.run_for(secs(1.0));
        assert_eq!(
            w.hub_call(DIRECT),
            None,
            "seed {seed}: the call is over on the server"
        );
    }
}

#[test]
fn a_one_to_one_call_nobody_answers_ends_after_the_ring_timeout() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        w.start_call(1, DIRECT);
        w.run_for(secs(44.0));
        assert!(w.client(1).in_call(), "still ringing at 44 s");
        assert!(w.run_until(secs(2.0), |w| w.client(1).ended().is_some()));
        assert_eq!(w.client(1).ended(), Some(EndReason::NoAnswer));
        let (at, _) = w.client(1).events.last().unwrap().clone();
        assert!(at >= secs(46.0) && at < secs(46.2), "ended at {at:?}");
        w.run_for(secs(1.0));
        assert!(w.client(2).saw(&CallEvent::RingStopped {
            room_id: DIRECT,
            missed: true
        }));
        assert_eq!(w.hub_call(DIRECT), None);
    }
}

/// User 1 calls user 2 in the direct room; 2 declines after `ringing`; 1's call ends.
fn declined_after(w: &mut World, ringing: Duration) {
    w.start_call(1, DIRECT);
    w.run_for(ringing);
    w.decline(2, DIRECT);
    assert!(w.run_until(secs(1.0), |w| w.client(1).ended().is_some()));
}

#[test]
fn a_declined_one_to_one_call_ends_for_the_caller() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        declined_after(&mut w, secs(2.0));
        assert_eq!(w.client(1).ended(), Some(EndReason::Declined));
        assert!(w.client(1).saw(&CallEvent::Declined { user_id: 2 }));
        assert!(w.client(2).saw(&CallEvent::RingStopped {
            room_id: DIRECT,
            missed: false
        }));
        w.run_for(secs(1.0));
        assert_eq!(w.hub_call(DIRECT), None);
    }
}

#[test]
fn calling_again_at_once_is_not_ended_by_the_last_calls_late_words() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        declined_after(&mut w, secs(1.0));
        // At once, while the server's word that the first call ended is still on its way.
        w.start_call(1, DIRECT);
        w.run_for(secs(2.0));
        assert!(w.client(1).in_call(), "seed {seed}: the new call stands");
        let rings = w
            .client(2)
            .events
            .iter()
            .filter(|(_, e)| matches!(e, CallEvent::Ringing { .. }))
            .count();
        assert_eq!(rings, 2, "seed {seed}: the second call rings too");
    }
}

#[test]
fn calling_someone_who_is_in_another_call_ends_busy_and_leaves_their_call_alone() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        call(&mut w, OTHER, &[2, 3], secs(0.1));
        w.start_call(1, DIRECT);
        assert!(w.run_until(secs(2.0), |w| w.client(1).ended().is_some()));
        assert_eq!(w.client(1).ended(), Some(EndReason::Busy));
        assert!(w.connected(2, 3));
        assert!(
            !w.client(2)
                .events
                .iter()
                .any(|(_, e)| matches!(e, CallEvent::Ringing { .. })),
            "no ring shown in a call"
        );
    }
}

#[test]
fn two_people_starting_the_call_at_once_end_up_in_one_call() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        w.start_call(1, GROUP);
        w.start_call(2, GROUP);
        assert!(w.run_until(secs(3.0), |w| w.connected(1, 2)), "seed {seed}");
        assert_eq!(w.hub_call(GROUP).unwrap().participants.len(), 2);
        assert_eq!(w.client(1).machine.linked(), vec![2]);
        assert_eq!(w.client(2).machine.linked(), vec![1]);
    }
}

#[test]
fn cameras_turned_on_at_the_same_moment_are_negotiated_both_ways() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        w.without_camera(1);
        w.without_camera(2);
        call(&mut w, GROUP, &[1, 2], secs(0.1));
        assert!(!w.negotiated(1, 2).video);
        // Both offer at once: the lower id's offer stands, the higher answers it and then
        // offers its own.
        w.add_camera(1);
        w.add_camera(2);
        assert!(
            w.run_until(secs(3.0), |w| w.negotiated(1, 2).video
                && w.negotiated(2, 1).video),
            "seed {seed}"
        );
        assert!(w.connected(1, 2));
        assert_eq!(link_events(&w, 1, ConnectionState::Disconnected), 0);
    }
}

#[test]
fn the_camera_of_someone_called_by_a_side_without_one_is_negotiated_too() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        // 1 offers (the lower id) with no video section; 2 answers, then offers its camera.
        w.without_camera(1);
        call(&mut w, GROUP, &[1, 2], secs(0.1));
        assert!(
            w.run_until(secs(2.0), |w| w.negotiated(1, 2).video
                && w.negotiated(2, 1).video),
            "seed {seed}"
        );
        assert_eq!(
            w.client(2).offers.len(),
            1,
            "one offer from 2, for its camera"
        );
    }
}

#[test]
fn someone_joining_late_links_to_everyone_and_a_group_call_goes_on_when_people_leave() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        call(&mut w, GROUP, &[1, 2], secs(0.1));
        w.run_for(secs(10.0));
        w.start_call(3, GROUP);
        assert!(
            w.run_until(secs(3.0), |w| w.mesh_connected(&[1, 2, 3])),
            "seed {seed}"
        );
        w.hang_up(1);
        w.run_for(secs(1.0));
        assert!(w.connected(2, 3));
        w.hang_up(3);
        w.run_for(secs(60.0));
        assert!(
            w.client(2).in_call(),
            "a group call is a place: 2 stays in it alone"
        );
        assert_eq!(w.client(2).ended(), None);
    }
}

#[test]
fn six_people_joining_within_fifty_milliseconds_all_connect() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        let users = [6, 2, 4, 1, 5, 3];
        for (i, &u) in users.iter().enumerate() {
            w.start_call(u, GROUP);
            w.run_for(Duration::from_millis(((seed + i as u64 * 7) % 10) * 2));
        }
        assert!(
            w.run_until(secs(5.0), |w| w.mesh_connected(&users)),
            "seed {seed}"
        );
        for u in users {
            assert_eq!(w.client(u).machine.linked().len(), 5, "seed {seed}: {u}");
        }
        // The call is full (six by default): a seventh is refused and left as it was.
        w.start_call(7, GROUP);
        w.run_for(secs(1.0));
        assert!(!w.client(7).in_call());
        assert!(w.mesh_connected(&users));
    }
}

#[test]
fn a_signaling_drop_inside_the_grace_period_leaves_media_untouched() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        call(&mut w, GROUP, &[1, 2, 3], secs(0.1));
        w.drop_signaling(1);
        w.run_for(secs(1.0));
        // Someone comes meanwhile: 1 meets them after the reconnect.
        w.start_call(4, GROUP);
        w.run_for(secs(2.0));
        assert!(
            w.connected(1, 2) && w.connected(1, 3),
            "media does not need the server"
        );
        w.restore_signaling(1);
        assert!(
            w.run_until(secs(3.0), |w| w.mesh_connected(&[1, 2, 3, 4])),
            "seed {seed}"
        );
        assert!(w.client(1).saw(&CallEvent::SignalingLost));
        assert!(w.client(1).saw(&CallEvent::Resumed));
        for other in [2, 3] {
            assert!(w
                .client(other)
                .saw(&CallEvent::ParticipantAway { user_id: 1 }));
            assert!(w
                .client(other)
                .saw(&CallEvent::ParticipantBack { user_id: 1 }));
            assert_eq!(w.client(1).restarts_to(other), 0, "nothing to repair");
        }
        for u in [1, 2, 3] {
            assert_eq!(link_events(&w, u, ConnectionState::Disconnected), 0);
        }
    }
}

#[test]
fn a_signaling_drop_beyond_the_grace_period_ends_the_call_for_the_one_who_dropped() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        call(&mut w, GROUP, &[1, 2, 3], secs(0.1));
        w.drop_signaling(1);
        let grace = w.grace();
        w.run_for(grace + secs(1.0));
        for other in [2, 3] {
            assert!(w
                .client(other)
                .saw(&CallEvent::ParticipantLeft { user_id: 1 }));
        }
        assert!(w.client(1).in_call(), "it cannot know before it is back");
        w.restore_signaling(1);
        assert!(w.run_until(secs(1.0), |w| w.client(1).ended().is_some()));
        assert_eq!(w.client(1).ended(), Some(EndReason::Lost));
        assert!(w.connected(2, 3));
        let left: Vec<UserId> = w
            .hub_call(GROUP)
            .unwrap()
            .participants
            .iter()
            .map(|p| p.user_id)
            .collect();
        assert_eq!(left, vec![2, 3]);
    }
}

#[test]
fn an_offer_that_could_not_be_sent_goes_out_once_signaling_is_back() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        w.without_camera(1);
        w.without_camera(2);
        call(&mut w, GROUP, &[1, 2], secs(0.1));
        assert!(!w.negotiated(2, 1).video);
        w.drop_signaling(1);
        w.add_camera(1);
        assert!(w.client(1).events.iter().any(|(_, e)| matches!(
            e,
            CallEvent::Failed {
                user_id: Some(2),
                ..
            }
        )));
        w.run_for(secs(1.0));
        w.restore_signaling(1);
        assert!(
            w.run_until(secs(10.0), |w| w.negotiated(2, 1).video),
            "seed {seed}"
        );
        assert!(w.connected(1, 2));
    }
}

#[test]
fn a_media_outage_is_repaired_by_ice_restarts_with_backoff() {
    for seed in 0..SEEDS {
        let mut w = world(seed);
        call(&mut w, GROUP, &[1, 2], secs(0.1));
        // A short one heals by itself, with no restart and nothing said.
        w.set_path(1, 2, false);
        w.run_for(secs(3.0));
        w.set_path(1, 2, true);
        w.run_for(secs(1.0));
        assert_eq!(link_events(&w, 1, ConnectionState::Disconnected), 0);
        assert_eq!(w.client(1).restarts_to(2), 0);
        // A long one: disconnected after 5 s, restarted 2 s later by the offerer (1), again
        // after 2, 4, 8, 16 s while the path is down, and connected after the path is back.
        let down_at = w.elapsed();
        w.set_path(1, 2, false);
        w.run_for(secs(40.0));
        assert!(!w.connected(1, 2));
        let restarts: Vec<u64> = w
            .client(1)
            .restart_times(2)
            .into_iter()
            .map(|at| (at - down_at).as_secs())
            .collect();
        assert_eq!(restarts, vec![7, 9, 13, 21, 37], "seed {seed}");
        assert_eq!(w.client(2).restarts_to(1), 0, "only the offerer restarts");
        w.set_path(1, 2, true);
        assert!(
            w.run_until(secs(20.0), |w| w.connected(1, 2)),
            "seed {seed}"
        );
        w.run_for(secs(60.0));
        assert_eq!(w.client(1).restarts_to(2), 5, "connected: no more restarts");
    }
}
