//! Calls through the client API, against the real server and real peer connections on
//! loopback: a ring that one member declines and another accepts, a video track added mid-call
//! (renegotiation), camera off and on, mute, switching the microphone, stats, hanging up.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::server;
use parlor_client::call_session::{
    AudioMaker, CallEvent, CallHandle, CallOptions, MediaSink, VideoMaker,
};
use parlor_client::reconnect::ReconnectPolicy;
use parlor_client::{Client, ClientEvent};
use parlor_media::analysis::{dominant_frequency, first_channel};
use parlor_media::source::VideoConstraints;
use parlor_media::spec::{AudioSpec, VideoSpec};
use parlor_media::{AudioFrame, VideoFrame};
use parlor_protocol::UserId;

async fn register(url: &str, dir: &Path, name: &str) -> Client {
    common::register(url, dir, name, ReconnectPolicy::default()).await
}

fn pattern() -> VideoMaker {
    Box::new(|| VideoSpec::TestPattern.open(VideoConstraints::default()))
}

fn tone(hz: f64) -> AudioMaker {
    Box::new(move || AudioSpec::Tone(hz).open())
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
    let _call = ann
        .join_call(
            room,
            CallOptions {
                video: Some(pattern()),
                audio: Some(tone(440.0)),
                rtc: loopback(),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
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
