//! A world of Parlor clients on simulated time, after str0m's test harness: the real server hub
//! (`parlor_signaling::hub::Hub`), one real `CallMachine` per client, and between them a
//! network that delivers each message after a delay (in order per socket, as TCP does).
//! `progress` always advances to the earliest thing due, so minutes of calls run in
//! milliseconds, and a seed makes every run the same.
//!
//! The peer connections are a model, not WebRTC (the RTC crate's tests run the real thing):
//! a description carries its ICE generation in `a=ice-ufrag` and its media sections, a
//! candidate carries the generation in `username_fragment`, and a link connects when both
//! sides hold each other's current descriptions and candidates and the media path between
//! them is up. A path that goes down makes the link `disconnected` after 5 s and `failed` 25 s
//! later (webrtc-rs's defaults); only an ICE restart (new generations) brings a failed link
//! back. Only what the scenarios need is modelled.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use parlor_client::call::{
    Action, CallEvent, CallMachine, CallState, EndReason, Input, LocalMedia, Step,
};
use parlor_protocol::{CallInfo, Event, IceCandidate, RoomId, UserId};
use parlor_rtc::{ConnectionState, MediaKind};
use parlor_signaling::hub::{ConnId, Hub, HubConfig, Output, Relay};

/// The ways a message takes. The socket is one TCP stream, but in the client the server's
/// replies and its events reach the call machine by different paths (a request's waiter, the
/// client's event loop), so an event sent after a reply may be handled before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    ToServer,
    Events,
    Replies,
}

/// One way, client to server or back: a signaling message's base delay.
pub const LATENCY: Duration = Duration::from_millis(20);
/// Up to this much more, drawn per message (still in order per socket).
pub const JITTER_MS: u64 = 15;
const DISCONNECTED_AFTER: Duration = Duration::from_secs(5);
const FAILED_AFTER: Duration = Duration::from_secs(30);
/// ICE checks and the DTLS handshake once both sides can: a few round trips.
const CONNECT_TIME: Duration = Duration::from_millis(60);
/// A bound on the steps of any run (each step handles at least one due thing).
const MAX_STEPS: usize = 200_000;

/// A small deterministic random source (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A request on its way to the server, and what to tell the client if it fails.
#[derive(Debug, Clone)]
enum Request {
    Join(RoomId),
    Leave(RoomId),
    Refuse {
        room: RoomId,
        busy: bool,
    },
    Relay {
        room: RoomId,
        to: UserId,
        relay: Relay,
        on_fail: Option<Step>,
    },
}

#[derive(Debug, Clone)]
enum Message {
    ToServer {
        conn: ConnId,
        request: Request,
    },
    /// An event for socket `conn`.
    ToClient {
        conn: ConnId,
        event: Event,
    },
    /// The server's welcome after authenticating `conn`, complete.
    Welcome {
        conn: ConnId,
        events: Vec<Event>,
    },
    JoinReply {
        conn: ConnId,
        room: RoomId,
        call: Option<CallInfo>,
    },
    /// A refused relay: the sender's step failed.
    Refused {
        conn: ConnId,
        to: UserId,
        step: Step,
        error: String,
    },
}

struct Delivery {
    at: Instant,
    message: Message,
}

/// The model of one side's peer connection to another participant.
#[derive(Debug, Default)]
struct SimPc {
    /// This side's ICE generation (its credentials).
    generation: u32,
    /// The generation of the local description in force (an offer out, or the last answer).
    local: Option<u32>,
    /// The local description before an unanswered offer (what a rollback returns to).
    stable_local: Option<u32>,
    remote: Option<u32>,
    remote_candidates: HashSet<u32>,
    /// Media sections agreed so far.
    sections: LocalMedia,
}

/// The model of the ICE/DTLS state of a pair of peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairState {
    Checking,
    Connected,
    Disconnected,
    Failed,
}

