//! Call signaling: one mesh call per room. Participants are users, each bound to the socket
//! (and login session) it joined from; a participant whose socket drops keeps its place for the
//! grace period, and the same session reconnecting within it takes the place back.
use std::collections::BTreeMap;
use std::time::Instant;

use parlor_protocol::{
    CallInfo, CallParticipant, ErrorCode, Event, IceCandidate, LeaveReason, Millis, RoomId, UserId,
};

use super::{ConnId, Hub, HubError, SessionId};

#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) id: String,
    started_at: Millis,
    participants: BTreeMap<UserId, Participant>,
}

#[derive(Debug, Clone)]
struct Participant {
    /// `None` while the socket is gone and `grace_until` runs.
    conn: Option<ConnId>,
    session: SessionId,
    joined_at: Millis,
    grace_until: Option<Instant>,
}

/// Signaling payloads relayed from one participant to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    Offer(String),
    Answer(String),
    Ice(IceCandidate),
}

impl Hub {
    fn call_info(&self, room: RoomId) -> Option<CallInfo> {
        let call = self.calls.get(&room)?;
        Some(CallInfo {
            room_id: room,
            call_id: call.id.clone(),
            started_at: call.started_at,
            participants: call
                .participants
                .iter()
                .map(|(user, p)| CallParticipant {
                    user_id: *user,
                    joined_at: p.joined_at,
                    connected: p.conn.is_some(),
                })
                .collect(),
            max_participants: self.config.max_call_participants as u32,
        })
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn call(&self, room: RoomId) -> Option<CallInfo> {
        self.call_info(room)
    }

    /// Joins (or starts) the room's call. Starting it rings every other member; joining tells
    /// them; the joiner gets the current participants in the returned [`CallInfo`].
    pub fn call_join(
        &mut self,
        conn: ConnId,
        room: RoomId,
        now_ms: Millis,
    ) -> Result<CallInfo, HubError> {
        let (user, session) = self.conn_session(conn)?;
        self.check_member(room, user)?;
        let max = self.config.max_call_participants;
        match self.calls.get_mut(&room) {
            None => {
                self.next_call += 1;
                let id = format!("{}-{}", self.config.call_id_prefix, self.next_call);
                let mut participants = BTreeMap::new();
                participants.insert(
                    user,
                    Participant {
                        conn: Some(conn),
                        session,
                        joined_at: now_ms,
                        grace_until: None,
                    },
                );
                self.calls.insert(
                    room,
                    Call {
                        id,
                        started_at: now_ms,
                        participants,
                    },
                );
                let info = self.call_info(room).expect("just inserted");
                self.broadcast(
                    room,
                    Event::CallStarted {
                        call: info.clone(),
                        by: user,
                    },
                    Some(conn),
                );
                Ok(info)
            }
            Some(call) => {
                if let Some(existing) = call.participants.get_mut(&user) {
                    if existing.session != session {
                        return Err(HubError::new(
                            ErrorCode::Conflict,
                            "you are already in this call from another device",
                        ));
                    }
                    // The same session again: idempotent, or a reconnect taking its place back.
                    let was_away = existing.conn != Some(conn);
                    existing.conn = Some(conn);
                    existing.grace_until = None;
                    let call_id = call.id.clone();
                    if was_away {
                        self.announce_reconnected(room, call_id, user, conn);
                    }
                    return Ok(self.call_info(room).expect("call exists"));
                }
                if call.participants.len() >= max {
                    return Err(HubError::new(
                        ErrorCode::CallFull,
                        format!("the call already has {max} participants"),
                    ));
                }
                call.participants.insert(
                    user,
                    Participant {
                        conn: Some(conn),
                        session,
                        joined_at: now_ms,
                        grace_until: None,
                    },
                );
                let call_id = call.id.clone();
                self.broadcast(
                    room,
                    Event::CallParticipantJoined {
                        room_id: room,
                        call_id,
                        user_id: user,
                    },
                    Some(conn),
                );
                Ok(self.call_info(room).expect("call exists"))
            }
        }
    }

    /// Hangs up. The last one out ends the call.
    pub fn call_leave(&mut self, conn: ConnId, room: RoomId) -> Result<(), HubError> {
        let user = self.conn_user(conn)?;
        self.check_member(room, user)?;
        let in_call = self
            .calls
            .get(&room)
            .and_then(|call| call.participants.get(&user))
            .is_some_and(|p| p.conn == Some(conn));
        if !in_call {
            return Err(HubError::new(
                ErrorCode::NotFound,
                "this connection is not in the room's call",
            ));
        }
        self.remove_from_call(room, user, LeaveReason::Left);
        Ok(())
    }

    /// A member who was rung says no (`busy == false`) or is in another call (`busy == true`);
    /// the participants are told.
    pub fn call_refuse(&mut self, conn: ConnId, room: RoomId, busy: bool) -> Result<(), HubError> {
        let user = self.conn_user(conn)?;
        self.check_member(room, user)?;
        let call = self
            .calls
            .get(&room)
            .ok_or_else(|| HubError::new(ErrorCode::NotFound, "there is no call in this room"))?;
        if call.participants.contains_key(&user) {
            return Err(HubError::new(
                ErrorCode::Invalid,
                "you are in this call; leave it instead",
            ));
        }
        let call_id = call.id.clone();
        let to: Vec<ConnId> = call.participants.values().filter_map(|p| p.conn).collect();
        let event = if busy {
            Event::CallBusy {
                room_id: room,
                call_id,
                user_id: user,
            }
        } else {
            Event::CallDeclined {
                room_id: room,
                call_id,
                user_id: user,
            }
        };
        self.send(to, event);
        Ok(())
    }

    /// Relays an offer, answer or ICE candidate to one named participant, and nobody else.
    pub fn call_relay(
        &mut self,
        conn: ConnId,
        room: RoomId,
        to: UserId,
        payload: Relay,
    ) -> Result<(), HubError> {
        let user = self.conn_user(conn)?;
        self.check_member(room, user)?;
        let call = self
            .calls
            .get(&room)
            .ok_or_else(|| HubError::new(ErrorCode::NotFound, "there is no call in this room"))?;
        if call.participants.get(&user).and_then(|p| p.conn) != Some(conn) {
            return Err(HubError::new(
                ErrorCode::Forbidden,
                "join the call before sending it signaling",
            ));
        }
        if to == user {
            return Err(HubError::new(ErrorCode::Invalid, "cannot signal yourself"));
        }
        let target = call
            .participants
            .get(&to)
            .and_then(|p| p.conn)
            .ok_or_else(|| {
                HubError::new(
                    ErrorCode::NotFound,
                    format!("user {to} is not connected to this call"),
                )
            })?;
        let call_id = call.id.clone();
        let event = match payload {
            Relay::Offer(sdp) => Event::CallOffer {
                room_id: room,
                call_id,
                from: user,
                sdp,
            },
            Relay::Answer(sdp) => Event::CallAnswer {
                room_id: room,
                call_id,
                from: user,
                sdp,
            },
            Relay::Ice(candidate) => Event::CallIce {
                room_id: room,
                call_id,
                from: user,
                candidate,
            },
        };
        self.send(vec![target], event);
        Ok(())
    }

    /// Removes `user` from the room's call, telling the members; ends an emptied call.
    pub(super) fn remove_from_call(&mut self, room: RoomId, user: UserId, reason: LeaveReason) {
        let Some(call) = self.calls.get_mut(&room) else {
            return;
        };
        if call.participants.remove(&user).is_none() {
            return;
        }
        let call_id = call.id.clone();
        let empty = call.participants.is_empty();
        self.broadcast(
            room,
            Event::CallParticipantLeft {
                room_id: room,
                call_id: call_id.clone(),
                user_id: user,
                reason,
            },
            None,
        );
        if empty {
            self.calls.remove(&room);
            self.broadcast(
                room,
                Event::CallEnded {
                    room_id: room,
                    call_id,
                },
                None,
            );
        }
    }

    /// A socket dropped: every call it was in starts the participant's grace period, unless
    /// the same session already has another socket (it reconnected before this one's drop was
    /// noticed), which then takes the place back at once.
    pub(super) fn detach_from_calls(&mut self, conn: ConnId, user: UserId, now: Instant) {
        let grace = self.config.call_grace;
        // The user's other sockets, newest last, with their sessions.
        let mut others: Vec<(ConnId, SessionId)> = self
            .user_conns
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|c| self.conns.get(c).map(|info| (*c, info.session)))
            .collect();
        others.sort_unstable();
        let mut detached = Vec::new();
        let mut taken_over = Vec::new();
        for (room, call) in self.calls.iter_mut() {
            if let Some(p) = call.participants.get_mut(&user) {
                if p.conn == Some(conn) {
                    let successor = others
                        .iter()
                        .rev()
                        .find(|(_, session)| *session == p.session)
                        .map(|(c, _)| *c);
                    match successor {
                        Some(successor) => {
                            p.conn = Some(successor);
                            taken_over.push((*room, successor));
                        }
                        None => {
                            p.conn = None;
                            p.grace_until = Some(now + grace);
                            detached.push((*room, call.id.clone()));
                        }
                    }
                }
            }
        }
        for (room, call_id) in detached {
            self.broadcast(
                room,
                Event::CallParticipantDisconnected {
                    room_id: room,
                    call_id,
                    user_id: user,
                },
                None,
            );
        }
        for (room, successor) in taken_over {
            self.announce_resumed(room, user, successor);
        }
    }

