//! The client's calls as one pure state machine, shaped like the server's hub: inputs (from the
//! server, from the peer connections, from the user) go in with the time they happened,
//! actions come out for the executor (`call_session`) to carry out, events come out for the UI,
//! and timers are asked for with [`CallMachine::poll_timeout`]. It has no I/O and no clock, so
//! scenarios of many clients run on simulated time (`tests/call_scenarios.rs`).
//!
//! It decides:
//! - **ringing**: a call started elsewhere rings until it is answered (here or on another
//!   device), declined, ended, or the ring timeout (missed); a ring while in another call is
//!   answered `busy`;
//! - **1:1 calls** (a direct room): ours rings the other side until they join; no answer within
//!   the ring timeout, a decline or a busy ends it, and so does the other side hanging up. A
//!   group room's call is a place: it goes on with whoever is in it, alone included, so others
//!   can come later;
//! - **who offers to whom**: the lower user id, always, so two sides never offer at once;
//!   renegotiation (a track added) may start on either side, and when both offer at once the
//!   lower id keeps its offer while the higher rolls its own back, answers, then offers again
//!   (WebRTC's "perfect negotiation"); an answer with no section for a track of ours is followed
//!   by our own offer;
//! - **repair**: a link `disconnected` for a moment or `failed` gets an ICE restart from its
//!   offerer, tried again with backoff until it connects; an offer that could not go out is
//!   tried again the same way;
//! - **signaling drops**: the call goes on (media is direct) while the client reconnects; the
//!   server's `call_resumed` keeps it, and a reconnect without it (the place ran out, or the
//!   server restarted) ends it.
mod event;
mod link;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use parlor_protocol::{CallInfo, Event, IceCandidate, RoomId, UserId};
use parlor_rtc::{ConnectionState, MediaKind, OpenSections};

pub use event::{CallEvent, EndReason};
use link::{Link, Retry};

use crate::reconnect::ReconnectPolicy;

/// The machine's clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTiming {
    /// How long a call rings: an incoming one before it is missed, our 1:1 call before it
    /// ends unanswered.
    pub ring_timeout: Duration,
    /// How long a link may stay `disconnected` (a moment's loss it may recover from by itself)
    /// before its offerer restarts ICE.
    pub disconnected_wait: Duration,
    /// When ICE restarts that did not reconnect, and offers that failed, are tried again, and
    /// how many times.
    pub retry: ReconnectPolicy,
}

impl Default for CallTiming {
    fn default() -> Self {
        CallTiming {
            ring_timeout: Duration::from_secs(45),
            disconnected_wait: Duration::from_secs(2),
            retry: ReconnectPolicy {
                max_attempts: Some(6),
                base: Duration::from_secs(2),
                max_delay: Duration::from_secs(16),
                ..ReconnectPolicy::default()
            },
        }
    }
}

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

/// Which local tracks the call has (or, for what is sent, which of them are on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalMedia {
    pub audio: bool,
    pub video: bool,
}

impl LocalMedia {
    fn get(&self, kind: MediaKind) -> bool {
        match kind {
            MediaKind::Audio => self.audio,
            MediaKind::Video => self.video,
        }
    }

    fn set(&mut self, kind: MediaKind, on: bool) {
        match kind {
            MediaKind::Audio => self.audio = on,
            MediaKind::Video => self.video = on,
        }
    }
}

/// A step the executor carries out that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateLink,
    Offer { restart_ice: bool },
    Answer,
    ApplyAnswer,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The user starts or joins `room`'s call (accepting its ring, if it rings); `direct`: the
    /// room is a 1:1 conversation.
    StartCall {
        room: RoomId,
        direct: bool,
    },
    /// The local tracks the call has now (at its start, and when one is added); a new one sends.
    LocalMedia(LocalMedia),
    /// The user turns the microphone (audio) or camera (video) on or off.
    SetSending {
        kind: MediaKind,
        enabled: bool,
    },
    /// The user picked another microphone or camera.
    SwitchDevice {
        kind: MediaKind,
    },
    /// The device asked for with [`Action::OpenDevice`] is open and sending: its track exists.
    DeviceOpened {
        kind: MediaKind,
    },
    /// A server event about calls, as it came. Events of a call other than ours (one that ended
    /// before this one began in the same room, whose last words arrive late) are dropped, and
    /// those that come while we are joining wait for the join's reply, which says which call we
    /// are in (the reply and the events reach the machine by different paths).
    Server(Event),
    Ring {
        call: CallInfo,
        by: UserId,
    },
    Decline {
        room: RoomId,
    },
    Joined {
        call: CallInfo,
    },
    JoinFailed {
        room: RoomId,
    },
    ParticipantJoined {
        room: RoomId,
        user: UserId,
    },
    ParticipantLeft {
        room: RoomId,
        user: UserId,
    },
    ParticipantAway {
        room: RoomId,
        user: UserId,
    },
    ParticipantBack {
        room: RoomId,
        user: UserId,
    },
    CallEnded {
        room: RoomId,
    },
    RoomGone {
        room: RoomId,
    },
    Declined {
        room: RoomId,
        user: UserId,
    },
    Busy {
        room: RoomId,
        user: UserId,
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
    /// The peer connection to `user` changed state.
    LinkState {
        user: UserId,
        state: ConnectionState,
    },
    /// Media from `user` started arriving.
    RemoteTrack {
        user: UserId,
        kind: String,
    },
    /// `user` offered `kind` media only in codecs we do not have; that section was refused.
    MediaRefused {
        user: UserId,
        kind: String,
        offered: Vec<String>,
    },
    /// A step failed: `user`'s link's, or the call's when `None`.
    StepFailed {
        user: Option<UserId>,
        step: Step,
        error: String,
    },
    /// The connection to the server dropped.
    SignalingLost,
    /// The connection to the server is back, and the server has said all it says on
    /// authentication: `resumed` is the call it took us back into, if any.
    SignalingBack {
        resumed: Option<CallInfo>,
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
    /// Open the chosen device of `kind` and send from it: into its track if there is one,
    /// else into a new track on every link.
    OpenDevice {
        kind: MediaKind,
    },
    /// Send (or stop sending) the track of `kind`, which stays negotiated either way.
    EnableTrack {
        kind: MediaKind,
        enabled: bool,
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
            Action::JoinCall { .. }
            | Action::LeaveCall { .. }
            | Action::DeclineCall { .. }
            | Action::BusyCall { .. }
            | Action::OpenDevice { .. }
            | Action::EnableTrack { .. } => None,
        }
    }
}

/// Most server events kept while a join is on its way (a bound on memory).
const MAX_HELD_EVENTS: usize = 256;

