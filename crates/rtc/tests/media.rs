//! Audio and video between two real peer connections on loopback, with real codecs.
mod common;

use std::time::Duration;

use common::*;
use parlor_media::analysis::{dominant_frequency, first_channel};
use parlor_media::pattern::read_stamp;
use parlor_media::source::{AudioSource, VideoConstraints, VideoSource};
use parlor_media::spec::{AudioSpec, VideoSpec};
use parlor_rtc::{
    without_h264, LocalAudioTrack, LocalVideoTrack, PeerEvent, RemoteTrack, VideoTrackOptions,
};

fn pattern() -> Box<dyn VideoSource> {
    VideoSpec::TestPattern
        .open(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap()
}

fn tone(hz: f64) -> Box<dyn AudioSource> {
    AudioSpec::Tone(hz).open().unwrap()
}

struct Media {
    video: LocalVideoTrack,
    audio: LocalAudioTrack,
}

fn media(hz: f64) -> Media {
    Media {
        video: LocalVideoTrack::new(pattern(), VideoTrackOptions::default()).unwrap(),
        audio: LocalAudioTrack::new(tone(hz)).unwrap(),
    }
}

async fn remote_tracks(
    peer: &mut Peer,
) -> (parlor_rtc::RemoteVideoTrack, parlor_rtc::RemoteAudioTrack) {
    let (mut video, mut audio) = (None, None);
    while video.is_none() || audio.is_none() {
        let track = next_matching(&mut peer.events, "remote track", |e| match e {
            PeerEvent::TrackAdded(t) => Some(t),
            _ => None,
        })
        .await;
        match track {
            RemoteTrack::Video(v) => video = Some(v),
            RemoteTrack::Audio(a) => audio = Some(a),
        }
    }
    (video.unwrap(), audio.unwrap())
}

/// Reads `n` stamped frames and checks they move forward.
async fn moving_frames(track: &parlor_rtc::RemoteVideoTrack, n: usize) -> Vec<u32> {
    let mut numbers = Vec::new();
    while numbers.len() < n {
        let frame = tokio::time::timeout(PATIENCE, track.next_frame())
            .await
            .expect("a frame in time")
            .expect("track ended");
        assert_eq!((frame.width, frame.height), (320, 240));
        let stamp = read_stamp(&frame).expect("the pattern's stamp survives the trip");
        numbers.push(stamp.frame_number);
    }
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "frames go forward: {numbers:?}"
    );
    numbers
}

async fn audio_frequency(track: &parlor_rtc::RemoteAudioTrack, frames: usize) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..frames {
        let frame = tokio::time::timeout(PATIENCE, track.next_frame())
            .await
            .expect("audio in time")
            .expect("ended");
        samples.extend(first_channel(&frame.samples, frame.channels));
    }
    // Skip the decoder's start-up.
    dominant_frequency(&samples[samples.len() / 4..], 48_000, 100.0, 4000.0).expect("not silent")
}