#[derive(Debug)]
struct Pair {
    state: PairState,
    connect_at: Option<Instant>,
    down_since: Option<Instant>,
    /// The generations that failed: a restart must change them.
    failed: Option<(Option<u32>, Option<u32>)>,
}

pub struct Client {
    pub user: UserId,
    pub machine: CallMachine,
    /// The socket, while signaling is up.
    conn: Option<ConnId>,
    session: i64,
    pcs: BTreeMap<UserId, SimPc>,
    media: LocalMedia,
    /// What the UI was told, with the time since the world started.
    pub events: Vec<(Duration, CallEvent)>,
    /// Offers made: when, to whom, whether an ICE restart.
    pub offers: Vec<(Duration, UserId, bool)>,
}

impl Client {
    pub fn ended(&self) -> Option<EndReason> {
        self.events.iter().rev().find_map(|(_, e)| match e {
            CallEvent::Ended { reason } => Some(*reason),
            _ => None,
        })
    }

    pub fn saw(&self, wanted: &CallEvent) -> bool {
        self.events.iter().any(|(_, e)| e == wanted)
    }

    pub fn restarts_to(&self, user: UserId) -> usize {
        self.restart_times(user).len()
    }

    /// When ICE restarts were offered to `user`.
    pub fn restart_times(&self, user: UserId) -> Vec<Duration> {
        self.offers
            .iter()
            .filter(|(_, u, restart)| *u == user && *restart)
            .map(|(at, _, _)| *at)
            .collect()
    }

    pub fn in_call(&self) -> bool {
        matches!(self.machine.state(), CallState::InCall { .. })
    }
}

pub struct World {
    t0: Instant,
    pub now: Instant,
    hub: Hub,
    pub clients: BTreeMap<UserId, Client>,
    direct_rooms: HashSet<RoomId>,
    queue: Vec<Delivery>,
    /// When the last message on each socket's lane arrives: nothing overtakes it there.
    last_on: HashMap<(ConnId, Lane), Instant>,
    conn_users: HashMap<ConnId, UserId>,
    next_conn: ConnId,
    paths_down: HashSet<(UserId, UserId)>,
    pairs: BTreeMap<(UserId, UserId), Pair>,
    rng: Rng,
}

fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    (a.min(b), a.max(b))
}

fn description(generation: u32, sections: LocalMedia) -> String {
    let mut sdp = format!("v=0\r\no=- {generation} 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    for (open, kind, format) in [
        (sections.audio, "audio", 111),
        (sections.video, "video", 96),
    ] {
        if open {
            sdp += &format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF {format}\r\nc=IN IP4 0.0.0.0\r\n\
                 a=ice-ufrag:g{generation}\r\na=mid:{kind}\r\n"
            );
        }
    }
    if !sections.audio && !sections.video {
        sdp += &format!(
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:g{generation}\r\na=mid:data\r\n"
        );
    }
    sdp
}

fn generation_of(sdp: &str) -> u32 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:g"))
        .and_then(|g| g.trim().parse().ok())
        .expect("a modelled description")
}

fn sections_of(sdp: &str) -> LocalMedia {
    LocalMedia {
        audio: sdp.contains("m=audio 9"),
        video: sdp.contains("m=video 9"),
    }
}

fn candidate(generation: u32) -> IceCandidate {
    IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: Some(format!("g{generation}")),
    }
}

impl World {
    pub fn new(seed: u64) -> Self {
        let t0 = Instant::now();
        World {
            t0,
            now: t0,
            hub: Hub::new(HubConfig::default()),
            clients: BTreeMap::new(),
            direct_rooms: HashSet::new(),
            queue: Vec::new(),
            last_on: HashMap::new(),
            conn_users: HashMap::new(),
            next_conn: 1,
            paths_down: HashSet::new(),
            pairs: BTreeMap::new(),
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        }
    }