/// The room and call a server event is about, for events about one call's course.
fn call_scope(event: &Event) -> Option<(RoomId, &str)> {
    match event {
        Event::CallParticipantJoined {
            room_id, call_id, ..
        }
        | Event::CallParticipantLeft {
            room_id, call_id, ..
        }
        | Event::CallParticipantDisconnected {
            room_id, call_id, ..
        }
        | Event::CallParticipantReconnected {
            room_id, call_id, ..
        }
        | Event::CallEnded { room_id, call_id }
        | Event::CallDeclined {
            room_id, call_id, ..
        }
        | Event::CallBusy {
            room_id, call_id, ..
        }
        | Event::CallOffer {
            room_id, call_id, ..
        }
        | Event::CallAnswer {
            room_id, call_id, ..
        }
        | Event::CallIce {
            room_id, call_id, ..
        } => Some((*room_id, call_id.as_str())),
        _ => None,
    }
}

#[derive(Debug)]
pub struct CallMachine {
    me: UserId,
    timing: CallTiming,
    state: CallState,
    /// The call's room is a 1:1 conversation.
    direct: bool,
    /// When the incoming ring is missed.
    ring_until: Option<Instant>,
    /// When our 1:1 call, still ringing the other side, ends unanswered.
    answer_until: Option<Instant>,
    links: BTreeMap<UserId, Link>,
    /// The local tracks there are.
    local: LocalMedia,
    /// Those of them sending (not muted, camera not off).
    sending: LocalMedia,
    signaling_up: bool,
    /// Server events that came while joining, for the call the join's reply names.
    held: Vec<Event>,
    actions: VecDeque<Action>,
    events: VecDeque<CallEvent>,
}

impl CallMachine {
    pub fn new(me: UserId) -> Self {
        Self::with_timing(me, CallTiming::default())
    }

