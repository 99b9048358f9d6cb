//! The hub: who is connected, who is in which room, and every room's call — as a pure state
//! machine. It does no I/O and never reads the clock; callers pass the time in. Every input is a
//! method call; every consequence for other sockets is queued as an [`Output`] that the async
//! shell drains and delivers. This is what lets the tests drive it deterministically.

mod calls;
mod limiter;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parlor_protocol::{ErrorBody, ErrorCode, Event, Presence, RoomId, User, UserId};

use calls::Call;
pub use calls::Relay;
pub use limiter::TokenBucket;

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;
/// Identifies one login session (a row in the `sessions` table).
pub type SessionId = i64;

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_call_participants: usize,
    /// How long a participant whose socket dropped stays in the call.
    pub call_grace: Duration,
    /// Typing indicators: burst size and refill interval, per connection and room.
    pub typing_burst: u32,
    pub typing_refill: Duration,
    /// Prefix for call ids, so ids stay unique across server restarts.
    pub call_id_prefix: String,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_call_participants: 6,
            call_grace: Duration::from_secs(10),
            typing_burst: 3,
            typing_refill: Duration::from_secs(1),
            call_id_prefix: "call".into(),
        }
    }
}

/// Why the hub wants a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    SessionRevoked,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Deliver one event to several connections (serialized once by the shell).
    Send {
        to: Vec<ConnId>,
        event: Arc<Event>,
    },
    Close {
        conn: ConnId,
        reason: CloseReason,
    },
}

/// A refusal, mapped one-to-one onto a protocol error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    pub code: ErrorCode,
    pub message: String,
}

impl HubError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        HubError {
            code,
            message: message.into(),
        }
    }
}

impl From<HubError> for ErrorBody {
    fn from(e: HubError) -> Self {
        ErrorBody::new(e.code, e.message)
    }
}

#[derive(Debug, Clone)]
struct Conn {
    user: UserId,
    session: SessionId,
}

#[derive(Debug, Default)]
pub struct Hub {
    config: HubConfig,
    conns: HashMap<ConnId, Conn>,
    user_conns: HashMap<UserId, BTreeSet<ConnId>>,
    room_members: HashMap<RoomId, BTreeSet<UserId>>,
    user_rooms: HashMap<UserId, BTreeSet<RoomId>>,
    calls: BTreeMap<RoomId, Call>,
    typing: HashMap<(ConnId, RoomId), TokenBucket>,
    next_call: u64,
    outputs: VecDeque<Output>,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Hub {
            config,
            ..Hub::default()
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    // ----- outputs -----

    /// The next thing the shell must do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn send(&mut self, to: Vec<ConnId>, event: Event) {
        if !to.is_empty() {
            self.outputs.push_back(Output::Send {
                to,
                event: Arc::new(event),
            });
        }
    }

