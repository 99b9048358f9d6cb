//! A call, end to end: the [`CallMachine`] decides, this shell does. It joins the room's call
//! through the signaling connection, keeps one peer connection per other participant, relays
//! offers, answers and candidates, and reports what it received. A [`CallHandle`] controls the
//! running call (mute, camera, device switching, stats, leave) and streams [`CallEvent`]s.
use std::collections::HashMap;
use std::sync::Arc;

use parlor_media::analysis::{first_channel, percentile, ToneMeter};
use parlor_media::frame::{AudioFrame, VideoFrame};
use parlor_media::pattern::read_stamp;
use parlor_media::{AudioSource, VideoSource};
use parlor_protocol::{Event, IceCandidate as WireCandidate, Reply, Request, RoomId, UserId};
use parlor_rtc::stats::CallStats;
use parlor_rtc::{
    IceServer, LocalAudioTrack, LocalVideoTrack, PeerConnection, PeerEvent, RemoteTrack, RtcClient,
    RtcConfig, SdpType, SessionDescription, VideoTrackOptions,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::call::{Action, CallMachine, CallState, Input};
use crate::connection::Connection;
use crate::ClientError;

/// What one participant received from another.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Received {
    pub video_frames: u64,
    pub stamped_frames: u64,
    pub latency_ms_median: Option<f64>,
    pub audio_frames: u64,
    pub audio_hz: Option<f64>,
    /// Raw material for the summaries above, which are computed once, for the report.
    #[serde(skip)]
    latencies: Vec<f64>,
    #[serde(skip)]
    tone: ToneMeter,
}

impl Received {
    fn summarize(&mut self) {
        self.latency_ms_median = percentile(&self.latencies, 50);
        self.audio_hz = self.tone.frequency();
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallReport {
    pub room: RoomId,
    pub peers: HashMap<UserId, Received>,
    pub stats: HashMap<UserId, CallStats>,
    /// Members who said they were busy in another call, or declined.
    pub busy: Vec<UserId>,
    pub declined: Vec<UserId>,
}

/// Makes a video source for the call (called once; the track fans it out to every link).
pub type VideoMaker =
    Box<dyn Fn() -> Result<Box<dyn VideoSource>, parlor_media::MediaError> + Send + Sync>;
/// Makes an audio source for the call.
pub type AudioMaker =
    Box<dyn Fn() -> Result<Box<dyn AudioSource>, parlor_media::MediaError> + Send + Sync>;

/// Where decoded remote media goes (a window's video tiles, a speaker, a recorder). Called on
/// the decoding tasks: keep it quick.
pub trait MediaSink: Send + Sync {
    fn video_frame(&self, from: UserId, frame: &VideoFrame) {
        let _ = (from, frame);
    }
    fn audio_frame(&self, from: UserId, frame: &AudioFrame) {
        let _ = (from, frame);
    }
}

#[derive(Default)]
pub struct CallOptions {
    pub video: Option<VideoMaker>,
    pub audio: Option<AudioMaker>,
    pub rtc: RtcConfig,
    pub sink: Option<Arc<dyn MediaSink>>,
    /// Analyse what arrives for the report: the test pattern's stamps (latency) and the
    /// dominant tone. For the CLI and tests; the app only counts frames.
    pub analyze: bool,
}

/// What happens in a call, for a UI.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum CallEvent {
    ParticipantJoined {
        user_id: UserId,
    },
    ParticipantLeft {
        user_id: UserId,
    },
    /// The peer connection to `user_id` changed state.
    Link {
        user_id: UserId,
        state: parlor_rtc::ConnectionState,
    },
    /// Media from `user_id` started arriving (`kind` is `audio` or `video`).
    RemoteTrack {
        user_id: UserId,
        kind: String,
    },
    /// `user_id` offered `kind` media (`audio` or `video`) only in codecs Parlor does not have
    /// (`offered`: a browser without H.264 offers VP8 and VP9): that part is refused, the rest
    /// of the call goes on.
    MediaRefused {
        user_id: UserId,
        kind: String,
        offered: Vec<String>,
    },
    Busy {
        user_id: UserId,
    },
    Declined {
        user_id: UserId,
    },
    /// A step of the call failed (a link could not be set up or negotiated): with `user_id`,
    /// that link's; the rest of the call goes on.
    Failed {
        user_id: Option<UserId>,
        error: String,
    },
    /// The call is over (everyone left, or the room is gone); the handle's `leave` returns the report.
    Ended,
}

enum Command {
    SetMicrophoneEnabled(bool),
    SetCameraEnabled(bool),
    UseVideo(VideoMaker, oneshot::Sender<Result<(), ClientError>>),
    UseAudio(AudioMaker, oneshot::Sender<Result<(), ClientError>>),
    Stats(oneshot::Sender<HashMap<UserId, CallStats>>),
    Leave,
}

/// A running call. Dropping it leaves the call.
pub struct CallHandle {
    room: RoomId,
    call_id: String,
    commands: mpsc::UnboundedSender<Command>,
    events: Mutex<mpsc::UnboundedReceiver<CallEvent>>,
    task: Option<tokio::task::JoinHandle<Result<CallReport, ClientError>>>,
}

impl CallHandle {
    pub fn room(&self) -> RoomId {
        self.room
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Mutes or unmutes the microphone. Nothing is sent while muted; the track stays
    /// negotiated, so unmuting is instant.
    pub fn set_microphone_enabled(&self, enabled: bool) {
        let _ = self.commands.send(Command::SetMicrophoneEnabled(enabled));
    }

    /// Turns the camera off (nothing is sent; the track stays negotiated) or on again (starting
    /// with a keyframe).
    pub fn set_camera_enabled(&self, enabled: bool) {
        let _ = self.commands.send(Command::SetCameraEnabled(enabled));
    }

    /// Sends video from a new source: switches the camera when video is already sent, and adds
    /// a video track (renegotiating every link) when the call started without one.
    pub async fn use_video(&self, make: VideoMaker) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::UseVideo(make, tx))
            .map_err(|_| ClientError::CallEnded)?;
        rx.await.map_err(|_| ClientError::CallEnded)?
    }

