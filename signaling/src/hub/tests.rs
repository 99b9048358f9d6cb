//! Every transition of the hub, driven on simulated time with no sockets and no database.
use std::time::{Duration, Instant};

use parlor_protocol::{ErrorCode, Event, IceCandidate, LeaveReason, Presence, User};

use super::*;

const ROOM: RoomId = 10;
const OTHER_ROOM: RoomId = 20;

struct Harness {
    hub: Hub,
    t0: Instant,
}

impl Harness {
    /// Users 1..=7 in ROOM; user 8 in OTHER_ROOM only, with user 1.
    fn new() -> Self {
        let mut hub = Hub::new(HubConfig {
            call_grace: Duration::from_secs(5),
            ..HubConfig::default()
        });
        hub.load_room(ROOM, 1..=7);
        hub.load_room(OTHER_ROOM, [1, 8]);
        Harness {
            hub,
            t0: Instant::now(),
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// Connects user N as connection N (session N) and forgets the resulting outputs.
    fn online(&mut self, users: &[UserId]) {
        for &u in users {
            self.hub.connect(u as ConnId, u, u, self.t0);
        }
        self.drain();
    }

    fn drain(&mut self) -> Vec<(Vec<ConnId>, Event)> {
        let mut out = Vec::new();
        while let Some(o) = self.hub.poll_output() {
            match o {
                Output::Send { to, event } => out.push((to, (*event).clone())),
                Output::Close { conn, reason } => {
                    out.push((vec![conn], Event::SessionRevoked));
                    assert_eq!(reason, CloseReason::SessionRevoked);
                }
            }
        }
        out
    }
}

fn receivers_of(out: &[(Vec<ConnId>, Event)], pred: impl Fn(&Event) -> bool) -> Vec<ConnId> {
    let mut to: Vec<ConnId> = out
        .iter()
        .filter(|(_, e)| pred(e))
        .flat_map(|(to, _)| to.clone())
        .collect();
    to.sort_unstable();
    to
}

fn user(id: UserId) -> User {
    User {
        id,
        username: format!("u{id}"),
        display_name: format!("U{id}"),
    }
}

#[test]
fn presence_goes_only_to_people_sharing_a_room() {
    let mut h = Harness::new();
    h.online(&[2, 8]);
    h.hub.connect(1, 1, 1, h.t0);
    let out = h.drain();
    // User 1 shares ROOM with 2 and OTHER_ROOM with 8; 3..7 are offline.
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::Presence {
                user_id: 1,
                presence: Presence::Online
            }
        )),
        vec![2, 8]
    );
    // A second socket of user 1 announces nothing new; closing it neither.
    h.hub.connect(101, 1, 1, h.t0);
    assert!(h.drain().is_empty());
    h.hub.disconnect(101, h.t0);
    assert!(h.drain().is_empty());
    assert!(h.hub.is_online(1));
    h.hub.disconnect(1, h.t0);
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::Presence {
                user_id: 1,
                presence: Presence::Offline
            }
        )),
        vec![2, 8]
    );
    assert!(!h.hub.is_online(1));
    // User 8 never hears about user 2, who shares no room with them.
    h.hub.disconnect(2, h.t0);
    assert_eq!(receivers_of(&h.drain(), |_| true), Vec::<ConnId>::new());
}

#[test]
fn membership_checks_distinguish_missing_rooms_from_non_members() {
    let h = Harness::new();
    assert!(h.hub.check_member(ROOM, 1).is_ok());
    assert_eq!(
        h.hub.check_member(ROOM, 8).unwrap_err().code,
        ErrorCode::NotMember
    );
    assert_eq!(
        h.hub.check_member(999, 1).unwrap_err().code,
        ErrorCode::NotFound
    );
}

#[test]
fn broadcasts_reach_members_only_and_skip_the_sender() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3, 8]);
    h.hub
        .broadcast(ROOM, Event::RoomDeleted { room_id: 0 }, Some(1));
    assert_eq!(receivers_of(&h.drain(), |_| true), vec![2, 3]);
}

#[test]
fn joining_and_leaving_update_membership_and_tell_the_room() {
    let mut h = Harness::new();
    h.online(&[1, 2, 8]);
    h.hub.member_joined(ROOM, &user(8), Some(8));
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::MemberJoined { .. })),
        vec![1, 2]
    );
    assert!(h.hub.is_member(ROOM, 8));
    h.hub.member_left(ROOM, 8, None);
    let out = h.drain();
    // The leaver's own sockets hear it too (so its other devices drop the room).
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::MemberLeft { .. })),
        vec![1, 2, 8]
    );
    assert!(!h.hub.is_member(ROOM, 8));
}

