//! The client's calls, carried out: the [`CallMachine`] decides, this executor does. One runs
//! for the client's whole life (started by [`crate::Client`]). It feeds the machine, with the
//! time, the call events the server sends, the state of the signaling connection, the user's
//! commands and what the peer connections report; it carries out the machine's actions
//! (signaling requests, peer connections, local tracks) and feeds their results back; it
//! passes the machine's events on: a ring to the client's event stream, the rest to the
//! running call's [`CallHandle`], which also controls the call (mute, camera, device
//! switching, stats, leave) and returns its report. It decides nothing about the call.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parlor_media::analysis::{first_channel, percentile, ToneMeter};
use parlor_media::frame::{AudioFrame, VideoFrame};
use parlor_media::pattern::read_stamp;
use parlor_media::{AudioSource, VideoSource};
use parlor_protocol::{
    CallInfo, Event, IceCandidate as WireCandidate, Reply, Request, RoomId, UserId,
};
use parlor_rtc::stats::CallStats;
use parlor_rtc::{
    IceServer, LocalAudioTrack, LocalVideoTrack, MediaKind, PeerConnection, PeerEvent, RemoteTrack,
    RtcClient, RtcConfig, SdpType, SessionDescription, VideoTrackOptions,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::call::{Action, CallMachine, CallState, CallTiming, Input, LocalMedia, Step};
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

/// Opens the devices the user chose, when a call needs one it did not start with (unmuting a
/// call without a microphone, turning a camera on) or the user picks another. Called off the
/// async threads: device APIs block.
pub trait DeviceOpener: Send + Sync {
    fn microphone(&self) -> Result<Box<dyn AudioSource>, parlor_media::MediaError>;
    fn camera(&self) -> Result<Box<dyn VideoSource>, parlor_media::MediaError>;
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
    /// Where a device the call did not start with comes from (none: unmuting without a
    /// microphone, or a camera turned on without one, is refused).
    pub devices: Option<Arc<dyn DeviceOpener>>,
}

pub use crate::call::{CallEvent, EndReason};

/// What a [`CallHandle`] asks of its call.
pub(crate) enum Command {
    SetSending(MediaKind, bool, oneshot::Sender<Result<(), ClientError>>),
    SwitchDevice(MediaKind, oneshot::Sender<Result<(), ClientError>>),
    UseVideo(VideoMaker, oneshot::Sender<Result<(), ClientError>>),
    UseAudio(AudioMaker, oneshot::Sender<Result<(), ClientError>>),
    Stats(oneshot::Sender<HashMap<UserId, CallStats>>),
    Leave,
}

/// What the client hands its call engine.
pub(crate) enum EngineInput {
    /// A call event from the server: signaling, participants, rings.
    Server(Event),
    /// The connection to the server dropped.
    SignalingLost,
    /// The connection is back; `resumed` is the call the server took us back into.
    SignalingBack {
        resumed: Option<CallInfo>,
    },
    Join {
        room: RoomId,
        direct: bool,
        options: CallOptions,
        reply: oneshot::Sender<Result<CallHandle, ClientError>>,
    },
    Decline {
        room: RoomId,
    },
    SetTiming(CallTiming),
    /// A command from the handle of call number `generation` (a stale handle's is ignored).
    Call {
        generation: u64,
        command: Command,
    },
}

/// A running call. Dropping it leaves the call.
pub struct CallHandle {
    call: CallInfo,
    generation: u64,
    engine: mpsc::UnboundedSender<EngineInput>,
    events: Mutex<mpsc::UnboundedReceiver<CallEvent>>,
    report: Option<oneshot::Receiver<CallReport>>,
}

impl CallHandle {
    pub fn room(&self) -> RoomId {
        self.call.room_id
    }

    pub fn call_id(&self) -> &str {
        &self.call.call_id
    }

    /// The call as it was when we joined: who was in it.
    pub fn joined(&self) -> &CallInfo {
        &self.call
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.engine
            .send(EngineInput::Call {
                generation: self.generation,
                command,
            })
            .map_err(|_| ClientError::CallEnded)
    }

    /// Turns the microphone (`Audio`) or the camera (`Video`) on or off. Nothing is sent while
    /// off; the track stays negotiated, so turning it on again is instant (a camera starts
    /// with a keyframe). Turning on one the call has no track for opens the chosen device
    /// ([`CallOptions::devices`]); its failure is the error.
    pub async fn set_sending(&self, kind: MediaKind, enabled: bool) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SetSending(kind, enabled, tx))?;
        rx.await.map_err(|_| ClientError::CallEnded)?
    }

    /// Mutes or unmutes the microphone, without waiting (see [`CallHandle::set_sending`]).
    pub fn set_microphone_enabled(&self, enabled: bool) {
        let (tx, _) = oneshot::channel();
        let _ = self.send(Command::SetSending(MediaKind::Audio, enabled, tx));
    }

    /// Turns the camera off or on, without waiting (see [`CallHandle::set_sending`]).
    pub fn set_camera_enabled(&self, enabled: bool) {
        let (tx, _) = oneshot::channel();
        let _ = self.send(Command::SetSending(MediaKind::Video, enabled, tx));
    }

    /// Opens the device of `kind` now chosen ([`CallOptions::devices`]) and sends from it,
    /// in place of the one in use or as a new track.
    pub async fn switch_device(&self, kind: MediaKind) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SwitchDevice(kind, tx))?;
        rx.await.map_err(|_| ClientError::CallEnded)?
    }

    /// Sends video from a new source: switches the camera when video is already sent, and adds
    /// a video track (renegotiating every link) when the call started without one.
    pub async fn use_video(&self, make: VideoMaker) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::UseVideo(make, tx))?;
        rx.await.map_err(|_| ClientError::CallEnded)?
    }

    /// Sends audio from a new source (a microphone switch), adding an audio track if needed.
    pub async fn use_audio(&self, make: AudioMaker) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::UseAudio(make, tx))?;
        rx.await.map_err(|_| ClientError::CallEnded)?
    }

    /// Current statistics, per participant.
    pub async fn stats(&self) -> Result<HashMap<UserId, CallStats>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx))?;
        rx.await.map_err(|_| ClientError::CallEnded)
    }

    /// The next call event; `None` once the call is over (after [`CallEvent::Ended`]).
    pub async fn next_event(&self) -> Option<CallEvent> {
        self.events.lock().await.recv().await
    }

    /// Hangs up without waiting for the report (a `CallEvent::Ended` follows).
    pub fn hang_up(&self) {
        let _ = self.send(Command::Leave);
    }

    /// Hangs up (if still in the call) and returns what the call received.
    pub async fn leave(mut self) -> Result<CallReport, ClientError> {
        let _ = self.send(Command::Leave);
        match self.report.take() {
            Some(report) => report.await.map_err(|_| ClientError::CallEnded),
            None => Err(ClientError::CallEnded),
        }
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        let _ = self.send(Command::Leave);
    }
}

