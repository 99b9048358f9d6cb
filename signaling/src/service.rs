//! What each request does: validation, permission checks, storage, then fan-out through the hub.
//! Socket handling lives in `connection.rs`; this module never touches a socket.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use parlor_protocol::{
    encode_event, ErrorCode, Event, IceServer, Presence, Reply, Request, Role, RoomKind, User,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Registration, Settings};
use crate::credentials;
use crate::error::{Error, Result};
use crate::hub::TokenBucket;
use crate::hub::{CloseReason, ConnId, Hub, HubConfig, Output, Relay, SessionId};
use crate::metrics::Metrics;
use crate::store::{self, now_millis, Store};
use crate::throttle::SignInThrottle;
use crate::validate;

/// What a connection's writer task is asked to send.
#[derive(Debug, Clone)]
pub enum Outbound {
    Text(Utf8Bytes),
    Close(u16, &'static str),
}

/// A live socket as the switchboard sees it.
pub struct ConnHandle {
    pub outbox: mpsc::Sender<Outbound>,
    /// Cancelled when the socket must go now (it stopped reading, or its session was revoked).
    pub kick: CancellationToken,
    pub kick_reason: Arc<Mutex<Option<(u16, &'static str)>>>,
}

/// The hub plus the sockets its outputs go to, under one lock so that events leave in the order
/// the hub produced them.
pub struct Switchboard {
    pub hub: Hub,
    conns: HashMap<ConnId, ConnHandle>,
}

pub const CLOSE_SESSION_REVOKED: (u16, &str) = (4001, "session revoked");

/// How far an open socket's session expiry may fall behind "now + TTL" before it is moved
/// (at most a tenth of the TTL).
pub const SESSION_SLIDE_STEP: std::time::Duration = std::time::Duration::from_secs(3600);
/// The most session expiries one check moves.
pub const SESSION_SLIDES_PER_CHECK: u32 = 500;
pub const CLOSE_TOO_SLOW: (u16, &str) = (4009, "not reading events fast enough");

impl Switchboard {
    /// Delivers everything the hub queued. A socket whose outbox is full is closed rather than
    /// allowed to grow server memory without bound.
    fn pump(&mut self, metrics: &Metrics) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send { to, event } => {
                    let text = Utf8Bytes::from(encode_event(&event));
                    for conn in to {
                        let Some(handle) = self.conns.get(&conn) else {
                            continue;
                        };
                        match handle.outbox.try_send(Outbound::Text(text.clone())) {
                            Ok(()) => {
                                metrics.events_sent.fetch_add(1, Relaxed);
                            }
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                metrics.slow_consumers_closed.fetch_add(1, Relaxed);
                                kick(handle, CLOSE_TOO_SLOW);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {}
                        }
                    }
                }
                Output::Close {
                    conn,
                    reason: CloseReason::SessionRevoked,
                } => {
                    if let Some(handle) = self.conns.get(&conn) {
                        // Queued behind the session_revoked event so that it is delivered first.
                        let close =
                            Outbound::Close(CLOSE_SESSION_REVOKED.0, CLOSE_SESSION_REVOKED.1);
                        if handle.outbox.try_send(close).is_err() {
                            kick(handle, CLOSE_SESSION_REVOKED);
                        }
                    }
                }
            }
        }
    }
}

fn kick(handle: &ConnHandle, reason: (u16, &'static str)) {
    let mut slot = handle.kick_reason.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(reason);
    handle.kick.cancel();
}

/// One open socket counted against its address; see [`Service::admit_socket`].
pub struct SocketSlot {
    service: Arc<Service>,
    from: std::net::IpAddr,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self
            .service
            .open_sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.from) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.from);
            }
        }
    }
}

/// The authenticated identity of a socket.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    pub session: SessionId,
    /// For a guest, the one room they were let into.
    pub guest_room: Option<parlor_protocol::RoomId>,
}

/// Per-socket state the handlers read and change.
#[derive(Debug)]
pub struct ConnState {
    pub id: ConnId,
    /// The client's address, for the sign-in throttles.
    pub from: std::net::IpAddr,
    pub identity: Option<Identity>,
}

/// What the connection does after sending the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Continue,
    Close(u16, &'static str),
}

