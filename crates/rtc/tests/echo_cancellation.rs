//! Echo cancellation on real devices: the far end sends a 440 Hz tone over a real peer
//! connection; the near end plays it through a PulseAudio null sink and records that sink's
//! monitor as its microphone (a room where the microphone hears the speaker perfectly), then
//! sends what it records back. A second tone played into the same sink stands for the near
//! end's own voice, which must get through. The far end measures both tones in what comes
//! back, first with echo cancellation off, then on.
mod common;

use common::sound::{listed, SoundServer};
use common::*;
use parlor_media::analysis::tone_level_db;
use parlor_media::audio_io::{microphones, speakers, Microphone, Speaker};
use parlor_media::spec::AudioSpec;
use parlor_media::voice::{VoiceProcessor, VoiceSettings};
use parlor_rtc::{LocalAudioTrack, PeerEvent, RemoteAudioTrack, RemoteTrack};

const FAR_TONE_HZ: f64 = 440.0;
const NEAR_TONE_HZ: f64 = 1000.0;
/// Frames are 20 ms: 50 make a second.
const PER_SECOND: usize = 50;

/// The levels of the far end's and the near end's tones in the next `seconds` of audio from
/// `track`.
async fn tone_levels(track: &RemoteAudioTrack, seconds: usize) -> (f64, f64) {
    let mut samples = Vec::new();
    for _ in 0..seconds * PER_SECOND {
        let frame = tokio::time::timeout(PATIENCE, track.next_frame())
            .await
            .expect("audio keeps arriving")
            .expect("the track is open");
        samples.extend(parlor_media::analysis::first_channel(
            &frame.samples,
            frame.channels,
        ));
    }
    (
        tone_level_db(&samples, 48_000, FAR_TONE_HZ),
        tone_level_db(&samples, 48_000, NEAR_TONE_HZ),
    )
}

/// The tones' levels over `seconds`, once the far end's has settled: the playout buffer filled
/// and the path through the sound server steady, or the echo canceller converged. Settled is
/// two seconds in a row within 3 dB of each other (or both below -60 dB, where nothing is
/// left to converge). Waiting for that, rather than a fixed time, is what keeps a busy machine
/// from measuring a path that is still starting up (-25 dB of echo instead of -10).
async fn settled_tone_levels(track: &RemoteAudioTrack, seconds: usize) -> (f64, f64) {
    const MOST_SECONDS: usize = 20;
    let mut history = Vec::new();
    for _ in 0..MOST_SECONDS {
        let (far, _) = tone_levels(track, 1).await;
        if let Some(&before) = history.last() {
            let before: f64 = before;
            if (far - before).abs() <= 3.0 || far.max(before) < -60.0 {
                return tone_levels(track, seconds).await;
            }
        }
        history.push(far);
    }
    panic!("the far end's tone never settled in {MOST_SECONDS} s: {history:.1?} dB");
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
    let far_end = LocalAudioTrack::new(AudioSpec::Tone(FAR_TONE_HZ).open().unwrap()).unwrap();

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
    let stream = std::sync::Arc::new(speaker.add_stream());
    let playing = stream.clone();
    let player = tokio::spawn(async move {
        while let Some(frame) = at_near.next_frame().await {
            playing.push(&frame);
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

    let (without, voice_without) = settled_tone_levels(&at_far, 3).await;
    let playout_without = stream.counters();
    processor.set_settings(echo_only);
    let (with, voice_with) = settled_tone_levels(&at_far, 3).await;
    // A starved speaker plays gaps, which lowers the echo and confuses the canceller alike.
    eprintln!(
        "the near end's speaker: {playout_without:?} by the first measurement, {:?} by the second",
        stream.counters()
    );
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
