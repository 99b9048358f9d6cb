//! The client API a UI (or a bot) uses: one typed method per thing a user does, and one
//! stream of [`ClientEvent`]s saying what changed. Underneath, a pump task reads the signaling
//! connection, keeps the local store current, re-syncs every room after each reconnect, sends
//! the outbox, and routes call signaling to the call in progress.
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parlor_protocol::{
    CallInfo, Event, Member, Message, Presence, Reply, Request, Room, RoomId, RoomInvite, Seq,
    TimelineEntry, User, UserId,
};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::account;
use crate::call::CallTiming;
use crate::call_session::{CallEngine, CallEvent, CallHandle, CallOptions, EngineInput};
use crate::connection::{Connection, ConnectionEvent, ConnectionState, Credentials};
use crate::endpoint::{ServerEndpoint, TlsError};
use crate::outbox::{self, Delivery};
use crate::reconnect::ReconnectPolicy;
use crate::store::{OutgoingMessage, RoomView, Store};
use crate::ClientError;

/// How many events a slow subscriber may fall behind before it is told it lagged (and should
/// reload what it shows from the store).
const EVENT_BUFFER: usize = 4096;

/// Longest message text accepted locally (the server's limit; longer is refused at once
/// rather than queued to fail later).
pub const MAX_MESSAGE_CHARS: usize = 16_000;

/// Where an outgoing message stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutboxState {
    /// Stored here; goes out as soon as the server can be reached.
    Pending,
    /// The server refused it for good; the user may retry or discard it.
    Failed { error: String },
    /// Accepted by the server as message `seq`.
    Sent { seq: Seq },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxView {
    pub client_id: String,
    pub room_id: RoomId,
    pub text: String,
    pub created_at: i64,
    #[serde(flatten)]
    pub state: OutboxState,
}

impl From<OutgoingMessage> for OutboxView {
    fn from(m: OutgoingMessage) -> Self {
        OutboxView {
            state: if m.state == "failed" {
                OutboxState::Failed {
                    error: m.last_error.unwrap_or_default(),
                }
            } else {
                OutboxState::Pending
            },
            client_id: m.client_id,
            room_id: m.room_id,
            text: m.text,
            created_at: m.created_at,
        }
    }
}

/// Everything a UI needs to hear about, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ClientEvent {
    Connection(ConnectionState),
    /// The whole room list (after a (re)sync).
    Rooms {
        rooms: Vec<RoomView>,
    },
    /// One room's sidebar entry changed (unread count, last message, name).
    Room {
        room: RoomView,
    },
    RoomRemoved {
        room_id: RoomId,
    },
    /// A message, edit or deletion, already applied to the store.
    Timeline {
        entry: TimelineEntry,
    },
    Outbox {
        message: OutboxView,
    },
    MemberJoined {
        room_id: RoomId,
        user: User,
    },
    MemberLeft {
        room_id: RoomId,
        user_id: UserId,
    },
    Presence {
        user_id: UserId,
        presence: Presence,
    },
    Typing {
        room_id: RoomId,
        user_id: UserId,
        typing: bool,
    },
    /// Someone started a call in one of our rooms: ring (accept with `join_call`, refuse
    /// with `decline_call`).
    IncomingCall {
        call: CallInfo,
        by: UserId,
    },
    /// The ring for `room_id` is over: answered (here or on another device), declined, the
    /// call ended, or nobody answered in time (`missed`).
    RingStopped {
        room_id: RoomId,
        missed: bool,
    },
    /// A call is in progress in one of our rooms (sent after connecting, and when one starts).
    CallOngoing {
        call: CallInfo,
    },
    CallEnded {
        room_id: RoomId,
    },
    /// Every room is caught up and the outbox was tried.
    Synced,
    /// The session is over (revoked elsewhere, expired, or refused); log in again.
    SessionEnded {
        reason: String,
    },
}