    /// Time since the world started.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    pub fn grace(&self) -> Duration {
        self.hub.config().call_grace
    }

    /// A room with `members`, each of them a connected client with a camera and a microphone.
    pub fn room(&mut self, room: RoomId, members: &[UserId], direct: bool) {
        self.hub.load_room(room, members.iter().copied());
        if direct {
            self.direct_rooms.insert(room);
        }
        for &user in members {
            if let std::collections::btree_map::Entry::Vacant(entry) = self.clients.entry(user) {
                entry.insert(Client {
                    user,
                    machine: CallMachine::new(user),
                    conn: None,
                    session: user,
                    pcs: BTreeMap::new(),
                    media: LocalMedia {
                        audio: true,
                        video: true,
                    },
                    events: Vec::new(),
                    offers: Vec::new(),
                });
                self.sign_in(user);
            }
        }
        self.pump_hub();
    }

    pub fn client(&self, user: UserId) -> &Client {
        &self.clients[&user]
    }

    pub fn hub_call(&self, room: RoomId) -> Option<CallInfo> {
        self.hub.call(room)
    }

    /// Both sides of the a–b link say it is connected.
    pub fn connected(&self, a: UserId, b: UserId) -> bool {
        self.clients[&a].machine.is_connected(b) && self.clients[&b].machine.is_connected(a)
    }

    /// The media sections `a`'s link to `b` has agreed.
    pub fn negotiated(&self, a: UserId, b: UserId) -> LocalMedia {
        self.clients[&a]
            .pcs
            .get(&b)
            .map(|pc| pc.sections)
            .unwrap_or_default()
    }

    /// Every pair of `users` is connected.
    pub fn mesh_connected(&self, users: &[UserId]) -> bool {
        users
            .iter()
            .enumerate()
            .all(|(i, &a)| users[i + 1..].iter().all(|&b| self.connected(a, b)))
    }

    // ----- what people do -----

    pub fn start_call(&mut self, user: UserId, room: RoomId) {
        let direct = self.direct_rooms.contains(&room);
        let media = self.clients[&user].media;
        self.input(user, Input::StartCall { room, direct });
        self.input(user, Input::LocalMedia(media));
    }

    pub fn decline(&mut self, user: UserId, room: RoomId) {
        self.input(user, Input::Decline { room });
    }

    pub fn hang_up(&mut self, user: UserId) {
        self.input(user, Input::Leave);
    }

    /// `user` turns the camera on (the call had none: the machine has one opened).
    pub fn add_camera(&mut self, user: UserId) {
        self.input(
            user,
            Input::SetSending {
                kind: MediaKind::Video,
                enabled: true,
            },
        );
    }

    /// A client that starts without a camera.
    pub fn without_camera(&mut self, user: UserId) {
        self.clients.get_mut(&user).unwrap().media.video = false;
    }

    /// `user`'s connection to the server drops (the server notices at once).
    pub fn drop_signaling(&mut self, user: UserId) {
        let client = self.clients.get_mut(&user).unwrap();
        if let Some(conn) = client.conn.take() {
            self.hub.disconnect(conn, self.now);
            self.pump_hub();
        }
        self.input(user, Input::SignalingLost);
    }

    /// `user`'s client reconnects and authenticates with the same session.
    pub fn restore_signaling(&mut self, user: UserId) {
        self.sign_in(user);
        self.pump_hub();
    }

    /// The media path between `a` and `b` stops (or starts again) carrying packets.
    pub fn set_path(&mut self, a: UserId, b: UserId, up: bool) {
        if up {
            self.paths_down.remove(&pair(a, b));
        } else {
            self.paths_down.insert(pair(a, b));
        }
        self.settle();
    }

    // ----- time -----

    /// Runs until `d` from now.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..MAX_STEPS {
            match self.next_deadline() {
                Some(next) if next <= until => self.step(next),
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("more than {MAX_STEPS} steps in {d:?}");
    }

    /// Runs until `done` holds, for at most `limit` of simulated time; true if it held.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&World) -> bool) -> bool {
        let until = self.now + limit;
        for _ in 0..MAX_STEPS {
            if done(self) {
                return true;
            }
            match self.next_deadline() {
                Some(next) if next <= until => self.step(next),
                _ => {
                    self.now = until;
                    return done(self);
                }
            }
        }
        panic!("more than {MAX_STEPS} steps");
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let deliveries = self.queue.iter().map(|d| d.at).min();
        let machines = self
            .clients
            .values()
            .filter_map(|c| c.machine.poll_timeout())
            .min();
        let pairs = self
            .pairs
            .values()
            .flat_map(|p| {
                let down = p.down_since.map(|t| {
                    if p.state == PairState::Connected {
                        t + DISCONNECTED_AFTER
                    } else {
                        t + FAILED_AFTER
                    }
                });
                let down = down.filter(|_| p.state != PairState::Failed);
                [p.connect_at, down]
            })
            .flatten()
            .min();
        [deliveries, machines, self.hub.poll_timeout(), pairs]
            .into_iter()
            .flatten()
            .min()
    }

    /// Advances to `next` (the earliest thing due) and handles everything due then.
    fn step(&mut self, next: Instant) {
        self.now = self.now.max(next);
        let now = self.now;
        let mut due: Vec<Delivery> = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].at <= now {
                due.push(self.queue.remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|d| d.at);
        for delivery in due {
            self.deliver(delivery.message);
        }
        if self.hub.poll_timeout().is_some_and(|t| t <= now) {
            self.hub.handle_timeout(now);
            self.pump_hub();
        }
        let users: Vec<UserId> = self.clients.keys().copied().collect();
        for user in users {
            let client = self.clients.get_mut(&user).unwrap();
            if client.machine.poll_timeout().is_some_and(|t| t <= now) {
                client.machine.handle_timeout(now);
                self.carry_out(user);
            }
        }
        self.settle();
    }

    // ----- signaling -----

    fn sign_in(&mut self, user: UserId) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.conn_users.insert(conn, user);
        let client = self.clients.get_mut(&user).unwrap();
        client.conn = Some(conn);
        let session = client.session;
        self.hub.connect(conn, user, session, self.now);
        // What the hub says to the new socket now is its welcome; a ping's reply marks its end.
        let mut welcome = Vec::new();
        let mut rest = Vec::new();
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send { to, event } if to.contains(&conn) => {
                    welcome.push((*event).clone());
                    let others: Vec<ConnId> = to.into_iter().filter(|c| *c != conn).collect();
                    rest.push((others, (*event).clone()));
                }
                Output::Send { to, event } => rest.push((to, (*event).clone())),
                Output::Close { .. } => {}
            }
        }
        self.send(
            conn,
            Lane::Events,
            Message::Welcome {
                conn,
                events: welcome,
            },
        );
        for (to, event) in rest {
            self.send_event(to, &event);
        }
    }

    /// Queues `event` to each of the sockets `to`.
    fn send_event(&mut self, to: Vec<ConnId>, event: &Event) {
        for conn in to {
            let event = event.clone();
            self.send(conn, Lane::Events, Message::ToClient { conn, event });
        }
    }

    /// Queues a message on socket `conn`'s `lane`.
    fn send(&mut self, conn: ConnId, lane: Lane, message: Message) {
        let jitter = Duration::from_millis(self.rng.below(JITTER_MS + 1));
        let earliest = self.now + LATENCY + jitter;
        let last = self.last_on.entry((conn, lane)).or_insert(earliest);
        let at = earliest.max(*last);
        *last = at;
        self.queue.push(Delivery { at, message });
    }

    fn pump_hub(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            if let Output::Send { to, event } = output {
                self.send_event(to, &event);
            }
        }
    }

    fn now_ms(&self) -> i64 {
        1_700_000_000_000 + self.elapsed().as_millis() as i64
    }

    /// A request from `user`: fails at once without a socket, as the real connection does.
    fn request(&mut self, user: UserId, request: Request) {
        match self.clients[&user].conn {
            Some(conn) => self.send(conn, Lane::ToServer, Message::ToServer { conn, request }),
            None => {
                let failed = match request {
                    Request::Join(room) => Some(Input::JoinFailed { room }),
                    Request::Relay {
                        to,
                        on_fail: Some(step),
                        ..
                    } => Some(Input::StepFailed {
                        user: Some(to),
                        step,
                        error: "disconnected".into(),
                    }),
                    _ => None,
                };
                if let Some(input) = failed {
                    self.input(user, input);
                }
            }
        }
    }

    fn deliver(&mut self, message: Message) {
        match message {
            Message::ToServer { conn, request } => self.serve(conn, request),
            Message::ToClient { conn, event } => {
                if let Some(user) = self.live_user(conn) {
                    self.input(user, Input::Server(event));
                }
            }
            Message::Welcome { conn, events } => {
                if let Some(user) = self.live_user(conn) {
                    let resumed = events.iter().find_map(|e| match e {
                        Event::CallResumed { call } => Some(call.clone()),
                        _ => None,
                    });
                    self.input(user, Input::SignalingBack { resumed });
                    for event in events {
                        self.input(user, Input::Server(event));
                    }
                }
            }
            Message::JoinReply { conn, room, call } => {
                if let Some(user) = self.live_user(conn) {
                    let input = match call {
                        Some(call) => Input::Joined { call },
                        None => Input::JoinFailed { room },
                    };
                    self.input(user, input);
                }
            }
            Message::Refused {
                conn,
                to,
                step,
                error,
            } => {
                if let Some(user) = self.live_user(conn) {
                    self.input(
                        user,
                        Input::StepFailed {
                            user: Some(to),
                            step,
                            error,
                        },
                    );
                }
            }
        }
    }

    /// The user whose current socket `conn` is (a message to a closed socket is lost).
    fn live_user(&self, conn: ConnId) -> Option<UserId> {
        let user = *self.conn_users.get(&conn)?;
        (self.clients[&user].conn == Some(conn)).then_some(user)
    }

    /// The server handles a request that reached it.
    fn serve(&mut self, conn: ConnId, request: Request) {
        if self.live_user(conn).is_none() {
            return; // the socket closed while it was on its way
        }
        match request {
            Request::Join(room) => {
                let call = self.hub.call_join(conn, room, self.now_ms()).ok();
                self.send(conn, Lane::Replies, Message::JoinReply { conn, room, call });
            }
            Request::Leave(room) => {
                let _ = self.hub.call_leave(conn, room);
            }
            Request::Refuse { room, busy } => {
                let _ = self.hub.call_refuse(conn, room, busy);
            }
            Request::Relay {
                room,
                to,
                relay,
                on_fail,
            } => {
                if let Err(e) = self.hub.call_relay(conn, room, to, relay) {
                    if let Some(step) = on_fail {
                        let error = e.message;
                        self.send(
                            conn,
                            Lane::Replies,
                            Message::Refused {
                                conn,
                                to,
                                step,
                                error,
                            },
                        );
                    }
                }
            }
        }
        self.pump_hub();
    }

    // ----- the executor's part -----

    fn input(&mut self, user: UserId, input: Input) {
        let now = self.now;
        self.clients
            .get_mut(&user)
            .unwrap()
            .machine
            .handle(now, input);
        self.carry_out(user);
    }

    /// Carries out `user`'s machine's actions (as `call_session` does) and records its events.
    fn carry_out(&mut self, user: UserId) {
        loop {
            let client = self.clients.get_mut(&user).unwrap();
            if let Some(event) = client.machine.poll_event() {
                client.events.push((self.now - self.t0, event));
                continue;
            }
            let Some(action) = client.machine.poll_action() else {
                break;
            };
            self.carry_out_one(user, action);
        }
    }

    fn carry_out_one(&mut self, user: UserId, action: Action) {
        let room = self.clients[&user].machine.room();
        match action {
            Action::JoinCall { room } => self.request(user, Request::Join(room)),
            Action::LeaveCall { room } => self.request(user, Request::Leave(room)),
            Action::DeclineCall { room } => {
                self.request(user, Request::Refuse { room, busy: false })
            }
            Action::BusyCall { room } => self.request(user, Request::Refuse { room, busy: true }),
            Action::CreateLink { user: to } => {
                let client = self.clients.get_mut(&user).unwrap();
                client.pcs.insert(to, SimPc::default());
            }
            Action::CloseLink { user: to } => {
                self.clients.get_mut(&user).unwrap().pcs.remove(&to);
            }
            Action::Offer {
                user: to,
                restart_ice,
            } => {
                let client = self.clients.get_mut(&user).unwrap();
                let media = client.media;
                let Some(pc) = client.pcs.get_mut(&to) else {
                    return;
                };
                if restart_ice || pc.local.is_none() {
                    pc.generation += 1;
                }
                let generation = pc.generation;
                let sections = LocalMedia {
                    audio: media.audio || pc.sections.audio,
                    video: media.video || pc.sections.video,
                };
                pc.stable_local = pc.stable_local.or(pc.local);
                pc.local = Some(generation);
                client.offers.push((self.now - self.t0, to, restart_ice));
                let room = room.expect("an offer in a call");
                self.request(
                    user,
                    Request::Relay {
                        room,
                        to,
                        relay: Relay::Offer(description(generation, sections)),
                        on_fail: Some(Step::Offer { restart_ice }),
                    },
                );
                self.trickle(user, to, room, generation);
            }
            Action::Answer {
                user: to,
                sdp,
                rollback,
            } => {
                let client = self.clients.get_mut(&user).unwrap();
                let Some(pc) = client.pcs.get_mut(&to) else {
                    return;
                };
                if rollback {
                    pc.local = pc.stable_local;
                }
                let remote = generation_of(&sdp);
                // An offer with new credentials (an ICE restart) is answered with new ones.
                if pc.local.is_none() || pc.remote.is_some_and(|r| r != remote) {
                    pc.generation += 1;
                }
                pc.remote = Some(remote);
                pc.sections = sections_of(&sdp);
                let generation = pc.generation;
                pc.local = Some(generation);
                pc.stable_local = Some(generation);
                let sections = pc.sections;
                let room = room.expect("an answer in a call");
                self.request(
                    user,
                    Request::Relay {
                        room,
                        to,
                        relay: Relay::Answer(description(generation, sections)),
                        on_fail: Some(Step::Answer),
                    },
                );
                self.trickle(user, to, room, generation);
                self.input(user, Input::RemoteDescriptionSet { user: to });
            }
            Action::ApplyAnswer { user: to, sdp } => {
                let client = self.clients.get_mut(&user).unwrap();
                let Some(pc) = client.pcs.get_mut(&to) else {
                    return;
                };
                pc.remote = Some(generation_of(&sdp));
                pc.sections = sections_of(&sdp);
                pc.stable_local = pc.local;
                self.input(user, Input::RemoteDescriptionSet { user: to });
            }
            // The device opens at once, and sends.
            Action::OpenDevice { kind } => {
                let media = &mut self.clients.get_mut(&user).unwrap().media;
                match kind {
                    MediaKind::Audio => media.audio = true,
                    MediaKind::Video => media.video = true,
                }
                self.input(user, Input::DeviceOpened { kind });
            }
            Action::EnableTrack { .. } => {}
            Action::ApplyCandidate {
                user: to,
                candidate,
            } => {
                let client = self.clients.get_mut(&user).unwrap();
                if let Some(pc) = client.pcs.get_mut(&to) {
                    let generation = candidate
                        .username_fragment
                        .as_deref()
                        .and_then(|u| u.strip_prefix('g'))
                        .and_then(|g| g.parse().ok())
                        .expect("a modelled candidate");
                    pc.remote_candidates.insert(generation);
                }
            }
        }
    }

    /// The candidate gathered for a new local description, sent as the executor sends them.
    fn trickle(&mut self, user: UserId, to: UserId, room: RoomId, generation: u32) {
        self.request(
            user,
            Request::Relay {
                room,
                to,
                relay: Relay::Ice(candidate(generation)),
                on_fail: None,
            },
        );
    }

    // ----- the links' model -----

    /// Whether a and b hold each other's current descriptions and candidates.
    fn ready(&self, a: UserId, b: UserId) -> Option<(Option<u32>, Option<u32>)> {
        let pa = self.clients[&a].pcs.get(&b)?;
        let pb = self.clients[&b].pcs.get(&a)?;
        let (la, lb) = (pa.local?, pb.local?);
        let matched = pb.remote == Some(la)
            && pa.remote == Some(lb)
            && pa.remote_candidates.contains(&lb)
            && pb.remote_candidates.contains(&la);
        matched.then_some((Some(la), Some(lb)))
    }

    /// Brings every link's model up to now, telling the machines of changes, until nothing
    /// changes.
    fn settle(&mut self) {
        let now = self.now;
        let mut keys: HashSet<(UserId, UserId)> = self.pairs.keys().copied().collect();
        for client in self.clients.values() {
            for &other in client.pcs.keys() {
                keys.insert(pair(client.user, other));
            }
        }
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort_unstable();
        for (a, b) in keys {
            let both =
                self.clients[&a].pcs.contains_key(&b) && self.clients[&b].pcs.contains_key(&a);
            let either =
                self.clients[&a].pcs.contains_key(&b) || self.clients[&b].pcs.contains_key(&a);
            if !either {
                self.pairs.remove(&(a, b));
                continue;
            }
            let up = both && !self.paths_down.contains(&(a, b));
            let ready = self.ready(a, b);
            let entry = self.pairs.entry((a, b)).or_insert(Pair {
                state: PairState::Checking,
                connect_at: None,
                down_since: None,
                failed: None,
            });
            let mut changed = None;
            match entry.state {
                PairState::Checking | PairState::Failed => {
                    let restarted = entry.failed.is_none() || ready != entry.failed;
                    if up && ready.is_some() && restarted {
                        match entry.connect_at {
                            None => entry.connect_at = Some(now + CONNECT_TIME),
                            Some(t) if t <= now => {
                                entry.connect_at = None;
                                entry.failed = None;
                                entry.state = PairState::Connected;
                                changed = Some(ConnectionState::Connected);
                            }
                            Some(_) => {}
                        }
                    } else {
                        entry.connect_at = None;
                    }
                }
                PairState::Connected | PairState::Disconnected => {
                    if up {
                        entry.down_since = None;
                        if entry.state == PairState::Disconnected {
                            // Consent checks get through again.
                            entry.state = PairState::Connected;
                            changed = Some(ConnectionState::Connected);
                        }
                    } else {
                        let since = *entry.down_since.get_or_insert(now);
                        if entry.state == PairState::Connected && now >= since + DISCONNECTED_AFTER
                        {
                            entry.state = PairState::Disconnected;
                            changed = Some(ConnectionState::Disconnected);
                        } else if entry.state == PairState::Disconnected
                            && now >= since + FAILED_AFTER
                        {
                            entry.state = PairState::Failed;
                            entry.down_since = None;
                            entry.failed = ready.or(Some((None, None)));
                            changed = Some(ConnectionState::Failed);
                        }
                    }
                }
            }
            if let Some(state) = changed {
                for (me, other) in [(a, b), (b, a)] {
                    if self.clients[&me].pcs.contains_key(&other) {
                        self.input(me, Input::LinkState { user: other, state });
                    }
                }
                // A change can make another one due at once.
                return self.settle();
            }
        }
    }
}
