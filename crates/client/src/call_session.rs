//! A call, end to end: the [`CallMachine`] decides, this shell does. It joins the room's call
//! through the signaling connection, keeps one peer connection per other participant, relays
//! offers, answers and candidates, and reports what it received.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parlor_media::analysis::{first_channel, percentile, ToneMeter};
use parlor_media::pattern::read_stamp;
use parlor_media::{AudioSource, VideoSource};
use parlor_protocol::{Event, IceCandidate as WireCandidate, Reply, Request, RoomId, UserId};
use parlor_rtc::{
    IceServer, LocalAudioTrack, LocalVideoTrack, PeerConnection, PeerEvent, RemoteTrack, RtcClient,
    RtcConfig, SdpType, SessionDescription, VideoTrackOptions,
};
use serde::Serialize;
use tokio::sync::{mpsc, Mutex};

use crate::call::{Action, CallMachine, Input};
use crate::connection::{Connection, ConnectionEvent};
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
    pub stats: HashMap<UserId, parlor_rtc::stats::CallStats>,
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

pub struct CallOptions {
    pub video: Option<VideoMaker>,
    pub audio: Option<AudioMaker>,
    pub rtc: RtcConfig,
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

fn rtc_error(e: parlor_rtc::RtcError) -> ClientError {
    ClientError::Protocol(format!("rtc: {e}"))
}

/// Joins `room`'s call for `duration` and returns what arrived from each participant.
pub async fn run_call(
    connection: &Connection,
    me: UserId,
    room: RoomId,
    mut options: CallOptions,
    duration: Duration,
) -> Result<CallReport, ClientError> {
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
    let client = RtcClient::new(options.rtc.clone());
    let video = match &options.video {
        Some(make) => Some(
            LocalVideoTrack::new(
                make().map_err(|e| rtc_error(e.into()))?,
                VideoTrackOptions::default(),
            )
            .map_err(rtc_error)?,
        ),
        None => None,
    };
    let audio = match &options.audio {
        Some(make) => Some(
            LocalAudioTrack::new(make().map_err(|e| rtc_error(e.into()))?).map_err(rtc_error)?,
        ),
        None => None,
    };

    let mut machine = CallMachine::new(me);
    let mut final_stats: HashMap<UserId, parlor_rtc::stats::CallStats> = HashMap::new();
    let (mut busy, mut declined) = (Vec::new(), Vec::new());
    let mut links: HashMap<UserId, Arc<PeerConnection>> = HashMap::new();
    let received: Arc<Mutex<HashMap<UserId, Received>>> = Arc::default();
    let (peer_tx, mut peer_rx) = mpsc::unbounded_channel::<(UserId, PeerEvent)>();
    let mut queue: Vec<Action> = machine.handle(Input::StartCall { room });
    let deadline = tokio::time::Instant::now() + duration;

    loop {
        // Carry out what the machine asked for; some steps feed it new inputs.
        while !queue.is_empty() {
            let action = queue.remove(0);
            let more = match action {
                Action::JoinCall { room } => match connection
                    .request(Request::CallJoin { room_id: room })
                    .await?
                {
                    Reply::CallJoined { call } => machine.handle(Input::Joined { call }),
                    other => return Err(ClientError::Protocol(format!("unexpected {other:?}"))),
                },
                Action::LeaveCall { room } => {
                    let _ = connection
                        .request(Request::CallLeave { room_id: room })
                        .await;
                    vec![]
                }
                Action::DeclineCall { room } => {
                    let _ = connection
                        .request(Request::CallDecline { room_id: room })
                        .await;
                    vec![]
                }
                Action::BusyCall { room } => {
                    let _ = connection
                        .request(Request::CallBusy { room_id: room })
                        .await;
                    vec![]
                }
                Action::Ring { .. } => vec![],
                Action::CreateLink { user } => {
                    let pc = Arc::new(client.create_peer_connection().await.map_err(rtc_error)?);
                    if let Some(v) = &video {
                        pc.add_video_track(v).await.map_err(rtc_error)?;
                    }
                    if let Some(a) = &audio {
                        pc.add_audio_track(a).await.map_err(rtc_error)?;
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
                    links.insert(user, pc);
                    vec![]
                }
                Action::CloseLink { user } => {
                    if let Some(pc) = links.remove(&user) {
                        // Keep what the link measured: the report covers people who left too.
                        final_stats.insert(user, pc.stats().await);
                        let _ = pc.close().await;
                    }
                    vec![]
                }
                Action::Offer { user, restart_ice } => {
                    if let Some(pc) = links.get(&user) {
                        if restart_ice {
                            pc.restart_ice().await.map_err(rtc_error)?;
                        }
                        let offer = pc.create_offer().await.map_err(rtc_error)?;
                        pc.set_local_description(offer.clone())
                            .await
                            .map_err(rtc_error)?;
                        connection
                            .request(Request::CallOffer {
                                room_id: room,
                                to: user,
                                sdp: offer.sdp,
                            })
                            .await?;
                    }
                    vec![]
                }
                Action::Answer { user, sdp } => {
                    let Some(pc) = links.get(&user).cloned() else {
                        continue;
                    };
                    pc.set_remote_description(SessionDescription {
                        sdp_type: SdpType::Offer,
                        sdp,
                    })
                    .await
                    .map_err(rtc_error)?;
                    let more = machine.handle(Input::RemoteDescriptionSet { user });
                    let answer = pc.create_answer().await.map_err(rtc_error)?;
                    pc.set_local_description(answer.clone())
                        .await
                        .map_err(rtc_error)?;
                    connection
                        .request(Request::CallAnswer {
                            room_id: room,
                            to: user,
                            sdp: answer.sdp,
                        })
                        .await?;
                    more
                }
                Action::ApplyAnswer { user, sdp } => {
                    let Some(pc) = links.get(&user).cloned() else {
                        continue;
                    };
                    pc.set_remote_description(SessionDescription {
                        sdp_type: SdpType::Answer,
                        sdp,
                    })
                    .await
                    .map_err(rtc_error)?;
                    machine.handle(Input::RemoteDescriptionSet { user })
                }
                Action::ApplyCandidate { user, candidate } => {
                    if let Some(pc) = links.get(&user) {
                        let _ = pc.add_ice_candidate(to_rtc(candidate)).await;
                    }
                    vec![]
                }
            };
            queue.extend(more);
        }

        let input = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            event = connection.next_event() => match event {
                Some(ConnectionEvent::Server(event)) => match event {
                    Event::CallParticipantJoined { room_id, user_id, .. } => Some(Input::ParticipantJoined { room: room_id, user: user_id }),
                    Event::CallParticipantLeft { room_id, user_id, .. } => Some(Input::ParticipantLeft { room: room_id, user: user_id }),
                    Event::CallEnded { room_id, .. } => Some(Input::CallEnded { room: room_id }),
                    Event::CallOffer { room_id, from, sdp, .. } if room_id == room => Some(Input::Offer { from, sdp }),
                    Event::CallAnswer { room_id, from, sdp, .. } if room_id == room => Some(Input::Answer { from, sdp }),
                    Event::CallIce { room_id, from, candidate, .. } if room_id == room => Some(Input::Candidate { from, candidate }),
                    Event::CallStarted { call, by } => Some(Input::Ring { call, by }),
                    Event::CallBusy { room_id, user_id, .. } if room_id == room => {
                        busy.push(user_id);
                        None
                    }
                    Event::CallDeclined { room_id, user_id, .. } if room_id == room => {
                        declined.push(user_id);
                        None
                    }
                    _ => None,
                },
                Some(_) => None,
                None => return Err(ClientError::Disconnected),
            },
            event = peer_rx.recv() => match event {
                Some((user, PeerEvent::IceCandidate(candidate))) => {
                    let _ = connection.request(Request::CallIce { room_id: room, to: user, candidate: to_wire(candidate) }).await;
                    None
                }
                Some((user, PeerEvent::ConnectionState(parlor_rtc::ConnectionState::Connected))) => Some(Input::LinkConnected { user }),
                Some((user, PeerEvent::ConnectionState(parlor_rtc::ConnectionState::Failed))) => Some(Input::LinkFailed { user }),
                Some((user, PeerEvent::TrackAdded(track))) => {
                    spawn_receiver(user, track, received.clone());
                    None
                }
                _ => None,
            },
        };
        if let Some(input) = input {
            queue.extend(machine.handle(input));
        }
    }

    let mut peers = received.lock().await.clone();
    peers.values_mut().for_each(Received::summarize);
    let mut report = CallReport {
        room,
        peers,
        stats: final_stats,
        busy,
        declined,
    };
    for (user, pc) in &links {
        report.stats.insert(*user, pc.stats().await);
    }
    for action in machine.handle(Input::Leave) {
        match action {
            Action::CloseLink { user } => {
                if let Some(pc) = links.remove(&user) {
                    let _ = pc.close().await;
                }
            }
            Action::LeaveCall { room } | Action::DeclineCall { room } => {
                let _ = connection
                    .request(Request::CallLeave { room_id: room })
                    .await;
            }
            _ => {}
        }
    }
    if let Some(v) = video {
        v.stop();
    }
    if let Some(a) = audio {
        a.stop();
    }
    Ok(report)
}

fn spawn_receiver(
    user: UserId,
    track: RemoteTrack,
    received: Arc<Mutex<HashMap<UserId, Received>>>,
) {
    tokio::spawn(async move {
        match track {
            RemoteTrack::Video(track) => {
                while let Some(frame) = track.next_frame().await {
                    let mut all = received.lock().await;
                    let r = all.entry(user).or_default();
                    r.video_frames += 1;
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
                    let mut all = received.lock().await;
                    let r = all.entry(user).or_default();
                    r.audio_frames += 1;
                    r.tone.push(&first_channel(&frame.samples, frame.channels));
                }
            }
        }
    });
}