    fn conns_of_users<'a>(
        &self,
        users: impl IntoIterator<Item = &'a UserId>,
        except: Option<ConnId>,
    ) -> Vec<ConnId> {
        let mut out = Vec::new();
        for user in users {
            if let Some(conns) = self.user_conns.get(user) {
                out.extend(conns.iter().copied().filter(|c| Some(*c) != except));
            }
        }
        out
    }

    fn room_conns(&self, room: RoomId, except: Option<ConnId>) -> Vec<ConnId> {
        match self.room_members.get(&room) {
            Some(members) => self.conns_of_users(members, except),
            None => Vec::new(),
        }
    }

    /// Sends `event` to every connection of every member of `room`, except `except`.
    pub fn broadcast(&mut self, room: RoomId, event: Event, except: Option<ConnId>) {
        let to = self.room_conns(room, except);
        self.send(to, event);
    }

    /// Sends `event` to every connection of `user`, except `except`.
    pub fn send_to_user(&mut self, user: UserId, event: Event, except: Option<ConnId>) {
        let to = self.conns_of_users([&user], except);
        self.send(to, event);
    }

    // ----- rooms and membership -----

    /// Records a room and its members, e.g. when loading from the database at start.
    pub fn load_room(&mut self, room: RoomId, members: impl IntoIterator<Item = UserId>) {
        let set = self.room_members.entry(room).or_default();
        for user in members {
            set.insert(user);
            self.user_rooms.entry(user).or_default().insert(room);
        }
    }

    pub fn room_exists(&self, room: RoomId) -> bool {
        self.room_members.contains_key(&room)
    }

    pub fn is_member(&self, room: RoomId, user: UserId) -> bool {
        self.room_members
            .get(&room)
            .is_some_and(|members| members.contains(&user))
    }

    /// `not_found` for a room that does not exist, `not_member` for one the user is not in.
    pub fn check_member(&self, room: RoomId, user: UserId) -> Result<(), HubError> {
        match self.room_members.get(&room) {
            None => Err(HubError::new(
                ErrorCode::NotFound,
                format!("room {room} does not exist"),
            )),
            Some(members) if !members.contains(&user) => Err(HubError::new(
                ErrorCode::NotMember,
                format!("you are not a member of room {room}"),
            )),
            Some(_) => Ok(()),
        }
    }

    pub fn members(&self, room: RoomId) -> impl Iterator<Item = UserId> + '_ {
        self.room_members.get(&room).into_iter().flatten().copied()
    }

    /// A user joined or was added: tell the room (the new member's other devices included).
    pub fn member_joined(&mut self, room: RoomId, user: &User, except: Option<ConnId>) {
        self.load_room(room, [user.id]);
        self.broadcast(
            room,
            Event::MemberJoined {
                room_id: room,
                user: user.clone(),
            },
            except,
        );
    }

    /// A user left: they leave the room's call too, and everyone (the leaver's devices included)
    /// hears of it.
    pub fn member_left(&mut self, room: RoomId, user: UserId, except: Option<ConnId>) {
        self.remove_from_call(room, user, parlor_protocol::LeaveReason::RemovedFromRoom);
        let mut audience = self.room_conns(room, except);
        if let Some(members) = self.room_members.get_mut(&room) {
            members.remove(&user);
        }
        if let Some(rooms) = self.user_rooms.get_mut(&user) {
            rooms.remove(&room);
        }
        audience.sort_unstable();
        audience.dedup();
        self.send(
            audience,
            Event::MemberLeft {
                room_id: room,
                user_id: user,
            },
        );
    }

    /// A room was deleted: its call ends and its members are told.
    pub fn room_deleted(&mut self, room: RoomId, except: Option<ConnId>) {
        if let Some(call) = self.calls.remove(&room) {
            self.broadcast(
                room,
                Event::CallEnded {
                    room_id: room,
                    call_id: call.id,
                },
                except,
            );
        }
        self.broadcast(room, Event::RoomDeleted { room_id: room }, except);
        if let Some(members) = self.room_members.remove(&room) {
            for user in members {
                if let Some(rooms) = self.user_rooms.get_mut(&user) {
                    rooms.remove(&room);
                }
            }
        }
        self.typing.retain(|(_, r), _| *r != room);
    }

    // ----- connections and presence -----

    pub fn is_online(&self, user: UserId) -> bool {
        self.user_conns.get(&user).is_some_and(|c| !c.is_empty())
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Everyone who shares at least one room with `user`, `user` excluded.
    fn co_members(&self, user: UserId) -> BTreeSet<UserId> {
        let mut out = BTreeSet::new();
        for room in self.user_rooms.get(&user).into_iter().flatten() {
            out.extend(self.members(*room));
        }
        out.remove(&user);
        out
    }

    fn announce_presence(&mut self, user: UserId, presence: Presence) {
        let audience = self.co_members(user);
        let to = self.conns_of_users(&audience, None);
        self.send(
            to,
            Event::Presence {
                user_id: user,
                presence,
            },
        );
    }

    /// An authenticated socket. Announces presence if it is the user's first, resumes a call the
    /// same session was in (if still within its grace period), and tells it of ongoing calls.
    pub fn connect(&mut self, conn: ConnId, user: UserId, session: SessionId, now: Instant) {
        let first = !self.is_online(user);
        self.conns.insert(conn, Conn { user, session });
        self.user_conns.entry(user).or_default().insert(conn);
        if first {
            self.announce_presence(user, Presence::Online);
        }
        self.resume_or_announce_calls(conn, user, session, now);
    }

    /// A socket went away (closed, dropped or kicked). Its calls enter their grace period.
    pub fn disconnect(&mut self, conn: ConnId, now: Instant) {
        let Some(Conn { user, .. }) = self.conns.remove(&conn) else {
            return;
        };
        self.typing.retain(|(c, _), _| *c != conn);
        // Forget the socket before anything is announced, so nothing is addressed to it.
        let last = match self.user_conns.get_mut(&user) {
            Some(conns) => {
                conns.remove(&conn);
                conns.is_empty()
            }
            None => true,
        };
        if last {
            self.user_conns.remove(&user);
        }
        self.detach_from_calls(conn, user, now);
        if last {
            self.announce_presence(user, Presence::Offline);
        }
    }

    /// The sessions that have a socket open, each once.
    pub fn live_sessions(&self) -> Vec<SessionId> {
        let mut sessions: Vec<SessionId> = self.conns.values().map(|c| c.session).collect();
        sessions.sort_unstable();
        sessions.dedup();
        sessions
    }

    /// Sessions were revoked (logout, password change): their sockets are told and closed.
    pub fn revoke_sessions(&mut self, sessions: &[SessionId], except: Option<ConnId>) {
        let mut doomed: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| sessions.contains(&c.session) && Some(**id) != except)
            .map(|(id, _)| *id)
            .collect();
        doomed.sort_unstable();
        for conn in doomed {
            self.send(vec![conn], Event::SessionRevoked);
            self.outputs.push_back(Output::Close {
                conn,
                reason: CloseReason::SessionRevoked,
            });
        }
    }

    // ----- typing -----

    /// Relays a typing indicator to the room's other members; not stored. Rate-limited per
    /// connection and room with a small token bucket.
    pub fn typing(
        &mut self,
        conn: ConnId,
        room: RoomId,
        typing: bool,
        now: Instant,
    ) -> Result<(), HubError> {
        let user = self.conn_user(conn)?;
        self.check_member(room, user)?;
        let (burst, refill) = (self.config.typing_burst, self.config.typing_refill);
        let bucket = self
            .typing
            .entry((conn, room))
            .or_insert_with(|| TokenBucket::new(burst, refill, now));
        if !bucket.try_take(now) {
            return Err(HubError::new(
                ErrorCode::RateLimited,
                "typing indicators are sent too often",
            ));
        }
        let to = self
            .room_conns(room, None)
            .into_iter()
            .filter(|c| self.conns.get(c).is_some_and(|c| c.user != user))
            .collect();
        self.send(
            to,
            Event::Typing {
                room_id: room,
                user_id: user,
                typing,
            },
        );
        Ok(())
    }

    fn conn_user(&self, conn: ConnId) -> Result<UserId, HubError> {
        self.conns
            .get(&conn)
            .map(|c| c.user)
            .ok_or_else(|| HubError::new(ErrorCode::Unauthorized, "not authenticated"))
    }

    fn conn_session(&self, conn: ConnId) -> Result<(UserId, SessionId), HubError> {
        self.conns
            .get(&conn)
            .map(|c| (c.user, c.session))
            .ok_or_else(|| HubError::new(ErrorCode::Unauthorized, "not authenticated"))
    }
}