#[test]
fn deleting_a_room_ends_its_call_and_forgets_it() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.drain();
    h.hub.room_deleted(ROOM, Some(1));
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallEnded { .. })),
        vec![2]
    );
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::RoomDeleted { .. })),
        vec![2]
    );
    assert!(!h.hub.room_exists(ROOM));
    assert_eq!(h.hub.active_calls(), 0);
    assert!(h.hub.is_member(OTHER_ROOM, 1), "other rooms are untouched");
}

#[test]
fn revoking_a_session_closes_its_sockets_only() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.connect(11, 1, 77, h.t0); // user 1 on another device with session 77
    h.drain();
    h.hub.revoke_sessions(&[77], None);
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::SessionRevoked)),
        vec![11, 11]
    );
}

#[test]
fn typing_is_relayed_to_other_members_and_rate_limited() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3, 8]);
    h.hub.connect(101, 1, 1, h.t0); // user 1's second device does not hear its own typing
    h.drain();
    for _ in 0..3 {
        h.hub.typing(1, ROOM, true, h.t0).unwrap();
    }
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::Typing { .. })),
        vec![2, 2, 2, 3, 3, 3]
    );
    let err = h.hub.typing(1, ROOM, true, h.t0).unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    assert!(h.drain().is_empty());
    h.hub.typing(1, ROOM, false, h.at(1.1)).unwrap();
    assert_eq!(
        h.hub.typing(8, ROOM, true, h.t0).unwrap_err().code,
        ErrorCode::NotMember
    );
}

#[test]
fn starting_a_call_rings_the_other_members() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3, 8]);
    let info = h.hub.call_join(1, ROOM, 1000).unwrap();
    assert_eq!(info.participants.len(), 1);
    assert_eq!(info.participants[0].user_id, 1);
    assert_eq!(info.max_participants, 6);
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallStarted { by: 1, .. })),
        vec![2, 3]
    );
    assert_eq!(h.hub.active_calls(), 1);
}

#[test]
fn joiner_gets_participants_and_members_hear_of_the_join() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.drain();
    let info = h.hub.call_join(2, ROOM, 5).unwrap();
    let users: Vec<UserId> = info.participants.iter().map(|p| p.user_id).collect();
    assert_eq!(users, vec![1, 2]);
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantJoined { user_id: 2, .. }
        )),
        vec![1, 3]
    );
    // Joining again from the same socket is idempotent and silent.
    assert_eq!(h.hub.call_join(2, ROOM, 6).unwrap().participants.len(), 2);
    assert!(h.drain().is_empty());
}

#[test]
fn non_members_and_unauthenticated_sockets_cannot_touch_calls() {
    let mut h = Harness::new();
    h.online(&[1, 8]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    assert_eq!(
        h.hub.call_join(8, ROOM, 0).unwrap_err().code,
        ErrorCode::NotMember
    );
    assert_eq!(
        h.hub.call_join(99, ROOM, 0).unwrap_err().code,
        ErrorCode::Unauthorized
    );
    assert_eq!(
        h.hub.call_refuse(8, ROOM, false).unwrap_err().code,
        ErrorCode::NotMember
    );
    assert_eq!(
        h.hub
            .call_relay(8, ROOM, 1, Relay::Offer("v=0".into()))
            .unwrap_err()
            .code,
        ErrorCode::NotMember
    );
    assert_eq!(
        h.hub.call_leave(8, ROOM).unwrap_err().code,
        ErrorCode::NotMember
    );
}

#[test]
fn seventh_participant_gets_call_full() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3, 4, 5, 6, 7]);
    for u in 1..=6 {
        h.hub.call_join(u as ConnId, ROOM, 0).unwrap();
    }
    let err = h.hub.call_join(7, ROOM, 0).unwrap_err();
    assert_eq!(err.code, ErrorCode::CallFull);
    assert_eq!(h.hub.call(ROOM).unwrap().participants.len(), 6);
}

