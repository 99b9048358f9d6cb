//! A room call on the client, as a pure state machine: inputs from the server and from the
//! peer connections go in, actions come out for the async shell to carry out. It decides who
//! offers to whom (the lower user id, always, so two sides never offer at once), holds remote
//! ICE candidates until a peer's remote description is set, answers a ring with `busy` when
//! already in a call, and restarts ICE on a failed link (the offerer does).
//!
//! Renegotiation (a track added mid-call) may start on either side. When both sides offer at
//! once, the lower id (the first offerer) keeps its offer and ignores the other; the higher id
//! rolls its own offer back, answers, then offers again — WebRTC's "perfect negotiation".
use std::collections::BTreeMap;

use parlor_protocol::{CallInfo, IceCandidate, RoomId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    Idle,
    /// Someone started a call in `room`; waiting for accept or decline.
    Ringing {
        room: RoomId,
        call_id: String,
        from: UserId,
    },
    /// Asked the server to join `room`'s call.
    Joining {
        room: RoomId,
    },
    InCall {
        room: RoomId,
        call_id: String,
    },
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    StartCall {
        room: RoomId,
    },
    Ring {
        call: CallInfo,
        by: UserId,
    },
    Accept,
    Decline,
    Joined {
        call: CallInfo,
    },
    ParticipantJoined {
        room: RoomId,
        user: UserId,
    },
    ParticipantLeft {
        room: RoomId,
        user: UserId,
    },
    CallEnded {
        room: RoomId,
    },
    Offer {
        from: UserId,
        sdp: String,
    },
    Answer {
        from: UserId,
        sdp: String,
    },
    Candidate {
        from: UserId,
        candidate: IceCandidate,
    },
    /// The peer connection to `user` has applied the remote description.
    RemoteDescriptionSet {
        user: UserId,
    },
    LinkConnected {
        user: UserId,
    },
    LinkFailed {
        user: UserId,
    },
    /// A local track was added to the links: they need a new offer.
    TracksChanged,
    /// The link to `user` needs a new offer (we answered an offer that had no room for one of
    /// our tracks, so this side must offer it).
    NegotiationNeeded {
        user: UserId,
    },
    Leave,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    JoinCall {
        room: RoomId,
    },
    LeaveCall {
        room: RoomId,
    },
    DeclineCall {
        room: RoomId,
    },
    BusyCall {
        room: RoomId,
    },
    /// Show the incoming call to the user.
    Ring {
        room: RoomId,
        from: UserId,
    },
    CreateLink {
        user: UserId,
    },
    CloseLink {
        user: UserId,
    },
    /// Create an offer for `user` (an ICE restart when `restart_ice`) and send it.
    Offer {
        user: UserId,
        restart_ice: bool,
    },
    /// Apply the remote offer and send back an answer; first roll back our own unanswered
    /// offer when `rollback` (we lost an offer collision).
    Answer {
        user: UserId,
        sdp: String,
        rollback: bool,
    },
    ApplyAnswer {
        user: UserId,
        sdp: String,
    },
    ApplyCandidate {
        user: UserId,
        candidate: IceCandidate,
    },
}

impl Action {
    /// The participant whose link this action works on, if it is about one link.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Action::CreateLink { user }
            | Action::CloseLink { user }
            | Action::Offer { user, .. }
            | Action::Answer { user, .. }
            | Action::ApplyAnswer { user, .. }
            | Action::ApplyCandidate { user, .. } => Some(*user),
            Action::Ring { from, .. } => Some(*from),
            Action::JoinCall { .. }
            | Action::LeaveCall { .. }
            | Action::DeclineCall { .. }
            | Action::BusyCall { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    /// This side makes the first offer (and the ICE restarts), and wins offer collisions.
    offerer: bool,
    /// An offer of ours is waiting for its answer.
    offer_pending: bool,
    /// Offer again once the pending offer is answered (tracks changed meanwhile).
    offer_again: bool,
    remote_description_set: bool,
    held_candidates: Vec<IceCandidate>,
    connected: bool,
}

#[derive(Debug)]
pub struct CallMachine {
    me: UserId,
    state: CallState,
    links: BTreeMap<UserId, Link>,
}

/// Most candidates held for one link before its remote description (a bound on memory).
const MAX_HELD_CANDIDATES: usize = 64;

impl CallMachine {
    pub fn new(me: UserId) -> Self {
        CallMachine {
            me,
            state: CallState::Idle,
            links: BTreeMap::new(),
        }
    }