async fn call() -> (Peer, Peer, Media, Media) {
    let a_media = media(440.0);
    let b_media = media(660.0);
    let (av, aa, bv, ba) = (
        a_media.video.clone(),
        a_media.audio.clone(),
        b_media.video.clone(),
        b_media.audio.clone(),
    );
    let (a, b) = connected_pair(|a, b| async move {
        a.add_video_track(&av).await.unwrap();
        a.add_audio_track(&aa).await.unwrap();
        b.add_video_track(&bv).await.unwrap();
        b.add_audio_track(&ba).await.unwrap();
    })
    .await;
    (a, b, a_media, b_media)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_opus_both_ways() {
    let (mut a, mut b, a_media, b_media) = call().await;
    let (b_sees_video, b_hears) = remote_tracks(&mut b).await;
    let (a_sees_video, a_hears) = remote_tracks(&mut a).await;

    moving_frames(&b_sees_video, 20).await;
    moving_frames(&a_sees_video, 20).await;
    let at_b = audio_frequency(&b_hears, 50).await;
    let at_a = audio_frequency(&a_hears, 50).await;
    assert!((at_b - 440.0).abs() < 5.0, "b heard {at_b} Hz, a sent 440");
    assert!((at_a - 660.0).abs() < 5.0, "a heard {at_a} Hz, b sent 660");

    // Stats in the one schema, from both the stack and our pipelines.
    // Rates come from two readings; round trips and half a second of audio take a while:
    // read until they are all there.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let stats = loop {
        let stats = a.pc.stats().await;
        let rated = stats
            .outbound
            .iter()
            .any(|t| t.kind == "video" && t.bitrate_bps > 0.0 && t.frames_per_second > 10.0);
        let heard = stats
            .inbound
            .iter()
            .any(|t| t.kind == "audio" && t.samples_received > 48_000 / 2);
        if rated && heard || tokio::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pair = stats
        .selected_pair
        .as_ref()
        .expect("a selected candidate pair");
    assert_eq!(pair.local_type, "host");
    assert!(pair.local_address.starts_with("127.0.0.1:"), "{pair:?}");
    let out_video = stats
        .outbound
        .iter()
        .find(|t| t.kind == "video")
        .expect("outbound video");
    assert!(
        out_video.packets_sent > 0 && out_video.bytes_sent > 0,
        "{out_video:?}"
    );
    assert!(out_video.frames_encoded >= 20 && out_video.frame_width == 320);
    assert!(
        out_video.bitrate_bps > 0.0 && out_video.frames_per_second > 10.0,
        "{out_video:?}"
    );
    let in_audio = stats
        .inbound
        .iter()
        .find(|t| t.kind == "audio")
        .expect("inbound audio");
    assert!(
        in_audio.packets_received > 0 && in_audio.samples_received > 48_000 / 2,
        "{in_audio:?}"
    );
    let in_video = stats
        .inbound
        .iter()
        .find(|t| t.kind == "video")
        .expect("inbound video");
    assert!(
        in_video.frames_decoded >= 20 && in_video.frame_height == 240,
        "{in_video:?}"
    );
    assert!(
        in_audio.jitter_ms < 100.0,
        "jitter in milliseconds: {in_audio:?}"
    );

    let counters = b_sees_video.counters();
    assert!(counters.frames_decoded >= 20 && counters.keyframes_decoded >= 1);
    assert!(a_media.video.counters().frames_encoded >= 20);
    assert!(b_media.audio.counters().frames_encoded >= 50);

    for m in [&a_media, &b_media] {
        m.video.stop();
        m.audio.stop();
    }
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
    assert_eq!(a.pc.running_tasks(), 0, "a left tasks running");
    assert_eq!(b.pc.running_tasks(), 0, "b left tasks running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_stops_media_and_unmute_resumes_it() {
    let (a, mut b, a_media, _b_media) = call().await;
    let (video, audio) = remote_tracks(&mut b).await;
    moving_frames(&video, 5).await;
    audio_frequency(&audio, 10).await;

    let (video_then, audio_then) = (a_media.video.counters(), a_media.audio.counters());
    a_media.video.set_enabled(false);
    a_media.audio.set_enabled(false);
    // Capture goes on while muted, and is the clock: after 30 more frames and 50 more audio
    // frames captured, nothing more was encoded (a frame being encoded at the switch aside),
    // and the receiver cannot have had more than was encoded.
    wait_until("a second of capture while muted", || {
        a_media.video.counters().frames_captured >= video_then.frames_captured + 30
            && a_media.audio.counters().frames_captured >= audio_then.frames_captured + 50
    })
    .await;
    let (video_sent, audio_sent) = (
        a_media.video.counters().frames_encoded,
        a_media.audio.counters().frames_encoded,
    );
    assert!(
        video_sent <= video_then.frames_encoded + 1,
        "video kept being encoded while muted: {video_sent} after {}",
        video_then.frames_encoded
    );
    assert!(
        audio_sent <= audio_then.frames_encoded + 1,
        "audio kept being encoded while muted: {audio_sent} after {}",
        audio_then.frames_encoded
    );
    assert!(video.counters().frames_decoded <= video_sent);
    assert!(audio.counters().packets <= audio_sent);
    // What arrived before the mute is still queued for the reader: take it (without waiting).
    while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, video.next_frame()).await {}
    while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, audio.next_frame()).await {}

    a_media.video.set_enabled(true);
    a_media.audio.set_enabled(true);
    let numbers = moving_frames(&video, 5).await;
    assert!(
        numbers[0] > 18,
        "the muted frames were not sent late: {numbers:?}"
    );
    let hz = audio_frequency(&audio, 25).await;
    assert!((hz - 440.0).abs() < 5.0);
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyframe_request_yields_a_fresh_keyframe() {
    let (a, mut b, a_media, _b_media) = call().await;
    let (video, _audio) = remote_tracks(&mut b).await;
    moving_frames(&video, 10).await;
    let sent_before = a_media.video.counters().keyframes_encoded;
    let got_before = video.counters().keyframes_decoded;
    // The receiver sends a PLI; the sender's encoder must answer with an IDR frame.
    video.request_keyframe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while video.counters().keyframes_decoded <= got_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no keyframe after the PLI"
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), video.next_frame()).await;
    }
    assert!(a_media.video.counters().keyframes_encoded > sent_before);
    assert!(video.counters().plis_sent >= 1);
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_source_needs_no_renegotiation() {
    let (a, mut b, a_media, _b_media) = call().await;
    let (video, audio) = remote_tracks(&mut b).await;
    moving_frames(&video, 5).await;
    // Switch to a pattern at another size and a tone at another pitch.
    let other = VideoSpec::TestPattern
        .open(VideoConstraints {
            width: 640,
            height: 480,
            fps: 30,
        })
        .unwrap();
    a_media.video.replace_source(other);
    a_media.audio.replace_source(tone(880.0));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let frame = tokio::time::timeout_at(deadline, video.next_frame())
            .await
            .expect("in time")
            .unwrap();
        if frame.width == 640 {
            assert!(read_stamp(&frame).is_some());
            break;
        }
    }
    let mut hz = 0.0;
    for _ in 0..20 {
        hz = audio_frequency(&audio, 10).await;
        if (hz - 880.0).abs() < 5.0 {
            break;
        }
    }
    assert!((hz - 880.0).abs() < 5.0, "still hearing {hz} Hz");
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_media_flowing_and_removing_a_track_ends_it_remotely() {
    let (a, mut b, a_media, _b_media) = call().await;
    let (video, _audio) = remote_tracks(&mut b).await;
    moving_frames(&video, 5).await;

    // ICE restart: new credentials in a new offer; the call carries on.
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find(|l| l.starts_with("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    let before = ufrag(&a.pc.local_description().await.unwrap().sdp);
    a.pc.restart_ice().await.unwrap();
    negotiate(&a.pc, &b.pc).await;
    let after = ufrag(&a.pc.local_description().await.unwrap().sdp);
    assert_ne!(before, after, "the restart changed the ICE credentials");
    let numbers = moving_frames(&video, 10).await;
    assert!(numbers.len() == 10);
    assert_eq!(
        a.pc.connection_state(),
        parlor_rtc::ConnectionState::Connected
    );

    // Removing the video track and renegotiating ends it on the other side.
    a.pc.remove_track(a_media.video.id()).await.unwrap();
    negotiate(&a.pc, &b.pc).await;
    let removed = next_matching(&mut b.events, "track removed", |e| match e {
        PeerEvent::TrackRemoved { track_id } => Some(track_id),
        _ => None,
    })
    .await;
    assert_eq!(removed, video.id());
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
}

/// Frames encoded while the connection is still being set up (slow signaling, a slow ICE
/// check) are stale, and may have lost their keyframe to the queue's bound: the receiver must
/// start with a fresh keyframe, not with them. Sent, they came in a burst on a link at its
/// start, and without their keyframe every one failed to decode ("no parameter sets").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_encoded_while_connecting_is_not_sent() {
    let video = LocalVideoTrack::new(pattern(), VideoTrackOptions::default()).unwrap();
    let (a, a_events) = peer().await;
    let (b, b_events) = peer().await;
    a.add_video_track(&video).await.unwrap();
    let _a_events = relay(a_events, b.clone());
    let mut b_events = Peer {
        pc: b.clone(),
        events: relay(b_events, a.clone()),
    };
    let offer = a.create_offer().await.unwrap();
    a.set_local_description(offer.clone()).await.unwrap();
    // More frames than the encoder's queue holds, before the other side has even the offer.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while video.counters().frames_captured < 12 {
        assert!(tokio::time::Instant::now() < deadline, "nothing captured");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.set_remote_description(offer).await.unwrap();
    let answer = b.create_answer().await.unwrap();
    b.set_local_description(answer.clone()).await.unwrap();
    a.set_remote_description(answer).await.unwrap();
    a.wait_connected(PATIENCE).await.unwrap();
    let captured_by_then = video.counters().frames_captured;

    let track = next_matching(&mut b_events.events, "remote video", |e| match e {
        PeerEvent::TrackAdded(RemoteTrack::Video(v)) => Some(v),
        _ => None,
    })
    .await;
    let numbers = moving_frames(&track, 15).await;
    let counters = track.counters();
    assert_eq!(counters.decode_errors, 0, "{counters:?}");
    assert!(
        u64::from(numbers[0]) + 2 >= captured_by_then,
        "the first frame shown was captured before the connection: {} of {captured_by_then}",
        numbers[0]
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// The first remote video track `peer` is given.
async fn remote_video(peer: &mut Peer) -> parlor_rtc::RemoteVideoTrack {
    next_matching(&mut peer.events, "remote video", |e| match e {
        PeerEvent::TrackAdded(RemoteTrack::Video(v)) => Some(v),
        _ => None,
    })
    .await
}

/// One camera in a mesh, sent to a peer with H.264 and to a peer without it: each connection
/// gets its own codec (the track runs an encoder per codec), and both receivers see the
/// pattern's frames in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_track_goes_out_in_h264_and_in_vp8_at_once() {
    let video = LocalVideoTrack::new(pattern(), VideoTrackOptions::default()).unwrap();
    let (a1, a1_events) = peer().await;
    let (b, b_events) = peer().await;
    let (a2, a2_events) = peer().await;
    let (c, c_events) = peer().await;
    a1.add_video_track(&video).await.unwrap();
    a2.add_video_track(&video).await.unwrap();
    let _a1_events = relay(a1_events, b.clone());
    let mut b_events = Peer {
        pc: b.clone(),
        events: relay(b_events, a1.clone()),
    };
    let _a2_events = relay(a2_events, c.clone());
    let mut c_events = Peer {
        pc: c.clone(),
        events: relay(c_events, a2.clone()),
    };
    negotiate(&a1, &b).await;
    // c has no H.264: it reads a2's offer without it.
    let offer = a2.create_offer().await.unwrap();
    assert!(offer.sdp.contains("H264/90000") && offer.sdp.contains("VP8/90000"));
    a2.set_local_description(offer.clone()).await.unwrap();
    c.set_remote_description(without_h264(&offer))
        .await
        .unwrap();
    let answer = c.create_answer().await.unwrap();
    assert!(
        answer.sdp.contains("VP8/90000") && !answer.sdp.contains("H264"),
        "{}",
        answer.sdp
    );
    c.set_local_description(answer.clone()).await.unwrap();
    a2.set_remote_description(answer).await.unwrap();

    let in_h264 = remote_video(&mut b_events).await;
    let in_vp8 = remote_video(&mut c_events).await;
    moving_frames(&in_h264, 15).await;
    moving_frames(&in_vp8, 15).await;
    for track in [&in_h264, &in_vp8] {
        assert_eq!(track.counters().decode_errors, 0, "{:?}", track.counters());
    }
    for pc in [&a1, &b, &a2, &c] {
        pc.close().await.unwrap();
    }
}

/// 20 ms frames of digital silence, paced like a microphone.
struct Silence(parlor_media::source::Pacer);

impl AudioSource for Silence {
    fn channels(&self) -> u16 {
        1
    }
    fn frame_duration(&self) -> Duration {
        Duration::from_millis(20)
    }
    fn next_frame(&mut self) -> Result<parlor_media::AudioFrame, parlor_media::MediaError> {
        self.0.wait();
        Ok(parlor_media::AudioFrame {
            channels: 1,
            samples: vec![0; 960],
            captured_at: parlor_media::frame::wall_clock(),
        })
    }
    fn describe(&self) -> String {
        "silence".into()
    }
}

fn loudness(frame: &parlor_media::AudioFrame) -> f64 {
    let sum: f64 = frame.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / frame.samples.len().max(1) as f64).sqrt()
}

/// Both sides ask for Opus DTX (`usedtx=1`): in silence the sender leaves its packets out but
/// for a comfort-noise update every 400 ms, and the receiver makes up the frames left out as
/// they fall due, so the audio it hands on keeps the stream's pace; the tone comes back after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_left_out_on_the_wire_and_made_up_at_the_far_side() {
    let audio = LocalAudioTrack::new(tone(440.0)).unwrap();
    let sent = audio.clone();
    let (_a, mut b) = connected_pair(|a, _b| async move {
        a.add_audio_track(&sent).await.unwrap();
    })
    .await;
    let remote = loop {
        let track = next_matching(&mut b.events, "remote track", |e| match e {
            PeerEvent::TrackAdded(t) => Some(t),
            _ => None,
        })
        .await;
        if let RemoteTrack::Audio(a) = track {
            break a;
        }
    };
    let hz = audio_frequency(&remote, 25).await;
    assert!((hz - 440.0).abs() < 15.0, "the tone first: {hz} Hz");

    audio.replace_source(Box::new(Silence(parlor_media::source::Pacer::new(
        Duration::from_millis(20),
    ))));
    // Past what was queued before the silence began.
    loop {
        let frame = tokio::time::timeout(PATIENCE, remote.next_frame())
            .await
            .expect("audio in time")
            .expect("ended");
        if loudness(&frame) < 100.0 {
            break;
        }
    }
    // 3 s of silence as the receiver hands it on.
    let before = remote.counters();
    for _ in 0..150 {
        tokio::time::timeout(PATIENCE, remote.next_frame())
            .await
            .expect("audio keeps coming through a silence")
            .expect("ended");
    }
    let after = remote.counters();
    let packets = after.packets - before.packets;
    let made_up = (after.samples_concealed - before.samples_concealed) / 960;
    eprintln!("3 s of silence: {packets} packets, {made_up} of 150 frames made up");
    // Without DTX, 150 packets; with it, the first 200 ms and one every 400 ms.
    assert!(packets < 50, "{packets} packets in 3 s of silence");
    assert!(
        made_up >= 100,
        "{made_up} of 150 frames made up (the rest: {packets} packets)"
    );
    assert_eq!(after.packets_lost, before.packets_lost, "nothing was lost");
    let silent = after.silent_concealed_samples - before.silent_concealed_samples;
    assert!(
        silent >= 100 * 960,
        "what was made up is counted as silence: {silent} samples"
    );

    audio.replace_source(tone(440.0));
    let hz = audio_frequency(&remote, 50).await;
    assert!((hz - 440.0).abs() < 15.0, "the tone again: {hz} Hz");
}