#[test]
fn same_user_from_another_session_is_a_conflict() {
    let mut h = Harness::new();
    h.online(&[1]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.connect(11, 1, 99, h.t0);
    assert_eq!(
        h.hub.call_join(11, ROOM, 0).unwrap_err().code,
        ErrorCode::Conflict
    );
}

#[test]
fn offers_answers_and_candidates_go_to_the_named_participant_only() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3, 4]);
    for u in 1..=3 {
        h.hub.call_join(u as ConnId, ROOM, 0).unwrap();
    }
    h.drain();
    h.hub
        .call_relay(1, ROOM, 2, Relay::Offer("offer-sdp".into()))
        .unwrap();
    h.hub
        .call_relay(2, ROOM, 1, Relay::Answer("answer-sdp".into()))
        .unwrap();
    let candidate = IceCandidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    };
    h.hub
        .call_relay(1, ROOM, 3, Relay::Ice(candidate.clone()))
        .unwrap();
    let out = h.drain();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].0, vec![2]);
    assert!(matches!(&out[0].1, Event::CallOffer { from: 1, sdp, .. } if sdp == "offer-sdp"));
    assert_eq!(out[1].0, vec![1]);
    assert!(matches!(&out[1].1, Event::CallAnswer { from: 2, sdp, .. } if sdp == "answer-sdp"));
    assert_eq!(out[2].0, vec![3]);
    assert!(matches!(&out[2].1, Event::CallIce { from: 1, candidate: c, .. } if *c == candidate));
    // To someone not in the call, from someone not in it, or to oneself: refused.
    assert_eq!(
        h.hub
            .call_relay(1, ROOM, 4, Relay::Offer("x".into()))
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        h.hub
            .call_relay(4, ROOM, 1, Relay::Offer("x".into()))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        h.hub
            .call_relay(1, ROOM, 1, Relay::Offer("x".into()))
            .unwrap_err()
            .code,
        ErrorCode::Invalid
    );
    assert_eq!(
        h.hub
            .call_relay(1, OTHER_ROOM, 8, Relay::Offer("x".into()))
            .unwrap_err()
            .code,
        ErrorCode::NotFound,
        "no call in that room"
    );
}

#[test]
fn leaving_tells_members_and_the_last_one_out_ends_the_call() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.drain();
    h.hub.call_leave(1, ROOM).unwrap();
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantLeft {
                user_id: 1,
                reason: LeaveReason::Left,
                ..
            }
        )),
        vec![1, 2, 3]
    );
    assert!(receivers_of(&out, |e| matches!(e, Event::CallEnded { .. })).is_empty());
    assert_eq!(
        h.hub.call_leave(1, ROOM).unwrap_err().code,
        ErrorCode::NotFound
    );
    h.hub.call_leave(2, ROOM).unwrap();
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallEnded { .. })),
        vec![1, 2, 3]
    );
    assert_eq!(h.hub.active_calls(), 0);
}

#[test]
fn decline_and_busy_reach_the_participants() {
    let mut h = Harness::new();
    h.online(&[1, 2, 3, 4]);
    assert_eq!(
        h.hub.call_refuse(3, ROOM, false).unwrap_err().code,
        ErrorCode::NotFound
    );
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.drain();
    h.hub.call_refuse(3, ROOM, false).unwrap();
    h.hub.call_refuse(4, ROOM, true).unwrap();
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallDeclined { user_id: 3, .. }
        )),
        vec![1, 2]
    );
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallBusy { user_id: 4, .. })),
        vec![1, 2]
    );
    assert_eq!(
        h.hub.call_refuse(1, ROOM, false).unwrap_err().code,
        ErrorCode::Invalid
    );
}

#[test]
fn dropped_socket_hangs_up_after_the_grace_period() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.drain();
    h.hub.disconnect(2, h.at(1.0));
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantDisconnected { user_id: 2, .. }
        )),
        vec![1]
    );
    assert_eq!(h.hub.poll_timeout(), Some(h.at(6.0)));
    let info = h.hub.call(ROOM).unwrap();
    assert!(
        !info
            .participants
            .iter()
            .find(|p| p.user_id == 2)
            .unwrap()
            .connected
    );
    // Relaying to a participant in grace is refused: there is no socket to deliver to.
    assert_eq!(
        h.hub
            .call_relay(1, ROOM, 2, Relay::Offer("x".into()))
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    h.hub.handle_timeout(h.at(5.9));
    assert!(h.drain().is_empty(), "still within grace");
    h.hub.handle_timeout(h.at(6.0));
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantLeft {
                user_id: 2,
                reason: LeaveReason::ConnectionLost,
                ..
            }
        )),
        vec![1]
    );
    assert_eq!(h.hub.call(ROOM).unwrap().participants.len(), 1);
    assert_eq!(h.hub.poll_timeout(), None);
}