/// The client's call engine: a handle on the task that runs its calls.
pub(crate) struct CallEngine {
    inputs: mpsc::UnboundedSender<EngineInput>,
}

impl CallEngine {
    /// Starts the engine of user `me`'s client. `rings` gets the events of calls we are not in
    /// (a ring, and its end); the running call's go to its handle.
    pub(crate) fn start(
        connection: Arc<Connection>,
        me: UserId,
        rings: impl Fn(CallEvent) + Send + Sync + 'static,
    ) -> Self {
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let (feedback, feedback_rx) = mpsc::unbounded_channel();
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let (signaling, signaling_rx) = mpsc::unbounded_channel();
        tokio::spawn(send_in_order(
            connection.clone(),
            signaling_rx,
            feedback.clone(),
        ));
        let executor = Executor {
            connection,
            machine: CallMachine::new(me),
            rings: Box::new(rings),
            engine: inputs.downgrade(),
            feedback,
            peer_tx,
            signaling,
            generation: 0,
            call: None,
            left: None,
        };
        tokio::spawn(executor.run(inputs_rx, feedback_rx, peer_rx));
        CallEngine { inputs }
    }

    pub(crate) fn send(&self, input: EngineInput) {
        let _ = self.inputs.send(input);
    }

    /// Starts or joins `room`'s call; returns once the server has let us in.
    pub(crate) async fn join(
        &self,
        room: RoomId,
        direct: bool,
        options: CallOptions,
    ) -> Result<CallHandle, ClientError> {
        let (reply, result) = oneshot::channel();
        self.send(EngineInput::Join {
            room,
            direct,
            options,
            reply,
        });
        result.await.map_err(|_| ClientError::CallEnded)?
    }
}