    /// Tells `conn` it holds `user`'s place in `room`'s call again, and the others that the
    /// participant is back.
    fn announce_resumed(&mut self, room: RoomId, user: UserId, conn: ConnId) {
        let Some(info) = self.call_info(room) else {
            return;
        };
        let call_id = info.call_id.clone();
        self.send(vec![conn], Event::CallResumed { call: info });
        self.announce_reconnected(room, call_id, user, conn);
    }

    /// Tells the room, except `conn`, that `user` is back in the call on `conn`.
    fn announce_reconnected(&mut self, room: RoomId, call_id: String, user: UserId, conn: ConnId) {
        self.broadcast(
            room,
            Event::CallParticipantReconnected {
                room_id: room,
                call_id,
                user_id: user,
            },
            Some(conn),
        );
    }

    /// A newly authenticated socket: the same session takes back any call place it holds;
    /// other calls in the user's rooms are announced as ongoing.
    pub(super) fn resume_or_announce_calls(
        &mut self,
        conn: ConnId,
        user: UserId,
        session: SessionId,
        now: Instant,
    ) {
        let rooms: Vec<RoomId> = self
            .user_rooms
            .get(&user)
            .into_iter()
            .flatten()
            .copied()
            .filter(|room| self.calls.contains_key(room))
            .collect();
        for room in rooms {
            let call = self.calls.get_mut(&room).expect("filtered above");
            let resumed = match call.participants.get_mut(&user) {
                // Only a place whose socket is gone: a second live socket of the same session
                // must not take a call over from the one still in it.
                Some(p)
                    if p.session == session
                        && p.conn.is_none()
                        && p.grace_until.is_some_and(|t| now < t) =>
                {
                    p.conn = Some(conn);
                    p.grace_until = None;
                    true
                }
                _ => false,
            };
            if resumed {
                self.announce_resumed(room, user, conn);
            } else {
                let info = self.call_info(room).expect("call exists");
                self.send(vec![conn], Event::CallOngoing { call: info });
            }
        }
    }

    /// The earliest moment [`Hub::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .flat_map(|c| c.participants.values())
            .filter_map(|p| p.grace_until)
            .min()
    }

    /// Hangs up participants whose grace period ran out.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<(RoomId, UserId)> = self
            .calls
            .iter()
            .flat_map(|(room, call)| {
                call.participants
                    .iter()
                    .filter(|(_, p)| p.grace_until.is_some_and(|t| t <= now))
                    .map(|(user, _)| (*room, *user))
            })
            .collect();
        for (room, user) in expired {
            self.remove_from_call(room, user, LeaveReason::ConnectionLost);
        }
    }
}