/// A logged-in client. Cheap to clone; every clone is the same client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Arc<Connection>,
    store: Store,
    me: User,
    events: broadcast::Sender<ClientEvent>,
    /// A receiver made with the client, handed to its first subscriber: what happens between
    /// the client's start and that subscription (a resumed session refused at once, say) is
    /// not lost to the UI that subscribes right after `connect` or `resume` returns.
    first_subscriber: Mutex<Option<broadcast::Receiver<ClientEvent>>>,
    presence: Mutex<HashMap<UserId, Presence>>,
    /// Runs this client's calls.
    calls: CallEngine,
    /// One outbox delivery at a time (two would send the same message twice; harmless
    /// thanks to client ids, but wasteful).
    delivering: tokio::sync::Mutex<()>,
}

impl Client {
    /// Connects and authenticates, then opens this account's store in `data_dir`
    /// (`<user id>.db`) and remembers the account there for [`Client::resume`]. Refused
    /// credentials are an error; the rest keeps retrying per `policy`.
    pub async fn connect(
        server: &ServerEndpoint,
        data_dir: &Path,
        credentials: Credentials,
        policy: ReconnectPolicy,
    ) -> Result<Client, ClientError> {
        let connection = Arc::new(Connection::open(server, credentials, policy));
        let (me, early) = loop {
            match tokio::time::timeout(Duration::from_secs(30), connection.next_event()).await {
                Ok(Some(ConnectionEvent::Connected { user, welcome, .. })) => {
                    break (user, welcome)
                }
                Ok(Some(ConnectionEvent::Refused(error))) => {
                    return Err(ClientError::Refused(error))
                }
                Ok(Some(ConnectionEvent::CertificateNotTrusted { reason })) => {
                    return Err(TlsError::NotTrusted(reason).into())
                }
                Ok(Some(ConnectionEvent::Server(_) | ConnectionEvent::Dropped)) => {}
                Ok(None) | Err(_) => {
                    connection.close().await;
                    return Err(ClientError::Disconnected);
                }
            }
        };
        account::remember(data_dir, &me)?;
        Self::start(connection, data_dir, me, early, true).await
    }

    /// Signs in again with a saved session token, offline-first: when `data_dir` remembers
    /// the account, its store opens at once and the client is returned before the server
    /// answers (rooms, history, search and the outbox work; messages written now are sent on
    /// connecting). A token the server no longer takes ends in [`ClientEvent::SessionEnded`].
    /// Without a remembered account this is [`Client::connect`].
    pub async fn resume(
        server: &ServerEndpoint,
        data_dir: &Path,
        token: String,
        policy: ReconnectPolicy,
    ) -> Result<Client, ClientError> {
        let Some(me) = account::recall(data_dir) else {
            return Self::connect(server, data_dir, Credentials::Token(token), policy).await;
        };
        let connection = Arc::new(Connection::open(server, Credentials::Token(token), policy));
        Self::start(connection, data_dir, me, Vec::new(), false).await
    }

    /// Opens `me`'s store and starts the tasks that keep it current. `connected` says whether
    /// the connection's first `Connected` was already taken (by [`Client::connect`]).
    async fn start(
        connection: Arc<Connection>,
        data_dir: &Path,
        me: User,
        early: Vec<Event>,
        connected: bool,
    ) -> Result<Client, ClientError> {
        let store = match Store::open(&data_dir.join(format!("{}.db", me.id))).await {
            Ok(store) => store,
            Err(e) => {
                connection.close().await;
                return Err(e);
            }
        };
        let (events, first_subscriber) = broadcast::channel(EVENT_BUFFER);
        let rings = events.clone();
        let calls = CallEngine::start(connection.clone(), me.id, move |event| {
            let event = match event {
                CallEvent::Ringing { call, by } => ClientEvent::IncomingCall { call, by },
                CallEvent::RingStopped { room_id, missed } => {
                    ClientEvent::RingStopped { room_id, missed }
                }
                _ => return,
            };
            let _ = rings.send(event);
        });
        let inner = Arc::new(Inner {
            connection,
            store,
            me,
            events,
            first_subscriber: Mutex::new(Some(first_subscriber)),
            presence: Mutex::default(),
            calls,
            delivering: tokio::sync::Mutex::default(),
        });
        tokio::spawn(forward_state(
            inner.connection.watch_state(),
            inner.events.clone(),
        ));
        tokio::spawn(pump(inner.clone(), early, connected));
        Ok(Client { inner })
    }