    pub fn state(&self) -> &CallState {
        &self.state
    }

    /// Users this side has a link to.
    pub fn linked(&self) -> Vec<UserId> {
        self.links.keys().copied().collect()
    }

    fn room(&self) -> Option<RoomId> {
        match &self.state {
            CallState::InCall { room, .. } | CallState::Joining { room } => Some(*room),
            CallState::Ringing { room, .. } => Some(*room),
            CallState::Idle => None,
        }
    }

    fn in_call_or_joining(&self) -> bool {
        matches!(
            self.state,
            CallState::InCall { .. } | CallState::Joining { .. }
        )
    }

    fn link(&mut self, user: UserId, actions: &mut Vec<Action>) {
        if user == self.me || self.links.contains_key(&user) {
            return;
        }
        let offerer = self.me < user;
        self.links.insert(
            user,
            Link {
                offerer,
                offer_pending: offerer,
                offer_again: false,
                remote_description_set: false,
                held_candidates: Vec::new(),
                connected: false,
            },
        );
        actions.push(Action::CreateLink { user });
        if offerer {
            actions.push(Action::Offer {
                user,
                restart_ice: false,
            });
        }
    }

    /// Offers now, or right after the answer to the offer already out.
    fn offer_when_stable(user: UserId, link: &mut Link, actions: &mut Vec<Action>) {
        if link.offer_pending {
            link.offer_again = true;
        } else {
            link.offer_pending = true;
            actions.push(Action::Offer {
                user,
                restart_ice: false,
            });
        }
    }