#[test]
fn reconnecting_within_grace_keeps_the_call() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.hub.disconnect(2, h.at(1.0));
    h.drain();
    // Same session (2), new socket 202.
    h.hub.connect(202, 2, 2, h.at(3.0));
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallResumed { .. })),
        vec![202]
    );
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantReconnected { user_id: 2, .. }
        )),
        vec![1]
    );
    h.hub.handle_timeout(h.at(100.0));
    assert_eq!(h.hub.call(ROOM).unwrap().participants.len(), 2);
    h.hub
        .call_relay(1, ROOM, 2, Relay::Offer("restart".into()))
        .unwrap();
    assert_eq!(h.drain()[0].0, vec![202]);
}

#[test]
fn a_second_live_socket_of_the_session_does_not_take_the_call_over() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.drain();
    // Session 2 opens another socket while socket 2 is still in the call.
    h.hub.connect(202, 2, 2, h.at(1.0));
    let out = h.drain();
    assert!(
        receivers_of(&out, |e| matches!(e, Event::CallResumed { .. })).is_empty(),
        "{out:?}"
    );
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallOngoing { .. })),
        vec![202]
    );
    // The call still goes to the socket that joined it.
    h.hub
        .call_relay(1, ROOM, 2, Relay::Offer("offer".into()))
        .unwrap();
    assert_eq!(h.drain()[0].0, vec![2]);
    h.hub
        .call_relay(2, ROOM, 1, Relay::Answer("answer".into()))
        .unwrap();
    assert_eq!(h.drain()[0].0, vec![1]);
}

/// A client that reconnected before the server noticed its old socket die: when the old one
/// goes, the new one takes the call place back at once, with no grace period in between.
#[test]
fn the_old_socket_dropping_hands_the_call_to_the_sessions_new_one() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.hub.connect(202, 2, 2, h.at(1.0));
    h.drain();
    h.hub.disconnect(2, h.at(2.0));
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallResumed { .. })),
        vec![202]
    );
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantReconnected { user_id: 2, .. }
        )),
        vec![1]
    );
    assert!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantDisconnected { .. }
        ))
        .is_empty(),
        "{out:?}"
    );
    h.hub.handle_timeout(h.at(100.0));
    assert_eq!(h.hub.call(ROOM).unwrap().participants.len(), 2);
    h.hub
        .call_relay(1, ROOM, 2, Relay::Offer("restart".into()))
        .unwrap();
    assert_eq!(h.drain()[0].0, vec![202]);
}

#[test]
fn reconnecting_after_grace_only_sees_an_ongoing_call() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.hub.disconnect(2, h.at(1.0));
    h.hub.handle_timeout(h.at(7.0));
    h.drain();
    h.hub.connect(202, 2, 2, h.at(8.0));
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallOngoing { .. })),
        vec![202]
    );
    assert!(receivers_of(&out, |e| matches!(e, Event::CallResumed { .. })).is_empty());
}

#[test]
fn a_member_connecting_hears_of_the_ongoing_call() {
    let mut h = Harness::new();
    h.online(&[1]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.drain();
    h.hub.connect(3, 3, 3, h.t0);
    h.hub.connect(8, 8, 8, h.t0);
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(e, Event::CallOngoing { .. })),
        vec![3]
    );
}

#[test]
fn a_member_leaving_the_room_leaves_its_call() {
    let mut h = Harness::new();
    h.online(&[1, 2]);
    h.hub.call_join(1, ROOM, 0).unwrap();
    h.hub.call_join(2, ROOM, 0).unwrap();
    h.drain();
    h.hub.member_left(ROOM, 2, None);
    let out = h.drain();
    assert_eq!(
        receivers_of(&out, |e| matches!(
            e,
            Event::CallParticipantLeft {
                user_id: 2,
                reason: LeaveReason::RemovedFromRoom,
                ..
            }
        )),
        vec![1, 2]
    );
    assert_eq!(h.hub.call(ROOM).unwrap().participants.len(), 1);
}

#[test]
fn call_ids_are_distinct_per_call() {
    let mut h = Harness::new();
    h.online(&[1]);
    let first = h.hub.call_join(1, ROOM, 0).unwrap().call_id;
    h.hub.call_leave(1, ROOM).unwrap();
    let second = h.hub.call_join(1, ROOM, 0).unwrap().call_id;
    assert_ne!(first, second);
}
