//! Calls through the client API, against the real server and real peer connections on
//! loopback: a ring that one member declines and another accepts, a video track added mid-call
//! (renegotiation), camera off and on, mute, switching the microphone, stats, hanging up; 1:1
//! calls unanswered, declined and hung up on; a signaling drop the call survives with its
//! media flowing, and one that outlasts the server's grace period.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::server;
use parlor_client::call_session::{
    AudioMaker, CallEvent, CallHandle, CallOptions, DeviceOpener, MediaSink, VideoMaker,
};
use parlor_client::reconnect::ReconnectPolicy;
use parlor_client::{Client, ClientEvent};
use parlor_media::analysis::{dominant_frequency, first_channel};
use parlor_media::source::VideoConstraints;
use parlor_media::spec::{AudioSpec, VideoSpec};
use parlor_media::{AudioFrame, VideoFrame};
use parlor_protocol::UserId;
use parlor_rtc::MediaKind;

async fn register(url: &str, dir: &Path, name: &str) -> Client {
    common::register(url, dir, name, ReconnectPolicy::default()).await
}

fn pattern() -> VideoMaker {
    Box::new(|| VideoSpec::TestPattern.open(VideoConstraints::default()))
}

fn tone(hz: f64) -> AudioMaker {
    Box::new(move || AudioSpec::Tone(hz).open())
}

/// A call sending the test pattern and a `hz` tone, on loopback.
fn camera_and_tone(hz: f64) -> CallOptions {
    CallOptions {
        video: Some(pattern()),
        audio: Some(tone(hz)),
        rtc: loopback(),
        ..CallOptions::default()
    }
}

fn loopback() -> parlor_rtc::RtcConfig {
    parlor_rtc::RtcConfig::loopback()
}

/// Counts what arrives from each participant and keeps the latest half second of audio.
#[derive(Default)]
struct Tally {
    video: Mutex<HashMap<UserId, u64>>,
    audio: Mutex<HashMap<UserId, (u64, Vec<i16>)>>,
}

impl MediaSink for Tally {
    fn video_frame(&self, from: UserId, _: &VideoFrame) {
        *self.video.lock().unwrap().entry(from).or_default() += 1;
    }
    fn audio_frame(&self, from: UserId, frame: &AudioFrame) {
        let mut audio = self.audio.lock().unwrap();
        let (count, recent) = audio.entry(from).or_default();
        *count += 1;
        recent.extend(first_channel(&frame.samples, frame.channels));
        let excess = recent.len().saturating_sub(24_000);
        recent.drain(..excess);
    }
}

impl Tally {
    fn video_frames(&self, from: UserId) -> u64 {
        self.video.lock().unwrap().get(&from).copied().unwrap_or(0)
    }
    fn audio_frames(&self, from: UserId) -> u64 {
        self.audio
            .lock()
            .unwrap()
            .get(&from)
            .map(|a| a.0)
            .unwrap_or(0)
    }
    fn heard_hz(&self, from: UserId) -> Option<f64> {
        let audio = self.audio.lock().unwrap();
        let recent = &audio.get(&from)?.1;
        dominant_frequency(recent, 48_000, 100.0, 2000.0)
    }
}

/// Polls `check` every 100 ms until it holds (a guard against hangs, not a speed check).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