/// What to do with the reply to a signaling request.
enum OnReply {
    Ignore,
    /// Say when it came (or the request failed).
    Notify(oneshot::Sender<()>),
    /// A failure is this step's.
    Step(Option<UserId>, Step),
    /// The reply to joining `room`'s call.
    Join(RoomId),
}

/// Results of work done off the executor's loop.
enum Feedback {
    Input(Input),
    Joined(RoomId, Result<CallInfo, ClientError>),
    /// A device of `kind` for the call numbered `.0` was opened (or not).
    Opened(u64, MediaKind, Result<Source, parlor_media::MediaError>),
}

/// A source to send from.
enum Source {
    Audio(Box<dyn AudioSource>),
    Video(Box<dyn VideoSource>),
}

/// Sends signaling requests in the order they were made (an answer must reach the other side
/// before the offer that follows it), without holding up the executor for their replies.
async fn send_in_order(
    connection: Arc<Connection>,
    mut requests: mpsc::UnboundedReceiver<(Request, OnReply)>,
    feedback: mpsc::UnboundedSender<Feedback>,
) {
    while let Some((request, on_reply)) = requests.recv().await {
        let reply = connection.queue(request).await;
        let feedback = feedback.clone();
        tokio::spawn(async move {
            let result = reply.await;
            let back = match (on_reply, result) {
                (OnReply::Join(room), Ok(Reply::CallJoined { call })) => {
                    Feedback::Joined(room, Ok(call))
                }
                (OnReply::Join(room), Ok(other)) => Feedback::Joined(
                    room,
                    Err(ClientError::Protocol(format!("unexpected {other:?}"))),
                ),
                (OnReply::Join(room), Err(e)) => Feedback::Joined(room, Err(e)),
                (OnReply::Step(user, step), Err(e)) => Feedback::Input(Input::StepFailed {
                    user,
                    step,
                    error: e.to_string(),
                }),
                (OnReply::Ignore, Err(e)) => {
                    tracing::debug!("call request failed: {e}");
                    return;
                }
                (OnReply::Notify(done), result) => {
                    if let Err(e) = result {
                        tracing::debug!("call request failed: {e}");
                    }
                    let _ = done.send(());
                    return;
                }
                (_, Ok(_)) => return,
            };
            let _ = feedback.send(back);
        });
    }
}

/// Where a command's outcome goes.
type Done = oneshot::Sender<Result<(), ClientError>>;

/// The resources of the call in progress (or being joined).
struct ActiveCall {
    generation: u64,
    room: RoomId,
    rtc: RtcClient,
    sink: Option<Arc<dyn MediaSink>>,
    analyze: bool,
    video: Option<LocalVideoTrack>,
    audio: Option<LocalAudioTrack>,
    links: HashMap<UserId, Arc<PeerConnection>>,
    /// Stats of links already closed: the report covers people who left too.
    final_stats: HashMap<UserId, CallStats>,
    report: CallReport,
    received: Arc<std::sync::Mutex<HashMap<UserId, Received>>>,
    events: mpsc::UnboundedSender<CallEvent>,
    /// Until the machine says we are in: where `join` waits, and what the handle will hold.
    joining: Option<Joining>,
    join_error: Option<ClientError>,
    report_tx: Option<oneshot::Sender<CallReport>>,
    devices: Option<Arc<dyn DeviceOpener>>,
    /// Devices being opened, and who waits to hear how it went.
    opening: Vec<(MediaKind, Vec<Done>)>,
}

struct Joining {
    reply: oneshot::Sender<Result<CallHandle, ClientError>>,
    events: mpsc::UnboundedReceiver<CallEvent>,
    report: oneshot::Receiver<CallReport>,
}

