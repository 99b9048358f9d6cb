//! Echo cancellation on real devices: the far end sends a 440 Hz tone over a real peer
//! connection; the near end plays it through a PulseAudio null sink and records that sink's
//! monitor as its microphone (a room where the microphone hears the speaker perfectly), then
//! sends what it records back. A second tone played into the same sink stands for the near
//! end's own voice, which must get through. The far end measures both tones in what comes
//! back, first with echo cancellation off, then on.
mod common;

use std::time::Duration;

use common::sound::{listed, SoundServer};
use common::*;
use parlor_media::analysis::tone_level_db;
use parlor_media::audio_io::{microphones, speakers, Microphone, Speaker};
use parlor_media::tone::Tone;
use parlor_media::voice::{VoiceProcessor, VoiceSettings};
use parlor_rtc::{LocalAudioTrack, PeerEvent, RemoteAudioTrack, RemoteTrack};

const FAR_TONE_HZ: f64 = 440.0;
const NEAR_TONE_HZ: f64 = 1000.0;
/// Frames are 20 ms: 50 make a second.
const PER_SECOND: usize = 50;

/// The levels of the far end's and the near end's tones in the next `seconds` of audio from
/// `track`, after skipping `settle` seconds (the echo canceller converging, the playout buffer
/// filling).
async fn tone_levels(track: &RemoteAudioTrack, settle: usize, seconds: usize) -> (f64, f64) {
    let mut samples = Vec::new();
    for n in 0..(settle + seconds) * PER_SECOND {
        let frame = tokio::time::timeout(PATIENCE, track.next_frame())
            .await
            .expect("audio keeps arriving")
            .expect("the track is open");
        if n >= settle * PER_SECOND {
            samples.extend(parlor_media::analysis::first_channel(
                &frame.samples,
                frame.channels,
            ));
        }
    }
    (
        tone_level_db(&samples, 48_000, FAR_TONE_HZ),
        tone_level_db(&samples, 48_000, NEAR_TONE_HZ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_cancellation_takes_the_far_end_out_of_the_microphone() {
    let _server = SoundServer::start();
    let speaker_device = listed(speakers(), "Null");
    // The null sink's monitor, listed as a microphone.
    let monitor = listed(microphones(), "Monitor of Null");

    // Only echo cancellation is judged here: noise suppression and gain control would change
    // the level of a steady tone on their own.
    let echo_only = VoiceSettings {
        echo_cancellation: true,
        ..VoiceSettings::OFF
    };
    let processor = VoiceProcessor::new(VoiceSettings::OFF).unwrap();
    let speaker = Speaker::open(Some(&speaker_device.id)).expect("open the speaker");
    speaker.set_echo_reference(Some(processor.clone()));
    let microphone = Microphone::open(Some(&monitor.id), 1).expect("open the monitor");
    let near_end =
        LocalAudioTrack::new(Box::new(processor.wrap(Box::new(microphone)).unwrap())).unwrap();
    let far_end = LocalAudioTrack::new(Box::new(
        Tone::new(FAR_TONE_HZ, 1, Duration::from_millis(20)).unwrap(),
    ))
    .unwrap();

    let (far_sending, near_sending) = (far_end.clone(), near_end.clone());
    let (mut far, mut near) = connected_pair(|a, b| async move {
        a.add_audio_track(&far_sending).await.unwrap();
        b.add_audio_track(&near_sending).await.unwrap();
    })
    .await;
    let remote_audio = |e| match e {
        PeerEvent::TrackAdded(RemoteTrack::Audio(t)) => Some(t),
        _ => None,
    };
    let at_near = next_matching(&mut near.events, "the far end's audio", remote_audio).await;
    let at_far = next_matching(&mut far.events, "the near end's audio", remote_audio).await;

    // The near end plays what it receives.
    let stream = speaker.add_stream();
    let player = tokio::spawn(async move {
        while let Some(frame) = at_near.next_frame().await {
            stream.push(&frame);
        }
    });

    // The near end's "voice": a second tone in the same room, which the speaker never played.
    let status = std::process::Command::new("pactl")
        .args(["load-module", "module-sine", "sink=vspk"])
        .arg(format!("frequency={NEAR_TONE_HZ}"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("pactl");
    assert!(status.success(), "module-sine would not load");

    let (without, voice_without) = tone_levels(&at_far, 3, 3).await;
    processor.set_settings(echo_only);
    let (with, voice_with) = tone_levels(&at_far, 4, 3).await;
    eprintln!(
        "back at the far end: its own tone {without:.1} dB without echo cancellation, \
         {with:.1} dB with; the near end's voice {voice_without:.1} dB without, {voice_with:.1} dB with"
    );
    assert!(
        without > -40.0,
        "without echo cancellation the tone must come back ({without:.1} dB)"
    );
    assert!(
        without - with >= 20.0,
        "echo cancellation took only {:.1} dB off ({without:.1} → {with:.1} dB)",
        without - with
    );
    assert!(
        voice_without > -40.0 && voice_without - voice_with <= 6.0,
        "the near end's voice must get through ({voice_without:.1} → {voice_with:.1} dB)"
    );

    far_end.stop();
    near_end.stop();
    far.pc.close().await.unwrap();
    near.pc.close().await.unwrap();
    let _ = player.await;
}