    fn close_all(&mut self, actions: &mut Vec<Action>) {
        for user in std::mem::take(&mut self.links).into_keys() {
            actions.push(Action::CloseLink { user });
        }
    }

    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::StartCall { room } => {
                if self.state == CallState::Idle {
                    self.state = CallState::Joining { room };
                    actions.push(Action::JoinCall { room });
                }
            }
            Input::Ring { call, by } => {
                if self.in_call_or_joining() {
                    if self.room() != Some(call.room_id) {
                        actions.push(Action::BusyCall { room: call.room_id });
                    }
                } else if self.state == CallState::Idle {
                    self.state = CallState::Ringing {
                        room: call.room_id,
                        call_id: call.call_id,
                        from: by,
                    };
                    actions.push(Action::Ring {
                        room: call.room_id,
                        from: by,
                    });
                }
            }
            Input::Accept => {
                if let CallState::Ringing { room, .. } = self.state {
                    self.state = CallState::Joining { room };
                    actions.push(Action::JoinCall { room });
                }
            }
            Input::Decline => {
                if let CallState::Ringing { room, .. } = self.state {
                    self.state = CallState::Idle;
                    actions.push(Action::DeclineCall { room });
                }
            }
            Input::Joined { call } => {
                if matches!(self.state, CallState::Joining { room } if room == call.room_id) {
                    self.state = CallState::InCall {
                        room: call.room_id,
                        call_id: call.call_id.clone(),
                    };
                    for participant in &call.participants {
                        self.link(participant.user_id, &mut actions);
                    }
                }
            }
            Input::ParticipantJoined { room, user } => {
                if matches!(&self.state, CallState::InCall { room: r, .. } if *r == room) {
                    self.link(user, &mut actions);
                }
            }
            Input::ParticipantLeft { room, user } => {
                if self.room() == Some(room) && self.links.remove(&user).is_some() {
                    actions.push(Action::CloseLink { user });
                }
            }
            Input::CallEnded { room } => {
                if self.room() == Some(room) {
                    self.close_all(&mut actions);
                    self.state = CallState::Idle;
                }
            }
            Input::Offer { from, sdp } => {
                if let CallState::InCall { .. } = self.state {
                    // An offer can overtake the "joined" notice: link first.
                    if !self.links.contains_key(&from) {
                        self.link(from, &mut actions);
                    }
                    if let Some(link) = self.links.get_mut(&from) {
                        if !link.offer_pending {
                            actions.push(Action::Answer {
                                user: from,
                                sdp,
                                rollback: false,
                            });
                        } else if !link.offerer {
                            // A collision we lose: take theirs, then send ours again.
                            link.offer_pending = true;
                            actions.push(Action::Answer {
                                user: from,
                                sdp,
                                rollback: true,
                            });
                            actions.push(Action::Offer {
                                user: from,
                                restart_ice: false,
                            });
                        }
                        // A collision we win: ours stands, theirs is ignored.
                    }
                }
            }
            Input::Answer { from, sdp } => {
                if let Some(link) = self.links.get_mut(&from) {
                    if link.offer_pending {
                        link.offer_pending = false;
                        actions.push(Action::ApplyAnswer { user: from, sdp });
                        if std::mem::take(&mut link.offer_again) {
                            link.offer_pending = true;
                            actions.push(Action::Offer {
                                user: from,
                                restart_ice: false,
                            });
                        }
                    }
                }
            }
            Input::Candidate { from, candidate } => {
                if let Some(link) = self.links.get_mut(&from) {
                    if link.remote_description_set {
                        actions.push(Action::ApplyCandidate {
                            user: from,
                            candidate,
                        });
                    } else if link.held_candidates.len() < MAX_HELD_CANDIDATES {
                        link.held_candidates.push(candidate);
                    }
                }
            }
            Input::RemoteDescriptionSet { user } => {
                if let Some(link) = self.links.get_mut(&user) {
                    link.remote_description_set = true;
                    for candidate in link.held_candidates.drain(..) {
                        actions.push(Action::ApplyCandidate { user, candidate });
                    }
                }
            }
            Input::LinkConnected { user } => {
                if let Some(link) = self.links.get_mut(&user) {
                    link.connected = true;
                }
            }
            Input::LinkFailed { user } => {
                if let Some(link) = self.links.get_mut(&user) {
                    link.connected = false;
                    if link.offerer {
                        link.offer_pending = true;
                        actions.push(Action::Offer {
                            user,
                            restart_ice: true,
                        });
                    }
                }
            }
            Input::TracksChanged => {
                // Whoever changed tracks offers, on every link.
                for (user, link) in self.links.iter_mut() {
                    Self::offer_when_stable(*user, link, &mut actions);
                }
            }
            Input::NegotiationNeeded { user } => {
                if let Some(link) = self.links.get_mut(&user) {
                    Self::offer_when_stable(user, link, &mut actions);
                }
            }
            Input::Leave => {
                if let Some(room) = self.room() {
                    let was_ringing = matches!(self.state, CallState::Ringing { .. });
                    self.close_all(&mut actions);
                    self.state = CallState::Idle;
                    actions.push(if was_ringing {
                        Action::DeclineCall { room }
                    } else {
                        Action::LeaveCall { room }
                    });
                }
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parlor_protocol::CallParticipant;

    fn call(room: RoomId, users: &[UserId]) -> CallInfo {
        CallInfo {
            room_id: room,
            call_id: "c-1".into(),
            started_at: 0,
            participants: users
                .iter()
                .map(|&u| CallParticipant {
                    user_id: u,
                    joined_at: 0,
                    connected: true,
                })
                .collect(),
            max_participants: 6,
        }
    }

    fn candidate(n: u8) -> IceCandidate {
        IceCandidate {
            candidate: format!(
                "candidate:{n} 1 udp 1 127.0.0.1 {} typ host",
                5000 + n as u16
            ),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        }
    }

    #[test]
    fn joining_links_to_everyone_and_offers_only_to_higher_ids() {
        let mut me = CallMachine::new(5);
        assert_eq!(
            me.handle(Input::StartCall { room: 1 }),
            vec![Action::JoinCall { room: 1 }]
        );
        let actions = me.handle(Input::Joined {
            call: call(1, &[3, 5, 8]),
        });
        assert_eq!(
            actions,
            vec![
                Action::CreateLink { user: 3 },
                Action::CreateLink { user: 8 },
                Action::Offer {
                    user: 8,
                    restart_ice: false
                },
            ]
        );
        assert_eq!(
            me.state(),
            &CallState::InCall {
                room: 1,
                call_id: "c-1".into()
            }
        );
        // A late joiner with a lower id offers to us; a higher one gets our offer.
        assert_eq!(
            me.handle(Input::ParticipantJoined { room: 1, user: 2 }),
            vec![Action::CreateLink { user: 2 }]
        );
        assert_eq!(
            me.handle(Input::ParticipantJoined { room: 1, user: 9 }),
            vec![
                Action::CreateLink { user: 9 },
                Action::Offer {
                    user: 9,
                    restart_ice: false
                }
            ]
        );
        assert_eq!(
            me.handle(Input::ParticipantJoined { room: 1, user: 9 }),
            vec![],
            "no duplicate link"
        );
    }

    #[test]
    fn offers_are_answered_only_where_the_other_side_is_the_offerer() {
        let mut me = CallMachine::new(5);
        me.handle(Input::StartCall { room: 1 });
        me.handle(Input::Joined {
            call: call(1, &[3, 5, 8]),
        });
        assert_eq!(
            me.handle(Input::Offer {
                from: 3,
                sdp: "o".into()
            }),
            vec![Action::Answer {
                user: 3,
                sdp: "o".into(),
                rollback: false
            }]
        );
        assert_eq!(
            me.handle(Input::Offer {
                from: 8,
                sdp: "glare".into()
            }),
            vec![],
            "8 is ours to offer to"
        );
        assert_eq!(
            me.handle(Input::Answer {
                from: 8,
                sdp: "a".into()
            }),
            vec![Action::ApplyAnswer {
                user: 8,
                sdp: "a".into()
            }]
        );
        assert_eq!(
            me.handle(Input::Answer {
                from: 3,
                sdp: "stray".into()
            }),
            vec![]
        );
        // An offer that overtakes the participant-joined notice still links and answers.
        assert_eq!(
            me.handle(Input::Offer {
                from: 1,
                sdp: "early".into()
            }),
            vec![
                Action::CreateLink { user: 1 },
                Action::Answer {
                    user: 1,
                    sdp: "early".into(),
                    rollback: false
                }
            ]
        );
    }

    #[test]
    fn candidates_wait_for_the_remote_description() {
        let mut me = CallMachine::new(5);
        me.handle(Input::StartCall { room: 1 });
        me.handle(Input::Joined {
            call: call(1, &[3, 5]),
        });
        assert_eq!(
            me.handle(Input::Candidate {
                from: 3,
                candidate: candidate(1)
            }),
            vec![]
        );
        assert_eq!(
            me.handle(Input::Candidate {
                from: 3,
                candidate: candidate(2)
            }),
            vec![]
        );
        assert_eq!(
            me.handle(Input::RemoteDescriptionSet { user: 3 }),
            vec![
                Action::ApplyCandidate {
                    user: 3,
                    candidate: candidate(1)
                },
                Action::ApplyCandidate {
                    user: 3,
                    candidate: candidate(2)
                },
            ]
        );
        assert_eq!(
            me.handle(Input::Candidate {
                from: 3,
                candidate: candidate(3)
            }),
            vec![Action::ApplyCandidate {
                user: 3,
                candidate: candidate(3)
            }]
        );
        assert_eq!(
            me.handle(Input::Candidate {
                from: 42,
                candidate: candidate(4)
            }),
            vec![],
            "no link, ignored"
        );
    }

    #[test]
    fn a_ring_is_shown_then_accepted_or_declined() {
        let mut me = CallMachine::new(5);
        assert_eq!(
            me.handle(Input::Ring {
                call: call(1, &[3]),
                by: 3
            }),
            vec![Action::Ring { room: 1, from: 3 }]
        );
        assert_eq!(
            me.handle(Input::Decline),
            vec![Action::DeclineCall { room: 1 }]
        );
        assert_eq!(me.state(), &CallState::Idle);
        me.handle(Input::Ring {
            call: call(1, &[3]),
            by: 3,
        });
        assert_eq!(me.handle(Input::Accept), vec![Action::JoinCall { room: 1 }]);
        assert_eq!(me.state(), &CallState::Joining { room: 1 });
    }

    #[test]
    fn a_ring_while_in_another_call_is_answered_busy() {
        let mut me = CallMachine::new(5);
        me.handle(Input::StartCall { room: 1 });
        me.handle(Input::Joined {
            call: call(1, &[5]),
        });
        assert_eq!(
            me.handle(Input::Ring {
                call: call(2, &[7]),
                by: 7
            }),
            vec![Action::BusyCall { room: 2 }]
        );
        assert_eq!(
            me.state(),
            &CallState::InCall {
                room: 1,
                call_id: "c-1".into()
            },
            "still in the first call"
        );
    }

    #[test]
    fn a_failed_link_is_restarted_by_its_offerer() {
        let mut me = CallMachine::new(5);
        me.handle(Input::StartCall { room: 1 });
        me.handle(Input::Joined {
            call: call(1, &[3, 5, 8]),
        });
        assert_eq!(
            me.handle(Input::LinkFailed { user: 8 }),
            vec![Action::Offer {
                user: 8,
                restart_ice: true
            }]
        );
        assert_eq!(
            me.handle(Input::LinkFailed { user: 3 }),
            vec![],
            "3 restarts its side"
        );
        assert_eq!(
            me.handle(Input::TracksChanged),
            vec![Action::Offer {
                user: 3,
                restart_ice: false
            }],
            "8 still owes the answer to the restart: it is offered to again after it"
        );
        assert_eq!(
            me.handle(Input::Answer {
                from: 8,
                sdp: "a".into()
            }),
            vec![
                Action::ApplyAnswer {
                    user: 8,
                    sdp: "a".into()
                },
                Action::Offer {
                    user: 8,
                    restart_ice: false
                }
            ]
        );
    }

    #[test]
    fn either_side_renegotiates_and_offer_collisions_resolve_by_id() {
        // 5 links to 3 (3 offers) and 8 (5 offers); both initial offers are answered.
        let mut me = CallMachine::new(5);
        me.handle(Input::StartCall { room: 1 });
        me.handle(Input::Joined {
            call: call(1, &[3, 5, 8]),
        });
        me.handle(Input::Offer {
            from: 3,
            sdp: "o3".into(),
        });
        me.handle(Input::Answer {
            from: 8,
            sdp: "a8".into(),
        });
        // A camera turned on here: offer on both links, also to 3 who made the first offer.
        assert_eq!(
            me.handle(Input::TracksChanged),
            vec![
                Action::Offer {
                    user: 3,
                    restart_ice: false
                },
                Action::Offer {
                    user: 8,
                    restart_ice: false
                }
            ]
        );
        // 3 offered at the same moment and wins (lower id): roll back, answer, offer again.
        assert_eq!(
            me.handle(Input::Offer {
                from: 3,
                sdp: "o3b".into()
            }),
            vec![
                Action::Answer {
                    user: 3,
                    sdp: "o3b".into(),
                    rollback: true
                },
                Action::Offer {
                    user: 3,
                    restart_ice: false
                }
            ]
        );
        // 8 offered at the same moment too and loses: its offer is ignored; it answers ours.
        assert_eq!(
            me.handle(Input::Offer {
                from: 8,
                sdp: "o8".into()
            }),
            vec![]
        );
        // A renegotiation started by 8 later, with nothing of ours pending, is answered.
        me.handle(Input::Answer {
            from: 8,
            sdp: "a8b".into(),
        });
        assert_eq!(
            me.handle(Input::Offer {
                from: 8,
                sdp: "o8b".into()
            }),
            vec![Action::Answer {
                user: 8,
                sdp: "o8b".into(),
                rollback: false
            }]
        );
        assert_eq!(
            me.handle(Input::Answer {
                from: 8,
                sdp: "stale".into()
            }),
            vec![],
            "an answer to nothing is dropped"
        );
        // An answered offer without room for our camera: we offer it ourselves.
        assert_eq!(
            me.handle(Input::NegotiationNeeded { user: 8 }),
            vec![Action::Offer {
                user: 8,
                restart_ice: false
            }]
        );
        assert_eq!(
            me.handle(Input::NegotiationNeeded { user: 8 }),
            vec![],
            "one offer at a time"
        );
    }

    #[test]
    fn leaving_and_the_end_of_the_call_close_every_link() {
        let mut me = CallMachine::new(5);
        me.handle(Input::StartCall { room: 1 });
        me.handle(Input::Joined {
            call: call(1, &[3, 5, 8]),
        });
        assert_eq!(
            me.handle(Input::ParticipantLeft { room: 1, user: 3 }),
            vec![Action::CloseLink { user: 3 }]
        );
        assert_eq!(me.linked(), vec![8]);
        assert_eq!(
            me.handle(Input::Leave),
            vec![Action::CloseLink { user: 8 }, Action::LeaveCall { room: 1 }]
        );
        assert_eq!(me.state(), &CallState::Idle);
        me.handle(Input::StartCall { room: 1 });
        me.handle(Input::Joined {
            call: call(1, &[3, 5]),
        });
        assert_eq!(
            me.handle(Input::CallEnded { room: 1 }),
            vec![Action::CloseLink { user: 3 }]
        );
        assert_eq!(me.state(), &CallState::Idle);
    }
}