    pub fn with_timing(me: UserId, timing: CallTiming) -> Self {
        CallMachine {
            me,
            timing,
            state: CallState::Idle,
            direct: false,
            ring_until: None,
            answer_until: None,
            links: BTreeMap::new(),
            local: LocalMedia::default(),
            sending: LocalMedia::default(),
            signaling_up: true,
            held: Vec::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn me(&self) -> UserId {
        self.me
    }

    pub fn state(&self) -> &CallState {
        &self.state
    }

    /// Users this side has a link to.
    pub fn linked(&self) -> Vec<UserId> {
        self.links.keys().copied().collect()
    }

    /// Whether the link to `user` is connected.
    pub fn is_connected(&self, user: UserId) -> bool {
        self.links.get(&user).is_some_and(|l| l.connected)
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing to tell the UI, in order.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// When [`CallMachine::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring = match self.state {
            CallState::Ringing { .. } => self.ring_until,
            _ => None,
        };
        // Offers cannot go out while signaling is down; the reconnect brings them back.
        let retries = self
            .links
            .values()
            .filter(|_| self.signaling_up)
            .filter_map(|l| l.retry.map(|r| r.at));
        [ring, self.answer_until]
            .into_iter()
            .flatten()
            .chain(retries)
            .min()
    }

    pub fn set_timing(&mut self, timing: CallTiming) {
        self.timing = timing;
    }

    /// The room of the call we are in, joining, or being rung for.
    pub fn room(&self) -> Option<RoomId> {
        match &self.state {
            CallState::InCall { room, .. }
            | CallState::Joining { room }
            | CallState::Ringing { room, .. } => Some(*room),
            CallState::Idle => None,
        }
    }

    fn in_call(&self, room: RoomId) -> bool {
        matches!(&self.state, CallState::InCall { room: r, .. } if *r == room)
    }

    fn in_call_or_joining(&self) -> bool {
        matches!(
            self.state,
            CallState::InCall { .. } | CallState::Joining { .. }
        )
    }

    fn emit(&mut self, event: CallEvent) {
        self.events.push_back(event);
    }

    fn link(&mut self, user: UserId) {
        if user == self.me || self.links.contains_key(&user) {
            return;
        }
        let link = Link::new(self.me < user);
        let offerer = link.offerer;
        self.links.insert(user, link);
        self.actions.push_back(Action::CreateLink { user });
        if offerer {
            self.actions.push_back(Action::Offer {
                user,
                restart_ice: false,
            });
        }
    }

    /// Offers now, or right after the answer to the offer already out.
    fn offer_when_stable(user: UserId, link: &mut Link, actions: &mut VecDeque<Action>) {
        if link.offer_pending {
            link.offer_again = true;
        } else {
            link.offer_pending = true;
            actions.push_back(Action::Offer {
                user,
                restart_ice: false,
            });
        }
    }

    /// An ICE restart on `user`'s link now, checked again after the backoff.
    fn restart_ice(&mut self, now: Instant, user: UserId) {
        let Some(link) = self.links.get_mut(&user) else {
            return;
        };
        if !link.retry_later(now, &self.timing.retry, true) {
            self.events.push_back(CallEvent::Failed {
                user_id: Some(user),
                error: format!(
                    "the connection did not come back after {} ICE restarts",
                    link.attempts - 1
                ),
            });
            return;
        }
        if !self.signaling_up {
            // Nothing can be sent; the reconnect restarts what is still down.
            return;
        }
        link.offer_pending = true;
        link.offer_again = false;
        self.actions.push_back(Action::Offer {
            user,
            restart_ice: true,
        });
    }

    /// A local track of `kind` exists (and sends); a new one is offered on every link.
    fn track_added(&mut self, kind: MediaKind) {
        if self.local.get(kind) {
            return;
        }
        self.local.set(kind, true);
        self.sending.set(kind, true);
        // Whoever added a track offers, on every link.
        for (user, link) in self.links.iter_mut() {
            Self::offer_when_stable(*user, link, &mut self.actions);
        }
        self.emit_media();
    }

    fn emit_media(&mut self) {
        self.emit(CallEvent::Media {
            microphone: self.sending.audio,
            camera: self.sending.video,
        });
    }

    fn close_links(&mut self) {
        for user in std::mem::take(&mut self.links).into_keys() {
            self.actions.push_back(Action::CloseLink { user });
        }
    }

    /// The call is over for us: every link closed, the server told if `leave`.
    fn end(&mut self, reason: EndReason, leave: bool) {
        let room = self.room();
        self.close_links();
        if let (true, Some(room)) = (leave, room) {
            self.actions.push_back(Action::LeaveCall { room });
        }
        self.state = CallState::Idle;
        self.held.clear();
        self.direct = false;
        self.answer_until = None;
        self.local = LocalMedia::default();
        self.sending = LocalMedia::default();
        self.emit(CallEvent::Ended { reason });
    }

    fn stop_ringing(&mut self, missed: bool) {
        if let CallState::Ringing { room, .. } = self.state {
            self.state = CallState::Idle;
            self.ring_until = None;
            self.emit(CallEvent::RingStopped {
                room_id: room,
                missed,
            });
        }
    }

    /// Our 1:1 call has nobody else in it yet: it is still ringing the other side.
    fn ringing_out(&self) -> bool {
        self.direct && self.links.is_empty()
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Server(event) => self.server_event(now, event),
            Input::StartCall { room, direct } => match self.state {
                CallState::Idle => {
                    self.state = CallState::Joining { room };
                    self.direct = direct;
                    self.actions.push_back(Action::JoinCall { room });
                }
                CallState::Ringing { .. } => {
                    // Accepting this ring, or calling elsewhere instead of answering it.
                    self.stop_ringing(false);
                    self.state = CallState::Joining { room };
                    self.direct = direct;
                    self.actions.push_back(Action::JoinCall { room });
                }
                CallState::Joining { .. } | CallState::InCall { .. } => {}
            },
            Input::LocalMedia(media) => {
                for kind in [MediaKind::Audio, MediaKind::Video] {
                    if media.get(kind) {
                        self.track_added(kind);
                    }
                }
            }
            Input::SetSending { kind, enabled } => {
                if self.room().is_none() || matches!(self.state, CallState::Ringing { .. }) {
                } else if self.local.get(kind) {
                    if self.sending.get(kind) != enabled {
                        self.sending.set(kind, enabled);
                        self.actions
                            .push_back(Action::EnableTrack { kind, enabled });
                        self.emit_media();
                    }
                } else if enabled {
                    // Unmuting a call that started without a microphone opens one.
                    self.actions.push_back(Action::OpenDevice { kind });
                }
            }
            Input::SwitchDevice { kind } => {
                if self.in_call_or_joining() {
                    self.actions.push_back(Action::OpenDevice { kind });
                }
            }
            Input::DeviceOpened { kind } => {
                if self.in_call_or_joining() {
                    self.track_added(kind);
                    // A device picked while muted starts sending: the user chose it to be heard.
                    if !self.sending.get(kind) {
                        self.sending.set(kind, true);
                        self.actions.push_back(Action::EnableTrack {
                            kind,
                            enabled: true,
                        });
                        self.emit_media();
                    }
                }
            }

            Input::Ring { call, by } => {
                if by == self.me {
                    // Our own call, started on another device.
                } else if self.in_call_or_joining() {
                    if self.room() != Some(call.room_id) {
                        self.actions
                            .push_back(Action::BusyCall { room: call.room_id });
                    }
                } else if self.state == CallState::Idle {
                    self.state = CallState::Ringing {
                        room: call.room_id,
                        call_id: call.call_id.clone(),
                        from: by,
                    };
                    self.ring_until = Some(now + self.timing.ring_timeout);
                    self.emit(CallEvent::Ringing { call, by });
                }
            }
            Input::Decline { room } => {
                if matches!(self.state, CallState::Ringing { room: r, .. } if r == room) {
                    self.stop_ringing(false);
                    self.actions.push_back(Action::DeclineCall { room });
                }
            }
            Input::Joined { call } => {
                if !matches!(self.state, CallState::Joining { room } if room == call.room_id) {
                    // We hung up while the join was on its way: the server has us in the call.
                    if self.state == CallState::Idle {
                        self.actions
                            .push_back(Action::LeaveCall { room: call.room_id });
                    }
                } else {
                    self.state = CallState::InCall {
                        room: call.room_id,
                        call_id: call.call_id.clone(),
                    };
                    for participant in &call.participants {
                        self.link(participant.user_id);
                    }
                    if self.ringing_out() {
                        self.answer_until = Some(now + self.timing.ring_timeout);
                    }
                    let id = call.call_id.clone();
                    self.emit(CallEvent::Joined { call });
                    for event in std::mem::take(&mut self.held) {
                        if call_scope(&event).is_some_and(|(_, of)| of == id) {
                            self.server_event(now, event);
                        }
                    }
                }
            }
            Input::JoinFailed { room } => {
                if self.state == (CallState::Joining { room }) {
                    self.held.clear();
                    self.state = CallState::Idle;
                    self.direct = false;
                    self.local = LocalMedia::default();
                    self.sending = LocalMedia::default();
                }
            }
            Input::ParticipantJoined { room, user } => {
                if self.in_call(room) && user != self.me {
                    if !self.links.contains_key(&user) {
                        self.emit(CallEvent::ParticipantJoined { user_id: user });
                    }
                    self.link(user);
                    self.answer_until = None;
                } else if user == self.me
                    && matches!(self.state, CallState::Ringing { room: r, .. } if r == room)
                {
                    // Answered on another device.
                    self.stop_ringing(false);
                }
            }
            Input::ParticipantLeft { room, user } => {
                if !self.in_call(room) {
                } else if user == self.me {
                    // The server took our place (we were away beyond its grace period).
                    self.end(EndReason::Lost, false);
                } else if self.links.remove(&user).is_some() {
                    self.actions.push_back(Action::CloseLink { user });
                    self.emit(CallEvent::ParticipantLeft { user_id: user });
                    if self.direct && self.links.is_empty() {
                        self.end(EndReason::OtherLeft, true);
                    }
                }
            }
            Input::ParticipantAway { room, user } => {
                if self.in_call(room) && self.links.contains_key(&user) {
                    self.emit(CallEvent::ParticipantAway { user_id: user });
                }
            }
            Input::ParticipantBack { room, user } => {
                if self.in_call(room) && self.links.contains_key(&user) {
                    self.emit(CallEvent::ParticipantBack { user_id: user });
                    // Whatever was sent to them while they were away is lost.
                    self.repair(now, user);
                }
            }
            Input::CallEnded { room } => {
                if self.room() != Some(room) {
                } else if matches!(self.state, CallState::Ringing { .. }) {
                    // It ended before it was answered.
                    self.stop_ringing(true);
                } else {
                    self.end(EndReason::Ended, false);
                }
            }
            Input::RoomGone { room } => {
                if self.room() != Some(room) {
                } else if matches!(self.state, CallState::Ringing { .. }) {
                    self.stop_ringing(false);
                } else {
                    self.end(EndReason::RoomGone, false);
                }
            }
            Input::Declined { room, user } => {
                if self.in_call(room) {
                    self.emit(CallEvent::Declined { user_id: user });
                    if self.ringing_out() {
                        self.end(EndReason::Declined, true);
                    }
                }
            }
            Input::Busy { room, user } => {
                if self.in_call(room) {
                    self.emit(CallEvent::Busy { user_id: user });
                    if self.ringing_out() {
                        self.end(EndReason::Busy, true);
                    }
                }
            }
            Input::Offer { from, sdp } => self.offer(from, sdp),
            Input::Answer { from, sdp } => {
                if let Some(link) = self.links.get_mut(&from) {
                    if link.offer_pending {
                        link.offer_pending = false;
                        self.actions
                            .push_back(Action::ApplyAnswer { user: from, sdp });
                        if std::mem::take(&mut link.offer_again) {
                            link.offer_pending = true;
                            self.actions.push_back(Action::Offer {
                                user: from,
                                restart_ice: false,
                            });
                        }
                    }
                }
            }
            // A candidate that comes before its description waits in the peer connection
            // (`parlor_rtc::PeerConnection::add_ice_candidate`), the one place that does.
            Input::Candidate { from, candidate } => {
                if self.links.contains_key(&from) {
                    self.actions.push_back(Action::ApplyCandidate {
                        user: from,
                        candidate,
                    });
                }
            }
            Input::RemoteDescriptionSet { user } => {
                if let Some(link) = self.links.get_mut(&user) {
                    if std::mem::take(&mut link.offer_after_answer) {
                        Self::offer_when_stable(user, link, &mut self.actions);
                    }
                }
            }
            Input::LinkState { user, state } => self.link_state(now, user, state),
            Input::RemoteTrack { user, kind } => {
                if self.links.contains_key(&user) {
                    self.emit(CallEvent::RemoteTrack {
                        user_id: user,
                        kind,
                    });
                }
            }
            Input::MediaRefused {
                user,
                kind,
                offered,
            } => {
                if self.links.contains_key(&user) {
                    self.emit(CallEvent::MediaRefused {
                        user_id: user,
                        kind,
                        offered,
                    });
                }
            }
            Input::StepFailed { user, step, error } => self.step_failed(now, user, step, error),
            Input::SignalingLost => {
                if self.signaling_up {
                    self.signaling_up = false;
                    if matches!(self.state, CallState::InCall { .. }) {
                        self.emit(CallEvent::SignalingLost);
                    }
                }
            }
            Input::SignalingBack { resumed } => {
                let was_down = !std::mem::replace(&mut self.signaling_up, true);
                if let CallState::InCall { room, .. } = self.state {
                    match resumed.filter(|call| call.room_id == room) {
                        Some(call) => {
                            if was_down {
                                self.emit(CallEvent::Resumed);
                            }
                            self.resume(now, call);
                        }
                        // A reconnect the server did not take back into the call.
                        None if was_down => self.end(EndReason::Lost, false),
                        None => {}
                    }
                }
            }
            Input::Leave => match self.state {
                CallState::Ringing { room, .. } => {
                    self.stop_ringing(false);
                    self.actions.push_back(Action::DeclineCall { room });
                }
                CallState::Joining { .. } | CallState::InCall { .. } => {
                    self.end(EndReason::HungUp, true);
                }
                CallState::Idle => {}
            },
        }
    }