    /// Sends audio from a new source (a microphone switch), adding an audio track if needed.
    pub async fn use_audio(&self, make: AudioMaker) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::UseAudio(make, tx))
            .map_err(|_| ClientError::CallEnded)?;
        rx.await.map_err(|_| ClientError::CallEnded)?
    }

    /// Current statistics, per participant.
    pub async fn stats(&self) -> Result<HashMap<UserId, CallStats>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Stats(tx))
            .map_err(|_| ClientError::CallEnded)?;
        rx.await.map_err(|_| ClientError::CallEnded)
    }

    /// The next call event; `None` once the call is over.
    pub async fn next_event(&self) -> Option<CallEvent> {
        self.events.lock().await.recv().await
    }

    /// Hangs up without waiting for the report (a `CallEvent::Ended` follows).
    pub fn hang_up(&self) {
        let _ = self.commands.send(Command::Leave);
    }

    /// Hangs up (if still in the call) and returns what the call received.
    pub async fn leave(mut self) -> Result<CallReport, ClientError> {
        let _ = self.commands.send(Command::Leave);
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| ClientError::Protocol(format!("call task: {e}")))?,
            None => Err(ClientError::CallEnded),
        }
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Leave);
    }
}

fn to_rtc(c: WireCandidate) -> parlor_rtc::IceCandidate {
    parlor_rtc::IceCandidate {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

fn to_wire(c: parlor_rtc::IceCandidate) -> WireCandidate {
    WireCandidate {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

/// Joins `room`'s call. `server_events` must carry the call events of the signaling connection
/// (the [`crate::Client`] routes them); the call runs until [`CallHandle::leave`] or its end.
pub async fn start_call(
    connection: Arc<Connection>,
    mut server_events: mpsc::UnboundedReceiver<Event>,
    me: UserId,
    room: RoomId,
    mut options: CallOptions,
) -> Result<CallHandle, ClientError> {
    // ICE servers (and TURN credentials) come from the server.
    if let Reply::IceServers { ice_servers, .. } =
        connection.request(Request::GetIceServers).await?
    {
        options.rtc.ice_servers = ice_servers
            .into_iter()
            .map(|s| IceServer {
                urls: s.urls,
                username: s.username,
                credential: s.credential,
            })
            .collect();
    }
    let video = match &options.video {
        Some(make) => Some(LocalVideoTrack::new(make()?, VideoTrackOptions::default())?),
        None => None,
    };
    let audio = match &options.audio {
        Some(make) => Some(LocalAudioTrack::new(make()?)?),
        None => None,
    };
    let mut machine = CallMachine::new(me);
    let mut queue = machine.handle(Input::StartCall { room });
    let Some(Action::JoinCall { .. }) = queue.pop() else {
        return Err(ClientError::Protocol(
            "the call machine did not join".into(),
        ));
    };
    // Events that arrive before the join's reply are kept in `server_events` for the loop.
    let call = match connection
        .request(Request::CallJoin { room_id: room })
        .await
    {
        Ok(Reply::CallJoined { call }) => call,
        Ok(other) => return Err(ClientError::Protocol(format!("unexpected {other:?}"))),
        Err(e) => {
            stop_tracks(&video, &audio);
            return Err(e);
        }
    };
    let call_id = call.call_id.clone();
    queue.extend(machine.handle(Input::Joined { call }));
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let session = Session {
        connection,
        room,
        client: RtcClient::new(options.rtc.clone()),
        sink: options.sink.take(),
        analyze: options.analyze,
        machine,
        video,
        audio,
        links: HashMap::new(),
        final_stats: HashMap::new(),
        report: CallReport {
            room,
            ..CallReport::default()
        },
        received: Arc::default(),
        events: events_tx,
    };
    let task =
        tokio::spawn(async move { session.run(queue, &mut server_events, commands_rx).await });
    Ok(CallHandle {
        room,
        call_id,
        commands: commands_tx,
        events: Mutex::new(events_rx),
        task: Some(task),
    })
}

/// Whether an SDP has a media section of `kind` (`audio` or `video`) that is not rejected.
fn offers_kind(sdp: &str, kind: &str) -> bool {
    sdp.lines().any(|line| {
        line.strip_prefix("m=")
            .and_then(|m| m.strip_prefix(kind))
            .is_some_and(|rest| !rest.trim_start().starts_with("0 "))
    })
}

fn stop_tracks(video: &Option<LocalVideoTrack>, audio: &Option<LocalAudioTrack>) {
    if let Some(v) = video {
        v.stop();
    }
    if let Some(a) = audio {
        a.stop();
    }
}

struct Session {
    connection: Arc<Connection>,
    room: RoomId,
    client: RtcClient,
    sink: Option<Arc<dyn MediaSink>>,
    analyze: bool,
    machine: CallMachine,
    video: Option<LocalVideoTrack>,
    audio: Option<LocalAudioTrack>,
    links: HashMap<UserId, Arc<PeerConnection>>,
    /// Stats of links already closed: the report covers people who left too.
    final_stats: HashMap<UserId, CallStats>,
    report: CallReport,
    received: Arc<std::sync::Mutex<HashMap<UserId, Received>>>,
    events: mpsc::UnboundedSender<CallEvent>,
}

/// Why the loop stopped.
enum Exit {
    Leave,
    Ended,
}

impl Session {
    async fn run(
        mut self,
        mut queue: Vec<Action>,
        server_events: &mut mpsc::UnboundedReceiver<Event>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<CallReport, ClientError> {
        let (peer_tx, mut peer_rx) = mpsc::unbounded_channel::<(UserId, PeerEvent)>();
        let exit = loop {
            // Carry out what the machine asked for; some steps feed it new inputs.
            while !queue.is_empty() {
                let action = queue.remove(0);
                let user_id = action.user();
                match self.carry_out(action, &peer_tx).await {
                    Ok(inputs) => {
                        for input in inputs {
                            queue.extend(self.machine.handle(input));
                        }
                    }
                    // One link's negotiation failing must not end everyone's call, but it is
                    // said: a call that silently never connects looks like a network problem.
                    Err(e) => {
                        let link = user_id
                            .map(|u| format!(" (link to user {u})"))
                            .unwrap_or_default();
                        tracing::warn!("call step failed{link}: {e}");
                        self.emit(CallEvent::Failed {
                            user_id,
                            error: e.to_string(),
                        });
                    }
                }
            }
            if self.machine.state() == &CallState::Idle {
                break Exit::Ended;
            }
            let input = tokio::select! {
                event = server_events.recv() => match event {
                    Some(event) => self.server_input(event),
                    None => break Exit::Ended,
                },
                event = peer_rx.recv() => match event {
                    Some((user, event)) => self.peer_input(user, event).await,
                    None => None,
                },
                command = commands.recv() => match command {
                    Some(Command::Leave) | None => break Exit::Leave,
                    Some(command) => self.command(command).await,
                },
            };
            if let Some(input) = input {
                queue.extend(self.machine.handle(input));
            }
        };
        self.finish(exit).await
    }

    fn emit(&self, event: CallEvent) {
        let _ = self.events.send(event);
    }

    fn server_input(&mut self, event: Event) -> Option<Input> {
        let room = self.room;
        match event {
            Event::CallParticipantJoined {
                room_id, user_id, ..
            } if room_id == room => {
                self.emit(CallEvent::ParticipantJoined { user_id });
                Some(Input::ParticipantJoined {
                    room: room_id,
                    user: user_id,
                })
            }
            Event::CallParticipantLeft {
                room_id, user_id, ..
            } if room_id == room => {
                self.emit(CallEvent::ParticipantLeft { user_id });
                Some(Input::ParticipantLeft {
                    room: room_id,
                    user: user_id,
                })
            }
            Event::CallEnded { room_id, .. } => Some(Input::CallEnded { room: room_id }),
            Event::CallOffer {
                room_id, from, sdp, ..
            } if room_id == room => Some(Input::Offer { from, sdp }),
            Event::CallAnswer {
                room_id, from, sdp, ..
            } if room_id == room => Some(Input::Answer { from, sdp }),
            Event::CallIce {
                room_id,
                from,
                candidate,
                ..
            } if room_id == room => Some(Input::Candidate { from, candidate }),
            Event::CallStarted { call, by } => Some(Input::Ring { call, by }),
            Event::CallBusy {
                room_id, user_id, ..
            } if room_id == room => {
                self.report.busy.push(user_id);
                self.emit(CallEvent::Busy { user_id });
                None
            }
            Event::CallDeclined {
                room_id, user_id, ..
            } if room_id == room => {
                self.report.declined.push(user_id);
                self.emit(CallEvent::Declined { user_id });
                None
            }
            Event::RoomDeleted { room_id } if room_id == room => {
                Some(Input::CallEnded { room: room_id })
            }
            _ => None,
        }
    }

    async fn peer_input(&mut self, user: UserId, event: PeerEvent) -> Option<Input> {
        match event {
            PeerEvent::IceCandidate(candidate) => {
                let _ = self
                    .connection
                    .request(Request::CallIce {
                        room_id: self.room,
                        to: user,
                        candidate: to_wire(candidate),
                    })
                    .await;
                None
            }
            PeerEvent::ConnectionState(state) => {
                self.emit(CallEvent::Link {
                    user_id: user,
                    state,
                });
                match state {
                    parlor_rtc::ConnectionState::Connected => Some(Input::LinkConnected { user }),
                    parlor_rtc::ConnectionState::Failed => Some(Input::LinkFailed { user }),
                    _ => None,
                }
            }
            PeerEvent::TrackAdded(track) => {
                let kind = match &track {
                    RemoteTrack::Video(_) => "video",
                    RemoteTrack::Audio(_) => "audio",
                };
                self.emit(CallEvent::RemoteTrack {
                    user_id: user,
                    kind: kind.into(),
                });
                spawn_receiver(
                    user,
                    track,
                    self.received.clone(),
                    self.sink.clone(),
                    self.analyze,
                );
                None
            }
            PeerEvent::MediaRefused { kind, offered } => {
                self.emit(CallEvent::MediaRefused {
                    user_id: user,
                    kind: match kind {
                        parlor_rtc::MediaKind::Audio => "audio",
                        parlor_rtc::MediaKind::Video => "video",
                    }
                    .into(),
                    offered,
                });
                None
            }
            _ => None,
        }
    }

    async fn command(&mut self, command: Command) -> Option<Input> {
        match command {
            Command::SetMicrophoneEnabled(on) => {
                if let Some(a) = &self.audio {
                    a.set_enabled(on);
                }
                None
            }
            Command::SetCameraEnabled(on) => {
                if let Some(v) = &self.video {
                    v.set_enabled(on);
                }
                None
            }
            Command::UseVideo(make, done) => {
                let (result, added) = self.use_video(make).await;
                let _ = done.send(result);
                added.then_some(Input::TracksChanged)
            }
            Command::UseAudio(make, done) => {
                let (result, added) = self.use_audio(make).await;
                let _ = done.send(result);
                added.then_some(Input::TracksChanged)
            }
            Command::Stats(reply) => {
                let mut stats = HashMap::new();
                for (user, pc) in &self.links {
                    stats.insert(*user, pc.stats().await);
                }
                let _ = reply.send(stats);
                None
            }
            Command::Leave => None,
        }
    }

    /// Returns the outcome and whether a track was added (the links need a new offer).
    async fn use_video(&mut self, make: VideoMaker) -> (Result<(), ClientError>, bool) {
        let source = match make() {
            Ok(source) => source,
            Err(e) => return (Err(e.into()), false),
        };
        if let Some(v) = &self.video {
            v.replace_source(source);
            return (Ok(()), false);
        }
        let track = match LocalVideoTrack::new(source, VideoTrackOptions::default()) {
            Ok(t) => t,
            Err(e) => return (Err(e.into()), false),
        };
        for pc in self.links.values() {
            if let Err(e) = pc.add_video_track(&track).await {
                return (Err(e.into()), false);
            }
        }
        self.video = Some(track);
        (Ok(()), true)
    }

    async fn use_audio(&mut self, make: AudioMaker) -> (Result<(), ClientError>, bool) {
        let source = match make() {
            Ok(source) => source,
            Err(e) => return (Err(e.into()), false),
        };
        if let Some(a) = &self.audio {
            a.replace_source(source);
            return (Ok(()), false);
        }
        let track = match LocalAudioTrack::new(source) {
            Ok(t) => t,
            Err(e) => return (Err(e.into()), false),
        };
        for pc in self.links.values() {
            if let Err(e) = pc.add_audio_track(&track).await {
                return (Err(e.into()), false);
            }
        }
        self.audio = Some(track);
        (Ok(()), true)
    }

    async fn carry_out(
        &mut self,
        action: Action,
        peer_tx: &mpsc::UnboundedSender<(UserId, PeerEvent)>,
    ) -> Result<Vec<Input>, ClientError> {
        let room = self.room;
        match action {
            // Joining happens before the loop; ringing is the client's business.
            Action::JoinCall { .. } | Action::Ring { .. } => {}
            Action::LeaveCall { room } => {
                let _ = self
                    .connection
                    .request(Request::CallLeave { room_id: room })
                    .await;
            }
            Action::DeclineCall { room } => {
                let _ = self
                    .connection
                    .request(Request::CallDecline { room_id: room })
                    .await;
            }
            Action::BusyCall { room } => {
                let _ = self
                    .connection
                    .request(Request::CallBusy { room_id: room })
                    .await;
            }
            Action::CreateLink { user } => {
                let pc = Arc::new(self.client.create_peer_connection().await?);
                // Audio first: the first section of an offer carries the BUNDLE transport,
                // and a peer that refuses our video (Debian's Firefox has no H.264) then
                // refuses the transport with it, and audio dies too.
                if let Some(a) = &self.audio {
                    pc.add_audio_track(a).await?;
                }
                if let Some(v) = &self.video {
                    pc.add_video_track(v).await?;
                }
                let mut events = pc.take_events().expect("fresh connection");
                let tx = peer_tx.clone();
                tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        if tx.send((user, event)).is_err() {
                            break;
                        }
                    }
                });
                self.links.insert(user, pc);
            }
            Action::CloseLink { user } => {
                if let Some(pc) = self.links.remove(&user) {
                    self.final_stats.insert(user, pc.stats().await);
                    let _ = pc.close().await;
                }
            }
            Action::Offer { user, restart_ice } => {
                if let Some(pc) = self.links.get(&user) {
                    if restart_ice {
                        pc.restart_ice().await?;
                    }
                    let offer = pc.create_offer().await?;
                    pc.set_local_description(offer.clone()).await?;
                    self.connection
                        .request(Request::CallOffer {
                            room_id: room,
                            to: user,
                            sdp: offer.sdp,
                        })
                        .await?;
                }
            }
            Action::Answer {
                user,
                sdp,
                rollback,
            } => {
                let Some(pc) = self.links.get(&user).cloned() else {
                    return Ok(vec![]);
                };
                if rollback {
                    pc.rollback().await?;
                }
                // An offer from a side without a camera has no video section to put ours in.
                let lacks_room = (self.video.is_some() && !offers_kind(&sdp, "video"))
                    || (self.audio.is_some() && !offers_kind(&sdp, "audio"));
                pc.set_remote_description(SessionDescription {
                    sdp_type: SdpType::Offer,
                    sdp,
                })
                .await?;
                let answer = pc.create_answer().await?;
                pc.set_local_description(answer.clone()).await?;
                self.connection
                    .request(Request::CallAnswer {
                        room_id: room,
                        to: user,
                        sdp: answer.sdp,
                    })
                    .await?;
                let mut inputs = vec![Input::RemoteDescriptionSet { user }];
                if lacks_room {
                    inputs.push(Input::NegotiationNeeded { user });
                }
                return Ok(inputs);
            }
            Action::ApplyAnswer { user, sdp } => {
                let Some(pc) = self.links.get(&user).cloned() else {
                    return Ok(vec![]);
                };
                pc.set_remote_description(SessionDescription {
                    sdp_type: SdpType::Answer,
                    sdp,
                })
                .await?;
                return Ok(vec![Input::RemoteDescriptionSet { user }]);
            }
            Action::ApplyCandidate { user, candidate } => {
                if let Some(pc) = self.links.get(&user) {
                    let _ = pc.add_ice_candidate(to_rtc(candidate)).await;
                }
            }
        }
        Ok(vec![])
    }

    async fn finish(mut self, exit: Exit) -> Result<CallReport, ClientError> {
        let mut peers = self.received.lock().map(|r| r.clone()).unwrap_or_default();
        peers.values_mut().for_each(Received::summarize);
        let mut report = std::mem::take(&mut self.report);
        report.peers = peers;
        report.stats = std::mem::take(&mut self.final_stats);
        for (user, pc) in &self.links {
            report.stats.insert(*user, pc.stats().await);
        }
        if let Exit::Leave = exit {
            for action in self.machine.handle(Input::Leave) {
                if let Action::LeaveCall { room } | Action::DeclineCall { room } = action {
                    let _ = self
                        .connection
                        .request(Request::CallLeave { room_id: room })
                        .await;
                }
            }
        }
        for (_, pc) in self.links.drain() {
            let _ = pc.close().await;
        }
        stop_tracks(&self.video, &self.audio);
        self.emit(CallEvent::Ended);
        Ok(report)
    }
}

fn spawn_receiver(
    user: UserId,
    track: RemoteTrack,
    received: Arc<std::sync::Mutex<HashMap<UserId, Received>>>,
    sink: Option<Arc<dyn MediaSink>>,
    analyze: bool,
) {
    tokio::spawn(async move {
        match track {
            RemoteTrack::Video(track) => {
                while let Some(frame) = track.next_frame().await {
                    if let Some(sink) = &sink {
                        sink.video_frame(user, &frame);
                    }
                    let Ok(mut all) = received.lock() else { break };
                    let r = all.entry(user).or_default();
                    r.video_frames += 1;
                    if !analyze {
                        continue;
                    }
                    if let Some(stamp) = read_stamp(&frame) {
                        r.stamped_frames += 1;
                        let age =
                            parlor_media::frame::wall_clock().saturating_sub(stamp.captured_at);
                        r.latencies.push(age.as_secs_f64() * 1000.0);
                    }
                }
            }
            RemoteTrack::Audio(track) => {
                while let Some(frame) = track.next_frame().await {
                    if let Some(sink) = &sink {
                        sink.audio_frame(user, &frame);
                    }
                    let Ok(mut all) = received.lock() else { break };
                    let r = all.entry(user).or_default();
                    r.audio_frames += 1;
                    if analyze {
                        r.tone.push(&first_channel(&frame.samples, frame.channels));
                    }
                }
            }
        }
    });
}