async fn call_event(handle: &CallHandle, what: &str, want: impl Fn(&CallEvent) -> bool) {
    let wait = async {
        while let Some(event) = handle.next_event().await {
            if want(&event) {
                return;
            }
        }
        panic!("the call ended waiting for {what}");
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_is_declined_and_accepted_and_the_call_changes_as_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let bob = register(&server.url, dir.path(), "bob").await;
    let cat = register(&server.url, dir.path(), "cat").await;
    let room = ann.create_room("standup", true).await.unwrap().id;
    bob.join_room(room).await.unwrap();
    cat.join_room(room).await.unwrap();
    let (mut bob_events, mut cat_events) = (bob.subscribe(), cat.subscribe());

    // Ann calls with audio only.
    let ann_sees = Arc::new(Tally::default());
    let ann_call = ann
        .join_call(
            room,
            CallOptions {
                audio: Some(tone(440.0)),
                rtc: loopback(),
                sink: Some(ann_sees.clone()),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    // Both other members are rung.
    for events in [&mut cat_events, &mut bob_events] {
        let (ringing_room, by) = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Ok(ClientEvent::IncomingCall { call, by }) = events.recv().await {
                    return (call.room_id, by);
                }
            }
        })
        .await
        .expect("a ring");
        assert_eq!((ringing_room, by), (room, ann.me().id));
    }

    // Cat declines; ann hears of it.
    cat.decline_call(room).await.unwrap();
    call_event(&ann_call, "cat's decline", |e| {
        *e == CallEvent::Declined {
            user_id: cat.me().id,
        }
    })
    .await;

    // Bob accepts with video and audio.
    let bob_sees = Arc::new(Tally::default());
    let bob_call = bob
        .join_call(
            room,
            CallOptions {
                video: Some(pattern()),
                audio: Some(tone(660.0)),
                rtc: loopback(),
                sink: Some(bob_sees.clone()),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    let (a, b) = (ann.me().id, bob.me().id);
    eventually("ann sees bob's video", || ann_sees.video_frames(b) > 10).await;
    eventually("bob hears ann's 440 Hz", || {
        bob_sees
            .heard_hz(a)
            .is_some_and(|hz| (hz - 440.0).abs() < 5.0)
    })
    .await;
    assert_eq!(bob_sees.video_frames(a), 0, "ann has no camera yet");

    // Ann turns her camera on mid-call: a new track, renegotiated on the running link.
    ann_call.use_video(pattern()).await.unwrap();
    call_event(&bob_call, "ann's new video track", |e| {
        *e == CallEvent::RemoteTrack {
            user_id: a,
            kind: "video".into(),
        }
    })
    .await;
    eventually("bob sees ann's video", || bob_sees.video_frames(a) > 10).await;

    // Camera off: ann's frames stop arriving; on again: they resume.
    ann_call.set_camera_enabled(false);
    let stopped = async {
        loop {
            let before = bob_sees.video_frames(a);
            tokio::time::sleep(Duration::from_millis(700)).await;
            if bob_sees.video_frames(a) == before {
                return before;
            }
        }
    };
    let frozen_at = tokio::time::timeout(Duration::from_secs(20), stopped)
        .await
        .expect("video stops while the camera is off");
    ann_call.set_camera_enabled(true);
    eventually("video resumes", || {
        bob_sees.video_frames(a) > frozen_at + 10
    })
    .await;

    // Mute: ann's audio stops; unmute: it comes back.
    ann_call.set_microphone_enabled(false);
    let muted = async {
        loop {
            let before = bob_sees.audio_frames(a);
            tokio::time::sleep(Duration::from_millis(700)).await;
            if bob_sees.audio_frames(a) == before {
                return before;
            }
        }
    };
    let muted_at = tokio::time::timeout(Duration::from_secs(20), muted)
        .await
        .expect("audio stops while muted");
    ann_call.set_microphone_enabled(true);
    eventually("audio resumes", || bob_sees.audio_frames(a) > muted_at + 25).await;

    // Another microphone mid-call (here: another tone), without renegotiation.
    ann_call.use_audio(tone(880.0)).await.unwrap();
    eventually("bob hears the new microphone", || {
        bob_sees
            .heard_hz(a)
            .is_some_and(|hz| (hz - 880.0).abs() < 5.0)
    })
    .await;

    // Stats per participant; hanging up tells the other side.
    let stats = ann_call.stats().await.unwrap();
    assert!(stats.contains_key(&b), "{stats:?}");
    let report = ann_call.leave().await.unwrap();
    assert_eq!(report.declined, vec![cat.me().id]);
    assert!(report.peers[&b].video_frames > 10);
    call_event(&bob_call, "ann leaving", |e| {
        *e == CallEvent::ParticipantLeft { user_id: a }
    })
    .await;
    let bob_report = bob_call.leave().await.unwrap();
    assert!(bob_report.peers[&a].video_frames > 20, "{bob_report:?}");
    for client in [ann, bob, cat] {
        client.close().await;
    }
    server.stop().await;
}

/// A peer that refuses our video (Debian's Firefox has no H.264) also refuses the transport of
/// the offer's first section, and with BUNDLE that is every section's: our offers put audio
/// first, so audio survives such a refusal. Bob here is a bare protocol socket, as a browser
/// client would be, and reads the offer ann's client makes him.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_a_camera_and_a_microphone_lists_audio_first() {
    use parlor_client::connection::ConnectionEvent;
    use parlor_client::{Connection, Credentials};
    use parlor_protocol::{Event, Request};

    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    // Registered first, ann has the lower id: she offers to whoever joins after her.
    let ann = register(&server.url, dir.path(), "ann").await;
    let endpoint = parlor_client::ServerEndpoint::new(&server.url, None).unwrap();
    let bob = Connection::open(
        &endpoint,
        Credentials::Register {
            username: "bob".into(),
            display_name: "Bob".into(),
            password: "password-123".into(),
            invite: None,
        },
        ReconnectPolicy::default(),
    );
    bob.wait_connected(Duration::from_secs(20)).await.unwrap();
    let room = ann.create_room("standup", true).await.unwrap().id;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let _call = ann.join_call(room, camera_and_tone(440.0)).await.unwrap();
    bob.request(Request::CallJoin { room_id: room })
        .await
        .unwrap();
    let offer = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match bob.next_event().await.expect("bob's socket is open") {
                ConnectionEvent::Server(Event::CallOffer { sdp, .. }) => return sdp,
                _ => continue,
            }
        }
    })
    .await
    .expect("ann's offer");
    let sections: Vec<&str> = offer
        .lines()
        .filter_map(|line| line.strip_prefix("m="))
        .map(|media| media.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(sections, vec!["audio", "video"], "{offer}");
    bob.close().await;
}