    /// The client's events. The first subscriber gets every event since the client started
    /// (so nothing between `connect`/`resume` returning and subscribing is missed); later ones
    /// get events from the moment they subscribe. Subscribe before acting on the store to miss
    /// nothing.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        let first = self
            .inner
            .first_subscriber
            .lock()
            .ok()
            .and_then(|mut first| first.take());
        first.unwrap_or_else(|| self.inner.events.subscribe())
    }

    pub fn me(&self) -> &User {
        &self.inner.me
    }

    /// The session token, to resume later without the password.
    pub fn token(&self) -> Option<String> {
        self.inner.connection.token()
    }

    pub fn connection_state(&self) -> ConnectionState {
        self.inner.connection.state()
    }

    /// Stops waiting between reconnect attempts and tries now ("Retry now", or the network
    /// came back).
    pub async fn retry_now(&self) {
        self.inner.connection.retry_now().await;
    }

    /// The local store, for reading (history, search) without the network.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        self.inner.connection.request(request).await
    }

    // --- rooms ---

    /// The room list from the local copy (shown at once; `Rooms` events follow each sync).
    pub async fn rooms(&self) -> Result<Vec<RoomView>, ClientError> {
        self.inner.store.rooms(self.inner.me.id).await
    }

    pub async fn create_room(&self, name: &str, public: bool) -> Result<Room, ClientError> {
        let room = expect_room(
            self.request(Request::CreateRoom {
                name: name.into(),
                public,
            })
            .await?,
        )?;
        self.inner.room_joined(&room).await?;
        Ok(room)
    }

    pub async fn rename_room(&self, room: RoomId, name: &str) -> Result<Room, ClientError> {
        let room = expect_room(
            self.request(Request::RenameRoom {
                room_id: room,
                name: name.into(),
            })
            .await?,
        )?;
        self.inner.store.upsert_room(&room).await?;
        self.inner.emit_room(room.id).await;
        Ok(room)
    }

    pub async fn delete_room(&self, room: RoomId) -> Result<(), ClientError> {
        self.request(Request::DeleteRoom { room_id: room }).await?;
        self.inner.room_gone(room).await
    }

    pub async fn join_room(&self, room: RoomId) -> Result<Room, ClientError> {
        let room = expect_room(self.request(Request::JoinRoom { room_id: room }).await?)?;
        self.inner.room_joined(&room).await?;
        Ok(room)
    }

    pub async fn leave_room(&self, room: RoomId) -> Result<(), ClientError> {
        self.request(Request::LeaveRoom { room_id: room }).await?;
        self.inner.room_gone(room).await
    }

    /// The direct room with `username`, created the first time.
    pub async fn open_direct(&self, username: &str) -> Result<Room, ClientError> {
        let room = expect_room(
            self.request(Request::OpenDirect {
                username: username.into(),
            })
            .await?,
        )?;
        self.inner.room_joined(&room).await?;
        Ok(room)
    }

    /// Public rooms whose name matches.
    pub async fn find_rooms(&self, query: &str) -> Result<Vec<Room>, ClientError> {
        match self
            .request(Request::FindRooms {
                query: query.into(),
            })
            .await?
        {
            Reply::PublicRooms { rooms } => Ok(rooms),
            other => Err(unexpected(other)),
        }
    }

    pub async fn add_member(&self, room: RoomId, username: &str) -> Result<(), ClientError> {
        self.request(Request::AddMember {
            room_id: room,
            username: username.into(),
        })
        .await?;
        Ok(())
    }

    /// A guest link to `room` (its owner only): expiring after `hours` (default 24), letting in
    /// at most `uses` guests (default: any number). Its code is in the result only.
    pub async fn create_guest_link(
        &self,
        room: RoomId,
        hours: Option<u32>,
        uses: Option<u32>,
    ) -> Result<RoomInvite, ClientError> {
        match self
            .request(Request::CreateRoomInvite {
                room_id: room,
                uses,
                expires_in_hours: hours,
            })
            .await?
        {
            Reply::RoomInvite { invite } => Ok(invite),
            other => Err(unexpected(other)),
        }
    }

    /// The room's guest links, newest first (its owner only).
    pub async fn guest_links(&self, room: RoomId) -> Result<Vec<RoomInvite>, ClientError> {
        match self
            .request(Request::ListRoomInvites { room_id: room })
            .await?
        {
            Reply::RoomInvites { invites } => Ok(invites),
            other => Err(unexpected(other)),
        }
    }

    /// Ends a guest link and signs out the guests who came through it.
    pub async fn revoke_guest_link(
        &self,
        room: RoomId,
        invite: i64,
    ) -> Result<RoomInvite, ClientError> {
        match self
            .request(Request::RevokeRoomInvite {
                room_id: room,
                invite_id: invite,
            })
            .await?
        {
            Reply::RoomInvite { invite } => Ok(invite),
            other => Err(unexpected(other)),
        }
    }

    /// A room's members with presence: from the server when reachable, else the local copy
    /// (presence then as last heard).
    pub async fn members(&self, room: RoomId) -> Result<Vec<Member>, ClientError> {
        match self.request(Request::ListMembers { room_id: room }).await {
            Ok(Reply::Members { members }) => {
                self.inner.store.set_members(room, &members).await?;
                self.inner.note_presence(&members);
                Ok(members)
            }
            Ok(other) => Err(unexpected(other)),
            Err(ClientError::Disconnected | ClientError::Timeout) => {
                let local = self.inner.store.members(room).await?;
                Ok(local
                    .into_iter()
                    .map(|(user, role)| Member {
                        presence: self.presence(user.id),
                        user,
                        role,
                        last_read_seq: 0,
                    })
                    .collect())
            }
            Err(e) => Err(e),
        }
    }

    pub fn presence(&self, user: UserId) -> Presence {
        if user == self.inner.me.id && self.connection_state() == ConnectionState::Connected {
            return Presence::Online;
        }
        self.inner
            .presence
            .lock()
            .ok()
            .and_then(|p| p.get(&user).copied())
            .unwrap_or(Presence::Offline)
    }

    // --- messages ---

    /// Queues a message and sends it when it can; returns it as pending. Later `Outbox` events
    /// say when it was sent (or refused). Survives restarts; never duplicated.
    pub async fn send(&self, room: RoomId, text: &str) -> Result<OutboxView, ClientError> {
        let text = text.trim_end();
        if text.trim().is_empty() {
            return Err(ClientError::Invalid("a message needs some text".into()));
        }
        if text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ClientError::Invalid(format!(
                "a message has at most {MAX_MESSAGE_CHARS} characters"
            )));
        }
        let client_id = self.inner.store.outbox_add(room, text).await?;
        let view: OutboxView = self
            .inner
            .store
            .outbox_message(&client_id)
            .await?
            .ok_or_else(|| ClientError::Protocol("queued message vanished".into()))?
            .into();
        self.inner.emit(ClientEvent::Outbox {
            message: view.clone(),
        });
        tokio::spawn(self.inner.clone().deliver());
        Ok(view)
    }

    /// Messages not yet accepted by the server in `room` (pending and failed), oldest first.
    pub async fn outbox(&self, room: RoomId) -> Result<Vec<OutboxView>, ClientError> {
        Ok(self
            .inner
            .store
            .outbox()
            .await?
            .into_iter()
            .filter(|m| m.room_id == room)
            .map(OutboxView::from)
            .collect())
    }

    /// Sends a failed message again.
    pub async fn retry(&self, client_id: &str) -> Result<(), ClientError> {
        if !self.inner.store.outbox_retry(client_id).await? {
            return Err(ClientError::Invalid(
                "no failed message with that id".into(),
            ));
        }
        if let Some(m) = self.inner.store.outbox_message(client_id).await? {
            self.inner.emit(ClientEvent::Outbox { message: m.into() });
        }
        tokio::spawn(self.inner.clone().deliver());
        Ok(())
    }

    /// Drops a failed message.
    pub async fn discard(&self, client_id: &str) -> Result<(), ClientError> {
        if self.inner.store.outbox_discard(client_id).await? {
            Ok(())
        } else {
            Err(ClientError::Invalid(
                "no failed message with that id".into(),
            ))
        }
    }

    pub async fn edit(&self, room: RoomId, seq: Seq, text: &str) -> Result<(), ClientError> {
        let reply = self
            .request(Request::EditMessage {
                room_id: room,
                seq,
                text: text.into(),
            })
            .await?;
        self.inner.applied_reply(reply).await
    }

    pub async fn delete(&self, room: RoomId, seq: Seq) -> Result<(), ClientError> {
        let reply = self
            .request(Request::DeleteMessage { room_id: room, seq })
            .await?;
        self.inner.applied_reply(reply).await
    }

    /// The newest `limit` messages before `before`, oldest first: from the local copy, with
    /// older pages of a large room fetched from the server as the reader scrolls back into
    /// them (offline, what the local copy holds).
    pub async fn history(
        &self,
        room: RoomId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<Vec<Message>, ClientError> {
        outbox::history(
            &self.inner.connection,
            &self.inner.store,
            room,
            before,
            limit,
        )
        .await
    }

    /// The oldest `limit` messages after `after`, oldest first, from the local copy (which
    /// always holds what came after a loaded message: sync goes forward from the newest).
    pub async fn history_after(
        &self,
        room: RoomId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, ClientError> {
        self.inner.store.history_after(room, after, limit).await
    }

    /// Catches one room up now (also done for every room after each reconnect).
    pub async fn sync(&self, room: RoomId) -> Result<usize, ClientError> {
        self.inner.sync_room(room).await
    }

    pub async fn search(&self, query: &str) -> Result<Vec<Message>, ClientError> {
        self.inner.store.search(query).await
    }

    /// Marks everything in `room` as read, here and on the user's other devices.
    pub async fn mark_read(&self, room: RoomId) -> Result<(), ClientError> {
        let seq = self.inner.store.last_message_seq(room).await?;
        if seq == 0 {
            return Ok(());
        }
        self.request(Request::MarkRead { room_id: room, seq })
            .await?;
        self.inner.store.set_read_marker(room, seq).await?;
        self.inner.emit_room(room).await;
        Ok(())
    }

    /// Tells the room's members this user is (or stopped) typing.
    pub async fn set_typing(&self, room: RoomId, typing: bool) -> Result<(), ClientError> {
        self.request(Request::Typing {
            room_id: room,
            typing,
        })
        .await?;
        Ok(())
    }

    // --- calls ---

    /// Starts or joins `room`'s call (also how an incoming call is accepted). Returns once the
    /// server has let us in; the handle says who was in the call then.
    pub async fn join_call(
        &self,
        room: RoomId,
        options: CallOptions,
    ) -> Result<CallHandle, ClientError> {
        // A direct room's call is a 1:1 call: it rings, and ends when the other side hangs up.
        let direct = self
            .inner
            .store
            .room(self.inner.me.id, room)
            .await?
            .is_some_and(|view| view.room.kind == parlor_protocol::RoomKind::Direct);
        self.inner.calls.join(room, direct, options).await
    }

    /// Declines the call ringing for `room` (nothing happens if it no longer rings).
    pub async fn decline_call(&self, room: RoomId) -> Result<(), ClientError> {
        self.inner.calls.send(EngineInput::Decline { room });
        Ok(())
    }

    /// Changes how long calls ring and how links are repaired (for tests and special setups;
    /// the defaults suit people).
    pub fn set_call_timing(&self, timing: CallTiming) {
        self.inner.calls.send(EngineInput::SetTiming(timing));
    }

    // --- session ---

    /// Ends the session on the server (the token stops working) and disconnects.
    pub async fn logout(&self) -> Result<(), ClientError> {
        let result = self.request(Request::Logout).await.map(|_| ());
        self.inner.connection.close().await;
        result
    }

    /// Disconnects, keeping the session for next time.
    pub async fn close(&self) {
        self.inner.connection.close().await;
    }
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

fn expect_room(reply: Reply) -> Result<Room, ClientError> {
    match reply {
        Reply::Room { room } => Ok(room),
        other => Err(unexpected(other)),
    }
}

async fn forward_state(
    mut state: tokio::sync::watch::Receiver<ConnectionState>,
    events: broadcast::Sender<ClientEvent>,
) {
    loop {
        let now = state.borrow_and_update().clone();
        let _ = events.send(ClientEvent::Connection(now.clone()));
        if now.is_final() || state.changed().await.is_err() {
            break;
        }
    }
}

/// Reads the connection until it closes for good. `connected` says the first connect was
/// already made (by [`Client::connect`]), so it is synced at once.
async fn pump(inner: Arc<Inner>, early: Vec<Event>, connected: bool) {
    if connected {
        inner.resync().await;
    }
    for event in early {
        inner.on_server_event(event).await;
    }
    while let Some(event) = inner.connection.next_event().await {
        match event {
            ConnectionEvent::Connected { user, .. } if user.id != inner.me.id => {
                // The store opened is another account's; nothing may be written to it.
                tracing::error!("the token is user {}'s, not {}'s", user.id, inner.me.id);
                inner.connection.close().await;
                inner.emit(ClientEvent::SessionEnded {
                    reason: "the session belongs to another account".into(),
                });
            }
            ConnectionEvent::Connected { welcome, .. } => {
                // The call first: whether the server kept our place decides what the rest of
                // its events mean to it.
                let resumed = welcome.iter().find_map(|event| match event {
                    Event::CallResumed { call } => Some(call.clone()),
                    _ => None,
                });
                inner.calls.send(EngineInput::SignalingBack { resumed });
                for event in welcome {
                    inner.on_server_event(event).await;
                }
                inner.resync().await;
            }
            ConnectionEvent::Dropped => inner.calls.send(EngineInput::SignalingLost),
            ConnectionEvent::Server(event) => inner.on_server_event(event).await,
            ConnectionEvent::Refused(error) => inner.emit(ClientEvent::SessionEnded {
                reason: error.to_string(),
            }),
            // The connection state says so; the session itself is still good.
            ConnectionEvent::CertificateNotTrusted { .. } => {}
        }
    }
}

impl Inner {
    fn emit(&self, event: ClientEvent) {
        // No subscriber is fine: the store has everything.
        let _ = self.events.send(event);
    }

    async fn emit_room(&self, room: RoomId) {
        match self.store.room(self.me.id, room).await {
            Ok(Some(room)) => self.emit(ClientEvent::Room { room }),
            Ok(None) => {}
            Err(e) => tracing::warn!("reading room {room}: {e}"),
        }
    }

    fn note_presence(&self, members: &[Member]) {
        if let Ok(mut presence) = self.presence.lock() {
            for m in members {
                presence.insert(m.user.id, m.presence);
            }
        }
    }

    async fn room_joined(&self, room: &Room) -> Result<(), ClientError> {
        self.store.upsert_room(room).await?;
        // Members and history in the background would race the caller; a new room is small.
        if let Ok(Reply::Members { members }) = self
            .connection
            .request(Request::ListMembers { room_id: room.id })
            .await
        {
            self.store.set_members(room.id, &members).await?;
            self.note_presence(&members);
        }
        self.sync_room(room.id).await?;
        self.emit_room(room.id).await;
        Ok(())
    }

    async fn room_gone(&self, room: RoomId) -> Result<(), ClientError> {
        self.store.forget_room(room).await?;
        self.emit(ClientEvent::RoomRemoved { room_id: room });
        Ok(())
    }

    async fn sync_room(&self, room: RoomId) -> Result<usize, ClientError> {
        let mut applied = Vec::new();
        let count = outbox::sync_room_reporting(&self.connection, &self.store, room, |entry| {
            applied.push(entry.clone())
        })
        .await?;
        for entry in applied {
            self.emit(ClientEvent::Timeline { entry });
        }
        Ok(count)
    }

    /// Stores a timeline entry, then tells the UI about it and about its room's new state.
    async fn apply_entry(&self, entry: TimelineEntry) -> Result<(), ClientError> {
        self.store.apply(&entry).await?;
        let room = entry.room_id();
        self.emit(ClientEvent::Timeline { entry });
        self.emit_room(room).await;
        Ok(())
    }

    async fn applied_reply(&self, reply: Reply) -> Result<(), ClientError> {
        match reply {
            Reply::TimelineEntry { entry } => self.apply_entry(entry).await,
            other => Err(unexpected(other)),
        }
    }

    /// After every (re)connect: the room list, each room's missed timeline and members, then
    /// the outbox. Failures leave things for the next reconnect; nothing is lost.
    async fn resync(&self) {
        if let Err(e) = self.try_resync().await {
            tracing::warn!("re-sync incomplete: {e}");
            return;
        }
        self.deliver_now().await;
        self.emit(ClientEvent::Synced);
    }

    async fn try_resync(&self) -> Result<(), ClientError> {
        let rooms = match self.connection.request(Request::ListRooms).await? {
            Reply::Rooms { rooms } => rooms,
            other => return Err(unexpected(other)),
        };
        let current: HashSet<RoomId> = rooms.iter().map(|r| r.room.id).collect();
        for known in self.store.room_ids().await? {
            if !current.contains(&known) {
                self.room_gone(known).await?;
            }
        }
        for summary in &rooms {
            self.store.upsert_room(&summary.room).await?;
            self.store
                .set_read_marker(summary.room.id, summary.last_read_seq)
                .await?;
        }
        for summary in &rooms {
            let room = summary.room.id;
            self.sync_room(room).await?;
            if let Reply::Members { members } = self
                .connection
                .request(Request::ListMembers { room_id: room })
                .await?
            {
                self.store.set_members(room, &members).await?;
                self.note_presence(&members);
            }
        }
        self.emit(ClientEvent::Rooms {
            rooms: self.store.rooms(self.me.id).await?,
        });
        Ok(())
    }

    async fn deliver(self: Arc<Self>) {
        self.deliver_now().await;
    }

    async fn deliver_now(&self) {
        let _one_at_a_time = self.delivering.lock().await;
        let mut outcomes = Vec::new();
        let result =
            outbox::deliver_reporting(&self.connection, &self.store, |d| outcomes.push(d)).await;
        if let Err(e) = result {
            // Still pending; the next reconnect tries again.
            tracing::debug!("outbox delivery paused: {e}");
        }
        let mut rooms = Vec::new();
        for outcome in outcomes {
            let (view, entry) = match outcome {
                Delivery::Sent { client_id, message } => (
                    OutboxView {
                        client_id,
                        room_id: message.room_id,
                        text: message.text.clone(),
                        created_at: message.sent_at,
                        state: OutboxState::Sent { seq: message.seq },
                    },
                    Some(TimelineEntry::Message { message }),
                ),
                Delivery::Failed { client_id, error } => {
                    let Ok(Some(m)) = self.store.outbox_message(&client_id).await else {
                        continue;
                    };
                    let mut view = OutboxView::from(m);
                    view.state = OutboxState::Failed { error };
                    (view, None)
                }
            };
            rooms.push(view.room_id);
            self.emit(ClientEvent::Outbox { message: view });
            if let Some(entry) = entry {
                self.emit(ClientEvent::Timeline { entry });
            }
        }
        rooms.dedup();
        for room in rooms {
            self.emit_room(room).await;
        }
    }

    /// Hands the call engine the events that concern calls.
    fn route_to_calls(&self, event: &Event) {
        let for_calls = match event {
            Event::CallStarted { .. }
            | Event::CallParticipantJoined { .. }
            | Event::CallParticipantLeft { .. }
            | Event::CallParticipantDisconnected { .. }
            | Event::CallParticipantReconnected { .. }
            | Event::CallEnded { .. }
            | Event::CallDeclined { .. }
            | Event::CallBusy { .. }
            | Event::CallOffer { .. }
            | Event::CallAnswer { .. }
            | Event::CallIce { .. }
            | Event::RoomDeleted { .. } => true,
            Event::MemberLeft { user_id, .. } => *user_id == self.me.id,
            _ => false,
        };
        if for_calls {
            self.calls.send(EngineInput::Server(event.clone()));
        }
    }

    async fn on_server_event(&self, event: Event) {
        self.route_to_calls(&event);
        let result = self.apply_event(event).await;
        if let Err(e) = result {
            tracing::warn!("applying a server event: {e}");
        }
    }

    async fn apply_event(&self, event: Event) -> Result<(), ClientError> {
        match event {
            Event::Timeline { entry } => self.apply_entry(entry).await?,
            Event::RoomUpdated { room } => {
                self.store.upsert_room(&room).await?;
                self.emit_room(room.id).await;
            }
            Event::RoomDeleted { room_id } => self.room_gone(room_id).await?,
            Event::MemberJoined { room_id, user } => {
                if user.id == self.me.id {
                    // Joined on another device: fetch the room like a fresh sync.
                    self.try_resync().await?;
                } else {
                    self.store.add_member(room_id, &user).await?;
                    self.emit(ClientEvent::MemberJoined { room_id, user });
                }
            }
            Event::MemberLeft { room_id, user_id } => {
                if user_id == self.me.id {
                    self.room_gone(room_id).await?;
                } else {
                    self.store.remove_member(room_id, user_id).await?;
                    self.emit(ClientEvent::MemberLeft { room_id, user_id });
                }
            }
            Event::Presence { user_id, presence } => {
                if let Ok(mut known) = self.presence.lock() {
                    known.insert(user_id, presence);
                }
                self.emit(ClientEvent::Presence { user_id, presence });
            }
            Event::Typing {
                room_id,
                user_id,
                typing,
            } if user_id != self.me.id => self.emit(ClientEvent::Typing {
                room_id,
                user_id,
                typing,
            }),
            Event::ReadMarker { room_id, seq } => {
                self.store.set_read_marker(room_id, seq).await?;
                self.emit_room(room_id).await;
            }
            // Whether it rings here is the call engine's to say (IncomingCall).
            Event::CallStarted { call, .. } | Event::CallOngoing { call } => {
                self.emit(ClientEvent::CallOngoing { call })
            }
            Event::CallEnded { room_id, .. } => self.emit(ClientEvent::CallEnded { room_id }),
            Event::SessionRevoked => self.emit(ClientEvent::SessionEnded {
                reason: "the session was ended elsewhere".into(),
            }),
            // The rest is call signaling, for the call (or stale).
            _ => {}
        }
        Ok(())
    }
}