    fn offer(&mut self, from: UserId, sdp: String) {
        if !matches!(self.state, CallState::InCall { .. }) {
            return;
        }
        // An offer can overtake the "joined" notice: link first.
        if !self.links.contains_key(&from) {
            self.emit(CallEvent::ParticipantJoined { user_id: from });
            self.link(from);
            self.answer_until = None;
        }
        let local = self.local;
        let Some(link) = self.links.get_mut(&from) else {
            return;
        };
        if !link.offer_pending {
            // An offer from a side without a camera has no section to put ours in: once our
            // answer is in place, we offer it ourselves.
            let open = OpenSections::of(&sdp);
            link.offer_after_answer = (local.audio && !open.audio) || (local.video && !open.video);
            self.actions.push_back(Action::Answer {
                user: from,
                sdp,
                rollback: false,
            });
        } else if !link.offerer {
            // A collision we lose: take theirs, then send ours again.
            link.offer_pending = true;
            self.actions.push_back(Action::Answer {
                user: from,
                sdp,
                rollback: true,
            });
            self.actions.push_back(Action::Offer {
                user: from,
                restart_ice: false,
            });
        }
        // A collision we win: ours stands, theirs is ignored.
    }

    fn link_state(&mut self, now: Instant, user: UserId, state: ConnectionState) {
        let Some(link) = self.links.get_mut(&user) else {
            return;
        };
        match state {
            ConnectionState::Connected => link.connected(),
            ConnectionState::Disconnected => {
                link.connected = false;
                // It may come back by itself; if not, its offerer restarts ICE.
                if link.offerer && link.retry.is_none() {
                    link.retry = Some(Retry {
                        at: now + self.timing.disconnected_wait,
                        restart_ice: true,
                    });
                }
            }
            ConnectionState::Failed => {
                link.connected = false;
                // A restart already under way is checked on its own schedule.
                let restarting = link.retry.is_some_and(|r| r.restart_ice) && link.attempts > 0;
                if link.offerer && !restarting {
                    self.restart_ice(now, user);
                }
            }
            _ => {}
        }
        self.emit(CallEvent::Link {
            user_id: user,
            state,
        });
    }

    fn step_failed(&mut self, now: Instant, user: Option<UserId>, step: Step, error: String) {
        self.emit(CallEvent::Failed {
            user_id: user,
            error,
        });
        let Some(user) = user else { return };
        match step {
            Step::CreateLink => {
                // Without a peer connection there is nothing to negotiate; the other side's
                // next offer (if it is the offerer) makes a new one.
                self.links.remove(&user);
            }
            Step::Offer { restart_ice } => {
                let Some(link) = self.links.get_mut(&user) else {
                    return;
                };
                link.offer_pending = false;
                link.retry_later(now, &self.timing.retry, restart_ice);
            }
            // Our offer's answer could not be applied: offer again.
            Step::ApplyAnswer => {
                if let Some(link) = self.links.get_mut(&user) {
                    link.retry_later(now, &self.timing.retry, false);
                }
            }
            // Their offer could not be answered; it is theirs to offer again.
            Step::Answer => {}
        }
    }

    /// `user`'s link may have missed signaling: if it is not connected, restart it now.
    fn repair(&mut self, now: Instant, user: UserId) {
        let Some(link) = self.links.get_mut(&user) else {
            return;
        };
        if link.connected || !link.offerer {
            return;
        }
        // An offer sent into the outage has no answer coming.
        link.offer_pending = false;
        self.restart_ice(now, user);
    }