/// The next client event `want` picks out, within 20 s.
async fn client_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    what: &str,
    want: impl Fn(ClientEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = want(event) {
                        return found;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("waiting for {what}: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {what}"))
}

/// The devices a user chose: here a test pattern for a camera and a 500 Hz tone for a
/// microphone.
struct TestDevices;

impl DeviceOpener for TestDevices {
    fn microphone(&self) -> Result<Box<dyn parlor_media::AudioSource>, parlor_media::MediaError> {
        AudioSpec::Tone(500.0).open()
    }
    fn camera(&self) -> Result<Box<dyn parlor_media::VideoSource>, parlor_media::MediaError> {
        VideoSpec::TestPattern.open(VideoConstraints::default())
    }
}

fn audio_only(hz: f64, sink: Option<Arc<Tally>>) -> CallOptions {
    CallOptions {
        audio: Some(tone(hz)),
        rtc: loopback(),
        sink: sink.map(|s| s as Arc<dyn MediaSink>),
        ..CallOptions::default()
    }
}

/// A direct room's call is a 1:1 call: it rings the other side until answered, and ends for
/// the caller when nobody answers in time or the other side declines, and for either side when
/// the other hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_calls_end_unanswered_declined_or_when_the_other_hangs_up() {
    use parlor_client::call::{CallTiming, EndReason};
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let bob = register(&server.url, dir.path(), "bob").await;
    let mut bob_events = bob.subscribe();
    let room = ann.open_direct("bob").await.unwrap().id;
    // Bob's client learns of the room (and that it is a direct one) from the server.
    tokio::time::timeout(Duration::from_secs(20), async {
        while !bob.rooms().await.unwrap().iter().any(|v| v.room.id == room) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the direct room at bob's");
    // Ann's calls ring for a second (people get 45 s; the rule is the same).
    ann.set_call_timing(CallTiming {
        ring_timeout: Duration::from_secs(1),
        ..CallTiming::default()
    });
    let rung = |e: ClientEvent| match e {
        ClientEvent::IncomingCall { call, .. } if call.room_id == room => Some(()),
        _ => None,
    };

    // Nobody answers.
    let call = ann.join_call(room, audio_only(440.0, None)).await.unwrap();
    client_event(&mut bob_events, "the first ring", rung).await;
    call_event(&call, "no answer", |e| {
        *e == CallEvent::Ended {
            reason: EndReason::NoAnswer,
        }
    })
    .await;
    assert!(call.next_event().await.is_none(), "nothing after the end");
    let missed = client_event(&mut bob_events, "the ring's end", |e| match e {
        ClientEvent::RingStopped { room_id, missed } if room_id == room => Some(missed),
        _ => None,
    })
    .await;
    assert!(missed, "bob missed the call");

    // Declined.
    let call = ann.join_call(room, audio_only(440.0, None)).await.unwrap();
    client_event(&mut bob_events, "the second ring", rung).await;
    bob.decline_call(room).await.unwrap();
    call_event(&call, "the decline", |e| {
        *e == CallEvent::Ended {
            reason: EndReason::Declined,
        }
    })
    .await;

    // Answered: media flows, then ann hangs up and the call ends for bob too.
    let ann_sees = Arc::new(Tally::default());
    let ann_call = ann
        .join_call(room, audio_only(440.0, Some(ann_sees.clone())))
        .await
        .unwrap();
    client_event(&mut bob_events, "the third ring", rung).await;
    let bob_hears = Arc::new(Tally::default());
    let bob_call = bob
        .join_call(
            room,
            CallOptions {
                devices: Some(Arc::new(TestDevices)),
                ..audio_only(660.0, Some(bob_hears.clone()))
            },
        )
        .await
        .unwrap();
    assert_eq!(bob_call.joined().participants.len(), 2, "ann is in it");
    let a = ann.me().id;
    eventually("bob hears ann's 440 Hz", || {
        bob_hears
            .heard_hz(a)
            .is_some_and(|hz| (hz - 440.0).abs() < 5.0)
    })
    .await;
    // Bob turns on a camera his call started without: the device his app chose opens, and
    // ann sees it. Ann's call has nowhere to open a camera from: refused, and said.
    let b = bob.me().id;
    bob_call
        .set_sending(MediaKind::Video, true)
        .await
        .expect("bob's camera opens");
    call_event(&bob_call, "bob's camera on", |e| {
        *e == CallEvent::Media {
            microphone: true,
            camera: true,
        }
    })
    .await;
    eventually("ann sees bob's camera", || ann_sees.video_frames(b) > 10).await;
    assert!(ann_call.set_sending(MediaKind::Video, true).await.is_err());
    // Well past the ring timeout (1.5 s of audio heard), the answered call goes on.
    eventually("bob hears 1.5 s of ann", || bob_hears.audio_frames(a) > 75).await;
    ann_call.hang_up();
    call_event(&bob_call, "ann hanging up", |e| {
        *e == CallEvent::Ended {
            reason: EndReason::OtherLeft,
        }
    })
    .await;
    let report = bob_call.leave().await.unwrap();
    assert!(report.peers[&a].audio_frames > 50, "{report:?}");
    for client in [ann, bob] {
        client.close().await;
    }
    server.stop().await;
}

/// Ann reaches the server through a line the test cuts; her media to Bob goes directly. A
/// drop within the server's grace period leaves the call and its media alone; a drop beyond it
/// ends the call for Ann once she is back (the server gave her place up), and Bob's goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_a_signaling_drop_within_the_grace_period_and_not_beyond() {
    use parlor_client::call::EndReason;
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        parlor_signaling::config::Settings::for_database(&dir.path().join("server.db"));
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.call_grace = Duration::from_secs(5);
    let server = common::Server::start_with(settings).await;
    let proxy = common::Proxy::start(server.addr).await;
    let ann = register(&proxy.url, dir.path(), "ann").await;
    let bob = register(&server.url, dir.path(), "bob").await;
    let cat = register(&server.url, dir.path(), "cat").await;
    let room = ann.create_room("standup", true).await.unwrap().id;
    bob.join_room(room).await.unwrap();
    cat.join_room(room).await.unwrap();
    let (a, b) = (ann.me().id, bob.me().id);
    let bob_sees = Arc::new(Tally::default());
    let ann_call = ann.join_call(room, camera_and_tone(440.0)).await.unwrap();
    let bob_call = bob
        .join_call(room, audio_only(660.0, Some(bob_sees.clone())))
        .await
        .unwrap();
    eventually("bob sees ann", || bob_sees.video_frames(a) > 10).await;

    // Within the grace period.
    proxy.cut();
    call_event(&ann_call, "ann's signaling drop", |e| {
        *e == CallEvent::SignalingLost
    })
    .await;
    call_event(&bob_call, "ann away", |e| {
        *e == CallEvent::ParticipantAway { user_id: a }
    })
    .await;
    let during = bob_sees.video_frames(a);
    eventually("ann's video keeps coming while she is away", || {
        bob_sees.video_frames(a) > during + 15
    })
    .await;
    proxy.restore();
    ann.retry_now().await;
    call_event(&ann_call, "ann's call resumed", |e| {
        *e == CallEvent::Resumed
    })
    .await;
    call_event(&bob_call, "ann back", |e| {
        *e == CallEvent::ParticipantBack { user_id: a }
    })
    .await;
    // Signaling works again: a newcomer links to ann through the server.
    let cat_sees = Arc::new(Tally::default());
    let cat_call = cat
        .join_call(room, audio_only(880.0, Some(cat_sees.clone())))
        .await
        .unwrap();
    eventually("cat sees ann", || cat_sees.video_frames(a) > 10).await;
    cat_call.leave().await.unwrap();

    // Beyond it: bob is told ann left; ann's call ends when she is back; bob's goes on.
    proxy.cut();
    call_event(&bob_call, "ann's place given up", |e| {
        *e == CallEvent::ParticipantLeft { user_id: a }
    })
    .await;
    proxy.restore();
    ann.retry_now().await;
    call_event(&ann_call, "ann's call lost", |e| {
        *e == CallEvent::Ended {
            reason: EndReason::Lost,
        }
    })
    .await;
    assert_eq!(
        bob_call.joined().room_id,
        room,
        "bob's handle still stands for the call"
    );
    let stats = bob_call.stats().await.expect("bob is still in the call");
    assert!(!stats.contains_key(&a), "bob's link to ann is closed");
    let report = bob_call.leave().await.unwrap();
    assert!(report.peers[&a].video_frames > 25, "{report:?}");
    let _ = b;
    for client in [ann, bob, cat] {
        client.close().await;
    }
    drop(proxy);
    server.stop().await;
}