pub struct Service {
    pub settings: Settings,
    pub store: Store,
    pub metrics: Metrics,
    switchboard: Mutex<Switchboard>,
    next_conn: AtomicU64,
    /// Password hashing is CPU- and memory-heavy (argon2id: 19 MiB each) and reachable before
    /// authentication, so at most one hash per core runs at a time; the rest queue.
    hashing: tokio::sync::Semaphore,
    /// The request rate of each signed-in user, across all their sockets: a per-socket bucket
    /// alone starts full again on every reconnect (57 reconnects in 3 s stored 5,663 messages).
    user_rates: Mutex<HashMap<parlor_protocol::UserId, TokenBucket>>,
    throttle: Mutex<SignInThrottle>,
    /// Open sockets by client address, for `sockets_per_address`.
    open_sockets: Mutex<HashMap<std::net::IpAddr, u32>>,
    /// Woken when the hub's next timeout moves, so the timer task sleeps until exactly then.
    timeout_changed: tokio::sync::Notify,
}

impl Service {
    pub async fn new(settings: Settings, store: Store) -> Result<Service> {
        let mut prefix = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut prefix);
        let mut hub = Hub::new(HubConfig {
            max_call_participants: settings.max_call_participants,
            call_grace: settings.call_grace,
            call_id_prefix: prefix.iter().map(|b| format!("{b:02x}")).collect(),
            ..HubConfig::default()
        });
        for room in store::all_room_ids(store.reader()).await? {
            hub.load_room(room, []);
        }
        let mut members: HashMap<i64, Vec<i64>> = HashMap::new();
        for (room, user) in store::all_memberships(store.reader()).await? {
            members.entry(room).or_default().push(user);
        }
        for (room, users) in members {
            hub.load_room(room, users);
        }
        Ok(Service {
            store,
            metrics: Metrics::default(),
            switchboard: Mutex::new(Switchboard {
                hub,
                conns: HashMap::new(),
            }),
            next_conn: AtomicU64::new(1),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            user_rates: Mutex::default(),
            open_sockets: Mutex::default(),
            throttle: Mutex::new(SignInThrottle::new(settings.throttle)),
            timeout_changed: tokio::sync::Notify::new(),
            settings,
        })
    }

    /// Takes one request from `user`'s bucket (the same size and rate as a socket's).
    pub fn user_may_request(&self, user: parlor_protocol::UserId, now: Instant) -> bool {
        let (burst, refill) = self.request_rate();
        self.user_rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(user)
            .or_insert_with(|| TokenBucket::new(burst, refill, now))
            .try_take(now)
    }

    /// Takes one of `from`'s sockets, or `None` when it holds `sockets_per_address` already:
    /// without a bound one address could hold every descriptor the server has. The slot is
    /// given back when dropped.
    pub fn admit_socket(self: &Arc<Self>, from: std::net::IpAddr) -> Option<SocketSlot> {
        let mut open = self.open_sockets.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(from).or_insert(0);
        if *count >= self.settings.sockets_per_address {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            service: self.clone(),
            from,
        })
    }

    /// A bucket's burst and the time to refill one token.
    pub fn request_rate(&self) -> (u32, std::time::Duration) {
        (
            self.settings.rate_burst,
            std::time::Duration::from_secs_f64(1.0 / self.settings.rate_per_sec.max(1) as f64),
        )
    }

    /// Runs `f` on the hub and delivers what it produced, all under the switchboard lock.
    pub fn with_hub<T>(&self, f: impl FnOnce(&mut Hub) -> T) -> T {
        self.with_switchboard(|sb| f(&mut sb.hub))
    }

    /// Every change to the hub goes through here: it delivers the outputs and wakes the timer
    /// task when the hub's next timeout moved.
    fn with_switchboard<T>(&self, f: impl FnOnce(&mut Switchboard) -> T) -> T {
        let mut sb = self.switchboard.lock().unwrap_or_else(|p| p.into_inner());
        let before = sb.hub.poll_timeout();
        let result = f(&mut sb);
        sb.pump(&self.metrics);
        if sb.hub.poll_timeout() != before {
            self.timeout_changed.notify_one();
        }
        result
    }

    /// When the hub next has a timer to run, if ever, and a signal that this may have changed.
    pub fn hub_timeout(&self) -> (Option<Instant>, &tokio::sync::Notify) {
        let sb = self.switchboard.lock().unwrap_or_else(|p| p.into_inner());
        (sb.hub.poll_timeout(), &self.timeout_changed)
    }

    pub fn register(&self, handle: ConnHandle) -> ConnId {
        let id = self.next_conn.fetch_add(1, Relaxed);
        let mut sb = self.switchboard.lock().unwrap_or_else(|p| p.into_inner());
        sb.conns.insert(id, handle);
        id
    }

    /// Forgets a socket; its calls enter their grace period and presence may go offline.
    pub fn unregister(&self, conn: ConnId) {
        self.with_switchboard(|sb| {
            sb.conns.remove(&conn);
            sb.hub.disconnect(conn, Instant::now());
        });
    }

    /// Closes the sockets whose session is no longer valid in the database (expired, revoked or
    /// its account disabled, by this process or by `parlor-server admin` beside it), and slides
    /// the expiry of the rest, since an open socket is a use. Called by a timer task every
    /// `session_check`.
    ///
    /// The check is a read. Sliding writes, under the write lock every message waits for, and
    /// rewriting every live session on every check was a 15,000-row `UPDATE` every 10 s at
    /// 15,000 sockets. An expiry weeks away only needs moving once it has fallen
    /// [`SESSION_SLIDE_STEP`] behind, and a bounded number of them per check keeps each write
    /// short.
    pub async fn check_sessions(&self) -> Result<()> {
        let live = self.with_hub(|hub| hub.live_sessions());
        if live.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let valid = store::valid_sessions(self.store.reader(), &live, now).await?;
        let expiry = now + self.settings.session_ttl.as_millis() as i64;
        let step = SESSION_SLIDE_STEP.min(self.settings.session_ttl / 10);
        {
            let mut w = self.store.writer().await;
            let stale_before = expiry - step.as_millis() as i64;
            store::slide_sessions(
                &mut w,
                &valid,
                now,
                stale_before,
                expiry,
                SESSION_SLIDES_PER_CHECK,
            )
            .await?;
        }
        let valid: std::collections::HashSet<SessionId> = valid.into_iter().collect();
        let gone: Vec<SessionId> = live.into_iter().filter(|s| !valid.contains(s)).collect();
        if !gone.is_empty() {
            tracing::info!("closing the sockets of {} ended sessions", gone.len());
            self.with_hub(|hub| hub.revoke_sessions(&gone, None));
        }
        Ok(())
    }

    /// Hangs up call participants whose grace period ran out. Called by the timer task at the
    /// hub's timeout.
    pub fn tick(&self) {
        self.with_hub(|hub| hub.handle_timeout(Instant::now()));
    }

    pub fn active_calls(&self) -> usize {
        self.with_hub(|hub| hub.active_calls())
    }

    /// Asks every socket to close (server shutdown).
    pub fn kick_all(&self, reason: (u16, &'static str)) {
        let sb = self.switchboard.lock().unwrap_or_else(|p| p.into_inner());
        for handle in sb.conns.values() {
            kick(handle, reason);
        }
    }

    fn identity(conn: &ConnState) -> Result<&Identity> {
        conn.identity
            .as_ref()
            .ok_or_else(|| Error::refused(ErrorCode::Unauthorized, "authenticate first"))
    }

    fn check_member(&self, room: i64, user: i64) -> Result<()> {
        Ok(self.with_hub(|hub| hub.check_member(room, user))?)
    }

    /// A member who owns the room, or the error saying why not (`what` they wanted to do).
    async fn check_owner(&self, room: i64, user: i64, what: &str) -> Result<()> {
        self.check_member(room, user)?;
        let room = store::get_room(self.store.reader(), room).await?;
        if room.owner_id != Some(user) {
            return Err(Error::forbidden(format!(
                "only the room's owner can {what}"
            )));
        }
        Ok(())
    }

    /// Handles one request. Errors become `error` frames with the request's id.
    pub async fn handle(&self, conn: &mut ConnState, request: Request) -> Result<(Reply, After)> {
        if conn.identity.is_none() && !request.allowed_before_auth() {
            return Err(Error::refused(
                ErrorCode::Unauthorized,
                "authenticate first: send `authenticate`, `login` or `register`",
            ));
        }
        if let Some(Identity {
            guest_room: Some(room),
            ..
        }) = &conn.identity
        {
            if !request.allowed_for_guest() {
                return Err(Error::forbidden(format!(
                    "a guest can only take part in room {room}, the one they were invited to"
                )));
            }
        }
        let reply = match request {
            Request::Ping => Reply::Pong,
            Request::GuestJoin { code, display_name } => {
                self.guest_join(conn, &code, &display_name).await?
            }
            Request::CreateRoomInvite {
                room_id,
                uses,
                expires_in_hours,
            } => {
                let me = Self::identity(conn)?.user.id;
                self.check_owner(room_id, me, "make guest links to it")
                    .await?;
                let hours = expires_in_hours.unwrap_or(24);
                if !(1..=720).contains(&hours) || uses.is_some_and(|n| !(1..=1000).contains(&n)) {
                    return Err(Error::invalid(
                        "expires_in_hours must be 1 to 720 and uses 1 to 1000",
                    ));
                }
                let (code, hash) = credentials::new_token();
                let now = now_millis();
                let expires_at = now + i64::from(hours) * 3_600_000;
                let mut w = self.store.writer().await;
                let mut invite =
                    store::create_room_invite(&mut w, room_id, me, &hash, now, expires_at, uses)
                        .await?;
                invite.code = Some(code);
                Reply::RoomInvite { invite }
            }
            Request::ListRoomInvites { room_id } => {
                let me = Self::identity(conn)?.user.id;
                self.check_owner(room_id, me, "see its guest links").await?;
                Reply::RoomInvites {
                    invites: store::room_invites(self.store.reader(), room_id).await?,
                }
            }
            Request::RevokeRoomInvite { room_id, invite_id } => {
                let me = Self::identity(conn)?.user.id;
                self.check_owner(room_id, me, "revoke its guest links")
                    .await?;
                let mut w = self.store.writer().await;
                let revoked =
                    store::revoke_room_invite(&mut w, room_id, invite_id, now_millis()).await?;
                drop(w);
                // Out of the room first (members see them leave), then their sockets closed.
                self.with_hub(|hub| {
                    for guest in &revoked.guests {
                        hub.member_left(room_id, *guest, None);
                    }
                    hub.revoke_sessions(&revoked.sessions, None);
                });
                Reply::RoomInvite {
                    invite: revoked.invite,
                }
            }
            Request::CreateInvite {
                uses,
                expires_in_days,
            } => {
                let me = Self::identity(conn)?.user.id;
                if !store::is_admin(self.store.reader(), me).await? {
                    return Err(Error::forbidden(
                        "only a server administrator can create invites",
                    ));
                }
                let uses = uses.unwrap_or(1);
                let days = expires_in_days.unwrap_or(7);
                if !(1..=1000).contains(&uses) || !(1..=365).contains(&days) {
                    return Err(Error::invalid(
                        "uses must be 1 to 1000 and expires_in_days 1 to 365",
                    ));
                }
                let mut w = self.store.writer().await;
                let (code, expires_at) =
                    create_invite(&mut w, Some(me), uses, days, now_millis()).await?;
                Reply::Invite {
                    code,
                    uses,
                    expires_at,
                }
            }
            Request::Register {
                username,
                display_name,
                password,
                invite,
            } => {
                self.register_user(conn, &username, &display_name, password, invite)
                    .await?
            }
            Request::Login { username, password } => self.login(conn, &username, password).await?,
            Request::Authenticate { token } => self.authenticate(conn, &token).await?,
            Request::Logout => {
                let me = Self::identity(conn)?.clone();
                let mut w = self.store.writer().await;
                store::revoke_session(&mut w, me.session, now_millis()).await?;
                self.with_hub(|hub| hub.revoke_sessions(&[me.session], Some(conn.id)));
                return Ok((Reply::Ok, After::Close(1000, "logged out")));
            }
            Request::ChangePassword {
                old_password,
                new_password,
            } => {
                self.change_password(conn, old_password, new_password)
                    .await?
            }
            Request::CreateRoom { name, public } => {
                let me = Self::identity(conn)?.user.clone();
                let name = validate::room_name(&name)?;
                let kind = if public {
                    RoomKind::Public
                } else {
                    RoomKind::Private
                };
                let mut w = self.store.writer().await;
                let room = store::create_room(&mut w, me.id, &name, kind, now_millis()).await?;
                self.with_hub(|hub| hub.member_joined(room.id, &me, Some(conn.id)));
                Reply::Room { room }
            }
            Request::RenameRoom { room_id, name } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let name = validate::room_name(&name)?;
                let room = store::get_room(self.store.reader(), room_id).await?;
                if room.owner_id != Some(me) {
                    return Err(Error::forbidden("only the room's owner can rename it"));
                }
                let mut w = self.store.writer().await;
                let room = store::rename_room(&mut w, room_id, &name).await?;
                let event = Event::RoomUpdated { room: room.clone() };
                self.with_hub(|hub| hub.broadcast(room_id, event, Some(conn.id)));
                Reply::Room { room }
            }
            Request::DeleteRoom { room_id } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let room = store::get_room(self.store.reader(), room_id).await?;
                if room.owner_id != Some(me) {
                    return Err(Error::forbidden("only the room's owner can delete it"));
                }
                let mut w = self.store.writer().await;
                // Its guests had no rights anywhere else: their sessions end with it.
                let guests = store::revoke_guests_of_room(&mut w, room_id, now_millis()).await?;
                store::delete_room(&mut w, room_id).await?;
                self.with_hub(|hub| {
                    hub.room_deleted(room_id, Some(conn.id));
                    hub.revoke_sessions(&guests, None);
                });
                Reply::Ok
            }
            Request::ListRooms => {
                let me = Self::identity(conn)?.user.id;
                Reply::Rooms {
                    rooms: store::list_rooms(self.store.reader(), me).await?,
                }
            }
            Request::FindRooms { query } => {
                Self::identity(conn)?;
                validate::search_query(&query)?;
                Reply::PublicRooms {
                    rooms: store::find_public_rooms(self.store.reader(), query.trim()).await?,
                }
            }
            Request::JoinRoom { room_id } => {
                let me = Self::identity(conn)?.user.clone();
                let room = store::get_room(self.store.reader(), room_id).await?;
                if self.with_hub(|hub| hub.is_member(room_id, me.id)) {
                    return Ok((Reply::Room { room }, After::Continue));
                }
                if room.kind != RoomKind::Public {
                    return Err(Error::forbidden(
                        "this room is not public: its owner must add you",
                    ));
                }
                let mut w = self.store.writer().await;
                store::add_member(&mut w, room_id, me.id, now_millis()).await?;
                self.with_hub(|hub| hub.member_joined(room_id, &me, Some(conn.id)));
                Reply::Room { room }
            }
            Request::LeaveRoom { room_id } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let room = store::get_room(self.store.reader(), room_id).await?;
                if room.owner_id == Some(me) {
                    return Err(Error::forbidden(
                        "the owner cannot leave the room; delete it instead",
                    ));
                }
                if room.kind == RoomKind::Direct {
                    return Err(Error::forbidden("a direct conversation cannot be left"));
                }
                let mut w = self.store.writer().await;
                store::remove_member(&mut w, room_id, me).await?;
                self.with_hub(|hub| hub.member_left(room_id, me, Some(conn.id)));
                Reply::Ok
            }
            Request::AddMember { room_id, username } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let room = store::get_room(self.store.reader(), room_id).await?;
                if room.owner_id != Some(me) {
                    return Err(Error::forbidden("only the room's owner can add members"));
                }
                let user = store::find_user(self.store.reader(), &username)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("no user `{username}`")))?;
                let mut w = self.store.writer().await;
                if store::add_member(&mut w, room_id, user.id, now_millis()).await? {
                    self.with_hub(|hub| hub.member_joined(room_id, &user, Some(conn.id)));
                }
                Reply::Ok
            }
            Request::ListMembers { room_id } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let room = store::get_room(self.store.reader(), room_id).await?;
                let mut members = store::members(self.store.reader(), &room).await?;
                self.with_hub(|hub| {
                    for m in &mut members {
                        if hub.is_online(m.user.id) {
                            m.presence = Presence::Online;
                        }
                    }
                });
                Reply::Members { members }
            }
            Request::OpenDirect { username } => {
                let me = Self::identity(conn)?.user.clone();
                let other = store::find_user(self.store.reader(), &username)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("no user `{username}`")))?;
                if other.id == me.id {
                    return Err(Error::invalid("a direct conversation needs someone else"));
                }
                let mut w = self.store.writer().await;
                let (room, created) = store::open_direct(&mut w, &me, &other, now_millis()).await?;
                if created {
                    self.with_hub(|hub| {
                        hub.member_joined(room.id, &me, Some(conn.id));
                        hub.member_joined(room.id, &other, Some(conn.id));
                    });
                }
                Reply::Room { room }
            }
            Request::SendMessage {
                room_id,
                client_id,
                text,
            } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                validate::client_id(&client_id)?;
                validate::message_text(&text)?;
                let mut w = self.store.writer().await;
                let (message, duplicate) =
                    store::send_message(&mut w, room_id, me, &client_id, &text, now_millis())
                        .await?;
                if !duplicate {
                    self.metrics.messages_stored.fetch_add(1, Relaxed);
                    let event = Event::Timeline {
                        entry: parlor_protocol::TimelineEntry::Message {
                            message: message.clone(),
                        },
                    };
                    self.with_hub(|hub| hub.broadcast(room_id, event, Some(conn.id)));
                }
                Reply::MessageSent { message, duplicate }
            }
            Request::EditMessage { room_id, seq, text } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                validate::message_text(&text)?;
                let mut w = self.store.writer().await;
                let entry =
                    store::edit_message(&mut w, room_id, seq, me, &text, now_millis()).await?;
                let event = Event::Timeline {
                    entry: entry.clone(),
                };
                self.with_hub(|hub| hub.broadcast(room_id, event, Some(conn.id)));
                Reply::TimelineEntry { entry }
            }
            Request::DeleteMessage { room_id, seq } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let room = store::get_room(self.store.reader(), room_id).await?;
                let is_owner = store::role_of(&room, me) == Role::Owner;
                let mut w = self.store.writer().await;
                let entry =
                    store::delete_message(&mut w, room_id, seq, me, is_owner, now_millis()).await?;
                let event = Event::Timeline {
                    entry: entry.clone(),
                };
                self.with_hub(|hub| hub.broadcast(room_id, event, Some(conn.id)));
                Reply::TimelineEntry { entry }
            }
            Request::History {
                room_id,
                before_seq,
                limit,
            } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let limit = validate::page_limit(limit, 50)?;
                let (messages, has_more) =
                    store::history(self.store.reader(), room_id, before_seq, limit).await?;
                Reply::History { messages, has_more }
            }
            Request::Sync {
                room_id,
                since_seq,
                limit,
            } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                if since_seq < 0 {
                    return Err(Error::invalid("since_seq must not be negative"));
                }
                let limit = validate::page_limit(limit, parlor_protocol::MAX_PAGE)?;
                let (entries, has_more, last_seq) =
                    store::sync(self.store.reader(), room_id, since_seq, limit).await?;
                Reply::Sync {
                    entries,
                    has_more,
                    last_seq,
                }
            }
            Request::MarkRead { room_id, seq } => {
                let me = Self::identity(conn)?.user.id;
                self.check_member(room_id, me)?;
                let mut w = self.store.writer().await;
                let marker = store::mark_read(&mut w, room_id, me, seq).await?;
                let event = Event::ReadMarker {
                    room_id,
                    seq: marker,
                };
                self.with_hub(|hub| hub.send_to_user(me, event, Some(conn.id)));
                Reply::Ok
            }
            Request::Typing { room_id, typing } => {
                Self::identity(conn)?;
                let now = Instant::now();
                self.with_hub(|hub| hub.typing(conn.id, room_id, typing, now))?;
                Reply::Ok
            }
            Request::GetIceServers => {
                let me = Self::identity(conn)?.user.id;
                self.ice_servers(me)
            }
            Request::CallJoin { room_id } => {
                Self::identity(conn)?;
                let call = self.with_hub(|hub| hub.call_join(conn.id, room_id, now_millis()))?;
                Reply::CallJoined { call }
            }
            Request::CallLeave { room_id } => {
                self.with_hub(|hub| hub.call_leave(conn.id, room_id))?;
                Reply::Ok
            }
            Request::CallDecline { room_id } => {
                self.with_hub(|hub| hub.call_refuse(conn.id, room_id, false))?;
                Reply::Ok
            }
            Request::CallBusy { room_id } => {
                self.with_hub(|hub| hub.call_refuse(conn.id, room_id, true))?;
                Reply::Ok
            }
            Request::CallOffer { room_id, to, sdp } => {
                check_sdp(&sdp)?;
                self.with_hub(|hub| hub.call_relay(conn.id, room_id, to, Relay::Offer(sdp)))?;
                Reply::Ok
            }
            Request::CallAnswer { room_id, to, sdp } => {
                check_sdp(&sdp)?;
                self.with_hub(|hub| hub.call_relay(conn.id, room_id, to, Relay::Answer(sdp)))?;
                Reply::Ok
            }
            Request::CallIce {
                room_id,
                to,
                candidate,
            } => {
                if candidate.candidate.len() > 1024 {
                    return Err(Error::refused(
                        ErrorCode::TooLarge,
                        "ICE candidate too long",
                    ));
                }
                self.with_hub(|hub| hub.call_relay(conn.id, room_id, to, Relay::Ice(candidate)))?;
                Reply::Ok
            }
        };
        Ok((reply, After::Continue))
    }

    async fn register_user(
        &self,
        conn: &mut ConnState,
        username: &str,
        display_name: &str,
        password: String,
        invite: Option<String>,
    ) -> Result<Reply> {
        already_authenticated(conn)?;
        let invite =
            match (self.settings.registration, invite) {
                (Registration::Closed, _) => return Err(Error::forbidden(
                    "registration is closed on this server: ask its administrator for an account",
                )),
                (Registration::Invite, None) => return Err(Error::forbidden(
                    "this server needs an invite code to register: ask its administrator for one",
                )),
                (Registration::Invite, Some(code)) => Some(credentials::token_hash(&code)),
                // An open server has no use for a code; one sent anyway is not used up.
                (Registration::Open, _) => None,
            };
        validate::username(username)?;
        validate::display_name(display_name)?;
        validate::password(&password)?;
        self.throttled(|t, now| t.register(conn.from, now).err())?;
        let hash = self
            .hash(move || credentials::hash_password(&password))
            .await??;
        let now = now_millis();
        let mut w = self.store.writer().await;
        let user = store::create_user(
            &mut w,
            username,
            display_name.trim(),
            &hash,
            invite.as_deref(),
            now,
        )
        .await?;
        drop(w);
        self.start_session(conn, user).await
    }

    /// Refuses with `rate_limited` and the wait when `check` finds one.
    fn throttled(
        &self,
        check: impl FnOnce(&mut SignInThrottle, Instant) -> Option<std::time::Duration>,
    ) -> Result<()> {
        let mut throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        match check(&mut throttle, Instant::now()) {
            None => Ok(()),
            Some(wait) => Err(Error::Refused(parlor_protocol::ErrorBody::retry_after(
                format!(
                    "too many attempts: try again in {} s",
                    wait.as_secs_f64().ceil()
                ),
                wait,
            ))),
        }
    }

    async fn login(&self, conn: &mut ConnState, username: &str, password: String) -> Result<Reply> {
        already_authenticated(conn)?;
        let from = conn.from;
        self.throttled(|t, now| t.login_wait(from, username, now))?;
        let found = store::find_credentials(self.store.reader(), username).await?;
        let (account, stored) = match found {
            Some(c) => {
                let stored = c.password_hash.clone();
                (Some(c), stored)
            }
            None => (None, credentials::decoy_hash().to_owned()),
        };
        let ok = self
            .hash(move || credentials::verify_password(&password, &stored))
            .await?;
        match (account, ok) {
            // Said only to someone who knows the password.
            (Some(account), true) if account.disabled => Err(Error::forbidden(
                "this account is disabled: ask the server's administrator",
            )),
            (Some(account), true) => self.start_session(conn, account.user).await,
            _ => {
                self.throttled(|t, now| {
                    t.login_failed(from, username, now);
                    None
                })?;
                Err(Error::refused(
                    ErrorCode::Unauthorized,
                    "wrong username or password",
                ))
            }
        }
    }

    async fn start_session(&self, conn: &mut ConnState, user: User) -> Result<Reply> {
        let (token, hash) = credentials::new_token();
        let now = now_millis();
        let expires_at = now + self.settings.session_ttl.as_millis() as i64;
        let mut w = self.store.writer().await;
        let session = store::create_session(&mut w, user.id, &hash, now, expires_at).await?;
        self.bind(conn, user.clone(), session, None);
        Ok(Reply::Session {
            user,
            token,
            expires_at,
            guest_room_id: None,
        })
    }

    /// Someone without an account comes in through a room's guest link: a guest user, a
    /// member of that room only, with a session that ends with the link.
    async fn guest_join(
        &self,
        conn: &mut ConnState,
        code: &str,
        display_name: &str,
    ) -> Result<Reply> {
        already_authenticated(conn)?;
        validate::display_name(display_name)?;
        // Each guest is an account made: counted as a registration from the address.
        self.throttled(|t, now| t.register(conn.from, now).err())?;
        let (token, token_hash) = credentials::new_token();
        let (suffix, _) = credentials::new_token();
        let username = format!("guest-{}", &suffix[..12]);
        let mut w = self.store.writer().await;
        let guest = store::create_guest(
            &mut w,
            &credentials::token_hash(code),
            &username,
            display_name.trim(),
            &token_hash,
            now_millis(),
        )
        .await?;
        drop(w);
        // A member before the socket is bound, so that binding announces the room's call to
        // them (`call_ongoing`) and their presence to the room.
        self.with_hub(|hub| hub.member_joined(guest.room, &guest.user, None));
        self.bind(conn, guest.user.clone(), guest.session, Some(guest.room));
        Ok(Reply::Session {
            user: guest.user,
            token,
            expires_at: guest.expires_at,
            guest_room_id: Some(guest.room),
        })
    }

    async fn authenticate(&self, conn: &mut ConnState, token: &str) -> Result<Reply> {
        already_authenticated(conn)?;
        let from = conn.from;
        self.throttled(|t, now| t.authenticate_wait(from, now))?;
        let now = now_millis();
        let expiry = now + self.settings.session_ttl.as_millis() as i64;
        let mut w = self.store.writer().await;
        let found =
            store::use_session(&mut w, &credentials::token_hash(token), now, expiry).await?;
        let Some(found) = found else {
            self.throttled(|t, now| {
                t.authenticate_failed(from, now);
                None
            })?;
            return Err(Error::refused(
                ErrorCode::Unauthorized,
                "the token is unknown, expired or revoked",
            ));
        };
        self.bind(conn, found.user.clone(), found.session, found.guest_room);
        Ok(Reply::Authenticated {
            user: found.user,
            expires_at: found.expires_at,
            guest_room_id: found.guest_room,
        })
    }

    /// Marks the socket authenticated and lets the hub announce it.
    fn bind(
        &self,
        conn: &mut ConnState,
        user: User,
        session: SessionId,
        guest_room: Option<parlor_protocol::RoomId>,
    ) {
        let user_id = user.id;
        conn.identity = Some(Identity {
            user,
            session,
            guest_room,
        });
        self.with_hub(|hub| hub.connect(conn.id, user_id, session, Instant::now()));
    }

    async fn change_password(
        &self,
        conn: &mut ConnState,
        old_password: String,
        new_password: String,
    ) -> Result<Reply> {
        let me = Self::identity(conn)?.clone();
        validate::password(&new_password)?;
        let stored = store::password_hash(self.store.reader(), me.user.id).await?;
        let ok = self
            .hash(move || credentials::verify_password(&old_password, &stored))
            .await?;
        if !ok {
            return Err(Error::refused(
                ErrorCode::Unauthorized,
                "the current password is wrong",
            ));
        }
        let hash = self
            .hash(move || credentials::hash_password(&new_password))
            .await??;
        let mut w = self.store.writer().await;
        store::set_password(&mut w, me.user.id, &hash).await?;
        let revoked =
            store::revoke_other_sessions(&mut w, me.user.id, me.session, now_millis()).await?;
        self.with_hub(|hub| hub.revoke_sessions(&revoked, Some(conn.id)));
        Ok(Reply::Ok)
    }

    /// Runs a password hash or check off the executor, one per core at a time.
    async fn hash<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| Error::Internal(format!("hashing queue closed: {e}")))?;
        blocking(f).await
    }

    fn ice_servers(&self, user: i64) -> Reply {
        let s = &self.settings;
        let mut ice_servers = Vec::new();
        if !s.stun_urls.is_empty() {
            ice_servers.push(IceServer {
                urls: s.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        let mut ttl_secs = None;
        if !s.turn_urls.is_empty() {
            let (username, credential) = match &s.turn_secret {
                Some(secret) => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    ttl_secs = Some(s.turn_ttl.as_secs());
                    let (u, p) =
                        credentials::turn_credentials(secret, user, now + s.turn_ttl.as_secs());
                    (Some(u), Some(p))
                }
                None => (None, None),
            };
            ice_servers.push(IceServer {
                urls: s.turn_urls.clone(),
                username,
                credential,
            });
        }
        Reply::IceServers {
            ice_servers,
            ttl_secs,
        }
    }
}

/// Makes an invite code and stores its hash; returns the code and when it expires.
pub async fn create_invite(
    w: &mut store::Writer<'_>,
    created_by: Option<parlor_protocol::UserId>,
    uses: u32,
    days: u32,
    now: parlor_protocol::Millis,
) -> Result<(String, parlor_protocol::Millis)> {
    let (code, hash) = credentials::new_token();
    let expires_at = now + i64::from(days) * 86_400_000;
    store::create_invite(w, &hash, created_by, now, expires_at, uses).await?;
    Ok((code, expires_at))
}

fn already_authenticated(conn: &ConnState) -> Result<()> {
    if conn.identity.is_some() {
        return Err(Error::refused(
            ErrorCode::Conflict,
            "this socket is already authenticated",
        ));
    }
    Ok(())
}

fn check_sdp(sdp: &str) -> Result<()> {
    if sdp.trim().is_empty() {
        return Err(Error::invalid("the SDP is empty"));
    }
    Ok(())
}

/// Runs CPU-heavy work (argon2) off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
}