    /// Back in the call after a reconnect: links follow who is in it now, and links that went
    /// down meanwhile are restarted.
    fn resume(&mut self, now: Instant, call: CallInfo) {
        let present: Vec<UserId> = call
            .participants
            .iter()
            .map(|p| p.user_id)
            .filter(|u| *u != self.me)
            .collect();
        let gone: Vec<UserId> = self
            .links
            .keys()
            .copied()
            .filter(|u| !present.contains(u))
            .collect();
        for user in gone {
            self.links.remove(&user);
            self.actions.push_back(Action::CloseLink { user });
            self.emit(CallEvent::ParticipantLeft { user_id: user });
        }
        let kept: Vec<UserId> = self.links.keys().copied().collect();
        for user in kept {
            self.repair(now, user);
        }
        for &user in &present {
            if !self.links.contains_key(&user) {
                self.emit(CallEvent::ParticipantJoined { user_id: user });
                self.link(user);
            }
        }
        // The other side of a 1:1 call hung up while we were away (unless it is still ringing).
        if self.direct && present.is_empty() && self.answer_until.is_none() {
            self.end(EndReason::OtherLeft, true);
        }
    }

    fn server_event(&mut self, now: Instant, event: Event) {
        if let Some((room, call_id)) = call_scope(&event) {
            match &self.state {
                CallState::Joining { room: joining } if *joining == room => {
                    if self.held.len() < MAX_HELD_EVENTS {
                        self.held.push(event);
                    }
                    return;
                }
                CallState::InCall {
                    room: r,
                    call_id: ours,
                }
                | CallState::Ringing {
                    room: r,
                    call_id: ours,
                    ..
                } if *r == room && ours != call_id => return,
                _ => {}
            }
        }
        if let Some(input) = self.input_for(event) {
            self.handle(now, input);
        }
    }