impl ActiveCall {
    fn local_media(&self) -> LocalMedia {
        LocalMedia {
            audio: self.audio.is_some(),
            video: self.video.is_some(),
        }
    }
}

struct Executor {
    connection: Arc<Connection>,
    machine: CallMachine,
    rings: Box<dyn Fn(CallEvent) + Send + Sync>,
    /// The engine's own input, for the handles it makes. Weak: the engine ends when the
    /// client and every handle are gone, and with it the connection it holds.
    engine: mpsc::WeakUnboundedSender<EngineInput>,
    feedback: mpsc::UnboundedSender<Feedback>,
    peer_tx: mpsc::UnboundedSender<(u64, UserId, PeerEvent)>,
    signaling: mpsc::UnboundedSender<(Request, OnReply)>,
    generation: u64,
    call: Option<ActiveCall>,
    /// The server's reply to our leaving the call, which the report waits for: whoever
    /// closes the connection right after hanging up must not leave a place behind that the
    /// server would keep for its grace period.
    left: Option<oneshot::Receiver<()>>,
}

fn now() -> Instant {
    Instant::now()
}

impl Executor {
    async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<EngineInput>,
        mut feedback: mpsc::UnboundedReceiver<Feedback>,
        mut peers: mpsc::UnboundedReceiver<(u64, UserId, PeerEvent)>,
    ) {
        loop {
            self.carry_out_all().await;
            let timeout = self.machine.poll_timeout();
            let sleep = async {
                match timeout {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.on_input(input).await,
                    // The client is gone: hang up.
                    None => break,
                },
                Some(back) = feedback.recv() => self.on_feedback(back).await,
                Some((generation, user, event)) = peers.recv() => {
                    if self.call.as_ref().is_some_and(|c| c.generation == generation) {
                        self.on_peer(user, event);
                    }
                }
                () = sleep => self.machine.handle_timeout(now()),
            }
        }
        self.machine.handle(now(), Input::Leave);
        self.carry_out_all().await;
    }

    /// Carries out the machine's actions and passes on its events until it has none left.
    async fn carry_out_all(&mut self) {
        loop {
            if let Some(action) = self.machine.poll_action() {
                self.carry_out(action).await;
            } else if let Some(event) = self.machine.poll_event() {
                self.deliver(event).await;
            } else {
                break;
            }
        }
    }

    fn signal(&self, request: Request, on_reply: OnReply) {
        let _ = self.signaling.send((request, on_reply));
    }

    async fn on_input(&mut self, input: EngineInput) {
        match input {
            EngineInput::Server(event) => self.machine.handle(now(), Input::Server(event)),
            EngineInput::SignalingLost => self.machine.handle(now(), Input::SignalingLost),
            EngineInput::SignalingBack { resumed } => {
                self.machine.handle(now(), Input::SignalingBack { resumed })
            }
            EngineInput::Join {
                room,
                direct,
                options,
                reply,
            } => self.join(room, direct, options, reply).await,
            EngineInput::Decline { room } => self.machine.handle(now(), Input::Decline { room }),
            EngineInput::SetTiming(timing) => self.machine.set_timing(timing),
            EngineInput::Call {
                generation,
                command,
            } => {
                if self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.generation == generation)
                {
                    self.command(command).await;
                }
            }
        }
    }

    async fn join(
        &mut self,
        room: RoomId,
        direct: bool,
        mut options: CallOptions,
        reply: oneshot::Sender<Result<CallHandle, ClientError>>,
    ) {
        if self.call.is_some() {
            let _ = reply.send(Err(ClientError::Invalid("already in a call".into())));
            return;
        }
        match self.prepare(room, &mut options).await {
            Ok((video, audio)) => {
                self.generation += 1;
                let (events_tx, events_rx) = mpsc::unbounded_channel();
                let (report_tx, report_rx) = oneshot::channel();
                let call = ActiveCall {
                    generation: self.generation,
                    room,
                    rtc: RtcClient::new(options.rtc.clone()),
                    sink: options.sink.take(),
                    analyze: options.analyze,
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
                    joining: Some(Joining {
                        reply,
                        events: events_rx,
                        report: report_rx,
                    }),
                    join_error: None,
                    report_tx: Some(report_tx),
                    devices: options.devices.take(),
                    opening: Vec::new(),
                };
                let media = call.local_media();
                self.call = Some(call);
                self.machine
                    .handle(now(), Input::StartCall { room, direct });
                self.machine.handle(now(), Input::LocalMedia(media));
                if self.machine.state() != &(CallState::Joining { room }) {
                    self.finish_call(ClientError::Invalid("already in a call".into()))
                        .await;
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Takes the ICE servers (and TURN credentials) from the server and opens the sources.
    async fn prepare(
        &self,
        room: RoomId,
        options: &mut CallOptions,
    ) -> Result<(Option<LocalVideoTrack>, Option<LocalAudioTrack>), ClientError> {
        if let Reply::IceServers { ice_servers, .. } =
            self.connection.request(Request::GetIceServers).await?
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
        tracing::debug!("joining room {room}'s call");
        let video = match &options.video {
            Some(make) => Some(LocalVideoTrack::new(make()?, VideoTrackOptions::default())?),
            None => None,
        };
        let audio = match &options.audio {
            Some(make) => match LocalAudioTrack::new(make()?) {
                Ok(track) => Some(track),
                Err(e) => {
                    stop_tracks(&video, &None);
                    return Err(e.into());
                }
            },
            None => None,
        };
        Ok((video, audio))
    }

    async fn on_feedback(&mut self, back: Feedback) {
        match back {
            Feedback::Input(input) => self.machine.handle(now(), input),
            Feedback::Joined(_, Ok(call)) => {
                self.machine.handle(now(), Input::Joined { call });
            }
            Feedback::Joined(room, Err(e)) => {
                if let Some(call) = self.call.as_mut().filter(|c| c.room == room) {
                    call.join_error = Some(e);
                }
                self.machine.handle(now(), Input::JoinFailed { room });
            }
            Feedback::Opened(generation, kind, result) => {
                if self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.generation == generation)
                {
                    self.opened(kind, result.map_err(ClientError::from)).await;
                }
            }
        }
    }

    /// A device asked for by the machine is open (or could not be): send from it, and tell
    /// whoever waits.
    async fn opened(&mut self, kind: MediaKind, result: Result<Source, ClientError>) {
        let result = match result {
            Ok(source) => self.attach(source).await,
            Err(e) => Err(e),
        };
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let waiting = call
            .opening
            .iter()
            .position(|(k, _)| *k == kind)
            .map(|i| call.opening.remove(i).1)
            .unwrap_or_default();
        for done in waiting {
            let _ = done.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(ClientError::Invalid(e.to_string())),
            });
        }
        if let Err(e) = result {
            tracing::warn!("cannot send from the {kind:?} device: {e}");
        }
    }

    /// Sends from `source`: in place of its kind's source if the call has that track, else
    /// on a new track added to every link. The machine then offers the new track.
    async fn attach(&mut self, source: Source) -> Result<(), ClientError> {
        let Some(call) = self.call.as_mut() else {
            return Err(ClientError::CallEnded);
        };
        let kind = match source {
            Source::Video(source) => {
                if let Some(v) = &call.video {
                    v.replace_source(source);
                } else {
                    let track = LocalVideoTrack::new(source, VideoTrackOptions::default())?;
                    for pc in call.links.values() {
                        pc.add_video_track(&track).await?;
                    }
                    call.video = Some(track);
                }
                MediaKind::Video
            }
            Source::Audio(source) => {
                if let Some(a) = &call.audio {
                    a.replace_source(source);
                } else {
                    let track = LocalAudioTrack::new(source)?;
                    for pc in call.links.values() {
                        pc.add_audio_track(&track).await?;
                    }
                    call.audio = Some(track);
                }
                MediaKind::Audio
            }
        };
        self.machine.handle(now(), Input::DeviceOpened { kind });
        Ok(())
    }

    /// Answers a command about `kind`'s device once the device it had opened is open, or now.
    fn reply_when_open(&mut self, kind: MediaKind, done: Done) {
        let opening = self
            .call
            .as_mut()
            .and_then(|c| c.opening.iter_mut().find(|(k, _)| *k == kind));
        match opening {
            Some((_, waiting)) => waiting.push(done),
            None => {
                let _ = done.send(Ok(()));
            }
        }
    }

    fn on_peer(&mut self, user: UserId, event: PeerEvent) {
        let Some(call) = self.call.as_ref() else {
            return;
        };
        let input = match event {
            PeerEvent::IceCandidate(candidate) => {
                self.signal(
                    Request::CallIce {
                        room_id: call.room,
                        to: user,
                        candidate: to_wire(candidate),
                    },
                    OnReply::Ignore,
                );
                return;
            }
            PeerEvent::ConnectionState(state) => Input::LinkState { user, state },
            PeerEvent::TrackAdded(track) => {
                let kind = match &track {
                    RemoteTrack::Video(_) => "video",
                    RemoteTrack::Audio(_) => "audio",
                };
                spawn_receiver(
                    user,
                    track,
                    call.received.clone(),
                    call.sink.clone(),
                    call.analyze,
                );
                Input::RemoteTrack {
                    user,
                    kind: kind.into(),
                }
            }
            PeerEvent::MediaRefused { kind, offered } => Input::MediaRefused {
                user,
                kind: match kind {
                    parlor_rtc::MediaKind::Audio => "audio",
                    parlor_rtc::MediaKind::Video => "video",
                }
                .into(),
                offered,
            },
            _ => return,
        };
        self.machine.handle(now(), input);
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::SetSending(kind, enabled, done) => {
                self.machine
                    .handle(now(), Input::SetSending { kind, enabled });
                self.carry_out_all().await;
                self.reply_when_open(kind, done);
            }
            Command::SwitchDevice(kind, done) => {
                self.machine.handle(now(), Input::SwitchDevice { kind });
                self.carry_out_all().await;
                self.reply_when_open(kind, done);
            }
            Command::UseVideo(make, done) => {
                let result = match make() {
                    Ok(source) => self.attach(Source::Video(source)).await,
                    Err(e) => Err(e.into()),
                };
                let _ = done.send(result);
            }
            Command::UseAudio(make, done) => {
                let result = match make() {
                    Ok(source) => self.attach(Source::Audio(source)).await,
                    Err(e) => Err(e.into()),
                };
                let _ = done.send(result);
            }
            Command::Stats(reply) => {
                let mut stats = HashMap::new();
                if let Some(call) = &self.call {
                    for (user, pc) in &call.links {
                        stats.insert(*user, pc.stats().await);
                    }
                }
                let _ = reply.send(stats);
            }
            Command::Leave => self.machine.handle(now(), Input::Leave),
        }
    }

    /// Passes an event on: a ring to the client, the rest to the call's handle.
    async fn deliver(&mut self, event: CallEvent) {
        match &event {
            CallEvent::Ringing { .. } | CallEvent::RingStopped { .. } => (self.rings)(event),
            CallEvent::Joined { call: info } => {
                if let Some(call) = self.call.as_mut() {
                    // Whoever asked to join holds the client, so the engine's input is there.
                    if let (Some(joining), Some(engine)) =
                        (call.joining.take(), self.engine.upgrade())
                    {
                        let handle = CallHandle {
                            call: info.clone(),
                            generation: call.generation,
                            engine,
                            events: Mutex::new(joining.events),
                            report: Some(joining.report),
                        };
                        let _ = call.events.send(event);
                        if let Err(Ok(handle)) = joining.reply.send(Ok(handle)) {
                            // Nobody waits for it any more: leave.
                            drop(handle);
                        }
                    }
                }
            }
            CallEvent::Ended { .. } => {
                if let Some(call) = self.call.as_ref() {
                    let _ = call.events.send(event);
                }
                self.finish_call(ClientError::CallEnded).await;
            }
            _ => {
                if let Some(call) = self.call.as_mut() {
                    match &event {
                        CallEvent::Busy { user_id } => call.report.busy.push(*user_id),
                        CallEvent::Declined { user_id } => call.report.declined.push(*user_id),
                        CallEvent::Failed { user_id, error } => {
                            // Said in the log too: a call that silently never connects looks
                            // like a network problem.
                            let link = user_id
                                .map(|u| format!(" (link to user {u})"))
                                .unwrap_or_default();
                            tracing::warn!("call step failed{link}: {error}");
                        }
                        _ => {}
                    }
                    let _ = call.events.send(event);
                }
            }
        }
        // A join the machine gave up on (refused by the server).
        if self.machine.state() == &CallState::Idle
            && self.call.as_ref().is_some_and(|c| c.joining.is_some())
        {
            let error = self
                .call
                .as_mut()
                .and_then(|c| c.join_error.take())
                .unwrap_or(ClientError::CallEnded);
            self.finish_call(error).await;
        }
    }

    /// Releases the call's resources and hands over its report; a join still waiting gets
    /// `join_error`.
    async fn finish_call(&mut self, join_error: ClientError) {
        let Some(mut call) = self.call.take() else {
            return;
        };
        let mut peers = call.received.lock().map(|r| r.clone()).unwrap_or_default();
        peers.values_mut().for_each(Received::summarize);
        let mut report = std::mem::take(&mut call.report);
        report.peers = peers;
        report.stats = std::mem::take(&mut call.final_stats);
        for (user, pc) in call.links.drain() {
            report.stats.insert(user, pc.stats().await);
            let _ = pc.close().await;
        }
        stop_tracks(&call.video, &call.audio);
        if let Some(left) = self.left.take() {
            let _ = left.await;
        }
        if let Some(joining) = call.joining.take() {
            let _ = joining.reply.send(Err(join_error));
        }
        if let Some(tx) = call.report_tx.take() {
            let _ = tx.send(report);
        }
    }

    async fn carry_out(&mut self, action: Action) {
        let user = action.user();
        if let Err((step, e)) = self.try_carry_out(action).await {
            self.machine.handle(
                now(),
                Input::StepFailed {
                    user,
                    step,
                    error: e.to_string(),
                },
            );
        }
    }

    async fn try_carry_out(&mut self, action: Action) -> Result<(), (Step, ClientError)> {
        let room = self.machine.room();
        match action {
            Action::JoinCall { room } => {
                self.signal(Request::CallJoin { room_id: room }, OnReply::Join(room))
            }
            Action::LeaveCall { room } => {
                let (done, left) = oneshot::channel();
                self.left = Some(left);
                self.signal(Request::CallLeave { room_id: room }, OnReply::Notify(done));
            }
            Action::DeclineCall { room } => {
                self.signal(Request::CallDecline { room_id: room }, OnReply::Ignore)
            }
            Action::BusyCall { room } => {
                self.signal(Request::CallBusy { room_id: room }, OnReply::Ignore)
            }
            Action::CreateLink { user } => {
                let Some(call) = self.call.as_mut() else {
                    return Ok(());
                };
                let fail = |e: parlor_rtc::RtcError| (Step::CreateLink, e.into());
                let pc = Arc::new(call.rtc.create_peer_connection().await.map_err(fail)?);
                // Audio first: the first section of an offer carries the BUNDLE transport,
                // and a peer that refuses our video (Debian's Firefox has no H.264) then
                // refuses the transport with it, and audio dies too.
                if let Some(a) = &call.audio {
                    pc.add_audio_track(a).await.map_err(fail)?;
                }
                if let Some(v) = &call.video {
                    pc.add_video_track(v).await.map_err(fail)?;
                }
                let mut events = pc.take_events().expect("fresh connection");
                let tx = self.peer_tx.clone();
                let generation = call.generation;
                tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        if tx.send((generation, user, event)).is_err() {
                            break;
                        }
                    }
                });
                call.links.insert(user, pc);
            }
            Action::CloseLink { user } => {
                if let Some(call) = self.call.as_mut() {
                    if let Some(pc) = call.links.remove(&user) {
                        call.final_stats.insert(user, pc.stats().await);
                        let _ = pc.close().await;
                    }
                }
            }
            Action::Offer { user, restart_ice } => {
                let step = Step::Offer { restart_ice };
                let (Some(pc), Some(room)) = (self.link(user), room) else {
                    return Ok(());
                };
                let fail = |e: parlor_rtc::RtcError| (step, e.into());
                if restart_ice {
                    pc.restart_ice().await.map_err(fail)?;
                }
                let offer = pc.create_offer().await.map_err(fail)?;
                pc.set_local_description(offer.clone())
                    .await
                    .map_err(fail)?;
                self.signal(
                    Request::CallOffer {
                        room_id: room,
                        to: user,
                        sdp: offer.sdp,
                    },
                    OnReply::Step(Some(user), step),
                );
            }
            Action::Answer {
                user,
                sdp,
                rollback,
            } => {
                let (Some(pc), Some(room)) = (self.link(user), room) else {
                    return Ok(());
                };
                let fail = |e: parlor_rtc::RtcError| (Step::Answer, e.into());
                if rollback {
                    pc.rollback().await.map_err(fail)?;
                }
                pc.set_remote_description(SessionDescription {
                    sdp_type: SdpType::Offer,
                    sdp,
                })
                .await
                .map_err(fail)?;
                let answer = pc.create_answer().await.map_err(fail)?;
                pc.set_local_description(answer.clone())
                    .await
                    .map_err(fail)?;
                self.signal(
                    Request::CallAnswer {
                        room_id: room,
                        to: user,
                        sdp: answer.sdp,
                    },
                    OnReply::Step(Some(user), Step::Answer),
                );
                self.machine
                    .handle(now(), Input::RemoteDescriptionSet { user });
            }
            Action::ApplyAnswer { user, sdp } => {
                let Some(pc) = self.link(user) else {
                    return Ok(());
                };
                pc.set_remote_description(SessionDescription {
                    sdp_type: SdpType::Answer,
                    sdp,
                })
                .await
                .map_err(|e| (Step::ApplyAnswer, e.into()))?;
                self.machine
                    .handle(now(), Input::RemoteDescriptionSet { user });
            }
            Action::OpenDevice { kind } => {
                let Some(call) = self.call.as_mut() else {
                    return Ok(());
                };
                if call.opening.iter().any(|(k, _)| *k == kind) {
                    return Ok(());
                }
                call.opening.push((kind, Vec::new()));
                let (generation, devices) = (call.generation, call.devices.clone());
                let feedback = self.feedback.clone();
                tokio::spawn(async move {
                    let opened = tokio::task::spawn_blocking(move || {
                        let Some(devices) = devices else {
                            return Err(parlor_media::MediaError::DeviceNotFound {
                                kind: match kind {
                                    MediaKind::Audio => "microphone",
                                    MediaKind::Video => "camera",
                                },
                                id: "(this call opens no device)".into(),
                            });
                        };
                        match kind {
                            MediaKind::Audio => devices.microphone().map(Source::Audio),
                            MediaKind::Video => devices.camera().map(Source::Video),
                        }
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(parlor_media::MediaError::Unsupported(format!(
                            "opening the device failed: {e}"
                        )))
                    });
                    let _ = feedback.send(Feedback::Opened(generation, kind, opened));
                });
            }
            Action::EnableTrack { kind, enabled } => {
                if let Some(call) = &self.call {
                    match kind {
                        MediaKind::Audio => call.audio.iter().for_each(|a| a.set_enabled(enabled)),
                        MediaKind::Video => call.video.iter().for_each(|v| v.set_enabled(enabled)),
                    }
                }
            }
            Action::ApplyCandidate { user, candidate } => {
                if let Some(pc) = self.link(user) {
                    if let Err(e) = pc.add_ice_candidate(to_rtc(candidate)).await {
                        tracing::debug!("a candidate from user {user} was not taken: {e}");
                    }
                }
            }
        }
        Ok(())
    }

    fn link(&self, user: UserId) -> Option<Arc<PeerConnection>> {
        self.call.as_ref()?.links.get(&user).cloned()
    }
}

fn stop_tracks(video: &Option<LocalVideoTrack>, audio: &Option<LocalAudioTrack>) {
    if let Some(v) = video {
        v.stop();
    }
    if let Some(a) = audio {
        a.stop();
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