    /// The input a server event is, if it concerns calls. (`call_resumed` is not one: it is
    /// part of [`Input::SignalingBack`].)
    fn input_for(&self, event: Event) -> Option<Input> {
        let room = self.room();
        let this_call = |room_id: RoomId| room == Some(room_id);
        Some(match event {
            Event::CallStarted { call, by } => Input::Ring { call, by },
            Event::CallParticipantJoined {
                room_id, user_id, ..
            } => Input::ParticipantJoined {
                room: room_id,
                user: user_id,
            },
            Event::CallParticipantLeft {
                room_id, user_id, ..
            } => Input::ParticipantLeft {
                room: room_id,
                user: user_id,
            },
            Event::CallParticipantDisconnected {
                room_id, user_id, ..
            } => Input::ParticipantAway {
                room: room_id,
                user: user_id,
            },
            Event::CallParticipantReconnected {
                room_id, user_id, ..
            } => Input::ParticipantBack {
                room: room_id,
                user: user_id,
            },
            Event::CallEnded { room_id, .. } => Input::CallEnded { room: room_id },
            Event::RoomDeleted { room_id } => Input::RoomGone { room: room_id },
            Event::MemberLeft { room_id, user_id } if user_id == self.me => {
                Input::RoomGone { room: room_id }
            }
            Event::CallDeclined {
                room_id, user_id, ..
            } => Input::Declined {
                room: room_id,
                user: user_id,
            },
            Event::CallBusy {
                room_id, user_id, ..
            } => Input::Busy {
                room: room_id,
                user: user_id,
            },
            // Signaling of another call (a stale one) is not this call's.
            Event::CallOffer {
                room_id, from, sdp, ..
            } if this_call(room_id) => Input::Offer { from, sdp },
            Event::CallAnswer {
                room_id, from, sdp, ..
            } if this_call(room_id) => Input::Answer { from, sdp },
            Event::CallIce {
                room_id,
                from,
                candidate,
                ..
            } if this_call(room_id) => Input::Candidate { from, candidate },
            _ => return None,
        })
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ring_until.is_some_and(|t| t <= now) {
            self.ring_until = None;
            self.stop_ringing(true);
        }
        if self.answer_until.is_some_and(|t| t <= now) {
            self.answer_until = None;
            if self.ringing_out() {
                self.end(EndReason::NoAnswer, true);
            }
        }
        if !self.signaling_up {
            return;
        }
        let due: Vec<(UserId, Retry)> = self
            .links
            .iter()
            .filter_map(|(user, link)| link.retry.filter(|r| r.at <= now).map(|r| (*user, r)))
            .collect();
        for (user, retry) in due {
            let Some(link) = self.links.get_mut(&user) else {
                continue;
            };
            link.retry = None;
            if retry.restart_ice {
                if !link.connected {
                    self.restart_ice(now, user);
                }
            } else if !link.offer_pending {
                link.offer_pending = true;
                self.actions.push_back(Action::Offer {
                    user,
                    restart_ice: false,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parlor_protocol::CallParticipant;
    use std::sync::OnceLock;

    const CAMERA: LocalMedia = LocalMedia {
        audio: false,
        video: true,
    };

    /// The instant the tests' simulated time starts at.
    fn t0() -> Instant {
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn at(ms: u64) -> Instant {
        t0() + Duration::from_millis(ms)
    }

    impl CallMachine {
        /// Handles `input` at the start of time and returns the actions it asked for.
        fn step(&mut self, input: Input) -> Vec<Action> {
            self.step_at(0, input)
        }

        fn step_at(&mut self, ms: u64, input: Input) -> Vec<Action> {
            self.handle(at(ms), input);
            self.actions()
        }

        /// Runs the timers due at `ms` and returns the actions they asked for.
        fn tick(&mut self, ms: u64) -> Vec<Action> {
            self.handle_timeout(at(ms));
            self.actions()
        }

        fn actions(&mut self) -> Vec<Action> {
            std::iter::from_fn(|| self.poll_action()).collect()
        }

        fn events(&mut self) -> Vec<CallEvent> {
            std::iter::from_fn(|| self.poll_event()).collect()
        }
    }

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
            me.step(Input::StartCall {
                room: 1,
                direct: false,
            }),
            vec![Action::JoinCall { room: 1 }]
        );
        let actions = me.step(Input::Joined {
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
            me.step(Input::ParticipantJoined { room: 1, user: 2 }),
            vec![Action::CreateLink { user: 2 }]
        );
        assert_eq!(
            me.step(Input::ParticipantJoined { room: 1, user: 9 }),
            vec![
                Action::CreateLink { user: 9 },
                Action::Offer {
                    user: 9,
                    restart_ice: false
                }
            ]
        );
        assert_eq!(
            me.step(Input::ParticipantJoined { room: 1, user: 9 }),
            vec![],
            "no duplicate link"
        );
    }

    #[test]
    fn offers_are_answered_only_where_the_other_side_is_the_offerer() {
        let mut me = in_call(5, 1, false, &[3, 5, 8]);
        assert_eq!(
            me.step(Input::Offer {
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
            me.step(Input::Offer {
                from: 8,
                sdp: "glare".into()
            }),
            vec![],
            "8 is ours to offer to"
        );
        assert_eq!(
            me.step(Input::Answer {
                from: 8,
                sdp: "a".into()
            }),
            vec![Action::ApplyAnswer {
                user: 8,
                sdp: "a".into()
            }]
        );
        assert_eq!(
            me.step(Input::Answer {
                from: 3,
                sdp: "stray".into()
            }),
            vec![]
        );
        // An offer that overtakes the participant-joined notice still links and answers.
        assert_eq!(
            me.step(Input::Offer {
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
    fn candidates_go_to_their_link_as_they_come() {
        // Before the remote description too: the peer connection keeps those until it is set
        // (parlor-rtc's `candidates_given_before_the_description_are_applied_with_it`).
        let mut me = in_call(5, 1, false, &[3, 5]);
        assert_eq!(
            me.step(Input::Candidate {
                from: 3,
                candidate: candidate(1)
            }),
            vec![Action::ApplyCandidate {
                user: 3,
                candidate: candidate(1)
            }]
        );
        assert_eq!(
            me.step(Input::Candidate {
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
            me.step(Input::Ring {
                call: call(1, &[3]),
                by: 3
            }),
            vec![]
        );
        assert_eq!(
            me.events(),
            vec![CallEvent::Ringing {
                call: call(1, &[3]),
                by: 3
            }]
        );
        assert_eq!(
            me.step(Input::Decline { room: 1 }),
            vec![Action::DeclineCall { room: 1 }]
        );
        assert_eq!(me.state(), &CallState::Idle);
        assert_eq!(
            me.events(),
            vec![CallEvent::RingStopped {
                room_id: 1,
                missed: false
            }]
        );
        me.step(Input::Ring {
            call: call(1, &[3]),
            by: 3,
        });
        assert_eq!(
            me.step(Input::StartCall {
                room: 1,
                direct: false
            }),
            vec![Action::JoinCall { room: 1 }],
            "joining a ringing call accepts it"
        );
        assert_eq!(me.state(), &CallState::Joining { room: 1 });
    }

    #[test]
    fn a_ring_while_in_another_call_is_answered_busy() {
        let mut me = in_call(5, 1, false, &[5]);
        assert_eq!(
            me.step(Input::Ring {
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
        let mut me = in_call(5, 1, false, &[3, 5, 8]);
        assert_eq!(
            me.step(Input::LinkState {
                user: 8,
                state: ConnectionState::Failed
            }),
            vec![Action::Offer {
                user: 8,
                restart_ice: true
            }]
        );
        assert_eq!(
            me.step(Input::LinkState {
                user: 3,
                state: ConnectionState::Failed
            }),
            vec![],
            "3 restarts its side"
        );
        assert_eq!(
            me.step(Input::LocalMedia(CAMERA)),
            vec![Action::Offer {
                user: 3,
                restart_ice: false
            }],
            "8 still owes the answer to the restart: it is offered to again after it"
        );
        assert_eq!(
            me.step(Input::Answer {
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
        let mut me = in_call(5, 1, false, &[3, 5, 8]);
        me.step(Input::Offer {
            from: 3,
            sdp: "o3".into(),
        });
        me.step(Input::Answer {
            from: 8,
            sdp: "a8".into(),
        });
        // A camera turned on here: offer on both links, also to 3 who made the first offer.
        assert_eq!(
            me.step(Input::LocalMedia(CAMERA)),
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
            me.step(Input::Offer {
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
            me.step(Input::Offer {
                from: 8,
                sdp: "o8".into()
            }),
            vec![]
        );
        // A renegotiation started by 8 later, with nothing of ours pending, is answered.
        me.step(Input::Answer {
            from: 8,
            sdp: "a8b".into(),
        });
        assert_eq!(
            me.step(Input::Offer {
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
            me.step(Input::Answer {
                from: 8,
                sdp: "stale".into()
            }),
            vec![],
            "an answer to nothing is dropped"
        );
        // That offer ("o8b", no video section) had no room for our camera: once our answer is
        // in place, we offer it ourselves.
        assert_eq!(
            me.step(Input::RemoteDescriptionSet { user: 8 }),
            vec![Action::Offer {
                user: 8,
                restart_ice: false
            }]
        );
        assert_eq!(
            me.step(Input::LocalMedia(LocalMedia {
                audio: true,
                video: true
            })),
            vec![],
            "one offer at a time: each link's waits for the answer to the one out"
        );
        assert_eq!(
            me.step(Input::Answer {
                from: 8,
                sdp: "a8c".into()
            }),
            vec![
                Action::ApplyAnswer {
                    user: 8,
                    sdp: "a8c".into()
                },
                Action::Offer {
                    user: 8,
                    restart_ice: false
                }
            ]
        );
    }

    #[test]
    fn leaving_and_the_end_of_the_call_close_every_link() {
        let mut me = in_call(5, 1, false, &[3, 5, 8]);
        assert_eq!(
            me.step(Input::ParticipantLeft { room: 1, user: 3 }),
            vec![Action::CloseLink { user: 3 }]
        );
        assert_eq!(me.linked(), vec![8]);
        assert_eq!(
            me.step(Input::Leave),
            vec![Action::CloseLink { user: 8 }, Action::LeaveCall { room: 1 }]
        );
        assert_eq!(me.state(), &CallState::Idle);
        me.step(Input::StartCall {
            room: 1,
            direct: false,
        });
        me.step(Input::Joined {
            call: call(1, &[3, 5]),
        });
        assert_eq!(
            me.step(Input::CallEnded { room: 1 }),
            vec![Action::CloseLink { user: 3 }]
        );
        assert_eq!(me.state(), &CallState::Idle);
    }

    fn in_call(me: UserId, room: RoomId, direct: bool, users: &[UserId]) -> CallMachine {
        let mut m = CallMachine::new(me);
        m.step(Input::StartCall { room, direct });
        m.step(Input::Joined {
            call: call(room, users),
        });
        m.events();
        m
    }

    fn offer(user: UserId, restart_ice: bool) -> Action {
        Action::Offer { user, restart_ice }
    }

    fn link_state(user: UserId, state: ConnectionState) -> Input {
        Input::LinkState { user, state }
    }

    #[test]
    fn a_ring_nobody_answers_is_missed_and_one_answered_elsewhere_is_not() {
        let mut me = CallMachine::new(5);
        me.step_at(
            1_000,
            Input::Ring {
                call: call(1, &[3]),
                by: 3,
            },
        );
        me.events();
        assert_eq!(me.poll_timeout(), Some(at(46_000)), "45 s of ringing");
        assert_eq!(me.tick(45_999), vec![]);
        assert_eq!(
            me.state(),
            &CallState::Ringing {
                room: 1,
                call_id: "c-1".into(),
                from: 3
            }
        );
        assert_eq!(me.tick(46_000), vec![], "a missed call sends nothing");
        assert_eq!(
            me.events(),
            vec![CallEvent::RingStopped {
                room_id: 1,
                missed: true
            }]
        );
        assert_eq!(me.state(), &CallState::Idle);
        assert_eq!(me.poll_timeout(), None);

        // The caller gave up before anyone answered: missed too.
        me.step(Input::Ring {
            call: call(1, &[3]),
            by: 3,
        });
        me.events();
        me.step(Input::CallEnded { room: 1 });
        assert_eq!(
            me.events(),
            vec![CallEvent::RingStopped {
                room_id: 1,
                missed: true
            }]
        );

        // Answered on another of our devices: the ring stops here, not missed.
        me.step(Input::Ring {
            call: call(1, &[3]),
            by: 3,
        });
        me.events();
        assert_eq!(
            me.step(Input::ParticipantJoined { room: 1, user: 5 }),
            vec![]
        );
        assert_eq!(
            me.events(),
            vec![CallEvent::RingStopped {
                room_id: 1,
                missed: false
            }]
        );
        assert_eq!(me.state(), &CallState::Idle);

        // Our own call started on another device does not ring here.
        me.step(Input::Ring {
            call: call(2, &[5]),
            by: 5,
        });
        assert_eq!(me.events(), vec![]);
        assert_eq!(me.state(), &CallState::Idle);
    }

    #[test]
    fn a_one_to_one_call_nobody_answers_ends_unanswered() {
        let mut me = CallMachine::new(5);
        me.step_at(
            0,
            Input::StartCall {
                room: 1,
                direct: true,
            },
        );
        me.step_at(
            200,
            Input::Joined {
                call: call(1, &[5]),
            },
        );
        assert_eq!(
            me.events(),
            vec![CallEvent::Joined {
                call: call(1, &[5])
            }]
        );
        assert_eq!(me.poll_timeout(), Some(at(45_200)));
        assert_eq!(me.tick(45_200), vec![Action::LeaveCall { room: 1 }]);
        assert_eq!(
            me.events(),
            vec![CallEvent::Ended {
                reason: EndReason::NoAnswer
            }]
        );
        assert_eq!(me.state(), &CallState::Idle);
    }

    #[test]
    fn a_one_to_one_call_ends_when_declined_busy_or_hung_up_on() {
        for (refusal, reason) in [
            (Input::Declined { room: 1, user: 3 }, EndReason::Declined),
            (Input::Busy { room: 1, user: 3 }, EndReason::Busy),
        ] {
            let mut me = in_call(5, 1, true, &[5]);
            assert_eq!(me.step(refusal), vec![Action::LeaveCall { room: 1 }]);
            let events = me.events();
            assert_eq!(
                events.last(),
                Some(&CallEvent::Ended { reason }),
                "{events:?}"
            );
            assert_eq!(me.poll_timeout(), None, "no ring timeout left behind");
        }
        // Answered, then the other side hangs up: over for us too.
        let mut me = in_call(5, 1, true, &[5]);
        me.step(Input::ParticipantJoined { room: 1, user: 3 });
        assert_eq!(me.poll_timeout(), None, "answered: no more ring timeout");
        me.events();
        assert_eq!(
            me.step(Input::ParticipantLeft { room: 1, user: 3 }),
            vec![Action::CloseLink { user: 3 }, Action::LeaveCall { room: 1 }]
        );
        assert_eq!(
            me.events(),
            vec![
                CallEvent::ParticipantLeft { user_id: 3 },
                CallEvent::Ended {
                    reason: EndReason::OtherLeft
                }
            ]
        );
    }

    #[test]
    fn a_group_call_goes_on_alone_and_a_decline_is_only_said() {
        let mut me = in_call(5, 1, false, &[5]);
        assert_eq!(me.poll_timeout(), None, "a group call does not ring out");
        assert_eq!(me.step(Input::Declined { room: 1, user: 3 }), vec![]);
        assert_eq!(me.events(), vec![CallEvent::Declined { user_id: 3 }]);
        me.step(Input::ParticipantJoined { room: 1, user: 3 });
        assert_eq!(
            me.step(Input::ParticipantLeft { room: 1, user: 3 }),
            vec![Action::CloseLink { user: 3 }]
        );
        assert!(matches!(me.state(), CallState::InCall { .. }));
    }

    #[test]
    fn a_link_disconnected_for_a_while_is_restarted_with_backoff_until_it_connects() {
        let mut me = in_call(5, 1, false, &[5, 8]);
        me.step(Input::Answer {
            from: 8,
            sdp: "a".into(),
        });
        me.step(link_state(8, ConnectionState::Connected));
        // A moment's loss that heals by itself needs nothing.
        me.step_at(10_000, link_state(8, ConnectionState::Disconnected));
        assert_eq!(me.poll_timeout(), Some(at(12_000)));
        me.step_at(11_000, link_state(8, ConnectionState::Connected));
        assert_eq!(me.tick(12_000), vec![]);
        assert_eq!(me.poll_timeout(), None);
        // One that does not is restarted after 2 s, then again after 2, 4, 8, 16, 16 s.
        me.step_at(20_000, link_state(8, ConnectionState::Disconnected));
        let mut restarts = Vec::new();
        while let Some(t) = me.poll_timeout() {
            let ms = t.duration_since(t0()).as_millis() as u64;
            if me.tick(ms) == vec![offer(8, true)] {
                restarts.push(ms);
                // Each restart is answered, but the link stays down.
                me.step_at(
                    ms,
                    Input::Answer {
                        from: 8,
                        sdp: "a".into(),
                    },
                );
            }
        }
        assert_eq!(
            restarts,
            vec![22_000, 24_000, 28_000, 36_000, 52_000, 68_000]
        );
        let failed = me
            .events()
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    CallEvent::Failed {
                        user_id: Some(8),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(failed, 1, "giving up is said once");
        // The side that does not offer leaves restarts to the other.
        let mut other = in_call(9, 1, false, &[5, 9]);
        other.step(link_state(5, ConnectionState::Disconnected));
        assert_eq!(other.poll_timeout(), None);
        assert_eq!(other.step(link_state(5, ConnectionState::Failed)), vec![]);
    }

    #[test]
    fn a_failed_link_that_connects_after_its_restart_is_left_alone() {
        let mut me = in_call(5, 1, false, &[5, 8]);
        me.step(Input::Answer {
            from: 8,
            sdp: "a".into(),
        });
        assert_eq!(
            me.step_at(1_000, link_state(8, ConnectionState::Failed)),
            vec![offer(8, true)]
        );
        assert_eq!(
            me.step_at(1_100, link_state(8, ConnectionState::Failed)),
            vec![],
            "the restart under way is checked on its schedule"
        );
        me.step_at(
            1_200,
            Input::Answer {
                from: 8,
                sdp: "a".into(),
            },
        );
        me.step_at(1_500, link_state(8, ConnectionState::Connected));
        assert_eq!(me.poll_timeout(), None);
    }

    #[test]
    fn an_offer_that_could_not_be_sent_is_tried_again() {
        let mut me = in_call(5, 1, false, &[5, 8]);
        me.step_at(
            100,
            Input::StepFailed {
                user: Some(8),
                step: Step::Offer { restart_ice: false },
                error: "disconnected".into(),
            },
        );
        assert_eq!(
            me.events(),
            vec![CallEvent::Failed {
                user_id: Some(8),
                error: "disconnected".into()
            }]
        );
        assert_eq!(me.poll_timeout(), Some(at(2_100)));
        assert_eq!(me.tick(2_100), vec![offer(8, false)]);
        assert_eq!(
            me.step(Input::Answer {
                from: 8,
                sdp: "a".into()
            }),
            vec![Action::ApplyAnswer {
                user: 8,
                sdp: "a".into()
            }]
        );
    }

    #[test]
    fn a_call_survives_a_signaling_drop_the_server_resumes() {
        let mut me = in_call(5, 1, false, &[3, 5, 8]);
        me.step(Input::Offer {
            from: 3,
            sdp: "o".into(),
        });
        me.step(Input::Answer {
            from: 8,
            sdp: "a".into(),
        });
        me.step(link_state(3, ConnectionState::Connected));
        me.step(link_state(8, ConnectionState::Connected));
        me.events();
        me.step_at(1_000, Input::SignalingLost);
        assert_eq!(me.events(), vec![CallEvent::SignalingLost]);
        // While away the link to 8 failed: its restart waits for signaling.
        assert_eq!(
            me.step_at(2_000, link_state(8, ConnectionState::Failed)),
            vec![]
        );
        assert_eq!(me.poll_timeout(), None, "nothing can be sent");
        // Back, resumed, and 9 joined meanwhile: 8 gets a restart, 9 a link, 3 is left alone.
        assert_eq!(
            me.step_at(
                3_000,
                Input::SignalingBack {
                    resumed: Some(call(1, &[3, 5, 8, 9]))
                }
            ),
            vec![
                offer(8, true),
                Action::CreateLink { user: 9 },
                offer(9, false)
            ]
        );
        let events = me.events();
        assert!(events.contains(&CallEvent::Resumed), "{events:?}");
        assert!(
            events.contains(&CallEvent::ParticipantJoined { user_id: 9 }),
            "{events:?}"
        );
        assert!(matches!(me.state(), CallState::InCall { .. }));
    }

    #[test]
    fn a_call_the_server_did_not_keep_ends_as_lost() {
        let mut me = in_call(5, 1, false, &[3, 5]);
        me.step(Input::SignalingLost);
        assert_eq!(
            me.step(Input::SignalingBack { resumed: None }),
            vec![Action::CloseLink { user: 3 }]
        );
        assert_eq!(
            me.events(),
            vec![
                CallEvent::SignalingLost,
                CallEvent::Ended {
                    reason: EndReason::Lost
                }
            ]
        );
        // Our own departure, announced by the server, ends it the same way.
        let mut me = in_call(5, 1, false, &[3, 5]);
        me.step(Input::ParticipantLeft { room: 1, user: 5 });
        assert_eq!(
            me.events(),
            vec![CallEvent::Ended {
                reason: EndReason::Lost
            }]
        );
    }

    #[test]
    fn a_join_that_lands_after_hanging_up_is_left() {
        let mut me = CallMachine::new(5);
        me.step(Input::StartCall {
            room: 1,
            direct: false,
        });
        me.step(Input::Leave);
        assert_eq!(
            me.step(Input::Joined {
                call: call(1, &[5])
            }),
            vec![Action::LeaveCall { room: 1 }]
        );
        assert_eq!(me.state(), &CallState::Idle);
    }

    #[test]
    fn mute_camera_and_devices_are_decided_here() {
        let (audio, video) = (MediaKind::Audio, MediaKind::Video);
        // The call starts with a microphone only (the executor says so before joining).
        let mut me = CallMachine::new(5);
        me.step(Input::StartCall {
            room: 1,
            direct: false,
        });
        me.step(Input::LocalMedia(LocalMedia {
            audio: true,
            video: false,
        }));
        me.step(Input::Joined {
            call: call(1, &[5, 8]),
        });
        me.step(Input::Answer {
            from: 8,
            sdp: "a".into(),
        });
        assert_eq!(
            me.events(),
            vec![
                CallEvent::Media {
                    microphone: true,
                    camera: false
                },
                CallEvent::Joined {
                    call: call(1, &[5, 8])
                }
            ]
        );
        // Mute and unmute switch the track; nothing is opened or renegotiated.
        assert_eq!(
            me.step(Input::SetSending {
                kind: audio,
                enabled: false
            }),
            vec![Action::EnableTrack {
                kind: audio,
                enabled: false
            }]
        );
        assert_eq!(
            me.step(Input::SetSending {
                kind: audio,
                enabled: false
            }),
            vec![],
            "already muted"
        );
        assert_eq!(
            me.events(),
            vec![CallEvent::Media {
                microphone: false,
                camera: false
            }]
        );
        // Turning on a camera the call has none of opens the chosen one; once it is open, it
        // is offered on every link and sends.
        assert_eq!(
            me.step(Input::SetSending {
                kind: video,
                enabled: true
            }),
            vec![Action::OpenDevice { kind: video }]
        );
        assert_eq!(
            me.events(),
            vec![],
            "nothing sends until the device is open"
        );
        me.step(Input::Answer {
            from: 8,
            sdp: "a".into(),
        });
        assert_eq!(
            me.step(Input::DeviceOpened { kind: video }),
            vec![offer(8, false)]
        );
        assert_eq!(
            me.events(),
            vec![CallEvent::Media {
                microphone: false,
                camera: true
            }]
        );
        // Another microphone picked while muted replaces the source and unmutes; no offer.
        assert_eq!(
            me.step(Input::SwitchDevice { kind: audio }),
            vec![Action::OpenDevice { kind: audio }]
        );
        assert_eq!(
            me.step(Input::DeviceOpened { kind: audio }),
            vec![Action::EnableTrack {
                kind: audio,
                enabled: true
            }]
        );
        // Turning the camera off is not a way to open one.
        assert_eq!(
            me.step(Input::SetSending {
                kind: video,
                enabled: false
            }),
            vec![Action::EnableTrack {
                kind: video,
                enabled: false
            }]
        );
        // Outside a call there is nothing to send from.
        let mut idle = CallMachine::new(5);
        assert_eq!(
            idle.step(Input::SetSending {
                kind: video,
                enabled: true
            }),
            vec![]
        );
    }
}
